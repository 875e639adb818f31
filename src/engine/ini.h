/* SPDX-License-Identifier: MIT */
/*
 * A tokenizer for the small INI-style files that configure connection pools:
 *
 *	# a comment (also ';'), alone on its line
 *	[publish]
 *	uri = amqp://guest:guest@localhost:5672/
 *	pool_size = 4
 *
 * Pure, in the manner of picohttpparser: (buf, len) in, items out that point into buf; no
 * allocation, no I/O, hard limits on every length. Errors are sticky: after the first one
 * every call returns it again. What the keys mean is the caller's business (conf_file.c).
 *
 * Syntax, one item per line (lines end with "\n" or "\r\n"; the last may end without):
 *  - blank lines and lines whose first non-blank byte is '#' or ';' are skipped;
 *  - "[name]" starts a section; blanks may surround the name and follow the ']';
 *  - "key = value": blanks around both are dropped; the value runs to the end of the line
 *    and may be empty. There are no inline comments, quotes or escapes, since a URI or a
 *    password may hold '#', ';' or '"'.
 * Names (sections and keys) are 1 to SV_INI_NAME_MAX bytes of [A-Za-z0-9_.-]. A line is
 * at most SV_INI_LINE_MAX bytes; no byte may be NUL, and values hold no control bytes but
 * tab. A UTF-8 byte order mark at the start of the buffer is skipped.
 */
#ifndef SALVO_INI_H
#define SALVO_INI_H

#include <stddef.h>

#define SV_INI_LINE_MAX 8192 /* bytes per line, its end excluded: a 4 KiB URI fits */
#define SV_INI_NAME_MAX 64

enum sv_ini_kind {
	SV_INI_ERROR = -1,
	SV_INI_END = 0,
	SV_INI_SECTION,
	SV_INI_KEY,
};

struct sv_ini_item {
	enum sv_ini_kind kind;
	unsigned line;	   /* 1-based line of the item (of the error) */
	const char *start; /* the line's first byte (SECTION and KEY) */
	const char *name;  /* SECTION: its name; KEY: the key (not NUL-terminated) */
	size_t name_len;
	const char *value; /* KEY: the value (not NUL-terminated) */
	size_t value_len;
	const char *error; /* ERROR: why, a static string */
};

struct sv_ini {
	const char *p, *end; /* what is left to read */
	unsigned line;	     /* lines consumed so far */
	const char *error;   /* the sticky error, NULL while there is none */
	unsigned error_line;
};

/* Start reading [buf, buf + len); line is the number of lines before buf (0 for a file). */
void sv_ini_init(struct sv_ini *ini, const char *buf, size_t len, unsigned line);

/* The next item: returns its kind (SV_INI_END at the end of the buffer, for ever after). */
enum sv_ini_kind sv_ini_next(struct sv_ini *ini, struct sv_ini_item *item);

#endif
