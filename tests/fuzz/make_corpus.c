/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzz targets' seed corpus: `make_corpus DIR` fills DIR/frame, DIR/table and
 * DIR/batch (batch_seeds.c).
 * tests/fuzz/corpus is its committed output; rerun it there after a codec change and commit
 * the result (the regression-* seeds are hand-kept and not written here).
 *
 * Frame seeds begin with the two bytes fuzz_frame reads as frame_max - 4096, then a byte
 * stream: every method with sample arguments, content headers, bodies, heartbeats, whole
 * conversations. Invalid seeds each break one rule of a valid input, so that mutations
 * explore both sides of the decoder's checks. Table seeds are table contents.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../support.h"

#include "corpus.h"
#include "frame.h"
#include "template.h"

static const char *out_dir;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_corpus: %s: %s\n", what, why);
	exit(1);
}

void write_seed(const char *kind, const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s/%s", out_dir, kind, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
		die(path, strerror(errno));
}

/* A frame seed under construction: frame_max prefix, then frames. */
struct seed {
	uint8_t buf[16384];
	size_t len;
};

static uint8_t *seed_room(struct seed *s, size_t n)
{
	uint8_t *p = s->buf + s->len;

	if (sizeof s->buf - s->len < n)
		die("seed", "buffer too small");
	s->len += n;
	return p;
}

static void seed_begin(struct seed *s, uint32_t frame_max)
{
	s->len = 0;
	sv_store16(seed_room(s, 2), (uint16_t)(frame_max - SV_FRAME_MIN_SIZE));
}

static void seed_bytes(struct seed *s, const void *p, size_t n)
{
	memcpy(seed_room(s, n), p, n);
}

static void check(size_t n, const struct sv_codec_error *err)
{
	if (!n)
		die("encoding failed", err->reason);
}

static void seed_method(struct seed *s, uint16_t channel, const struct sv_method *m)
{
	struct sv_codec_error err;
	size_t n = sv_frame_put_method(s->buf + s->len, sizeof s->buf - s->len, channel, m, &err);

	check(n, &err);
	s->len += n;
}

static void seed_header(struct seed *s, uint16_t channel, const struct sv_content_header *h)
{
	struct sv_codec_error err;
	size_t n = sv_frame_put_header(s->buf + s->len, sizeof s->buf - s->len, channel, h, &err);

	check(n, &err);
	s->len += n;
}

static void seed_body(struct seed *s, uint16_t channel, uint32_t len)
{
	static uint8_t body[8192];
	struct sv_codec_error err;
	size_t n;

	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)('a' + i % 26);
	n = sv_frame_put_body(s->buf + s->len, sizeof s->buf - s->len, channel, body, len, &err);
	check(n, &err);
	s->len += n;
}

static void seed_heartbeat(struct seed *s)
{
	sv_frame_put_heartbeat(seed_room(s, SV_HEARTBEAT_FRAME_SIZE));
}

static void seed_write(const struct seed *s, const char *name)
{
	write_seed("frame", name, s->buf, s->len);
}

static uint8_t sample_buf[1024];
static struct sv_table sample;

/* Sample arguments: strings spell the argument's name, numbers are distinct, bits
 * alternate starting with set, tables are the sample table. */
static void fill_arg(void *field, const struct sv_arg_desc *a, unsigned i)
{
	struct sv_bytes name = {(const uint8_t *)a->name, (uint32_t)strlen(a->name)};

	switch (a->type) {
	case SV_ARG_BIT:
		*(bool *)field = i % 2 == 0;
		break;
	case SV_ARG_OCTET:
		*(uint8_t *)field = (uint8_t)(i + 1);
		break;
	case SV_ARG_SHORT:
		*(uint16_t *)field = (uint16_t)(300 + i);
		break;
	case SV_ARG_LONG:
		*(uint32_t *)field = 131072 + i;
		break;
	case SV_ARG_LONGLONG:
	case SV_ARG_TIMESTAMP:
		*(uint64_t *)field = UINT64_C(1700000000) + i;
		break;
	case SV_ARG_SHORTSTR:
	case SV_ARG_LONGSTR:
		*(struct sv_bytes *)field = name;
		break;
	case SV_ARG_TABLE:
		*(struct sv_table *)field = sample;
		break;
	}
}

static struct sv_method sample_method(uint32_t id)
{
	const struct sv_method_desc *d = sv_method_desc(id);
	struct sv_method m = {.id = id};

	for (unsigned i = 0; i < d->nargs; i++)
		fill_arg((char *)&m + d->args[i].offset, &d->args[i], i);
	return m;
}

static struct sv_content_header sample_header(uint16_t flags, uint64_t body_size)
{
	struct sv_content_header h = {.class_id = SV_CLASS_BASIC, .body_size = body_size};

	h.props.flags = flags;
	for (unsigned i = 0; i < 14; i++) {
		const struct sv_arg_desc *a = &sv_basic_prop_args[i];
		fill_arg((char *)&h.props + a->offset, a, i);
	}
	return h;
}

static uint16_t channel_of(uint32_t id)
{
	return id >> 16 == SV_CLASS_CONNECTION ? 0 : 1;
}

static void method_seeds(void)
{
	struct seed s;

	for (size_t i = 0; i < SV_METHOD_COUNT; i++) {
		struct sv_method m = sample_method(sv_methods[i].id);
		char name[64];

		seed_begin(&s, SV_FRAME_MIN_SIZE);
		seed_method(&s, channel_of(m.id), &m);
		snprintf(name, sizeof name, "method-%s", sv_methods[i].name);
		seed_write(&s, name);
	}
}

static void conversation(struct seed *s, const uint32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sv_method m = sample_method(ids[i]);
		seed_method(s, channel_of(ids[i]), &m);
	}
}

static void stream_seeds(void)
{
	static const uint32_t handshake[] = {
		SV_CONNECTION_START, SV_CONNECTION_START_OK, SV_CONNECTION_TUNE,
		SV_CONNECTION_TUNE_OK, SV_CONNECTION_OPEN, SV_CONNECTION_OPEN_OK,
		SV_CHANNEL_OPEN, SV_CHANNEL_OPEN_OK, SV_CONFIRM_SELECT, SV_CONFIRM_SELECT_OK,
	};
	static const uint32_t goodbye[] = {
		SV_CHANNEL_CLOSE, SV_CHANNEL_CLOSE_OK, SV_CONNECTION_CLOSE, SV_CONNECTION_CLOSE_OK,
	};
	static uint8_t template_buf[8192], publish[16384], body[9000];
	struct sv_content_header h = sample_header(SV_PROP_ALL, 0);
	struct sv_publish_template t;
	struct sv_codec_error err;
	struct sv_method m;
	struct seed s;

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	conversation(&s, handshake, sizeof handshake / sizeof handshake[0]);
	seed_heartbeat(&s);
	conversation(&s, goodbye, sizeof goodbye / sizeof goodbye[0]);
	seed_write(&s, "stream-handshake");

	/* What a publisher sends: the template's frames, the body split at frame_max. */
	if (sv_publish_template_init(&t, template_buf, sizeof template_buf, 1,
				     SV_BYTES("amq.direct"), SV_BYTES("key"), true, &h.props,
				     SV_FRAME_MIN_SIZE, &err))
		check(0, &err);
	sv_publish_write(&t, publish, NULL, 0);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_bytes(&s, publish, sv_publish_size(&t, 0));
	m = sample_method(SV_BASIC_ACK);
	seed_method(&s, 1, &m);
	seed_write(&s, "stream-publish-empty");

	memset(body, 'b', sizeof body);
	sv_publish_write(&t, publish, body, sizeof body);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_bytes(&s, publish, sv_publish_size(&t, sizeof body));
	seed_write(&s, "stream-publish");

	/* Deliveries on two channels, interleaved, a heartbeat between bodies, then acks. */
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	m = sample_method(SV_BASIC_DELIVER);
	seed_method(&s, 1, &m);
	h = sample_header(SV_PROP_CONTENT_TYPE | SV_PROP_DELIVERY_MODE, 5000);
	seed_header(&s, 1, &h);
	seed_body(&s, 1, 4000);
	seed_method(&s, 2, &m);
	h = sample_header(0, 0);
	seed_header(&s, 2, &h);
	seed_heartbeat(&s);
	seed_body(&s, 1, 1000);
	m = sample_method(SV_BASIC_ACK);
	seed_method(&s, 1, &m);
	m = sample_method(SV_BASIC_NACK);
	seed_method(&s, 2, &m);
	seed_write(&s, "stream-deliver");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	m = sample_method(SV_BASIC_GET);
	seed_method(&s, 1, &m);
	m = sample_method(SV_BASIC_GET_OK);
	seed_method(&s, 1, &m);
	h = sample_header(SV_PROP_HEADERS | SV_PROP_TIMESTAMP, 10);
	seed_header(&s, 1, &h);
	seed_body(&s, 1, 10);
	m = sample_method(SV_BASIC_GET);
	seed_method(&s, 1, &m);
	m = sample_method(SV_BASIC_GET_EMPTY);
	seed_method(&s, 1, &m);
	seed_write(&s, "stream-get");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	m = sample_method(SV_BASIC_RETURN);
	seed_method(&s, 1, &m);
	h = sample_header(SV_PROP_MESSAGE_ID, 1);
	seed_header(&s, 1, &h);
	seed_body(&s, 1, 1);
	seed_write(&s, "stream-return");
}

static void frame_seeds(void)
{
	struct sv_content_header h;
	struct seed s;

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	h = sample_header(SV_PROP_ALL, 123456);
	seed_header(&s, 1, &h);
	seed_write(&s, "header-all-properties");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	h = sample_header(0, 0);
	seed_header(&s, 1, &h);
	seed_write(&s, "header-no-properties");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_body(&s, 1, 16);
	seed_write(&s, "body");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_heartbeat(&s);
	seed_write(&s, "heartbeat");

	/* The largest payload frame_max allows: one byte more is the next seed's error. */
	seed_begin(&s, 5000);
	seed_body(&s, 1, 5000 - SV_FRAME_OVERHEAD);
	seed_write(&s, "body-at-frame-max");
}

/*
 * The deepest table decoders accept: SV_TABLE_MAX_DEPTH levels, the top table being the
 * first, arrays and tables alternating below it (an array holds the next table, a table the
 * next array), a boolean at the bottom.
 */
static struct sv_table deepest_table(uint8_t *buf, size_t cap)
{
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t;
	bool in_array = false;

	sv_table_writer_init(&w, buf, cap);
	for (int i = 1; i < SV_TABLE_MAX_DEPTH; i++) {
		if (in_array)
			sv_tw_table_begin(&w, NULL);
		else
			sv_tw_array_begin(&w, "a");
		in_array = !in_array;
	}
	sv_tw_bool(&w, in_array ? NULL : "leaf", true);
	for (int i = 1; i < SV_TABLE_MAX_DEPTH; i++) {
		if (in_array)
			sv_tw_array_end(&w);
		else
			sv_tw_table_end(&w);
		in_array = !in_array;
	}
	if (sv_table_writer_finish(&w, &t, &err))
		die("deepest table", err.reason);
	return t;
}

/* One level more than decoders accept: inner wrapped by hand, as the writer refuses to.
 * buf holds inner.len + 7 bytes. */
static struct sv_table too_deep_table(uint8_t *buf, struct sv_table inner)
{
	uint8_t *p = sv_store8(sv_store8(sv_store8(buf, 1), 'n'), SV_FIELD_TABLE);

	p = sv_store_longstr(p, (struct sv_bytes){inner.ptr, inner.len});
	return (struct sv_table){buf, (uint32_t)(p - buf)};
}

/* Patch a valid seed into an invalid one: offsets count from the first frame's start. */
static void invalid(struct seed *s, const char *name, size_t at, const uint8_t *bytes,
		    size_t n)
{
	memcpy(s->buf + 2 + at, bytes, n);
	seed_write(s, name);
}

static void invalid_seeds(void)
{
	struct sv_content_header h;
	struct sv_method m;
	uint8_t inner[256], deep[sizeof inner + 16], *bool_entry;
	struct seed s;

	m = sample_method(SV_BASIC_ACK);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	invalid(&s, "invalid-frame-end", s.len - 3, (const uint8_t[]){0xCF}, 1);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	invalid(&s, "invalid-frame-type", 0, (const uint8_t[]){4}, 1);
	/* method ids only: truncated arguments */
	invalid(&s, "invalid-method-short", 0, (const uint8_t[]){1, 0, 1, 0, 0, 0, 3}, 7);

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	s.len -= 3;
	seed_write(&s, "truncated");

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	invalid(&s, "invalid-method-unknown", 9, (const uint8_t[]){0x03, 0xE7}, 2);
	/* one more payload byte before the frame end */
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	s.buf[s.len - 1] = 0;
	s.buf[s.len++] = SV_FRAME_END;
	invalid(&s, "invalid-method-trailing", 6, (const uint8_t[]){14}, 1);

	m = sample_method(SV_BASIC_PUBLISH);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	/* the exchange name's length runs past the frame */
	invalid(&s, "invalid-method-overrun", 13, (const uint8_t[]){200}, 1);

	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_heartbeat(&s);
	invalid(&s, "invalid-heartbeat-channel", 2, (const uint8_t[]){1}, 1);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_body(&s, 0, 1);
	invalid(&s, "invalid-heartbeat-payload", 0, (const uint8_t[]){SV_FRAME_HEARTBEAT}, 1);

	seed_begin(&s, 5000);
	seed_body(&s, 1, 5000 - SV_FRAME_OVERHEAD);
	invalid(&s, "invalid-frame-too-big", 6, (const uint8_t[]){0x81}, 1);

	h = sample_header(SV_PROP_CONTENT_TYPE, 7);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_header(&s, 1, &h);
	invalid(&s, "invalid-header-class", 8, (const uint8_t[]){10}, 1);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_header(&s, 1, &h);
	invalid(&s, "invalid-header-body-size", 11, (const uint8_t[]){0x80}, 1);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_header(&s, 1, &h);
	invalid(&s, "invalid-header-flags", 20, (const uint8_t[]){0x01}, 1);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_header(&s, 1, &h);
	/* content-type's length one short leaves a byte after the last property */
	invalid(&s, "invalid-header-trailing", 21, (const uint8_t[]){11}, 1);

	m = sample_method(SV_QUEUE_DECLARE);
	m.a.queue_declare.arguments = too_deep_table(deep, deepest_table(inner, sizeof inner));
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	seed_write(&s, "invalid-table-too-deep");
	/* the sample table's first value ("bool") gets an unknown type */
	m = sample_method(SV_EXCHANGE_DECLARE);
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_method(&s, 1, &m);
	bool_entry = memmem(s.buf, s.len, "\4boolt", 6);
	if (!bool_entry)
		die("invalid-table-type", "the sample table has no \"bool\"");
	bool_entry[5] = 'Z';
	seed_write(&s, "invalid-table-type");

	/* A body where a method is due, and a body past the size the header declared. */
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_body(&s, 1, 8);
	m = sample_method(SV_BASIC_ACK);
	seed_method(&s, 1, &m);
	seed_write(&s, "invalid-content-order");
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	m = sample_method(SV_BASIC_DELIVER);
	seed_method(&s, 1, &m);
	h = sample_header(0, 3);
	seed_header(&s, 1, &h);
	seed_body(&s, 1, 4);
	seed_write(&s, "invalid-content-too-long");

	/* What a server sends when it refuses the protocol version: not a frame. */
	seed_begin(&s, SV_FRAME_MIN_SIZE);
	seed_bytes(&s, sv_protocol_header, sizeof sv_protocol_header);
	seed_write(&s, "invalid-protocol-header");
}

static void table_seed(const char *name, struct sv_table_writer *w)
{
	struct sv_codec_error err;
	struct sv_table t;

	if (sv_table_writer_finish(w, &t, &err))
		check(0, &err);
	write_seed("table", name, t.ptr, t.len);
}

static void table_seeds(void)
{
	static uint8_t buf[4096], deep[sizeof buf + 16], longstr[1001];
	static const uint8_t noncanonical_bool[] = {1, 'a', 't', 2, 1, 'b', 't', 0xFF};
	static const uint8_t nul_key[] = {3, 'a', 0, 'b', 'V'};
	static const uint8_t bad_type[] = {1, 'k', 'Z', 0};
	static const uint8_t bad_key[] = {10, 'k', 'e', 'y'};
	static const uint8_t bad_length[] = {1, 's', 'S', 0, 0, 1, 0, 'x'};
	static const uint8_t nan_bits[] = {1, 'f', 'f', 0x7F, 0x80, 0x00, 0x01,
					   1, 'd', 'd', 0xFF, 0xF0, 0, 0, 0, 0, 0, 0x01};
	struct sv_table_writer w;
	struct sv_field f;
	struct sv_table t;

	write_seed("table", "sample", sample.ptr, sample.len);
	write_seed("table", "empty", "", 0);
	write_seed("table", "bool-noncanonical", noncanonical_bool, sizeof noncanonical_bool);
	write_seed("table", "key-with-nul", nul_key, sizeof nul_key);
	/* signalling NaNs with payloads must come back bit for bit */
	write_seed("table", "nan-payloads", nan_bits, sizeof nan_bits);
	write_seed("table", "invalid-type", bad_type, sizeof bad_type);
	write_seed("table", "invalid-key-overrun", bad_key, sizeof bad_key);
	write_seed("table", "invalid-length-overrun", bad_length, sizeof bad_length);
	write_seed("table", "invalid-truncated", sample.ptr, sample.len - 3);

	t = deepest_table(buf, sizeof buf);
	write_seed("table", "nested-deepest", t.ptr, t.len);
	t = too_deep_table(deep, t);
	write_seed("table", "invalid-too-deep", t.ptr, t.len);

	sv_table_writer_init(&w, buf, sizeof buf);
	memset(longstr, 'x', sizeof longstr - 1);
	sv_tw_str(&w, "long", (const char *)longstr);
	f = (struct sv_field){.type = SV_FIELD_BYTES, .v.str = {longstr, 300}};
	sv_tw_field(&w, "bytes", &f);
	sv_tw_array_begin(&w, "array");
	for (int i = 0; i < 20; i++)
		sv_tw_i64(&w, NULL, i);
	sv_tw_array_end(&w);
	table_seed("long-values", &w);
}

int main(int argc, char **argv)
{
	static const char *const kinds[] = {"frame", "table", "batch"};
	char path[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\nWrite the fuzz seed corpus to DIR/frame, "
				"DIR/table and DIR/batch.\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", out_dir, kinds[i]);
		if (mkdir(path, 0777) && errno != EEXIST)
			die(path, strerror(errno));
	}
	sample = sv_test_sample_table(sample_buf, sizeof sample_buf);
	method_seeds();
	stream_seeds();
	frame_seeds();
	invalid_seeds();
	table_seeds();
	batch_seeds();
	return 0;
}
