/* SPDX-License-Identifier: MIT */
/*
 * What a read batch owes at its end, per channel that completed messages in it: the
 * publisher confirms, in the shapes the fault options ask for, and the routing-key counts.
 *
 * Confirms go out once per batch, not per message: one basic.ack multiple=true for the
 * highest new tag of each channel, so a megabyte of small publishes costs one ack frame.
 * --nack-every, --ack-out-of-order and --ack-unknown-tag change which frames those are;
 * --ack-delay-ms holds them in conn->held, as chunks of [due ms][length][frames], until
 * the worker's timer releases them.
 */
#include "sink.h"
#include "wire.h"

/* Chunks of held confirms start with when they are due and their size. */
#define HELD_HEADER 12
/* --ack-unknown-tag acks this tag, which no channel ever reaches. */
#define UNKNOWN_TAG (UINT64_C(1) << 62)

/* Held confirms (--ack-delay-ms). */

/* Start a chunk of held frames; returns its position relative to the pending bytes, which
 * buf_reserve's compaction preserves. */
static size_t held_begin(struct conn *c)
{
	struct buf *b = &c->held;
	size_t at = buf_pending(b);

	buf_reserve(b, HELD_HEADER);
	b->len += HELD_HEADER;
	return at;
}

static void held_end(struct conn *c, size_t at)
{
	struct buf *b = &c->held;
	uint8_t *h = b->p + b->off + at;
	size_t len = buf_pending(b) - at - HELD_HEADER;
	int64_t due = c->w->now_ms + sink_opts.ack_delay_ms;

	if (!len) {
		b->len -= HELD_HEADER;
		return;
	}
	sv_store32(sv_store64(h, (uint64_t)due), (uint32_t)len);
	conn_wake_at(c, due);
}

/* Move the chunks due by now (all of them if now is INT64_MAX) to the output. Returns when
 * the next one is due, or 0 if none is left. */
int64_t batch_release_held(struct conn *c, int64_t now)
{
	struct buf *b = &c->held;

	while (buf_pending(b) >= HELD_HEADER) {
		const uint8_t *h = b->p + b->off;
		int64_t due = (int64_t)sv_load64(h);
		uint32_t len = sv_load32(h + 8);

		if (due > now)
			return due;
		buf_put(&c->out, h + HELD_HEADER, len);
		b->off += HELD_HEADER + len;
	}
	b->off = b->len = 0;
	return 0;
}

/* Confirms. */

static bool nacked(uint64_t tag)
{
	return sink_opts.nack_every && tag % sink_opts.nack_every == 0;
}

static void put_settle(struct buf *b, uint16_t channel, uint64_t tag, bool multiple, bool nack)
{
	struct sv_method m;

	if (nack)
		m = (struct sv_method){.id = SV_BASIC_NACK, .a.basic_nack = {tag, multiple, false}};
	else
		m = (struct sv_method){.id = SV_BASIC_ACK, .a.basic_ack = {tag, multiple}};
	proto_put_method(b, channel, &m);
}

/*
 * Settle the tags (settled, tag] of a channel. In order: a basic.nack multiple=false for
 * each nacked tag, then one basic.ack multiple=true for the highest tag that is not
 * nacked. That ack also covers the nacked tags below it, which is right: a multiple ack
 * settles the tags still outstanding up to it, and the nacks have already settled theirs
 * (RabbitMQ sends nacks before acks for the same reason). An ack naming a nacked tag
 * would be wrong, though, hence the highest tag that is not nacked.
 */
static void settle(struct conn *c, struct channel *ch)
{
	uint64_t lo = ch->settled + 1, hi = ch->tag, n = sink_opts.nack_every;
	struct buf *b = sink_opts.ack_delay_ms ? &c->held : &c->out;
	size_t chunk = sink_opts.ack_delay_ms ? held_begin(c) : 0;

	if (hi >= lo && sink_opts.ack_out_of_order) {
		/* Reversed: the opposite of what a client that assumes order expects. */
		for (uint64_t t = hi; t >= lo; t--)
			put_settle(b, ch->id, t, false, nacked(t));
	} else if (hi >= lo) {
		uint64_t top = hi;

		if (n) {
			for (uint64_t t = (lo + n - 1) / n * n; t <= hi; t += n)
				put_settle(b, ch->id, t, false, true);
			while (top >= lo && nacked(top))
				top--;
		}
		if (top >= lo)
			put_settle(b, ch->id, top, true, false);
	}
	ch->settled = hi;
	if (sink_opts.ack_unknown_tag && !ch->unknown_sent && hi) {
		put_settle(b, ch->id, UNKNOWN_TAG, false, false);
		ch->unknown_sent = true;
	}
	if (sink_opts.ack_delay_ms)
		held_end(c, chunk);
}

void batch_flush_key(struct channel *ch)
{
	if (ch->key_pending) {
		counts_add(ch->key, ch->key_len, ch->key_pending);
		ch->key_pending = 0;
	}
}

/* Everything a batch owes for one channel: its routing key counts and its confirms. */
static void owed(struct conn *c, struct channel *ch)
{
	batch_flush_key(ch);
	if (ch->confirm)
		settle(c, ch);
}

void batch_end(struct conn *c)
{
	for (uint16_t i = 0; i < c->ndirty; i++) {
		struct channel *ch = c->ch[c->dirty[i]];

		owed(c, ch);
		ch->dirty = false;
	}
	c->ndirty = 0;
}

/* Before a channel goes away mid-batch: settle it and take it off the dirty list, so the
 * list never names a channel twice (it holds at most channel_max ids). */
void batch_settle_channel(struct conn *c, struct channel *ch)
{
	if (!ch->dirty)
		return;
	owed(c, ch);
	ch->dirty = false;
	for (uint16_t i = 0; i < c->ndirty; i++) {
		if (c->dirty[i] == ch->id) {
			c->dirty[i] = c->dirty[--c->ndirty];
			break;
		}
	}
}

/* queue.declare and friends must see this connection's own messages, batch or not. */
void batch_flush_counts(struct conn *c)
{
	for (uint16_t i = 0; i < c->ndirty; i++)
		batch_flush_key(c->ch[c->dirty[i]]);
}
