/* SPDX-License-Identifier: MIT */
/* Status names (salvo_err2str), one-line errors (salvo_error_format), filling a salvo_error,
 * and the version. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "salvo.h"

#include "error.h"

#include "../codec/methods.h"

const char *salvo_err2str(int status)
{
	switch (status) {
	case SALVO_OK:
		return "success";
	case SALVO_ERR_INVALID_ARGUMENT:
		return "invalid argument";
	case SALVO_ERR_NO_MEMORY:
		return "out of memory";
	case SALVO_ERR_TIMEOUT:
		return "timed out";
	case SALVO_ERR_WOULD_BLOCK:
		return "would block";
	case SALVO_ERR_CLOSED:
		return "closed";
	case SALVO_ERR_IO:
		return "I/O error";
	case SALVO_ERR_TLS:
		return "TLS error";
	case SALVO_ERR_PROTOCOL:
		return "protocol error";
	case SALVO_ERR_UNSUPPORTED:
		return "not supported";
	case SALVO_ERR_LIMIT:
		return "limit reached";
	case SALVO_ERR_NACKED:
		return "nacked by the broker";
	case SALVO_ERR_RETURNED:
		return "returned by the broker";
	case SALVO_ERR_CANCELLED:
		return "consumer cancelled";
	case SALVO_ERR_INVALID_STATE:
		return "not allowed now";
	}
	if (status > 0 && status <= UINT16_MAX) {
		const char *label = sv_reply_code_label((uint16_t)status);
		if (label)
			return label;
	}
	return "unknown status";
}

/* snprintf at buf + *used, keeping *used within len - 1 when the text is cut. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
							  const char *fmt, ...)
{
	va_list ap;

	if (*used >= len - 1)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n < len - *used ? (size_t)n : len - 1 - *used;
}

const char *salvo_error_format(const salvo_error *err, char *buf, size_t len)
{
	size_t used = 0;

	if (!buf || len == 0)
		return buf;
	buf[0] = '\0';
	if (!err || err->status == 0) {
		append(buf, len, &used, "%s", salvo_err2str(0));
		return buf;
	}
	if (err->status < 0)
		append(buf, len, &used, "%s", salvo_err2str(err->status));
	unsigned code = err->reply_code ? err->reply_code : err->status > 0 ? (unsigned)err->status : 0;
	if (code) {
		const char *name = code <= UINT16_MAX ? sv_reply_code_name((uint16_t)code) : NULL;
		append(buf, len, &used, "%s%u", used ? ": " : "", code);
		/* RabbitMQ's reply texts begin with the code's name: "NOT_FOUND - no exchange...". */
		if (name && strncmp(err->text, name, strlen(name)) != 0)
			append(buf, len, &used, " %s%s", name, err->text[0] ? " -" : "");
		if (err->text[0])
			append(buf, len, &used, " %s", err->text);
	} else if (err->text[0]) {
		append(buf, len, &used, "%s%s", used ? ": " : "", err->text);
	}
	if (err->method[0])
		append(buf, len, &used, " (%s)", err->method);
	return buf;
}

size_t sv_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t b = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef)
		len = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (b == 0xe0)
		lo = 0xa0; /* overlong below U+0800 */
	else if (b == 0xed)
		hi = 0x9f; /* surrogates */
	else if (b == 0xf0)
		lo = 0x90; /* overlong below U+10000 */
	else if (b == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* The escaped form of the character at src[i] into piece (at most 4 bytes); returns its
 * length and sets *n to the input bytes it stands for. */
static size_t escape_one(const uint8_t *src, size_t len, size_t i, char *piece, size_t *n)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = sv_utf8_len(src + i, len - i);
	/* C1 controls, U+0080..U+009F, are C2 80..C2 9F. */
	bool c1 = k == 2 && src[i] == 0xc2 && src[i + 1] <= 0x9f;

	*n = 1;
	if (k == 1 && src[i] >= 0x20 && src[i] != 0x7f && src[i] != '\\') {
		piece[0] = (char)src[i];
		return 1;
	}
	if (k == 1 && src[i] == '\\') {
		piece[0] = piece[1] = '\\';
		return 2;
	}
	if (k > 1 && !c1) {
		memcpy(piece, src + i, k);
		*n = k;
		return k;
	}
	/* One byte escaped; the next is looked at afresh (a C1's second byte too). */
	piece[0] = '\\';
	piece[1] = 'x';
	piece[2] = hex[src[i] >> 4];
	piece[3] = hex[src[i] & 15];
	return 4;
}

const char *sv_text_escape(char *dst, size_t cap, const uint8_t *src, size_t len)
{
	size_t used = 0, total = 0, i, n;
	char piece[4];

	if (cap < 4) {
		if (cap)
			dst[0] = '\0';
		return dst;
	}
	for (i = 0; i < len && total < cap; i += n)
		total += escape_one(src, len, i, piece, &n);
	/* Cut when it does not all fit: then keep room for "...". */
	size_t room = total < cap ? cap - 1 : cap - 4;
	for (i = 0; i < len; i += n) {
		size_t plen = escape_one(src, len, i, piece, &n);
		if (used + plen > room)
			break;
		memcpy(dst + used, piece, plen);
		used += plen;
	}
	if (i < len) {
		memcpy(dst + used, "...", 3);
		used += 3;
	}
	dst[used] = '\0';
	return dst;
}

const char *salvo_version(void)
{
	return SALVO_VERSION_STRING;
}

int sv_error_set(salvo_error *err, int status, salvo_error_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return status;
	*err = (salvo_error){.status = status, .kind = kind};
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return status;
}

void sv_error_set_reply(salvo_error *err, uint16_t reply_code, uint16_t class_id,
			uint16_t method_id)
{
	const char *name = sv_method_name((uint32_t)class_id << 16 | method_id);

	err->reply_code = reply_code;
	err->class_id = class_id;
	err->method_id = method_id;
	snprintf(err->method, sizeof err->method, "%s", name ? name : "");
}
