/* SPDX-License-Identifier: MIT */
/*
 * sv_text_escape: text from the network made safe for terminals and logs. Fixed cases for
 * each rule, then random bytes checked against the properties every output must have:
 * well-formed UTF-8, no control character, within the buffer, and (uncut) decoding back
 * to the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../support.h"

#include "error.h"

static const char *esc(const char *in, size_t len, size_t cap)
{
	static char out[1024];

	assert_true(cap <= sizeof out);
	return sv_text_escape(out, cap, (const uint8_t *)in, len);
}

#define ESC(lit) esc(lit, sizeof lit - 1, 1024)

static void test_plain_kept(void **state)
{
	(void)state;
	assert_string_equal(ESC("NOT_FOUND - no exchange 'x' in vhost '/'"),
			    "NOT_FOUND - no exchange 'x' in vhost '/'");
	assert_string_equal(ESC(""), "");
}

static void test_controls_escaped(void **state)
{
	(void)state;
	assert_string_equal(ESC("\x1b[31m evil \x07"), "\\x1b[31m evil \\x07");
	assert_string_equal(ESC("tab\there\r\n"), "tab\\x09here\\x0d\\x0a");
	assert_string_equal(ESC("del\x7f"), "del\\x7f");
	/* NUL cuts nothing. */
	assert_string_equal(ESC("before\0after"), "before\\x00after");
	/* The backslash is doubled, so the escapes cannot be forged. */
	assert_string_equal(ESC("a\\x1b"), "a\\\\x1b");
}

static void test_utf8(void **state)
{
	(void)state;
	/* Valid sequences of 2, 3 and 4 bytes stay. */
	assert_string_equal(ESC("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87"),
			    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87");
	/* C1 controls (U+0080..U+009F) are controls too: U+009B is a terminal's CSI. */
	assert_string_equal(ESC("\xc2\x9b" "31m"), "\\xc2\\x9b31m");
	assert_string_equal(ESC("\xc2\xa0"), "\xc2\xa0");
	/* Bytes outside any sequence, overlong forms, surrogates, beyond U+10FFFF, and a
	 * sequence cut by the end of the text. */
	assert_string_equal(ESC("\xff\xfe"), "\\xff\\xfe");
	assert_string_equal(ESC("\xc0\x80"), "\\xc0\\x80");
	assert_string_equal(ESC("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
	assert_string_equal(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
	assert_string_equal(ESC("ok\xe2\x82"), "ok\\xe2\\x82");
	/* A stray continuation byte before a valid character leaves the character whole. */
	assert_string_equal(ESC("\x80\xc3\xa9"), "\\x80\xc3\xa9");
}

static void test_cut(void **state)
{
	(void)state;
	/* Everything fits: no "...". */
	assert_string_equal(esc("abcdef", 6, 7), "abcdef");
	/* Cut: "..." within the buffer. */
	assert_string_equal(esc("abcdefgh", 8, 8), "abcd...");
	/* Never inside an escape or a character. */
	assert_string_equal(esc("ab\x1b" "cdef", 7, 8), "ab...");
	assert_string_equal(esc("ab\xe2\x82\xac" "cdef", 9, 9), "ab\xe2\x82\xac...");
	assert_string_equal(esc("ab\xe2\x82\xac" "cdef", 9, 8), "ab...");
	/* The smallest buffer. */
	assert_string_equal(esc("abcdef", 6, 4), "...");
	assert_string_equal(esc("abc", 3, 4), "abc");
	char tiny[3] = "zz";
	sv_text_escape(tiny, sizeof tiny, (const uint8_t *)"abc", 3);
	assert_string_equal(tiny, "");
}

/* Undo the escapes of an uncut output. */
static size_t unescape(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (*s) {
		if (s[0] == '\\' && s[1] == '\\') {
			out[n++] = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x') {
			char hex[3] = {s[2], s[3], 0};
			out[n++] = (uint8_t)strtoul(hex, NULL, 16);
			s += 4;
		} else {
			out[n++] = (uint8_t)*s++;
		}
	}
	return n;
}

/* Well-formed UTF-8 with no control character (the output's promise). */
static void assert_clean(const char *s)
{
	const uint8_t *p = (const uint8_t *)s;

	while (*p) {
		uint32_t cp;
		size_t n;

		if (p[0] < 0x80) {
			assert_true(p[0] >= 0x20 && p[0] != 0x7f);
			p++;
			continue;
		}
		if ((p[0] & 0xe0) == 0xc0) {
			n = 2;
			cp = p[0] & 0x1f;
		} else if ((p[0] & 0xf0) == 0xe0) {
			n = 3;
			cp = p[0] & 0x0f;
		} else {
			assert_true((p[0] & 0xf8) == 0xf0);
			n = 4;
			cp = p[0] & 0x07;
		}
		for (size_t i = 1; i < n; i++) {
			assert_true((p[i] & 0xc0) == 0x80);
			cp = cp << 6 | (p[i] & 0x3f);
		}
		assert_true(n == (cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4)); /* not overlong */
		assert_true(cp >= 0xa0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff));
		p += n;
	}
}

static void test_random(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	uint8_t in[300], back[1200];
	char out[1024];

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(x % sizeof in), cap = 4 + (size_t)((x >> 20) % 1020);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Mostly text, some UTF-8 lead and continuation bytes, some controls. */
			in[i] = (x & 3) ? (uint8_t)(0x20 + x % 95) : (uint8_t)(x >> 8);
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memset(out, 0x55, sizeof out);
		sv_text_escape(out, cap, in, len);
		size_t olen = strlen(out);
		assert_true(olen < cap);
		assert_clean(out);
		if (olen < 3 || strcmp(out + olen - 3, "...") != 0) {
			assert_int_equal(unescape(out, back), len);
			assert_memory_equal(back, in, len);
		}
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("plain kept", test_plain_kept),
		NAMED_TEST("controls escaped", test_controls_escaped),
		NAMED_TEST("utf8", test_utf8),
		NAMED_TEST("cut", test_cut),
		NAMED_TEST("random", test_random),
	};
	return sv_test_main(argc, argv, "text", tests, sizeof tests / sizeof tests[0]);
}
