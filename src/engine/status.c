/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

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
	}
	if (status > 0 && status <= UINT16_MAX) {
		const char *name = sv_reply_code_name((uint16_t)status);
		if (name)
			return name;
	}
	return "unknown status";
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
