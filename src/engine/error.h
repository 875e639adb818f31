/* SPDX-License-Identifier: MIT */
/* Filling a salvo_error: shared by everything in the engine that reports a failure. */
#ifndef SALVO_ENGINE_ERROR_H
#define SALVO_ENGINE_ERROR_H

#include "salvo.h"

/* Reset *err (may be NULL) to status, kind and a formatted text; returns status so a
 * caller can `return sv_error_set(...)`. */
int sv_error_set(salvo_error *err, int status, salvo_error_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline void sv_error_copy(salvo_error *dst, const salvo_error *src)
{
	if (dst)
		*dst = *src;
}

#endif
