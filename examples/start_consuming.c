/* SPDX-License-Identifier: MIT */
/*
 * Consuming with callbacks from one loop (seed: pika's BlockingConnection):
 *
 *	channel.basic_consume('test', on_message_callback)
 *	channel.start_consuming()
 *
 * start_consuming runs the callbacks of every consumer on the channel until they are
 * cancelled. salvo_client_dispatch does that for every consumer of a client that has a
 * callback, whatever its channel, on the calling thread; here two queues, each on a
 * channel of its own, served by one loop that takes one message from each consumer in
 * turn. The loop ends when both have had their messages (a real program would run until
 * it is told to stop, or the client closes: SALVO_ERR_CLOSED).
 *
 * The example checks that each callback got every message of its queue and acked it.
 */
#include <string.h>
#include <unistd.h>

#include "example.h"

#define N 300

struct queue {
	char name[64];
	salvo_channel *ch;
	salvo_consumer *cons;
	int received;
};

/* on_message_callback: count the message, ack it, let it go. */
static void on_message(salvo_message *m, void *arg)
{
	struct queue *q = arg;
	salvo_error err;

	q->received++;
	example_check(salvo_message_ack(m, false, &err), &err, "ack");
	salvo_message_destroy(m);
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	struct queue qs[2];
	salvo_publisher *pub;
	salvo_error err;

	example_check(salvo_publisher_new(client, NULL, &pub, &err), &err, "publisher");
	for (int i = 0; i < 2; i++) {
		salvo_consumer_opts opts = {.on_message = on_message, .on_message_arg = &qs[i]};

		memset(&qs[i], 0, sizeof qs[i]);
		snprintf(qs[i].name, sizeof qs[i].name, "salvo.example.start_consuming.%d.%d", i,
			 (int)getpid());
		example_check(salvo_channel_open(client, &qs[i].ch, &err), &err, "channel");
		example_check(salvo_queue_declare(qs[i].ch, qs[i].name, SALVO_AUTO_DELETE,
						  NULL, NULL, &err),
			      &err, "queue.declare");
		/* channel.basic_consume('test', on_message_callback) */
		example_check(salvo_consume(qs[i].ch, qs[i].name, &opts, &qs[i].cons, &err), &err,
			      "basic.consume");
		for (int k = 0; k < N; k++)
			example_check(salvo_publish(pub, "", qs[i].name, "hello", 5, 0, 5000, &err),
				      &err, "publish");
	}
	example_check(salvo_publisher_close(pub, 5000, &err), &err, "publisher close");

	/* channel.start_consuming(), until both queues are drained. */
	while (qs[0].received < N || qs[1].received < N) {
		int rc = salvo_client_dispatch(client, 5000, 0, &err);

		if (rc == SALVO_ERR_TIMEOUT) {
			fprintf(stderr, "no message for 5 s: %d and %d of %d received\n",
				qs[0].received, qs[1].received, N);
			return 1;
		}
		if (rc < 0)
			example_check(rc, &err, "dispatch");
	}
	printf("one loop, two consumers: %d and %d messages, all acked\n", qs[0].received,
	       qs[1].received);
	for (int i = 0; i < 2; i++) {
		salvo_consumer_destroy(qs[i].cons);
		example_check(salvo_channel_close(qs[i].ch, &err), &err, "channel close");
	}
	example_close(client);
	return qs[0].received == N && qs[1].received == N ? 0 : 1;
}
