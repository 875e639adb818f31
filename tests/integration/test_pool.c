/* SPDX-License-Identifier: MIT */
/*
 * Connection pools and listeners against a real RabbitMQ: pools read from an INI file
 * (their connections counted on the broker with rabbitmqctl, round-robin checked from four
 * threads and by each connection's publish counters), pool refusals; a listener receiving
 * everything and stopping within 1 s, idle and mid-stream (the message in hand finished
 * and acked, the rest requeued), surviving rabbitmqctl close_connection, ending with its
 * client, its settle actions, a missing queue refused at once.
 *
 * argv[1] names the case. Needs SALVO_TEST_URI (skips with 77 without it); the cases
 * that use rabbitmqctl also SALVO_SOURCE_ROOT (scripts/rabbitmq.sh ctl).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

static const char *uri;

/* Lines of `rabbitmqctl list_connections pid client_properties` that contain text. */
static int broker_connections(const char *text)
{
	char cmd[1024], line[4096];
	int n = 0;
	FILE *f;

	snprintf(cmd, sizeof cmd,
		 "bash '%s/scripts/rabbitmq.sh' ctl -q list_connections pid client_properties",
		 getenv("SALVO_SOURCE_ROOT"));
	f = popen(cmd, "r");
	CHECK(f);
	while (fgets(line, sizeof line, f))
		n += strstr(line, text) != NULL;
	pclose(f);
	return n;
}

/* A fresh, empty queue q, declared on a channel of its own. */
static void fresh_client_queue(salvo_client *c, const char *q)
{
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_channel_close(ch, &err));
}

/* Write text to <dir>/app.cfg; path receives its name. */
static void write_cfg(char *dir, char *path, size_t size, const char *text)
{
	FILE *f;

	CHECK(mkdtemp(dir));
	snprintf(path, size, "%s/app.cfg", dir);
	f = fopen(path, "w");
	CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

/* Pools from a file. */

#define GETTERS 4
#define GETS	3000

struct getter {
	salvo_pool *pool;
	_Atomic uint32_t *counts;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	size_t n = salvo_pool_size(g->pool);

	for (int i = 0; i < GETS; i++) {
		salvo_client *c = salvo_pool_get(g->pool);
		size_t k = 0;
		while (k < n && salvo_pool_client(g->pool, k) != c)
			k++;
		CHECK(k < n);
		atomic_fetch_add(&g->counts[k], 1);
	}
	return NULL;
}

static void case_pool_ini(void)
{
	char dir[] = "/tmp/salvo-pool-XXXXXX", path[64], text[2048], pub_name[64], lis_name[64];
	_Atomic uint32_t counts[3] = {0};
	salvo_publisher *pubs[3] = {0};
	struct getter g;
	pthread_t threads[GETTERS];
	salvo_pool *pub, *lis;
	salvo_consumer *cons[2];
	salvo_channel *chs[2];
	salvo_error err;
	uint32_t received = 0;

	rabbit_need_ctl(uri);
	snprintf(pub_name, sizeof pub_name, "salvo-pool-%d-publish", (int)getpid());
	snprintf(lis_name, sizeof lis_name, "salvo-pool-%d-listen", (int)getpid());
	snprintf(text, sizeof text,
		 "# two pools, as nucleon's app.cfg\n"
		 "[publish]\n"
		 "uri = %s\n"
		 "pool_size = 3\n"
		 "connection_name = %s\n"
		 "\n"
		 "[listen]\n"
		 "uri = %s\n"
		 "pool_size = 2\n"
		 "connection_name = %s\n"
		 "heartbeat = 10\n",
		 uri, pub_name, uri, lis_name);
	write_cfg(dir, path, sizeof path, text);
	OK(salvo_pool_new_from_file(path, "publish", NULL, &pub, &err));
	OK(salvo_pool_new_from_file(path, "listen", NULL, &lis, &err));
	unlink(path);
	rmdir(dir);
	CHECK(salvo_pool_size(pub) == 3 && salvo_pool_size(lis) == 2);

	/* Eager: every connection is on the broker now, named <name>#<i>. */
	int npub = broker_connections(pub_name), nlis = broker_connections(lis_name);
	printf("broker lists %d publish and %d listen connections\n", npub, nlis);
	CHECK(npub == 3 && nlis == 2);
	CHECK(broker_connections("publish#3") >= 1);

	/* Round-robin from four threads at once: exactly even. */
	g = (struct getter){pub, counts};
	for (int i = 0; i < GETTERS; i++)
		CHECK(pthread_create(&threads[i], NULL, getter_main, &g) == 0);
	for (int i = 0; i < GETTERS; i++)
		pthread_join(threads[i], NULL);
	printf("round-robin over %d gets: %u %u %u\n", GETTERS * GETS, counts[0], counts[1],
	       counts[2]);
	for (int i = 0; i < 3; i++)
		CHECK(counts[i] == GETTERS * GETS / 3);

	/* Publish 300 messages, each on the pool's next connection: 100 per connection, as
	 * each client's own counters say. */
	salvo_client *c0 = salvo_pool_client(pub, 0);
	char pool_q[64];
	snprintf(pool_q, sizeof pool_q, "salvo.test.pool.%d", (int)getpid());
	fresh_client_queue(c0, pool_q);
	for (int i = 0; i < 300; i++) {
		salvo_client *c = salvo_pool_get(pub);
		size_t k = 0;
		char body[16];
		int len = snprintf(body, sizeof body, "%d", i);

		while (salvo_pool_client(pub, k) != c)
			k++;
		if (!pubs[k]) {
			salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC};
			OK(salvo_publisher_new(c, &o, &pubs[k], &err));
		}
		OK(salvo_publish(pubs[k], "", pool_q, body, (size_t)len, 0, 5000, &err));
	}
	for (int k = 0; k < 3; k++) {
		salvo_pub_stats st;
		OK(salvo_publisher_wait_confirms(pubs[k], 10000, &err));
		OK(salvo_publisher_close(pubs[k], 5000, &err));
		salvo_client_stats(salvo_pool_client(pub, (size_t)k), &st);
		printf("publish connection %d: published %llu, acked %llu\n", k + 1,
		       (unsigned long long)st.published, (unsigned long long)st.acked);
		CHECK(st.published == 100 && st.acked == 100);
	}

	/* Consume them on the listen pool, one consumer per connection. */
	for (int k = 0; k < 2; k++) {
		OK(salvo_channel_open(salvo_pool_get(lis), &chs[k], &err));
		OK(salvo_basic_qos(chs[k], 0, 10, false, &err));
		OK(salvo_consume(chs[k], pool_q, NULL, &cons[k], &err));
	}
	for (double end = now_s() + 10; received < 300 && now_s() < end;) {
		for (int k = 0; k < 2; k++) {
			salvo_message *m;
			if (salvo_consumer_get(cons[k], 50, &m, NULL) == 0) {
				OK(salvo_message_ack(m, false, &err));
				salvo_message_destroy(m);
				received++;
			}
		}
	}
	printf("listen pool received %u\n", received);
	CHECK(received == 300);
	for (int k = 0; k < 2; k++) {
		salvo_consumer_destroy(cons[k]);
		OK(salvo_channel_close(chs[k], &err));
	}
	rabbit_delete_queue(c0, pool_q);
	OK(salvo_pool_destroy(pub, 5000, &err));
	OK(salvo_pool_destroy(lis, 5000, &err));
	/* Destroy closed them all. */
	for (int i = 0; i < 50 && broker_connections(pub_name) + broker_connections(lis_name); i++)
		usleep(100000);
	CHECK(broker_connections(pub_name) == 0 && broker_connections(lis_name) == 0);
}

static void case_pool_errors(void)
{
	char dir[] = "/tmp/salvo-pool-XXXXXX", path[64], text[1024], errstr[256];
	char long_name[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_pool *pool = NULL;
	salvo_error err;
	int rc;

	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_pool_new(conf, 0, &pool, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_pool_new(conf, SALVO_POOL_MAX + 1, &pool, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_pool_new(NULL, 1, &pool, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_pool_get(NULL) == NULL && salvo_pool_size(NULL) == 0);
	CHECK(salvo_pool_destroy(NULL, 0, &err) == 0);

	/* A name with no room for the "#<i>" suffix. */
	memset(long_name, 'n', 255);
	long_name[255] = '\0';
	CHECK(salvo_conf_set(conf, "connection_name", long_name, errstr, sizeof errstr) == 0);
	rc = salvo_pool_new(conf, 2, &pool, &err);
	printf("long name: %s\n", err.text);
	CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && pool == NULL);
	CHECK(salvo_conf_set(conf, "connection_name", "", errstr, sizeof errstr) == 0);

	/* Nothing listens on port 1: the first connection fails and says which it was. */
	CHECK(salvo_conf_set(conf, "uri", "amqp://guest:guest@127.0.0.1:1", errstr,
			     sizeof errstr) == 0);
	rc = salvo_pool_new(conf, 3, &pool, &err);
	printf("closed port: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_IO && strncmp(err.text, "pool connection 1 of 3: ", 24) == 0);

	/* A wrong password on the second of two sections' pools is the broker's 403. */
	snprintf(text, sizeof text, "[good]\nuri = %s\n[bad]\nuri = %s\npassword = wrong\n", uri,
		 uri);
	write_cfg(dir, path, sizeof path, text);
	rc = salvo_pool_new_from_file(path, "bad", NULL, &pool, &err);
	printf("wrong password: %d %s\n", rc, err.text);
	CHECK(rc == 403);
	rc = salvo_pool_new_from_file(path, "missing", NULL, &pool, &err);
	printf("missing section: %s\n", err.text);
	CHECK(rc == SALVO_ERR_INVALID_ARGUMENT &&
	      strstr(err.text, "app.cfg: no section [missing]"));
	OK(salvo_pool_new_from_file(path, "good", conf, &pool, &err));
	CHECK(salvo_pool_size(pool) == 1);
	OK(salvo_pool_destroy(pool, 5000, &err));
	unlink(path);
	rmdir(dir);
	salvo_conf_destroy(conf);
}

/* Listeners. */

/* Per process: meson runs the cases in parallel. */
static char LQ[64];

struct counter {
	_Atomic uint32_t calls, done;
	_Atomic uint8_t *seen; /* by sequence number */
	_Atomic uint32_t distinct;
	unsigned work_us;
};

static salvo_listener_action count_message(salvo_message *m, void *arg)
{
	struct counter *k = arg;
	uint32_t seq = rabbit_body_seq(m);

	atomic_fetch_add(&k->calls, 1);
	if (k->work_us)
		usleep(k->work_us);
	if (k->seen && atomic_exchange(&k->seen[seq], 1) == 0)
		atomic_fetch_add(&k->distinct, 1);
	atomic_fetch_add(&k->done, 1);
	return SALVO_LISTENER_ACK;
}

static bool wait_for(_Atomic uint32_t *v, uint32_t want, double seconds)
{
	for (double end = now_s() + seconds; now_s() < end; usleep(2000))
		if (atomic_load(v) >= want)
			return true;
	return false;
}

/* Stop l and return how long it took, in ms. */
static double timed_stop(salvo_listener *l)
{
	salvo_error err;
	double t0 = now_s(), ms;

	OK(salvo_listener_stop(l, 1000, &err));
	ms = (now_s() - t0) * 1e3;
	return ms;
}

static void case_listener(void)
{
	enum { N = 5000 };
	salvo_client *c = rabbit_connect(uri, NULL), *pubc = rabbit_connect(uri, NULL);
	salvo_listener_opts opts = {.declare = true, .prefetch = 100};
	struct counter k = {.seen = calloc(N, 1)};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	double ms;

	CHECK(k.seen);
	rabbit_delete_queue(c, LQ);
	/* The listener declares its queue: the publisher finds it. */
	OK(salvo_listener_new(c, LQ, count_message, &k, &opts, &l, &err));
	rabbit_publish_n(pubc, LQ, 0, N);
	CHECK(wait_for(&k.distinct, N, 30));
	usleep(100000); /* acks on their way */
	ms = timed_stop(l);
	salvo_listener_get_stats(l, &st);
	printf("listener: received %llu, acked %llu, distinct %u; stopped in %.1f ms\n",
	       (unsigned long long)st.received, (unsigned long long)st.acked, k.distinct, ms);
	CHECK(st.received == N && st.acked == N && st.restarts == 0 && st.settle_errors == 0);
	CHECK(ms < 1000);
	/* Stopped: a second stop says so at once. */
	CHECK(salvo_listener_stop(l, 0, &err) == 0);
	salvo_listener_destroy(l);
	CHECK(queue_count(c, LQ) == 0);
	rabbit_delete_queue(c, LQ);
	rabbit_close(pubc, 10000);
	rabbit_close(c, 10000);
	free(k.seen);
}

/* Stop while messages flow into a slow callback: the message in hand is finished and
 * acked, those received and not handed over go back to the queue; nothing is lost. */
static void case_listener_stop_midstream(void)
{
	enum { N = 2000 };
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_listener_opts opts = {.prefetch = 50};
	struct counter k = {.work_us = 2000};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	uint32_t left = 0;
	double ms;

	fresh_client_queue(c, LQ);
	rabbit_publish_n(c, LQ, 0, N);
	OK(salvo_listener_new(c, LQ, count_message, &k, &opts, &l, &err));
	CHECK(wait_for(&k.done, 200, 30));
	ms = timed_stop(l);
	salvo_listener_get_stats(l, &st);
	/* Unacked messages return to the queue when the listener's channel closed. */
	for (int i = 0; i < 100 && (left = queue_count(c, LQ)) + st.acked < N; i++)
		usleep(20000);
	printf("mid-stream stop in %.1f ms: callbacks %u started, %u finished, acked %llu, "
	       "back in the queue %u\n",
	       ms, k.calls, k.done, (unsigned long long)st.acked, left);
	CHECK(ms < 1000);
	CHECK(k.calls == k.done && st.received == k.done && st.acked == st.received);
	CHECK(left + st.acked == N);
	salvo_listener_destroy(l);
	rabbit_delete_queue(c, LQ);
	rabbit_close(c, 10000);
}

/* rabbitmqctl close_connection under the listener: it consumes again on the new
 * connection and receives everything. */
static void case_listener_reconnect(void)
{
	enum { N = 2000 };
	char name[64];
	struct counter k = {.seen = calloc(N, 1)};
	salvo_listener_opts opts = {.declare = true, .prefetch = 50};
	salvo_client *c, *pubc = rabbit_connect(uri, NULL);
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	double ms;

	rabbit_need_ctl(uri);
	CHECK(k.seen);
	snprintf(name, sizeof name, "salvo-listener-%d", (int)getpid());
	c = rabbit_connect(uri, "connection_name", name, "reconnect.initial_delay", "50", NULL);
	rabbit_delete_queue(pubc, LQ);
	OK(salvo_listener_new(c, LQ, count_message, &k, &opts, &l, &err));
	rabbit_publish_n(pubc, LQ, 0, N / 2);
	CHECK(wait_for(&k.distinct, N / 2, 30));
	close_connection(name, "salvo pool test");
	rabbit_publish_n(pubc, LQ, N / 2, N / 2);
	CHECK(wait_for(&k.distinct, N, 30));
	usleep(100000);
	ms = timed_stop(l);
	salvo_listener_get_stats(l, &st);
	printf("after close_connection: distinct %u of %d, received %llu, restarts %llu, "
	       "reconnects %llu, last error '%s'; stopped in %.1f ms\n",
	       k.distinct, N, (unsigned long long)st.received, (unsigned long long)st.restarts,
	       (unsigned long long)salvo_client_reconnects(c), st.last_error.text, ms);
	CHECK(k.distinct == N && st.restarts >= 1 && salvo_client_reconnects(c) == 1);
	CHECK(ms < 1000);
	salvo_listener_destroy(l);
	CHECK(queue_count(pubc, LQ) == 0);
	rabbit_delete_queue(pubc, LQ);
	rabbit_close(c, 10000);
	rabbit_close(pubc, 10000);
	free(k.seen);
}

/* Without reconnection the listener ends with its client; stop returns why. */
static void case_listener_client_closed(void)
{
	char name[64];
	struct counter k = {0};
	salvo_listener_opts opts = {.declare = true};
	salvo_listener *l;
	salvo_client *c;
	salvo_error err;
	int rc;

	rabbit_need_ctl(uri);
	snprintf(name, sizeof name, "salvo-listener-closed-%d", (int)getpid());
	c = rabbit_connect(uri, "connection_name", name, "reconnect", "0", NULL);
	OK(salvo_listener_new(c, LQ, count_message, &k, &opts, &l, &err));
	close_connection(name, "salvo pool test");
	rc = SALVO_ERR_TIMEOUT;
	for (int i = 0; i < 100 && rc == SALVO_ERR_TIMEOUT; i++)
		rc = salvo_listener_stop(l, 100, &err);
	printf("client closed: stop returned %d (%s): %s\n", rc, salvo_err2str(rc), err.text);
	CHECK(rc == 320);
	salvo_listener_destroy(l);
	salvo_client_destroy(c);
	c = rabbit_connect(uri, NULL);
	rabbit_delete_queue(c, LQ);
	rabbit_close(c, 10000);
}

/* Requeue, reject and keep (acked later from another thread). */
static _Atomic int requeued_once;

static void *ack_later(void *arg)
{
	salvo_message *m = arg;
	salvo_error err;

	usleep(10000);
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	return NULL;
}

static salvo_listener_action act_on(salvo_message *m, void *arg)
{
	pthread_t *worker = arg;

	switch (rabbit_body_seq(m)) {
	case 0:
		return atomic_exchange(&requeued_once, 1) ? SALVO_LISTENER_ACK
							  : SALVO_LISTENER_REQUEUE;
	case 1:
		return SALVO_LISTENER_REJECT;
	case 2:
		CHECK(pthread_create(worker, NULL, ack_later, m) == 0);
		return SALVO_LISTENER_KEEP;
	default: {
		salvo_error err;
		OK(salvo_message_ack(m, false, &err));
		return SALVO_LISTENER_SETTLED;
	}
	}
}

static void case_listener_actions(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_listener_stats st;
	salvo_listener *l;
	pthread_t worker;
	salvo_error err;

	fresh_client_queue(c, LQ);
	OK(salvo_listener_new(c, LQ, act_on, &worker, NULL, &l, &err));
	rabbit_publish_n(c, LQ, 0, 4);
	for (double end = now_s() + 10; now_s() < end; usleep(5000)) {
		salvo_listener_get_stats(l, &st);
		if (st.received == 5)
			break;
	}
	pthread_join(worker, NULL);
	usleep(100000);
	OK(salvo_listener_stop(l, 1000, &err));
	salvo_listener_get_stats(l, &st);
	printf("actions: received %llu, acked %llu, requeued %llu, rejected %llu, kept %llu\n",
	       (unsigned long long)st.received, (unsigned long long)st.acked,
	       (unsigned long long)st.requeued, (unsigned long long)st.rejected,
	       (unsigned long long)st.kept);
	CHECK(st.received == 5 && st.acked == 1 && st.requeued == 1 && st.rejected == 1 &&
	      st.kept == 1 && st.settle_errors == 0);
	salvo_listener_destroy(l);
	CHECK(queue_count(c, LQ) == 0);
	rabbit_delete_queue(c, LQ);
	rabbit_close(c, 10000);
}

static void case_listener_refusals(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct counter k = {0};
	salvo_listener *l = NULL;
	salvo_error err;
	double t0 = now_s();
	int rc;

	rabbit_delete_queue(c, "salvo.test.listener.missing");
	rc =
	    salvo_listener_new(c, "salvo.test.listener.missing", count_message, &k, NULL, &l, &err);
	printf("missing queue: %d %s (%.1f ms)\n", rc, err.text, (now_s() - t0) * 1e3);
	CHECK(rc == 404 && err.kind == SALVO_ERROR_CHANNEL && l == NULL);
	CHECK(salvo_listener_new(c, "", count_message, &k, NULL, &l, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_listener_new(c, LQ, NULL, &k, NULL, &l, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_listener_stop(NULL, 0, &err) == SALVO_ERR_INVALID_ARGUMENT);
	salvo_listener_destroy(NULL);
	rabbit_close(c, 10000);
}

static const struct test_case cases[] = {
    {"pool ini", .run = case_pool_ini},
    {"pool errors", .run = case_pool_errors},
    {"listener", .run = case_listener},
    {"listener stop mid-stream", .run = case_listener_stop_midstream},
    {"listener reconnect", .run = case_listener_reconnect},
    {"listener client closed", .run = case_listener_client_closed},
    {"listener actions", .run = case_listener_actions},
    {"listener refusals", .run = case_listener_refusals},
};

int main(int argc, char **argv)
{
	uri = getenv("SALVO_TEST_URI");
	snprintf(LQ, sizeof LQ, "salvo.test.listener.%d", (int)getpid());
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
