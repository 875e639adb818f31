/* SPDX-License-Identifier: MIT */
/* Returned messages with their content, from basic.return to the application (returns.c
 * has both halves and the bound on what they hold). */
#ifndef SALVO_RETURNS_H
#define SALVO_RETURNS_H

#include "engine.h"

/* What a return carries for the application: its properties and body, counted in the
 * client's ret_bytes (cost) until freed. The records of a returned envelope share it. */
struct sv_return_content {
	uint32_t refs; /* the returns pointing at it (publisher's thread once queued) */
	uint64_t cost;
	salvo_props props; /* its strings and headers live in props_mem */
	void *props_mem;
	uint8_t *body;
	size_t len, got;
};

/* I/O thread: a basic.return on ch, then each frame of its content (event as
 * sv_content_feed gave it): the return is queued on the channel's publisher once whole. */
void sv_start_return(salvo_client *c, salvo_channel *ch, const struct sv_basic_return *a);
void sv_return_frame(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d,
		     int event);

/* Whoever holds r (the I/O thread before it is queued, the publisher's thread after):
 * free it, giving back what its content counted once no record shares it. NULL is
 * ignored. */
void sv_return_free(salvo_client *c, struct sv_return *r);

/* Publisher's thread. The return recorded for seq (confirm modes; NULL: none): taken off
 * the publisher's list, older unmatched ones freed; an envelope's return covers its
 * records seq .. last, and each but the last gets a copy sharing the content. */
struct sv_return *sv_return_take(struct salvo_publisher *p, uint64_t seq);
/* Best effort: the oldest return queued, taken off the list (NULL: none). */
struct sv_return *sv_return_next(struct salvo_publisher *p);
/* The application's view of r as the outcome of seq (0 in best effort); points into r. */
void sv_return_fill(const struct sv_return *r, uint64_t seq, salvo_returned *out);
/* Free every return still queued (the publisher is being freed). */
void sv_return_free_all(struct salvo_publisher *p);

#endif
