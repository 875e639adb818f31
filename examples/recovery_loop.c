/* SPDX-License-Identifier: MIT */
/*
 * Connection recovery: the application's own loop around connect errors, and salvo's
 * automatic reconnection (seed: pika's connection adapters, "Connection recovery"):
 *
 *	while True:
 *	    try:
 *	        connection = pika.BlockingConnection()
 *	        channel = connection.channel()
 *	        channel.basic_consume('test', on_message_callback)
 *	        channel.start_consuming()
 *	    except pika.exceptions.ConnectionClosedByBroker:
 *	        break
 *	    except pika.exceptions.AMQPChannelError:
 *	        break
 *	    except pika.exceptions.AMQPConnectionError:
 *	        continue
 *
 * 1. The application's loop (configuration key reconnect = 0): each failure comes back as
 *    a status and salvo_error, and the policy below decides. Channel errors (a missing
 *    queue: the application's bug) and refusals (403 bad credentials, 530 no vhost) stop
 *    the loop; losing the connection (I/O errors, a dead peer, the broker's 320
 *    CONNECTION_FORCED on a restart or an operator's close) starts it again. pika's
 *    example stops at every close by the broker; a forced close is treated as a loss here,
 *    as salvo's own reconnection treats it.
 * 2. salvo's automatic reconnection (the default): the client reconnects with backoff and
 *    a listener makes its consumer again; the application writes no loop at all.
 *
 * In both, the connection is closed mid-stream with rabbitmqctl close_connection: set
 * SALVO_RABBITMQCTL to the command ("rabbitmqctl", or the test broker's
 * "bash scripts/rabbitmq.sh ctl"); without it the example is skipped. It checks that
 * every message was received (some twice: those unacked at the loss are redelivered).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "example.h"

#define N 400

static const char *uri;
static _Atomic unsigned char seen[N];
static _Atomic int distinct;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static salvo_conf *make_conf(const char *name, const char *reconnect)
{
	salvo_conf *conf = salvo_conf_new();
	char errstr[256];

	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "reconnect", reconnect, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "reconnect.initial_delay", "50", errstr, sizeof errstr)) {
		fprintf(stderr, "conf: %s\n", conf ? errstr : "out of memory");
		exit(1);
	}
	return conf;
}

static void mark_seen(salvo_message *m)
{
	size_t len;
	const char *body = salvo_message_body(m, &len);
	char buf[16];
	unsigned i;

	snprintf(buf, sizeof buf, "%.*s", (int)(len < 15 ? len : 15), body);
	i = (unsigned)strtoul(buf, NULL, 10);
	if (i < N && !atomic_exchange(&seen[i], 1))
		atomic_fetch_add(&distinct, 1);
}

static void reset_seen(void)
{
	for (int i = 0; i < N; i++)
		seen[i] = 0;
	distinct = 0;
}

/* Publish "first" .. "first + n - 1" to queue, confirmed, on a connection of its own;
 * the queue is emptied first when first is 0. */
static void publish(const char *queue, int first, int n)
{
	salvo_conf *conf = make_conf("recovery_loop publisher", "1");
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_publisher *pub;
	salvo_client *c;
	salvo_channel *ch;
	salvo_error err;

	example_check(salvo_client_new(conf, &c, &err), &err, "publisher connect");
	salvo_conf_destroy(conf);
	example_check(salvo_channel_open(c, &ch, &err), &err, "channel");
	example_check(salvo_queue_declare(ch, queue, 0, NULL, NULL, &err), &err, "queue_declare");
	if (first == 0)
		example_check(salvo_queue_purge(ch, queue, NULL, &err), &err, "queue_purge");
	salvo_channel_close(ch, NULL);
	example_check(salvo_publisher_new(c, &opts, &pub, &err), &err, "publisher");
	for (int i = first; i < first + n; i++) {
		char body[16];
		int len = snprintf(body, sizeof body, "%d", i);
		example_check(salvo_publish(pub, "", queue, body, (size_t)len, 0, 5000, &err), &err,
			      "publish");
	}
	example_check(salvo_publisher_wait_confirms(pub, 10000, &err), &err, "confirms");
	salvo_publisher_close(pub, 5000, NULL);
	example_close(c);
}

/* 1. The application's policy: which failures are worth another connection. */
static bool should_recover(int status, const salvo_error *err)
{
	if (status == 403 || status == 530) /* refused: credentials, vhost */
		return false;
	if (err->kind == SALVO_ERROR_CHANNEL) /* AMQPChannelError: a bug, not an outage */
		return false;
	return true; /* the connection was lost: AMQPConnectionError */
}

/* channel.basic_consume(queue, ...); channel.start_consuming(), until all N are in. On
 * the first connection, the broker closes it half-way. */
static int consume(salvo_client *c, const char *queue, const char *name, bool fail_midway,
		   salvo_error *err)
{
	salvo_consumer *cons = NULL;
	salvo_channel *ch;
	int rc;

	rc = salvo_channel_open(c, &ch, err);
	if (rc)
		return rc;
	rc = salvo_basic_qos(ch, 0, 10, false, err);
	if (!rc)
		rc = salvo_consume(ch, queue, NULL, &cons, err);
	while (!rc && distinct < N) {
		salvo_message *m;

		rc = salvo_consumer_get(cons, 5000, &m, err);
		if (rc)
			break;
		mark_seen(m);
		salvo_message_ack(m, false, NULL);
		salvo_message_destroy(m);
		if (fail_midway && distinct == N / 2)
			example_close_connection(name, "recovery_loop example");
	}
	salvo_consumer_destroy(cons);
	salvo_channel_close(ch, NULL);
	return rc;
}

/* The loop; returns the number of connections it made. */
static int application_loop(const char *queue, int *last_status)
{
	salvo_conf *conf = make_conf("recovery_loop app", "0");
	int connections = 0;

	*last_status = 0;
	for (int attempt = 1; attempt <= 10; attempt++) {
		salvo_client *c;
		salvo_error err;
		char line[512];
		int rc = salvo_client_new(conf, &c, &err);

		if (!rc) {
			connections++;
			rc = consume(c, queue, "recovery_loop app", connections == 1, &err);
			salvo_client_destroy(c);
		}
		*last_status = rc;
		if (!rc)
			break;
		if (!should_recover(rc, &err)) {
			printf("  attempt %d: %s: not recovering\n", attempt,
			       salvo_error_format(&err, line, sizeof line));
			break;
		}
		printf("  attempt %d: %s: recovering\n", attempt,
		       salvo_error_format(&err, line, sizeof line));
		sleep_ms(100L << (attempt < 5 ? attempt : 5)); /* a backoff of the app's own */
	}
	salvo_conf_destroy(conf);
	return connections;
}

static salvo_listener_action on_message(salvo_message *m, void *arg)
{
	(void)arg;
	mark_seen(m);
	return SALVO_LISTENER_ACK;
}

int main(int argc, char **argv)
{
	salvo_listener_opts opts = {.declare = true, .prefetch = 10};
	salvo_listener_stats st;
	salvo_listener *listener;
	salvo_client *c;
	salvo_conf *conf;
	salvo_error err;
	int connections, status, ok = 1;
	char queue[64];

	/* The seed's name, made unique: the tests run in parallel on one broker. */
	snprintf(queue, sizeof queue, "test.%d", (int)getpid());

	uri = example_uri(argc, argv);
	if (!getenv("SALVO_RABBITMQCTL")) {
		fprintf(stderr, "SALVO_RABBITMQCTL not set: nothing can close the connection\n");
		return EXAMPLE_SKIP;
	}

	puts("1. the application's loop, reconnect = 0:");
	publish(queue, 0, N);
	connections = application_loop(queue, &status);
	printf("  received %d of %d over %d connections\n", distinct, N, connections);
	ok &= status == 0 && distinct == N && connections == 2;

	puts("   the same loop on a queue that does not exist:");
	reset_seen();
	connections = application_loop("no-such-queue", &status);
	ok &= status == 404 && connections == 1;

	puts("2. salvo's automatic reconnection, a listener:");
	reset_seen();
	conf = make_conf("recovery_loop auto", "1");
	example_check(salvo_client_new(conf, &c, &err), &err, "connect");
	salvo_conf_destroy(conf);
	example_check(salvo_listener_new(c, queue, on_message, NULL, &opts, &listener, &err), &err,
		      "listener");
	/* Half before the loss; the other half can only come through a new consumer. */
	publish(queue, 0, N / 2);
	for (int i = 0; i < 500 && distinct < N / 2; i++)
		sleep_ms(10);
	example_close_connection("recovery_loop auto", "recovery_loop example");
	publish(queue, N / 2, N / 2);
	for (int i = 0; i < 1000 && distinct < N; i++)
		sleep_ms(10);
	example_check(salvo_listener_stop(listener, 1000, &err), &err, "listener stop");
	salvo_listener_get_stats(listener, &st);
	salvo_listener_destroy(listener);
	printf("  received %d of %d; the client reconnected %llu time(s), the listener consumed "
	       "again %llu time(s) after: %s\n",
	       distinct, N, (unsigned long long)salvo_client_reconnects(c),
	       (unsigned long long)st.restarts, st.last_error.text);
	ok &= distinct == N && salvo_client_reconnects(c) == 1 && st.restarts >= 1;

	{
		salvo_channel *ch;
		example_check(salvo_channel_open(c, &ch, &err), &err, "channel");
		salvo_queue_delete(ch, queue, 0, NULL, NULL);
		salvo_channel_close(ch, NULL);
	}
	example_close(c);
	return ok ? 0 : 1;
}
