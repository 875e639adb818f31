/* SPDX-License-Identifier: MIT */
/*
 * The mistakes a user makes next, against the real RabbitMQ: none may corrupt the
 * connection or hide a loss.
 *   republish from outcome   on_outcome publishes again (on the same publisher) every
 *                            message the broker returned: the connection survives and
 *                            every republished message is acked and queued
 *   shared publisher         two threads publish on one publisher: the second is refused
 *                            with SALVO_ERR_INVALID_STATE before anything reaches the ring,
 *                            the connection survives, and what was accepted is queued
 *   any-thread publish       the same two threads through salvo_publisher_pool_publish
 *   outcome callback limits  inside on_outcome: a second publish finding the window full
 *                            returns WOULD_BLOCK at once; poll, flush, wait and close are
 *                            refused with INVALID_STATE; the publisher goes on
 *   bad arguments            unknown SALVO_MSG_* bits, declare and consume flags a method
 *                            does not take, and timeouts below SALVO_FOREVER are refused
 *                            with INVALID_ARGUMENT before anything is sent
 *   empty vhost hint         a URI ending in '/' (the empty vhost): the 530 says so
 *   seq header               a mandatory message in confirm mode carries x-salvo-seq (a
 *                            consumer sees it); SALVO_PUBLISHER_NO_SEQ_HEADER leaves it out,
 *                            and then returns are counted as unmatched, the messages acked
 *   hard error event         an exchange of type "fanoutt" makes RabbitMQ close the
 *                            connection with 503: not retried, and a supervisor polling
 *                            events learns it (connection lost, then giving up, with 503)
 *   publisher reopens        one publish to a missing exchange: the 404 comes back once,
 *                            then the publisher goes on, on a new channel (best effort,
 *                            async, sync); what the closed channel cost is counted
 *                            (failed, possibly_lost) and matches the queue; with
 *                            SALVO_PUBLISHER_NO_REOPEN every later call returns the 404
 *   reopened then blocked    after a reopening, a memory alarm: a publish that finds the
 *                            ring full still waits (no busy loop) and times out on time
 *                            (runs alone: the alarm blocks every publisher on the broker)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../rabbit.h"

struct republish {
	salvo_publisher *p;
	const char *queue;
	uint64_t returned, acked, other, republish_errors;
	int depth, max_depth;
};

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct republish *r = arg;
	salvo_error err;

	if (++r->depth > r->max_depth)
		r->max_depth = r->depth;
	if (o->kind == SALVO_OUTCOME_RETURNED) {
		r->returned++;
		/* The unroutable message goes again, this time to a queue. */
		salvo_msg m = {"", r->queue, "again", 5, 0, .opaque = NULL};
		int rc = salvo_publish_msg(r->p, &m, 5000, NULL, &err);
		if (rc) {
			fprintf(stderr, "republish: %d %s\n", rc, err.text);
			r->republish_errors++;
		}
	} else if (o->kind == SALVO_OUTCOME_ACKED) {
		r->acked++;
	} else {
		if (!r->other && o->error)
			fprintf(stderr, "outcome %d: %s\n", o->kind, o->error->text);
		r->other++;
	}
	r->depth--;
}

/* n mandatory messages no queue takes: each comes back (basic.return, 312 NO_ROUTE). */
static void publish_unroutable(salvo_publisher *p, int n)
{
	salvo_error err;

	for (int i = 0; i < n; i++) {
		salvo_msg m = {"amq.direct", "salvo.test.misuse.nowhere", "u", 1,
			       SALVO_MSG_MANDATORY, .opaque = NULL};
		OK(salvo_publish_msg(p, &m, 5000, NULL, &err));
	}
}

static void case_republish_from_outcome(void)
{
	enum { N = 5000 };
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	struct republish r = {.queue = "salvo.test.misuse.republish"};
	salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC, .window = 64,
				  .on_outcome = on_outcome, .on_outcome_arg = &r};
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, r.queue, NULL);
	OK(salvo_publisher_new(c, &o, &r.p, &err));
	publish_unroutable(r.p, N);
	/* The worst outcome since the last wait: returns, none nacked or failed. */
	int rc = salvo_publisher_wait_confirms(r.p, 30000, &err);
	printf("wait_confirms: %d (%s), reply %u\n", rc, salvo_err2str(rc), err.reply_code);
	CHECK(rc == SALVO_ERR_RETURNED && err.reply_code == 312);
	printf("returned %llu, republished and acked %llu, other %llu, republish errors %llu, "
	       "callback depth %d\n",
	       (unsigned long long)r.returned, (unsigned long long)r.acked,
	       (unsigned long long)r.other, (unsigned long long)r.republish_errors,
	       r.max_depth);
	CHECK(r.returned == N && r.acked == N && r.other == 0 && r.republish_errors == 0);
	CHECK(channel_queue_count(ch, r.queue) == N);
	OK(salvo_publisher_close(r.p, 5000, &err));
	OK(salvo_queue_delete(ch, r.queue, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

struct sharer {
	salvo_publisher *p;
	salvo_publisher_pool *pool;
	const char *queue;
	int n;
	uint64_t accepted, refused, other;
	char refusal[256];
};

static void *share_thread(void *arg)
{
	struct sharer *s = arg;
	char body[100];

	memset(body, 'x', sizeof body);
	for (int i = 0; i < s->n; i++) {
		salvo_error err;
		salvo_msg m = {"", s->queue, body, sizeof body, 0, .opaque = NULL};
		/* A generous wait for ring room: the broker may stop reading for seconds when
		 * other suites load it (RabbitMQ's flow control); what is tested is that the
		 * threads' messages arrive whole, not how fast. */
		int rc = s->pool ? salvo_publisher_pool_publish(s->pool, &m, 30000, NULL, &err)
				 : salvo_publish_msg(s->p, &m, 30000, NULL, &err);
		if (rc == 0) {
			s->accepted++;
		} else if (rc == SALVO_ERR_INVALID_STATE) {
			if (!s->refused++)
				snprintf(s->refusal, sizeof s->refusal, "%s", err.text);
		} else {
			if (!s->other++)
				fprintf(stderr, "publish: %d %s\n", rc, err.text);
		}
	}
	return NULL;
}

static void run_sharers(bool pool)
{
	enum { THREADS = 2, N = 200000 };
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	const char *q = pool ? "salvo.test.misuse.pool" : "salvo.test.misuse.shared";
	struct sharer s[THREADS];
	pthread_t t[THREADS];
	salvo_publisher *p = NULL;
	salvo_publisher_pool *pp = NULL;
	salvo_channel *ch;
	salvo_error err;
	uint64_t accepted = 0, refused = 0;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	if (pool)
		OK(salvo_publisher_pool_new(c, NULL, &pp, &err));
	else
		OK(salvo_publisher_new(c, NULL, &p, &err));
	for (int i = 0; i < THREADS; i++) {
		s[i] = (struct sharer){.p = p, .pool = pp, .queue = q, .n = N};
		CHECK(pthread_create(&t[i], NULL, share_thread, &s[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		printf("thread %d: accepted %llu, refused %llu, other %llu%s%s\n", i,
		       (unsigned long long)s[i].accepted, (unsigned long long)s[i].refused,
		       (unsigned long long)s[i].other, s[i].refused ? ": " : "", s[i].refusal);
		CHECK(s[i].other == 0);
		accepted += s[i].accepted;
		refused += s[i].refused;
	}
	if (pool) {
		CHECK(refused == 0 && accepted == THREADS * N);
		OK(salvo_publisher_pool_destroy(pp, 10000, &err));
	} else {
		CHECK(accepted + refused == THREADS * N);
		for (int i = 0; i < THREADS; i++)
			if (s[i].refused)
				CHECK(strstr(s[i].refusal, "salvo_publisher_pool") != NULL);
		OK(salvo_publisher_close(p, 10000, &err));
	}
	/* Everything accepted reached the queue: nothing corrupt, nothing lost. */
	double deadline = now_s() + 10;
	uint32_t n;
	while ((n = channel_queue_count(ch, q)) < accepted && now_s() < deadline)
		;
	printf("queue holds %u of %llu accepted\n", n, (unsigned long long)accepted);
	CHECK(n == accepted);
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

static void case_shared_publisher(void)
{
	run_sharers(false);
}

static void case_any_thread_publish(void)
{
	run_sharers(true);
}

struct limits {
	salvo_publisher *p;
	const char *queue;
	int calls, first_ok, second_would_block, refused, returned, acked;
};

static void on_outcome_limits(const salvo_outcome *o, void *arg)
{
	struct limits *l = arg;
	salvo_error err;
	salvo_msg m = {"", l->queue, "x", 1, 0, .opaque = NULL};

	l->calls++;
	if (o->kind == SALVO_OUTCOME_ACKED) {
		l->acked++;
		return;
	}
	CHECK(o->kind == SALVO_OUTCOME_RETURNED);
	l->returned++;
	l->first_ok += salvo_publish_msg(l->p, &m, 1000, NULL, &err) == 0;
	int rc = salvo_publish_msg(l->p, &m, 1000, NULL, &err);
	if (rc == SALVO_ERR_WOULD_BLOCK && strstr(err.text, "on_outcome"))
		l->second_would_block++;
	l->refused += salvo_publisher_poll(l->p, 0, &err) == SALVO_ERR_INVALID_STATE;
	l->refused += salvo_publisher_flush(l->p, 0, &err) == SALVO_ERR_INVALID_STATE;
	l->refused += salvo_publisher_wait_confirms(l->p, 0, &err) == SALVO_ERR_INVALID_STATE;
	l->refused += salvo_publisher_close(l->p, 0, &err) == SALVO_ERR_INVALID_STATE;
	CHECK(strstr(err.text, "inside on_outcome"));
}

static void case_outcome_callback_limits(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	struct limits l = {.queue = "salvo.test.misuse.limits"};
	enum { W = 64 }; /* the smallest window */
	salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC, .window = W,
				  .on_outcome = on_outcome_limits, .on_outcome_arg = &l};
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, l.queue, NULL);
	OK(salvo_publisher_new(c, &o, &l.p, &err));
	publish_unroutable(l.p, W);
	CHECK(salvo_publisher_wait_confirms(l.p, 10000, &err) == SALVO_ERR_RETURNED);
	printf("callbacks %d: returned %d, acked %d; first publish ok %d, second would-block "
	       "%d, refused calls %d\n",
	       l.calls, l.returned, l.acked, l.first_ok, l.second_would_block, l.refused);
	CHECK(l.returned == W && l.first_ok == W && l.second_would_block == W);
	CHECK(l.refused == 4 * W && l.acked == W);
	CHECK(channel_queue_count(ch, l.queue) == W);
	OK(salvo_publisher_close(l.p, 5000, &err));
	OK(salvo_queue_delete(ch, l.queue, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

static void case_bad_arguments(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	const char *q = "salvo.test.misuse.args";
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;
	salvo_msg m = {"", q, "x", 1, 0x4, .opaque = NULL};

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	CHECK(salvo_publish_msg(p, &m, 1000, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	printf("flags 0x4: %s\n", err.text);
	CHECK(strstr(err.text, "0x4"));
	m.flags = 0;
	CHECK(salvo_publish_msg(p, &m, -2, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	printf("timeout -2: %s\n", err.text);
	CHECK(salvo_publisher_flush(p, -5, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_publisher_close(p, -7, &err) == SALVO_ERR_INVALID_ARGUMENT);
	/* 0xffff was a passive declare that failed with 404. */
	CHECK(salvo_queue_declare(ch, "salvo.test.misuse.never", 0xffff, NULL, NULL, &err) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	printf("declare flags 0xffff: %s\n", err.text);
	CHECK(salvo_exchange_declare(ch, "salvo.test.misuse.never", "direct", SALVO_EXCLUSIVE,
				     NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_queue_delete(ch, q, SALVO_DURABLE, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_exchange_delete(ch, "x", SALVO_IF_EMPTY, &err) == SALVO_ERR_INVALID_ARGUMENT);
	salvo_consumer *cons;
	salvo_consumer_opts co = {.flags = 0x100};
	CHECK(salvo_consume(ch, q, &co, &cons, &err) == SALVO_ERR_INVALID_ARGUMENT);
	salvo_event ev;
	CHECK(salvo_client_poll_event(c, &ev, -2) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_client_close(c, -3, &err) == SALVO_ERR_INVALID_ARGUMENT);
	/* Nothing was sent, and the publisher works. */
	OK(salvo_publish_msg(p, &m, SALVO_FOREVER, NULL, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	double deadline = now_s() + 5;
	while (channel_queue_count(ch, q) < 1 && now_s() < deadline)
		;
	CHECK(channel_queue_count(ch, q) == 1);
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

static void case_hard_error_event(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;
	salvo_event ev;
	int rc;

	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_channel_open(c, &ch, &err));
	rc = salvo_exchange_declare(ch, "salvo.test.misuse.typo", "fanoutt", 0, NULL, &err);
	printf("exchange.declare type fanoutt: %d, kind %d: %s\n", rc, err.kind, err.text);
	CHECK(rc == 503 && err.kind == SALVO_ERROR_CONNECTION);
	/* What a supervisor sees. */
	rc = salvo_client_poll_event(c, &ev, 5000);
	printf("first event: rc %d, kind %d, error %d: %s\n", rc, rc ? 0 : ev.kind,
	       rc ? 0 : ev.error.status, rc ? "" : ev.error.text);
	CHECK(rc == 0 && ev.kind == SALVO_EVENT_CONNECTION_LOST && ev.error.status == 503);
	CHECK(salvo_client_poll_event(c, &ev, 5000) == 0);
	printf("second event: kind %d, error %d, reason \"%s\"\n", ev.kind, ev.error.status,
	       ev.reason);
	CHECK(ev.kind == SALVO_EVENT_GIVING_UP && ev.error.status == 503 && ev.reason[0]);
	CHECK(salvo_client_poll_event(c, &ev, 200) == SALVO_ERR_TIMEOUT);
	/* The publisher is dead with the connection's error. */
	rc = salvo_publish(p, "", "q", "x", 1, 0, 1000, &err);
	CHECK(rc == 503);
	salvo_publisher_close(p, 1000, NULL);
	salvo_channel_close(ch, NULL);
	salvo_client_close(c, 1000, NULL);
	salvo_client_destroy(c);
}

static void case_empty_vhost_hint(void)
{
	char uri[512];
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;

	snprintf(uri, sizeof uri, "%s/", rabbit_test_uri());
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_client_new(conf, &c, &err) == 530);
	printf("%s: %s\n", uri, err.text);
	CHECK(strstr(err.text, "a URI ending in '/' names the empty vhost"));
	salvo_conf_destroy(conf);
}

/* Whether the next message of q (basic.get) has an x-salvo-seq header. */
static bool next_has_seq(salvo_channel *ch, const char *q)
{
	salvo_message *m;
	salvo_error err;
	salvo_table_iter it;
	salvo_field f;
	bool found = false;

	OK(salvo_basic_get(ch, q, true, &m, &err));
	CHECK(m);
	salvo_table_iter_init(&it, salvo_message_props(m)->headers);
	while (salvo_table_next(&it, &f) == 1)
		found |= strcmp(f.key, "x-salvo-seq") == 0;
	salvo_message_destroy(m);
	return found;
}

static void case_seq_header(void)
{
	enum { N = 100 };
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	const char *q = "salvo.test.misuse.seq";
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	for (int off = 0; off < 2; off++) {
		salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC,
					  .flags = off ? SALVO_PUBLISHER_NO_SEQ_HEADER : 0};
		salvo_publisher *p;
		salvo_pub_stats st;

		OK(salvo_publisher_new(c, &o, &p, &err));
		salvo_msg routed = {"", q, "r", 1, SALVO_MSG_MANDATORY, .opaque = NULL};
		OK(salvo_publish_msg(p, &routed, 5000, NULL, &err));
		publish_unroutable(p, N);
		int rc = salvo_publisher_wait_confirms(p, 10000, &err);
		salvo_publisher_stats(p, &st);
		bool seq = next_has_seq(ch, q);
		printf("%s: wait %d, acked %llu, returned %llu, returns_unmatched %llu, consumer "
		       "sees x-salvo-seq: %s\n",
		       off ? "NO_SEQ_HEADER" : "default", rc, (unsigned long long)st.acked,
		       (unsigned long long)st.returned, (unsigned long long)st.returns_unmatched,
		       seq ? "yes" : "no");
		if (off)
			CHECK(rc == 0 && st.acked == N + 1 && st.returned == 0 &&
			      st.returns_unmatched == N && !seq);
		else
			CHECK(rc == SALVO_ERR_RETURNED && st.acked == 1 && st.returned == N &&
			      st.returns_unmatched == 0 && seq);
		OK(salvo_publisher_close(p, 5000, &err));
	}
	salvo_publisher_opts bad = {.flags = 0x80};
	salvo_publisher *p;
	CHECK(salvo_publisher_new(c, &bad, &p, &err) == SALVO_ERR_INVALID_ARGUMENT);
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

struct tally_outcomes {
	uint64_t acked, failed, other;
	int failed_status;
};

static void count_outcome(const salvo_outcome *o, void *arg)
{
	struct tally_outcomes *t = arg;

	if (o->kind == SALVO_OUTCOME_ACKED) {
		t->acked++;
	} else if (o->kind == SALVO_OUTCOME_FAILED) {
		t->failed++;
		t->failed_status = o->error->status;
	} else {
		t->other++;
	}
}

/* Publish n to q until a call returns an error (returned); counts the ones accepted. */
static int publish_until_error(salvo_publisher *p, const char *q, int n, uint64_t *accepted,
			       salvo_error *err)
{
	for (int i = 0; i < n; i++) {
		int rc = salvo_publish(p, "", q, "m", 1, 0, 5000, err);
		if (rc)
			return rc;
		(*accepted)++;
	}
	return 0;
}

static void reopen_mode(salvo_client *c, salvo_channel *ch, salvo_confirm_mode mode)
{
	static const char *const names[] = {"best effort", "async", "sync"};
	const char *q = "salvo.test.misuse.reopen";
	struct tally_outcomes t = {0};
	salvo_publisher_opts o = {.confirm = mode,
				  .on_outcome = mode == SALVO_CONFIRM_ASYNC ? count_outcome : NULL,
				  .on_outcome_arg = &t};
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint64_t accepted = 0;
	int rc;

	fresh_queue(ch, q, NULL);
	OK(salvo_publisher_new(c, &o, &p, &err));
	CHECK(publish_until_error(p, q, 1000, &accepted, &err) == 0);
	/* The typo: the broker closes the channel. */
	rc = salvo_publish(p, "salvo.test.no-such-exchange", "k", "x", 1, 0, 5000, &err);
	if (mode == SALVO_CONFIRM_SYNC) {
		CHECK(rc == 404); /* sync learns it at once */
	} else {
		CHECK(rc == 0);
		accepted++;
		/* Until the error comes back: reported once. */
		double deadline = now_s() + 10;
		while ((rc = publish_until_error(p, q, 1, &accepted, &err)) == 0 && now_s() < deadline)
			;
		CHECK(rc == 404);
	}
	printf("%s: the 404 came back after %llu accepted: %s\n", names[mode],
	       (unsigned long long)accepted, err.text);
	/* Then it goes on. */
	CHECK(publish_until_error(p, q, 1000, &accepted, &err) == 0);
	rc = salvo_publisher_wait_confirms(p, 10000, &err);
	salvo_publisher_stats(p, &st);
	OK(salvo_publisher_close(p, 10000, &err));
	uint32_t queued = settled_queue_count(ch, q, 3, 100);
	printf("%s: wait %d; accepted %llu, queued %u, acked %llu, failed %llu, possibly_lost "
	       "%llu; outcomes acked %llu failed %llu (status %d)\n",
	       names[mode], rc, (unsigned long long)accepted, queued, (unsigned long long)st.acked,
	       (unsigned long long)st.failed, (unsigned long long)st.possibly_lost,
	       (unsigned long long)t.acked, (unsigned long long)t.failed, t.failed_status);
	CHECK(queued >= 2000);
	if (mode == SALVO_CONFIRM_NONE) {
		CHECK(accepted - queued <= st.possibly_lost);
	} else {
		/* Every message accounted for: acked ones are queued; failed ones (no confirm
		 * before the channel ended) may or may not be. */
		CHECK(st.acked + st.failed == st.published);
		CHECK(st.acked <= queued && queued <= st.acked + st.failed);
		if (mode == SALVO_CONFIRM_ASYNC)
			CHECK(t.acked == st.acked && t.failed == st.failed && t.failed_status == 404);
	}
}

static void case_publisher_reopens(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_error err;
	salvo_publisher_opts stay = {.flags = SALVO_PUBLISHER_NO_REOPEN};

	OK(salvo_channel_open(c, &ch, &err));
	reopen_mode(c, ch, SALVO_CONFIRM_NONE);
	reopen_mode(c, ch, SALVO_CONFIRM_ASYNC);
	reopen_mode(c, ch, SALVO_CONFIRM_SYNC);
	/* Stays closed when asked to. */
	OK(salvo_publisher_new(c, &stay, &p, &err));
	salvo_publish(p, "salvo.test.no-such-exchange", "k", "x", 1, 0, 5000, &err);
	double deadline = now_s() + 10;
	int rc;
	while ((rc = salvo_publish(p, "", "q", "x", 1, 0, 5000, &err)) == 0 && now_s() < deadline)
		;
	CHECK(rc == 404);
	for (int i = 0; i < 3; i++)
		CHECK(salvo_publish(p, "", "q", "x", 1, 0, 5000, &err) == 404);
	CHECK(salvo_publisher_close(p, 5000, &err) == 404);
	OK(salvo_queue_delete(ch, "salvo.test.misuse.reopen", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

static bool alarm_set;

static void restore_watermark(void)
{
	if (alarm_set)
		(void)!system("bash \"$SALVO_SOURCE_ROOT/scripts/rabbitmq.sh\" ctl -q "
			      "set_vm_memory_high_watermark 0.4 >/dev/null 2>&1");
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void case_reopened_then_blocked(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), "publisher.ring_size", "65536", NULL);
	const char *q = "salvo.test.misuse.blocked";
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_error err;
	char body[1000] = {0};
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_publish(p, "salvo.test.no-such-exchange", "k", "x", 1, 0, 5000, &err));
	double deadline = now_s() + 10;
	while ((rc = salvo_publish(p, "", q, "x", 1, 0, 5000, &err)) == 0 && now_s() < deadline)
		;
	CHECK(rc == 404);
	OK(salvo_publish(p, "", q, "after", 5, 0, 5000, &err)); /* reopened */
	OK(salvo_publisher_flush(p, 5000, &err));

	atexit(restore_watermark);
	alarm_set = true;
	CHECK(system("bash \"$SALVO_SOURCE_ROOT/scripts/rabbitmq.sh\" ctl -q "
		     "set_vm_memory_high_watermark absolute 1 >/dev/null") == 0);
	/* Fill the ring (64 KiB) and the socket; then a publish must wait and time out. */
	double t0 = now_s(), cpu0 = 0, took = 0;
	for (;;) {
		double t = now_s();
		cpu0 = cpu_now();
		rc = salvo_publish(p, "", q, body, sizeof body, 0, 300, &err);
		took = now_s() - t;
		if (rc)
			break;
		CHECK(now_s() - t0 < 30);
	}
	double cpu = cpu_now() - cpu0;
	printf("blocked publish: %d (%s) after %.0f ms, %.0f ms of CPU\n", rc, err.text,
	       took * 1000, cpu * 1000);
	CHECK(rc == SALVO_ERR_TIMEOUT);
	CHECK(took < 2.0 && cpu < 0.5 * took); /* waited, did not spin */
	restore_watermark();
	alarm_set = false;
	OK(salvo_publisher_close(p, 30000, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

static const struct test_case cases[] = {
	{"republish from outcome", .run = case_republish_from_outcome},
	{"shared publisher", .run = case_shared_publisher},
	{"any-thread publish", .run = case_any_thread_publish},
	{"outcome callback limits", .run = case_outcome_callback_limits},
	{"bad arguments", .run = case_bad_arguments},
	{"hard error event", .run = case_hard_error_event},
	{"empty vhost hint", .run = case_empty_vhost_hint},
	{"seq header", .run = case_seq_header},
	{"publisher reopens", .run = case_publisher_reopens},
	{"reopened then blocked", .run = case_reopened_then_blocked},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
