/* SPDX-License-Identifier: MIT */
/*
 * Publisher confirms against a real RabbitMQ: a million async messages all acked, sixteen
 * sync publishers pipelining, nacks from a queue that rejects overflow, returns matched to
 * their messages, every pending message failing when the channel dies, the 406 for
 * confirm.select on a transactional channel, the publisher pool, and the counters.
 *
 * argv[1] names the case. Needs SALVO_TEST_URI (skips with 77 without it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

static const char *uri;

static void print_stats(const char *what, const salvo_pub_stats *st)
{
	printf("%s: published %llu acked %llu nacked %llu returned %llu failed %llu in flight "
	       "%llu; latency p50 %.0f us p99 %.0f us max %.0f us (%llu samples)\n",
	       what, (unsigned long long)st->published, (unsigned long long)st->acked,
	       (unsigned long long)st->nacked, (unsigned long long)st->returned,
	       (unsigned long long)st->failed, (unsigned long long)st->in_flight,
	       salvo_stats_latency_ns(st, 0.5) / 1e3, salvo_stats_latency_ns(st, 0.99) / 1e3,
	       st->latency_max_ns / 1e3, (unsigned long long)st->latency_count);
}

/* Outcomes as the callback saw them. */
struct tally {
	uint64_t next_seq; /* the seq the next outcome must carry */
	uint64_t n[4];	   /* by salvo_outcome_kind */
	uint8_t *kind_of;  /* by opaque index, when the case wants per-message checks */
	size_t cap;
	uint16_t last_reply_code;
	char last_rk[256];
	int last_error_status;
};

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct tally *t = arg;
	size_t idx = (size_t)(uintptr_t)o->opaque;

	/* Exactly one outcome per message, in sequence order. */
	CHECK(o->seq == t->next_seq);
	t->next_seq++;
	CHECK(o->kind <= SALVO_OUTCOME_FAILED);
	t->n[o->kind]++;
	if (t->kind_of) {
		CHECK(idx < t->cap && t->kind_of[idx] == 0xff);
		t->kind_of[idx] = (uint8_t)o->kind;
	}
	if (o->kind == SALVO_OUTCOME_RETURNED) {
		CHECK(o->exchange && o->routing_key && o->error);
		t->last_reply_code = o->reply_code;
		snprintf(t->last_rk, sizeof t->last_rk, "%s", o->routing_key);
	} else {
		CHECK(!o->exchange && !o->routing_key);
	}
	if (o->kind == SALVO_OUTCOME_FAILED) {
		CHECK(o->error);
		t->last_error_status = o->error->status;
	}
}

static salvo_publisher *new_publisher(salvo_client *c, salvo_confirm_mode mode, size_t window,
				      struct tally *t)
{
	salvo_publisher_opts opts = {.confirm = mode, .window = window};
	salvo_publisher *p;
	salvo_error err;

	if (t) {
		opts.on_outcome = on_outcome;
		opts.on_outcome_arg = t;
		t->next_seq = 1;
	}
	OK(salvo_publisher_new(c, &opts, &p, &err));
	return p;
}

#define MILLION 1000000

static void case_async_million(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct tally t = {0};
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t body[100];
	double t0, secs;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, "salvo.test.confirm.million", NULL);
	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 1000, &t);
	memset(body, 'm', sizeof body);
	t0 = now_s();
	for (uint32_t i = 0; i < MILLION; i++) {
		uint64_t seq = 0;
		salvo_msg m = {"", "salvo.test.confirm.million", body, sizeof body, 0,
			       .opaque = (void *)(uintptr_t)i};

		memcpy(body, &i, sizeof i);
		OK(salvo_publish_msg(p, &m, 30000, &seq, &err));
		CHECK(seq == (uint64_t)i + 1);
	}
	OK(salvo_publisher_wait_confirms(p, 120000, &err));
	secs = now_s() - t0;
	salvo_publisher_stats(p, &st);
	print_stats("async 1M", &st);
	printf("async 1M: %.1f s, %.0f msgs/s\n", secs, MILLION / secs);
	CHECK(t.n[SALVO_OUTCOME_ACKED] == MILLION && t.next_seq == MILLION + 1);
	CHECK(st.published == MILLION && st.acked == MILLION && st.nacked == 0 &&
	      st.failed == 0 && st.returned == 0 && st.in_flight == 0);
	CHECK(st.latency_count == MILLION / 16);
	CHECK(channel_queue_count(ch, "salvo.test.confirm.million") == MILLION);
	OK(salvo_publisher_close(p, 10000, &err));
	OK(salvo_queue_delete(ch, "salvo.test.confirm.million", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

#define SYNC_THREADS 16
#define SYNC_EACH 20000

struct sync_producer {
	salvo_client *c;
	int index, status;
	uint64_t acked;
	salvo_error err;
};

static void *sync_produce(void *arg)
{
	struct sync_producer *sp = arg;
	salvo_publisher *p;
	uint8_t body[100];

	sp->status = salvo_publisher_new(sp->c, &(salvo_publisher_opts){.confirm = SALVO_CONFIRM_SYNC},
					 &p, &sp->err);
	if (sp->status)
		return NULL;
	memset(body, 's', sizeof body);
	for (uint32_t i = 0; i < SYNC_EACH; i++) {
		memcpy(body, &i, sizeof i);
		sp->status = salvo_publish(p, "", "salvo.test.confirm.sync", body, sizeof body, 0,
					   30000, &sp->err);
		if (sp->status)
			break;
		sp->acked++;
	}
	int rc = salvo_publisher_close(p, 10000, sp->status ? NULL : &sp->err);
	if (!sp->status)
		sp->status = rc;
	return NULL;
}

static void case_sync_16(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct sync_producer sp[SYNC_THREADS];
	pthread_t th[SYNC_THREADS];
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	uint64_t acked = 0;
	double t0, secs;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, "salvo.test.confirm.sync", NULL);
	t0 = now_s();
	for (int i = 0; i < SYNC_THREADS; i++) {
		sp[i] = (struct sync_producer){.c = c, .index = i};
		CHECK(pthread_create(&th[i], NULL, sync_produce, &sp[i]) == 0);
	}
	for (int i = 0; i < SYNC_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (sp[i].status)
			fprintf(stderr, "producer %d: %d %s\n", i, sp[i].status, sp[i].err.text);
		CHECK(sp[i].status == 0 && sp[i].acked == SYNC_EACH);
		acked += sp[i].acked;
	}
	secs = now_s() - t0;
	salvo_client_stats(c, &st);
	print_stats("sync 16x20k", &st);
	printf("sync 16x20k: %.1f s, %.0f msgs/s\n", secs, acked / secs);
	CHECK(st.published == SYNC_THREADS * SYNC_EACH && st.acked == st.published &&
	      st.nacked == 0 && st.failed == 0 && st.in_flight == 0);
	/* Every sync publish is timed. */
	CHECK(st.latency_count == st.published);
	CHECK(salvo_stats_latency_ns(&st, 0.5) <= salvo_stats_latency_ns(&st, 0.99) &&
	      salvo_stats_latency_ns(&st, 0.99) <= st.latency_max_ns && st.latency_max_ns > 0);
	CHECK(channel_queue_count(ch, "salvo.test.confirm.sync") == SYNC_THREADS * SYNC_EACH);
	OK(salvo_queue_delete(ch, "salvo.test.confirm.sync", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* A queue holding at most 1000 that rejects the rest: 1000 acks, then nacks. */
static void case_reject_publish(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_table *args = salvo_table_new();
	struct tally t = {0};
	salvo_publisher *p, *sp;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	int rc;

	CHECK(args && salvo_table_add_int(args, "x-max-length", 1000) == 0 &&
	      salvo_table_add_string(args, "x-overflow", "reject-publish") == 0);
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, "salvo.test.confirm.reject", args);
	t.cap = 5000;
	t.kind_of = malloc(t.cap);
	CHECK(t.kind_of);
	memset(t.kind_of, 0xff, t.cap);
	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 8192, &t);
	for (size_t i = 0; i < 5000; i++) {
		salvo_msg m = {"", "salvo.test.confirm.reject", "r", 1, 0, .opaque = (void *)(uintptr_t)i};
		OK(salvo_publish_msg(p, &m, 10000, NULL, &err));
	}
	rc = salvo_publisher_wait_confirms(p, 30000, &err);
	printf("wait_confirms: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_NACKED);
	salvo_publisher_stats(p, &st);
	print_stats("reject-publish", &st);
	CHECK(t.n[SALVO_OUTCOME_ACKED] == 1000 && t.n[SALVO_OUTCOME_NACKED] == 4000);
	CHECK(st.acked == 1000 && st.nacked == 4000 && st.in_flight == 0);
	/* The queue takes messages in order: the first 1000 are the acked ones. */
	for (size_t i = 0; i < 5000; i++)
		CHECK(t.kind_of[i] == (i < 1000 ? SALVO_OUTCOME_ACKED : SALVO_OUTCOME_NACKED));
	CHECK(channel_queue_count(ch, "salvo.test.confirm.reject") == 1000);
	OK(salvo_publisher_close(p, 10000, &err));

	/* The same in sync mode: the full queue nacks each publish. */
	sp = new_publisher(c, SALVO_CONFIRM_SYNC, 0, NULL);
	rc = salvo_publish(sp, "", "salvo.test.confirm.reject", "s", 1, 0, 10000, &err);
	printf("sync publish to a full queue: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_NACKED);
	OK(salvo_publisher_close(sp, 10000, &err));
	OK(salvo_queue_delete(ch, "salvo.test.confirm.reject", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
	free(t.kind_of);
	rabbit_close(c, 10000);
}

/* Mandatory publishes, routable and not, interleaved: each return names its message. */
static void case_mandatory_returned(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct tally t = {0};
	salvo_publisher *p, *sp;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, "salvo.test.confirm.routed", NULL);
	t.cap = 300;
	t.kind_of = malloc(t.cap);
	CHECK(t.kind_of);
	memset(t.kind_of, 0xff, t.cap);
	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 0, &t);
	for (size_t i = 0; i < t.cap; i++) {
		/* every third one goes nowhere */
		bool lost = i % 3 == 1;
		salvo_msg m = {"", lost ? "salvo.test.nowhere" : "salvo.test.confirm.routed", "x", 1,
			       SALVO_MSG_MANDATORY, .opaque = (void *)(uintptr_t)i};
		OK(salvo_publish_msg(p, &m, 10000, NULL, &err));
	}
	/* Returned, none nacked: the wait says so. */
	rc = salvo_publisher_wait_confirms(p, 30000, &err);
	CHECK(rc == SALVO_ERR_RETURNED && err.reply_code == 312);
	salvo_publisher_stats(p, &st);
	print_stats("mandatory", &st);
	for (size_t i = 0; i < t.cap; i++)
		CHECK(t.kind_of[i] == (i % 3 == 1 ? SALVO_OUTCOME_RETURNED : SALVO_OUTCOME_ACKED));
	CHECK(t.last_reply_code == 312 && strcmp(t.last_rk, "salvo.test.nowhere") == 0);
	CHECK(st.returned == 100 && st.acked == 200 && st.in_flight == 0);
	CHECK(channel_queue_count(ch, "salvo.test.confirm.routed") == 200);
	OK(salvo_publisher_close(p, 10000, &err));

	/* Sync: the publish itself reports the return. */
	sp = new_publisher(c, SALVO_CONFIRM_SYNC, 0, NULL);
	memset(&err, 0, sizeof err);
	rc = salvo_publish(sp, "amq.direct", "salvo.test.unbound", "u", 1, SALVO_MSG_MANDATORY,
			   10000, &err);
	printf("sync mandatory to an unbound key: %d (%s) reply_code %u\n", rc, err.text,
	       err.reply_code);
	CHECK(rc == SALVO_ERR_RETURNED && err.reply_code == 312);
	CHECK(strstr(err.text, "amq.direct") && strstr(err.text, "salvo.test.unbound") &&
	      strstr(err.text, "NO_ROUTE"));
	/* Not mandatory: unroutable is simply acked. */
	OK(salvo_publish(sp, "amq.direct", "salvo.test.unbound", "u", 1, 0, 10000, &err));
	OK(salvo_publisher_close(sp, 10000, &err));
	OK(salvo_queue_delete(ch, "salvo.test.confirm.routed", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	free(t.kind_of);
	rabbit_close(c, 10000);
}

/* The broker closes the channel with 404: every message awaiting its confirm fails with
 * that error, and the counters account for every one published. */
static void case_missing_exchange(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	struct tally t = {0};
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint64_t published = 0;
	int rc = 0;

	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 0, &t);
	for (int i = 0; i < 2000; i++) {
		rc = salvo_publish(p, "salvo.test.no-such-exchange", "k", "x", 1, 0, 10000, &err);
		if (rc)
			break;
		published++;
	}
	printf("published %llu before the channel closed (%d)\n", (unsigned long long)published,
	       rc);
	CHECK(rc == 0 || rc == 404);
	rc = salvo_publisher_wait_confirms(p, 30000, &err);
	printf("wait_confirms: %d (%s)\n", rc, err.text);
	CHECK(rc == 404 && err.kind == SALVO_ERROR_CHANNEL);
	salvo_publisher_stats(p, &st);
	print_stats("missing exchange", &st);
	CHECK(st.published == published && published >= 1);
	CHECK(t.n[SALVO_OUTCOME_FAILED] == st.failed && st.failed >= 1);
	CHECK(t.next_seq == published + 1);
	CHECK(st.acked + st.nacked + st.failed == published && st.in_flight == 0);
	CHECK(t.last_error_status == 404);
	/* Reported once (by the publish or the wait): the publisher goes on. */
	OK(salvo_publish(p, "", "k", "x", 1, 0, 1000, &err));
	OK(salvo_publisher_close(p, 10000, &err));
	rabbit_close(c, 10000);
}

static void case_tx_then_confirm(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_channel *ch;
	salvo_error err;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_tx_select(ch, &err));
	rc = salvo_confirm_select(ch, &err);
	printf("confirm.select on a tx channel: %d (%s)\n", rc, err.text);
	CHECK(rc == 406 && err.kind == SALVO_ERROR_CHANNEL && strstr(err.method, "confirm.select"));
	salvo_channel_close(ch, NULL);
	/* And the other way round. */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_confirm_select(ch, &err));
	CHECK(salvo_tx_select(ch, &err) == 406);
	salvo_channel_close(ch, NULL);
	rabbit_close(c, 10000);
}

#define POOL_THREADS 4

struct pool_worker {
	salvo_publisher_pool *pool;
	pthread_barrier_t *together; /* NULL: alone */
	salvo_publisher *first;
	int status;
};

static void *pool_work(void *arg)
{
	struct pool_worker *w = arg;
	salvo_error err;

	/* Every thread holds its publisher before any exits: none can be reused. */
	w->status = salvo_publisher_pool_get(w->pool, &w->first, &err);
	if (w->together)
		pthread_barrier_wait(w->together);

	for (int i = 0; i < 500 && !w->status; i++) {
		salvo_publisher *p;

		w->status = salvo_publisher_pool_get(w->pool, &p, &err);
		if (w->status)
			break;
		if (!w->first)
			w->first = p;
		CHECK(p == w->first); /* the same publisher for the same thread */
		w->status = salvo_publish(p, "", "salvo.test.confirm.pool", "p", 1, 0, 10000, &err);
	}
	return NULL;
}

static void case_pool(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	struct pool_worker w[POOL_THREADS];
	pthread_t th[POOL_THREADS];
	salvo_publisher_pool *pool;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, "salvo.test.confirm.pool", NULL);
	OK(salvo_publisher_pool_new(c, &opts, &pool, &err));
	pthread_barrier_t together;
	CHECK(pthread_barrier_init(&together, NULL, POOL_THREADS) == 0);
	for (int i = 0; i < POOL_THREADS; i++) {
		w[i] = (struct pool_worker){.pool = pool, .together = &together};
		CHECK(pthread_create(&th[i], NULL, pool_work, &w[i]) == 0);
	}
	for (int i = 0; i < POOL_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].status == 0 && w[i].first);
	}
	pthread_barrier_destroy(&together);
	/* Threads that ran at once had publishers of their own. */
	for (int i = 0; i < POOL_THREADS; i++)
		for (int j = i + 1; j < POOL_THREADS; j++)
			CHECK(w[i].first != w[j].first);
	/* A new thread reuses a publisher an exited thread left. */
	struct pool_worker again = {.pool = pool};
	CHECK(pthread_create(&th[0], NULL, pool_work, &again) == 0);
	pthread_join(th[0], NULL);
	CHECK(again.status == 0);
	bool reused = false;
	for (int i = 0; i < POOL_THREADS; i++)
		reused |= again.first == w[i].first;
	CHECK(reused);
	OK(salvo_publisher_pool_destroy(pool, 10000, &err));
	salvo_client_stats(c, &st);
	print_stats("pool", &st);
	CHECK(st.published == (POOL_THREADS + 1) * 500 && st.acked == st.published);
	CHECK(channel_queue_count(ch, "salvo.test.confirm.pool") == (POOL_THREADS + 1) * 500);
	OK(salvo_queue_delete(ch, "salvo.test.confirm.pool", 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* The window: a full one is would-block at timeout 0, and a timed-out sync publish stays
 * tracked and is counted when its confirm comes. */
static void case_window(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	int rc = 0, n = 0;

	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 64, NULL);
	/* Without waiting, the 65th publish finds the window full unless confirms came. */
	for (n = 0; n < 100000; n++) {
		rc = salvo_publish(p, "amq.direct", "salvo.test.window", "w", 1, 0, 0, &err);
		if (rc)
			break;
	}
	printf("async window 64: %d publishes before %d (%s)\n", n, rc, err.text);
	CHECK(rc == SALVO_ERR_WOULD_BLOCK && n >= 64);
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	salvo_publisher_stats(p, &st);
	CHECK(st.acked == (uint64_t)n && st.in_flight == 0);
	OK(salvo_publisher_close(p, 10000, &err));

	p = new_publisher(c, SALVO_CONFIRM_SYNC, 0, NULL);
	rc = salvo_publish(p, "amq.direct", "salvo.test.window", "t", 1, 0, 0, &err);
	printf("sync publish with timeout 0: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_TIMEOUT || rc == 0);
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	OK(salvo_publish(p, "amq.direct", "salvo.test.window", "t", 1, 0, 10000, &err));
	salvo_publisher_stats(p, &st);
	CHECK(st.published == 2 && st.acked == 2 && st.in_flight == 0);
	OK(salvo_publisher_close(p, 10000, &err));
	rabbit_close(c, 10000);
}

/*
 * read_hold_us: async confirms from RabbitMQ come in small reads of acks, and by default the
 * I/O thread holds the next read back after one (io.ack_holds counts it) so that a wake-up
 * brings more; with 0 it never does. Every message is confirmed either way.
 */
static void ack_hold_run(const char *hold, uint64_t *holds, uint64_t *reads)
{
	const char *q = "salvo.test.confirm.holds";
	salvo_client *c = rabbit_connect(uri, "read_hold_us", hold, NULL);
	struct tally t = {0};
	salvo_io_stats io;
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	p = new_publisher(c, SALVO_CONFIRM_ASYNC, 16384, &t);
	for (uint32_t i = 0; i < 50000; i++)
		OK(salvo_publish(p, "", q, "h", 1, 0, 30000, &err));
	OK(salvo_publisher_wait_confirms(p, 60000, &err));
	salvo_publisher_stats(p, &st);
	salvo_client_io_stats(c, &io);
	printf("read_hold_us %s: %llu acked, %llu recvs, %llu ack holds\n", hold,
	       (unsigned long long)st.acked, (unsigned long long)io.recvs,
	       (unsigned long long)io.ack_holds);
	CHECK(t.n[SALVO_OUTCOME_ACKED] == 50000 && st.acked == 50000 && st.in_flight == 0);
	CHECK(channel_queue_count(ch, q) == 50000);
	*holds = io.ack_holds;
	*reads = io.recvs;
	OK(salvo_publisher_close(p, 10000, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_ack_holds(void)
{
	uint64_t held, off, held_reads, reads;

	ack_hold_run("2000", &held, &held_reads);
	ack_hold_run("0", &off, &reads);
	/* The holds make the confirms come in fewer reads. */
	CHECK(held >= 1 && off == 0 && held_reads < reads);
}

static const struct test_case cases[] = {
	{"async 1M", .run = case_async_million},
	{"sync 16x20k", .run = case_sync_16},
	{"reject-publish", .run = case_reject_publish},
	{"mandatory returned", .run = case_mandatory_returned},
	{"missing exchange", .run = case_missing_exchange},
	{"tx then confirm", .run = case_tx_then_confirm},
	{"pool", .run = case_pool},
	{"window", .run = case_window},
	{"ack holds", .run = case_ack_holds},
};

int main(int argc, char **argv)
{
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
