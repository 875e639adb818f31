/* SPDX-License-Identifier: MIT */
/* Filling a salvo_error: shared by everything in the engine that reports a failure. */
#ifndef SALVO_ENGINE_ERROR_H
#define SALVO_ENGINE_ERROR_H

#include <stdint.h>

#include "salvo.h"

/* Reset *err (may be NULL) to status, kind and a formatted text; returns status so a
 * caller can `return sv_error_set(...)`. */
int sv_error_set(salvo_error *err, int status, salvo_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The AMQP side of an error: reply code, the method it concerns (0, 0 for none) and that
 * method's name. */
void sv_error_set_reply(salvo_error *err, uint16_t reply_code, uint16_t class_id,
			uint16_t method_id);

static inline void sv_error_copy(salvo_error *dst, const salvo_error *src)
{
	if (dst)
		*dst = *src;
}

#endif
