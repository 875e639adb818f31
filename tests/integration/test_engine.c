/* SPDX-License-Identifier: MIT */
/*
 * The public API against a real RabbitMQ: synchronous methods and their errors, many
 * producer threads publishing on one connection, an asynchronous publish error surfacing
 * at the next call, heartbeats on an idle connection and a frozen broker detected.
 *
 * argv[1] names the case. Needs SALVO_TEST_URI (skips with 77 without it); the frozen
 * broker case also needs SALVO_TEST_BROKER_PID.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

static const char *uri;

static void case_sync_methods(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_queue_info q;
	salvo_error err;
	uint32_t n = 99;
	salvo_table *args = salvo_table_new();

	CHECK(args && salvo_table_add_int(args, "x-max-length", 1000) == 0);
	OK(salvo_channel_open(c, &ch, &err));
	/* Leftovers of an interrupted run would make the declares inequivalent. */
	OK(salvo_exchange_delete(ch, "salvo.test.x1", 0, &err));
	OK(salvo_exchange_delete(ch, "salvo.test.x2", 0, &err));
	/* Not auto-delete: removing x1's last binding below would delete it. */
	OK(salvo_exchange_declare(ch, "salvo.test.x1", "direct", 0, NULL, &err));
	OK(salvo_exchange_declare(ch, "salvo.test.x2", "fanout", 0, NULL, &err));
	OK(salvo_exchange_declare(ch, "salvo.test.x1", "direct", SALVO_PASSIVE, NULL, &err));
	OK(salvo_exchange_bind(ch, "salvo.test.x2", "salvo.test.x1", "k", NULL, &err));
	OK(salvo_exchange_unbind(ch, "salvo.test.x2", "salvo.test.x1", "k", NULL, &err));

	/* A server-named queue comes back with its name and counts. */
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE | SALVO_AUTO_DELETE, args, &q, &err));
	CHECK(strncmp(q.name, "amq.gen-", 8) == 0);
	CHECK(q.message_count == 0 && q.consumer_count == 0);
	printf("server-named queue: %s\n", q.name);
	OK(salvo_queue_bind(ch, q.name, "salvo.test.x1", "rk", NULL, &err));
	OK(salvo_queue_unbind(ch, q.name, "salvo.test.x1", "rk", NULL, &err));
	OK(salvo_queue_purge(ch, q.name, &n, &err));
	CHECK(n == 0);
	OK(salvo_basic_qos(ch, 0, 10, false, &err));
	n = 99;
	OK(salvo_queue_delete(ch, q.name, 0, &n, &err));
	CHECK(n == 0);
	OK(salvo_exchange_delete(ch, "salvo.test.x2", 0, &err));
	OK(salvo_exchange_delete(ch, "salvo.test.x1", SALVO_IF_UNUSED, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
	rabbit_close(c, 5000);
}

/* A soft error closes the channel, comes back at once with its details, again on every
 * later call, and at close; the connection and new channels go on. */
static void case_channel_error_404(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch, *ch2;
	salvo_error err;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	rc = salvo_queue_bind(ch, "salvo.no-such-queue", "salvo.no-such-exchange", "", NULL, &err);
	printf("bind to a missing exchange: %d %s (%s)\n", rc, err.text, err.method);
	CHECK(rc == 404 && err.status == 404 && err.reply_code == 404);
	CHECK(err.kind == SALVO_ERROR_CHANNEL);
	CHECK(err.class_id == 50 && err.method_id == 20 && strcmp(err.method, "queue.bind") == 0);
	CHECK(strstr(err.text, "NOT_FOUND") != NULL);

	memset(&err, 0, sizeof err);
	CHECK(salvo_queue_purge(ch, "x", NULL, &err) == 404 && err.kind == SALVO_ERROR_CHANNEL);
	CHECK(salvo_channel_close(ch, &err) == 404);

	OK(salvo_channel_open(c, &ch2, &err));
	OK(salvo_queue_declare(ch2, "", SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_channel_close(ch2, &err));
	rabbit_close(c, 5000);
}

static void case_channel_error_406(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_error err;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "salvo.test.q406", SALVO_AUTO_DELETE, NULL, NULL, &err));
	rc = salvo_queue_declare(ch, "salvo.test.q406", SALVO_DURABLE, NULL, NULL, &err);
	printf("inequivalent declare: %d %s\n", rc, err.text);
	CHECK(rc == 406 && err.kind == SALVO_ERROR_CHANNEL && err.class_id == 50 &&
	      err.method_id == 10);
	salvo_channel_close(ch, NULL);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, "salvo.test.q406", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

#define PRODUCERS 4
#define PER_PRODUCER 250000
#define BODY 100
#define FETCH 5000

struct producer {
	salvo_client *c;
	int index;
	int status;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	salvo_publisher *p;
	salvo_error err;
	uint8_t body[BODY];

	pr->status = salvo_publisher_new(pr->c, NULL, &p, &err);
	if (pr->status)
		return NULL;
	memset(body, 'a' + pr->index, sizeof body);
	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		memcpy(body, &i, sizeof i);
		pr->status = salvo_publish(p, "", "salvo.test.million", body, sizeof body, 0,
					   SALVO_FOREVER, &err);
		if (pr->status)
			break;
	}
	if (pr->status)
		fprintf(stderr, "producer %d: publish: %d %s\n", pr->index, pr->status, err.text);
	int rc = salvo_publisher_close(p, 60000, &err);
	if (rc)
		fprintf(stderr, "producer %d: close: %d %s\n", pr->index, rc, err.text);
	if (!pr->status)
		pr->status = rc;
	return NULL;
}

static void case_publish_million(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct producer pr[PRODUCERS];
	pthread_t t[PRODUCERS];
	salvo_channel *ch;
	salvo_queue_info q = {0};
	salvo_error err;
	double start, sent;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "salvo.test.million", 0, NULL, NULL, &err));
	OK(salvo_queue_purge(ch, "salvo.test.million", NULL, &err));

	start = now_s();
	for (int i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){c, i, 0};
		CHECK(pthread_create(&t[i], NULL, produce, &pr[i]) == 0);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(t[i], NULL);
		CHECK(pr[i].status == 0);
	}
	sent = now_s() - start;
	printf("%d producers x %d messages of %d B handed to the kernel in %.2f s (%.0f msgs/s)\n",
	       PRODUCERS, PER_PRODUCER, BODY, sent, PRODUCERS * PER_PRODUCER / sent);

	/* The broker enqueues asynchronously: wait (bounded) for the count to settle. */
	for (int i = 0; i < 600; i++) {
		OK(salvo_queue_declare(ch, "salvo.test.million", SALVO_PASSIVE, NULL, &q, &err));
		if (q.message_count >= PRODUCERS * PER_PRODUCER)
			break;
		usleep(100000);
	}
	printf("queue holds %u messages after %.2f s\n", q.message_count, now_s() - start);
	CHECK(q.message_count == PRODUCERS * PER_PRODUCER);

	/* Read a sample back: byte for byte, and each producer's messages in its order. */
	uint32_t next[PRODUCERS] = {0};
	for (int i = 0; i < FETCH; i++) {
		salvo_message *m;
		size_t len;
		uint32_t seq;

		OK(salvo_basic_get(ch, "salvo.test.million", true, &m, &err));
		CHECK(m != NULL);
		const uint8_t *b = salvo_message_body(m, &len);
		CHECK(len == BODY);
		int who = b[sizeof seq] - 'a';
		CHECK(who >= 0 && who < PRODUCERS);
		memcpy(&seq, b, sizeof seq);
		CHECK(seq == next[who]);
		next[who]++;
		for (size_t k = sizeof seq; k < BODY; k++)
			CHECK(b[k] == 'a' + who);
		CHECK(strcmp(salvo_message_routing_key(m), "salvo.test.million") == 0);
		CHECK(salvo_message_count(m) == PRODUCERS * PER_PRODUCER - 1 - (uint32_t)i);
		salvo_message_destroy(m);
	}
	printf("%d messages fetched back intact and in per-producer order\n", FETCH);
	OK(salvo_queue_delete(ch, "salvo.test.million", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

/* seed 000: an asynchronous publish error comes back from the next call on the publisher */
static void case_publish_missing_exchange(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;
	int rc = 0;

	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_publish(p, "salvo.no-such-exchange", "status.update", "x", 1, 0, 1000, &err));
	for (int i = 0; i < 500 && rc == 0; i++) {
		usleep(10000);
		rc = salvo_publish(p, "", "salvo.anything", "y", 1, 0, 1000, &err);
	}
	printf("next publish: %d %s\n", rc, err.text);
	CHECK(rc == 404 && err.kind == SALVO_ERROR_CHANNEL && err.class_id == 60 &&
	      err.method_id == 40);
	/* Reported once: the publisher goes on, on a new channel. */
	OK(salvo_publish(p, "", "salvo.anything", "z", 1, 0, 1000, &err));
	OK(salvo_publisher_flush(p, 1000, &err));
	OK(salvo_publisher_close(p, 1000, &err));

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

/* A 1 MiB body crosses the wire as 9 body frames each way and comes back intact. */
static void case_large_body(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	size_t n = 1 << 20, len;
	uint8_t *body = malloc(n);
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;

	CHECK(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (uint8_t)(i * 2654435761u >> 13);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, "salvo.test.large", SALVO_AUTO_DELETE, NULL, NULL, &err));
	OK(salvo_queue_purge(ch, "salvo.test.large", NULL, &err));
	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_publish(p, "", "salvo.test.large", body, n, SALVO_MSG_PERSISTENT, 5000, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	m = NULL;
	for (int i = 0; i < 100 && !m; i++) {
		OK(salvo_basic_get(ch, "salvo.test.large", false, &m, &err));
		if (!m)
			usleep(20000);
	}
	CHECK(m != NULL);
	const void *got = salvo_message_body(m, &len);
	CHECK(len == n && memcmp(got, body, n) == 0);
	OK(salvo_basic_ack(ch, salvo_message_delivery_tag(m), false, &err));
	salvo_message_destroy(m);
	OK(salvo_basic_get(ch, "salvo.test.large", false, &m, &err));
	CHECK(m == NULL); /* acked, and the queue is empty: get-empty is not an error */
	OK(salvo_queue_delete(ch, "salvo.test.large", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	free(body);
	rabbit_close(c, 5000);
	printf("1 MiB body published and fetched back intact\n");
}

static void case_wrong_password(void)
{
	char bad[512], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c = NULL;
	salvo_error err;
	double start = now_s();
	const char *at = strchr(uri, '@');
	int rc;

	CHECK(conf && at);
	snprintf(bad, sizeof bad, "amqp://guest:wrong-secret%s", at);
	CHECK(salvo_conf_set(conf, "uri", bad, errstr, sizeof errstr) == 0);
	rc = salvo_client_new(conf, &c, &err);
	salvo_conf_destroy(conf);
	printf("wrong password: %d %s after %.2f s\n", rc, err.text, now_s() - start);
	CHECK(rc == 403 && err.kind == SALVO_ERROR_CONNECTION && c == NULL);
	CHECK(strstr(err.text, "wrong-secret") == NULL);
	CHECK(now_s() - start < 10);
}

static void case_heartbeat_idle(void)
{
	salvo_client *c = rabbit_connect(uri, "heartbeat", "2", NULL);
	salvo_channel *ch;
	salvo_error err;

	/* Five heartbeat intervals with nothing to say: heartbeats keep it open. */
	sleep(10);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
	printf("idle for 10 s with heartbeat 2 s: still open\n");
}

static pid_t frozen;

static void thaw(void)
{
	if (frozen)
		kill(frozen, SIGCONT);
}

static void case_heartbeat_dead(void)
{
	const char *pid_env = getenv("SALVO_TEST_BROKER_PID");
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	double start, took;
	int rc = 0;

	if (!pid_env) {
		fprintf(stderr, "SALVO_TEST_BROKER_PID not set\n");
		exit(77);
	}
	c = rabbit_connect(uri, "heartbeat", "2", "reconnect", "0", NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	frozen = (pid_t)atoi(pid_env);
	/* kill(0) or kill(-1) would stop this test itself, or everything it may signal. */
	if (frozen <= 1) {
		fprintf(stderr, "SALVO_TEST_BROKER_PID '%s' is not a process id\n", pid_env);
		exit(1);
	}
	atexit(thaw);
	CHECK(kill(frozen, SIGSTOP) == 0);
	start = now_s();
	while (rc == 0 && now_s() - start < 15) {
		usleep(50000);
		rc = salvo_publish(p, "", "salvo.anything", "z", 1, 0, 0, &err);
		if (rc == SALVO_ERR_WOULD_BLOCK)
			rc = 0;
	}
	took = now_s() - start;
	kill(frozen, SIGCONT);
	frozen = 0;
	printf("frozen broker detected after %.2f s: %d %s\n", took, rc, err.text);
	/* The connection timed out; what it closed reports "closed", with the reason. */
	CHECK(rc == SALVO_ERR_CLOSED && err.kind == SALVO_ERROR_CONNECTION);
	CHECK(strstr(err.text, "heartbeat") != NULL);
	/* 2 x heartbeat + 1 s, plus the 50 ms polling above */
	CHECK(took <= 2 * 2 + 1 + 0.1);
	salvo_publisher_close(p, 1000, NULL);
	salvo_client_destroy(c);
}

static const struct test_case cases[] = {
	{"sync methods", .run = case_sync_methods},
	{"channel error 404", .run = case_channel_error_404},
	{"channel error 406", .run = case_channel_error_406},
	{"publish 4x250k", .run = case_publish_million},
	{"publish to missing exchange", .run = case_publish_missing_exchange},
	{"large body", .run = case_large_body},
	{"wrong password", .run = case_wrong_password},
	{"heartbeat idle", .run = case_heartbeat_idle},
	{"heartbeat dead broker", .run = case_heartbeat_dead},
};

int main(int argc, char **argv)
{
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
