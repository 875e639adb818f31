/* SPDX-License-Identifier: MIT */
/*
 * Publishers: the hot path. salvo_publish encodes nothing per message beyond patching a
 * body size: the method and content header frames come from a template cached for the
 * last (exchange, routing key, flags), and the whole message is written into the
 * publisher's ring with one copy. No lock, no shared counter, and usually no fence: the
 * shared accesses are the store of head, a load of sent and a load of the I/O thread's
 * parked flag; sv_client_kick's fence only when the ring was idle.
 *
 * Confirm modes add, per message, a slot in the window (its end position, an opaque
 * pointer, sometimes a timestamp) written before the commit. The I/O thread tags each
 * message once sent, settles the tags as acks and nacks arrive (confirm.c), and then
 * publishes done, the highest sequence number below which every message has an outcome,
 * with the outcomes in the slots. The producer reads them from its own thread: a sync
 * publish waits for done to pass its message, an async one delivers them from poll.
 * Waiting for done is pub_done.c's handshake; waking the I/O thread after a commit,
 * park.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "park.h"
#include "pub_done.h"
#include "props.h"
#include "returns.h"

/* Async mode timestamps one message in 16 for the latency histogram: a clock read costs
 * tens of nanoseconds in a virtual machine, a third of the rest of a publish. */
#define SAMPLE_MASK 15u

static int closed_error(salvo_publisher *p, salvo_error *err)
{
	/* Acquire: pairs with the I/O thread's release of state after writing error. */
	if (atomic_load_explicit(&p->ch->state, memory_order_acquire) != SV_CH_CLOSED)
		return 0;
	sv_error_copy(err, &p->ch->error);
	return p->ch->error.status;
}

static bool confirming(const salvo_publisher *p)
{
	return p->mode != SALVO_CONFIRM_NONE;
}

/*
 * One thread at a time. A publisher's producer side (the ring's head, the template, the
 * window's slots) has a single writer by design; two threads inside salvo_publish at once
 * would lay their frames over each other in the ring and the broker would close the whole
 * connection (501 FRAME_ERROR). So every call on the producer side claims the publisher:
 * a compare-and-swap of user from 0 to the calling thread's marker (the address of a
 * thread-local, unique among live threads), given back with a release store when the call
 * returns. A second thread finds it taken and is refused before it touches anything. The
 * acquire of the claim and the release of the give-back also order a legitimate hand-over:
 * everything thread A did in its last call is visible to thread B in its first.
 *
 * The calling thread finding its own marker is a call from inside on_outcome (the only
 * way back in): a nested call, which neither claims nor gives back. Nested, only publishing
 * is allowed, and never waits for outcomes (they are what the callback is being given).
 *
 * Cost: one locked instruction per call, about 20 cycles on a cache line the producer
 * already holds (docs/design.md has the A/B against salvo-sink).
 */
static _Thread_local char thread_marker;

static bool reopens(const salvo_publisher *p);
static int detached_error(salvo_publisher *p, salvo_error *err);
static void report_closed(salvo_publisher *p, int rc);
static int channel_for_call(salvo_publisher *p, bool may_reopen, int timeout_ms,
			    const struct timespec *deadline, salvo_error *err);

enum claim { CLAIMED, NESTED };

static int claim(salvo_publisher *p, const char *call, enum claim *how, salvo_error *err)
{
	uintptr_t me = (uintptr_t)&thread_marker, prev = 0;

	/* Acquire: pairs with the release in give_back by the publisher's previous thread. */
	if (atomic_compare_exchange_strong_explicit(&p->user, &prev, me, memory_order_acquire,
						    memory_order_relaxed)) {
		*how = CLAIMED;
		return 0;
	}
	if (prev == me && p->in_outcome) {
		*how = NESTED;
		return 0;
	}
	return sv_error_set(err, SALVO_ERR_INVALID_STATE, SALVO_ERROR_LOCAL,
			    "%s: another thread is using this publisher; a publisher serves one "
			    "thread at a time: give each thread its own (salvo_publisher_pool_get), "
			    "or publish from any thread with salvo_publisher_pool_publish",
			    call);
}

static void give_back(salvo_publisher *p, enum claim how)
{
	/* Release: everything this call did happens before the next claim's acquire. */
	if (how == CLAIMED)
		atomic_store_explicit(&p->user, 0, memory_order_release);
}

/* For the calls on_outcome may not make: refused when nested, claimed otherwise. */
static int claim_outside_outcome(salvo_publisher *p, const char *call, salvo_error *err)
{
	enum claim how = CLAIMED;
	int rc = claim(p, call, &how, err);

	if (rc || how == CLAIMED)
		return rc;
	return sv_error_set(err, SALVO_ERR_INVALID_STATE, SALVO_ERROR_LOCAL,
			    "%s called from inside on_outcome: a callback may publish, but not "
			    "poll, flush, wait for or close its publisher", call);
}

/* The headers table stamped into mandatory publishes in confirm modes, so that a
 * basic.return (which carries no delivery tag) can be matched to its message. */
static const uint8_t seq_table[] = {
	sizeof SV_SEQ_HEADER - 1, 'x', '-', 's', 'a', 'l', 'v', 'o', '-', 's', 'e', 'q',
	'l', 0, 0, 0, 0, 0, 0, 0, 0,
};

/* tpl_flags of a template made from properties: it never matches a later message's flags,
 * so the next message encodes its own. */
#define TPL_PROPS 0x80000000u

/*
 * Where the template of a message with properties goes: tpl_heap, grown to cap bytes plus
 * scratch bytes after them (for the stamped headers). Returns 0 or SALVO_ERR_NO_MEMORY.
 */
static int tpl_heap_reserve(salvo_publisher *p, size_t cap, size_t scratch, salvo_error *err)
{
	if (p->tpl_heap_cap < cap + scratch) {
		uint8_t *nb = realloc(p->tpl_heap, cap + scratch);
		if (!nb) {
			sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				     "out of memory for a %zu-byte publish template", cap);
			return SALVO_ERR_NO_MEMORY;
		}
		p->tpl_heap = nb;
		p->tpl_heap_cap = cap + scratch;
	}
	return 0;
}

static int set_template(salvo_publisher *p, const salvo_msg *m, unsigned flags, salvo_error *err)
{
	struct sv_basic_props props;
	struct sv_codec_error cerr;
	const char *exchange = m->exchange, *routing_key = m->routing_key;
	size_t elen = strlen(exchange), rlen = strlen(routing_key);
	bool stamp = p->stamp && (flags & SALVO_MSG_MANDATORY);
	uint8_t *buf = p->tpl_buf;
	size_t cap = sizeof p->tpl_buf;
	int rc;

	if (elen > SV_SHORTSTR_MAX || rlen > SV_SHORTSTR_MAX) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "%s is %zu bytes; AMQP names hold at most 255",
			     elen > SV_SHORTSTR_MAX ? "exchange" : "routing key",
			     elen > SV_SHORTSTR_MAX ? elen : rlen);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	rc = sv_props_from_public(m->props, flags & SALVO_MSG_PERSISTENT, &props, err);
	if (rc)
		return rc;
	p->tpl_valid = false;
	/* The stamp goes first among the caller's headers, so that the search below and the
	 * match of a basic.return (the first x-salvo-seq) find ours. */
	size_t merged = stamp && props.headers.len ? sizeof seq_table + props.headers.len : 0;
	if (stamp && !merged) {
		props.flags |= SV_PROP_HEADERS;
		props.headers = (struct sv_table){seq_table, sizeof seq_table};
	}
	if (m->props) {
		size_t header = SV_FRAME_OVERHEAD + 12 + sv_props_encoded_size(&props) +
				(merged ? sizeof seq_table : 0);

		if (header > p->client->sess.frame_max) {
			sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				     "the properties make a %zu-byte content header; frame_max is %u "
				     "and a content header cannot be split",
				     header, p->client->sess.frame_max);
			return SALVO_ERR_INVALID_ARGUMENT;
		}
		cap = SV_PUBLISH_METHOD_MAX + header;
		rc = tpl_heap_reserve(p, cap, merged, err);
		if (rc)
			return rc;
		buf = p->tpl_heap;
		if (merged) {
			uint8_t *h = p->tpl_heap + cap;
			memcpy(h, seq_table, sizeof seq_table);
			memcpy(h + sizeof seq_table, props.headers.ptr, props.headers.len);
			props.headers = (struct sv_table){h, (uint32_t)merged};
		}
	}
	if (sv_publish_template_init(&p->tpl, buf, cap, p->ch->id,
				     (struct sv_bytes){(const uint8_t *)exchange, (uint32_t)elen},
				     (struct sv_bytes){(const uint8_t *)routing_key, (uint32_t)rlen},
				     flags & SALVO_MSG_MANDATORY, &props,
				     p->client->sess.frame_max, &cerr)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s", cerr.reason);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	p->seq_at = 0;
	if (stamp) {
		/* The table is copied whole into the header frame; find its value there. Nothing
		 * before it can hold its eight zero bytes: names and properties are C strings. */
		const uint8_t *at = memmem(p->tpl.bytes, p->tpl.len, seq_table, sizeof seq_table);
		p->seq_at = (uint32_t)(at - p->tpl.bytes) + sizeof seq_table - 8;
	}
	memcpy(p->tpl_exchange, exchange, elen + 1);
	memcpy(p->tpl_routing_key, routing_key, rlen + 1);
	p->tpl_flags = m->props ? flags | TPL_PROPS : flags;
	p->tpl_valid = true;
	p->tpl_gen++;
	return 0;
}

static bool deadline_at(int timeout_ms, struct timespec *ts)
{
	if (timeout_ms < 0)
		return false;
	sv_timespec_after(ts, CLOCK_MONOTONIC, timeout_ms);
	return true;
}

/* Wait until n bytes are free in the ring, the channel closes, or the deadline passes. */
static int wait_room(salvo_publisher *p, size_t n, int timeout_ms, const struct timespec *ts,
		     salvo_error *err)
{
	size_t want = sv_ring_capacity(&p->ring) / 4;

	for (;;) {
		int rc = closed_error(p, err);
		if (rc)
			return rc;
		if (sv_ring_reserve(&p->ring, n))
			return 0;
		if (timeout_ms == 0) {
			sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
				     "the publisher's ring is full");
			return SALVO_ERR_WOULD_BLOCK;
		}
		/* The I/O thread frees space as it sends (or as confirms arrive); make sure it
		 * is awake to. A channel close interrupts the wait (-ECANCELED): the loop then
		 * reports it. */
		sv_waiter_kick(p->client);
		/* A quarter of the ring at least, for the same reason as in wait_window. */
		if (sv_ring_wait_space(&p->ring, n > want ? n : want, ts) == -ETIMEDOUT &&
		    !sv_ring_reserve(&p->ring, n)) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "no room in the publisher's ring within %d ms", timeout_ms);
			return SALVO_ERR_TIMEOUT;
		}
	}
}

/* Confirms. */

static uint64_t done_of(salvo_publisher *p)
{
	return sv_done_load(p);
}

/*
 * Wait until every message up to seq has an outcome, or until the deadline (-ETIMEDOUT).
 * A connection that ended with the I/O thread gone leaves messages committed after its
 * last pass to this thread, which fails them itself.
 */
static int wait_done(salvo_publisher *p, uint64_t seq, const struct timespec *deadline)
{
	int rc;

	while ((rc = sv_done_wait(p, seq, deadline)) == -EOWNERDEAD)
		sv_pub_fail(p);
	return rc;
}

static struct sv_slot *slot_of(salvo_publisher *p, uint64_t seq)
{
	return &p->slots[seq & p->wmask];
}

/*
 * Turn seq's outcome into a status for a sync publish or wait_confirms, and, when o is
 * given, into the outcome for the callback (ret keeps the return's strings alive).
 */
static int outcome_status(salvo_publisher *p, uint64_t seq, salvo_outcome *o,
			  struct sv_return **ret, salvo_error *err)
{
	struct sv_slot *s = slot_of(p, seq);
	unsigned st = s->outcome;
	int rc = 0;

	if (o)
		*o = (salvo_outcome){.seq = seq, .opaque = s->opaque, .kind = SALVO_OUTCOME_ACKED};
	*ret = NULL;
	if (st & SV_CONFIRM_FAILED) {
		/* The channel has ended (the I/O thread fails messages only then): this one, or
		 * the one a reopening replaced. */
		const salvo_error *why = seq <= p->replaced_upto ? &p->replaced_err : &p->ch->error;

		sv_error_copy(err, why);
		rc = why->status ? why->status : SALVO_ERR_CLOSED;
		if (o) {
			o->kind = SALVO_OUTCOME_FAILED;
			o->error = why;
		}
	} else if (st & SV_CONFIRM_RETURNED) {
		struct sv_return *r = sv_return_take(p, seq);

		rc = SALVO_ERR_RETURNED;
		if (r) {
			sv_error_copy(err, &r->err);
			if (o) {
				o->reply_code = r->err.reply_code;
				o->exchange = r->exchange;
				o->routing_key = r->routing_key;
				o->error = &r->err;
			}
		} else {
			sv_error_set(err, SALVO_ERR_RETURNED, SALVO_ERROR_LOCAL,
				     "the broker returned message %llu", (unsigned long long)seq);
		}
		if (o)
			o->kind = SALVO_OUTCOME_RETURNED;
		*ret = r;
	} else if (st & SV_CONFIRM_NACKED) {
		sv_error_set(err, SALVO_ERR_NACKED, SALVO_ERROR_LOCAL,
			     "the broker nacked message %llu", (unsigned long long)seq);
		rc = SALVO_ERR_NACKED;
		if (o)
			o->kind = SALVO_OUTCOME_NACKED;
	}
	return rc;
}

/* How bad an outcome's status is for wait_confirms: a failure (the channel or connection
 * ended) beats a nack, which beats a return. */
static int severity(int rc)
{
	return rc == 0 ? 0 : rc == SALVO_ERR_RETURNED ? 1 : rc == SALVO_ERR_NACKED ? 2 : 3;
}

/* Remember the worst outcome for wait_confirms, the first of equals. */
static void note_status(salvo_publisher *p, int rc, const salvo_error *err)
{
	if (severity(rc) <= severity(p->wait_status))
		return;
	p->wait_status = rc;
	p->wait_err = *err;
	p->wait_err.status = rc;
}

/* Deliver known outcomes (up to max; 0: all); returns how many. */
static size_t deliver(salvo_publisher *p, size_t max)
{
	uint64_t done = done_of(p), n = 0;

	while (p->reported < done && (!max || n < max)) {
		uint64_t seq = p->reported + 1;
		struct sv_return *r;
		salvo_returned returned;
		salvo_outcome o;
		salvo_error e;
		int rc = outcome_status(p, seq, &o, &r, &e);

		note_status(p, rc, &e);
		if (r) {
			sv_return_fill(r, seq, &returned);
			o.returned = &returned;
		}
		/* Reported before the callback, which may publish into the freed slot. */
		p->reported = seq;
		if (p->on_outcome) {
			p->in_outcome++;
			p->on_outcome(&o, p->on_outcome_arg);
			p->in_outcome--;
		}
		sv_return_free(p->client, r);
		n++;
	}
	return n;
}

/* Best effort: run on_return for up to max returns queued (0: all); returns how many. */
static size_t deliver_returns(salvo_publisher *p, size_t max)
{
	struct sv_return *r;
	size_t n = 0;

	while ((!max || n < max) && (r = sv_return_next(p))) {
		salvo_returned returned;

		sv_return_fill(r, 0, &returned);
		/* As in on_outcome: the callback may publish (nested), nothing else. */
		p->in_outcome++;
		p->on_return(&returned, p->on_return_arg);
		p->in_outcome--;
		sv_return_free(p->client, r);
		n++;
	}
	return n;
}

/* Sync: the last publish's return is the application's until its next call. */
static void forget_returned(salvo_publisher *p)
{
	sv_return_free(p->client, p->last_ret);
	p->last_ret = NULL;
}

/* Sync mode: past outcomes of timed-out publishes were counted; they need no report. */
static void skip_to(salvo_publisher *p, uint64_t seq)
{
	while (p->reported < seq) {
		uint64_t s = ++p->reported;
		if (slot_of(p, s)->outcome & SV_CONFIRM_RETURNED)
			sv_return_free(p->client, sv_return_take(p, s));
	}
}

/* Async: room in the window for one more message, delivering outcomes to make it. */
static int wait_window(salvo_publisher *p, int timeout_ms, const struct timespec *ts,
		       salvo_error *err)
{
	while (p->seq - p->reported >= p->wmask + 1) {
		/* Nested in on_outcome: delivering more outcomes here would recurse without
		 * bound. One publish per outcome always finds room (the outcome's slot). */
		if (p->in_outcome) {
			sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
				     "%llu messages await their confirms (the window), and a "
				     "publish from inside on_outcome cannot wait for them",
				     (unsigned long long)(p->wmask + 1));
			return SALVO_ERR_WOULD_BLOCK;
		}
		if (deliver(p, 0))
			continue;
		if (timeout_ms == 0) {
			sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
				     "%llu messages await their confirms (the window)",
				     (unsigned long long)(p->wmask + 1));
			return SALVO_ERR_WOULD_BLOCK;
		}
		/* Wait for a quarter of the window, not one slot: woken per confirm, a producer
		 * would sleep again after every message. */
		if (wait_done(p, p->reported + (p->wmask + 1) / 4, ts) == -ETIMEDOUT &&
		    done_of(p) == p->reported) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "no confirm freed the window within %d ms", timeout_ms);
			return SALVO_ERR_TIMEOUT;
		}
	}
	return 0;
}

/* Publishing. */

/* A deadline computed on first use: a publish that never waits reads no clock for it. */
struct lazy_deadline {
	int timeout_ms;
	bool set;
	struct timespec ts;
};

static const struct timespec *deadline_get(struct lazy_deadline *d)
{
	if (d->timeout_ms < 0)
		return NULL;
	if (!d->set)
		d->set = deadline_at(d->timeout_ms, &d->ts);
	return &d->ts;
}

/* Sync mode: wait for s's outcome and return it. */
static int sync_outcome(salvo_publisher *p, uint64_t s, struct lazy_deadline *dl,
			salvo_error *err)
{
	struct sv_return *r;
	int rc;

	if (wait_done(p, s, deadline_get(dl)) == -ETIMEDOUT) {
		sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
			     "no confirm for message %llu within %d ms; it is still tracked",
			     (unsigned long long)s, dl->timeout_ms);
		return SALVO_ERR_TIMEOUT;
	}
	skip_to(p, s - 1);
	rc = outcome_status(p, s, NULL, &r, err);
	if (r) {
		p->last_ret = r;
		sv_return_fill(r, s, &p->last_returned);
	}
	p->reported = s;
	return rc;
}

/* The template for m: the cached one when it matches, else a new one. */
static int use_template(salvo_publisher *p, const salvo_msg *m, unsigned flags, salvo_error *err)
{
	/* Properties are encoded per message: their strings and headers may have changed
	 * in place since the last one (see set_template for the cost). */
	if (m->props || !p->tpl_valid || p->tpl_flags != flags ||
	    strcmp(p->tpl_exchange, m->exchange) != 0 ||
	    strcmp(p->tpl_routing_key, m->routing_key) != 0)
		return set_template(p, m, flags, err);
	return 0;
}

/*
 * Confirm modes: what message s's slot holds besides its end (the window has room, so the
 * slot is free): its opaque, and its publish time when it is sampled for the latency
 * histogram (every message in sync mode, one in 16 in async).
 */
static void slot_begin(salvo_publisher *p, uint64_t s, void *opaque)
{
	struct sv_slot *sl = slot_of(p, s);

	sl->opaque = opaque;
	sl->t_ns = p->mode == SALVO_CONFIRM_SYNC || !(s & SAMPLE_MASK) ? sv_now_ns() : 0;
}

/*
 * A batching publisher's publish, past the window: the record goes into the open envelope
 * (pub_batch.c), which may first need ring room for a new one. A sync publish closes it
 * at once: nothing else can join it before the outcome this thread waits for.
 */
static int publish_record(salvo_publisher *p, const salvo_msg *m, unsigned flags,
			  struct lazy_deadline *dl, uint64_t *seq, salvo_error *err)
{
	uint64_t s = p->seq + 1;
	int64_t need;

	/* The envelope's close writes the slot's end. */
	if (confirming(p))
		slot_begin(p, s, m->opaque);
	while ((need = sv_batch_add(p, m, flags, s, err)) > 0) {
		int rc = wait_room(p, (size_t)need, dl->timeout_ms, deadline_get(dl), err);
		if (rc)
			return rc;
	}
	if (need < 0)
		return (int)need;
	p->seq = s;
	if (seq)
		*seq = s;
	if (p->mode != SALVO_CONFIRM_SYNC)
		return 0;
	sv_batch_close(p);
	return sync_outcome(p, s, dl, err);
}

/* salvo_publish_msg once the publisher is claimed. */
static int publish_claimed(salvo_publisher *p, const salvo_msg *m, int timeout_ms, uint64_t *seq,
			   salvo_error *err)
{
	struct lazy_deadline dl = {.timeout_ms = timeout_ms};
	unsigned flags = m->flags;
	uint8_t *dst;
	size_t need;
	uint64_t s, head_before;
	int rc;

	rc = channel_for_call(p, !p->in_outcome, timeout_ms, deadline_get(&dl), err);
	if (!rc)
		rc = closed_error(p, err);
	if (rc)
		return rc;
	/* Checks the names and properties before any wait. */
	rc = use_template(p, m, flags, err);
	if (rc)
		return rc;
	if (p->seq - p->reported > p->wmask && confirming(p)) {
		/* The outcomes waited for may be in the open envelope. */
		sv_batch_close(p);
		if (p->mode == SALVO_CONFIRM_ASYNC) {
			/* Outcomes delivered here may run on_outcome, whose publishes change the
			 * template: choose it again once the window has room. */
			rc = wait_window(p, timeout_ms, deadline_get(&dl), err);
			if (!rc)
				rc = use_template(p, m, flags, err);
			if (rc)
				return rc;
		} else {
			/* Timed-out sync publishes fill the window; their outcomes free it. */
			if (wait_done(p, p->seq - p->wmask, deadline_get(&dl)) == -ETIMEDOUT) {
				sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					     "%llu earlier messages still await their confirms",
					     (unsigned long long)(p->wmask + 1));
				return SALVO_ERR_TIMEOUT;
			}
			skip_to(p, p->seq - p->wmask);
		}
	}
	if (p->batch.on)
		return publish_record(p, m, flags, &dl, seq, err);
	need = sv_publish_size(&p->tpl, m->len);
	if (need > sv_ring_capacity(&p->ring)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "a %zu-byte message needs %zu ring bytes; the ring holds %zu "
			     "(publisher.ring_size)",
			     m->len, need, sv_ring_capacity(&p->ring));
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	dst = sv_ring_reserve(&p->ring, need);
	if (!dst) {
		rc = wait_room(p, need, timeout_ms, deadline_get(&dl), err);
		if (rc)
			return rc;
		dst = sv_ring_reserve(&p->ring, need);
	}
	sv_publish_write(&p->tpl, dst, m->body, m->len);
	s = ++p->seq;
	if (confirming(p)) {
		struct sv_slot *sl = slot_of(p, s);

		if (p->seq_at)
			sv_store64(dst + p->seq_at, s);
		slot_begin(p, s, m->opaque);
		/* Ordered before the I/O thread reads it by the commit's release. */
		atomic_store_explicit(&sl->end, sv_ring_head(&p->ring) + need,
				      memory_order_relaxed);
	}
	head_before = sv_ring_head(&p->ring);
	/* Counted before the commit, whose release carries it: whoever sees the head holding
	 * the message sees the count too; and released itself, so whoever sees the count sees
	 * the head of the message before (best effort's checkpoints count this way, io_pub.c).
	 * Both are plain stores on x86. */
	atomic_store_explicit(&p->published, s, memory_order_release);
	sv_ring_commit(&p->ring, need);
	if (seq)
		*seq = s;
	/* Wake the I/O thread only if it may be asleep (park.c). */
	sv_kick_after_commit(p->client, sv_ring_sent(&p->ring) == head_before);
	if (p->mode != SALVO_CONFIRM_SYNC)
		return 0;
	return sync_outcome(p, s, &dl, err);
}

int salvo_publish_msg(salvo_publisher *p, const salvo_msg *m, int timeout_ms, uint64_t *seq,
		      salvo_error *err)
{
	enum claim how = CLAIMED;
	int rc;

	if (!p || !m || !m->exchange || !m->routing_key || (!m->body && m->len)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publish: publisher, exchange, routing key and body are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (sv_check_flags("salvo_publish", m->flags, SALVO_MSG_MANDATORY | SALVO_MSG_PERSISTENT,
			   err) ||
	    sv_check_timeout("salvo_publish", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;
	rc = claim(p, "salvo_publish", &how, err);
	if (rc)
		return rc;
	if (how == CLAIMED)
		forget_returned(p);
	rc = publish_claimed(p, m, timeout_ms, seq, err);
	if (rc && how == CLAIMED)
		report_closed(p, rc);
	give_back(p, how);
	return rc;
}

int salvo_publish(salvo_publisher *p, const char *exchange, const char *routing_key,
		  const void *body, size_t len, unsigned flags, int timeout_ms, salvo_error *err)
{
	salvo_msg m = {exchange, routing_key, body, len, flags, NULL, NULL};

	return salvo_publish_msg(p, &m, timeout_ms, NULL, err);
}

/* The checks every call but publish starts with: a publisher and a timeout that means
 * something; then the claim (refused from inside on_outcome). */
static int enter(salvo_publisher *p, const char *call, int timeout_ms, salvo_error *err)
{
	if (!p)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "%s: no publisher", call);
	if (sv_check_timeout(call, timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;
	int rc = claim_outside_outcome(p, call, err);

	/* Sync: salvo_publisher_returned's message is valid until this call. */
	if (!rc)
		forget_returned(p);
	return rc;
}

int salvo_publisher_poll(salvo_publisher *p, size_t max, salvo_error *err)
{
	int rc = enter(p, "salvo_publisher_poll", 0, err);

	if (rc)
		return rc;
	if (p->mode == SALVO_CONFIRM_ASYNC)
		rc = (int)deliver(p, max > INT32_MAX ? INT32_MAX : max);
	else if (p->on_return)
		rc = (int)deliver_returns(p, max > INT32_MAX ? INT32_MAX : max);
	give_back(p, CLAIMED);
	return rc;
}

const salvo_returned *salvo_publisher_returned(salvo_publisher *p)
{
	return p && p->last_ret ? &p->last_returned : NULL;
}

/* salvo_publisher_flush once the publisher is claimed. */
static int flush_claimed(salvo_publisher *p, int timeout_ms, bool reopen, salvo_error *err)
{
	struct timespec ts;
	bool bounded;
	int rc;

	bounded = deadline_at(timeout_ms, &ts);
	rc = channel_for_call(p, reopen, timeout_ms, bounded ? &ts : NULL, err);
	if (rc)
		return rc;
	sv_batch_close(p);
	if (confirming(p)) {
		rc = wait_done(p, p->seq, bounded ? &ts : NULL);
		if (rc == -ETIMEDOUT || (timeout_ms == 0 && done_of(p) < p->seq)) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "%llu messages still await their confirms",
				     (unsigned long long)(p->seq - done_of(p)));
			return SALVO_ERR_TIMEOUT;
		}
		/* Every message has an outcome; report the channel's end if it came first. */
		return closed_error(p, err);
	}
	/* Best effort releases what is sent, so an all-free ring means all sent. */
	rc = wait_room(p, sv_ring_capacity(&p->ring), timeout_ms, bounded ? &ts : NULL, err);
	if (rc == SALVO_ERR_WOULD_BLOCK)
		sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
			     "messages are still waiting to be sent");
	return rc;
}

int salvo_publisher_flush(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	int rc = enter(p, "salvo_publisher_flush", timeout_ms, err);

	if (rc)
		return rc;
	rc = flush_claimed(p, timeout_ms, true, err);
	if (rc)
		report_closed(p, rc);
	give_back(p, CLAIMED);
	return rc;
}

/* salvo_publisher_wait_confirms once the publisher is claimed. */
static int wait_confirms_claimed(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : sv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int rc, rounds = 0;

	for (;;) {
		int left = timeout_ms;

		if (timeout_ms > 0) {
			uint64_t now = sv_now_ns();
			left = now < deadline ? (int)((deadline - now + 999999u) / 1000000u) : 0;
		}
		rc = flush_claimed(p, left, true, err);
		if (!confirming(p))
			return rc;
		if (p->mode == SALVO_CONFIRM_SYNC) {
			skip_to(p, p->seq);
			break;
		}
		deliver(p, 0);
		if (rc == SALVO_ERR_TIMEOUT)
			return rc;
		/* The callbacks published more (republishing what came back): those are
		 * "published so far" too, for one more round, so that callbacks that always
		 * publish cannot keep the wait going for ever. */
		if (p->reported == p->seq || rc || ++rounds == 2)
			break;
	}
	/* The worst outcome delivered since the last call; else the channel's end, which
	 * flush reports even when every message was acked before it. */
	if (p->wait_status) {
		rc = p->wait_status;
		sv_error_copy(err, &p->wait_err);
	}
	p->wait_status = 0;
	return rc;
}

int salvo_publisher_wait_confirms(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	int rc = enter(p, "salvo_publisher_wait_confirms", timeout_ms, err);

	if (rc)
		return rc;
	rc = wait_confirms_claimed(p, timeout_ms, err);
	if (rc)
		report_closed(p, rc);
	give_back(p, CLAIMED);
	return rc;
}

/* Lifetime. */

/* Hand p to the I/O thread (SV_REQ_ATTACH, answered at once), or take it back
 * (SV_REQ_DETACH, answered once none of its bytes is in flight, which the end of the
 * connection also brings). A detach waits at most timeout_ms (SALVO_FOREVER: no limit);
 * then p is the I/O thread's to free once its bytes are out (the kernel may still be
 * reading them from the ring), and this returns DETACH_HANDED_OVER with err saying so.
 * Negative: the request's status, or it never reached the I/O thread. */
#define DETACH_HANDED_OVER 1
static int attach_req(salvo_publisher *p, enum sv_req_kind kind, bool keep, int timeout_ms,
		      salvo_error *err)
{
	struct sv_request *req = sv_request_new(kind);
	int rc;

	if (!req) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	req->pub = p;
	req->keep = keep;
	rc = sv_request_submit(p->client, req, err);
	if (rc) {
		free(req);
		return rc;
	}
	rc = sv_request_wait(req, kind == SV_REQ_DETACH ? timeout_ms : SALVO_FOREVER, NULL);
	/* Not answered (a status, even SALVO_ERR_TIMEOUT, may be the connection's end): unless
	 * the I/O thread is completing it this very moment (it exchanged first), the
	 * publisher is its to free from here on. */
	if (!atomic_load_explicit(&req->done, memory_order_acquire)) {
		if (!atomic_exchange(&req->abandoned, 1)) {
			sv_request_put(req);
			if (keep)
				return sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
						    "the I/O thread could not let go of the "
						    "publisher within %d ms; it keeps it",
						    timeout_ms);
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "the I/O thread could not let go of the publisher within %d ms "
				     "(a send the broker does not read, a memory alarm, or a "
				     "reconnection attempt under way); it closes it in the background",
				     timeout_ms);
			return DETACH_HANDED_OVER;
		}
		rc = sv_request_wait(req, SALVO_FOREVER, NULL);
	}
	if (rc)
		sv_error_copy(err, &req->err);
	sv_request_put(req);
	return rc;
}

static int attach(salvo_publisher *p, enum sv_req_kind kind, int timeout_ms, salvo_error *err)
{
	return attach_req(p, kind, false, timeout_ms, err);
}

/*
 * Reopening. The broker closed the publisher's channel (a channel error): the call that
 * brings the error returns it (report_closed marks it reported); then the publisher takes
 * itself back from the I/O thread, which has failed the closed channel's messages (confirm
 * modes) or counted them (best effort: possibly_lost) as it let go, opens a new channel and
 * hands itself back. Sequence numbers go on: the new channel's delivery tag t is sequence
 * number t + tag_base. The first publish, flush or wait after the report does it, waiting
 * for it within its timeout (reopen_within) instead of returning the reported error again.
 *
 * The detach starts only once the I/O thread is done with the closed channel's messages
 * (closed_quiet: until then a send the broker does not read may hold them) and the
 * connection is open, so it ends at the I/O thread's next turn; given up on anyway
 * (rpc_timeout), the publisher stays with the I/O thread, closed, for good (reopen_stuck).
 */
static bool reopens(const salvo_publisher *p)
{
	if (!p->reopen || p->reopen_stuck ||
	    atomic_load_explicit(&p->client->state, memory_order_acquire) == SV_CONN_CLOSED)
		return false;
	/* A reopening that stopped half way (detached) goes on from where it stopped. */
	return p->detached ||
	       (atomic_load_explicit(&p->ch->state, memory_order_acquire) == SV_CH_CLOSED &&
		p->ch->error.kind == SALVO_ERROR_CHANNEL);
}

/* The error a publisher detached by a reopening that cannot go on returns. */
static int detached_error(salvo_publisher *p, salvo_error *err)
{
	int rc = closed_error(p, err);

	if (rc)
		return rc;
	if (atomic_load_explicit(&p->client->state, memory_order_acquire) == SV_CONN_CLOSED) {
		sv_error_copy(err, &p->client->error);
		return p->client->error.status ? p->client->error.status : SALVO_ERR_CLOSED;
	}
	return sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
			    "the publisher's channel could not be reopened");
}

/* 0 reopened; 1 not possible yet; negative: failed, with *e (the next call tries again). */
static int try_reopen(salvo_publisher *p, salvo_error *e)
{
	salvo_channel *ch = NULL;
	int rc;

	if (!p->detached) {
		if (!atomic_load_explicit(&p->closed_quiet, memory_order_acquire) ||
		    atomic_load_explicit(&p->client->state, memory_order_relaxed) != SV_CONN_OPEN)
			return 1;
		/* Its records fail with the rest of what the closed channel held. */
		sv_batch_close(p);
		rc = attach_req(p, SV_REQ_DETACH, true, p->client->set.rpc_timeout_ms, e);
		if (rc == SALVO_ERR_TIMEOUT)
			p->reopen_stuck = true;
		if (rc)
			return rc;
		p->detached = true;
		/* Ours alone now: whatever was committed after the I/O thread's last pass. */
		sv_pub_fail(p);
		sv_ring_clear_interrupt(&p->ring);
	}
	/* The channel to replace: the one the broker closed, or a new one that a lost
	 * connection closed before the attach below took it. */
	if (atomic_load_explicit(&p->ch->state, memory_order_acquire) == SV_CH_CLOSED) {
		rc = salvo_channel_open(p->client, &ch, e);
		if (!rc && confirming(p))
			rc = salvo_confirm_select(ch, e);
		if (rc) {
			if (ch)
				salvo_channel_close(ch, NULL);
			return rc;
		}
		if (p->ch->error.kind == SALVO_ERROR_CHANNEL) {
			p->replaced_err = p->ch->error;
			p->replaced_upto = p->seq;
		}
		(void)sv_channel_close_within(p->ch, 0, NULL); /* closed already: frees it */
		p->ch = ch;
		p->tpl_valid = false; /* the template names the channel */
	}
	atomic_store_explicit(&p->closed_quiet, 0, memory_order_relaxed);
	p->tag_base = p->seq;
	p->resent_until = 0;
	/* The new channel's delivery tags start at 1; every envelope before is settled. */
	p->env_base += p->env_tags;
	p->env_tags = 0;
	p->env_lo = 1;
	p->env_resent = 0;
	if (!confirming(p)) {
		uint64_t published = atomic_load_explicit(&p->published, memory_order_relaxed);
		p->be_lo = p->be_hi = p->be_verified = published;
		p->snap_lo = p->snap_hi = p->snap_end = 0;
		p->ckpt_inflight = false;
	}
	rc = attach(p, SV_REQ_ATTACH, SALVO_FOREVER, e); /* answered at once */
	if (rc)
		return rc;
	p->detached = false;
	p->closed_reported = false;
	return 0;
}

/* A call is returning an error: if it is the closed channel's, it has been reported. The
 * reopening waits for the next call that needs the channel (not a close, which reports
 * the closed channel's error again, as a close always reports the channel's end). */
static void report_closed(salvo_publisher *p, int rc)
{
	if (reopens(p) && rc == p->ch->error.status)
		p->closed_reported = true;
}

/* A call after the report: wait for the reopening until the deadline (NULL: none). */
static int reopen_within(salvo_publisher *p, int timeout_ms, const struct timespec *deadline,
			 salvo_error *err)
{
	for (;;) {
		salvo_error e;
		int rc = try_reopen(p, &e);

		if (rc == 0)
			return 0;
		if (!reopens(p)) /* given up, or the client closed: that error stands */
			return p->detached ? detached_error(p, err) : closed_error(p, err);
		if (rc < 0) { /* the broker refused, or no room: the next call tries again */
			sv_error_copy(err, &e);
			return rc;
		}
		if (timeout_ms == 0) {
			return sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
					    "the publisher's channel, closed by the broker, is being "
					    "reopened");
		}
		/* The deadline is CLOCK_MONOTONIC, as sv_now_ns. */
		if (deadline && sv_now_ns() >= (uint64_t)deadline->tv_sec * 1000000000u +
						       (uint64_t)deadline->tv_nsec)
			return sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					    "the publisher's channel, closed by the broker, was not "
					    "reopened within %d ms",
					    timeout_ms);
		/* Rare and short: until the I/O thread's send in flight ends. */
		nanosleep(&(struct timespec){0, 200000}, NULL);
	}
}

/*
 * What a call that needs the publisher's channel does first: a channel error reported by
 * an earlier call is replaced now, within this call's timeout (unless may_reopen is false:
 * a close, or a publish from inside on_outcome); a publisher a reopening left detached
 * sends nothing, so nothing goes into its ring. 0: go on (the channel may still be closed,
 * with an error not yet reported: closed_error tells).
 */
static int channel_for_call(salvo_publisher *p, bool may_reopen, int timeout_ms,
			    const struct timespec *deadline, salvo_error *err)
{
	if (may_reopen && p->closed_reported && reopens(p))
		return reopen_within(p, timeout_ms, deadline, err);
	if (p->detached)
		return detached_error(p, err);
	return 0;
}

static void publisher_free(salvo_publisher *p)
{
	free(p->tpl_heap);
	sv_batch_free(&p->batch);
	free(p->envs);
	sv_ring_destroy(&p->ring);
	if (p->slots) {
		sv_confirm_destroy(&p->win);
		free(p->slots);
	}
	forget_returned(p);
	sv_return_free_all(p);
	pthread_mutex_destroy(&p->ret_lock);
	free(p->stats_prev);
	free(p);
}

/* Batching: the caller's options, or the configuration's publisher.batch.* keys. */
static int batch_setup(salvo_publisher *p, const salvo_batch_opts *opts, salvo_error *err)
{
	const struct salvo_conf *conf = &p->client->set.conf;
	salvo_batch_opts o = *opts;
	int rc;

	if (!o.max_records) {
		o.max_records = conf->batch_records;
		o.max_bytes = conf->batch_bytes;
		o.linger_us = conf->batch_linger_us;
		o.compression = (salvo_compression)conf->batch_compression;
		o.level = (int)conf->batch_level;
	}
	rc = sv_batch_setup(p, &o, err);
	if (rc || !p->batch.on || !p->slots)
		return rc;
	p->envs = calloc(p->wmask + 1, sizeof *p->envs);
	p->env_lo = 1;
	if (!p->envs)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				    "out of memory for a window of %llu envelopes",
				    (unsigned long long)(p->wmask + 1));
	return 0;
}

int salvo_publisher_new(salvo_client *c, const salvo_publisher_opts *opts, salvo_publisher **out,
			salvo_error *err)
{
	salvo_publisher_opts o = {0};
	salvo_publisher *p;
	int rc;

	if (!c || !out) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_new: client and out are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	*out = NULL;
	if (opts)
		o = *opts;
	if (sv_check_flags("salvo_publisher_new", o.flags,
			   SALVO_PUBLISHER_NO_SEQ_HEADER | SALVO_PUBLISHER_NO_REOPEN, err))
		return SALVO_ERR_INVALID_ARGUMENT;
	if (o.confirm != SALVO_CONFIRM_NONE && o.confirm != SALVO_CONFIRM_ASYNC &&
	    o.confirm != SALVO_CONFIRM_SYNC) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_new: unknown confirm mode %d", (int)o.confirm);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (o.on_return && o.confirm != SALVO_CONFIRM_NONE) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_new: on_return is for best effort; in confirm modes a "
			     "returned message comes with its outcome (salvo_outcome.returned, "
			     "salvo_publisher_returned)");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (!o.window)
		o.window = c->set.window;
	if (o.window > SV_CONFIRM_MAX_WINDOW) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "a window of %zu messages is above the limit of %zu", o.window,
			     SV_CONFIRM_MAX_WINDOW);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	/* The ring's counters are cache-line aligned: so must the publisher be. */
	p = aligned_alloc(SV_CACHE_LINE, (sizeof *p + SV_CACHE_LINE - 1) & ~(size_t)(SV_CACHE_LINE - 1));
	if (!p) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	memset(p, 0, sizeof *p);
	p->client = c;
	p->mode = o.confirm;
	p->stamp = confirming(p) && !(o.flags & SALVO_PUBLISHER_NO_SEQ_HEADER);
	p->reopen = !(o.flags & SALVO_PUBLISHER_NO_REOPEN);
	p->on_outcome = o.on_outcome;
	p->on_outcome_arg = o.on_outcome_arg;
	p->on_return = o.on_return;
	p->on_return_arg = o.on_return_arg;
	pthread_mutex_init(&p->ret_lock, NULL);
	CK_STAILQ_INIT(&p->returns);
	rc = sv_ring_init(&p->ring, c->set.ring_size);
	if (rc) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
			     "cannot map a %zu-byte publisher ring: %s", c->set.ring_size,
			     strerror(-rc));
		pthread_mutex_destroy(&p->ret_lock);
		free(p);
		return SALVO_ERR_NO_MEMORY;
	}
	if (confirming(p)) {
		/* The producer's window and the I/O thread's tag window are the same size, so
		 * the tag window can never be full when a message is sent. */
		if (sv_confirm_init(&p->win, o.window, 1) == 0) {
			p->wmask = sv_confirm_window(&p->win) - 1;
			p->slots = calloc(p->wmask + 1, sizeof *p->slots);
			if (!p->slots)
				sv_confirm_destroy(&p->win);
		}
		if (!p->slots) {
			sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				     "out of memory for a confirm window of %zu", o.window);
			publisher_free(p);
			return SALVO_ERR_NO_MEMORY;
		}
	}
	rc = batch_setup(p, &o.batch, err);
	if (rc) {
		publisher_free(p);
		return rc;
	}
	rc = salvo_channel_open(c, &p->ch, err);
	if (rc) {
		publisher_free(p);
		return rc;
	}
	if (confirming(p))
		rc = salvo_confirm_select(p->ch, err);
	if (!rc)
		rc = attach(p, SV_REQ_ATTACH, SALVO_FOREVER, err);
	if (rc) {
		salvo_channel_close(p->ch, NULL);
		publisher_free(p);
		return rc;
	}
	sv_pub_stats_link(p);
	*out = p;
	return 0;
}

/* What a step of salvo_publisher_close after the flush may wait: what is left of
 * timeout_ms, but at least SV_CLOSE_STEP_MIN_MS, and at most cap; without a timeout, cap. */
#define SV_CLOSE_STEP_MIN_MS 100
static int close_step_ms(uint64_t deadline, int timeout_ms, int cap)
{
	uint64_t now = sv_now_ns();
	int64_t left;

	if (timeout_ms < 0)
		return cap;
	left = deadline > now ? (int64_t)((deadline - now) / 1000000u) : 0;
	if (left < SV_CLOSE_STEP_MIN_MS)
		left = SV_CLOSE_STEP_MIN_MS;
	return cap >= 0 && left > cap ? cap : (int)left;
}

int salvo_publisher_close(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	salvo_error local;
	uint64_t deadline;
	int rc, rc2;

	/* Claimed for good: the publisher is freed (here or by the I/O thread). */
	rc = enter(p, "salvo_publisher_close", timeout_ms, err);
	if (rc)
		return rc;
	deadline = timeout_ms < 0 ? 0 : sv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	rc = flush_claimed(p, timeout_ms, false, err);
	/* A reopening that did not finish has let go of the I/O thread already. */
	rc2 = p->detached ? 0
			  : attach(p, SV_REQ_DETACH,
				   close_step_ms(deadline, timeout_ms, SALVO_FOREVER), &local);
	if (rc2 == DETACH_HANDED_OVER) {
		/* The I/O thread frees p. The flush's error, if any, says more. */
		if (!rc) {
			sv_error_copy(err, &local);
			rc = SALVO_ERR_TIMEOUT;
		}
		return rc;
	}
	/* Otherwise the detach fails only when the connection is gone; then the I/O thread
	 * may still be finishing a send from this ring, so wait for it to stop before
	 * unmapping. */
	if (rc2)
		sv_io_wait_exit_if_closed(p->client);
	/* What the flush did not get sent (its timeout passed) never will be. */
	const uint8_t *unsent_at;
	bool unsent = sv_ring_pending(&p->ring, &unsent_at) > 0;
	rc2 = sv_channel_close_within(
	    p->ch, close_step_ms(deadline, timeout_ms, p->client->set.rpc_timeout_ms),
	    rc ? &local : err);
	/* Best effort: the close-ok proved every message sent handled; without it (the
	 * connection lost after the detach, or no answer in time), or with messages never
	 * sent, what the last checkpoint did not prove may be lost. The I/O thread has let
	 * go of the publisher's counters. */
	if (rc2 || unsent)
		sv_pub_count_unverified(p);
	if (!rc)
		rc = rc2;
	sv_pub_stats_unlink(p);
	publisher_free(p);
	return rc;
}

void sv_publisher_release_abandoned(salvo_publisher *p)
{
	(void)sv_channel_close_within(p->ch, 0, NULL);
	/* Nobody will see a close-ok for it: its unproven messages may be lost. */
	sv_pub_count_unverified(p);
	sv_pub_stats_unlink(p);
	publisher_free(p);
}

salvo_channel *salvo_publisher_channel(salvo_publisher *p)
{
	if (!p)
		return NULL;
	/* The application holds the channel from here on (tx mode, say): a reopening would
	 * free it under it, so a channel error now closes the publisher for good. */
	p->reopen = false;
	return p->ch;
}
