/* SPDX-License-Identifier: MIT */
#include "engine_ops.h"

#include <stdlib.h>
#include <string.h>

#include "confirm.h"
#include "ring.h"

void *bench_ring_new(size_t capacity)
{
	struct sv_ring *r = aligned_alloc(SV_CACHE_LINE, sizeof *r);

	if (r && sv_ring_init(r, capacity)) {
		free(r);
		r = NULL;
	}
	return r;
}

void bench_ring_round(void *ring, const uint8_t *msg, size_t size, int batch)
{
	struct sv_ring *r = ring;
	const uint8_t *p;

	for (int i = 0; i < batch; i++) {
		memcpy(sv_ring_reserve(r, size), msg, size);
		sv_ring_commit(r, size);
	}
	sv_ring_mark_sent(r, sv_ring_pending(r, &p));
	sv_ring_release(r, sv_ring_sent(r));
}

void bench_ring_free(void *ring)
{
	sv_ring_destroy(ring);
	free(ring);
}

struct bench_confirm {
	struct sv_confirm c;
	uint64_t pos;
	struct sv_confirm_outcome out[256];
};

void *bench_confirm_new(size_t window)
{
	struct bench_confirm *b = calloc(1, sizeof *b);

	if (b && sv_confirm_init(&b->c, window, 1)) {
		free(b);
		b = NULL;
	}
	return b;
}

uint64_t bench_confirm_round(void *window, uint64_t n, uint64_t per)
{
	struct bench_confirm *b = window;
	uint64_t first = sv_confirm_next_tag(&b->c), rel = 0;

	for (uint64_t i = 0; i < n; i++)
		sv_confirm_add(&b->c, b->pos += 150);
	if (per == 0)
		for (uint64_t i = 0; i < n; i++)
			sv_confirm_settle(&b->c, first + i, false, false);
	else
		for (uint64_t i = per;; i += per) {
			if (i > n)
				i = n; /* the tail, so that every tag is settled */
			sv_confirm_settle(&b->c, first + i - 1, true, false);
			if (i == n)
				break;
		}
	while (sv_confirm_drain(&b->c, b->out, 256, &rel))
		;
	return rel;
}

void bench_confirm_free(void *window)
{
	struct bench_confirm *b = window;

	sv_confirm_destroy(&b->c);
	free(b);
}
