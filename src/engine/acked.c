/* SPDX-License-Identifier: MIT */
/* Settled delivery tags of a consuming channel: see acked.h. */
#include <stdlib.h>
#include <string.h>

#include "acked.h"

void sv_acked_init(struct sv_acked *a)
{
	memset(a, 0, sizeof *a);
}

void sv_acked_free(struct sv_acked *a)
{
	free(a->bits);
	a->bits = NULL;
}

static bool acked_bits(struct sv_acked *a)
{
	if (!a->bits)
		a->bits = calloc(SV_ACKED_SPAN / 64, sizeof *a->bits);
	return a->bits != NULL;
}

static void acked_set(struct sv_acked *a, uint64_t tag, bool on)
{
	uint64_t i = tag % SV_ACKED_SPAN;

	if (on)
		a->bits[i / 64] |= UINT64_C(1) << (i % 64);
	else
		a->bits[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

bool sv_acked_settle(struct sv_acked *a, uint64_t tag, bool multiple)
{
	if (multiple) {
		if (tag <= a->floor)
			return true;
		/* Everything up to tag is settled: clear the bits of the tags passed. */
		if (a->bits) {
			if (tag - a->floor >= SV_ACKED_SPAN)
				memset(a->bits, 0, SV_ACKED_SPAN / 8);
			else
				for (uint64_t t = a->floor + 1; t <= tag; t++)
					acked_set(a, t, false);
		}
		a->floor = tag;
		return true;
	}
	if (tag <= a->floor || tag - a->floor > SV_ACKED_SPAN || !acked_bits(a))
		return false;
	acked_set(a, tag, true);
	return true;
}

bool sv_acked_is_settled(const struct sv_acked *a, uint64_t tag)
{
	uint64_t i = tag % SV_ACKED_SPAN;

	if (tag <= a->floor)
		return true;
	if (tag - a->floor > SV_ACKED_SPAN || !a->bits)
		return false;
	return a->bits[i / 64] & (UINT64_C(1) << (i % 64));
}

void sv_acked_delivered(struct sv_acked *a, uint64_t tag, bool settled)
{
	if (tag > a->delivered)
		a->delivered = tag;
	/* A no_ack consumer's tags come in order: the floor follows them without bits. */
	if (settled && tag == a->floor + 1)
		a->floor = tag;
	else if (settled)
		sv_acked_settle(a, tag, false);
}

uint64_t sv_acked_advance(struct sv_acked *a)
{
	if (!a->bits)
		return a->floor;
	for (;;) {
		uint64_t t = a->floor + 1, i = t % SV_ACKED_SPAN;
		uint64_t *w = &a->bits[i / 64];

		if (i % 64 == 0 && *w == UINT64_MAX) {
			*w = 0;
			a->floor += 64;
		} else if (*w & (UINT64_C(1) << (i % 64))) {
			*w &= ~(UINT64_C(1) << (i % 64));
			a->floor = t;
		} else {
			return a->floor;
		}
	}
}
