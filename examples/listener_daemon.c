/* SPDX-License-Identifier: MIT */
/*
 * A daemon handling incoming messages on a listener thread (seed: nucleon's AMQP access
 * layer, "A recommended pattern to create daemon handling incoming messages"):
 *
 *	def recv_callback(connection, promise, result):
 *	    print 'Result received: ' + result['body']
 *	    connection.ack(result)
 *	app.register_and_spawn_amqp_listener('listener1', recv_callback)
 *
 * The listener declares its queue, runs the callback on its own thread and acks each
 * message when the callback returns. The main thread waits for SIGINT or SIGTERM, or for
 * N messages, then stops the listener, which must take less than a second.
 *
 *	listener_daemon [URI] [--signal]
 *
 * The example publishes the N messages itself. With --signal it sends itself SIGTERM once
 * half of them have arrived, as an init system would: every message is then either
 * handled and acked, or back in the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define N 1000

static sem_t wake_main; /* posted by a signal, or by the callback after N messages */
static _Atomic int received;

static void on_signal(int sig)
{
	(void)sig;
	sem_post(&wake_main); /* async-signal-safe */
}

static salvo_listener_action recv_callback(salvo_message *m, void *arg)
{
	size_t len;
	const char *body = salvo_message_body(m, &len);
	int n = atomic_fetch_add(&received, 1) + 1;

	(void)arg;
	if (n <= 3)
		printf("Result received: %.*s\n", (int)len, body);
	if (n == N)
		sem_post(&wake_main);
	return SALVO_LISTENER_ACK; /* the listener acks it */
}

/* --signal: what an init system does to a daemon, once half the messages are in. */
static void *send_sigterm(void *arg)
{
	(void)arg;
	while (atomic_load(&received) < N / 2)
		usleep(1000);
	kill(getpid(), SIGTERM);
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	bool by_signal = argc > 1 && strcmp(argv[argc - 1], "--signal") == 0;
	salvo_client *client = example_connect(argc - by_signal, argv);
	salvo_listener_opts opts = {.declare = true, .prefetch = 50};
	struct sigaction sa = {.sa_handler = on_signal};
	salvo_listener_stats st;
	salvo_listener *listener;
	salvo_publisher *pub;
	salvo_channel *ch;
	salvo_queue_info info;
	salvo_error err;
	pthread_t killer;
	double t0, stop_ms;

	char queue[64];

	/* The seed's name, made unique: the tests run in parallel on one broker. */
	snprintf(queue, sizeof queue, "listener1.%d", (int)getpid());
	sem_init(&wake_main, 0, 0);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Start from an empty queue: the listener declares it again. */
	example_check(salvo_channel_open(client, &ch, &err), &err, "channel");
	example_check(salvo_queue_delete(ch, queue, 0, NULL, &err), &err, "queue_delete");
	example_check(
	    salvo_listener_new(client, queue, recv_callback, NULL, &opts, &listener, &err), &err,
	    "listener");
	if (by_signal && pthread_create(&killer, NULL, send_sigterm, NULL))
		return 1;

	/* Somebody sends the daemon work. */
	salvo_publisher_opts popts = {.confirm = SALVO_CONFIRM_ASYNC};
	example_check(salvo_publisher_new(client, &popts, &pub, &err), &err, "publisher");
	for (int i = 0; i < N; i++) {
		char body[32];
		int len = snprintf(body, sizeof body, "WithHello%d", i);
		example_check(salvo_publish(pub, "", queue, body, (size_t)len, 0, 5000, &err), &err,
			      "publish");
	}
	example_check(salvo_publisher_wait_confirms(pub, 10000, &err), &err, "confirms");
	example_check(salvo_publisher_close(pub, 5000, &err), &err, "publisher close");

	/* The daemon's main loop: nothing to do until told to stop. */
	while (sem_wait(&wake_main) && errno == EINTR)
		;
	t0 = now_ms();
	example_check(salvo_listener_stop(listener, 1000, &err), &err, "listener stop");
	stop_ms = now_ms() - t0;
	salvo_listener_get_stats(listener, &st);
	salvo_listener_destroy(listener);
	if (by_signal)
		pthread_join(killer, NULL);

	/* What the listener did not handle went back to the queue (as its channel closed). */
	for (int i = 0; i < 50; i++) {
		struct timespec pause = {0, 20 * 1000 * 1000};
		example_check(salvo_queue_declare(ch, queue, SALVO_PASSIVE, NULL, &info, &err),
			      &err, "queue count");
		if (st.acked + info.message_count >= N)
			break;
		nanosleep(&pause, NULL);
	}
	salvo_queue_delete(ch, queue, 0, NULL, NULL);
	salvo_channel_close(ch, NULL);
	example_close(client);
	printf("stopped by %s in %.1f ms: handled and acked %llu of %d, %u back in the queue\n",
	       by_signal ? "SIGTERM" : "the last message", stop_ms, (unsigned long long)st.acked, N,
	       info.message_count);
	if (stop_ms >= 1000 || st.acked != st.received || st.acked + info.message_count != N)
		return 1;
	return by_signal || st.acked == N ? 0 : 1;
}
