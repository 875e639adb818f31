/* SPDX-License-Identifier: MIT */
/* Helpers shared by the cmocka tests (codec, engine) and the fuzz corpus generator. */
#ifndef SALVO_TEST_SUPPORT_H
#define SALVO_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

#include "check.h"

/*
 * main of a cmocka program: the command line of every test program (check.h), each test of
 * the table a case, so that meson can run each as a test of its own. An unknown name
 * fails rather than passing vacuously.
 */
static inline int sv_test_main(int argc, char **argv, const char *group,
			       const struct CMUnitTest *tests, size_t n)
{
	long pick = pick_case(argc > 1 ? argv[1] : NULL, tests, n, sizeof tests[0]);

	if (pick == CASES_LISTED)
		return 0;
	if (pick == CASES_UNKNOWN)
		return 1;
	if (pick == CASES_ALL)
		return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	return _cmocka_run_group_tests(group, &tests[pick], 1, NULL, NULL);
}

/* A test of a table: cmocka names a test after its function; meson names it so. */
#define NAMED_TEST(name, fn) {name, fn, NULL, NULL, NULL}

/* An error record that no decoder or refusal would produce, so a failure that leaves it
 * unfilled (or a stale one from an earlier call) shows. */
static inline struct sv_codec_error sv_test_poisoned(void)
{
	struct sv_codec_error e;

	memset(&e, 0, sizeof e);
	e.reply_code = 0xFFFF;
	e.class_id = 0xFFFF;
	e.method_id = 0xFFFF;
	return e;
}

/* A table holding one value of every field type, nested table and array included. */
static inline struct sv_table sv_test_sample_table(uint8_t *buf, size_t cap)
{
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t = {0};
	struct sv_field f;

	sv_table_writer_init(&w, buf, cap);
	sv_tw_bool(&w, "bool", true);
	f = (struct sv_field){.type = SV_FIELD_I8, .v.i8 = -8};
	sv_tw_field(&w, "i8", &f);
	f = (struct sv_field){.type = SV_FIELD_U8, .v.u8 = 0xF8};
	sv_tw_field(&w, "u8", &f);
	f = (struct sv_field){.type = SV_FIELD_I16, .v.i16 = -16000};
	sv_tw_field(&w, "i16", &f);
	f = (struct sv_field){.type = SV_FIELD_U16, .v.u16 = 0xFEDC};
	sv_tw_field(&w, "u16", &f);
	f = (struct sv_field){.type = SV_FIELD_I32, .v.i32 = -2000000000};
	sv_tw_field(&w, "i32", &f);
	f = (struct sv_field){.type = SV_FIELD_U32, .v.u32 = 0xFEDCBA98u};
	sv_tw_field(&w, "u32", &f);
	sv_tw_i64(&w, "i64", INT64_MIN + 7);
	f = (struct sv_field){.type = SV_FIELD_U64, .v.u64 = UINT64_MAX - 7};
	sv_tw_field(&w, "u64", &f);
	f = (struct sv_field){.type = SV_FIELD_FLOAT, .v.f = 1.5f};
	sv_tw_field(&w, "float", &f);
	f = (struct sv_field){.type = SV_FIELD_DOUBLE, .v.d = -2.25};
	sv_tw_field(&w, "double", &f);
	f = (struct sv_field){.type = SV_FIELD_DECIMAL, .v.decimal = {2, 12345}};
	sv_tw_field(&w, "decimal", &f);
	sv_tw_str(&w, "longstr", "a long string");
	f = (struct sv_field){.type = SV_FIELD_BYTES, .v.str = {(const uint8_t *)"\0\1\2", 3}};
	sv_tw_field(&w, "bytes", &f);
	f = (struct sv_field){.type = SV_FIELD_TIMESTAMP, .v.timestamp = 1700000000};
	sv_tw_field(&w, "timestamp", &f);
	f = (struct sv_field){.type = SV_FIELD_VOID};
	sv_tw_field(&w, "void", &f);
	sv_tw_table_begin(&w, "table");
	sv_tw_bool(&w, "inner", false);
	sv_tw_table_end(&w);
	sv_tw_array_begin(&w, "array");
	sv_tw_i64(&w, NULL, 1);
	sv_tw_str(&w, NULL, "two");
	sv_tw_array_begin(&w, NULL);
	sv_tw_array_end(&w);
	sv_tw_array_end(&w);
	if (sv_table_writer_finish(&w, &t, &err))
		fail_msg("sample table: %s", err.reason);
	return t;
}

#endif
