/* SPDX-License-Identifier: MIT */
/*
 * Round trip of every generated method and of the basic properties: fill every argument
 * with distinctive values, encode, decode, compare argument by argument, re-encode to the
 * same bytes; every truncation of the payload must fail and a trailing byte must be
 * refused. A case per method, named as the method is ("basic.publish"), and
 * "basic.properties".
 */
#include <stdlib.h>

#include "../support.h"

#include "frame.h"
#include "methods.h"

static uint8_t table_buf[1024];
static uint8_t longstr_buf[70000];
static uint8_t shortstr_buf[255];

/* Variant v picks string lengths and bit patterns so that, across variants, every bit
 * argument is seen both set and clear and strings are seen empty, short and maximal. */
static void fill_arg(void *field, uint8_t type, unsigned v, unsigned index)
{
	static const uint32_t short_lens[] = {0, 1, 255, 17};
	static const uint32_t long_lens[] = {0, 3, sizeof longstr_buf, 300};

	switch (type) {
	case SV_ARG_BIT:
		*(bool *)field = (v >> (index % 8)) & 1;
		break;
	case SV_ARG_OCTET:
		*(uint8_t *)field = (uint8_t)(0xA5 ^ v ^ index);
		break;
	case SV_ARG_SHORT:
		*(uint16_t *)field = (uint16_t)(0xBEEF ^ v ^ index);
		break;
	case SV_ARG_LONG:
		*(uint32_t *)field = 0xDEADBEEFu ^ v ^ index;
		break;
	case SV_ARG_LONGLONG:
	case SV_ARG_TIMESTAMP:
		*(uint64_t *)field = UINT64_C(0x0123456789ABCDEF) ^ v ^ index;
		break;
	case SV_ARG_SHORTSTR:
		*(struct sv_bytes *)field = (struct sv_bytes){shortstr_buf, short_lens[v % 4]};
		break;
	case SV_ARG_LONGSTR:
		*(struct sv_bytes *)field = (struct sv_bytes){longstr_buf, long_lens[v % 4]};
		break;
	case SV_ARG_TABLE:
		*(struct sv_table *)field = v % 2 ? sv_test_sample_table(table_buf, sizeof table_buf)
						  : (struct sv_table){table_buf, 0};
		break;
	default:
		fail_msg("argument type %u not handled", type);
	}
}

static size_t arg_size(uint8_t type)
{
	switch (type) {
	case SV_ARG_BIT:
		return sizeof(bool);
	case SV_ARG_OCTET:
		return 1;
	case SV_ARG_SHORT:
		return 2;
	case SV_ARG_LONG:
		return 4;
	case SV_ARG_LONGLONG:
	case SV_ARG_TIMESTAMP:
		return 8;
	default:
		return 0;
	}
}

static void assert_arg_equal(const char *what, const void *a, const void *b, uint8_t type)
{
	size_t n = arg_size(type);

	if (n) {
		if (memcmp(a, b, n) != 0)
			fail_msg("%s differs after the round trip", what);
		return;
	}
	/* strings and tables: same length, same bytes (at a different address) */
	const struct sv_bytes *x = a, *y = b;
	if (x->len != y->len)
		fail_msg("%s: length %u became %u", what, x->len, y->len);
	if (x->len && memcmp(x->ptr, y->ptr, x->len) != 0)
		fail_msg("%s: bytes differ", what);
}

static unsigned count_bits(const struct sv_method_desc *d)
{
	unsigned n = 0;
	for (unsigned i = 0; i < d->nargs; i++)
		n += d->args[i].type == SV_ARG_BIT;
	return n;
}

static void roundtrip_method(const struct sv_method_desc *d)
{
	static uint8_t buf[160000], again[160000];
	unsigned variants = 1u << count_bits(d);
	struct sv_codec_error err;

	if (variants < 4)
		variants = 4;
	for (unsigned v = 0; v < variants; v++) {
		struct sv_method in = {.id = d->id}, out;
		size_t n, n2;

		for (unsigned i = 0; i < d->nargs; i++)
			fill_arg((char *)&in + d->args[i].offset, d->args[i].type, v, i);
		n = sv_method_encode(buf, sizeof buf, &in, &err);
		if (!n)
			fail_msg("%s variant %u: encode failed: %s", d->name, v, err.reason);
		assert_int_equal(sv_load16(buf), d->id >> 16);
		assert_int_equal(sv_load16(buf + 2), d->id & 0xFFFF);

		if (sv_method_decode(buf, n, &out, &err))
			fail_msg("%s variant %u: decode failed: %s", d->name, v, err.reason);
		assert_int_equal(out.id, d->id);
		for (unsigned i = 0; i < d->nargs; i++) {
			char what[128];
			snprintf(what, sizeof what, "%s.%s (variant %u)", d->name, d->args[i].name, v);
			assert_arg_equal(what, (char *)&in + d->args[i].offset,
					 (char *)&out + d->args[i].offset, d->args[i].type);
		}

		n2 = sv_method_encode(again, sizeof again, &out, &err);
		assert_int_equal(n2, n);
		assert_memory_equal(again, buf, n);

		/* Too little room to encode is an error, never a partial write reported as done. */
		assert_int_equal(sv_method_encode(again, n - 1, &in, &err), 0);

		/* Every truncation fails: 501 before the method id is complete, 502 after. */
		for (size_t cut = 0; cut < n; cut++) {
			if (cut > 64 && cut < n - 64 && cut % 997)
				continue; /* long strings: the edges and a sample of the middle */
			if (sv_method_decode(buf, cut, &out, &err) != -1)
				fail_msg("%s: payload cut to %zu of %zu bytes decoded", d->name, cut, n);
			assert_int_equal(err.reply_code, cut < 4 ? SV_REPLY_FRAME_ERROR
								 : SV_REPLY_SYNTAX_ERROR);
		}
		/* A trailing byte is a syntax error too. */
		buf[n] = 0;
		assert_int_equal(sv_method_decode(buf, n + 1, &out, &err), -1);
		assert_int_equal(err.reply_code, SV_REPLY_SYNTAX_ERROR);
		assert_int_equal(err.class_id, d->id >> 16);
		assert_int_equal(err.method_id, d->id & 0xFFFF);
	}
}

/* The case of one method (state: its sv_method_desc). */
static void test_method(void **state)
{
	roundtrip_method(*state);
}

/* Every combination of the 14 property flags, through a whole content header frame. */
static void test_properties(void **state)
{
	(void)state;
	static uint8_t frame[4096];
	struct sv_codec_error err;

	for (uint32_t flags = 0; flags <= SV_PROP_ALL; flags += 4) {
		struct sv_content_header in = {.class_id = SV_CLASS_BASIC,
					       .body_size = (UINT64_C(1) << 63) - 1 - flags};
		struct sv_decoded_frame d;
		size_t n;

		in.props.flags = (uint16_t)flags;
		for (unsigned i = 0; i < 14; i++)
			fill_arg((char *)&in.props + sv_basic_prop_args[i].offset,
				 sv_basic_prop_args[i].type, flags >> 2, i);
		n = sv_frame_put_header(frame, sizeof frame, 7, &in, &err);
		if (!n)
			fail_msg("flags 0x%04x: %s", flags, err.reason);
		assert_int_equal(sv_frame_decode(frame, n, SV_FRAME_MIN_SIZE, &d, &err), (ssize_t)n);
		assert_int_equal(d.frame.type, SV_FRAME_HEADER);
		assert_int_equal(d.frame.channel, 7);
		assert_int_equal(d.u.header.body_size, in.body_size);
		assert_int_equal(d.u.header.props.flags, flags);
		for (unsigned i = 0; i < 14; i++) {
			if (!(flags & (1u << (15 - i))))
				continue;
			assert_arg_equal(sv_basic_prop_args[i].name,
					 (char *)&in.props + sv_basic_prop_args[i].offset,
					 (char *)&d.u.header.props + sv_basic_prop_args[i].offset,
					 sv_basic_prop_args[i].type);
		}
	}
}

int main(int argc, char **argv)
{
	struct CMUnitTest tests[SV_METHOD_COUNT + 1];

	for (size_t i = 0; i < SV_METHOD_COUNT; i++)
		tests[i] = (struct CMUnitTest){sv_methods[i].name, test_method, NULL, NULL,
					       (void *)&sv_methods[i]};
	tests[SV_METHOD_COUNT] = (struct CMUnitTest)NAMED_TEST("basic.properties", test_properties);
	for (size_t i = 0; i < sizeof longstr_buf; i++)
		longstr_buf[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof shortstr_buf; i++)
		shortstr_buf[i] = (uint8_t)('a' + i % 26);
	return sv_test_main(argc, argv, "roundtrip", tests, SV_METHOD_COUNT + 1);
}
