/* SPDX-License-Identifier: MIT */
/*
 * Big-endian loads and stores, and the bounds-checked read cursor every decoder uses.
 * memcpy keeps unaligned access defined; compilers turn it into a single load.
 */
#ifndef SALVO_WIRE_H
#define SALVO_WIRE_H

#include <string.h>

#include "codec.h"

static inline uint16_t sv_load16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t sv_load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t sv_load64(const uint8_t *p)
{
	return (uint64_t)sv_load32(p) << 32 | sv_load32(p + 4);
}

static inline uint8_t *sv_store8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static inline uint8_t *sv_store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *sv_store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *sv_store64(uint8_t *p, uint64_t v)
{
	sv_store32(p, (uint32_t)(v >> 32));
	return sv_store32(p + 4, (uint32_t)v);
}

static inline uint8_t *sv_store_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n)
		memcpy(p, src, n);
	return p + n;
}

static inline uint8_t *sv_store_shortstr(uint8_t *p, struct sv_bytes s)
{
	*p++ = (uint8_t)s.len;
	return sv_store_bytes(p, s.ptr, s.len);
}

static inline uint8_t *sv_store_longstr(uint8_t *p, struct sv_bytes s)
{
	p = sv_store32(p, s.len);
	return sv_store_bytes(p, s.ptr, s.len);
}

/*
 * Read cursor. Each sv_rd_* checks that the bytes exist before it reads them, comparing the
 * remaining length (end - p, never negative) against the wanted length, so no addition can
 * overflow.
 */
struct sv_rd {
	const uint8_t *p;
	const uint8_t *end;
};

static inline size_t sv_rd_left(const struct sv_rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline bool sv_rd_u8(struct sv_rd *r, uint8_t *v)
{
	if (sv_rd_left(r) < 1)
		return false;
	*v = *r->p++;
	return true;
}

static inline bool sv_rd_u16(struct sv_rd *r, uint16_t *v)
{
	if (sv_rd_left(r) < 2)
		return false;
	*v = sv_load16(r->p);
	r->p += 2;
	return true;
}

static inline bool sv_rd_u32(struct sv_rd *r, uint32_t *v)
{
	if (sv_rd_left(r) < 4)
		return false;
	*v = sv_load32(r->p);
	r->p += 4;
	return true;
}

static inline bool sv_rd_u64(struct sv_rd *r, uint64_t *v)
{
	if (sv_rd_left(r) < 8)
		return false;
	*v = sv_load64(r->p);
	r->p += 8;
	return true;
}

static inline bool sv_rd_take(struct sv_rd *r, uint32_t n, const uint8_t **out)
{
	if (sv_rd_left(r) < n)
		return false;
	*out = r->p;
	r->p += n;
	return true;
}

static inline bool sv_rd_shortstr(struct sv_rd *r, struct sv_bytes *s)
{
	uint8_t n;
	if (!sv_rd_u8(r, &n) || !sv_rd_take(r, n, &s->ptr))
		return false;
	s->len = n;
	return true;
}

static inline bool sv_rd_longstr(struct sv_rd *r, struct sv_bytes *s)
{
	uint32_t n;
	if (!sv_rd_u32(r, &n) || !sv_rd_take(r, n, &s->ptr))
		return false;
	s->len = n;
	return true;
}

#endif
