/* SPDX-License-Identifier: MIT */
/*
 * A channel's publisher-confirm window: which delivery tags the broker has yet to ack or
 * nack, what became of the others, and how far the publisher's ring may be released.
 * Tags are assigned in send order; outcomes come out in tag order, so release never passes
 * a message still waiting for its confirm. confirm.c explains the bitmap.
 *
 * Every function here is for the I/O thread only (or one thread at a time): the window
 * has no locks and no atomics.
 */
#ifndef SALVO_CONFIRM_H
#define SALVO_CONFIRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest window; 16 Mi in-flight messages cost 136 MiB of bookkeeping here (8.5
 * bytes a slot: four bitmap bits and end_pos). */
#define SV_CONFIRM_MAX_WINDOW ((size_t)1 << 24)

/* The smallest window: one 64-bit word of the bitmap. */
#define SV_CONFIRM_MIN_WINDOW ((size_t)64)

/* Bits of sv_confirm_outcome.status: exactly one of ACKED, NACKED and FAILED, maybe RETURNED. */
enum {
	SV_CONFIRM_ACKED = 1,
	SV_CONFIRM_NACKED = 2,
	SV_CONFIRM_RETURNED = 4, /* a basic.return came for it before its ack or nack */
	SV_CONFIRM_FAILED = 8,	 /* instead of ACKED/NACKED: settled by sv_confirm_fail_all */
};

struct sv_confirm_outcome {
	uint64_t tag;
	uint64_t end_pos; /* the ring position given to sv_confirm_add for this tag */
	unsigned status;  /* SV_CONFIRM_* bits */
};

/* Treat as opaque outside confirm.c. */
struct sv_confirm {
	uint64_t *pending;  /* bit of slot t & mask: tag t sent, not yet acked or nacked */
	uint64_t *nacked;   /* settled by a nack; meaningful once the pending bit is clear */
	uint64_t *returned; /* a basic.return came for it */
	uint64_t *failed;   /* settled by sv_confirm_fail_all */
	uint64_t *end_pos;  /* per slot */
	size_t window;	    /* slots, a power of two >= SV_CONFIRM_MIN_WINDOW */
	uint64_t first;	    /* every tag below first has been reported by sv_confirm_drain */
	uint64_t next;	    /* the tag sv_confirm_add assigns next */
	uint64_t low;	    /* every tag below low is settled: where multiple acks start */
};

/*
 * Make a window for up to max_inflight unreported tags, rounded up to a power of two and
 * to at least SV_CONFIRM_MIN_WINDOW, whose first tag is first_tag (1 for a new AMQP
 * channel). Returns 0, -EINVAL when max_inflight is 0 or above SV_CONFIRM_MAX_WINDOW or
 * first_tag is 0 (tag 0 means "all" in a multiple ack) or UINT64_MAX (see
 * sv_confirm_full), or -ENOMEM, in which case nothing stays allocated.
 */
int sv_confirm_init(struct sv_confirm *c, size_t max_inflight, uint64_t first_tag);

/* Free the window. */
void sv_confirm_destroy(struct sv_confirm *c);

/*
 * Forget every tag, settled or not, without reporting any, and start again at first_tag,
 * as for a channel reopened after its connection was lost (the unreported messages are
 * then resent and confirmed anew). Returns 0, or -EINVAL for a first_tag that
 * sv_confirm_init refuses, leaving the window unchanged.
 */
int sv_confirm_reset(struct sv_confirm *c, uint64_t first_tag);

/* The number of slots: max_inflight as rounded by sv_confirm_init. */
static inline size_t sv_confirm_window(const struct sv_confirm *c)
{
	return c->window;
}

/* The tag the next sv_confirm_add will assign. */
static inline uint64_t sv_confirm_next_tag(const struct sv_confirm *c)
{
	return c->next;
}

/* Tags assigned and not yet reported by sv_confirm_drain, settled or not. */
static inline uint64_t sv_confirm_outstanding(const struct sv_confirm *c)
{
	return c->next - c->first;
}

/*
 * Whether sv_confirm_add must wait: every slot holds an unreported tag (drain, after more
 * confirms, frees them), or the tag space is used up. Tags never wrap: the last one
 * assigned is UINT64_MAX - 1, and after it the window stays full until sv_confirm_reset
 * (a channel starting at 1 and sending 10^9 messages a second gets there in 584 years).
 */
static inline bool sv_confirm_full(const struct sv_confirm *c)
{
	return c->next - c->first == c->window || c->next == UINT64_MAX;
}

/*
 * Assign the next tag to a message just handed to the kernel, whose last byte is just
 * before ring position end_pos (non-decreasing from call to call), and return the tag.
 * The window must not be full (checked by assert).
 */
uint64_t sv_confirm_add(struct sv_confirm *c, uint64_t end_pos);

/*
 * A basic.ack (nack false) or basic.nack (nack true) from the broker. With multiple false
 * it settles tag; with multiple true every unsettled tag up to and including tag, or every
 * unsettled tag at all when tag is 0. Settled tags are held until sv_confirm_drain reports
 * them. Returns 0, or -EINVAL, changing nothing, when the broker settles nothing it could:
 * a tag never assigned (>= sv_confirm_next_tag), a single tag already settled or
 * reported, or a multiple with a nonzero tag whose range has no unsettled tag. A multiple
 * with tag 0 succeeds even when nothing is unsettled.
 */
int sv_confirm_settle(struct sv_confirm *c, uint64_t tag, bool multiple, bool nack);

/*
 * The channel ended: settle every unsettled tag as failed (its confirm will never come).
 * Tags settled before keep their outcome. Returns how many were failed.
 */
uint64_t sv_confirm_fail_all(struct sv_confirm *c);

/*
 * A basic.return for tag: its outcome will carry SV_CONFIRM_RETURNED. The broker sends the
 * return before the ack, so tag must be unsettled. Returns 0, or -EINVAL, changing
 * nothing, when tag is not unsettled or was already returned.
 */
int sv_confirm_mark_returned(struct sv_confirm *c, uint64_t tag);

/*
 * Report, in tag order, up to max settled tags from the lowest unreported one up to the
 * first still unsettled (a tag settled out of order waits for those before it). Writes
 * them to out, frees their slots and returns how many. When that is not 0, sets
 * *release_pos to the end_pos of the last one reported: every message before it is
 * settled, so the ring may release up to there. Otherwise leaves *release_pos alone.
 */
size_t sv_confirm_drain(struct sv_confirm *c, struct sv_confirm_outcome *out, size_t max,
			uint64_t *release_pos);

#endif
