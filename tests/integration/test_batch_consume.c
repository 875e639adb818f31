/* SPDX-License-Identifier: MIT */
/*
 * Consumers splitting envelopes, against a real RabbitMQ. The envelopes are built here by
 * hand (wire format v1, src/codec/batch.h) and published as ordinary messages, so nothing
 * depends on the batching publisher: plain, lz4 and zstd envelopes split in order with
 * their index and count, through salvo_consumer_get, salvo_consumer_dispatch,
 * salvo_client_dispatch, four threads acking and a listener; every record acked leaves the queue
 * empty; a nack of one record brings the whole envelope back once the others are settled; a reject
 * dead-letters it; multiple acks over records and whole envelopes; raw consumers and
 * basic.get; hostile envelopes (lengths overrunning, counts disagreeing either way, corrupt
 * and truncated frames, bombs over consumer.batch.max_bytes, an unknown encoding, counts
 * missing, negative, zero or not integers) each rejected into a dead-letter queue with an
 * event, the consumer going on to the good message after each; and the memory bound
 * holding with envelopes that decompress to 40 times their size.
 *
 * Each case uses queues of its own and a fanout dead-letter exchange of its own. Needs
 * SALVO_TEST_URI (skips with 77 without it).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4frame.h>
#include <zstd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"
#include "batch.h"

static const char *uri;

/* An envelope under construction: records back to back, each its 32-bit length first. */
struct env {
	uint8_t *buf;
	size_t len, cap;
	uint32_t n;
};

static void env_put(struct env *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		e->cap = (e->len + n) * 2 + 64;
		e->buf = realloc(e->buf, e->cap);
		CHECK(e->buf);
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void env_add(struct env *e, const void *rec, uint32_t len)
{
	uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			 (uint8_t)len};

	env_put(e, be, 4);
	env_put(e, rec, len);
	e->n++;
}

static void env_addf(struct env *e, const char *fmt, int a, int b)
{
	char rec[64];

	env_add(e, rec, (uint32_t)snprintf(rec, sizeof rec, fmt, a, b));
}

static void env_free(struct env *e)
{
	free(e->buf);
	memset(e, 0, sizeof *e);
}

/* in compressed into one frame of codec; the caller frees *out. */
static void zip(enum sv_batch_codec codec, const uint8_t *in, size_t len, uint8_t **out,
		size_t *out_len)
{
	struct sv_batch_zip z;
	struct sv_codec_error cerr;
	size_t cap;

	CHECK(sv_batch_zip_init(&z, codec, 0, &cerr) == 0);
	cap = sv_batch_zip_bound(&z, len);
	*out = malloc(cap);
	CHECK(*out);
	*out_len = sv_batch_zip_run(&z, in, len, *out, cap);
	CHECK(*out_len > 0);
	sv_batch_zip_free(&z);
}

/* Headers of an envelope: x-salvo-records as the format says (a 32-bit 'I'), and one of
 * the application's, which records must show. */
static salvo_table *env_headers(int64_t records)
{
	salvo_table *t = salvo_table_new();

	CHECK(t);
	CHECK(salvo_table_add_i32(t, SV_BATCH_RECORDS_HEADER, (int32_t)records) == 0);
	CHECK(salvo_table_add_string(t, "x-test", "kept") == 0);
	return t;
}

/* Publish body to q (default exchange) with content_type ctype, content_encoding enc and
 * headers (each may be NULL), confirmed before it returns. */
static void publish_body(salvo_publisher *p, const char *q, const void *body, size_t len,
			 const char *ctype, const char *enc, const salvo_table *headers)
{
	salvo_props props = {.content_type = ctype, .content_encoding = enc, .headers = headers};
	salvo_msg m = {.exchange = "", .routing_key = q, .body = body, .len = len, .props = &props};
	salvo_error err;

	OK(salvo_publish_msg(p, &m, 10000, NULL, &err));
}

/* Publish e as an envelope to q, compressed with codec. */
static void publish_env(salvo_publisher *p, const char *q, const struct env *e,
			enum sv_batch_codec codec)
{
	salvo_table *h = env_headers(e->n);
	uint8_t *z = NULL;
	size_t zlen = 0;

	if (codec != SV_BATCH_PLAIN)
		zip(codec, e->buf, e->len, &z, &zlen);
	publish_body(p, q, z ? z : e->buf, z ? zlen : e->len, SV_BATCH_CONTENT_TYPE,
		     sv_batch_codec_name(codec), h);
	free(z);
	salvo_table_destroy(h);
}

static salvo_publisher *sync_publisher(salvo_client *c)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;
	salvo_error err;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	return p;
}

/* Fresh queues: q dead-letters into dlq through a fanout exchange of its own. */
static void dlx_queues(salvo_channel *ch, const char *q, const char *dlq)
{
	char dlx[256];
	salvo_table *args = salvo_table_new();
	salvo_error err;

	snprintf(dlx, sizeof dlx, "%s.dlx", q);
	CHECK(args && salvo_table_add_string(args, "x-dead-letter-exchange", dlx) == 0);
	OK(salvo_exchange_declare(ch, dlx, "fanout", 0, NULL, &err));
	fresh_queue(ch, dlq, NULL);
	OK(salvo_queue_bind(ch, dlq, dlx, "", NULL, &err));
	fresh_queue(ch, q, args);
	salvo_table_destroy(args);
}

static bool body_is(const salvo_message *m, const char *want)
{
	size_t len;
	const void *b = salvo_message_body(m, &len);

	return len == strlen(want) && memcmp(b, want, len) == 0;
}

static bool has_header(const salvo_message *m, const char *key)
{
	salvo_table_iter it;
	salvo_field f;

	salvo_table_iter_init(&it, salvo_message_props(m)->headers);
	while (salvo_table_next(&it, &f) == 1)
		if (strcmp(f.key, key) == 0)
			return true;
	return false;
}

/* The next message, which must be record index of count with body want. */
static salvo_message *expect(salvo_consumer *cons, const char *want, uint32_t index, uint32_t count)
{
	salvo_message *m;
	salvo_error err;

	OK(salvo_consumer_get(cons, 10000, &m, &err));
	if (!body_is(m, want) || salvo_message_record_index(m) != index ||
	    salvo_message_record_count(m) != count) {
		size_t len;
		const char *b = salvo_message_body(m, &len);
		fprintf(stderr, "expected '%s' %u/%u, got '%.*s' %u/%u\n", want, index, count,
			(int)(len > 64 ? 64 : len), b, salvo_message_record_index(m),
			salvo_message_record_count(m));
		exit(1);
	}
	return m;
}

static void ack_destroy(salvo_message *m)
{
	salvo_error err;

	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
}

/* Nothing more arrives within ms. */
static void expect_nothing(salvo_consumer *cons, int ms)
{
	salvo_message *m = NULL;

	CHECK(salvo_consumer_get(cons, ms, &m, NULL) == SALVO_ERR_TIMEOUT && !m);
}

/* The consumer is done: its channel closed, q and dlq hold what they must (a channel
 * closed with unacked messages would have requeued them). */
static void finish(salvo_client *c, salvo_channel *ch, salvo_consumer *cons, const char *q,
		   uint32_t in_q, const char *dlq, uint32_t in_dlq)
{
	salvo_error err;

	usleep(200 * 1000); /* the last settles reach the broker */
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err)); /* no 406 along the way */
	OK(salvo_channel_open(c, &ch, &err));
	CHECK(settled_queue_count(ch, q, 3, 100) == in_q);
	if (dlq)
		CHECK(settled_queue_count(ch, dlq, 3, 100) == in_dlq);
	OK(salvo_channel_close(ch, &err));
}

/*
 * Envelopes of codec split in order through salvo_consumer_get: three records, a plain
 * message, two records, then 1,000 records of 100 bytes (many frames' worth compressed);
 * the records show the envelope's routing key, delivery tag and headers, no content type
 * or encoding; every record acked empties the queue.
 */
static void split_case(enum sv_batch_codec codec, const char *q)
{
	char dlq[256];
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	struct env e1 = {0}, e2 = {0}, e3 = {0};
	salvo_consume_stats st;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m, *first;
	salvo_error err;
	char want[128];

	snprintf(dlq, sizeof dlq, "%s.dlq", q);
	OK(salvo_channel_open(c, &ch, &err));
	dlx_queues(ch, q, dlq);
	for (int i = 0; i < 3; i++)
		env_addf(&e1, "e%d-r%d", 1, i);
	for (int i = 0; i < 2; i++)
		env_addf(&e2, "e%d-r%d", 2, i);
	for (int i = 0; i < 1000; i++) {
		char rec[100];
		memset(rec, 'a' + i % 26, sizeof rec);
		snprintf(rec, sizeof rec, "e3-r%d:", i);
		rec[strlen(rec)] = '.';
		env_add(&e3, rec, sizeof rec);
	}
	publish_env(p, q, &e1, codec);
	publish_body(p, q, "solo", 4, "text/plain", NULL, NULL);
	publish_env(p, q, &e2, codec);
	publish_env(p, q, &e3, codec);

	OK(salvo_consume(ch, q, NULL, &cons, &err));
	first = expect(cons, "e1-r0", 0, 3);
	CHECK(strcmp(salvo_message_routing_key(first), q) == 0);
	CHECK(strcmp(salvo_message_exchange(first), "") == 0);
	CHECK(!salvo_message_props(first)->content_type);
	CHECK(!salvo_message_props(first)->content_encoding);
	CHECK(has_header(first, "x-test") && has_header(first, SV_BATCH_RECORDS_HEADER));
	CHECK(!salvo_message_redelivered(first));
	for (int i = 1; i < 3; i++) {
		snprintf(want, sizeof want, "e1-r%d", i);
		m = expect(cons, want, (uint32_t)i, 3);
		CHECK(salvo_message_delivery_tag(m) == salvo_message_delivery_tag(first));
		ack_destroy(m);
	}
	ack_destroy(first);
	m = expect(cons, "solo", 0, 1);
	CHECK(strcmp(salvo_message_props(m)->content_type, "text/plain") == 0);
	ack_destroy(m);
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof want, "e2-r%d", i);
		ack_destroy(expect(cons, want, (uint32_t)i, 2));
	}
	for (uint32_t i = 0; i < 1000; i++) {
		size_t len;
		const char *b;

		OK(salvo_consumer_get(cons, 10000, &m, &err));
		b = salvo_message_body(m, &len);
		CHECK(len == 100 && salvo_message_record_index(m) == i &&
		      salvo_message_record_count(m) == 1000);
		snprintf(want, sizeof want, "e3-r%u:", i);
		CHECK(memcmp(b, want, strlen(want)) == 0 && b[99] == 'a' + (char)(i % 26));
		ack_destroy(m);
	}
	expect_nothing(cons, 200);
	salvo_client_consume_stats(c, &st);
	CHECK(st.envelopes == 3 && st.records == 1005 && st.delivered == 4);
	CHECK(st.envelopes_rejected == 0);
	finish(c, ch, cons, q, 0, dlq, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	env_free(&e1);
	env_free(&e2);
	env_free(&e3);
	rabbit_close(c, 10000);
}

static void case_split_plain(void)
{
	split_case(SV_BATCH_PLAIN, "salvo.test.bc.plain");
}

static void case_split_lz4(void)
{
	split_case(SV_BATCH_LZ4, "salvo.test.bc.lz4");
}

static void case_split_zstd(void)
{
	split_case(SV_BATCH_ZSTD, "salvo.test.bc.zstd");
}

/* Publish 10 envelopes of 10 records ("e<i>-r<j>") to q, zstd, lz4 and plain in turn. */
static void publish_ten(salvo_client *c, const char *q)
{
	salvo_publisher *p = sync_publisher(c);
	salvo_error err;

	for (int i = 0; i < 10; i++) {
		struct env e = {0};

		for (int j = 0; j < 10; j++)
			env_addf(&e, "e%d-r%d", i, j);
		publish_env(p, q, &e, (enum sv_batch_codec)(i % 3));
		env_free(&e);
	}
	OK(salvo_publisher_close(p, 5000, &err));
}

/* What the callbacks saw: records in order, acked as they come. */
struct seen {
	int next; /* envelope * 10 + record expected next */
	int bad;
};

static void on_record(salvo_message *m, void *arg)
{
	struct seen *s = arg;
	char want[32];
	salvo_error err;

	snprintf(want, sizeof want, "e%d-r%d", s->next / 10, s->next % 10);
	if (!body_is(m, want) || salvo_message_record_index(m) != (uint32_t)(s->next % 10) ||
	    salvo_message_record_count(m) != 10)
		s->bad++;
	s->next++;
	if (salvo_message_ack(m, false, &err))
		s->bad++;
	salvo_message_destroy(m);
}

/* salvo_consumer_dispatch runs the callback once per record. */
static void case_dispatch(void)
{
	const char *q = "salvo.test.bc.dispatch";
	salvo_client *c = rabbit_connect(uri, NULL);
	struct seen s = {0};
	salvo_consumer_opts opts = {.on_message = on_record, .on_message_arg = &s};
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_error err;
	double end = now_s() + 20;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	publish_ten(c, q);
	OK(salvo_consume(ch, q, &opts, &cons, &err));
	while (s.next < 100 && now_s() < end) {
		int n = salvo_consumer_dispatch(cons, 1000, 0, &err);
		CHECK(n > 0 || n == SALVO_ERR_TIMEOUT);
	}
	CHECK(s.next == 100 && s.bad == 0);
	CHECK(salvo_consumer_dispatch(cons, 200, 0, &err) == SALVO_ERR_TIMEOUT);
	finish(c, ch, cons, q, 0, NULL, 0);
	rabbit_close(c, 10000);
}

/* salvo_client_dispatch: one record per consumer per pass, two consumers alternating. */
static void case_client_dispatch(void)
{
	const char *q[2] = {"salvo.test.bc.cdisp0", "salvo.test.bc.cdisp1"};
	salvo_client *c = rabbit_connect(uri, NULL);
	struct seen s[2] = {{0}, {0}};
	salvo_consumer *cons[2];
	salvo_channel *ch;
	salvo_error err;
	double end = now_s() + 20;

	OK(salvo_channel_open(c, &ch, &err));
	for (int i = 0; i < 2; i++) {
		salvo_consumer_opts opts = {.on_message = on_record, .on_message_arg = &s[i]};

		fresh_queue(ch, q[i], NULL);
		publish_ten(c, q[i]);
		OK(salvo_consume(ch, q[i], &opts, &cons[i], &err));
	}
	while ((s[0].next < 100 || s[1].next < 100) && now_s() < end) {
		int n = salvo_client_dispatch(c, 1000, 0, &err);
		CHECK(n > 0 || n == SALVO_ERR_TIMEOUT);
	}
	CHECK(s[0].next == 100 && s[0].bad == 0 && s[1].next == 100 && s[1].bad == 0);
	salvo_consumer_destroy(cons[0]);
	finish(c, ch, cons[1], q[1], 0, NULL, 0);
	CHECK(queue_count(c, q[0]) == 0);
	rabbit_close(c, 10000);
}

/*
 * Records acked from four threads in whatever order they come: 200 envelopes of 50
 * records, each thread taking records from the consumer and acking them at once. Every
 * envelope's last ack (on any thread) sends its ack; the queue ends empty and no settle
 * is dropped or refused.
 */
struct workers {
	salvo_consumer *cons;
	_Atomic int taken, errors;
};

static void *work(void *arg)
{
	struct workers *w = arg;
	salvo_message *m;
	salvo_error err;

	while (atomic_load(&w->taken) < 10000) {
		if (salvo_consumer_get(w->cons, 100, &m, &err))
			continue;
		atomic_fetch_add(&w->taken, 1);
		if (salvo_message_ack(m, false, &err))
			atomic_fetch_add(&w->errors, 1);
		salvo_message_destroy(m);
	}
	return NULL;
}

static void case_workers(void)
{
	const char *q = "salvo.test.bc.workers";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	struct workers w = {0};
	salvo_consume_stats st;
	salvo_channel *ch;
	salvo_error err;
	pthread_t t[4];

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	for (int i = 0; i < 200; i++) {
		struct env e = {0};

		for (int j = 0; j < 50; j++)
			env_addf(&e, "e%d-r%d", i, j);
		publish_env(p, q, &e, (enum sv_batch_codec)(i % 3));
		env_free(&e);
	}
	OK(salvo_consume(ch, q, NULL, &w.cons, &err));
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, work, &w) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&w.taken) == 10000 && atomic_load(&w.errors) == 0);
	expect_nothing(w.cons, 200);
	salvo_client_consume_stats(c, &st);
	printf("settles %llu in %llu frames, dropped %llu\n", (unsigned long long)st.settles,
	       (unsigned long long)st.settle_frames, (unsigned long long)st.settles_dropped);
	CHECK(st.settles == 10000 && st.settles_dropped == 0 && st.records == 10000);
	finish(c, ch, w.cons, q, 0, NULL, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 10000);
}

/* A listener: each record is handed to the callback; the first time record 3 of
 * envelope 5 comes, it is requeued, so envelope 5 comes back whole (redelivered) after
 * its other records are acked. */
struct lstate {
	_Atomic int received, redelivered, bad;
	_Atomic int requeued;
};

static salvo_listener_action on_listen(salvo_message *m, void *arg)
{
	struct lstate *s = arg;
	size_t len;
	const char *b = salvo_message_body(m, &len);

	atomic_fetch_add(&s->received, 1);
	if (salvo_message_record_count(m) != 10 || len < 5 || b[0] != 'e')
		atomic_fetch_add(&s->bad, 1);
	if (salvo_message_redelivered(m)) {
		atomic_fetch_add(&s->redelivered, 1);
		if (strncmp(b, "e5-", 3) != 0)
			atomic_fetch_add(&s->bad, 1);
	}
	if (body_is(m, "e5-r3") && atomic_exchange(&s->requeued, 1) == 0)
		return SALVO_LISTENER_REQUEUE;
	return SALVO_LISTENER_ACK;
}

static void case_listener(void)
{
	const char *q = "salvo.test.bc.listener";
	salvo_client *c = rabbit_connect(uri, NULL);
	struct lstate s = {0};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_channel *ch;
	salvo_error err;
	double end = now_s() + 20;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_channel_close(ch, &err));
	publish_ten(c, q);
	OK(salvo_listener_new(c, q, on_listen, &s, NULL, &l, &err));
	while (atomic_load(&s.received) < 110 && now_s() < end)
		usleep(10 * 1000);
	usleep(300 * 1000); /* nothing more comes */
	OK(salvo_listener_stop(l, 5000, &err));
	salvo_listener_get_stats(l, &st);
	printf("received %d, redelivered %d, listener acked %llu requeued %llu\n",
	       atomic_load(&s.received), atomic_load(&s.redelivered), (unsigned long long)st.acked,
	       (unsigned long long)st.requeued);
	CHECK(atomic_load(&s.received) == 110 && atomic_load(&s.redelivered) == 10);
	CHECK(atomic_load(&s.bad) == 0 && st.requeued == 1 && st.acked == 109);
	salvo_listener_destroy(l);
	CHECK(queue_count(c, q) == 0);
	rabbit_close(c, 10000);
}

/* A nack with requeue of one record: the envelope waits until the others are settled,
 * then comes back whole, redelivered. */
static void case_nack_one(void)
{
	const char *q = "salvo.test.bc.nack", *dlq = "salvo.test.bc.nack.dlq";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	struct env e = {0};
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m[4];
	salvo_error err;
	char want[32];

	OK(salvo_channel_open(c, &ch, &err));
	dlx_queues(ch, q, dlq);
	for (int i = 0; i < 4; i++)
		env_addf(&e, "e%d-r%d", 0, i);
	publish_env(p, q, &e, SV_BATCH_LZ4);
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	for (int i = 0; i < 4; i++) {
		snprintf(want, sizeof want, "e0-r%d", i);
		m[i] = expect(cons, want, (uint32_t)i, 4);
	}
	OK(salvo_message_nack(m[1], false, true, &err));
	OK(salvo_message_ack(m[0], false, &err));
	OK(salvo_message_ack(m[2], false, &err));
	expect_nothing(cons, 500); /* record 3 is still out */
	CHECK(queue_count(c, q) == 0);
	OK(salvo_message_ack(m[3], false, &err));
	for (int i = 0; i < 4; i++)
		salvo_message_destroy(m[i]);
	for (int i = 0; i < 4; i++) {
		snprintf(want, sizeof want, "e0-r%d", i);
		m[i] = expect(cons, want, (uint32_t)i, 4);
		CHECK(salvo_message_redelivered(m[i]));
		ack_destroy(m[i]);
	}
	expect_nothing(cons, 300);
	finish(c, ch, cons, q, 0, dlq, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	env_free(&e);
	rabbit_close(c, 10000);
}

/* A reject without requeue of one record dead-letters the whole envelope, as it came;
 * a reject without requeue and a nack with requeue in one envelope bring it back. */
static void case_reject(void)
{
	const char *q = "salvo.test.bc.reject", *dlq = "salvo.test.bc.reject.dlq";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	struct env e = {0};
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m[3];
	salvo_error err;
	size_t len;
	const void *b;

	OK(salvo_channel_open(c, &ch, &err));
	dlx_queues(ch, q, dlq);
	for (int i = 0; i < 3; i++)
		env_addf(&e, "e%d-r%d", 0, i);
	publish_env(p, q, &e, SV_BATCH_PLAIN);
	publish_env(p, q, &e, SV_BATCH_PLAIN);
	OK(salvo_consume(ch, q, NULL, &cons, &err));

	/* The first: record 1 rejected, the others acked. */
	m[0] = expect(cons, "e0-r0", 0, 3);
	m[1] = expect(cons, "e0-r1", 1, 3);
	m[2] = expect(cons, "e0-r2", 2, 3);
	OK(salvo_message_ack(m[2], false, &err));
	OK(salvo_message_reject(m[1], false, &err));
	OK(salvo_message_ack(m[0], false, &err));
	for (int i = 0; i < 3; i++)
		salvo_message_destroy(m[i]);
	/* The second: one rejected, one requeued: requeue wins, it comes back whole. */
	m[0] = expect(cons, "e0-r0", 0, 3);
	m[1] = expect(cons, "e0-r1", 1, 3);
	m[2] = expect(cons, "e0-r2", 2, 3);
	OK(salvo_message_reject(m[0], false, &err));
	OK(salvo_message_reject(m[1], true, &err));
	OK(salvo_message_ack(m[2], false, &err));
	for (int i = 0; i < 3; i++)
		salvo_message_destroy(m[i]);
	for (int i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof want, "e0-r%d", i);
		m[0] = expect(cons, want, (uint32_t)i, 3);
		CHECK(salvo_message_redelivered(m[0]));
		ack_destroy(m[0]);
	}
	finish(c, ch, cons, q, 0, dlq, 1);

	/* The dead-lettered envelope is the one published, whole (basic.get does not split). */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_get(ch, dlq, false, &m[0], &err));
	CHECK(m[0] && salvo_message_record_count(m[0]) == 1);
	CHECK(strcmp(salvo_message_props(m[0])->content_type, SV_BATCH_CONTENT_TYPE) == 0);
	b = salvo_message_body(m[0], &len);
	CHECK(len == e.len && memcmp(b, e.buf, len) == 0);
	ack_destroy(m[0]);
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	env_free(&e);
	rabbit_close(c, 10000);
}

/*
 * Multiple acks: a plain message A, envelope E1 (3 records), a plain message B, envelope
 * E2 (3 records). E1's record 0 acked alone; E2's record 1 acked with multiple, which
 * covers A, all of E1 and B at the broker and E2's records 0 and 1 here. E1's records 1
 * and 2 acked afterwards complete E1, whose settle must then not be sent (406, unknown
 * tag); E2's record 0 acked again is refused here; record 2 completes E2.
 */
static void case_multiple(void)
{
	const char *q = "salvo.test.bc.multiple", *dlq = "salvo.test.bc.multiple.dlq";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	struct env e1 = {0}, e2 = {0};
	salvo_message *a, *b, *r1[3], *r2[3], *none;
	salvo_consume_stats st;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_error err;
	char want[32];

	OK(salvo_channel_open(c, &ch, &err));
	dlx_queues(ch, q, dlq);
	for (int i = 0; i < 3; i++) {
		env_addf(&e1, "e%d-r%d", 1, i);
		env_addf(&e2, "e%d-r%d", 2, i);
	}
	publish_body(p, q, "A", 1, NULL, NULL, NULL);
	publish_env(p, q, &e1, SV_BATCH_ZSTD);
	publish_body(p, q, "B", 1, NULL, NULL, NULL);
	publish_env(p, q, &e2, SV_BATCH_PLAIN);
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	a = expect(cons, "A", 0, 1);
	for (int i = 0; i < 3; i++) {
		snprintf(want, sizeof want, "e1-r%d", i);
		r1[i] = expect(cons, want, (uint32_t)i, 3);
	}
	b = expect(cons, "B", 0, 1);
	for (int i = 0; i < 3; i++) {
		snprintf(want, sizeof want, "e2-r%d", i);
		r2[i] = expect(cons, want, (uint32_t)i, 3);
	}
	OK(salvo_message_ack(r1[0], false, &err));
	OK(salvo_message_ack(r2[1], true, &err));
	OK(salvo_message_ack(r1[1], false, &err));
	OK(salvo_message_ack(r1[2], false, &err));
	CHECK(salvo_message_ack(r2[0], false, &err) == SALVO_ERR_INVALID_STATE);
	CHECK(salvo_message_ack(r2[1], false, &err) == SALVO_ERR_INVALID_STATE);
	usleep(300 * 1000);
	/* Only E2's record 2 is unsettled: E2 is the one message still unacked. */
	CHECK(queue_count(c, q) == 0);
	/* The channel is alive (a 406 would have closed it): basic.get answers. */
	OK(salvo_basic_get(ch, q, false, &none, &err));
	CHECK(!none);
	OK(salvo_message_ack(r2[2], false, &err));
	salvo_message_destroy(a);
	salvo_message_destroy(b);
	for (int i = 0; i < 3; i++) {
		salvo_message_destroy(r1[i]);
		salvo_message_destroy(r2[i]);
	}
	expect_nothing(cons, 300);
	salvo_client_consume_stats(c, &st);
	printf("settles %llu in %llu frames, dropped %llu\n", (unsigned long long)st.settles,
	       (unsigned long long)st.settle_frames, (unsigned long long)st.settles_dropped);
	CHECK(st.settles_dropped == 0);
	finish(c, ch, cons, q, 0, dlq, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	env_free(&e1);
	env_free(&e2);
	rabbit_close(c, 10000);
}

/* SALVO_CONSUME_RAW_ENVELOPES and basic.get hand envelopes out as they came, unchecked. */
static void case_raw(void)
{
	const char *q = "salvo.test.bc.raw";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	salvo_consumer_opts opts = {.flags = SALVO_CONSUME_RAW_ENVELOPES};
	struct env e = {0};
	salvo_table *bad = env_headers(7);
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	uint8_t *z;
	size_t zlen, len;
	const void *b;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	for (int i = 0; i < 5; i++)
		env_addf(&e, "e%d-r%d", 0, i);
	zip(SV_BATCH_ZSTD, e.buf, e.len, &z, &zlen);
	publish_env(p, q, &e, SV_BATCH_ZSTD);
	/* A malformed one (7 records said, 5 there) is not a raw consumer's concern. */
	publish_body(p, q, e.buf, e.len, SV_BATCH_CONTENT_TYPE, NULL, bad);
	publish_env(p, q, &e, SV_BATCH_PLAIN);

	OK(salvo_basic_get(ch, q, false, &m, &err));
	CHECK(m && salvo_message_record_index(m) == 0 && salvo_message_record_count(m) == 1);
	CHECK(strcmp(salvo_message_props(m)->content_type, SV_BATCH_CONTENT_TYPE) == 0);
	CHECK(strcmp(salvo_message_props(m)->content_encoding, "zstd") == 0);
	b = salvo_message_body(m, &len);
	CHECK(len == zlen && memcmp(b, z, len) == 0);
	ack_destroy(m);

	OK(salvo_consume(ch, q, &opts, &cons, &err));
	for (int i = 0; i < 2; i++) {
		OK(salvo_consumer_get(cons, 10000, &m, &err));
		CHECK(salvo_message_record_index(m) == 0 && salvo_message_record_count(m) == 1);
		CHECK(strcmp(salvo_message_props(m)->content_type, SV_BATCH_CONTENT_TYPE) == 0);
		CHECK(!salvo_message_props(m)->content_encoding);
		b = salvo_message_body(m, &len);
		CHECK(len == e.len && memcmp(b, e.buf, len) == 0);
		ack_destroy(m);
	}
	expect_nothing(cons, 200);
	finish(c, ch, cons, q, 0, NULL, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	free(z);
	salvo_table_destroy(bad);
	env_free(&e);
	rabbit_close(c, 10000);
}

/* A hostile envelope: its body, content_encoding and x-salvo-records (INT64_MIN: none;
 * INT64_MIN + 1: a string "3"). */
struct hostile {
	const char *name;
	uint8_t *body;
	size_t len;
	const char *enc;
	int64_t records;
};

#define NO_COUNT     INT64_MIN
#define STRING_COUNT (INT64_MIN + 1)
#define LIMIT	     (1u << 20) /* consumer.batch.max_bytes of the hostile case */

static struct hostile hostile_plain(const char *name, const struct env *e, int64_t records,
				    size_t extra)
{
	struct hostile h = {.name = name, .len = e->len + extra, .records = records};

	h.body = calloc(1, h.len ? h.len : 1);
	CHECK(h.body);
	memcpy(h.body, e->buf, e->len);
	return h;
}

static struct hostile hostile_zip(const char *name, enum sv_batch_codec codec, const struct env *e)
{
	struct hostile h = {.name = name, .enc = sv_batch_codec_name(codec), .records = e->n};

	zip(codec, e->buf, e->len, &h.body, &h.len);
	return h;
}

/* A bomb whose frame does not declare its size: found out while decompressing. */
static struct hostile hostile_unsized(const char *name, enum sv_batch_codec codec,
				      const struct env *e)
{
	struct hostile h = {.name = name, .enc = sv_batch_codec_name(codec), .records = e->n};

	if (codec == SV_BATCH_ZSTD) {
		ZSTD_CCtx *z = ZSTD_createCCtx();

		CHECK(z && !ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0)));
		h.len = ZSTD_compressBound(e->len);
		h.body = malloc(h.len);
		CHECK(h.body);
		h.len = ZSTD_compress2(z, h.body, h.len, e->buf, e->len);
		CHECK(!ZSTD_isError(h.len));
		CHECK(ZSTD_getFrameContentSize(h.body, h.len) == ZSTD_CONTENTSIZE_UNKNOWN);
		ZSTD_freeCCtx(z);
	} else {
		LZ4F_preferences_t prefs = {.frameInfo = {.contentSize = 0}};

		h.len = LZ4F_compressFrameBound(e->len, &prefs);
		h.body = malloc(h.len);
		CHECK(h.body);
		h.len = LZ4F_compressFrame(h.body, h.len, e->buf, e->len, &prefs);
		CHECK(!LZ4F_isError(h.len));
	}
	return h;
}

static size_t make_hostiles(struct hostile *h)
{
	struct env two = {0}, big = {0}, empties = {0}, overrun = {0};
	uint8_t *zeros = calloc(1, 2 * LIMIT);
	size_t n = 0;

	CHECK(zeros);
	env_add(&two, "first", 5);
	env_add(&two, "second", 6);
	/* A length prefix saying 100 where 3 bytes follow. */
	env_add(&overrun, "hello", 5);
	env_put(&overrun, (uint8_t[]){0, 0, 0, 100, 'a', 'b', 'c'}, 7);
	overrun.n++;
	env_add(&big, zeros, 2 * LIMIT); /* one record of 2 MiB of zeros: a bomb */
	for (int i = 0; i < 30000; i++)	 /* 30,000 records of nothing: 1.4 MB of handles */
		env_add(&empties, "", 0);

	h[n++] = hostile_plain("overrun", &overrun, 2, 0);
	h[n++] = hostile_plain("count over", &two, 3, 0);
	h[n++] = hostile_plain("count under", &two, 1, 0);
	h[n++] = hostile_plain("bytes left over", &two, 2, 2);
	h[n] = hostile_plain("short prefix", &two, 1, 0);
	h[n++].len = 3;
	h[n++] = hostile_plain("count missing", &two, NO_COUNT, 0);
	h[n++] = hostile_plain("count negative", &two, -1, 0);
	h[n++] = hostile_plain("count zero", &two, 0, 0);
	h[n++] = hostile_plain("count a string", &two, STRING_COUNT, 0);
	h[n] = hostile_plain("unknown encoding", &two, 2, 0);
	h[n++].enc = "gzip";
	h[n++] = hostile_plain("records over the limit", &empties, 30000, 0);
	h[n++] = hostile_plain("plain over the limit", &big, 1, 0);
	/* Corrupt lz4: the frame descriptor's flags changed, so its checksum fails. */
	h[n] = hostile_zip("corrupt lz4", SV_BATCH_LZ4, &two);
	h[n++].body[4] ^= 0x10;
	h[n] = hostile_zip("truncated lz4", SV_BATCH_LZ4, &two);
	h[n++].len -= 4;
	h[n] = hostile_zip("truncated zstd", SV_BATCH_ZSTD, &two);
	h[n++].len -= 5;
	h[n] = hostile_zip("zstd with trailing bytes", SV_BATCH_ZSTD, &two);
	h[n].body = realloc(h[n].body, h[n].len + 8);
	memset(h[n].body + h[n].len, 0x5a, 8);
	h[n++].len += 8;
	h[n] = hostile_plain("zstd that is not zstd", &two, 2, 0);
	h[n++].enc = "zstd";
	h[n++] = hostile_zip("zstd bomb", SV_BATCH_ZSTD, &big);
	h[n++] = hostile_zip("lz4 bomb", SV_BATCH_LZ4, &big);
	h[n++] = hostile_unsized("zstd bomb, size not declared", SV_BATCH_ZSTD, &big);
	h[n++] = hostile_unsized("lz4 bomb, size not declared", SV_BATCH_LZ4, &big);
	/* A record of the count in a compressed body that lies about the count. */
	h[n] = hostile_zip("zstd count over", SV_BATCH_ZSTD, &two);
	h[n++].records = 3;
	env_free(&two);
	env_free(&big);
	env_free(&empties);
	env_free(&overrun);
	free(zeros);
	return n;
}

/*
 * Every hostile envelope, each followed by a good message: the consumer gets exactly the
 * good ones, each hostile one is rejected into the dead-letter queue (whole, in order)
 * with an event, and the counters agree.
 */
static void case_hostile(void)
{
	const char *q = "salvo.test.bc.hostile", *dlq = "salvo.test.bc.hostile.dlq";
	salvo_client *c = rabbit_connect(uri, "consumer.batch.max_bytes", "1048576", NULL);
	salvo_publisher *p = sync_publisher(c);
	struct hostile h[32];
	size_t n = make_hostiles(h);
	salvo_consume_stats st;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_event ev;
	salvo_error err;
	char good[32];
	size_t events = 0;

	OK(salvo_channel_open(c, &ch, &err));
	dlx_queues(ch, q, dlq);
	for (size_t i = 0; i < n; i++) {
		salvo_table *t = salvo_table_new();

		CHECK(t);
		if (h[i].records == STRING_COUNT)
			CHECK(salvo_table_add_string(t, SV_BATCH_RECORDS_HEADER, "3") == 0);
		else if (h[i].records != NO_COUNT)
			CHECK(salvo_table_add_int(t, SV_BATCH_RECORDS_HEADER, h[i].records) == 0);
		publish_body(p, q, h[i].body, h[i].len, SV_BATCH_CONTENT_TYPE, h[i].enc, t);
		salvo_table_destroy(t);
		snprintf(good, sizeof good, "good-%zu", i);
		publish_body(p, q, good, strlen(good), NULL, NULL, NULL);
	}
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	for (size_t i = 0; i < n; i++) {
		snprintf(good, sizeof good, "good-%zu", i);
		m = expect(cons, good, 0, 1);
		ack_destroy(m);
	}
	expect_nothing(cons, 300);
	while (salvo_client_poll_event(c, &ev, 0) == 0) {
		if (ev.kind != SALVO_EVENT_ENVELOPE_REJECTED)
			continue;
		printf("%s: %s\n", h[events < n ? events : 0].name, ev.error.text);
		CHECK(ev.error.status == SALVO_ERR_PROTOCOL && ev.channel > 0);
		CHECK(strcmp(ev.consumer_tag, salvo_consumer_tag(cons)) == 0);
		CHECK(strstr(ev.error.text, "rejected without requeue"));
		events++;
	}
	salvo_client_consume_stats(c, &st);
	CHECK(events == n && st.envelopes_rejected == n && st.envelopes == 0);
	finish(c, ch, cons, q, 0, dlq, (uint32_t)n);

	/* The dead-letter queue holds each, as it was published, in order. */
	OK(salvo_channel_open(c, &ch, &err));
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const void *b;

		OK(salvo_basic_get(ch, dlq, true, &m, &err));
		CHECK(m);
		b = salvo_message_body(m, &len);
		CHECK(len == h[i].len && memcmp(b, h[i].body, len) == 0);
		salvo_message_destroy(m);
		free(h[i].body);
	}
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 10000);
}

/* With no_ack, records cannot be settled, and a malformed envelope is dropped (the broker
 * counts it acked), reported all the same. */
static void case_no_ack(void)
{
	const char *q = "salvo.test.bc.noack";
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_publisher *p = sync_publisher(c);
	salvo_consumer_opts opts = {.flags = SALVO_CONSUME_NO_ACK};
	salvo_table *bad = env_headers(3);
	struct env e = {0};
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_event ev;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	env_addf(&e, "e%d-r%d", 0, 0);
	env_addf(&e, "e%d-r%d", 0, 1);
	publish_body(p, q, e.buf, e.len, SV_BATCH_CONTENT_TYPE, NULL, bad);
	publish_env(p, q, &e, SV_BATCH_LZ4);
	OK(salvo_consume(ch, q, &opts, &cons, &err));
	m = expect(cons, "e0-r0", 0, 2);
	CHECK(salvo_message_ack(m, false, &err) == SALVO_ERR_INVALID_ARGUMENT);
	salvo_message_destroy(m);
	salvo_message_destroy(expect(cons, "e0-r1", 1, 2));
	expect_nothing(cons, 200);
	do
		CHECK(salvo_client_poll_event(c, &ev, 2000) == 0);
	while (ev.kind != SALVO_EVENT_ENVELOPE_REJECTED);
	CHECK(strstr(ev.error.text, "dropped"));
	finish(c, ch, cons, q, 0, NULL, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	salvo_table_destroy(bad);
	env_free(&e);
	rabbit_close(c, 10000);
}

/*
 * consumer.buffer_bytes with envelopes that decompress to 40 times their size: 40 zstd
 * envelopes of 1,000 records of 200 bytes (200 KiB each, decompressed) at a consumer that
 * takes nothing for a second under a 256 KiB bound; the I/O thread stops within one
 * envelope past the bound. Then every record arrives, in order.
 */
static void case_memory_bound(void)
{
	const char *q = "salvo.test.bc.bound";
	salvo_client *c = rabbit_connect(uri, "consumer.buffer_bytes", "262144", NULL);
	salvo_publisher *p = sync_publisher(c);
	salvo_consume_stats st;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	size_t env_cost = 1000 * (200 + 4 + 48) + 4096;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	for (int i = 0; i < 40; i++) {
		struct env e = {0};
		char rec[200];

		for (int j = 0; j < 1000; j++) {
			memset(rec, 'x', sizeof rec);
			snprintf(rec, sizeof rec, "%d.%d", i, j);
			env_add(&e, rec, sizeof rec);
		}
		publish_env(p, q, &e, SV_BATCH_ZSTD);
		env_free(&e);
	}
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	usleep(1000 * 1000);
	salvo_client_consume_stats(c, &st);
	printf("untaken: buffered %llu, peak %llu, read holds %llu (bound 262144, one envelope "
	       "%zu)\n",
	       (unsigned long long)st.buffered_bytes, (unsigned long long)st.buffered_peak,
	       (unsigned long long)st.read_holds, env_cost);
	CHECK(st.read_holds >= 1 && st.buffered_peak <= 262144 + env_cost);
	for (int i = 0; i < 40; i++)
		for (int j = 0; j < 1000; j++) {
			char want[32];
			size_t len;
			const char *b;

			OK(salvo_consumer_get(cons, 10000, &m, &err));
			b = salvo_message_body(m, &len);
			snprintf(want, sizeof want, "%d.%d", i, j);
			CHECK(len == 200 && memcmp(b, want, strlen(want) + 1) == 0);
			CHECK(salvo_message_record_index(m) == (uint32_t)j);
			ack_destroy(m);
		}
	salvo_client_consume_stats(c, &st);
	printf("drained: peak %llu, read holds %llu, records %llu\n",
	       (unsigned long long)st.buffered_peak, (unsigned long long)st.read_holds,
	       (unsigned long long)st.records);
	CHECK(st.buffered_peak <= 262144 + env_cost && st.records == 40000);
	CHECK(st.buffered_bytes == 0);
	finish(c, ch, cons, q, 0, NULL, 0);
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 10000);
}

static const struct test_case cases[] = {
    {"split plain", .run = case_split_plain},
    {"split lz4", .run = case_split_lz4},
    {"split zstd", .run = case_split_zstd},
    {"dispatch", .run = case_dispatch},
    {"client dispatch", .run = case_client_dispatch},
    {"workers", .run = case_workers},
    {"listener", .run = case_listener},
    {"nack one", .run = case_nack_one},
    {"reject", .run = case_reject},
    {"multiple", .run = case_multiple},
    {"raw", .run = case_raw},
    {"hostile", .run = case_hostile},
    {"no ack", .run = case_no_ack},
    {"memory bound", .run = case_memory_bound},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
