/* SPDX-License-Identifier: MIT */
/*
 * Reading a stream with a listener: the listener declares the stream (declare arguments
 * x-queue-type "stream"), consumes it from its first record (consume argument
 * x-stream-offset "first"; a stream needs a prefetch, which a listener always sets), and
 * reads each record's offset with salvo_message_stream_offset. After a reconnection it
 * would go on from the record after the last one it handed to the callback (README,
 * "Quorum queues and streams").
 *
 *	stream_listener [URI]
 *
 * The example appends N records itself, waits until the listener has handed out every one,
 * and exits 0 when offsets 0 .. N-1 each came exactly once.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define N 100

static sem_t all_in;	       /* posted by the callback at the N-th record */
static _Atomic int seen[N];    /* how many times each offset came */
static _Atomic int received;

static salvo_listener_action on_record(salvo_message *m, void *arg)
{
	uint64_t offset;
	size_t len;
	const char *body = salvo_message_body(m, &len);

	(void)arg;
	if (salvo_message_stream_offset(m, &offset) != 0 || offset >= N)
		return SALVO_LISTENER_ACK; /* not one of ours: a stream only takes acks */
	atomic_fetch_add(&seen[offset], 1);
	if (offset < 3)
		printf("offset %llu: %.*s\n", (unsigned long long)offset, (int)len, body);
	if (atomic_fetch_add(&received, 1) + 1 == N)
		sem_post(&all_in);
	return SALVO_LISTENER_ACK; /* on a stream an ack is credit: nothing is removed */
}

int main(int argc, char **argv)
{
	salvo_client *client = example_connect(argc, argv);
	salvo_table *declare_args = salvo_table_new(), *consume_args = salvo_table_new();
	salvo_listener_opts opts = {.declare = true, .declare_flags = SALVO_DURABLE, .prefetch = 50};
	salvo_publisher_opts popts = {.confirm = SALVO_CONFIRM_ASYNC};
	struct timespec deadline;
	salvo_listener *listener;
	salvo_publisher *pub;
	salvo_channel *ch;
	salvo_error err;
	char stream[64];
	int once = 0;

	if (!declare_args || !consume_args ||
	    salvo_table_add_string(declare_args, "x-queue-type", "stream") ||
	    salvo_table_add_string(consume_args, "x-stream-offset", "first"))
		return 1;
	opts.declare_arguments = declare_args; /* copied: freed below, the listener keeps its own */
	opts.consume_arguments = consume_args;
	/* Unique: the tests run in parallel on one broker. */
	snprintf(stream, sizeof stream, "salvo.example.stream.%d", (int)getpid());
	sem_init(&all_in, 0, 0);

	example_check(salvo_listener_new(client, stream, on_record, NULL, &opts, &listener, &err),
		      &err, "listener");
	salvo_table_destroy(declare_args);
	salvo_table_destroy(consume_args);

	/* Append N records; a confirm means the stream stored them. */
	example_check(salvo_publisher_new(client, &popts, &pub, &err), &err, "publisher");
	for (int i = 0; i < N; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "record %d", i);

		example_check(salvo_publish(pub, "", stream, body, (size_t)len,
					    SALVO_MSG_PERSISTENT, 5000, &err),
			      &err, "publish");
	}
	example_check(salvo_publisher_wait_confirms(pub, 10000, &err), &err, "confirms");
	example_check(salvo_publisher_close(pub, 5000, &err), &err, "publisher close");

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	while (sem_timedwait(&all_in, &deadline) != 0)
		if (errno != EINTR)
			break;
	example_check(salvo_listener_stop(listener, 5000, &err), &err, "listener stop");
	salvo_listener_destroy(listener);
	for (int i = 0; i < N; i++)
		once += atomic_load(&seen[i]) == 1;
	printf("%d of %d offsets handed out exactly once\n", once, N);

	example_check(salvo_channel_open(client, &ch, &err), &err, "channel");
	salvo_queue_delete(ch, stream, 0, NULL, NULL);
	salvo_channel_close(ch, NULL);
	example_close(client);
	return once == N ? 0 : 1;
}
