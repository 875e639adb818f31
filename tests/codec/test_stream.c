/* SPDX-License-Identifier: MIT */
/*
 * A realistic stream of frames decoded the ways a network delivers it: split at every
 * offset, one byte at a time, and cut at every length against an unmapped page so that a
 * read past the input faults instead of going unnoticed. Tables get the same treatment,
 * and the publish template's output is decoded back. Run with a test's name ("guard page")
 * to run that test alone.
 */
#include <stdlib.h>

#include "../guard.h"
#include "../support.h"

#include "frame.h"
#include "methods.h"
#include "template.h"

#define FRAME_MAX SV_FRAME_MIN_SIZE
#define CHUNK (FRAME_MAX - SV_FRAME_OVERHEAD)
#define MAX_FRAMES 64
#define CHANNELS 4

/* What decoding the stream must produce, frame by frame, as the encoders wrote it. */
struct ref_frame {
	size_t offset; /* of the frame in stream */
	uint8_t type;
	uint16_t channel;
	uint32_t size;
	uint32_t method_id; /* method frames */
	uint64_t body_size; /* content header frames */
	int event;	    /* sv_content_feed's answer; 0 for heartbeats, which are not fed */
};

static uint8_t stream[65536];
static size_t stream_len;
static struct ref_frame refs[MAX_FRAMES];
static size_t nrefs;

/* Tables the stream's frames carry, kept for the table tests. */
static uint8_t server_props_buf[4096], headers_buf[1024];
static struct sv_table server_props, headers;

static uint8_t deliver_body[10000], publish_body[10007];

/* Record the frame just written at the end of the stream, reading its envelope. */
static void record(uint32_t method_id, uint64_t body_size, int event)
{
	struct ref_frame *r = &refs[nrefs++];
	const uint8_t *f = stream + stream_len;

	assert_true(nrefs <= MAX_FRAMES);
	r->offset = stream_len;
	r->type = f[0];
	r->channel = sv_load16(f + 1);
	r->size = sv_load32(f + 3);
	r->method_id = method_id;
	r->body_size = body_size;
	r->event = event;
	assert_int_equal(f[SV_FRAME_HEADER_SIZE + r->size], SV_FRAME_END);
	stream_len += r->size + SV_FRAME_OVERHEAD;
}

static void put_method(uint16_t channel, const struct sv_method *m, int event)
{
	struct sv_codec_error err;

	if (!sv_frame_put_method(stream + stream_len, sizeof stream - stream_len, channel, m, &err))
		fail_msg("%s: %s", sv_method_name(m->id), err.reason);
	record(m->id, 0, event);
}

static void put_header(uint16_t channel, const struct sv_content_header *h)
{
	struct sv_codec_error err;

	if (!sv_frame_put_header(stream + stream_len, sizeof stream - stream_len, channel, h, &err))
		fail_msg("content header: %s", err.reason);
	record(0, h->body_size, h->body_size ? SV_CONTENT_PENDING : SV_CONTENT_COMPLETE);
}

/* A body split at the frame size, as a sender must. */
static void put_body(uint16_t channel, const uint8_t *body, size_t len)
{
	struct sv_codec_error err;

	for (size_t at = 0; at < len; at += CHUNK) {
		uint32_t n = len - at < CHUNK ? (uint32_t)(len - at) : CHUNK;
		if (!sv_frame_put_body(stream + stream_len, sizeof stream - stream_len, channel,
				       body + at, n, &err))
			fail_msg("body frame: %s", err.reason);
		record(0, 0, at + n == len ? SV_CONTENT_COMPLETE : SV_CONTENT_PENDING);
	}
}

static void put_heartbeat(void)
{
	sv_frame_put_heartbeat(stream + stream_len);
	record(0, 0, 0);
}

/* What a RabbitMQ broker sends in connection.start, plus a value of every type. */
static struct sv_table build_server_props(void)
{
	uint8_t sample_buf[1024];
	struct sv_field sample = {.type = SV_FIELD_TABLE,
				  .v.table = sv_test_sample_table(sample_buf, sizeof sample_buf)};
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t = {0};

	sv_table_writer_init(&w, server_props_buf, sizeof server_props_buf);
	sv_tw_table_begin(&w, "capabilities");
	sv_tw_bool(&w, "publisher_confirms", true);
	sv_tw_bool(&w, "exchange_exchange_bindings", true);
	sv_tw_bool(&w, "basic.nack", true);
	sv_tw_bool(&w, "consumer_cancel_notify", true);
	sv_tw_bool(&w, "connection.blocked", true);
	sv_tw_bool(&w, "authentication_failure_close", true);
	sv_tw_bool(&w, "per_consumer_qos", true);
	sv_tw_bool(&w, "direct_reply_to", true);
	sv_tw_table_end(&w);
	sv_tw_str(&w, "cluster_name", "rabbit@broker-1");
	sv_tw_str(&w, "copyright", "Copyright (c) 2007-2024 Broadcom Inc and/or its subsidiaries");
	sv_tw_str(&w, "information", "Licensed under the MPL 2.0. Website: https://rabbitmq.com");
	sv_tw_str(&w, "platform", "Erlang/OTP 26.2.5");
	sv_tw_str(&w, "product", "RabbitMQ");
	sv_tw_str(&w, "version", "3.13.7");
	sv_tw_array_begin(&w, "listeners");
	for (int tls = 0; tls < 2; tls++) {
		sv_tw_table_begin(&w, NULL);
		sv_tw_str(&w, "protocol", tls ? "amqp/ssl" : "amqp");
		sv_tw_i64(&w, "port", tls ? 5671 : 5672);
		sv_tw_array_begin(&w, "interfaces");
		sv_tw_str(&w, NULL, "0.0.0.0");
		sv_tw_str(&w, NULL, "::");
		sv_tw_array_end(&w);
		sv_tw_table_end(&w);
	}
	sv_tw_array_end(&w);
	sv_tw_field(&w, "every type", &sample);
	if (sv_table_writer_finish(&w, &t, &err))
		fail_msg("server properties: %s", err.reason);
	return t;
}

/* A dead-lettered message's headers. */
static struct sv_table build_headers(void)
{
	struct sv_field when = {.type = SV_FIELD_TIMESTAMP, .v.timestamp = 1700000000};
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t = {0};

	sv_table_writer_init(&w, headers_buf, sizeof headers_buf);
	sv_tw_array_begin(&w, "x-death");
	sv_tw_table_begin(&w, NULL);
	sv_tw_i64(&w, "count", 1);
	sv_tw_str(&w, "reason", "rejected");
	sv_tw_str(&w, "queue", "jobs");
	sv_tw_field(&w, "time", &when);
	sv_tw_str(&w, "exchange", "");
	sv_tw_array_begin(&w, "routing-keys");
	sv_tw_str(&w, NULL, "jobs");
	sv_tw_array_end(&w);
	sv_tw_table_end(&w);
	sv_tw_array_end(&w);
	sv_tw_str(&w, "x-first-death-reason", "rejected");
	sv_tw_i64(&w, "x-retries", 3);
	if (sv_table_writer_finish(&w, &t, &err))
		fail_msg("headers: %s", err.reason);
	return t;
}

static struct sv_basic_props message_props(void)
{
	return (struct sv_basic_props){
		.flags = SV_PROP_CONTENT_TYPE | SV_PROP_HEADERS | SV_PROP_DELIVERY_MODE |
			 SV_PROP_PRIORITY | SV_PROP_CORRELATION_ID | SV_PROP_MESSAGE_ID |
			 SV_PROP_TIMESTAMP | SV_PROP_APP_ID,
		.content_type = SV_BYTES("application/json"),
		.headers = headers,
		.delivery_mode = 2,
		.priority = 5,
		.correlation_id = SV_BYTES("req-17"),
		.message_id = SV_BYTES("msg-00042"),
		.timestamp = 1700000001,
		.app_id = SV_BYTES("billing"),
	};
}

/*
 * connection.start and tune on channel 0; a delivery whose body spans three frames; a
 * publish from a template (frames are frames, whichever way they travel); a get-ok whose
 * empty body ends at its header; an ack and a channel.close; heartbeats in between.
 */
static void build_stream(void)
{
	static uint8_t template_buf[8192];
	struct sv_publish_template t;
	struct sv_codec_error err;
	struct sv_content_header h = {.class_id = SV_CLASS_BASIC};
	struct sv_method m;

	if (stream_len)
		return;
	for (size_t i = 0; i < sizeof deliver_body; i++)
		deliver_body[i] = (uint8_t)(i * 31 + 7);
	for (size_t i = 0; i < sizeof publish_body; i++)
		publish_body[i] = (uint8_t)(i * 17 + 3);
	server_props = build_server_props();
	headers = build_headers();

	m = (struct sv_method){.id = SV_CONNECTION_START};
	m.a.connection_start.version_minor = 9;
	m.a.connection_start.server_properties = server_props;
	m.a.connection_start.mechanisms = SV_BYTES("AMQPLAIN PLAIN");
	m.a.connection_start.locales = SV_BYTES("en_US");
	put_method(0, &m, SV_CONTENT_METHOD);
	m = (struct sv_method){.id = SV_CONNECTION_TUNE};
	m.a.connection_tune.channel_max = 2047;
	m.a.connection_tune.frame_max = FRAME_MAX;
	m.a.connection_tune.heartbeat = 60;
	put_method(0, &m, SV_CONTENT_METHOD);
	put_heartbeat();

	m = (struct sv_method){.id = SV_BASIC_DELIVER};
	m.a.basic_deliver.consumer_tag = SV_BYTES("amq.ctag-Xk3vQ9");
	m.a.basic_deliver.delivery_tag = 42;
	m.a.basic_deliver.redelivered = true;
	m.a.basic_deliver.exchange = SV_BYTES("amq.direct");
	m.a.basic_deliver.routing_key = SV_BYTES("jobs");
	put_method(1, &m, SV_CONTENT_PENDING);
	h.body_size = sizeof deliver_body;
	h.props = message_props();
	put_header(1, &h);
	put_body(1, deliver_body, sizeof deliver_body);
	put_heartbeat();

	h.props = message_props();
	if (sv_publish_template_init(&t, template_buf, sizeof template_buf, 2,
				     SV_BYTES("amq.topic"), SV_BYTES("orders.eu.created"), true,
				     &h.props, FRAME_MAX, &err))
		fail_msg("template: %s", err.reason);
	assert_true(sv_publish_size(&t, sizeof publish_body) <= sizeof stream - stream_len);
	sv_publish_write(&t, stream + stream_len, publish_body, sizeof publish_body);
	record(SV_BASIC_PUBLISH, 0, SV_CONTENT_PENDING);
	record(0, sizeof publish_body, SV_CONTENT_PENDING);
	for (size_t at = 0; at < sizeof publish_body; at += CHUNK)
		record(0, 0, at + CHUNK >= sizeof publish_body ? SV_CONTENT_COMPLETE
							       : SV_CONTENT_PENDING);

	m = (struct sv_method){.id = SV_BASIC_GET_OK};
	m.a.basic_get_ok.delivery_tag = 7;
	m.a.basic_get_ok.exchange = SV_BYTES("");
	m.a.basic_get_ok.routing_key = SV_BYTES("empty");
	m.a.basic_get_ok.message_count = 0;
	put_method(3, &m, SV_CONTENT_PENDING);
	h = (struct sv_content_header){.class_id = SV_CLASS_BASIC};
	put_header(3, &h);

	m = (struct sv_method){.id = SV_BASIC_ACK};
	m.a.basic_ack.delivery_tag = 41;
	m.a.basic_ack.multiple = true;
	put_method(1, &m, SV_CONTENT_METHOD);
	m = (struct sv_method){.id = SV_CHANNEL_CLOSE};
	m.a.channel_close.reply_code = 406;
	m.a.channel_close.reply_text = SV_BYTES("PRECONDITION_FAILED - unknown delivery tag 99");
	m.a.channel_close.class_id = SV_CLASS_BASIC;
	m.a.channel_close.method_id = SV_BASIC_ACK & 0xFFFF;
	put_method(1, &m, SV_CONTENT_METHOD);
	put_heartbeat();
}

/* Frames of the stream wholly within its first len bytes. */
static size_t frames_within(size_t len)
{
	size_t n = 0;

	while (n < nrefs && refs[n].offset + refs[n].size + SV_FRAME_OVERHEAD <= len)
		n++;
	return n;
}

static void content_init(struct sv_content_state cs[CHANNELS])
{
	for (int i = 0; i < CHANNELS; i++)
		sv_content_init(&cs[i]);
}

/* d must be the stream's frame i: same envelope, same payload bytes, same decoded ids,
 * and the same answer from its channel's content order check. */
static void check_frame(struct sv_content_state cs[CHANNELS], size_t i,
			const struct sv_decoded_frame *d)
{
	const struct ref_frame *r = &refs[i];
	struct sv_codec_error err;
	int event;

	if (i >= nrefs)
		fail_msg("frame %zu decoded from a stream of %zu frames", i, nrefs);
	assert_int_equal(d->frame.type, r->type);
	assert_int_equal(d->frame.channel, r->channel);
	assert_int_equal(d->frame.size, r->size);
	assert_memory_equal(d->frame.payload, stream + r->offset + SV_FRAME_HEADER_SIZE, r->size);
	if (r->type == SV_FRAME_METHOD)
		assert_int_equal(d->u.method.id, r->method_id);
	if (r->type == SV_FRAME_HEADER)
		assert_int_equal(d->u.header.body_size, r->body_size);
	if (r->type == SV_FRAME_HEARTBEAT)
		return;
	assert_true(r->channel < CHANNELS);
	event = sv_content_feed(&cs[r->channel], d, &err);
	if (event != r->event)
		fail_msg("frame %zu: content event %d, expected %d (%s)", i, event, r->event,
			 event < 0 ? err.reason : "");
}

/* The whole stream at once: the reference every other test is held to. */
static void test_whole(void **state)
{
	(void)state;
	struct sv_content_state cs[CHANNELS];
	struct sv_decoded_frame d = {0};
	struct sv_reader r;
	struct sv_field f;
	size_t pos = 0, i = 0;
	ssize_t n;

	build_stream();
	content_init(cs);
	sv_reader_init(&r, FRAME_MAX);
	while ((n = sv_reader_next(&r, stream + pos, stream_len - pos, &d)) > 0) {
		check_frame(cs, i, &d);
		if (d.frame.type == SV_FRAME_METHOD && d.u.method.id == SV_CONNECTION_START) {
			struct sv_table t = d.u.method.a.connection_start.server_properties;
			assert_true(sv_table_find(t, "product", &f));
			assert_int_equal(f.type, SV_FIELD_LONGSTR);
			assert_memory_equal(f.v.str.ptr, "RabbitMQ", 8);
		}
		if (d.frame.type == SV_FRAME_METHOD && d.u.method.id == SV_BASIC_ACK)
			assert_true(d.u.method.a.basic_ack.multiple);
		pos += (size_t)n;
		i++;
	}
	if (n < 0)
		fail_msg("frame %zu: %s", i, r.err.reason);
	assert_int_equal(pos, stream_len);
	assert_int_equal(i, nrefs);
	/* the three body frames of each message are there */
	assert_int_equal(nrefs, 19);
}

/*
 * A network reader: bytes arrive in chunks into an accumulation buffer, complete frames
 * are parsed from its front, and what is left over moves to the start to wait for more.
 */
struct net {
	struct sv_reader reader;
	struct sv_content_state cs[CHANNELS];
	uint8_t *acc; /* exactly stream_len bytes, so that a read past it is a heap overrun */
	size_t have;
	size_t received;
	size_t frames;
};

static void net_init(struct net *n, uint8_t *acc)
{
	sv_reader_init(&n->reader, FRAME_MAX);
	content_init(n->cs);
	n->acc = acc;
	n->have = 0;
	n->received = 0;
	n->frames = 0;
}

static void net_receive(struct net *n, const uint8_t *data, size_t len)
{
	struct sv_decoded_frame d = {0};
	size_t start = 0;
	ssize_t rc;

	memcpy(n->acc + n->have, data, len);
	n->have += len;
	n->received += len;
	while ((rc = sv_reader_next(&n->reader, n->acc + start, n->have - start, &d)) > 0) {
		check_frame(n->cs, n->frames++, &d);
		start += (size_t)rc;
	}
	if (rc < 0)
		fail_msg("after %zu bytes, frame %zu: %s", n->received, n->frames,
			 n->reader.err.reason);
	memmove(n->acc, n->acc + start, n->have - start);
	n->have -= start;
	/* every frame that has arrived whole came out, and none that has not */
	assert_int_equal(n->frames, frames_within(n->received));
}

static void net_done(const struct net *n)
{
	assert_int_equal(n->received, stream_len);
	assert_int_equal(n->frames, nrefs);
	assert_int_equal(n->have, 0);
}

static void test_split_every_offset(void **state)
{
	(void)state;
	struct net n;
	uint8_t *acc;

	build_stream();
	acc = malloc(stream_len);
	assert_non_null(acc);
	for (size_t k = 0; k <= stream_len; k++) {
		net_init(&n, acc);
		net_receive(&n, stream, k);
		net_receive(&n, stream + k, stream_len - k);
		net_done(&n);
	}
	free(acc);
}

static void test_byte_at_a_time(void **state)
{
	(void)state;
	struct net n;
	uint8_t *acc;

	build_stream();
	acc = malloc(stream_len);
	assert_non_null(acc);
	net_init(&n, acc);
	for (size_t i = 0; i < stream_len; i++)
		net_receive(&n, stream + i, 1);
	net_done(&n);
	free(acc);
}

/*
 * Every prefix of the stream, decoded frame after frame like a reader would, ends in "need
 * more": for each frame that means every one of its prefixes has been parsed against the
 * guard page. Then every prefix of each method and content header payload goes to its
 * decoder alone, which must refuse it (a truncated payload is never valid).
 */
static void test_guard_page(void **state)
{
	(void)state;
	struct sv_content_state cs[CHANNELS];
	struct sv_decoded_frame d = {0};
	struct sv_codec_error err;
	struct guard g;

	build_stream();
	guard_init(&g, stream_len);
	for (size_t len = 0; len <= stream_len; len++) {
		const uint8_t *in = guard_place(&g, stream, len);
		size_t pos = 0, i = 0;
		ssize_t n;

		content_init(cs);
		while ((n = sv_frame_decode(in + pos, len - pos, FRAME_MAX, &d, &err)) > 0) {
			check_frame(cs, i++, &d);
			pos += (size_t)n;
		}
		if (n < 0)
			fail_msg("prefix of %zu bytes, frame %zu: %s", len, i, err.reason);
		assert_int_equal(i, frames_within(len));
	}

	for (size_t i = 0; i < nrefs; i++) {
		const struct ref_frame *r = &refs[i];
		const uint8_t *payload = stream + r->offset + SV_FRAME_HEADER_SIZE;

		if (r->type != SV_FRAME_METHOD && r->type != SV_FRAME_HEADER)
			continue;
		for (uint32_t len = 0; len <= r->size; len++) {
			const uint8_t *in = guard_place(&g, payload, len);
			int rc;

			if (r->type == SV_FRAME_METHOD)
				rc = sv_method_decode(in, len, &d.u.method, &err);
			else
				rc = sv_content_header_decode(in, len, &d.u.header, &err);
			if (len == r->size) {
				if (rc)
					fail_msg("frame %zu: %s", i, err.reason);
				continue;
			}
			if (rc != -1)
				fail_msg("frame %zu: payload cut to %u of %u bytes decoded", i, len,
					 r->size);
			if (err.reply_code != SV_REPLY_FRAME_ERROR &&
			    err.reply_code != SV_REPLY_SYNTAX_ERROR)
				fail_msg("frame %zu cut to %u bytes: reply code %u", i, len,
					 err.reply_code);
		}
	}
	guard_free(&g);
}

/* Count a table's values, nested ones included; -1 if the iterators find it malformed. */
static long walk_table(struct sv_table t);
static long walk_array(struct sv_array a);

static long walk_value(const struct sv_field *f)
{
	if (f->type == SV_FIELD_TABLE)
		return walk_table(f->v.table);
	if (f->type == SV_FIELD_ARRAY)
		return walk_array(f->v.array);
	return 0;
}

static long walk_table(struct sv_table t)
{
	struct sv_table_iter it;
	struct sv_codec_error err;
	struct sv_bytes key;
	struct sv_field f;
	long n = 0, sub;
	int rc;

	sv_table_iter_init(&it, t);
	while ((rc = sv_table_next(&it, &key, &f, &err)) == 1) {
		sub = walk_value(&f);
		if (sub < 0)
			return -1;
		n += 1 + sub;
	}
	return rc ? -1 : n;
}

static long walk_array(struct sv_array a)
{
	struct sv_array_iter it;
	struct sv_codec_error err;
	struct sv_field f;
	long n = 0, sub;
	int rc;

	sv_array_iter_init(&it, a);
	while ((rc = sv_array_next(&it, &f, &err)) == 1) {
		sub = walk_value(&f);
		if (sub < 0)
			return -1;
		n += 1 + sub;
	}
	return rc ? -1 : n;
}

/* Several kilobytes of every kind of value, nested up to four levels. */
static struct sv_table build_large_table(uint8_t *buf, size_t cap)
{
	static uint8_t text[300];
	uint8_t sample_buf[1024];
	struct sv_field sample = {.type = SV_FIELD_TABLE,
				  .v.table = sv_test_sample_table(sample_buf, sizeof sample_buf)};
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t = {0};
	struct sv_field f;

	for (size_t i = 0; i < sizeof text; i++)
		text[i] = (uint8_t)('a' + i % 26);
	sv_table_writer_init(&w, buf, cap);
	for (unsigned i = 0; i < 48; i++) {
		char key[32];

		snprintf(key, sizeof key, "entry %u", i);
		switch (i % 6) {
		case 0:
			sv_tw_field(&w, key, &sample);
			break;
		case 1:
			sv_tw_array_begin(&w, key);
			sv_tw_i64(&w, NULL, i);
			sv_tw_str(&w, NULL, "one");
			sv_tw_bool(&w, NULL, true);
			sv_tw_array_begin(&w, NULL);
			sv_tw_table_begin(&w, NULL);
			sv_tw_i64(&w, "k", -(int64_t)i);
			sv_tw_table_end(&w);
			sv_tw_array_end(&w);
			sv_tw_array_end(&w);
			break;
		case 2:
			f = (struct sv_field){.type = SV_FIELD_LONGSTR,
					      .v.str = {text, (i * 37) % sizeof text}};
			sv_tw_field(&w, key, &f);
			break;
		case 3:
			f = (struct sv_field){.type = SV_FIELD_BYTES,
					      .v.str = {(const uint8_t *)"\0\xCE\0", 3}};
			sv_tw_field(&w, key, &f);
			break;
		case 4:
			f = (struct sv_field){.type = SV_FIELD_DECIMAL, .v.decimal = {3, i}};
			sv_tw_field(&w, key, &f);
			break;
		case 5:
			f = (struct sv_field){.type = SV_FIELD_DOUBLE, .v.d = i / 3.0};
			sv_tw_field(&w, key, &f);
			break;
		}
	}
	if (sv_table_writer_finish(&w, &t, &err))
		fail_msg("large table: %s", err.reason);
	return t;
}

/* Every prefix of a table either validates and then iterates cleanly, or is a 502; the
 * iterators, which trust nothing of unvalidated input, must not crash on it either. */
static void check_table_prefixes(struct guard *g, struct sv_table t)
{
	struct sv_codec_error err;

	for (uint32_t len = 0; len <= t.len; len++) {
		struct sv_table in = {guard_place(g, t.ptr, len), len};

		if (sv_table_validate(in.ptr, in.len, &err) == 0) {
			if (walk_table(in) < 0)
				fail_msg("prefix of %u bytes validated but does not iterate", len);
			continue;
		}
		if (len == t.len)
			fail_msg("whole table refused: %s", err.reason);
		assert_int_equal(err.reply_code, SV_REPLY_SYNTAX_ERROR);
		walk_table(in);
	}
}

static void test_table_guard_page(void **state)
{
	(void)state;
	static uint8_t buf[16384];
	struct sv_table large;
	struct guard g;

	build_stream();
	large = build_large_table(buf, sizeof buf);
	assert_true(large.len > 4096);
	guard_init(&g, large.len);
	check_table_prefixes(&g, server_props);
	check_table_prefixes(&g, headers);
	check_table_prefixes(&g, large);
	guard_free(&g);
}

/* Rebuild a table from what the iterators return: it must come out byte for byte. */
static void reencode_table(struct sv_table_writer *w, struct sv_table t);
static void reencode_array(struct sv_table_writer *w, struct sv_array a);

static void reencode_value(struct sv_table_writer *w, const char *key, const struct sv_field *f)
{
	switch (f->type) {
	case SV_FIELD_TABLE:
		sv_tw_table_begin(w, key);
		reencode_table(w, f->v.table);
		sv_tw_table_end(w);
		break;
	case SV_FIELD_ARRAY:
		sv_tw_array_begin(w, key);
		reencode_array(w, f->v.array);
		sv_tw_array_end(w);
		break;
	default:
		sv_tw_field(w, key, f);
	}
}

static void reencode_table(struct sv_table_writer *w, struct sv_table t)
{
	struct sv_table_iter it;
	struct sv_codec_error err;
	struct sv_bytes key;
	struct sv_field f;
	char name[SV_SHORTSTR_MAX + 1];
	int rc;

	sv_table_iter_init(&it, t);
	while ((rc = sv_table_next(&it, &key, &f, &err)) == 1) {
		memcpy(name, key.ptr, key.len);
		name[key.len] = '\0';
		reencode_value(w, name, &f);
	}
	if (rc)
		fail_msg("iterating a validated table: %s", err.reason);
}

static void reencode_array(struct sv_table_writer *w, struct sv_array a)
{
	struct sv_array_iter it;
	struct sv_codec_error err;
	struct sv_field f;
	int rc;

	sv_array_iter_init(&it, a);
	while ((rc = sv_array_next(&it, &f, &err)) == 1)
		reencode_value(w, NULL, &f);
	if (rc)
		fail_msg("iterating a validated array: %s", err.reason);
}

static void check_reencode(struct guard *g, struct sv_table t)
{
	static uint8_t out[16384];
	struct sv_table in = {guard_place(g, t.ptr, t.len), t.len}, again;
	struct sv_table_writer w;
	struct sv_codec_error err;

	if (sv_table_validate(in.ptr, in.len, &err))
		fail_msg("%s", err.reason);
	sv_table_writer_init(&w, out, sizeof out);
	reencode_table(&w, in);
	if (sv_table_writer_finish(&w, &again, &err))
		fail_msg("re-encoding: %s", err.reason);
	assert_int_equal(again.len, t.len);
	assert_memory_equal(again.ptr, t.ptr, t.len);
}

static void test_table_iterators(void **state)
{
	(void)state;
	static uint8_t buf[16384];
	struct sv_table large;
	struct sv_array_iter ai;
	struct sv_codec_error err;
	struct sv_field f, listener, port;
	struct guard g;

	build_stream();
	large = build_large_table(buf, sizeof buf);
	guard_init(&g, large.len);
	check_reencode(&g, server_props);
	check_reencode(&g, headers);
	check_reencode(&g, large);
	/* 48 entries; under them 8 sample tables of 22 values and 8 arrays of 6 */
	assert_int_equal(walk_table(large), 48 + 8 * 22 + 8 * 6);

	/* and lookups find what the broker said */
	assert_true(sv_table_find(server_props, "capabilities", &f));
	assert_int_equal(f.type, SV_FIELD_TABLE);
	assert_true(sv_table_find(f.v.table, "basic.nack", &f));
	assert_int_equal(f.type, SV_FIELD_BOOL);
	assert_true(f.v.b);
	assert_false(sv_table_find(server_props, "capabilitie", &f));
	assert_true(sv_table_find(server_props, "listeners", &f));
	assert_int_equal(f.type, SV_FIELD_ARRAY);
	sv_array_iter_init(&ai, f.v.array);
	for (int64_t want = 5672; want >= 5671; want--) {
		assert_int_equal(sv_array_next(&ai, &listener, &err), 1);
		assert_int_equal(listener.type, SV_FIELD_TABLE);
		assert_true(sv_table_find(listener.v.table, "port", &port));
		assert_int_equal(port.type, SV_FIELD_I64);
		assert_int_equal(port.v.i64, want);
	}
	assert_int_equal(sv_array_next(&ai, &listener, &err), 0);
	guard_free(&g);
}

/*
 * sv_publish_write's frames, decoded back: basic.publish, a header with the body's size,
 * body frames of at most a chunk that add up to the body, the message complete at exactly
 * the last frame, and exactly sv_publish_size bytes written.
 */
static uint8_t big_body[3 * 131072];

static void check_publish(uint32_t frame_max, size_t body_len)
{
	enum { CANARY = 64 };
	static uint8_t template_buf[8192], got[sizeof big_body];
	struct sv_basic_props props = message_props();
	struct sv_publish_template t;
	struct sv_content_state cs;
	struct sv_decoded_frame d = {0};
	struct sv_codec_error err;
	struct sv_reader r;
	size_t size, pos = 0, got_len = 0, frames = 0;
	uint8_t *out;

	if (sv_publish_template_init(&t, template_buf, sizeof template_buf, 5,
				     SV_BYTES("amq.direct"), SV_BYTES("invoices"), true, &props,
				     frame_max, &err))
		fail_msg("template for frame_max %u: %s", frame_max, err.reason);
	assert_int_equal(t.chunk, frame_max - SV_FRAME_OVERHEAD);
	size = sv_publish_size(&t, body_len);
	out = malloc(size + CANARY);
	assert_non_null(out);
	memset(out, 0xA5, size + CANARY);
	sv_publish_write(&t, out, big_body, body_len);
	for (size_t i = size; i < size + CANARY; i++)
		if (out[i] != 0xA5)
			fail_msg("frame_max %u, body of %zu: wrote byte %zu of a %zu-byte message",
				 frame_max, body_len, i, size);

	sv_reader_init(&r, frame_max);
	sv_content_init(&cs);
	while (pos < size) {
		ssize_t n = sv_reader_next(&r, out + pos, size - pos, &d);
		int event;

		if (n <= 0)
			fail_msg("frame_max %u, body of %zu: frame %zu at byte %zu: %s", frame_max,
				 body_len, frames, pos, n ? r.err.reason : "incomplete");
		assert_int_equal(d.frame.channel, 5);
		switch (frames) {
		case 0:
			assert_int_equal(d.frame.type, SV_FRAME_METHOD);
			assert_int_equal(d.u.method.id, SV_BASIC_PUBLISH);
			assert_int_equal(d.u.method.a.basic_publish.exchange.len, 10);
			assert_memory_equal(d.u.method.a.basic_publish.exchange.ptr, "amq.direct",
					    10);
			assert_int_equal(d.u.method.a.basic_publish.routing_key.len, 8);
			assert_true(d.u.method.a.basic_publish.mandatory);
			break;
		case 1:
			assert_int_equal(d.frame.type, SV_FRAME_HEADER);
			assert_int_equal(d.u.header.body_size, body_len);
			assert_int_equal(d.u.header.props.flags, props.flags);
			assert_int_equal(d.u.header.props.headers.len, headers.len);
			break;
		default:
			assert_int_equal(d.frame.type, SV_FRAME_BODY);
			/* only the last body frame may be short of a chunk */
			if ((size_t)n < size - pos)
				assert_int_equal(d.frame.size, t.chunk);
			assert_true(got_len + d.frame.size <= body_len);
			memcpy(got + got_len, d.frame.payload, d.frame.size);
			got_len += d.frame.size;
		}
		event = sv_content_feed(&cs, &d, &err);
		pos += (size_t)n;
		frames++;
		if (event != (pos == size ? SV_CONTENT_COMPLETE : SV_CONTENT_PENDING))
			fail_msg("frame_max %u, body of %zu: frame %zu gave content event %d (%s)",
				 frame_max, body_len, frames - 1, event,
				 event < 0 ? err.reason : "");
	}
	assert_int_equal(got_len, body_len);
	assert_memory_equal(got, big_body, body_len);
	assert_int_equal(frames, 2 + (body_len + t.chunk - 1) / t.chunk);
	free(out);
}

static void test_publish_template(void **state)
{
	(void)state;
	static const uint32_t frame_maxes[] = {FRAME_MAX, FRAME_MAX + 1, 131072};

	build_stream();
	for (size_t i = 0; i < sizeof big_body; i++)
		big_body[i] = (uint8_t)(i * 13 + i / 251);
	for (size_t i = 0; i < sizeof frame_maxes / sizeof frame_maxes[0]; i++) {
		size_t chunk = frame_maxes[i] - SV_FRAME_OVERHEAD;
		size_t lens[] = {0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5};

		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++)
			check_publish(frame_maxes[i], lens[j]);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("whole", test_whole),
		NAMED_TEST("split at every offset", test_split_every_offset),
		NAMED_TEST("one byte at a time", test_byte_at_a_time),
		NAMED_TEST("guard page", test_guard_page),
		NAMED_TEST("table guard page", test_table_guard_page),
		NAMED_TEST("table iterators", test_table_iterators),
		NAMED_TEST("publish template", test_publish_template),
	};

	return sv_test_main(argc, argv, "stream", tests, sizeof tests / sizeof tests[0]);
}
