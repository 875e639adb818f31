/* SPDX-License-Identifier: MIT */
/*
 * Batching publishers against RabbitMQ (salvo_batch_opts): envelopes read back raw with
 * basic.get and taken apart here with the codec, so what is checked is the wire format
 * the broker stored, not salvo's own consumer.
 *
 *   async 100k          100,000 records of 100 B, async confirms: one outcome per record,
 *                       in order, with its opaque; every record in the queue exactly once,
 *                       in order; envelopes counted, far fewer than records
 *   linger              3 records and no further call: the I/O thread sends them as one
 *                       envelope within linger; none is sent before
 *   sync                sync publishes: each returns acked, one envelope each
 *   best effort         records counted as published; flush sends every one
 *   keys split          records alternating routing keys go to their queues, in envelopes
 *                       of one key each
 *   lz4, zstd           compressible records: content_encoding set, the body smaller than
 *                       the records, every record back
 *   incompressible      random records with lz4: sent plain (no content_encoding)
 *   returned            mandatory and unroutable: every record RETURNED, with its opaque
 *                       and the envelope returned whole, its record named in it
 *   refusals            content_type in the properties, a record over max_bytes,
 *                       max_records above half the window, an envelope over frame_max
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/codec/batch.h"
#include "../rabbit.h"

#define Q  "salvo.test.batch"
#define Q2 "salvo.test.batch.2"

static salvo_client *client(void)
{
	return rabbit_connect(rabbit_test_uri(), NULL);
}

static salvo_channel *channel_with(salvo_client *c, const char *q)
{
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	return ch;
}

/* What one envelope read back holds. */
struct envelope {
	const char *encoding; /* NULL: plain */
	uint64_t records;     /* x-salvo-records */
	size_t body_len;      /* as stored */
	uint8_t *body;	      /* decompressed */
	size_t len;
};

/* Take the next message of q apart: 0 when the queue is empty. */
static int next_envelope(salvo_channel *ch, const char *q, struct envelope *e)
{
	static uint8_t out[1 << 20];
	salvo_message *m;
	salvo_error err;
	const salvo_props *pr;
	salvo_table_iter it;
	salvo_field f;
	struct sv_codec_error cerr;
	const uint8_t *body, *plain;
	size_t len;
	enum sv_batch_codec codec = SV_BATCH_PLAIN;

	OK(salvo_basic_get(ch, q, true, &m, &err));
	if (!m)
		return 0;
	pr = salvo_message_props(m);
	CHECK(pr->content_type && strcmp(pr->content_type, SV_BATCH_CONTENT_TYPE) == 0);
	e->encoding = NULL;
	if (pr->content_encoding && pr->content_encoding[0]) {
		e->encoding = strcmp(pr->content_encoding, "lz4") == 0 ? "lz4" : "zstd";
		codec = strcmp(pr->content_encoding, "lz4") == 0 ? SV_BATCH_LZ4 : SV_BATCH_ZSTD;
		CHECK(strcmp(pr->content_encoding, e->encoding) == 0);
	}
	e->records = 0;
	salvo_table_iter_init(&it, pr->headers);
	while (salvo_table_next(&it, &f) == 1)
		if (strcmp(f.key, SV_BATCH_RECORDS_HEADER) == 0) {
			CHECK(f.type == SALVO_FIELD_I32);
			e->records = (uint64_t)f.v.i32;
		}
	CHECK(e->records > 0);
	body = salvo_message_body(m, &len);
	e->body_len = len;
	if (sv_batch_inflate(codec, body, len, out, sizeof out, &plain, &e->len, &cerr) ||
	    sv_batch_check(plain, e->len, e->records, &cerr)) {
		fprintf(stderr, "envelope: %s\n", cerr.reason);
		exit(1);
	}
	free(e->body);
	e->body = malloc(e->len ? e->len : 1);
	CHECK(e->body);
	memcpy(e->body, plain, e->len);
	salvo_message_destroy(m);
	return 1;
}

/* A record of `size` bytes numbered i: the number, then filler. */
static void make_record(uint8_t *r, size_t size, uint64_t i)
{
	memset(r, 'a' + (int)(i % 26), size);
	for (int b = 0; b < 8; b++)
		r[b] = (uint8_t)(i >> (56 - 8 * b));
}

static uint64_t record_number(const uint8_t *r)
{
	uint64_t v = 0;

	for (int b = 0; b < 8; b++)
		v = v << 8 | r[b];
	return v;
}

/* Read q back: every record numbered 0 .. n-1 exactly once and in order, of size bytes.
 * Returns the number of envelopes. */
static uint64_t read_back(salvo_channel *ch, const char *q, uint64_t n, size_t size,
			  const char *encoding)
{
	struct envelope e = {0};
	uint64_t next = 0, envs = 0;

	while (next_envelope(ch, q, &e)) {
		struct sv_batch_iter it;
		const uint8_t *r;
		uint32_t len;

		envs++;
		CHECK((encoding == NULL) == (e.encoding == NULL));
		CHECK(!encoding || strcmp(encoding, e.encoding) == 0);
		sv_batch_iter_init(&it, e.body, e.len);
		while (sv_batch_next(&it, &r, &len)) {
			CHECK(len == size);
			CHECK(record_number(r) == next);
			next++;
		}
	}
	free(e.body);
	printf("read back %llu records in %llu envelopes\n", (unsigned long long)next,
	       (unsigned long long)envs);
	CHECK(next == n);
	return envs;
}

struct outcomes {
	uint64_t n, acked, returned, in_order;
	uintptr_t expect_opaque;
	/* RETURNED outcomes whose salvo_returned names their record of the envelope, whose
	 * body (the envelope's) holds that record as published (make_record). */
	uint64_t returned_records;
};

/* A returned envelope gives each record's outcome the envelope: seq's record must be record
 * record_index of the body, of the envelope's record_count (of max_records each). */
static bool returned_record_ok(const salvo_returned *r, uint64_t seq, uint32_t max_records)
{
	struct sv_batch_iter it;
	const uint8_t *rec;
	uint8_t want[30];
	uint32_t len, i = 0;

	if (!r || r->dropped || !r->props || !r->props->content_type ||
	    strcmp(r->props->content_type, SV_BATCH_CONTENT_TYPE) != 0 ||
	    r->record_index != (seq - 1) % max_records)
		return false;
	make_record(want, sizeof want, seq - 1);
	sv_batch_iter_init(&it, r->body, r->len);
	while (sv_batch_next(&it, &rec, &len))
		if (i++ == r->record_index)
			return len == sizeof want && !memcmp(rec, want, len) && i <= r->record_count;
	return false;
}

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct outcomes *t = arg;

	t->n++;
	if (o->kind == SALVO_OUTCOME_ACKED)
		t->acked++;
	if (o->kind == SALVO_OUTCOME_RETURNED)
		t->returned++;
	if (o->kind == SALVO_OUTCOME_RETURNED && returned_record_ok(o->returned, o->seq, 50))
		t->returned_records++;
	/* Outcomes come in sequence order, each with its own opaque. */
	if (o->seq == t->n && (uintptr_t)o->opaque == t->expect_opaque + o->seq)
		t->in_order++;
}

static void case_async_100k(void)
{
	const char *q = Q ".async-100k";
	const uint64_t n = 100000;
	struct outcomes t = {.expect_opaque = 1000};
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .on_outcome = on_outcome,
				     .on_outcome_arg = &t,
				     .batch = {.max_records = 1000}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[100];
	uint64_t envs;
	double t0;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		salvo_msg m = {.exchange = "",
			       .routing_key = q,
			       .body = rec,
			       .len = sizeof rec,
			       .opaque = (void *)(uintptr_t)(1000 + i + 1)};
		uint64_t seq;

		make_record(rec, sizeof rec, i);
		OK(salvo_publish_msg(p, &m, 30000, &seq, &err));
		CHECK(seq == i + 1);
	}
	OK(salvo_publisher_wait_confirms(p, 60000, &err));
	salvo_publisher_stats(p, &st);
	printf("async 100k: %llu records, %llu envelopes (%llu body bytes) acked %llu in "
	       "%.2f s\n",
	       (unsigned long long)st.published, (unsigned long long)st.envelopes,
	       (unsigned long long)st.envelope_bytes, (unsigned long long)st.acked, now_s() - t0);
	CHECK(t.n == n && t.acked == n && t.in_order == n);
	CHECK(st.published == n && st.acked == n && st.in_flight == 0);
	CHECK(st.envelopes >= n / 1000 && st.envelopes < n / 10);
	CHECK(st.envelope_raw_bytes == n * (sizeof rec + 4));
	OK(salvo_publisher_close(p, 10000, &err));
	envs = read_back(ch, q, n, sizeof rec, NULL);
	CHECK(envs == st.envelopes);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_linger(void)
{
	const char *q = Q ".linger";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .batch = {.max_records = 100, .linger_us = 200000}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[10];
	double t0;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	t0 = now_s();
	for (uint64_t i = 0; i < 3; i++) {
		make_record(rec, sizeof rec, i);
		OK(salvo_publish(p, "", q, rec, sizeof rec, 0, 1000, &err));
	}
	/* 200 ms of linger: nothing is sent for a while... (on a machine so loaded that the
	 * look itself ends after the linger, the envelope may rightly be out: not checked) */
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	salvo_publisher_stats(p, &st);
	if (now_s() - t0 < 0.19)
		CHECK(st.envelopes == 0);
	if (channel_queue_count(ch, q) != 0 || now_s() - t0 >= 0.19)
		printf("linger: looked after %.0f ms, too late to see it wait\n",
		       (now_s() - t0) * 1000);
	/* ...then the I/O thread closes the envelope, with no call from here. */
	while (channel_queue_count(ch, q) == 0 && now_s() - t0 < 5)
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	printf("linger: sent after %.0f ms (linger 200 ms)\n", (now_s() - t0) * 1000);
	CHECK(now_s() - t0 >= 0.19 && now_s() - t0 < 2);
	salvo_publisher_stats(p, &st);
	CHECK(st.envelopes == 1 && st.published == 3);
	CHECK(read_back(ch, q, 3, sizeof rec, NULL) == 1);
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	OK(salvo_publisher_close(p, 10000, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_sync(void)
{
	const char *q = Q ".sync";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC,
				     .batch = {.max_records = 100, .linger_us = 1000000}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[50];
	double t0 = now_s();

	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (uint64_t i = 0; i < 200; i++) {
		make_record(rec, sizeof rec, i);
		OK(salvo_publish(p, "", q, rec, sizeof rec, 0, 10000, &err));
	}
	/* A linger of a second would make 200 publishes take minutes had they waited. */
	CHECK(now_s() - t0 < 20);
	salvo_publisher_stats(p, &st);
	CHECK(st.acked == 200 && st.envelopes == 200);
	OK(salvo_publisher_close(p, 10000, &err));
	CHECK(read_back(ch, q, 200, sizeof rec, NULL) == 200);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_best_effort(void)
{
	const char *q = Q ".best-effort";
	const uint64_t n = 50000;
	salvo_publisher_opts opts = {
	    .confirm = SALVO_CONFIRM_NONE,
	    .batch = {.max_records = 500, .max_bytes = 16384, .linger_us = 1000000}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[64];

	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (uint64_t i = 0; i < n; i++) {
		make_record(rec, sizeof rec, i);
		OK(salvo_publish(p, "", q, rec, sizeof rec, 0, 10000, &err));
	}
	OK(salvo_publisher_flush(p, 30000, &err));
	salvo_publisher_stats(p, &st);
	/* 16384 bytes hold 240 records of 68: the byte limit closes them (the long linger
	 * none, but flush the last). */
	printf("best effort: %llu records, %llu envelopes\n", (unsigned long long)st.published,
	       (unsigned long long)st.envelopes);
	CHECK(st.published == n && st.envelopes == (n + 239) / 240);
	OK(salvo_publisher_close(p, 10000, &err));
	CHECK(settled_queue_count(ch, q, 3, 50) == st.envelopes);
	CHECK(read_back(ch, q, n, sizeof rec, NULL) == st.envelopes);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_keys_split(void)
{
	const char *q = Q ".keys-split";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .batch = {.max_records = 1000}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[20];

	fresh_queue(ch, Q2, NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	/* 10 to q, 10 to Q2, 10 to q: three envelopes. */
	for (uint64_t i = 0; i < 30; i++) {
		uint64_t k = i % 10 + (i >= 20 ? 10 : 0);

		make_record(rec, sizeof rec, k);
		OK(salvo_publish(p, "", i >= 10 && i < 20 ? Q2 : q, rec, sizeof rec, 0, 1000,
				 &err));
	}
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	salvo_publisher_stats(p, &st);
	CHECK(st.acked == 30 && st.envelopes == 3);
	OK(salvo_publisher_close(p, 10000, &err));
	CHECK(read_back(ch, q, 20, sizeof rec, NULL) == 2);
	CHECK(read_back(ch, Q2, 10, sizeof rec, NULL) == 1);
	OK(salvo_queue_delete(ch, Q2, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* Telemetry-like JSON records: compressible. */
static size_t json_record(char *r, size_t cap, uint64_t i)
{
	int n = snprintf(r, cap,
			 "{\"seq\":%08llu,\"host\":\"web-%02llu\",\"metric\":\"cpu.user\","
			 "\"value\":%llu.%02llu,\"unit\":\"percent\"}",
			 (unsigned long long)i, (unsigned long long)(i % 16),
			 (unsigned long long)(i % 100), (unsigned long long)(i % 97));

	return (size_t)n;
}

static void compressed(salvo_compression comp, const char *name)
{
	const uint64_t n = 20000;
	char qname[64];
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .batch = {.max_records = 2000, .compression = comp}};
	salvo_client *c = client();
	salvo_channel *ch;
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	struct envelope e = {0};
	char rec[200];
	uint64_t got = 0, zipped = 0, plain = 0;

	snprintf(qname, sizeof qname, "%s.%s", Q, name);
	ch = channel_with(c, qname);

	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (uint64_t i = 0; i < n; i++) {
		size_t len = json_record(rec, sizeof rec, i);
		OK(salvo_publish(p, "", qname, rec, len, 0, 10000, &err));
	}
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	salvo_publisher_stats(p, &st);
	printf("%s: %llu records in %llu envelopes, %llu bytes sent for %llu of records "
	       "(%.2f bytes per record)\n",
	       name, (unsigned long long)st.published, (unsigned long long)st.envelopes,
	       (unsigned long long)st.envelope_bytes, (unsigned long long)st.envelope_raw_bytes,
	       (double)st.envelope_bytes / (double)n);
	CHECK(st.acked == n);
	CHECK(st.envelope_bytes * 3 < st.envelope_raw_bytes);
	OK(salvo_publisher_close(p, 10000, &err));
	while (next_envelope(ch, qname, &e)) {
		struct sv_batch_iter it;
		const uint8_t *r;
		uint32_t len;

		/* An envelope that compression would not shrink goes plain (a few records a
		 * linger closed early, on a loaded machine); the rest are compressed. */
		if (e.encoding) {
			CHECK(strcmp(e.encoding, name) == 0 && e.body_len < e.len);
			zipped++;
		} else {
			CHECK(e.body_len == e.len);
			plain++;
		}
		sv_batch_iter_init(&it, e.body, e.len);
		while (sv_batch_next(&it, &r, &len)) {
			size_t want = json_record(rec, sizeof rec, got);
			CHECK(len == want && memcmp(r, rec, len) == 0);
			got++;
		}
	}
	free(e.body);
	CHECK(got == n && zipped > 0);
	printf("%s: %llu envelopes compressed, %llu plain\n", name, (unsigned long long)zipped,
	       (unsigned long long)plain);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_lz4(void)
{
	compressed(SALVO_COMPRESSION_LZ4, "lz4");
}

static void case_zstd(void)
{
	compressed(SALVO_COMPRESSION_ZSTD, "zstd");
}

/* Random records: lz4 cannot make them smaller, so the envelope goes plain. */
static void random_record(uint8_t *r, size_t size, uint64_t *x)
{
	for (size_t b = 0; b < size; b++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		r[b] = (uint8_t)(*x >> 24);
	}
}

static void case_incompressible(void)
{
	const char *q = Q ".incompressible";
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .batch = {.max_records = 100,
					       .linger_us = 1000000,
					       .compression = SALVO_COMPRESSION_LZ4}};
	salvo_client *c = client();
	salvo_channel *ch = channel_with(c, q);
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[2000];
	uint64_t x = 88172645463325252ull;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (uint64_t i = 0; i < 10; i++) {
		random_record(rec, sizeof rec, &x);
		OK(salvo_publish(p, "", q, rec, sizeof rec, 0, 1000, &err));
	}
	OK(salvo_publisher_wait_confirms(p, 10000, &err));
	salvo_publisher_stats(p, &st);
	printf("incompressible: %llu envelopes, %llu bytes sent for %llu of records\n",
	       (unsigned long long)st.envelopes, (unsigned long long)st.envelope_bytes,
	       (unsigned long long)st.envelope_raw_bytes);
	CHECK(st.envelopes == 1 && st.envelope_bytes == st.envelope_raw_bytes);
	OK(salvo_publisher_close(p, 10000, &err));
	{
		struct envelope e = {0};
		struct sv_batch_iter it;
		const uint8_t *r;
		uint32_t len;
		uint64_t k = 0;

		x = 88172645463325252ull;
		CHECK(next_envelope(ch, q, &e) == 1);
		CHECK(e.encoding == NULL && e.records == 10);
		sv_batch_iter_init(&it, e.body, e.len);
		while (sv_batch_next(&it, &r, &len)) {
			random_record(rec, sizeof rec, &x);
			CHECK(len == sizeof rec && memcmp(r, rec, len) == 0);
			k++;
		}
		CHECK(k == 10);
		free(e.body);
	}
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

static void case_returned(void)
{
	struct outcomes t = {.expect_opaque = 7};
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC,
				     .on_outcome = on_outcome,
				     .on_outcome_arg = &t,
				     .batch = {.max_records = 50}};
	salvo_client *c = client();
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint8_t rec[30];

	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (uint64_t i = 0; i < 120; i++) {
		salvo_msg m = {.exchange = "",
			       .routing_key = "salvo.test.batch.nowhere",
			       .body = rec,
			       .len = sizeof rec,
			       .flags = SALVO_MSG_MANDATORY,
			       .opaque = (void *)(uintptr_t)(7 + i + 1)};

		make_record(rec, sizeof rec, i);
		OK(salvo_publish_msg(p, &m, 1000, NULL, &err));
	}
	CHECK(salvo_publisher_wait_confirms(p, 10000, &err) == SALVO_ERR_RETURNED);
	salvo_publisher_stats(p, &st);
	printf("returned: %llu outcomes, %llu returned, %llu envelopes\n", (unsigned long long)t.n,
	       (unsigned long long)t.returned, (unsigned long long)st.envelopes);
	CHECK(t.n == 120 && t.returned == 120 && t.in_order == 120);
	CHECK(st.returned == 120 && st.envelopes == 3 && st.returns_unmatched == 0);
	/* Each record's outcome carries the envelope, naming the record in it. */
	CHECK(t.returned_records == 120 && st.returns_dropped == 0);
	OK(salvo_publisher_close(p, 10000, &err));
	rabbit_close(c, 10000);
}

static void case_refusals(void)
{
	const char *q = Q ".refusals";
	salvo_client *c = client();
	salvo_publisher *p;
	salvo_error err;
	salvo_props props = {.content_type = "text/plain"};
	uint8_t big[70000] = {0};
	int rc;

	{
		salvo_publisher_opts o = {
		    .confirm = SALVO_CONFIRM_ASYNC, .window = 64, .batch = {.max_records = 33}};
		rc = salvo_publisher_new(c, &o, &p, &err);
		printf("max_records above half the window: %s\n", err.text);
		CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && strstr(err.text, "window"));
	}
	{
		salvo_publisher_opts o = {.batch = {.max_records = 10, .max_bytes = 1u << 20}};
		rc = salvo_publisher_new(c, &o, &p, &err);
		printf("an envelope over frame_max: %s\n", err.text);
		CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && strstr(err.text, "frame_max"));
	}
	{
		salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC,
					  .batch = {.max_records = 10}};
		salvo_msg m = {
		    .exchange = "", .routing_key = q, .body = "x", .len = 1, .props = &props};
		salvo_pub_stats st;

		OK(salvo_publisher_new(c, &o, &p, &err));
		rc = salvo_publish_msg(p, &m, 1000, NULL, &err);
		printf("content_type: %s\n", err.text);
		CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && strstr(err.text, "content_type"));
		rc = salvo_publish(p, "", q, big, sizeof big, 0, 1000, &err);
		printf("a record over max_bytes: %s\n", err.text);
		CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && strstr(err.text, "max_bytes"));
		/* Nothing was published by either. */
		salvo_publisher_stats(p, &st);
		CHECK(st.published == 0);
		OK(salvo_publish(p, "", q, "y", 1, 0, 1000, &err));
		OK(salvo_publisher_close(p, 10000, &err));
	}
	rabbit_close(c, 10000);
}

static const struct test_case cases[] = {
    {"async 100k", .run = case_async_100k},
    {"linger", .run = case_linger},
    {"sync", .run = case_sync},
    {"best effort", .run = case_best_effort},
    {"keys split", .run = case_keys_split},
    {"lz4", .run = case_lz4},
    {"zstd", .run = case_zstd},
    {"incompressible", .run = case_incompressible},
    {"returned", .run = case_returned},
    {"refusals", .run = case_refusals},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
