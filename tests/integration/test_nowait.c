/* SPDX-License-Identifier: MIT */
/*
 * Nowait methods and basic.recover-async against RabbitMQ (issue 17, part 5). Each nowait
 * call's effect is checked through a later waited call on the same channel (the broker
 * handles a channel's methods in order): a passive declare, a publish and basic.get
 * through a binding, a mandatory publish that comes back once a binding is gone. A
 * refusal surfaces on the next call with the broker's code and text; an error midway
 * through a bulk leaves what came before it and nothing after; 10,000 bindings are all
 * listed by rabbitmqctl; recover-async redelivers a consumer's unacked messages.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../rabbit.h"

static const char *uri;

/* A passive declare of queue q on ch: 0, or the broker's error in *err. */
static int queue_exists(salvo_channel *ch, const char *q, salvo_error *err)
{
	return salvo_queue_declare(ch, q, SALVO_PASSIVE, NULL, NULL, err);
}

static int exchange_exists(salvo_channel *ch, const char *x, salvo_error *err)
{
	return salvo_exchange_declare(ch, x, "direct", SALVO_PASSIVE, NULL, err);
}

/* The broker's 404 on ch's passive declare of what should be gone, then a new channel. */
static void check_gone(salvo_client *c, salvo_channel **ch, int rc, const salvo_error *why,
		       const char *name)
{
	salvo_error err;

	CHECK(rc == 404);
	CHECK(why->kind == SALVO_ERROR_CHANNEL && why->reply_code == 404);
	CHECK(strstr(why->text, name) != NULL);
	CHECK(salvo_channel_close(*ch, &err) == 404);
	OK(salvo_channel_open(c, ch, &err));
}

/* Each of the four nowait declares and deletes takes effect. */
static void case_declare_delete(void)
{
	const char *x = "salvo.test.nowait.x", *q = "salvo.test.nowait.q";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));

	OK(salvo_exchange_declare(ch, x, "direct", SALVO_NOWAIT, NULL, &err));
	OK(salvo_queue_declare(ch, q, SALVO_NOWAIT, NULL, NULL, &err));
	OK(exchange_exists(ch, x, &err));
	OK(queue_exists(ch, q, &err));

	OK(salvo_queue_delete(ch, q, SALVO_NOWAIT, NULL, &err));
	check_gone(c, &ch, queue_exists(ch, q, &err), &err, q);
	OK(salvo_exchange_delete(ch, x, SALVO_NOWAIT, &err));
	check_gone(c, &ch, exchange_exists(ch, x, &err), &err, x);

	/* With the other flags: a durable queue declared nowait is durable (a passive
	 * declare does not say, but a non-durable redeclare is refused with 406). */
	OK(salvo_queue_declare(ch, q, SALVO_NOWAIT | SALVO_DURABLE, NULL, NULL, &err));
	CHECK(salvo_queue_declare(ch, q, 0, NULL, NULL, &err) == 406);
	CHECK(strstr(err.text, "durable") != NULL);
	salvo_channel_close(ch, NULL);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, q, SALVO_NOWAIT | SALVO_IF_EMPTY, NULL, &err));
	check_gone(c, &ch, queue_exists(ch, q, &err), &err, q);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* Publish body to exchange x with key, mandatory, confirmed: 0, or SALVO_ERR_RETURNED. */
static int publish_mandatory(salvo_publisher *p, const char *x, const char *key,
			     const char *body)
{
	salvo_error err;

	return salvo_publish(p, x, key, body, strlen(body), SALVO_MSG_MANDATORY, 10000, &err);
}

/* The next message of q, which must be there and hold body. */
static void get_body(salvo_channel *ch, const char *q, const char *body)
{
	salvo_message *m;
	salvo_error err;
	size_t len;
	const char *b;

	OK(salvo_basic_get(ch, q, true, &m, &err));
	CHECK(m != NULL);
	b = salvo_message_body(m, &len);
	CHECK(len == strlen(body) && memcmp(b, body, len) == 0);
	salvo_message_destroy(m);
}

/* queue.bind, exchange.bind and exchange.unbind nowait: routed through, then not. */
static void case_bind_unbind(void)
{
	const char *x = "salvo.test.nowait.src", *x2 = "salvo.test.nowait.dst";
	const char *q = "salvo.test.nowait.bound";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_publisher_new(c, &opts, &p, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_exchange_delete(ch, x2, 0, &err));
	OK(salvo_exchange_declare(ch, x, "direct", 0, NULL, &err));
	OK(salvo_exchange_declare(ch, x2, "direct", 0, NULL, &err));
	fresh_queue(ch, q, NULL);
	CHECK(publish_mandatory(p, x, "k", "before") == SALVO_ERR_RETURNED);

	/* q bound to x by k: a message to x with k reaches q. The passive declare after it
	 * on the same channel is the broker's word that the bind is done. */
	OK(salvo_queue_bind_nowait(ch, q, x, "k", NULL, &err));
	OK(queue_exists(ch, q, &err));
	OK(publish_mandatory(p, x, "k", "direct"));
	get_body(ch, q, "direct");

	/* x2 bound to x by e, q to x2 by e (waited): x -> x2 -> q. */
	OK(salvo_queue_bind(ch, q, x2, "e", NULL, &err));
	CHECK(publish_mandatory(p, x, "e", "none") == SALVO_ERR_RETURNED);
	OK(salvo_exchange_bind_nowait(ch, x2, x, "e", NULL, &err));
	OK(queue_exists(ch, q, &err));
	OK(publish_mandatory(p, x, "e", "through"));
	get_body(ch, q, "through");

	/* Unbound nowait: unroutable again, returned. */
	OK(salvo_exchange_unbind_nowait(ch, x2, x, "e", NULL, &err));
	OK(queue_exists(ch, q, &err));
	CHECK(publish_mandatory(p, x, "e", "after") == SALVO_ERR_RETURNED);
	CHECK(channel_queue_count(ch, q) == 0);

	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_exchange_delete(ch, x2, 0, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* A nowait declare the broker refuses: the next call on the channel returns the 406 with
 * the broker's text, and so does every one after it, nowait or not. */
static void case_error_next_call(void)
{
	const char *x = "salvo.test.nowait.typed";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_error err, again;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_declare(ch, x, "direct", 0, NULL, &err));
	OK(salvo_exchange_declare(ch, x, "fanout", SALVO_NOWAIT, NULL, &err));
	rc = salvo_basic_qos(ch, 0, 10, false, &err);
	CHECK(rc == 406);
	CHECK(err.status == 406 && err.kind == SALVO_ERROR_CHANNEL && err.reply_code == 406);
	CHECK(err.class_id == 40 && err.method_id == 10); /* exchange.declare */
	CHECK(strstr(err.text, "PRECONDITION_FAILED") != NULL);
	CHECK(strstr(err.text, "inequivalent arg 'type'") != NULL);
	CHECK(strstr(err.text, x) != NULL);
	CHECK(salvo_queue_bind_nowait(ch, "q", x, "k", NULL, &again) == 406);
	CHECK(strcmp(again.text, err.text) == 0);
	CHECK(salvo_exchange_declare(ch, x, "direct", SALVO_NOWAIT, NULL, &again) == 406);
	CHECK(salvo_channel_close(ch, &again) == 406);

	/* The connection and its other channels go on. */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* Refused before anything is sent: the channel goes on. */
static void case_refusals(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_queue_info info;
	salvo_channel *ch;
	salvo_error err;
	uint32_t n;

	OK(salvo_channel_open(c, &ch, &err));
	CHECK(salvo_queue_declare(ch, "", SALVO_NOWAIT, NULL, NULL, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(err.kind == SALVO_ERROR_LOCAL && strstr(err.text, "SALVO_NOWAIT with queue \"\""));
	CHECK(salvo_queue_declare(ch, "salvo.test.nowait.info", SALVO_NOWAIT, NULL, &info,
				  &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "takes no info") != NULL);
	CHECK(salvo_queue_delete(ch, "salvo.test.nowait.info", SALVO_NOWAIT, &n, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "takes no message_count") != NULL);
	CHECK(salvo_exchange_declare(ch, "x", "direct", SALVO_NOWAIT | 0x100u, NULL, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_exchange_delete(ch, "x", SALVO_IF_EMPTY | SALVO_NOWAIT, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_queue_bind_nowait(NULL, "q", "x", "k", NULL, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_exchange_bind_nowait(ch, NULL, "x", "k", NULL, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_basic_recover_async(NULL, true, &err) == SALVO_ERR_INVALID_ARGUMENT);
	/* Nothing reached the broker: the channel is open, a server-named queue still works. */
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &info, &err));
	CHECK(strncmp(info.name, "amq.gen-", 8) == 0);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* rabbitmqctl list_bindings: how many bindings from x to q have a key "k<i>" with i below
 * n, each counted once. */
static unsigned listed_bindings(const char *x, const char *q, unsigned n)
{
	char cmd[1024], line[1024], src[300], dst[300], key[300];
	unsigned char *seen = calloc(n, 1);
	unsigned found = 0;
	FILE *f;

	CHECK(seen);
	snprintf(cmd, sizeof cmd,
		 "bash '%s/scripts/rabbitmq.sh' ctl -q list_bindings source_name "
		 "destination_name routing_key",
		 getenv("SALVO_SOURCE_ROOT"));
	f = popen(cmd, "r");
	CHECK(f);
	while (fgets(line, sizeof line, f)) {
		char *end;
		unsigned long i;

		if (sscanf(line, "%299[^\t]\t%299[^\t]\t%299[^\t\n]", src, dst, key) != 3 ||
		    strcmp(src, x) || strcmp(dst, q) || key[0] != 'k')
			continue;
		i = strtoul(key + 1, &end, 10);
		if (*end == '\0' && i < n && !seen[i]) {
			seen[i] = 1;
			found++;
		}
	}
	CHECK(pclose(f) == 0);
	free(seen);
	return found;
}

#define BULK 10000u

/* 10,000 nowait binds on one channel: every one listed by rabbitmqctl afterwards; the
 * client's peak RSS grows by little (no frame or request piles up; not checked under the
 * sanitizers: rss_checked()). */
static void case_bulk_10k(void)
{
	const char *x = "salvo.test.nowait.bulk", *q = "salvo.test.nowait.bulkq";
	salvo_client *c;
	salvo_channel *ch;
	salvo_error err;
	char key[16];
	long rss0, rss1;
	double t0, t1;

	rabbit_need_ctl(uri);
	/* Recorded for topology recovery as they go (the default), with room for them. */
	c = rabbit_connect(uri, "topology_recovery.max_entities", "20000", NULL);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_exchange_declare(ch, x, "direct", 0, NULL, &err));
	fresh_queue(ch, q, NULL);
	/* Warm up the allocator and the buffers first, so the peak measures the bulk. */
	for (unsigned i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "k%u", i);
		OK(salvo_queue_bind_nowait(ch, q, x, key, NULL, &err));
	}
	OK(queue_exists(ch, q, &err));
	rss0 = peak_rss_kib();
	t0 = now_s();
	for (unsigned i = 0; i < BULK; i++) {
		snprintf(key, sizeof key, "k%u", i);
		OK(salvo_queue_bind_nowait(ch, q, x, key, NULL, &err));
	}
	t1 = now_s();
	OK(queue_exists(ch, q, &err));
	rss1 = peak_rss_kib();
	printf("%u nowait binds: sent in %.3f s, done at the broker in %.3f s; peak RSS %ld KiB "
	       "before, %ld KiB after\n",
	       BULK, t1 - t0, now_s() - t0, rss0, rss1);
	CHECK(!rss_checked() || rss1 - rss0 < 4096);
	CHECK(listed_bindings(x, q, BULK) == BULK);
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* A bind to a missing queue in the middle of 2,000: the bulk ends with its 404, those
 * before it are bound, none of those after it. */
static void case_bulk_error(void)
{
	const char *x = "salvo.test.nowait.bulkerr", *q = "salvo.test.nowait.bulkerrq";
	const char *missing = "salvo.test.nowait.missing";
	const unsigned n = 2000, bad = 1000;
	salvo_client *c;
	salvo_channel *ch;
	salvo_error err;
	unsigned i;
	char key[16];
	int rc = 0;

	rabbit_need_ctl(uri);
	c = rabbit_connect(uri, NULL);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_queue_delete(ch, missing, 0, NULL, &err));
	OK(salvo_exchange_declare(ch, x, "direct", 0, NULL, &err));
	fresh_queue(ch, q, NULL);
	for (i = 0; i < n && rc == 0; i++) {
		snprintf(key, sizeof key, "k%u", i);
		rc = salvo_queue_bind_nowait(ch, i == bad ? missing : q, x, key, NULL, &err);
	}
	/* The refusal returned by a call after the bad one, or by the waited call below. */
	printf("the 404 came back from call %u of %u\n", rc ? i : n + 1, n);
	CHECK(rc == 0 || i > bad + 1);
	if (rc == 0)
		rc = queue_exists(ch, q, &err);
	CHECK(rc == 404 && err.kind == SALVO_ERROR_CHANNEL);
	CHECK(err.class_id == 50 && err.method_id == 20); /* queue.bind */
	CHECK(strstr(err.text, "NOT_FOUND") && strstr(err.text, missing));
	CHECK(salvo_channel_close(ch, NULL) == 404);

	CHECK(listed_bindings(x, q, bad) == bad);
	CHECK(listed_bindings(x, q, n) == bad);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* basic.recover-async on a consumer's channel: its unacked messages come again,
 * redelivered; then requeue false, which RabbitMQ does not implement (540). */
static void case_recover_async(void)
{
	const char *q = "salvo.test.nowait.recover";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_consumer *cons;
	salvo_message *m;
	salvo_error err;
	uint32_t seen = 0;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	rabbit_publish_n(c, q, 0, 5);
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	for (int i = 0; i < 5; i++) {
		OK(salvo_consumer_get(cons, 5000, &m, &err));
		CHECK(rabbit_body_seq(m) == (uint32_t)i && !salvo_message_redelivered(m));
		/* 0 and 1 acked; 2, 3 and 4 left unacked for the recover. */
		if (i < 2)
			OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
	}
	OK(salvo_basic_recover_async(ch, true, &err));
	for (int i = 0; i < 3; i++) {
		OK(salvo_consumer_get(cons, 5000, &m, &err));
		CHECK(salvo_message_redelivered(m));
		seen |= 1u << rabbit_body_seq(m);
		OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
	}
	CHECK(seen == ((1u << 2) | (1u << 3) | (1u << 4)));
	/* Nothing more: 0 and 1 stayed acked. */
	CHECK(salvo_consumer_get(cons, 300, &m, &err) == SALVO_ERR_TIMEOUT);
	OK(salvo_consumer_cancel(cons, &err));
	salvo_consumer_destroy(cons);
	CHECK(channel_queue_count(ch, q) == 0);
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);

	c = rabbit_connect(uri, "reconnect", "0", NULL);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_recover_async(ch, false, &err));
	CHECK(salvo_basic_qos(ch, 0, 1, false, &err) == 540);
	CHECK(err.kind == SALVO_ERROR_CONNECTION && strstr(err.text, "NOT_IMPLEMENTED"));
	salvo_channel_close(ch, NULL);
	salvo_client_destroy(c);
}

static const struct test_case cases[] = {
    {"declare delete", .run = case_declare_delete},
    {"bind unbind", .run = case_bind_unbind},
    {"error next call", .run = case_error_next_call},
    {"refusals", .run = case_refusals},
    {"bulk 10k", .run = case_bulk_10k},
    {"bulk error", .run = case_bulk_error},
    {"recover async", .run = case_recover_async},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
