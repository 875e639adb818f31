/* SPDX-License-Identifier: MIT */
/*
 * Message properties and field tables without a broker: every property and every header
 * field type through sv_props_from_public, a publish template, the frame decoder and the
 * copy a received message keeps; absent properties, SALVO_MSG_PERSISTENT, the refusals of
 * the table builder and of the properties, and the iterator on malformed bytes. Run with a
 * test's name to run that test alone.
 */
#include <stdlib.h>

#include "../support.h"

#include "../props_sample.h"
#include "frame.h"
#include "props.h"
#include "template.h"

#define FRAME_MAX 131072

/* Encode props into a publish template, decode its content header as the I/O thread does
 * and copy the properties out as a received message does; *mem is the copy's memory. */
static void roundtrip(const salvo_props *in, bool persistent, salvo_props *out, void **mem)
{
	struct sv_basic_props bp;
	struct sv_publish_template t;
	struct sv_codec_error err;
	struct sv_decoded_frame d;
	static uint8_t buf[16384];
	ssize_t n;

	assert_int_equal(sv_props_from_public(in, persistent, &bp, NULL), 0);
	assert_int_equal(sv_publish_template_init(&t, buf, sizeof buf, 1, SV_BYTES("ex"),
						  SV_BYTES("rk"), false, &bp, FRAME_MAX, &err),
			 0);
	n = sv_frame_decode(t.bytes, t.len, FRAME_MAX, &d, &err);
	assert_true(n > 0);
	assert_int_equal(d.frame.type, SV_FRAME_METHOD);
	assert_int_equal(sv_frame_decode(t.bytes + n, t.len - (size_t)n, FRAME_MAX, &d, &err),
			 (ssize_t)(t.len - (size_t)n));
	assert_int_equal(d.frame.type, SV_FRAME_HEADER);
	assert_int_equal(sv_props_encoded_size(&bp), d.frame.size - 12);
	assert_int_equal(sv_props_copy(&d.u.header.props, out, mem), 0);
	/* The template lives on; the copy must not point into it. */
	memset(buf, 0, sizeof buf);
}

static void test_every_property(void **state)
{
	salvo_table *h = sample_headers();
	salvo_props in, out;
	char text[8192];
	void *mem;
	(void)state;

	assert_non_null(h);
	in = sample_props(h);
	sample_text(&in, text, sizeof text);
	assert_string_equal(text, sample_expected);
	roundtrip(&in, false, &out, &mem);
	sample_text(&out, text, sizeof text);
	assert_string_equal(text, sample_expected);
	salvo_table_destroy(h);
	free(mem);
}

static void test_absent(void **state)
{
	salvo_props in = {.content_type = "", .app_id = "a"}, out;
	void *mem;
	(void)state;

	roundtrip(&in, false, &out, &mem);
	assert_non_null(out.content_type);
	assert_string_equal(out.content_type, "");
	assert_string_equal(out.app_id, "a");
	assert_null(out.content_encoding);
	assert_null(out.headers);
	assert_null(out.correlation_id);
	assert_null(out.reply_to);
	assert_null(out.expiration);
	assert_null(out.message_id);
	assert_null(out.type);
	assert_null(out.user_id);
	assert_null(out.cluster_id);
	assert_int_equal(out.flags, 0);
	free(mem);

	roundtrip(NULL, false, &out, &mem);
	assert_null(mem);
	assert_null(out.content_type);
	assert_int_equal(out.flags, 0);
}

static void test_persistent(void **state)
{
	salvo_props in = {.flags = SALVO_PROP_DELIVERY_MODE, .delivery_mode = 1}, out;
	void *mem;
	(void)state;

	roundtrip(NULL, true, &out, &mem);
	assert_int_equal(out.flags, SALVO_PROP_DELIVERY_MODE);
	assert_int_equal(out.delivery_mode, 2);
	/* The caller's delivery mode wins over the flag. */
	roundtrip(&in, true, &out, &mem);
	assert_int_equal(out.flags, SALVO_PROP_DELIVERY_MODE);
	assert_int_equal(out.delivery_mode, 1);
	/* An empty props struct adds nothing. */
	roundtrip(&(salvo_props){0}, false, &out, &mem);
	assert_int_equal(out.flags, 0);
	assert_null(mem);
}

static void test_invalid_props(void **state)
{
	char long_str[300];
	struct sv_basic_props bp;
	salvo_table *arr = salvo_array_new();
	salvo_error err;
	(void)state;

	memset(long_str, 'a', 256);
	long_str[256] = '\0';
	assert_int_equal(
	    sv_props_from_public(&(salvo_props){.message_id = long_str}, false, &bp, &err),
	    SALVO_ERR_INVALID_ARGUMENT);
	assert_non_null(strstr(err.text, "message_id is 256 bytes"));
	long_str[255] = '\0';
	assert_int_equal(
	    sv_props_from_public(&(salvo_props){.message_id = long_str}, false, &bp, &err), 0);
	assert_int_equal(sv_props_from_public(&(salvo_props){.flags = 0x8}, false, &bp, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(sv_props_from_public(&(salvo_props){.headers = arr}, false, &bp, &err),
			 SALVO_ERR_INVALID_ARGUMENT);
	salvo_table_destroy(arr);
}

static void test_table_refusals(void **state)
{
	salvo_table *t = salvo_table_new(), *a = salvo_array_new(), *deep = salvo_table_new();
	char key[300];
	(void)state;

	memset(key, 'k', 256);
	key[256] = '\0';
	assert_int_equal(salvo_table_add_i8(t, NULL, 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_i8(t, key, 1), SALVO_ERR_INVALID_ARGUMENT);
	key[255] = '\0';
	assert_int_equal(salvo_table_add_i8(t, key, 1), 0);
	assert_int_equal(salvo_table_add_i8(a, "k", 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_i8(NULL, "k", 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_bytes(t, "x", NULL, 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_bytes(t, "x", NULL, 0), 0);
	assert_int_equal(salvo_table_add_string(t, "s", NULL), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_table(t, "self", t), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_table(t, "null", NULL), SALVO_ERR_INVALID_ARGUMENT);

	/* Sixteen levels in all, the outermost included, as the decoders accept. */
	for (int level = 2; level <= 16; level++) {
		salvo_table *up = salvo_table_new();
		assert_int_equal(salvo_table_add_table(up, "d", deep), 0);
		salvo_table_destroy(deep);
		deep = up;
	}
	struct sv_codec_error cerr;
	assert_int_equal(sv_table_validate(sv_table_of(deep).ptr, sv_table_of(deep).len, &cerr), 0);
	salvo_table *top = salvo_table_new();
	assert_int_equal(salvo_table_add_table(top, "d", deep), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_table_add_table(a, NULL, deep), SALVO_ERR_INVALID_ARGUMENT);
	salvo_table_destroy(top);
	salvo_table_destroy(deep);
	salvo_table_destroy(a);
	salvo_table_destroy(t);
}

static void test_iterator(void **state)
{
	static const uint8_t bad[] = {1, 'a', 'Z'};
	struct sv_basic_props bp = {.flags = SV_PROP_HEADERS, .headers = {bad, sizeof bad}};
	salvo_table *empty = salvo_table_new();
	salvo_table_iter it;
	salvo_field f;
	salvo_props out;
	void *mem;
	(void)state;

	salvo_table_iter_init(&it, NULL);
	assert_int_equal(salvo_table_next(&it, &f), 0);
	salvo_table_iter_init(&it, empty);
	assert_int_equal(salvo_table_next(&it, &f), 0);
	/* Received headers are read-only. */
	assert_int_equal(sv_props_copy(&bp, &out, &mem), 0);
	assert_int_equal(salvo_table_add_i8((salvo_table *)out.headers, "k", 1),
			 SALVO_ERR_INVALID_ARGUMENT);
	salvo_table_iter_init(&it, out.headers);
	assert_int_equal(salvo_table_next(&it, &f), SALVO_ERR_PROTOCOL);
	salvo_table_destroy(empty);
	free(mem);
	/* A key comes back NUL-terminated, with its length. */
	empty = salvo_table_new();
	assert_int_equal(salvo_table_add_u16(empty, "k", 0x1234), 0);
	salvo_table_iter_init(&it, empty);
	assert_int_equal(salvo_table_next(&it, &f), 1);
	assert_string_equal(f.key, "k");
	assert_int_equal(f.key_len, 1);
	assert_int_equal(f.type, SALVO_FIELD_U16);
	assert_int_equal(f.v.u16, 0x1234);
	assert_int_equal(salvo_table_next(&it, &f), 0);
	salvo_table_destroy(empty);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    NAMED_TEST("every property", test_every_property),
	    NAMED_TEST("absent properties", test_absent),
	    NAMED_TEST("persistent", test_persistent),
	    NAMED_TEST("invalid properties", test_invalid_props),
	    NAMED_TEST("table refusals", test_table_refusals),
	    NAMED_TEST("iterator", test_iterator),
	};

	return sv_test_main(argc, argv, "props", tests, sizeof tests / sizeof tests[0]);
}
