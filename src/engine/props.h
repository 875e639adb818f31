/* SPDX-License-Identifier: MIT */
/*
 * The public field tables and message properties (salvo_table, salvo_props) over the
 * codec's encoded forms: a salvo_table is the encoded contents of a table or array, ready
 * to be copied into a frame; properties become a struct sv_basic_props pointing into the
 * caller's strings for encoding, and a received content header's properties become one
 * allocation the message owns.
 */
#ifndef SALVO_PROPS_H
#define SALVO_PROPS_H

#include "salvo.h"

#include "../codec/methods.h"

struct salvo_table {
	uint8_t *buf; /* encoded entries (a field array's values when array) */
	size_t len, cap;
	unsigned depth; /* levels of nesting, this one included, as the decoder counts them */
	bool array;	/* made by salvo_array_new */
	bool view;	/* a received message's headers: buf is not ours */
};

/* The encoded contents of t; NULL gives an empty table. */
struct sv_table sv_table_of(const salvo_table *t);

/*
 * A new table holding t's entries (t NULL: none) but those whose key is key (NULL: none
 * left out), as t encodes them. t must be a table, not an array (the caller checks). NULL
 * when out of memory.
 */
salvo_table *sv_table_copy_without(const salvo_table *t, const char *key);

/*
 * A new table owning a copy of t's encoded contents (a validated table received from the
 * network), its depth counted, so that it may be read, added to and nested like a table
 * the application built. NULL when out of memory.
 */
salvo_table *sv_table_from_wire(struct sv_table t);

/* Whether t (NULL: empty) has key (NUL-terminated) and, when value is not NULL, as a
 * long string equal to it. The first entry of that name decides, as the broker reads it. */
bool sv_table_has(const salvo_table *t, const char *key, const char *value);

/*
 * The properties to encode for a message: in (may be NULL) as views of the caller's
 * strings, plus delivery mode 2 when persistent and in gives none. Returns 0, or
 * SALVO_ERR_INVALID_ARGUMENT with err filled (a string over 255 bytes, unknown flags, an
 * array as headers).
 */
int sv_props_from_public(const salvo_props *in, bool persistent, struct sv_basic_props *out,
			 salvo_error *err);

/* Bytes sv_basic_props_encode writes for p: the flags word and every present property. */
size_t sv_props_encoded_size(const struct sv_basic_props *p);

/*
 * Copy received properties (views into a receive buffer) into *out and one allocation
 * *mem (NULL when there is nothing to copy) that the caller frees. Returns 0 or -1 when
 * out of memory.
 */
int sv_props_copy(const struct sv_basic_props *in, salvo_props *out, void **mem);
/* Whether a kept buffer of cap bytes is to be replaced to hold need bytes: too small, or
 * far larger (more than twice need plus SV_BUFFER_SLACK), since its holder counts what it
 * holds (a queued message, against consumer.buffer_bytes). */
#define SV_BUFFER_SLACK 1024u
static inline bool sv_buffer_refit(size_t cap, size_t need)
{
	return need > cap || cap > 2 * need + SV_BUFFER_SLACK;
}
/* The same into *mem when its *cap bytes are enough (sv_buffer_refit), else into a new
 * allocation that replaces it (*mem and *cap updated; the old one freed). */
int sv_props_copy_reuse(const struct sv_basic_props *in, salvo_props *out, void **mem,
			size_t *cap);

#endif
