/* SPDX-License-Identifier: MIT */
/*
 * Quorum queues and streams against a real RabbitMQ, through listeners with declare and
 * consume arguments: a quorum queue's x-delivery-limit (a message requeued past it is
 * dead-lettered), single active consumer across two listeners, a stream consumed from
 * first, last, next, a numeric offset and a timestamp, a stream listener resuming across
 * rabbitmqctl close_connection (10,000 offsets each handed out exactly once, idle and with
 * a publisher appending meanwhile, and with envelopes), a stream's requeue (sent as an
 * ack), x-stream-offset headers of every kind, a classic queue whose
 * messages carry the header, and the broker's refusals of consume arguments coming back
 * from salvo_listener_new.
 *
 * Every case uses queues named after the case and the process. argv[1] names the case.
 * Needs SALVO_TEST_URI (skips with 77 without it); the cases that use rabbitmqctl also
 * SALVO_SOURCE_ROOT (scripts/rabbitmq.sh ctl).
 */
#include <pthread.h>
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

/* The case's queue name: "salvo.test.streams.<what>.<pid>". */
static void qname(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "salvo.test.streams.%s.%d", what, (int)getpid());
}

/* Declare q afresh, durable, with x-queue-type type and one more argument key = value
 * (key NULL: none). */
static void declare_typed(salvo_client *c, const char *q, const char *type, const char *key,
			  int64_t value)
{
	salvo_table *args = salvo_table_new();
	salvo_channel *ch;
	salvo_error err;

	CHECK(args && salvo_table_add_string(args, "x-queue-type", type) == 0);
	if (key)
		CHECK(salvo_table_add_int(args, key, value) == 0);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_queue_declare(ch, q, SALVO_DURABLE, args, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
}

static bool wait_for(_Atomic uint32_t *v, uint32_t want, double seconds)
{
	for (double end = now_s() + seconds; now_s() < end; usleep(2000))
		if (atomic_load(v) >= want)
			return true;
	return false;
}

/*
 * What a listener's callback saw: how many times each body (by sequence number) and each
 * stream offset came, the first and last offset, and whether every delivery's offset was
 * its body's (one publisher into a fresh stream: offset i holds body i).
 */
struct seen {
	uint32_t cap;
	_Atomic uint32_t *by_offset, *by_body;
	_Atomic uint32_t calls, distinct;
	_Atomic uint64_t first_offset, last_offset;
	_Atomic uint32_t offset_mismatch, no_offset;
	unsigned work_us;
	salvo_listener_action action; /* returned for every message */
	/* pause_at > 0: the call that finds pause_at calls done sets paused and waits (at most
	 * 60 s) for go, so that the test can close the connection under it. */
	uint32_t pause_at;
	_Atomic int paused, go;
};

static void seen_init(struct seen *s, uint32_t cap)
{
	memset(s, 0, sizeof *s);
	s->cap = cap;
	s->by_offset = calloc(cap, sizeof *s->by_offset);
	s->by_body = calloc(cap, sizeof *s->by_body);
	CHECK(s->by_offset && s->by_body);
	atomic_store(&s->first_offset, UINT64_MAX);
}

static void seen_free(struct seen *s)
{
	free((void *)s->by_offset);
	free((void *)s->by_body);
}

static salvo_listener_action record(salvo_message *m, void *arg)
{
	struct seen *s = arg;
	uint32_t seq = rabbit_body_seq(m);
	uint64_t off;

	if (salvo_message_stream_offset(m, &off) == 0) {
		uint64_t none = UINT64_MAX;
		atomic_compare_exchange_strong(&s->first_offset, &none, off);
		atomic_store(&s->last_offset, off);
		if (off != seq)
			atomic_fetch_add(&s->offset_mismatch, 1);
		if (off < s->cap && atomic_fetch_add(&s->by_offset[off], 1) == 0)
			atomic_fetch_add(&s->distinct, 1);
	} else {
		atomic_fetch_add(&s->no_offset, 1);
	}
	if (seq < s->cap)
		atomic_fetch_add(&s->by_body[seq], 1);
	if (s->work_us)
		usleep(s->work_us);
	if (s->pause_at && atomic_load(&s->calls) == s->pause_at) {
		atomic_store(&s->paused, 1);
		for (double end = now_s() + 60; !atomic_load(&s->go) && now_s() < end;)
			usleep(1000);
	}
	atomic_fetch_add(&s->calls, 1);
	return s->action;
}

/* Offsets [from, to) each handed out exactly once: prints and checks the counts. */
static void check_exactly_once(const char *what, struct seen *s, uint32_t from, uint32_t to,
			       const salvo_listener_stats *st)
{
	uint32_t dup = 0, missing = 0, outside = 0;

	for (uint32_t i = 0; i < s->cap; i++) {
		uint32_t n = atomic_load(&s->by_offset[i]);
		if (i < from || i >= to)
			outside += n;
		else if (n == 0)
			missing++;
		else
			dup += n - 1;
	}
	printf("%s: handed out %u, duplicates %u, missing %u, outside [%u, %u) %u, offset "
	       "not the body's %u, without offset %u; skipped on resume %llu, restarts %llu\n",
	       what, atomic_load(&s->calls), dup, missing, from, to, outside,
	       atomic_load(&s->offset_mismatch), atomic_load(&s->no_offset),
	       (unsigned long long)st->stream_skipped, (unsigned long long)st->restarts);
	CHECK(dup == 0 && missing == 0 && outside == 0);
	CHECK(atomic_load(&s->offset_mismatch) == 0 && atomic_load(&s->no_offset) == 0);
	CHECK(atomic_load(&s->calls) == to - from);
}

/* A listener on q consuming with x-stream-offset given by add (which adds it to t). */
static salvo_listener *stream_listener(salvo_client *c, const char *q, salvo_table *args,
				       struct seen *s, uint16_t prefetch)
{
	salvo_listener_opts opts = {.prefetch = prefetch, .consume_arguments = args};
	salvo_listener *l;
	salvo_error err;

	OK(salvo_listener_new(c, q, record, s, &opts, &l, &err));
	/* The listener copied the table. */
	salvo_table_destroy(args);
	return l;
}

static salvo_table *offset_string(const char *spec)
{
	salvo_table *t = salvo_table_new();

	CHECK(t && salvo_table_add_string(t, "x-stream-offset", spec) == 0);
	return t;
}

/* Quorum queues. */

/* x-delivery-limit 2: a message requeued every time is delivered three times (the first
 * delivery and two redeliveries), then dead-lettered to the queue named by
 * x-dead-letter-routing-key. */
static void case_delivery_limit(void)
{
	enum { LIMIT = 2 };
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_table *args = salvo_table_new();
	salvo_listener_opts opts = {.declare = true, .declare_flags = SALVO_DURABLE};
	char q[128], dlq[128];
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	struct seen s;
	uint32_t dead = 0;

	qname(q, sizeof q, "quorum-limit");
	qname(dlq, sizeof dlq, "quorum-limit-dead");
	seen_init(&s, 16);
	s.action = SALVO_LISTENER_REQUEUE;
	rabbit_delete_queue(c, q);
	{
		salvo_channel *ch;
		OK(salvo_channel_open(c, &ch, &err));
		fresh_queue(ch, dlq, NULL);
		OK(salvo_channel_close(ch, &err));
	}
	CHECK(args && salvo_table_add_string(args, "x-queue-type", "quorum") == 0 &&
	      salvo_table_add_int(args, "x-delivery-limit", LIMIT) == 0 &&
	      salvo_table_add_string(args, "x-dead-letter-exchange", "") == 0 &&
	      salvo_table_add_string(args, "x-dead-letter-routing-key", dlq) == 0);
	opts.declare_arguments = args;
	OK(salvo_listener_new(c, q, record, &s, &opts, &l, &err));
	salvo_table_destroy(args); /* copied */
	rabbit_publish_n(c, q, 7, 1);
	for (double end = now_s() + 20; now_s() < end && (dead = queue_count(c, dlq)) == 0;)
		usleep(10000);
	usleep(200000); /* a further delivery, if the limit did not hold, would come now */
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	printf("delivery limit %d: delivered %u times, requeued %llu, dead-lettered %u, left in "
	       "the quorum queue %u\n",
	       LIMIT, atomic_load(&s.calls), (unsigned long long)st.requeued, dead,
	       queue_count(c, q));
	CHECK(atomic_load(&s.by_body[7]) == LIMIT + 1 && atomic_load(&s.calls) == LIMIT + 1);
	CHECK(st.requeued == LIMIT + 1);
	CHECK(dead == 1 && queue_count(c, q) == 0);
	salvo_listener_destroy(l);
	rabbit_delete_queue(c, q);
	rabbit_delete_queue(c, dlq);
	rabbit_close(c, 10000);
	seen_free(&s);
}

/* Single active consumer (on a quorum queue): of two listeners only the first receives;
 * once it stops, the other takes over. */
static void case_single_active(void)
{
	enum { N = 200 };
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_table *args = salvo_table_new();
	salvo_listener_opts opts = {.declare = true, .declare_flags = SALVO_DURABLE};
	salvo_listener *a, *b;
	struct seen sa, sb;
	salvo_error err;
	char q[128];

	qname(q, sizeof q, "single-active");
	seen_init(&sa, 2 * N);
	seen_init(&sb, 2 * N);
	rabbit_delete_queue(c, q);
	CHECK(args && salvo_table_add_string(args, "x-queue-type", "quorum") == 0 &&
	      salvo_table_add_bool(args, "x-single-active-consumer", true) == 0);
	opts.declare_arguments = args;
	OK(salvo_listener_new(c, q, record, &sa, &opts, &a, &err));
	OK(salvo_listener_new(c, q, record, &sb, &opts, &b, &err));
	salvo_table_destroy(args);
	rabbit_publish_n(c, q, 0, N);
	CHECK(wait_for(&sa.calls, N, 30));
	usleep(200000);
	printf("single active: first listener %u, second %u\n", atomic_load(&sa.calls),
	       atomic_load(&sb.calls));
	CHECK(atomic_load(&sa.calls) == N && atomic_load(&sb.calls) == 0);
	OK(salvo_listener_stop(a, 5000, &err));
	rabbit_publish_n(c, q, N, N);
	CHECK(wait_for(&sb.calls, N, 30));
	usleep(200000);
	printf("after the first stopped: first %u, second %u\n", atomic_load(&sa.calls),
	       atomic_load(&sb.calls));
	CHECK(atomic_load(&sa.calls) == N && atomic_load(&sb.calls) == N);
	for (uint32_t i = 0; i < N; i++)
		CHECK(sa.by_body[i] == 1 && sb.by_body[N + i] == 1);
	salvo_listener_destroy(a);
	salvo_listener_destroy(b);
	CHECK(queue_count(c, q) == 0);
	rabbit_delete_queue(c, q);
	rabbit_close(c, 10000);
	seen_free(&sa);
	seen_free(&sb);
}

/* Streams: where a consumer starts. */

/* Stop l once s has seen want calls (within 30 s), then check the offsets are exactly
 * [from, to). */
static void finish_range(const char *what, salvo_listener *l, struct seen *s, uint32_t from,
			 uint32_t to)
{
	salvo_listener_stats st;
	salvo_error err;

	CHECK(wait_for(&s->calls, to - from, 30));
	usleep(200000); /* anything more would come now */
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	check_exactly_once(what, s, from, to, &st);
	salvo_listener_destroy(l);
}

/*
 * 100 messages in two batches two seconds apart (0..49, then 50..99 at time T), then each
 * start: first (0..99), a numeric 42 (42..99), a timestamp T (50..99: the second batch),
 * last (the last chunk: a tail of the second batch, then 100 published after), next
 * (nothing until 100..109 are published, then exactly those).
 */
static void case_offsets(void)
{
	enum { HALF = 50, N = 2 * HALF, CAP = N + 20 };
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_listener *l;
	struct seen s;
	uint64_t t;
	char q[128];

	qname(q, sizeof q, "offsets");
	declare_typed(c, q, "stream", NULL, 0);
	rabbit_publish_n(c, q, 0, HALF);
	/* T: a second after the first batch is in, so no chunk of it is stamped T or later. */
	sleep(1);
	t = (uint64_t)time(NULL) + 1;
	while ((uint64_t)time(NULL) < t)
		usleep(10000);
	rabbit_publish_n(c, q, HALF, HALF);

	seen_init(&s, CAP);
	l = stream_listener(c, q, offset_string("first"), &s, 64);
	finish_range("first", l, &s, 0, N);
	seen_free(&s);

	seen_init(&s, CAP);
	{
		salvo_table *args = salvo_table_new();
		CHECK(args && salvo_table_add_int(args, "x-stream-offset", 42) == 0);
		l = stream_listener(c, q, args, &s, 64);
	}
	finish_range("numeric 42", l, &s, 42, N);
	seen_free(&s);

	seen_init(&s, CAP);
	{
		salvo_table *args = salvo_table_new();
		CHECK(args && salvo_table_add_timestamp(args, "x-stream-offset", t) == 0);
		l = stream_listener(c, q, args, &s, 64);
	}
	finish_range("timestamp", l, &s, HALF, N);
	seen_free(&s);

	/* last: the last chunk, whatever its size, so the check is on its shape: a tail of
	 * the second batch, contiguous up to 99, then what is published next. */
	seen_init(&s, CAP);
	l = stream_listener(c, q, offset_string("last"), &s, 64);
	CHECK(wait_for(&s.calls, 1, 30));
	/* The chunk is whole once offset N - 1 came (nothing is published after it yet). */
	for (double end = now_s() + 30; atomic_load(&s.last_offset) != N - 1 && now_s() < end;)
		usleep(2000);
	{
		uint32_t tail = atomic_load(&s.calls);
		uint64_t from = atomic_load(&s.first_offset);
		printf("last: the last chunk starts at %llu (%u messages)\n",
		       (unsigned long long)from, tail);
		CHECK(from >= HALF && from + tail == N);
		rabbit_publish_n(c, q, N, 1);
		finish_range("last", l, &s, (uint32_t)from, N + 1);
	}
	seen_free(&s);

	/* next: nothing that was there; what is published after the consume. */
	seen_init(&s, CAP);
	l = stream_listener(c, q, offset_string("next"), &s, 64);
	usleep(300000);
	CHECK(atomic_load(&s.calls) == 0);
	rabbit_publish_n(c, q, N + 1, 10);
	finish_range("next", l, &s, N + 1, N + 11);
	seen_free(&s);

	rabbit_delete_queue(c, q);
	rabbit_close(c, 10000);
}

/* Streams: resuming. */

struct appender {
	salvo_client *c;
	const char *q;
	uint32_t first, n, per_batch;
	unsigned pause_us;
};

/* Once the callback holds s->pause_at, close c's connection (named name) with rabbitmqctl;
 * the callback returns once the client has seen the close (its ack is then refused). */
static void close_under_callback(salvo_client *c, const char *name, struct seen *s)
{
	for (double end = now_s() + 60; !atomic_load(&s->paused); usleep(1000))
		CHECK(now_s() < end);
	close_connection(name, "salvo streams test");
	for (double end = now_s() + 30; salvo_client_reconnects(c) < 1; usleep(1000))
		CHECK(now_s() < end);
	atomic_store(&s->go, 1);
}

/* Publish a->n messages from a->first, per_batch confirmed at a time, pausing between. */
static void *append_main(void *arg)
{
	struct appender *a = arg;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 4096};
	salvo_publisher *p;
	salvo_error err;

	OK(salvo_publisher_new(a->c, &opts, &p, &err));
	for (uint32_t i = 0; i < a->n; i += a->per_batch) {
		rabbit_publish_seq(p, a->q, a->first + i,
			   a->n - i < a->per_batch ? a->n - i : a->per_batch);
		usleep(a->pause_us);
	}
	OK(salvo_publisher_close(p, 5000, &err));
	return NULL;
}

/*
 * 10,000 records in a stream, a listener from "first", its connection closed by
 * rabbitmqctl in the middle (while the callback holds offset 2,500, with up to 100 more
 * received and not handed out): every offset 0..9999 handed to the callback exactly once.
 * With appending, the first 2,000 are there before the listener starts and a publisher on
 * another connection appends the other 8,000 meanwhile, through the reconnection.
 */
static void resume(const char *what, bool appending)
{
	enum { N = 10000, BEFORE = 2000 };
	salvo_client *c, *pubc = rabbit_connect(uri, NULL);
	struct appender app = {
	    .c = pubc, .first = BEFORE, .n = N - BEFORE, .per_batch = 200, .pause_us = 5000};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	pthread_t thr;
	struct seen s;
	char q[128], name[128];

	rabbit_need_ctl(uri);
	qname(q, sizeof q, appending ? "resume-appending" : "resume");
	snprintf(name, sizeof name, "salvo-streams-%s-%d", appending ? "appending" : "idle",
		 (int)getpid());
	declare_typed(pubc, q, "stream", NULL, 0);
	rabbit_publish_n(pubc, q, 0, appending ? BEFORE : N);
	c = rabbit_connect(uri, "connection_name", name, "reconnect.initial_delay", "50", NULL);
	seen_init(&s, N);
	s.pause_at = N / 4;
	l = stream_listener(c, q, offset_string("first"), &s, 100);
	app.q = q;
	if (appending)
		CHECK(pthread_create(&thr, NULL, append_main, &app) == 0);
	close_under_callback(c, name, &s);
	printf("%s: closed the connection with the callback holding offset %u\n", what,
	       atomic_load(&s.calls));
	if (appending)
		CHECK(pthread_join(thr, NULL) == 0);
	CHECK(wait_for(&s.distinct, N, 120));
	usleep(300000); /* a repeat would come now */
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	check_exactly_once(what, &s, 0, N, &st);
	CHECK(st.restarts >= 1 && salvo_client_reconnects(c) == 1);
	printf("%s: settles refused %llu (acks of deliveries from the closed connection), last "
	       "error '%s'\n",
	       what, (unsigned long long)st.settle_errors, st.last_error.text);
	salvo_listener_destroy(l);
	rabbit_delete_queue(pubc, q);
	rabbit_close(c, 10000);
	rabbit_close(pubc, 10000);
	seen_free(&s);
}

static void case_resume(void)
{
	resume("resume", false);
}

static void case_resume_appending(void)
{
	resume("resume while appending", true);
}

/*
 * Envelopes (a batching publisher's, 10 records each) in a stream: one offset each, split
 * into records by the listener's consumer. The connection closed while the callback holds
 * record 5 of the 26th envelope (the consumer then hands out every record it had queued
 * before it ends): every record handed out exactly once.
 */
static void case_resume_envelopes(void)
{
	enum { RECORDS = 10, ENVELOPES = 50, N = RECORDS * ENVELOPES };
	salvo_publisher_opts po = {.confirm = SALVO_CONFIRM_ASYNC,
				   .batch = {.max_records = RECORDS, .linger_us = 1000000}};
	salvo_client *c, *pubc = rabbit_connect(uri, NULL);
	salvo_listener_stats st;
	salvo_publisher *p;
	salvo_listener *l;
	salvo_error err;
	uint32_t dup = 0, missing = 0;
	struct seen s;
	char q[128], name[128];

	rabbit_need_ctl(uri);
	qname(q, sizeof q, "resume-envelopes");
	snprintf(name, sizeof name, "salvo-streams-envelopes-%d", (int)getpid());
	declare_typed(pubc, q, "stream", NULL, 0);
	OK(salvo_publisher_new(pubc, &po, &p, &err));
	rabbit_publish_seq(p, q, 0, N);
	OK(salvo_publisher_close(p, 5000, &err));
	c = rabbit_connect(uri, "connection_name", name, "reconnect.initial_delay", "50", NULL);
	seen_init(&s, N);
	s.pause_at = 25 * RECORDS + 5;
	l = stream_listener(c, q, offset_string("first"), &s, 4);
	close_under_callback(c, name, &s);
	CHECK(wait_for(&s.calls, N, 60));
	usleep(300000);
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t n = atomic_load(&s.by_body[i]);
		missing += n == 0;
		dup += n > 1 ? n - 1 : 0;
	}
	printf("envelopes: records handed out %u, duplicates %u, missing %u; envelopes "
	       "(offsets) %u; skipped on resume %llu, restarts %llu\n",
	       atomic_load(&s.calls), dup, missing, atomic_load(&s.distinct),
	       (unsigned long long)st.stream_skipped, (unsigned long long)st.restarts);
	CHECK(dup == 0 && missing == 0 && atomic_load(&s.calls) == N);
	CHECK(atomic_load(&s.distinct) == ENVELOPES && atomic_load(&s.no_offset) == 0);
	CHECK(st.restarts == 1);
	salvo_listener_destroy(l);
	rabbit_delete_queue(pubc, q);
	rabbit_close(c, 10000);
	rabbit_close(pubc, 10000);
	seen_free(&s);
}

/*
 * What salvo settles by itself on a stream is an ack too: an envelope over the consumer's
 * consumer.batch.max_bytes (10 records of 7,000 bytes against 65,536) is refused, and on
 * a stream the refusal is an ack (a reject would make RabbitMQ close the connection with
 * 540, which ends the client). The listener then hands out the 5 plain messages after it,
 * on the same connection; a plain consumer with SALVO_CONSUME_STREAM has its nack sent as
 * an ack, and its channel and connection live on.
 */
static _Atomic uint32_t small_calls, big_calls;

static salvo_listener_action count_sizes(salvo_message *m, void *arg)
{
	size_t len;

	(void)arg;
	salvo_message_body(m, &len);
	atomic_fetch_add(len > 1000 ? &big_calls : &small_calls, 1);
	return SALVO_LISTENER_ACK;
}

/* Events of c within ms: how many SALVO_EVENT_ENVELOPE_REJECTED said the envelope was
 * acked. */
static int envelope_acked_events(salvo_client *c, int ms)
{
	salvo_event ev;
	int n = 0;

	while (salvo_client_poll_event(c, &ev, ms) == 0) {
		if (ev.kind == SALVO_EVENT_ENVELOPE_REJECTED) {
			printf("event: %s\n", ev.error.text);
			n += strstr(ev.error.text, "acked (a stream takes acks only)") != NULL;
		}
		ms = 0;
	}
	return n;
}

static void case_stream_envelope_refused(void)
{
	enum { RECORDS = 10, BIG = 7000, PLAIN = 5 };
	/* One envelope of the 10 records: 70,040 bytes of records, under frame_max. */
	salvo_publisher_opts po = {
	    .confirm = SALVO_CONFIRM_ASYNC,
	    .batch = {.max_records = RECORDS, .max_bytes = 100000, .linger_us = 1000000}};
	salvo_client *pubc = rabbit_connect(uri, NULL);
	salvo_client *c = rabbit_connect(uri, "consumer.batch.max_bytes", "65536", NULL);
	salvo_table *args = offset_string("first");
	salvo_listener_opts opts = {.prefetch = 10, .consume_arguments = args};
	salvo_consumer_opts co = {.flags = SALVO_CONSUME_STREAM};
	salvo_listener_stats st;
	salvo_queue_info info;
	salvo_consumer *cons;
	salvo_publisher *p;
	salvo_listener *l;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	static char big[BIG];
	char q[128];
	int acked_events;

	qname(q, sizeof q, "envelope-refused");
	declare_typed(pubc, q, "stream", NULL, 0);
	memset(big, 'x', sizeof big);
	OK(salvo_publisher_new(pubc, &po, &p, &err));
	for (int i = 0; i < RECORDS; i++)
		OK(salvo_publish(p, "", q, big, sizeof big, 0, SALVO_FOREVER, &err));
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_publish_n(pubc, q, 0, PLAIN);

	/* A listener (a stream by its x-stream-offset argument). */
	OK(salvo_listener_new(c, q, count_sizes, NULL, &opts, &l, &err));
	CHECK(wait_for(&small_calls, PLAIN, 30));
	acked_events = envelope_acked_events(c, 2000);
	usleep(300000); /* a 540 close over a reject would have ended the consumer by now */
	salvo_listener_get_stats(l, &st);
	printf("listener: %u plain handed out, %u records of the big envelope, %d envelope "
	       "refusals acked, restarts %llu, reconnects %llu\n",
	       atomic_load(&small_calls), atomic_load(&big_calls), acked_events,
	       (unsigned long long)st.restarts, (unsigned long long)salvo_client_reconnects(c));
	CHECK(atomic_load(&small_calls) == PLAIN && atomic_load(&big_calls) == 0);
	CHECK(acked_events == 1);
	CHECK(st.restarts == 0 && salvo_client_reconnects(c) == 0);
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_destroy(l);

	/* A plain consumer told it reads a stream: the refused envelope acked again, and a
	 * nack with requeue of the next message sent as an ack. */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_qos(ch, 0, 10, false, &err));
	co.arguments = args;
	OK(salvo_consume(ch, q, &co, &cons, &err));
	OK(salvo_consumer_get(cons, 10000, &m, &err));
	CHECK(rabbit_body_seq(m) == 0);
	OK(salvo_message_nack(m, false, true, &err));
	salvo_message_destroy(m);
	OK(salvo_consumer_get(cons, 10000, &m, &err));
	CHECK(rabbit_body_seq(m) == 1); /* not the nacked one again: a stream does not requeue */
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	acked_events = envelope_acked_events(c, 1000);
	usleep(300000);
	OK(salvo_queue_declare(ch, q, SALVO_PASSIVE, NULL, &info, &err)); /* the channel lives */
	printf("consumer: refusals acked %d, reconnects %llu\n", acked_events,
	       (unsigned long long)salvo_client_reconnects(c));
	CHECK(acked_events == 1 && salvo_client_reconnects(c) == 0);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
	rabbit_delete_queue(pubc, q);
	rabbit_close(c, 10000);
	rabbit_close(pubc, 10000);
}

/* A stream does not requeue, and closes the connection with 540 over a nack or reject:
 * the listener acks for REQUEUE and REJECT (credit only), the connection lives, and the
 * message is not delivered again. */
static salvo_listener_action settle_some(salvo_message *m, void *arg)
{
	struct seen *s = arg;
	uint32_t seq = rabbit_body_seq(m);

	record(m, s);
	return seq == 5	  ? SALVO_LISTENER_REQUEUE
	       : seq == 6 ? SALVO_LISTENER_REJECT
			  : SALVO_LISTENER_ACK;
}

static void case_stream_requeue(void)
{
	enum { N = 20 };
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_table *args = offset_string("first");
	salvo_listener_opts opts = {.prefetch = 4, .consume_arguments = args};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	struct seen s;
	char q[128];

	qname(q, sizeof q, "requeue");
	declare_typed(c, q, "stream", NULL, 0);
	rabbit_publish_n(c, q, 0, N);
	seen_init(&s, N);
	OK(salvo_listener_new(c, q, settle_some, &s, &opts, &l, &err));
	salvo_table_destroy(args);
	CHECK(wait_for(&s.calls, N, 30));
	usleep(300000); /* a requeued message would come again now */
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	printf("stream requeue: requeued %llu, rejected %llu, acked %llu, settles refused %llu, "
	       "reconnects %llu\n",
	       (unsigned long long)st.requeued, (unsigned long long)st.rejected,
	       (unsigned long long)st.acked, (unsigned long long)st.settle_errors,
	       (unsigned long long)salvo_client_reconnects(c));
	check_exactly_once("stream requeue", &s, 0, N, &st);
	CHECK(st.requeued == 1 && st.rejected == 1 && st.acked == N - 2);
	CHECK(st.settle_errors == 0 && st.restarts == 0 && salvo_client_reconnects(c) == 0);
	salvo_listener_destroy(l);
	rabbit_delete_queue(c, q);
	rabbit_close(c, 10000);
	seen_free(&s);
}

/* Headers. */

/* One message on q with the header x-stream-offset added by add (none: no headers), read
 * back with basic.get; returns salvo_message_stream_offset's status, *off its offset. */
static int header_offset(salvo_channel *ch, salvo_publisher *p, const char *q, salvo_table *headers,
			 uint64_t *off)
{
	salvo_props props = {.headers = headers};
	salvo_msg msg = {.exchange = "",
			 .routing_key = q,
			 .body = "x",
			 .len = 1,
			 .props = headers ? &props : NULL};
	salvo_message *m = NULL;
	salvo_error err;
	int rc;

	OK(salvo_publish_msg(p, &msg, SALVO_FOREVER, NULL, &err));
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	OK(salvo_basic_get(ch, q, true, &m, &err));
	CHECK(m);
	*off = 12345;
	rc = salvo_message_stream_offset(m, off);
	salvo_message_destroy(m);
	salvo_table_destroy(headers);
	return rc;
}

/* x-stream-offset headers of every kind, through a classic queue (which passes headers
 * as published): integers read when not negative, anything else refused. */
static void case_offset_header(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher_opts po = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;
	salvo_table *t;
	uint64_t off;
	char q[128];

	qname(q, sizeof q, "headers");
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_publisher_new(c, &po, &p, &err));

	CHECK(header_offset(ch, p, q, NULL, &off) == SALVO_ERR_UNSUPPORTED && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_int(t, "x-stream-offse", 1) == 0 &&
	      salvo_table_add_int(t, "x-stream-offsetx", 2) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_UNSUPPORTED);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_int(t, "x-stream-offset", 5) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == 0 && off == 5);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_int(t, "x-stream-offset", INT64_MAX) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == 0 && off == (uint64_t)INT64_MAX);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_u8(t, "x-stream-offset", 200) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == 0 && off == 200);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_u32(t, "x-stream-offset", UINT32_MAX) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == 0 && off == UINT32_MAX);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_i16(t, "x-stream-offset", 300) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == 0 && off == 300);
	/* Refused, *off untouched. */
	t = salvo_table_new();
	CHECK(t && salvo_table_add_int(t, "x-stream-offset", -1) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_i8(t, "x-stream-offset", INT8_MIN) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_u64(t, "x-stream-offset", UINT64_MAX) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_string(t, "x-stream-offset", "7") == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_timestamp(t, "x-stream-offset", 7) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	t = salvo_table_new();
	CHECK(t && salvo_table_add_double(t, "x-stream-offset", 7.0) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	/* The first entry of the name decides. */
	t = salvo_table_new();
	CHECK(t && salvo_table_add_bool(t, "x-stream-offset", true) == 0 &&
	      salvo_table_add_int(t, "x-stream-offset", 9) == 0);
	CHECK(header_offset(ch, p, q, t, &off) == SALVO_ERR_PROTOCOL && off == 12345);
	CHECK(salvo_message_stream_offset(NULL, &off) == SALVO_ERR_INVALID_ARGUMENT);
	printf("x-stream-offset headers: 5 integers read, 7 refused, 2 messages without one\n");

	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/*
 * A classic queue whose messages carry a copied x-stream-offset header: the header alone
 * does not make the listener take the queue for a stream, so REQUEUE is a nack with
 * requeue and the message comes again; told it is a stream (opts.stream), the listener
 * acks for REQUEUE, as a stream takes acks only, and the message is gone.
 */
static salvo_listener_action requeue_first(salvo_message *m, void *arg)
{
	struct seen *s = arg;
	bool first = atomic_load(&s->calls) == 0;

	record(m, s);
	return first ? SALVO_LISTENER_REQUEUE : SALVO_LISTENER_ACK;
}

static void case_header_not_stream(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher_opts po = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_table *headers = salvo_table_new();
	salvo_props props = {.headers = headers};
	salvo_msg msg = {.exchange = "", .body = "3", .len = 1, .props = &props};
	salvo_listener_opts opts = {0};
	salvo_publisher *p;
	salvo_listener *l;
	salvo_channel *ch;
	salvo_error err;
	struct seen s;
	char q[128];

	qname(q, sizeof q, "header-not-stream");
	msg.routing_key = q;
	CHECK(headers && salvo_table_add_int(headers, "x-stream-offset", 3) == 0);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_publisher_new(c, &po, &p, &err));
	for (int stream = 0; stream < 2; stream++) {
		fresh_queue(ch, q, NULL);
		OK(salvo_publish_msg(p, &msg, SALVO_FOREVER, NULL, &err));
		OK(salvo_publisher_wait_confirms(p, 10000, &err));
		seen_init(&s, 8);
		opts.stream = stream;
		OK(salvo_listener_new(c, q, requeue_first, &s, &opts, &l, &err));
		CHECK(wait_for(&s.calls, 2u - (unsigned)stream, 10));
		usleep(300000); /* a requeued message would come again now */
		OK(salvo_listener_stop(l, 5000, &err));
		salvo_listener_destroy(l);
		printf("stream %d: delivered %u times, left in the queue %u\n", stream,
		       atomic_load(&s.calls), channel_queue_count(ch, q));
		CHECK(atomic_load(&s.calls) == 2u - (unsigned)stream);
		CHECK(channel_queue_count(ch, q) == 0);
		seen_free(&s);
	}
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(headers);
	rabbit_close(c, 10000);
}

/* Refusals. */

/* Consume arguments the broker refuses come back from salvo_listener_new with its reply
 * code; a field array is refused locally. */
static void case_refusals(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_table *args = salvo_table_new(), *array = salvo_array_new();
	salvo_listener_opts opts = {.consume_arguments = args};
	salvo_listener *l = NULL;
	salvo_error err;
	struct seen s;
	char q[128];
	int rc;

	qname(q, sizeof q, "refusals");
	seen_init(&s, 4);
	declare_typed(c, q, "stream", NULL, 0);
	/* A string that names no start ("first", ...) nor an interval ("1h"). */
	CHECK(args && salvo_table_add_string(args, "x-stream-offset", "bogus") == 0);
	rc = salvo_listener_new(c, q, record, &s, &opts, &l, &err);
	printf("x-stream-offset \"bogus\": %d (%s): %s\n", rc, salvo_err2str(rc), err.text);
	CHECK(rc > 0 && l == NULL);
	CHECK(err.reply_code == (unsigned)rc && err.kind != SALVO_ERROR_LOCAL);

	CHECK(array && salvo_table_add_int(array, NULL, 1) == 0);
	opts.consume_arguments = array;
	CHECK(salvo_listener_new(c, q, record, &s, &opts, &l, &err) == SALVO_ERR_INVALID_ARGUMENT);
	opts.consume_arguments = NULL;
	opts.declare_arguments = array;
	CHECK(salvo_listener_new(c, q, record, &s, &opts, &l, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(l == NULL);
	salvo_table_destroy(args);
	salvo_table_destroy(array);
	rabbit_delete_queue(c, q);
	rabbit_close(c, 10000);
	seen_free(&s);
}

static const struct test_case cases[] = {
    {"quorum delivery limit", .run = case_delivery_limit},
    {"single active consumer", .run = case_single_active},
    {"stream offsets", .run = case_offsets},
    {"stream resume", .run = case_resume},
    {"stream resume appending", .run = case_resume_appending},
    {"stream resume envelopes", .run = case_resume_envelopes},
    {"stream requeue", .run = case_stream_requeue},
    {"stream envelope refused", .run = case_stream_envelope_refused},
    {"stream offset header", .run = case_offset_header},
    {"header not stream", .run = case_header_not_stream},
    {"stream refusals", .run = case_refusals},
};

int main(int argc, char **argv)
{
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
