/* SPDX-License-Identifier: MIT */
/*
 * Memory that ends right before an unmapped page, for the cmocka tests: input placed
 * against it makes a read past its end fault instead of going unnoticed, and an output
 * buffer placed against it does the same for a write past its capacity.
 */
#ifndef SALVO_TEST_GUARD_H
#define SALVO_TEST_GUARD_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "support.h"

struct guard {
	uint8_t *map;
	size_t map_len;
	uint8_t *end; /* the first byte of the unmapped page */
};

/* room: the most bytes that will ever be placed. */
static inline void guard_init(struct guard *g, size_t room)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t usable = (room + page - 1) / page * page;

	g->map_len = usable + page;
	g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	g->end = g->map + usable;
	assert_int_equal(mprotect(g->end, page, PROT_NONE), 0);
}

/* Copy n bytes so that they end at the guard page; returns where they start. */
static inline const uint8_t *guard_place(struct guard *g, const void *src, size_t n)
{
	memcpy(g->end - n, src, n);
	return g->end - n;
}

/* The last n bytes before the guard page, as room to write into. */
static inline uint8_t *guard_room(struct guard *g, size_t n)
{
	return g->end - n;
}

static inline void guard_free(struct guard *g)
{
	munmap(g->map, g->map_len);
}

#endif
