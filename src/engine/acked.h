/* SPDX-License-Identifier: MIT */
/*
 * Delivery tags of a consuming channel the application has settled, so the I/O thread can
 * send one multiple ack when it is exact: every tag up to floor is settled (or was
 * delivered no_ack); for floor < t <= floor + SV_ACKED_SPAN, bit t % SV_ACKED_SPAN says
 * tag t is. A pure structure (like confirm.h), used by the I/O thread only.
 */
#ifndef SALVO_ENGINE_ACKED_H
#define SALVO_ENGINE_ACKED_H

#include <stdbool.h>
#include <stdint.h>

#define SV_ACKED_SPAN ((uint64_t)1 << 16)

struct sv_acked {
	uint64_t floor;	    /* every tag <= floor is settled */
	uint64_t delivered; /* the highest tag delivered */
	uint64_t *bits;	    /* SV_ACKED_SPAN bits; NULL until the first one is needed */
	/* While the I/O thread sends a batch of settles: the floor needs moving, and the
	 * highest single ack of the batch the floor has passed (0: none). */
	bool due;
	uint64_t batch_max;
};

void sv_acked_init(struct sv_acked *a);
void sv_acked_free(struct sv_acked *a);

/* Tag delivered; settled already when the consumer is no_ack. */
void sv_acked_delivered(struct sv_acked *a, uint64_t tag, bool settled);

/*
 * Tag settled by the application (multiple: every tag up to it). Returns false when it
 * cannot be recorded — a single tag at or below the floor (settled twice: the broker will
 * say so), more than SV_ACKED_SPAN above the floor, or no memory for the bits — and the
 * caller must send it on its own.
 */
bool sv_acked_settle(struct sv_acked *a, uint64_t tag, bool multiple);

/* Whether tag is settled (recorded by sv_acked_settle or sv_acked_delivered). */
bool sv_acked_is_settled(const struct sv_acked *a, uint64_t tag);

/* Move the floor over every settled tag just above it; returns it. */
uint64_t sv_acked_advance(struct sv_acked *a);

#endif
