/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging from another thread (seed: pika's connection adapters, "Requesting message
 * acknowledgements from another thread"):
 *
 *	def ack_message(channel, delivery_tag):
 *	    if channel.is_open:
 *	        channel.basic_ack(delivery_tag)
 *	    else:
 *	        pass  # channel is already closed, so we can't acknowledge this message
 *	connection.add_callback_threadsafe(functools.partial(ack_message, channel, delivery_tag))
 *
 * pika must hop back to its I/O loop's thread to ack. In salvo the consumer's callback
 * hands the message to a worker thread, and the worker acks it itself: salvo_message_ack
 * may be called from any thread (it queues the ack for the I/O thread without waiting).
 * The "channel is already closed" branch is its SALVO_ERR_CLOSED return. Heartbeats keep
 * flowing however long the work takes, since neither thread runs the connection.
 *
 * The example checks that every message was acked by the worker and the queue is empty.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define N 200

/* A hand-off queue between the consumer's thread and the worker. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	salvo_message *items[N];
	int head, tail;
} work = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static _Atomic int acked, closed;

/* The consumer's callback: hand the message over and return at once. */
static void on_message(salvo_message *m, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&work.lock);
	work.items[work.tail++ % N] = m;
	pthread_cond_signal(&work.cond);
	pthread_mutex_unlock(&work.lock);
}

static void *worker(void *arg)
{
	(void)arg;
	for (int done = 0; done < N; done++) {
		struct timespec busy = {0, 500 * 1000}; /* the long-running work */
		salvo_message *m;
		salvo_error err;
		char line[512];
		int rc;

		pthread_mutex_lock(&work.lock);
		while (work.head == work.tail)
			pthread_cond_wait(&work.cond, &work.lock);
		m = work.items[work.head++ % N];
		pthread_mutex_unlock(&work.lock);

		nanosleep(&busy, NULL);
		/* ack_message(channel, delivery_tag), from this thread. */
		rc = salvo_message_ack(m, false, &err);
		if (rc == 0)
			atomic_fetch_add(&acked, 1);
		else if (rc == SALVO_ERR_CLOSED)
			atomic_fetch_add(&closed, 1); /* redelivered on another channel */
		else
			fprintf(stderr, "ack: %s\n", salvo_error_format(&err, line, sizeof line));
		salvo_message_destroy(m);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_consumer_opts copts = {.on_message = on_message};
	salvo_publisher_opts popts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_channel *ch, *check;
	salvo_consumer *consumer;
	salvo_publisher *pub;
	salvo_queue_info info;
	salvo_error err;
	pthread_t thread;
	int dispatched = 0;
	char queue[64];

	/* The seed's name, made unique: the tests run in parallel on one broker. */
	snprintf(queue, sizeof queue, "test.%d", (int)getpid());

	example_check(salvo_channel_open(client, &ch, &err), &err, "channel");
	example_check(salvo_queue_declare(ch, queue, 0, NULL, NULL, &err), &err, "queue_declare");
	example_check(salvo_queue_purge(ch, queue, NULL, &err), &err, "queue_purge");
	example_check(salvo_publisher_new(client, &popts, &pub, &err), &err, "publisher");
	for (int i = 0; i < N; i++)
		example_check(salvo_publish(pub, "", queue, "work", 4, 0, 5000, &err), &err,
			      "publish");
	example_check(salvo_publisher_wait_confirms(pub, 10000, &err), &err, "confirms");
	example_check(salvo_publisher_close(pub, 5000, &err), &err, "publisher close");

	if (pthread_create(&thread, NULL, worker, NULL))
		return 1;
	/* basic_consume('test', on_message_callback); start_consuming() */
	example_check(salvo_basic_qos(ch, 0, 20, false, &err), &err, "basic_qos");
	example_check(salvo_consume(ch, queue, &copts, &consumer, &err), &err, "consume");
	while (dispatched < N) {
		int n = salvo_consumer_dispatch(consumer, 5000, 0, &err);
		if (n < 0)
			example_check(n, &err, "dispatch");
		dispatched += n;
	}
	pthread_join(thread, NULL);
	salvo_consumer_destroy(consumer);
	/* Closing the channel would requeue anything left unacked: the queue tells. */
	example_check(salvo_channel_close(ch, &err), &err, "channel close");
	example_check(salvo_channel_open(client, &check, &err), &err, "channel");
	example_check(salvo_queue_declare(check, queue, SALVO_PASSIVE, NULL, &info, &err), &err,
		      "queue count");
	salvo_queue_delete(check, queue, 0, NULL, NULL);
	salvo_channel_close(check, NULL);
	example_close(client);
	printf("the worker thread acked %d of %d (%d refused: channel closed), %u left in the "
	       "queue\n",
	       acked, N, closed, info.message_count);
	return acked == N && info.message_count == 0 ? 0 : 1;
}
