/* SPDX-License-Identifier: MIT */
/*
 * The publisher's I/O half: what the I/O thread does with a publisher's ring and window.
 * Sending: the span of the ring the next send may carry (a paused, blocked, closed or
 * flow-stopped channel lets only the rest of a cut message go), and the accounting of what
 * the kernel took, which tags each sent message of a confirm mode with its delivery tag.
 * Confirms: acks and nacks settle the window (confirm.c), returns mark their message
 * (returns.c), and each read's settled outcomes are drained into the slots and published
 * to the producer (done). Best effort: checkpoints that prove what the broker handled.
 * And the list of attached publishers, with detaching once nothing of a publisher is in
 * flight.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "pub_done.h"

/*
 * Tag every message of a confirm-mode publisher whose last byte is now before sent. The
 * producer wrote each message's end into its slot before committing it; a slot not yet
 * rewritten for the next sequence number still holds an older, smaller end, which the
 * comparison with tagged_end rejects (every message has at least one byte).
 */
static void tag_sent(struct salvo_publisher *pub, uint64_t sent)
{
	while (!sv_confirm_full(&pub->win)) {
		uint64_t seq = sv_confirm_next_tag(&pub->win);
		uint64_t end = atomic_load_explicit(&pub->slots[seq & pub->wmask].end,
						    memory_order_relaxed);

		if (end > sent || end < pub->tagged_end || !end)
			break;
		if (end == pub->tagged_end) {
			/* The next record of the envelope just tagged (they share its end); a
			 * stale slot's end is smaller, since an envelope has fewer records than
			 * the window. */
			if (!pub->envs)
				break;
			pub->envs[(pub->env_tags + pub->env_base) & pub->wmask].last = seq;
		} else if (pub->envs) {
			/* An envelope: the channel's next delivery tag. */
			struct sv_env_range *e =
			    &pub->envs[(++pub->env_tags + pub->env_base) & pub->wmask];
			e->first = e->last = seq;
		}
		sv_confirm_add(&pub->win, end);
		pub->tagged_end = end;
	}
}

/* Batching: the records delivery tag `tag` of the channel carries; false for a tag not
 * (or no longer) assigned. */
static bool env_range(const struct salvo_publisher *pub, uint64_t tag, uint64_t *first,
		      uint64_t *last)
{
	const struct sv_env_range *e;

	if (!tag || tag > pub->env_tags || tag < pub->env_lo)
		return false;
	e = &pub->envs[(tag + pub->env_base) & pub->wmask];
	*first = e->first;
	*last = e->last;
	return true;
}

/*
 * Release what the confirms allow and the kernel is done with. After a reconnection's
 * rewind, messages settled on the old connection may be ahead of sent: they are released
 * once resent, never before (the producer would overwrite bytes still to be sent).
 */
static void pub_release(struct salvo_publisher *pub)
{
	uint64_t sent = sv_ring_sent(&pub->ring);
	uint64_t to = pub->release_to < sent ? pub->release_to : sent;

	if (to > sv_ring_released(&pub->ring))
		sv_ring_release(&pub->ring, to);
}

/*
 * Report what the window has settled: write each outcome into its slot, count it, release
 * the ring up to the last one, publish done, wake the producer if it sleeps.
 */
void sv_pub_drain(struct salvo_publisher *pub)
{
	struct sv_confirm_outcome out[256];
	uint64_t release = 0, last = 0, now = 0;
	uint64_t n_ack = 0, n_nack = 0, n_ret = 0, n_fail = 0;
	size_t n;

	pub->drain_due = false;
	while ((n = sv_confirm_drain(&pub->win, out, sizeof out / sizeof out[0], &release))) {
		for (size_t i = 0; i < n; i++) {
			struct sv_slot *sl = &pub->slots[out[i].tag & pub->wmask];
			unsigned st = out[i].status;

			sl->outcome = (uint8_t)st;
			if (st & SV_CONFIRM_RETURNED)
				n_ret++;
			else if (st & SV_CONFIRM_FAILED)
				n_fail++;
			else if (st & SV_CONFIRM_NACKED)
				n_nack++;
			else
				n_ack++;
			if (sl->t_ns) {
				if (!now)
					now = sv_now_ns();
				sv_latency_record(&pub->ctr, now > sl->t_ns ? now - sl->t_ns : 0);
			}
		}
		last = out[n - 1].tag;
	}
	if (!last)
		return;
	sv_stat_add(&pub->ctr.acked, n_ack);
	sv_stat_add(&pub->ctr.nacked, n_nack);
	sv_stat_add(&pub->ctr.returned, n_ret);
	sv_stat_add(&pub->ctr.failed, n_fail);
	if (release > pub->release_to)
		pub->release_to = release;
	/* Envelopes whose records are all drained no longer need their tags' ranges. */
	if (pub->envs)
		while (pub->env_lo <= pub->env_tags &&
		       pub->envs[(pub->env_lo + pub->env_base) & pub->wmask].last <= last)
			pub->env_lo++;
	pub_release(pub);
	sv_done_publish(pub, last);
}

/*
 * The publisher's channel is gone: give its unsent bytes back, and in confirm modes fail
 * every message without an outcome, sent or not, so that none vanishes. Only when none of
 * its bytes is in flight. The I/O thread calls it, or the producer once the I/O thread has
 * exited (orphaned).
 */
void sv_pub_count_unverified(struct salvo_publisher *pub)
{
	/* Acquire: at least every message committed before the bytes the caller saw. */
	uint64_t published = atomic_load_explicit(&pub->published, memory_order_acquire);

	if (pub->slots || published <= pub->be_verified)
		return;
	sv_stat_add(&pub->ctr.possibly_lost, published - pub->be_verified);
	pub->be_verified = published;
}

void sv_pub_fail(struct salvo_publisher *pub)
{
	const uint8_t *p;
	size_t n = sv_ring_pending(&pub->ring, &p);
	uint64_t sent;

	/* Best effort: the broker ignores a closed channel's frames, so everything after the
	 * last proof may be lost, and what is still unsent (given up on here) is. */
	sv_pub_count_unverified(pub);
	sv_ring_mark_sent(&pub->ring, n);
	sent = sv_ring_sent(&pub->ring);
	pub->must_end = 0;
	if (pub->slots) {
		tag_sent(pub, sent);
		sv_confirm_fail_all(&pub->win);
		sv_pub_drain(pub);
	}
	sv_ring_release(&pub->ring, sent);
}

/* Nothing of this publisher is in the kernel's hands, and no message is half sent. */
static bool pub_quiet(const struct salvo_publisher *pub)
{
	return !pub->in_flight && sv_ring_sent(&pub->ring) >= pub->must_end;
}

bool sv_pub_closed(const struct salvo_publisher *pub)
{
	return atomic_load_explicit(&pub->ch->state, memory_order_relaxed) == SV_CH_CLOSED;
}

/*
 * How long the producers let the next read wait, from the last one. Not at all while one
 * needs what the broker says now: a confirm at most SV_WANT_NEAR beyond what it has (a
 * sync publish, the end of wait_confirms), ring space that confirms free (a ring three
 * quarters full counts too: its producer may be about to wait, and it kicks this thread
 * before it records that it waits), or confirms the acks bring sooner than a quarter of
 * read_hold_us at the rate measured (io_recv.c). With none waiting, read_hold_us. With
 * some, until the first of them has what it waits for at that rate, up to SV_ACK_HOLD_CAP
 * times read_hold_us, or read_hold_us while a consumer or a request's reply may be
 * behind the acks (others_listen). A producer that waits for a quarter of its window
 * from RabbitMQ (30-50 confirms a millisecond) needs twenty milliseconds or more of
 * them, and a read when they are all there wakes it once, where reads of what came every
 * few milliseconds woke this thread a dozen times for them. From a fast broker the same
 * quarter comes at once, and holding would only stall the producer. The rate is an
 * estimate: confirms that come sooner wait for the hold's end, at most the time they
 * were due in.
 */
#define SV_WANT_NEAR 64u

/* How long the confirms pub waits for take to come at the rate measured (0: no measure,
 * a stale one, or it waits for none). */
static uint64_t want_eta_ns(const salvo_client *c, struct salvo_publisher *pub)
{
	uint64_t want = atomic_load_explicit(&pub->ev_want, memory_order_relaxed);
	uint64_t done = atomic_load_explicit(&pub->done, memory_order_relaxed);

	uint64_t need = want - done;

	/* Untrusted: too few samples, or none for long (the next read, not held, measures
	 * again). */
	if (!want || want <= done || c->ack_read_samples < SV_ACK_SAMPLES ||
	    c->last_recv_ns - c->ack_read_at > SV_ACK_RATE_AGE_NS)
		return 0;
	if (need > ((uint64_t)1 << 24)) /* a window's most: no overflow below */
		need = (uint64_t)1 << 24;
	return need * c->ack_read_ns / c->ack_read_confirms;
}

/* Whether anything but confirms may be on its way to this connection for someone waiting:
 * a delivery to a consumer, or the reply to a request (a method, a basic.get). Such
 * frames behind a held read wait for its end; they are worth read_hold_us at most. */
static bool others_listen(salvo_client *c)
{
	size_t words = c->sess.channel_max / 64u + 1;
	bool any = !CK_STAILQ_EMPTY(&c->await0);

	/* channel_ids is the application's too (channel numbers are drawn under lock). */
	pthread_mutex_lock(&c->lock);
	for (size_t w = 0; w < words && !any; w++) {
		uint64_t bits = c->channel_ids[w];

		while (bits && !any) {
			size_t id = w * 64 + (size_t)__builtin_ctzll(bits);
			salvo_channel *ch = id && id <= c->sess.channel_max ? c->channels[id] : NULL;

			bits &= bits - 1;
			any = ch && (ch->consumers || !CK_STAILQ_EMPTY(&ch->await));
		}
	}
	pthread_mutex_unlock(&c->lock);
	return any;
}

uint64_t sv_pubs_hold_ns(salvo_client *c)
{
	uint64_t base = sv_recv_hold_ns(c), hold = SV_ACK_HOLD_CAP * base;
	bool waits = false;

	if (!base)
		return 0;
	if (hold > SV_ACK_HOLD_MAX_NS)
		hold = SV_ACK_HOLD_MAX_NS;
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		uint64_t used = sv_ring_head(&pub->ring) - sv_ring_released(&pub->ring);
		uint64_t want = atomic_load_explicit(&pub->ev_want, memory_order_relaxed);
		uint64_t eta;

		if (atomic_load_explicit(&pub->ring.waiting, memory_order_relaxed) ||
		    used > sv_ring_capacity(&pub->ring) / 4 * 3)
			return 0;
		if (!want)
			continue;
		if (want <= atomic_load_explicit(&pub->done, memory_order_relaxed) + SV_WANT_NEAR)
			return 0;
		/* 0 when the rate is not trusted: the next read, not held, measures it. */
		eta = want_eta_ns(c, pub);
		if (eta < base / 4)
			return 0;
		waits = true;
		if (eta < hold)
			hold = eta;
	}
	if (!waits)
		return base;
	return hold > base && others_listen(c) ? base : hold;
}

bool sv_pubs_waiting(salvo_client *c)
{
	return sv_pubs_hold_ns(c) < sv_recv_hold_ns(c);
}

bool sv_recv_hold_cut(salvo_client *c)
{
	uint64_t by;

	if (!c->recv_hold_until)
		return false;
	by = c->last_recv_ns + sv_pubs_hold_ns(c);
	if (by >= c->recv_hold_until)
		return false;
	c->recv_hold_until = by;
	return true;
}

uint64_t sv_pubs_done_sum(salvo_client *c)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < c->npubs; i++)
		sum += atomic_load_explicit(&c->pubs[i]->done, memory_order_relaxed);
	return sum;
}

/* What of a publisher's ring the next send must or may carry: all pending messages while
 * its channel is open and it stays attached; otherwise only the rest of a message a short
 * write cut (the broker would take anything else on the channel for its missing frames). */
static size_t pub_ready(salvo_client *c, struct salvo_publisher *pub, const uint8_t **p,
			bool *to_head)
{
	size_t n = sv_ring_pending(&pub->ring, p);
	uint64_t sent = sv_ring_sent(&pub->ring);

	/* Paused after a reconnection until the hooks ran and the channel is back, while
	 * the broker says the connection is blocked, and while it has stopped the channel's
	 * content (channel.flow, io_channel.c). */
	*to_head = !sv_pub_closed(pub) && !pub->detach && !c->paused && !c->blocked &&
		   !pub->ch->recovering && !pub->ch->flow_stopped;
	if (*to_head)
		return n;
	return pub->must_end > sent ? (size_t)(pub->must_end - sent) : 0;
}

size_t sv_pub_span(salvo_client *c, struct salvo_publisher *pub, const uint8_t **p,
		   struct sv_span *sp)
{
	/* Best effort counts messages by the producer's count, not by walking frames (a read
	 * of every frame header): the producer counts a message just before it commits it
	 * (both stores released), so read after the head's acquire the count is at least the
	 * number of messages below that head; read (acquire) before, less the one that may
	 * be counted and not yet committed, at most. */
	sp->lo = 0;
	if (!pub->slots) {
		sp->lo = atomic_load_explicit(&pub->published, memory_order_acquire);
		/* A batching producer counts a whole envelope's records before its commit. */
		uint64_t ahead = pub->batch.on ? pub->batch.max_records : 1;

		sp->lo = sp->lo > ahead ? sp->lo - ahead : 0;
	}
	sp->n = pub_ready(c, pub, p, &sp->to_head);
	return sp->n;
}

void sv_pub_in_send(struct salvo_publisher *pub, const struct sv_span *sp)
{
	pub->in_flight = true;
	if (!pub->slots) {
		pub->snap_lo = sp->lo;
		pub->snap_hi = atomic_load_explicit(&pub->published, memory_order_relaxed);
		/* Only a span that ends at the head lo was read before is described by it. */
		pub->snap_end = sp->to_head ? sv_ring_sent(&pub->ring) + sp->n : 0;
	}
}

bool sv_rings_idle(salvo_client *c)
{
	for (size_t i = 0; i < c->npubs; i++) {
		const uint8_t *p;
		bool to_head;
		if (pub_ready(c, c->pubs[i], &p, &to_head))
			return false;
	}
	return true;
}

/*
 * Where the message holding ring position pos ends. from is a message boundary at or
 * before pos, limit one after it (the end of what was sent), and every byte in between is
 * committed, so the frame headers can be read: a publisher's ring holds only whole
 * messages, each a basic.publish method frame followed by its content frames.
 */
static uint64_t message_end(const struct sv_ring *r, uint64_t from, uint64_t pos, uint64_t limit)
{
	while (from < pos)
		from += SV_FRAME_OVERHEAD + sv_load32(sv_ring_at(r, from) + 3);
	while (from < limit && *sv_ring_at(r, from) != SV_FRAME_METHOD)
		from += SV_FRAME_OVERHEAD + sv_load32(sv_ring_at(r, from) + 3);
	return from;
}

/* The kernel took take of the len bytes this publisher had in the send. */
void sv_pub_sent(salvo_client *c, struct salvo_publisher *pub, size_t take, size_t len)
{
	uint64_t s0 = sv_ring_sent(&pub->ring), s1 = s0 + take;

	pub->in_flight = false;
	/* Best effort: bounds of how many messages are now sent, from the snapshot of the
	 * producer's count taken with this span (add_pub). */
	if (!pub->slots && take) {
		if (s1 == pub->snap_end)
			pub->be_lo = pub->snap_lo;
		if (pub->snap_hi > pub->be_hi)
			pub->be_hi = pub->snap_hi;
	}
	/* Find where a cut message ends before releasing: once released, the producer may
	 * overwrite the frame headers the walk reads. s0 is a message boundary unless an
	 * earlier cut left must_end beyond it. */
	if (take < len && pub->must_end <= s1)
		pub->must_end = message_end(&pub->ring, pub->must_end > s0 ? pub->must_end : s0,
					    s1, s0 + len);
	sv_ring_mark_sent(&pub->ring, take);
	if (pub->slots) {
		/* Confirm modes: the space is released as confirms arrive (pub_drain), or here
		 * when they came before a resend reached them. */
		tag_sent(pub, s1);
		pub_release(pub);
	} else
		/* Best effort: the space is reusable as soon as the kernel is done with it. */
		sv_ring_release(&pub->ring, s1);
	if (take < len && pub->must_end > s1)
		c->partial_pub = pub;
}

/*
 * Best effort has no confirms, so a lost connection would leave no way to say what it
 * cost. About once a millisecond while a best-effort publisher sends, a channel.flow
 * (active=true, which changes nothing) goes on its channel ahead of this send's messages:
 * the broker handles a channel's frames in order, so its flow-ok proves every message
 * sent before it was handled. At a loss, what was sent after the last proof is counted as
 * possibly lost (salvo_pub_stats.possibly_lost). One checkpoint in flight per publisher.
 */
#define SV_CKPT_NS (1000u * 1000u)

/* A checkpoint's flow-ok: what was sent before it is proven handled. */
static enum sv_reply_next checkpoint_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
					const struct sv_method *m)
{
	struct salvo_publisher *pub = req->pub; /* NULL: it has left */

	(void)c;
	(void)ch;
	(void)m;
	if (pub) {
		if (req->ckpt_count > pub->be_verified)
			pub->be_verified = req->ckpt_count;
		pub->ckpt_inflight = false;
	}
	return SV_REPLY_DONE;
}

void sv_pub_checkpoints(salvo_client *c)
{
	uint64_t now = 0;

	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		struct sv_method flow = {.id = SV_CHANNEL_FLOW, .a.channel_flow.active = true};
		struct sv_request *req;

		/* Not while the channel awaits a reply: RabbitMQ refuses any method during a
		 * tx.commit with 504 "unexpected command while processing 'tx.commit'". */
		if (pub->slots || pub->ckpt_inflight || pub->be_lo <= pub->be_verified ||
		    sv_pub_closed(pub) || pub->detach || c->paused || pub->ch->recovering ||
		    pub->ch->close_sent || !CK_STAILQ_EMPTY(&pub->ch->await) ||
		    pub->ch->incoming_req)
			continue;
		if (!now)
			now = sv_now_ns();
		if (now - pub->ckpt_last_ns < SV_CKPT_NS)
			continue;
		req = sv_channel_own_request(c, pub->ch, &flow, SV_CHANNEL_FLOW_OK, checkpoint_ok,
					     pub);
		if (!req)
			continue; /* a checkpoint is worth no failure: the next one may do */
		req->ckpt_count = pub->be_lo;
		pub->ckpt_inflight = true;
		pub->ckpt_last_ns = now;
	}
}

/* What a lost connection may have cost best-effort publishers: at most what was sent
 * after the last checkpoint. The next connection starts from what was surely sent. */
void sv_count_possibly_lost(salvo_client *c)
{
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];

		if (!pub->slots && pub->be_hi > pub->be_verified)
			sv_stat_add(&pub->ctr.possibly_lost, pub->be_hi - pub->be_verified);
		/* Counted once: a message counted here and sent again on the next connection
		 * is not counted again there. */
		if (pub->be_hi > pub->be_verified)
			pub->be_verified = pub->be_hi;
		pub->ckpt_inflight = false;
	}
}

/* A publisher's detach is over: answer its waiter; if the waiter stopped waiting (its
 * timeout passed while the broker read nothing), free the publisher (a close), or keep
 * it on the list as it was (a reopening, which tries again at its next call). */
void sv_detach_done(salvo_client *c, struct sv_request *req, struct salvo_publisher *pub,
			bool listed)
{
	bool abandoned = atomic_exchange(&req->abandoned, 1);
	bool keep = req->keep;

	sv_request_complete(req, 0, NULL);
	if (!abandoned)
		return;
	if (!keep) {
		sv_publisher_release_abandoned(pub);
		return;
	}
	if (!listed) {
		c->pubs[c->npubs++] = pub; /* the slot it left */
		pub->ch->pub = pub;
	}
}

/*
 * Once quiet, a publisher whose channel is closed gives its unsent bytes back, and one
 * being detached leaves the list. Returns true if it left. Never while its bytes are in
 * flight: the kernel may still be reading them, and the producer must not overwrite them.
 */
static bool pub_settle(salvo_client *c, size_t i)
{
	struct salvo_publisher *pub = c->pubs[i];
	struct sv_request *req = pub->detach;

	if (!pub_quiet(pub))
		return false;
	if (sv_pub_closed(pub)) {
		sv_pub_fail(pub);
		/* Release: what the fail wrote is the producer's once it sees this. */
		atomic_store_explicit(&pub->closed_quiet, 1, memory_order_release);
	}
	if (!req)
		return false;
	c->pubs[i] = c->pubs[--c->npubs];
	if (c->partial_pub == pub)
		c->partial_pub = NULL;
	pub->ch->pub = NULL;
	pub->detach = NULL;
	/* The reply to its checkpoint or its channel's reopening may come after it is gone. */
	struct sv_request *r;
	CK_STAILQ_FOREACH(r, &pub->ch->await, link)
		r->pub = NULL;
	if (pub->ch->recovering && CK_STAILQ_EMPTY(&pub->ch->await) && !pub->ch->incoming_req) {
		/* Its channel was waiting to be reopened (the next connection, or the hooks);
		 * nobody needs it now: it ends here, the broker never saw it. */
		salvo_error e = sv_lost_error(c);
		pub->ch->recovering = false;
		sv_channel_mark_closed(pub->ch, &e);
		sv_channel_forget(c, pub->ch);
	} else if (pub->ch->recovering) {
		/* Its reopening is under way: let it finish without the publisher, which may be
		 * freed once this detach completes. */
		pub->ch->recovering = false;
	}
	sv_detach_done(c, req, pub, false);
	return true;
}

void sv_settle_pubs(salvo_client *c)
{
	/* backwards: pub_settle moves the last entry into the slot it frees */
	for (size_t i = c->npubs; i-- > 0;)
		pub_settle(c, i);
}

/* An attach request: the publisher joins the list the sends gather from. */
bool sv_pub_attach(salvo_client *c, struct salvo_publisher *pub)
{
	if (c->npubs == c->pubs_cap) {
		size_t cap = c->pubs_cap ? 2 * c->pubs_cap : 8;
		void *p = realloc(c->pubs, cap * sizeof *c->pubs);
		if (!p)
			return false;
		c->pubs = p;
		c->pubs_cap = cap;
	}
	c->pubs[c->npubs++] = pub;
	pub->ch->pub = pub;
	return true;
}

/* A detach request: completed by sv_settle_pubs once the ring is quiet, since the
 * publisher's memory may be unmapped as soon as the request completes. One at a time (the
 * publisher's claim makes a second one a bug): refused, not leaked. */
void sv_pub_detach(salvo_client *c, struct sv_request *req)
{
	if (req->pub->detach) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_INVALID_STATE, SALVO_ERROR_LOCAL,
			     "the publisher is being detached already");
		sv_request_complete(req, e.status, &e);
		return;
	}
	req->pub->detach = req;
	sv_settle_pubs(c);
}

/* A basic.ack or basic.nack from the broker, for a confirm-mode publisher's channel. */
void sv_pub_confirmed(salvo_client *c, salvo_channel *ch, uint64_t tag, bool multiple,
			   bool nack)
{
	struct salvo_publisher *pub = ch->pub;

	/* A publisher detached while the channel closes no longer tracks its messages; a
	 * channel put in confirm mode with salvo_confirm_select has no publisher at all. */
	if (!pub || !pub->slots)
		return;
	if (pub->envs && tag) {
		/* Batching: a tag is an envelope, a range of records. */
		uint64_t first, last;
		bool known = env_range(pub, tag, &first, &last);
		int rc = -1;

		if (known && multiple)
			rc = sv_confirm_settle(&pub->win, last, true, nack);
		else if (known)
			for (uint64_t s = first; s <= last; s++)
				rc &= sv_confirm_settle(&pub->win, s, false, nack);
		/* An envelope sent again after a reconnection may have been settled on the old
		 * connection already, or settled and drained since (its range gone): a repeat
		 * is fine. */
		if (known ? rc && last > pub->resent_until : tag > pub->env_resent)
			sv_protocol_error(c, 503, "basic.%s for delivery tag %llu%s on channel %u, "
					  "which has no such envelope awaiting its confirm",
					  nack ? "nack" : "ack", (unsigned long long)tag,
					  multiple ? " (multiple)" : "", ch->id);
		pub->drain_due = true;
		return;
	}
	/* After a reconnection the new channel numbers from 1 again: seq = tag + tag_base. */
	if (tag)
		tag += pub->tag_base;
	if (sv_confirm_settle(&pub->win, tag, multiple, nack)) {
		/* A message sent again after a reconnection may have been settled on the old
		 * connection already: its second ack settles nothing, and that is fine. */
		if (tag && tag <= pub->resent_until)
			return;
		sv_protocol_error(c, 503, "basic.%s for delivery tag %llu%s on channel %u, which has "
			       "no such message awaiting its confirm",
			       nack ? "nack" : "ack", (unsigned long long)tag,
			       multiple ? " (multiple)" : "", ch->id);
		return;
	}
	pub->drain_due = true;
}

/*
 * A publisher's channel is open again on the new connection (and in confirm mode again):
 * resume it. Confirm modes send again every message without an outcome, from released;
 * the new channel's delivery tags start at 1, so tag t is now seq t + tag_base. Best
 * effort cannot resend (its ring is released as it is sent); recovery has dropped the
 * rest of a message the loss cut.
 */
enum sv_reply_next sv_pub_reopened(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				   const struct sv_method *m)
{
	struct salvo_publisher *pub = req->pub; /* NULL: it has left */

	(void)c;
	(void)ch;
	(void)m;
	if (!pub)
		return SV_REPLY_DONE;
	pub->ch->recovering = false;
	if (pub->slots) {
		uint64_t first = pub->win.first, next = sv_confirm_next_tag(&pub->win);

		sv_ring_rewind(&pub->ring);
		/* What confirms already drained (a resend on a connection lost in turn may have
		 * drained messages before their bytes went again) is not sent again: the resend
		 * starts at the first message without an outcome, which tag 1 names below, and
		 * never in the middle of a message a short write cut. */
		if (pub->release_to > sv_ring_released(&pub->ring)) {
			sv_ring_mark_sent(&pub->ring,
					  (size_t)(pub->release_to - sv_ring_released(&pub->ring)));
			sv_ring_release(&pub->ring, pub->release_to);
		}
		pub->tag_base = first - 1;
		pub->resent_until = next - 1;
		/* Batching: the envelopes go again in order, the first not drained as tag 1. */
		if (pub->envs) {
			pub->env_base += pub->env_lo - 1;
			pub->env_tags -= pub->env_lo - 1;
			pub->env_lo = 1;
			pub->env_resent = pub->env_tags;
		}
		sv_stat_add(&pub->ctr.resent, next - first);
	}
	return SV_REPLY_DONE;
}
