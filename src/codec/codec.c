/* SPDX-License-Identifier: MIT */
/* What every codec file shares: recording a failure with its reply code (codec.h). */
#include <stdarg.h>
#include <stdio.h>

#include "codec.h"

int sv_fail(struct sv_codec_error *err, uint16_t reply_code, const char *fmt, ...)
{
	va_list ap;

	err->reply_code = reply_code;
	err->class_id = 0;
	err->method_id = 0;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof err->reason, fmt, ap);
	va_end(ap);
	return -1;
}
