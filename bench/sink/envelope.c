/* SPDX-License-Identifier: MIT */
/*
 * Envelopes (README "Batching"): a publish whose content_type is
 * application/vnd.salvo.batch+v1 is checked with the codec (src/codec/batch.h) and its
 * records are counted.
 *
 * The content header classifies the message (sv_batch_classify). Its body usually comes
 * in one frame, as salvo sends envelopes, and is checked in place in the worker's read
 * buffer; a body in several frames is gathered in the channel's buffer first. Either way
 * it may be at most --envelope-max bytes (default: --frame-max), and a compressed one
 * inflates into the worker's buffer of that size, which is the decompression-bomb bound.
 *
 * A message that claims to be an envelope and is not one (properties, compressed frame,
 * record lengths or count wrong; too large) is counted as an invalid envelope, and logged
 * with --log-bad-envelopes; like a broker, the sink still confirms it: it judges
 * envelopes, it does not refuse them. Records: one per message that is not an envelope,
 * each record of a valid envelope, none for an invalid one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sink.h"

/* A gathered body buffer grown past this is freed once checked, not kept for the next. */
#define ENV_KEEP (1u << 20)

void envelope_header(struct channel *ch, const struct sv_basic_props *props, uint64_t body_size)
{
	int rc = sv_batch_classify(props, &ch->env_info, &ch->env_err);

	ch->env_body.off = ch->env_body.len = 0;
	ch->env = rc == 0 ? ENV_NONE : rc > 0 ? ENV_OPEN : ENV_BAD;
	if (ch->env == ENV_OPEN && body_size > sink_opts.envelope_max) {
		ch->env = ENV_BAD;
		snprintf(ch->env_err.reason, sizeof ch->env_err.reason,
			 "a body of %llu bytes, over the envelope limit of %u (--envelope-max)",
			 (unsigned long long)body_size, sink_opts.envelope_max);
	}
}

void envelope_body(struct channel *ch, const uint8_t *p, uint32_t len, bool last)
{
	if (ch->env != ENV_OPEN)
		return;
	if (last && !buf_pending(&ch->env_body)) {
		/* The whole body in one frame: no copy. Valid until proto_input returns, and
		 * envelope_done runs before that, on this same frame. */
		ch->env_ptr = p;
		ch->env_len = len;
		return;
	}
	/* The header's body size, checked against the limit, bounds what gathers here. */
	buf_put(&ch->env_body, p, len);
	ch->env_ptr = ch->env_body.p + ch->env_body.off;
	ch->env_len = buf_pending(&ch->env_body);
}

/* Inflate and check an open envelope; false with ch->env_err filled if it is not valid. */
static bool valid(struct conn *c, struct channel *ch)
{
	struct worker *w = c->w;
	const uint8_t *body;
	size_t len;

	if (ch->env_info.codec != SV_BATCH_PLAIN && !w->zbuf) {
		w->zbuf = malloc(sink_opts.envelope_max);
		if (!w->zbuf)
			die("out of memory for a %u-byte envelope buffer", sink_opts.envelope_max);
	}
	return !sv_batch_inflate(ch->env_info.codec, ch->env_ptr, ch->env_len, w->zbuf,
				 sink_opts.envelope_max, &body, &len, &ch->env_err) &&
	       !sv_batch_check(body, len, ch->env_info.records, &ch->env_err);
}

uint64_t envelope_done(struct conn *c, struct channel *ch)
{
	uint64_t records = 1;

	if (ch->env == ENV_OPEN && valid(c, ch)) {
		records = ch->env_info.records;
		c->batch_envelopes++;
	} else if (ch->env != ENV_NONE) {
		records = 0;
		c->batch_bad_envelopes++;
		if (sink_opts.log_bad_envelopes)
			conn_log(c, "invalid envelope on channel %u: %s", ch->id,
				 ch->env_err.reason);
	}
	ch->env = ENV_NONE;
	ch->env_ptr = NULL;
	ch->env_len = 0;
	if (ch->env_body.cap > ENV_KEEP)
		buf_free(&ch->env_body);
	return records;
}
