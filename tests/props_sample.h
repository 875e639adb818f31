/* SPDX-License-Identifier: MIT */
/*
 * The sample message properties of the property tests: every basic property, and headers
 * holding a value of every field type RabbitMQ accepts, nested table and array included.
 * The values are chosen so that a wrong width, sign or byte order changes them. Shared by
 * the unit test (tests/engine/test_props.c) and the broker tests (tests/integration/
 * test_props.c, test_consume.c, batch_pika_publish.c); inline, as each uses a part.
 */
#ifndef SALVO_TEST_PROPS_SAMPLE_H
#define SALVO_TEST_PROPS_SAMPLE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "salvo.h"

static const uint8_t sample_bytes[] = {0x00, 0xFF, 0x10, 0x80};

/* The headers; NULL when out of memory. Caller destroys. */
static inline salvo_table *sample_headers(void)
{
	salvo_table *h = salvo_table_new(), *in = salvo_table_new(), *arr = salvo_array_new(),
		    *arr2 = salvo_array_new();
	bool ok = h && in && arr && arr2;

	ok = ok && !salvo_table_add_string(in, "inner", "x") && !salvo_table_add_i32(in, "n", 7);
	ok = ok && !salvo_table_add_bool(arr2, NULL, true);
	ok = ok && !salvo_table_add_i32(arr, NULL, 1) &&
	     !salvo_table_add_string(arr, NULL, "two") && !salvo_table_add_void(arr, NULL) &&
	     !salvo_table_add_table(arr, NULL, arr2);
	ok = ok && !salvo_table_add_bool(h, "bool", true) && !salvo_table_add_i8(h, "i8", -8) &&
	     !salvo_table_add_u8(h, "u8", 0xF8) && !salvo_table_add_i16(h, "i16", -16000) &&
	     !salvo_table_add_u16(h, "u16", 0xFEDC) &&
	     !salvo_table_add_i32(h, "i32", -2000000000) &&
	     !salvo_table_add_u32(h, "u32", 0xFEDCBA98u) &&
	     !salvo_table_add_int(h, "i64", INT64_MIN + 7) &&
	     !salvo_table_add_u64(h, "u64", 0x7FEDCBA987654321ull) &&
	     !salvo_table_add_float(h, "float", 1.5f) &&
	     !salvo_table_add_double(h, "double", -2.25) &&
	     !salvo_table_add_decimal(h, "decimal", 2, 12345) &&
	     !salvo_table_add_string(h, "string", "h\xc3\xa9llo w\xc3\xb6rld") &&
	     !salvo_table_add_bytes(h, "bytes", sample_bytes, sizeof sample_bytes) &&
	     !salvo_table_add_timestamp(h, "timestamp", 1700000000) &&
	     !salvo_table_add_void(h, "void") && !salvo_table_add_table(h, "table", in) &&
	     !salvo_table_add_table(h, "array", arr);
	salvo_table_destroy(in);
	salvo_table_destroy(arr);
	salvo_table_destroy(arr2);
	if (!ok) {
		salvo_table_destroy(h);
		return NULL;
	}
	return h;
}

static inline salvo_props sample_props(const salvo_table *headers)
{
	return (salvo_props){
	    .flags = SALVO_PROP_DELIVERY_MODE | SALVO_PROP_PRIORITY | SALVO_PROP_TIMESTAMP,
	    .content_type = "application/json",
	    .content_encoding = "gzip",
	    .headers = headers,
	    .delivery_mode = 2,
	    .priority = 7,
	    .correlation_id = "corr-42",
	    .reply_to = "replies",
	    .expiration = "60000",
	    .message_id = "msg-0001",
	    .timestamp = 1700000123,
	    .type = "order.created",
	    .user_id = "guest",
	    .app_id = "salvo-test",
	    .cluster_id = "cluster-9",
	};
}

/*
 * Write the properties and headers of p as canonical text, one line each, for comparing
 * two messages (and a message with what pika published): "content_type=..." for the
 * properties present, then "h KEY TYPE VALUE" for each header, nested keys joined with
 * '/', array positions as [i], strings and byte arrays in hex.
 */
static inline void dump_table(FILE *out, salvo_table_iter *it, const char *prefix, bool array);

static inline void dump_value(FILE *out, const char *path, salvo_field *f)
{
	fprintf(out, "h %s %c ", path, (char)f->type);
	switch (f->type) {
	case SALVO_FIELD_BOOL:
		fprintf(out, "%d", f->v.b);
		break;
	case SALVO_FIELD_I8:
		fprintf(out, "%d", f->v.i8);
		break;
	case SALVO_FIELD_U8:
		fprintf(out, "%u", f->v.u8);
		break;
	case SALVO_FIELD_I16:
		fprintf(out, "%d", f->v.i16);
		break;
	case SALVO_FIELD_U16:
		fprintf(out, "%u", f->v.u16);
		break;
	case SALVO_FIELD_I32:
		fprintf(out, "%ld", (long)f->v.i32);
		break;
	case SALVO_FIELD_U32:
		fprintf(out, "%lu", (unsigned long)f->v.u32);
		break;
	case SALVO_FIELD_I64:
		fprintf(out, "%lld", (long long)f->v.i64);
		break;
	case SALVO_FIELD_U64:
	case SALVO_FIELD_TIMESTAMP:
		fprintf(out, "%llu", (unsigned long long)f->v.u64);
		break;
	case SALVO_FIELD_FLOAT:
		fprintf(out, "%.9g", (double)f->v.f);
		break;
	case SALVO_FIELD_DOUBLE:
		fprintf(out, "%.17g", f->v.d);
		break;
	case SALVO_FIELD_DECIMAL:
		fprintf(out, "%u/%lu", f->v.decimal.scale, (unsigned long)f->v.decimal.value);
		break;
	case SALVO_FIELD_STRING:
	case SALVO_FIELD_BYTES:
		for (size_t i = 0; i < f->v.bytes.len; i++)
			fprintf(out, "%02x", ((const uint8_t *)f->v.bytes.ptr)[i]);
		break;
	case SALVO_FIELD_VOID:
		break;
	case SALVO_FIELD_TABLE:
	case SALVO_FIELD_ARRAY:
		fprintf(out, "-\n");
		dump_table(out, &f->v.nested, path, f->type == SALVO_FIELD_ARRAY);
		return;
	}
	fprintf(out, "\n");
}

static inline void dump_table(FILE *out, salvo_table_iter *it, const char *prefix, bool array)
{
	salvo_field f;
	char path[1024];
	int rc;

	for (unsigned i = 0; (rc = salvo_table_next(it, &f)) == 1; i++) {
		/* A path cut at 1023 bytes is still a path: the samples nest a few levels. */
		int n = array ? snprintf(path, sizeof path, "%s[%u]", prefix, i)
			      : snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "/" : "",
					 f.key);
		if (n < 0)
			path[0] = '\0';
		dump_value(out, path, &f);
	}
	if (rc)
		fprintf(out, "malformed table at %s\n", prefix);
}

static inline void sample_dump(FILE *out, const salvo_props *p)
{
	const char *names[] = {"content_type", "content_encoding", "correlation_id", "reply_to",
			       "expiration",   "message_id",	   "type",	     "user_id",
			       "app_id",       "cluster_id"};
	const char *vals[] = {p->content_type, p->content_encoding, p->correlation_id, p->reply_to,
			      p->expiration,   p->message_id,	    p->type,	       p->user_id,
			      p->app_id,       p->cluster_id};
	salvo_table_iter it;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (vals[i])
			fprintf(out, "%s=%s\n", names[i], vals[i]);
	if (p->flags & SALVO_PROP_DELIVERY_MODE)
		fprintf(out, "delivery_mode=%u\n", p->delivery_mode);
	if (p->flags & SALVO_PROP_PRIORITY)
		fprintf(out, "priority=%u\n", p->priority);
	if (p->flags & SALVO_PROP_TIMESTAMP)
		fprintf(out, "timestamp=%llu\n", (unsigned long long)p->timestamp);
	if (p->headers) {
		fprintf(out, "headers\n");
		salvo_table_iter_init(&it, p->headers);
		dump_table(out, &it, "", false);
	}
}

/* What sample_dump prints for the sample: the expected text, written out by hand. */
static const char sample_expected[] = "content_type=application/json\n"
				      "content_encoding=gzip\n"
				      "correlation_id=corr-42\n"
				      "reply_to=replies\n"
				      "expiration=60000\n"
				      "message_id=msg-0001\n"
				      "type=order.created\n"
				      "user_id=guest\n"
				      "app_id=salvo-test\n"
				      "cluster_id=cluster-9\n"
				      "delivery_mode=2\n"
				      "priority=7\n"
				      "timestamp=1700000123\n"
				      "headers\n"
				      "h bool t 1\n"
				      "h i8 b -8\n"
				      "h u8 B 248\n"
				      "h i16 s -16000\n"
				      "h u16 u 65244\n"
				      "h i32 I -2000000000\n"
				      "h u32 i 4275878552\n"
				      "h i64 l -9223372036854775801\n"
				      "h u64 L 9218247941278745377\n"
				      "h float f 1.5\n"
				      "h double d -2.25\n"
				      "h decimal D 2/12345\n"
				      "h string S 68c3a96c6c6f2077c3b6726c64\n"
				      "h bytes x 00ff1080\n"
				      "h timestamp T 1700000000\n"
				      "h void V \n"
				      "h table F -\n"
				      "h table/inner S 78\n"
				      "h table/n I 7\n"
				      "h array A -\n"
				      "h array[0] I 1\n"
				      "h array[1] S 74776f\n"
				      "h array[2] V \n"
				      "h array[3] A -\n"
				      "h array[3][0] t 1\n";

/* The canonical text of p in buf (NUL-terminated, cut at size). */
static inline void sample_text(const salvo_props *p, char *buf, size_t size)
{
	FILE *f;

	/* fmemopen writes the final NUL only after some output. */
	buf[0] = '\0';
	f = fmemopen(buf, size, "w");
	if (!f) {
		snprintf(buf, size, "fmemopen failed");
		return;
	}
	sample_dump(f, p);
	fclose(f);
}

#endif
