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
