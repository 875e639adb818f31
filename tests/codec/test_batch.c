/* SPDX-License-Identifier: MIT */
/*
 * Envelopes before and after decompression: what the properties say (sv_batch_classify,
 * every malformed header one case), and the records of a body (sv_batch_check, then
 * sv_batch_next). Compressed frames are test_inflate.c's. Run with a case's name
 * ("check-leftover") to run it alone.
 */
#include <stdlib.h>

#include "../guard.h"
#include "../support.h"

#include "batch.h"

/* An error record that no refusal leaves as it is, so an unfilled one shows. */
static struct sv_codec_error poisoned(void)
{
	struct sv_codec_error e;

	memset(&e, 0, sizeof e);
	e.reply_code = 0xFFFF;
	return e;
}

/* A refusal: -1, reply code 0 (the message's fault), a reason to log. Prints the reason,
 * so the test log shows every message a user would read. */
#define assert_refused(call, err)                                                          \
	do {                                                                               \
		(err) = poisoned();                                                        \
		assert_int_equal((call), -1);                                              \
		assert_int_equal((err).reply_code, 0);                                     \
		assert_int_not_equal((err).reason[0], '\0');                               \
		printf("refused: %s\n", (err).reason);                                     \
	} while (0)

/* Properties under construction: content type, encoding, headers. */
struct props {
	struct sv_basic_props p;
	uint8_t headers[256];
};

static void props_envelope(struct props *pr, const char *encoding)
{
	memset(pr, 0, sizeof *pr);
	pr->p.flags = SV_PROP_CONTENT_TYPE;
	pr->p.content_type = SV_BYTES(SV_BATCH_CONTENT_TYPE);
	if (encoding) {
		pr->p.flags |= SV_PROP_CONTENT_ENCODING;
		pr->p.content_encoding =
		    (struct sv_bytes){(const uint8_t *)encoding, (uint32_t)strlen(encoding)};
	}
}

/* Headers holding one field named key (and a bystander before it). */
static void props_header(struct props *pr, const char *key, const struct sv_field *f)
{
	struct sv_table_writer w;
	struct sv_codec_error err;

	sv_table_writer_init(&w, pr->headers, sizeof pr->headers);
	sv_tw_str(&w, "x-other", "first");
	sv_tw_field(&w, key, f);
	assert_int_equal(sv_table_writer_finish(&w, &pr->p.headers, &err), 0);
	pr->p.flags |= SV_PROP_HEADERS;
}

static void props_records(struct props *pr, uint8_t type, uint64_t bits)
{
	struct sv_field f = {.type = type, .v.u64 = 0};

	switch (type) {
	case SV_FIELD_I8:
	case SV_FIELD_U8:
		f.v.u8 = (uint8_t)bits;
		break;
	case SV_FIELD_I16:
	case SV_FIELD_U16:
		f.v.u16 = (uint16_t)bits;
		break;
	case SV_FIELD_I32:
	case SV_FIELD_U32:
		f.v.u32 = (uint32_t)bits;
		break;
	default:
		f.v.u64 = bits;
	}
	props_header(pr, SV_BATCH_RECORDS_HEADER, &f);
}

/* Classification. */

static void test_classify_not_envelope(void **state)
{
	(void)state;
	static const char *const others[] = {
	    "application/json",
	    "application/vnd.salvo.batch+v2", /* a later version: not this reader's */
	    "application/vnd.salvo.batch",
	    "application/vnd.salvo.batch+v1; charset=binary",
	    "APPLICATION/VND.SALVO.BATCH+V1",
	    "",
	};
	struct sv_codec_error err = poisoned();
	struct sv_batch_info info = {SV_BATCH_ZSTD, 99};
	struct props pr;

	/* No content type at all, even with the header and an encoding present. */
	props_envelope(&pr, "lz4");
	props_records(&pr, SV_FIELD_I32, 5);
	pr.p.flags &= (uint16_t)~SV_PROP_CONTENT_TYPE;
	assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 0);
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		pr.p.flags |= SV_PROP_CONTENT_TYPE;
		pr.p.content_type =
		    (struct sv_bytes){(const uint8_t *)others[i], (uint32_t)strlen(others[i])};
		assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 0);
	}
	/* The content type's bytes are read only when its flag says it is there. */
	pr.p.flags &= (uint16_t)~SV_PROP_CONTENT_TYPE;
	pr.p.content_type = SV_BYTES(SV_BATCH_CONTENT_TYPE);
	assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 0);
	assert_int_equal(err.reply_code, 0xFFFF);
}

static void test_classify_codecs(void **state)
{
	(void)state;
	static const struct {
		const char *encoding;
		enum sv_batch_codec codec;
	} cases[] = {{NULL, SV_BATCH_PLAIN}, {"lz4", SV_BATCH_LZ4}, {"zstd", SV_BATCH_ZSTD}};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		props_envelope(&pr, cases[i].encoding);
		props_records(&pr, SV_FIELD_I32, 1000 + i);
		info = (struct sv_batch_info){(enum sv_batch_codec)77, 0};
		assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 1);
		assert_int_equal(info.codec, cases[i].codec);
		assert_int_equal(info.records, 1000 + i);
		if (cases[i].encoding)
			assert_string_equal(sv_batch_codec_name(cases[i].codec), cases[i].encoding);
		else
			assert_null(sv_batch_codec_name(cases[i].codec));
	}
	/* The encoding's bytes are read only when its flag says it is there. */
	props_envelope(&pr, "gzip");
	pr.p.flags &= (uint16_t)~SV_PROP_CONTENT_ENCODING;
	props_records(&pr, SV_FIELD_I32, 3);
	assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 1);
	assert_int_equal(info.codec, SV_BATCH_PLAIN);
	assert_null(sv_batch_codec_name((enum sv_batch_codec)77));
}

/* Every integer type, at the largest value each can carry up to SV_BATCH_RECORDS_MAX. */
static void test_classify_integer_types(void **state)
{
	(void)state;
	static const struct {
		uint8_t type;
		uint64_t bits, records;
	} cases[] = {
	    {SV_FIELD_I8, 0x7F, 127},
	    {SV_FIELD_U8, 0xFF, 255},
	    {SV_FIELD_I16, 0x7FFF, 32767},
	    {SV_FIELD_U16, 0xFFFF, 65535},
	    {SV_FIELD_I32, SV_BATCH_RECORDS_MAX, SV_BATCH_RECORDS_MAX},
	    {SV_FIELD_U32, SV_BATCH_RECORDS_MAX, SV_BATCH_RECORDS_MAX},
	    {SV_FIELD_I64, SV_BATCH_RECORDS_MAX, SV_BATCH_RECORDS_MAX},
	    {SV_FIELD_U64, 1, 1},
	};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		props_envelope(&pr, NULL);
		props_records(&pr, cases[i].type, cases[i].bits);
		info.records = 0;
		assert_int_equal(sv_batch_classify(&pr.p, &info, &err), 1);
		assert_int_equal(info.records, cases[i].records);
	}
}

static void test_classify_encoding_unknown(void **state)
{
	(void)state;
	static const char *const encodings[] = {"gzip", "", "LZ4", "zstd ", "identity"};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof encodings / sizeof encodings[0]; i++) {
		props_envelope(&pr, encodings[i]);
		props_records(&pr, SV_FIELD_I32, 2);
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
	/* "lz4\0": four bytes on the wire, not "lz4". */
	props_envelope(&pr, NULL);
	pr.p.flags |= SV_PROP_CONTENT_ENCODING;
	pr.p.content_encoding = (struct sv_bytes){(const uint8_t *)"lz4", 4};
	props_records(&pr, SV_FIELD_I32, 2);
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
}

static void test_classify_no_headers(void **state)
{
	(void)state;
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	props_envelope(&pr, NULL);
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	/* A table present but not flagged is not read. */
	props_records(&pr, SV_FIELD_I32, 2);
	pr.p.flags &= (uint16_t)~SV_PROP_HEADERS;
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
}

static void test_classify_header_missing(void **state)
{
	(void)state;
	struct sv_field f = {.type = SV_FIELD_I32, .v.i32 = 2};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	props_envelope(&pr, "zstd");
	props_header(&pr, "x-salvo-record", &f);
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	props_envelope(&pr, "zstd");
	props_header(&pr, "X-SALVO-RECORDS", &f);
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	props_envelope(&pr, "zstd");
	pr.p.flags |= SV_PROP_HEADERS;
	pr.p.headers = (struct sv_table){pr.headers, 0};
	assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
}

static void test_classify_header_not_integer(void **state)
{
	(void)state;
	const struct sv_field fields[] = {
	    {.type = SV_FIELD_LONGSTR, .v.str = {(const uint8_t *)"5", 1}},
	    {.type = SV_FIELD_BYTES, .v.str = {(const uint8_t *)"\0\0\0\5", 4}},
	    {.type = SV_FIELD_BOOL, .v.b = true},
	    {.type = SV_FIELD_FLOAT, .v.f = 5.0f},
	    {.type = SV_FIELD_DOUBLE, .v.d = 5.0},
	    {.type = SV_FIELD_DECIMAL, .v.decimal = {0, 5}},
	    {.type = SV_FIELD_TIMESTAMP, .v.timestamp = 5},
	    {.type = SV_FIELD_VOID},
	    {.type = SV_FIELD_TABLE, .v.table = {(const uint8_t *)"", 0}},
	    {.type = SV_FIELD_ARRAY, .v.array = {(const uint8_t *)"I\0\0\0\5", 5}},
	};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		props_envelope(&pr, "lz4");
		props_header(&pr, SV_BATCH_RECORDS_HEADER, &fields[i]);
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
}

static void test_classify_header_zero(void **state)
{
	(void)state;
	static const uint8_t types[] = {SV_FIELD_I8,  SV_FIELD_U8,  SV_FIELD_I16, SV_FIELD_U16,
					SV_FIELD_I32, SV_FIELD_U32, SV_FIELD_I64, SV_FIELD_U64};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof types; i++) {
		props_envelope(&pr, NULL);
		props_records(&pr, types[i], 0);
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
}

static void test_classify_header_negative(void **state)
{
	(void)state;
	static const struct {
		uint8_t type;
		uint64_t bits;
	} cases[] = {
	    {SV_FIELD_I8, 0xFF},		  /* -1 */
	    {SV_FIELD_I8, 0x80},		  /* -128 */
	    {SV_FIELD_I16, 0xFFFF},		  /* -1 */
	    {SV_FIELD_I32, 0xFFFFFFFF},		  /* -1 */
	    {SV_FIELD_I32, 0x80000000},		  /* INT32_MIN */
	    {SV_FIELD_I64, UINT64_MAX},		  /* -1 */
	    {SV_FIELD_I64, (uint64_t)1 << 63}, /* INT64_MIN, whose magnitude no int64_t holds */
	};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		props_envelope(&pr, NULL);
		props_records(&pr, cases[i].type, cases[i].bits);
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
}

static void test_classify_header_over_max(void **state)
{
	(void)state;
	static const struct {
		uint8_t type;
		uint64_t bits;
	} cases[] = {
	    {SV_FIELD_I32, SV_BATCH_RECORDS_MAX + 1},
	    {SV_FIELD_U32, 0xFFFFFFFF},
	    {SV_FIELD_I64, SV_BATCH_RECORDS_MAX + 1},
	    {SV_FIELD_I64, INT64_MAX},
	    {SV_FIELD_U64, UINT64_MAX}, /* would be -1 if read as signed */
	    {SV_FIELD_U64, (uint64_t)1 << 63},
	};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		props_envelope(&pr, NULL);
		props_records(&pr, cases[i].type, cases[i].bits);
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
}

/* Properties that did not come from the decoder: a headers table that does not decode. */
static void test_classify_headers_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *bytes;
		uint32_t len;
	} tables[] = {
	    {"\x0fx-salvo-records", 16},		     /* a key, no value */
	    {"\x0fx-salvo-recordsI\0\0", 19},	     /* a value cut short */
	    {"\x0fx-salvo-recordsQ\0\0\0\1", 21},    /* an unknown field type */
	    {"\x40x-salvo-recordsI\0\0\0\1", 21},    /* a key longer than the table */
	    {"\x0fx-salvo-recordsI\0\0\0\1\1", 22}, /* a stray byte after the entry */
	};
	struct sv_codec_error err;
	struct sv_batch_info info;
	struct props pr;

	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		props_envelope(&pr, NULL);
		pr.p.flags |= SV_PROP_HEADERS;
		pr.p.headers = (struct sv_table){(const uint8_t *)tables[i].bytes, tables[i].len};
		assert_refused(sv_batch_classify(&pr.p, &info, &err), err);
	}
}

/* Records. */

/* A body of n records of the given lengths, record k filled with the byte k. */
static size_t make_body(uint8_t *buf, size_t cap, const uint32_t *lens, size_t n)
{
	size_t at = 0;

	for (size_t k = 0; k < n; k++) {
		assert_true(cap - at >= SV_BATCH_RECORD_PREFIX + (size_t)lens[k]);
		sv_store32(buf + at, lens[k]);
		memset(buf + at + SV_BATCH_RECORD_PREFIX, (int)k, lens[k]);
		at += SV_BATCH_RECORD_PREFIX + lens[k];
	}
	return at;
}

/* A checked body walked: exactly the records it was made of. */
static void assert_records(const uint8_t *body, size_t len, const uint32_t *lens, size_t n)
{
	struct sv_batch_iter it;
	const uint8_t *rec;
	uint32_t rlen;
	size_t k = 0;

	sv_batch_iter_init(&it, body, len);
	while (sv_batch_next(&it, &rec, &rlen)) {
		assert_true(k < n);
		assert_int_equal(rlen, lens[k]);
		for (uint32_t j = 0; j < rlen; j++)
			assert_int_equal(rec[j], (uint8_t)k);
		k++;
	}
	assert_int_equal(k, n);
	assert_ptr_equal(it.p, body + len);
}

static void test_check_ok(void **state)
{
	(void)state;
	static const uint32_t lens[] = {100, 1, 0, 4, 3, 65536, 7};
	static uint8_t buf[70000];
	struct sv_codec_error err;
	struct guard g;
	const uint8_t *body;
	size_t len;

	len = make_body(buf, sizeof buf, lens, 7);
	/* Against the guard page: the check and the walk read nothing past the body. */
	guard_init(&g, len);
	body = guard_place(&g, buf, len);
	assert_int_equal(sv_batch_check(body, len, 7, &err), 0);
	assert_records(body, len, lens, 7);
	/* One record, the whole body. */
	len = make_body(buf, sizeof buf, lens, 1);
	body = guard_place(&g, buf, len);
	assert_int_equal(sv_batch_check(body, len, 1, &err), 0);
	assert_records(body, len, lens, 1);
	guard_free(&g);
}

static void test_check_zero_length_records(void **state)
{
	(void)state;
	static const uint32_t lens[1000];
	static uint8_t buf[4000];
	struct sv_codec_error err;
	struct guard g;
	const uint8_t *body;
	size_t len = make_body(buf, sizeof buf, lens, 1000);

	assert_int_equal(len, 4000);
	guard_init(&g, len);
	body = guard_place(&g, buf, len);
	assert_int_equal(sv_batch_check(body, len, 1000, &err), 0);
	assert_records(body, len, lens, 1000);
	guard_free(&g);
}

/* Each record's length in turn made one byte too long, then as long as a length goes. */
static void test_check_length_overrun(void **state)
{
	(void)state;
	static const uint32_t lens[] = {10, 0, 20, 5};
	uint8_t buf[64];
	struct sv_codec_error err;
	struct guard g;
	size_t len = make_body(buf, sizeof buf, lens, 4), at = 0;

	guard_init(&g, len);
	for (size_t k = 0; k < 4; k++) {
		static const uint32_t bad[] = {1, 2, 1000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
		uint8_t copy[64];

		for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
			memcpy(copy, buf, len);
			sv_store32(copy + at, lens[k] + bad[b]);
			assert_refused(sv_batch_check(guard_place(&g, copy, len), len, 4, &err),
				       err);
		}
		at += SV_BATCH_RECORD_PREFIX + lens[k];
	}
	guard_free(&g);
}

/* The body ends inside a record's length prefix, or inside its bytes. */
static void test_check_cut(void **state)
{
	(void)state;
	static const uint32_t lens[] = {10, 20};
	uint8_t buf[64];
	struct sv_codec_error err;
	struct guard g;
	size_t len = make_body(buf, sizeof buf, lens, 2);

	guard_init(&g, len);
	for (size_t cut = 1; cut < len; cut++)
		assert_refused(sv_batch_check(guard_place(&g, buf, cut), cut, 2, &err), err);
	assert_refused(sv_batch_check(buf, 0, 1, &err), err);
	guard_free(&g);
}

/* x-salvo-records says more records than the body holds. */
static void test_check_count_high(void **state)
{
	(void)state;
	static const uint32_t lens[] = {3, 0, 9};
	uint8_t buf[64];
	struct sv_codec_error err;
	size_t len = make_body(buf, sizeof buf, lens, 3);

	assert_int_equal(sv_batch_check(buf, len, 3, &err), 0);
	for (uint64_t n = 4; n < 8; n++)
		assert_refused(sv_batch_check(buf, len, n, &err), err);
	assert_refused(sv_batch_check(buf, len, SV_BATCH_RECORDS_MAX, &err), err);
}

/* x-salvo-records says fewer records than the body holds. */
static void test_check_count_low(void **state)
{
	(void)state;
	static const uint32_t lens[] = {3, 0, 9, 0};
	uint8_t buf[64];
	struct sv_codec_error err;
	size_t len = make_body(buf, sizeof buf, lens, 4);

	/* The last record is empty: 3 records leave its 4-byte length over, which counts. */
	assert_int_equal(sv_batch_check(buf, len, 4, &err), 0);
	for (uint64_t n = 1; n < 4; n++)
		assert_refused(sv_batch_check(buf, len, n, &err), err);
}

/* Bytes after the last record that are not a whole record: 1, 2, 3 bytes, and more. */
static void test_check_leftover(void **state)
{
	(void)state;
	static const uint32_t lens[] = {5, 6};
	uint8_t buf[64];
	struct sv_codec_error err;
	struct guard g;
	size_t len = make_body(buf, sizeof buf, lens, 2);

	guard_init(&g, len + 8);
	for (size_t extra = 1; extra <= 8; extra++) {
		memset(buf + len, 0xAB, extra);
		assert_refused(sv_batch_check(guard_place(&g, buf, len + extra), len + extra, 2,
					      &err),
			       err);
	}
	guard_free(&g);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("classify-not-envelope", test_classify_not_envelope),
		NAMED_TEST("classify-codecs", test_classify_codecs),
		NAMED_TEST("classify-integer-types", test_classify_integer_types),
		NAMED_TEST("classify-encoding-unknown", test_classify_encoding_unknown),
		NAMED_TEST("classify-no-headers", test_classify_no_headers),
		NAMED_TEST("classify-header-missing", test_classify_header_missing),
		NAMED_TEST("classify-header-not-integer", test_classify_header_not_integer),
		NAMED_TEST("classify-header-zero", test_classify_header_zero),
		NAMED_TEST("classify-header-negative", test_classify_header_negative),
		NAMED_TEST("classify-header-over-max", test_classify_header_over_max),
		NAMED_TEST("classify-headers-malformed", test_classify_headers_malformed),
		NAMED_TEST("check-ok", test_check_ok),
		NAMED_TEST("check-zero-length-records", test_check_zero_length_records),
		NAMED_TEST("check-length-overrun", test_check_length_overrun),
		NAMED_TEST("check-cut", test_check_cut),
		NAMED_TEST("check-count-high", test_check_count_high),
		NAMED_TEST("check-count-low", test_check_count_low),
		NAMED_TEST("check-leftover", test_check_leftover),
	};

	return sv_test_main(argc, argv, "batch", tests, sizeof tests / sizeof tests[0]);
}
