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

/*
 * Text from the network (a reply text, a blocked reason, a consumer tag) made safe for
 * terminals and logs, into dst (cap >= 4 bytes, NUL-terminated): well-formed UTF-8 stays as
 * it is; control characters (NUL and the rest of C0, DEL, C1), every byte that is not part
 * of a well-formed UTF-8 sequence, and the backslash become \xNN (\\ for a backslash), so
 * nothing is cut at a NUL and nothing reaches a terminal as a command. Cut at a character
 * boundary, ending in "...", when it does not fit. Returns dst. Pure; any thread.
 */
const char *sv_text_escape(char *dst, size_t cap, const uint8_t *src, size_t len);

/* The length of the well-formed UTF-8 sequence at s (n > 0 bytes left; 1 for ASCII), 0 if
 * there is none: no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
size_t sv_utf8_len(const uint8_t *s, size_t n);

/* A timeout_ms is SALVO_FOREVER, 0 or more: anything below is refused (it would otherwise
 * mean "forever" by accident). Returns 0 or SALVO_ERR_INVALID_ARGUMENT with err filled. */
static inline int sv_check_timeout(const char *call, int timeout_ms, salvo_error *err)
{
	if (timeout_ms >= SALVO_FOREVER)
		return 0;
	return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			    "%s: timeout %d ms (SALVO_FOREVER, 0 or more)", call, timeout_ms);
}

/* Flags a call does not take are refused: a stray bit (0xffff) must not become, say, a
 * passive declare that fails with a misleading 404. Returns 0 or SALVO_ERR_INVALID_ARGUMENT
 * with err filled. */
static inline int sv_check_flags(const char *call, unsigned flags, unsigned allowed,
				 salvo_error *err)
{
	if (!(flags & ~allowed))
		return 0;
	return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			    "%s: flags 0x%x are not among those it takes (0x%x)", call,
			    flags & ~allowed, allowed);
}

static inline void sv_error_copy(salvo_error *dst, const salvo_error *src)
{
	if (dst)
		*dst = *src;
}

#endif
