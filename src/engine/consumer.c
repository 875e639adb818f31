/* SPDX-License-Identifier: MIT */
/*
 * Consumers: basic.consume, the queue of deliveries between the I/O thread and the
 * application, and acks from any thread.
 *
 * Deliveries. The I/O thread assembles a delivery (io_consume.c, as a basic.get-ok)
 * and appends it to its consumer's queue; the application takes it with
 * salvo_consumer_get or runs its callback with salvo_consumer_dispatch, on its own
 * thread. The I/O thread never runs application code, so a callback may take minutes
 * while heartbeats keep going out. The deliveries one read brings for a consumer are
 * queued together, with one lock and one wake-up (sv_consumer_flush, at the end of each
 * read's decoding, at most SV_HANDOVER_MAX at a time): a lock and a wake-up per message
 * cost more than the message (the consumer woke for the first while the I/O thread still
 * appended the next, and they fought over the lock).
 *
 * Bounded memory. Every queued message counts its bytes against consumer.buffer_bytes;
 * past it the I/O thread holds its reads until the application has taken enough
 * (read_hold.c).
 *
 * Acks from any thread. salvo_message_ack and friends check the message (its channel must
 * still be the opening it came on) and push a small record onto a lock-free stack
 * (client->settles, Concurrency Kit's ck_stack: pushed with compare-and-swap, emptied
 * whole with one exchange). Both sides are here (settle_push, sv_settle_take). The
 * pusher that finds the stack empty wakes the I/O thread if it is parked; the others know
 * it will find their record with the first one's. This costs one
 * allocation and one compare-and-swap; the request queue (allocation, mutex, eventfd
 * write, a wait for the I/O thread) cost 140 times more (docs/design.md, Consumers), so
 * salvo_basic_ack takes this path too.
 *
 * Records of an envelope are settled here too, by envelope.c: their envelope's own settle
 * is pushed when the last of them is settled.
 *
 * Multiple acks. The I/O thread sends each batch's settles at once, and turns single acks
 * into one basic.ack with multiple when that is exact: struct sv_acked (acked.c) knows
 * which delivery tags of the channel are settled, and a multiple ack for tag T is sent
 * only when every tag up to T is. Single acks it cannot cover so go out as they are, in
 * the same batch: an ack is never held back waiting for an earlier one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "envelope.h"
#include "tsan.h"
#include "park.h"
#include "read_hold.h"
#include "props.h"

/* Most deliveries handed over in one go. A read's deliveries go over together (a
 * hand-over of 64 at a time woke the consumer about 8 times for a held read of a stream,
 * each wake-up dearer than the 64 messages); a bound still, so a read of thousands of
 * small messages reaches the consumer before it is all decoded. */
#define SV_HANDOVER_MAX 1024u

/* The settle stack. */

CK_STACK_CONTAINER(struct sv_settle, entry, settle_of)

/* Take every queued settle, oldest first. I/O thread. */
struct sv_settle *sv_settle_take(salvo_client *c)
{
	/* The exchange, after the pushers' store fence and compare-and-swap: their records'
	 * contents and links are seen (ck_stack_batch_pop_upmc fences after its exchange). */
	struct ck_stack_entry *e = ck_stack_batch_pop_upmc(&c->settles);
	struct sv_settle *fifo = NULL;

	sv_tsan_acquire(&c->settles);
	while (e) {
		struct sv_settle *s = settle_of(e);

		e = e->next;
		s->next = fifo;
		fifo = s;
	}
	return fifo;
}

void sv_settle_free_all(struct sv_settle *s)
{
	while (s) {
		struct sv_settle *next = s->next;
		struct sv_delivery *d = s->owner;

		if (!d)
			free(s);
		else if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
			sv_delivery_free(d); /* its last reference: back to the cache */
		s = next;
	}
}

static void settle_push(salvo_client *c, struct sv_settle *s)
{
	struct ck_stack_entry *old = ck_pr_load_ptr(&c->settles.head);

	/* ck_stack_push_upmc's loop, keeping the head it replaced: whether the stack was
	 * empty decides the kick, and ck_stack's push does not say. Its store fence orders
	 * the record's fields and link before the compare-and-swap that publishes it. */
	do {
		s->entry.next = old;
		ck_pr_fence_store();
		sv_tsan_release(&c->settles);
	} while (!ck_pr_cas_ptr_value(&c->settles.head, old, &s->entry, &old));
	/* The first record since the I/O thread last emptied the stack wakes it; later ones
	 * ride along (it looks at the stack again before it parks), and are taken with the
	 * first. */
	if (old)
		return;
	sv_settle_kick(c);
	/* After sv_settle_kick's fence, pairing with sv_settle_close's: the I/O thread has
	 * gone (its last take may have missed this record, which may hold a delivery, its
	 * channel and the client). Only the first record of a stack needs the look: a later
	 * one is taken with it, by its pusher's take or by sv_settle_close's. */
	if (atomic_load_explicit(&c->settles_closed, memory_order_relaxed))
		sv_settle_free_all(sv_settle_take(c));
}

void sv_settle_close(salvo_client *c)
{
	atomic_store_explicit(&c->settles_closed, 1, memory_order_relaxed);
	/* Either a pusher sees settles_closed, or this take sees its record. */
	atomic_thread_fence(memory_order_seq_cst);
	sv_settle_free_all(sv_settle_take(c));
}

static const char *const settle_verbs[] = {"ack", "nack", "reject"};

int sv_settle_check(salvo_channel *ch, uint64_t gen, uint64_t tag, enum sv_settle_kind kind,
		    salvo_error *err)
{
	/* Acquire: pairs with the I/O thread's release of state, for ch->error. */
	if (atomic_load_explicit(&ch->state, memory_order_acquire) == SV_CH_CLOSED)
		return sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
				    "%s of delivery tag %llu refused: channel %u, which it came on, "
				    "has closed since (%s); the tag means nothing on another channel",
				    settle_verbs[kind], (unsigned long long)tag, ch->id,
				    ch->error.text);
	if (atomic_load_explicit(&ch->generation, memory_order_relaxed) != gen)
		return sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
				    "%s of delivery tag %llu refused: channel %u has been reopened "
				    "since it came; the tag means nothing on the new channel",
				    settle_verbs[kind], (unsigned long long)tag, ch->id);
	return 0;
}

/* Fill record s (in a delivery: owner, which it references) and push it. */
static void push_record(salvo_channel *ch, struct sv_settle *s, struct sv_delivery *owner,
			uint64_t gen, uint64_t tag, enum sv_settle_kind kind, bool multiple,
			bool requeue, bool quiet)
{
	*s = (struct sv_settle){.generation = gen, .tag = tag, .channel = ch->id,
				.kind = (uint8_t)kind, .multiple = multiple, .requeue = requeue,
				.quiet = quiet, .owner = owner};
	settle_push(ch->client, s);
}

int sv_settle_push(salvo_channel *ch, uint64_t gen, uint64_t tag, enum sv_settle_kind kind,
		   bool multiple, bool requeue, bool quiet, salvo_error *err)
{
	struct sv_settle *s = malloc(sizeof *s);

	if (!s)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	push_record(ch, s, NULL, gen, tag, kind, multiple, requeue, quiet);
	return 0;
}

/* Queue a settle of tag on ch, as opened in generation gen, for the I/O thread; in d's
 * own record when d is given and its record is free (its first settle: no allocation),
 * which then holds a reference to d. */
static int settle_tag(salvo_channel *ch, struct sv_delivery *d, uint64_t gen, uint64_t tag,
		      enum sv_settle_kind kind, bool multiple, bool requeue, salvo_error *err)
{
	int rc = sv_settle_check(ch, gen, tag, kind, err);

	if (rc)
		return rc;
	atomic_fetch_add_explicit(&ch->client->cctr.settles, 1, memory_order_relaxed);
	if (!d || atomic_exchange_explicit(&d->settle_taken, true, memory_order_relaxed))
		return sv_settle_push(ch, gen, tag, kind, multiple, requeue, false, err);
	atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
	push_record(ch, &d->settle, d, gen, tag, kind, multiple, requeue, false);
	return 0;
}

/* A settle asked of a message taken from a consumer: that consumer's count. */
static void count_settle(const salvo_message *m, enum sv_settle_kind kind)
{
	struct sv_consumer_counters *ctr = m->taken ? &m->d->cons->ctr : NULL;

	if (ctr)
		atomic_fetch_add_explicit(kind == SV_SETTLE_ACK    ? &ctr->acks
					  : kind == SV_SETTLE_NACK ? &ctr->nacks
								   : &ctr->rejects,
					  1, memory_order_relaxed);
}

static int settle(salvo_message *m, enum sv_settle_kind kind, bool multiple, bool requeue,
		  salvo_error *err)
{
	struct sv_delivery *d = m ? m->d : NULL;
	enum sv_settle_kind send;
	int rc;

	if (!d || !d->ch)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "%s: not a message received from the broker",
				    settle_verbs[kind]);
	if (d->no_ack)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "%s of delivery tag %llu: it was received with no_ack, so the "
				    "broker took it as acknowledged when it sent it",
				    settle_verbs[kind], (unsigned long long)d->delivery_tag);
	/* A stream's delivery takes acks only (SALVO_CONSUME_STREAM); counted as asked. */
	send = d->acks_only ? SV_SETTLE_ACK : kind;
	requeue = requeue && !d->acks_only;
	rc = d->env ? sv_envelope_settle(m, send, multiple, requeue, err)
		    : settle_tag(d->ch, d, d->generation, d->delivery_tag, send, multiple,
				 requeue, err);
	if (!rc)
		count_settle(m, kind);
	return rc;
}

/* By tag: the channel as it is now (the caller vouches for the tag). */
int salvo_basic_ack(salvo_channel *ch, uint64_t delivery_tag, bool multiple, salvo_error *err)
{
	if (!ch)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no channel");
	return settle_tag(ch, NULL, atomic_load_explicit(&ch->generation, memory_order_relaxed),
			  delivery_tag, SV_SETTLE_ACK, multiple, false, err);
}

int salvo_message_ack(salvo_message *m, bool multiple, salvo_error *err)
{
	return settle(m, SV_SETTLE_ACK, multiple, false, err);
}

int salvo_message_nack(salvo_message *m, bool multiple, bool requeue, salvo_error *err)
{
	return settle(m, SV_SETTLE_NACK, multiple, requeue, err);
}

int salvo_message_reject(salvo_message *m, bool requeue, salvo_error *err)
{
	return settle(m, SV_SETTLE_REJECT, false, requeue, err);
}

/* The queue of deliveries. */

/* The application took m off a queue: it no longer counts against the bound. */
static void taken(salvo_client *c, salvo_message *m)
{
	sv_hold_taken(c, m->cost);
	m->cost = 0;
}

/* Messages the application will never take: off the bound, back to the queue (refused,
 * and harmless, once the channel is closed), freed. The list is left empty. */
static void give_back(salvo_client *c, struct sv_message_list *list)
{
	salvo_message *m;

	while ((m = CK_STAILQ_FIRST(list))) {
		CK_STAILQ_REMOVE_HEAD(list, link);
		taken(c, m);
		if (!m->d->no_ack)
			(void)salvo_message_reject(m, true, NULL);
		salvo_message_destroy(m);
	}
}

static void flush_one(salvo_client *c, struct salvo_consumer *cons);

void sv_consumer_deliver(salvo_client *c, struct salvo_consumer *cons, struct salvo_message *m,
			 uint32_t n)
{
	uint64_t cost = 0;

	if (atomic_load_explicit(&cons->abandoned, memory_order_relaxed)) {
		/* Nobody will take them: back to the queue at once, not held unacked (using up
		 * the prefetch) until the channel closes. */
		for (uint32_t i = 0; i < n; i++) {
			if (!m[i].d->no_ack)
				(void)salvo_message_reject(&m[i], true, NULL);
			salvo_message_destroy(&m[i]);
		}
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		cost += m[i].cost;
	if (!cons->pend_listed) {
		atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
		cons->pend_listed = true;
		cons->pend_next = c->pend_cons;
		c->pend_cons = cons;
	}
	m->d->cons = cons;
	for (uint32_t i = 0; i < n; i++)
		CK_STAILQ_INSERT_TAIL(&cons->pend, &m[i], link);
	/* An envelope's records go over together, whatever their number. */
	cons->pend_n += n;
	cons->pend_deliveries++;
	cons->pend_cost += cost;
	c->pend_cost += cost;
	if (cons->pend_n >= SV_HANDOVER_MAX)
		flush_one(c, cons);
}

/* Take cons off the list of consumers with deliveries pending. */
static void unlist(salvo_client *c, struct salvo_consumer *cons)
{
	struct salvo_consumer **p = &c->pend_cons;

	while (*p != cons)
		p = &(*p)->pend_next;
	*p = cons->pend_next;
	cons->pend_next = NULL;
	cons->pend_listed = false;
}

/* I/O thread: queue the deliveries waiting in cons's pend list, and wake its takers: one
 * if one message came, all if more did (each takes one at a time). */
static void flush_one(salvo_client *c, struct salvo_consumer *cons)
{
	unlist(c, cons);
	c->pend_cost -= cons->pend_cost;
	/* Counted per hand-over, not per message: these lines are the I/O thread's, and
	 * the consumer's threads write theirs per message. The bytes are charged before the
	 * messages can be taken (a taker never subtracts what was not added); while they
	 * wait here, sv_hold_over_bound counts them. */
	if (cons->pend_deliveries) {
		sv_hold_charge(c, cons->pend_cost);
		atomic_fetch_add_explicit(&c->cctr.delivered, cons->pend_deliveries,
					  memory_order_relaxed);
		sv_stat_add(&cons->ctr.delivered, cons->pend_deliveries);
		cons->pend_deliveries = 0;
	}
	if (!CK_STAILQ_EMPTY(&cons->pend) &&
	    atomic_load_explicit(&cons->abandoned, memory_order_relaxed)) {
		/* Destroyed since they came (its drop_queued could not see them): back to the
		 * queue now, not left where nobody takes them, counting against the read bound
		 * while the destroy's cancel waits for a cancel-ok the hold would not read. */
		give_back(c, &cons->pend);
	} else if (!CK_STAILQ_EMPTY(&cons->pend)) {
		atomic_fetch_add_explicit(&c->cctr.handovers, 1, memory_order_relaxed);
		pthread_mutex_lock(&cons->lock);
		sv_stat_add(&cons->ctr.handovers, 1);
		sv_stat_add(&cons->ctr.buffered, cons->pend_cost);
		CK_STAILQ_CONCAT(&cons->queue, &cons->pend);
		if (cons->pend_n > 1)
			pthread_cond_broadcast(&cons->cond);
		else
			pthread_cond_signal(&cons->cond);
		pthread_mutex_unlock(&cons->lock);
		if (cons->on_message)
			sv_dispatch_wake(c);
	}
	cons->pend_n = 0;
	cons->pend_cost = 0;
	sv_consumer_put(cons);
}

void sv_consumer_flush(salvo_client *c)
{
	while (c->pend_cons)
		flush_one(c, c->pend_cons);
}

/* I/O thread: the consumer is over (cancelled, or its channel ended). What came before
 * the end is queued first, so takers see it before the end. */
void sv_consumer_end(struct salvo_consumer *cons, const salvo_error *why)
{
	salvo_client *c = cons->ch->client;

	if (cons->pend_listed)
		flush_one(c, cons);
	pthread_mutex_lock(&cons->lock);
	if (!cons->end_status) {
		cons->end_status = why->status ? why->status : SALVO_ERR_CLOSED;
		cons->end_err = *why;
		cons->end_err.status = cons->end_status;
	}
	pthread_cond_broadcast(&cons->cond);
	pthread_mutex_unlock(&cons->lock);
}

void sv_consumer_interrupt(struct salvo_consumer *cons)
{
	pthread_mutex_lock(&cons->lock);
	cons->interrupted = true;
	pthread_cond_broadcast(&cons->cond);
	pthread_mutex_unlock(&cons->lock);
}

static void drop_queued(struct salvo_consumer *cons)
{
	struct sv_message_list all;

	pthread_mutex_lock(&cons->lock);
	CK_STAILQ_MOVE(&all, &cons->queue, link);
	CK_STAILQ_INIT(&cons->queue);
	atomic_store_explicit(&cons->ctr.buffered, 0, memory_order_relaxed);
	pthread_mutex_unlock(&cons->lock);
	give_back(cons->ch->client, &all);
}

void sv_consumer_put(struct salvo_consumer *cons)
{
	if (atomic_fetch_sub_explicit(&cons->refs, 1, memory_order_acq_rel) != 1)
		return;
	drop_queued(cons);
	pthread_mutex_destroy(&cons->lock);
	pthread_cond_destroy(&cons->cond);
	sv_channel_put(cons->ch);
	free(cons);
}

/*
 * Wait until a message is queued or the consumer ended, at most timeout_ms; then take
 * the message (NULL when none). Returns 0, or with no message the end state or
 * SALVO_ERR_TIMEOUT / SALVO_ERR_WOULD_BLOCK.
 */
static int take(struct salvo_consumer *cons, int timeout_ms, salvo_message **out,
		salvo_error *err)
{
	struct timespec ts;
	salvo_message *m;
	int rc = 0;

	pthread_mutex_lock(&cons->lock);
	/* The deadline is read from the clock only when there is a wait (a stream's messages
	 * are mostly queued already). */
	if (timeout_ms > 0 && CK_STAILQ_EMPTY(&cons->queue))
		sv_timespec_after(&ts, CLOCK_MONOTONIC, timeout_ms);
	while (CK_STAILQ_EMPTY(&cons->queue) && !cons->end_status && !cons->interrupted &&
	       timeout_ms != 0 && rc == 0)
		rc = timeout_ms < 0 ? pthread_cond_wait(&cons->cond, &cons->lock)
				    : pthread_cond_timedwait(&cons->cond, &cons->lock, &ts);
	m = CK_STAILQ_FIRST(&cons->queue);
	if (m) {
		CK_STAILQ_REMOVE_HEAD(&cons->queue, link);
		/* Writers of buffered hold the lock: flush, this, drop_queued. */
		sv_stat_add(&cons->ctr.buffered, -(uint64_t)m->cost);
		sv_stat_add(&cons->ctr.taken, 1);
		rc = 0;
	} else if (cons->end_status) {
		rc = cons->end_status;
		sv_error_copy(err, &cons->end_err);
	} else if (cons->interrupted) {
		cons->interrupted = false;
		rc = SALVO_ERR_TIMEOUT;
		sv_error_set(err, rc, SALVO_ERROR_LOCAL, "the wait was interrupted");
	} else {
		rc = timeout_ms == 0 ? SALVO_ERR_WOULD_BLOCK : SALVO_ERR_TIMEOUT;
		sv_error_set(err, rc, SALVO_ERROR_LOCAL, "no message within %d ms", timeout_ms);
	}
	pthread_mutex_unlock(&cons->lock);
	if (m) {
		taken(cons->ch->client, m);
		/* For its settle counters: the consumer lives until the message is destroyed. */
		atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
		m->taken = true;
	}
	*out = m;
	return rc;
}

int salvo_consumer_get(salvo_consumer *cons, int timeout_ms, salvo_message **msg,
		       salvo_error *err)
{
	if (sv_check_timeout("salvo_consumer_get", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;
	if (!cons || !msg)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_consumer_get: consumer and msg are required");
	return take(cons, timeout_ms, msg, err);
}

int salvo_consumer_dispatch(salvo_consumer *cons, int timeout_ms, size_t max, salvo_error *err)
{
	salvo_message *m;
	int n = 0, rc;

	if (sv_check_timeout("salvo_consumer_dispatch", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!cons || !cons->on_message)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_consumer_dispatch: a consumer with a callback "
				    "(salvo_consumer_opts.on_message) is required");
	rc = take(cons, timeout_ms, &m, err);
	while (m) {
		cons->on_message(m, cons->on_message_arg);
		n++;
		if ((max && (size_t)n >= max) || n == INT32_MAX)
			break;
		rc = take(cons, 0, &m, NULL);
	}
	return n ? n : rc;
}

/*
 * Client-wide dispatch. The consumers with a callback are on a list in the client, each
 * referenced by it from salvo_consume to salvo_consumer_destroy. A dispatcher makes passes
 * over the list from a cursor (so no consumer starves another), taking at most one
 * message from each consumer per pass, and runs the callback with no lock held; with
 * nothing queued it sleeps on disp_cond, which every hand-over to such a consumer
 * signals (sv_consumer_flush) after bumping disp_seq under disp_lock. A pass that finds
 * nothing keeps disp_lock from its start to the wait, so a hand-over in between cannot
 * be missed.
 */
static void disp_link(salvo_client *c, struct salvo_consumer *cons)
{
	atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
	pthread_mutex_lock(&c->disp_lock);
	cons->disp_prev = NULL;
	cons->disp_next = c->disp_head;
	if (c->disp_head)
		c->disp_head->disp_prev = cons;
	c->disp_head = cons;
	c->disp_count++;
	cons->disp_linked = true;
	/* Its first messages may have been handed over before it was on the list: a
	 * dispatcher waiting meanwhile must look again. */
	c->disp_seq++;
	pthread_cond_broadcast(&c->disp_cond);
	pthread_mutex_unlock(&c->disp_lock);
}

static void disp_unlink(salvo_client *c, struct salvo_consumer *cons)
{
	bool linked;

	pthread_mutex_lock(&c->disp_lock);
	linked = cons->disp_linked;
	if (linked) {
		if (c->disp_cursor == cons)
			c->disp_cursor = cons->disp_next;
		if (cons->disp_prev)
			cons->disp_prev->disp_next = cons->disp_next;
		else
			c->disp_head = cons->disp_next;
		if (cons->disp_next)
			cons->disp_next->disp_prev = cons->disp_prev;
		cons->disp_next = cons->disp_prev = NULL;
		cons->disp_linked = false;
		c->disp_count--;
	}
	pthread_mutex_unlock(&c->disp_lock);
	if (linked)
		sv_consumer_put(cons);
}

void sv_dispatch_wake(salvo_client *c)
{
	pthread_mutex_lock(&c->disp_lock);
	c->disp_seq++;
	pthread_cond_broadcast(&c->disp_cond);
	pthread_mutex_unlock(&c->disp_lock);
}

int salvo_client_dispatch(salvo_client *c, int timeout_ms, size_t max, salvo_error *err)
{
	struct timespec ts;
	int n = 0, rc = 0;

	if (sv_check_timeout("salvo_client_dispatch", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!c)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_client_dispatch: no client");
	if (timeout_ms > 0)
		sv_timespec_after(&ts, CLOCK_MONOTONIC, timeout_ms);
	pthread_mutex_lock(&c->disp_lock);
	for (;;) {
		uint64_t seq = c->disp_seq;
		bool got = false;

		for (size_t i = 0, count = c->disp_count; i < count; i++) {
			struct salvo_consumer *cons = c->disp_cursor ? c->disp_cursor : c->disp_head;
			salvo_message *m;

			if (!cons)
				break;
			c->disp_cursor = cons->disp_next;
			if (take(cons, 0, &m, NULL) || !m)
				continue; /* nothing queued, or ended */
			atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
			pthread_mutex_unlock(&c->disp_lock);
			cons->on_message(m, cons->on_message_arg);
			sv_consumer_put(cons);
			pthread_mutex_lock(&c->disp_lock);
			got = true;
			n++;
			if ((max && (size_t)n >= max) || n == INT32_MAX)
				goto out;
		}
		if (got)
			continue; /* more may be queued */
		if (n)
			break;
		if (atomic_load(&c->state) == SV_CONN_CLOSED) {
			rc = sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
					  "salvo_client_dispatch: the client is closed");
			break;
		}
		if (timeout_ms == 0) {
			rc = sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
					  "no message queued");
			break;
		}
		while (c->disp_seq == seq && atomic_load(&c->state) != SV_CONN_CLOSED && rc == 0)
			rc = timeout_ms < 0 ? pthread_cond_wait(&c->disp_cond, &c->disp_lock)
					    : pthread_cond_timedwait(&c->disp_cond, &c->disp_lock, &ts);
		if (rc) {
			rc = sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					  "no message within %d ms", timeout_ms);
			break;
		}
	}
out:
	pthread_mutex_unlock(&c->disp_lock);
	return n ? n : rc;
}

/* Consuming. */

int salvo_consume(salvo_channel *ch, const char *queue, const salvo_consumer_opts *opts,
		  salvo_consumer **out, salvo_error *err)
{
	static const salvo_consumer_opts none;
	struct sv_method m = {.id = SV_BASIC_CONSUME};
	struct salvo_consumer *cons;
	salvo_topology_entity e;
	struct sv_topo_ticket tk;
	bool submitted = false;
	int rc;

	if (!opts)
		opts = &none;
	if (!ch || !queue || !out)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_consume: channel, queue and out are required");
	*out = NULL;
	if (strlen(queue) > SV_SHORTSTR_MAX || (opts->tag && strlen(opts->tag) > SV_SHORTSTR_MAX))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_consume: queue and tag hold at most 255 bytes");
	if (opts->arguments && opts->arguments->array)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "arguments must be a table, not a field array");
	if (sv_check_flags("salvo_consume", opts->flags,
			   SALVO_CONSUME_NO_ACK | SALVO_CONSUME_EXCLUSIVE | SALVO_CONSUME_NO_LOCAL |
				   SALVO_CONSUME_RAW_ENVELOPES | SALVO_CONSUME_STREAM |
				   SALVO_CONSUME_NO_RECOVERY,
			   err))
		return SALVO_ERR_INVALID_ARGUMENT;
	e = (salvo_topology_entity){.kind = SALVO_TOPOLOGY_CONSUMER, .destination = queue,
				    .flags = opts->flags, .arguments = opts->arguments,
				    .channel = ch->id};
	rc = sv_topo_reserve(ch, &e, &tk, err);
	if (rc)
		return rc;
	cons = sv_zalloc_lines(sizeof *cons);
	if (!cons) {
		sv_topo_record(ch, &e, NULL, &tk, SALVO_ERR_NO_MEMORY);
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	}
	pthread_mutex_init(&cons->lock, NULL);
	CK_STAILQ_INIT(&cons->queue);
	CK_STAILQ_INIT(&cons->pend);
	sv_cond_init_monotonic(&cons->cond);
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	cons->ch = ch;
	cons->no_ack = opts->flags & SALVO_CONSUME_NO_ACK;
	cons->raw = opts->flags & SALVO_CONSUME_RAW_ENVELOPES;
	cons->acks_only = (opts->flags & SALVO_CONSUME_STREAM) ||
			  sv_table_has(opts->arguments, "x-stream-offset", NULL);
	cons->on_message = opts->on_message;
	cons->on_message_arg = opts->on_message_arg;
	/* The application's reference, and the request's (the channel's list takes it over at
	 * consume-ok). */
	atomic_init(&cons->refs, 2);
	m.a.basic_consume = (struct sv_basic_consume){
		.queue = {(const uint8_t *)queue, (uint32_t)strlen(queue)},
		.consumer_tag = {(const uint8_t *)(opts->tag ? opts->tag : ""),
				 (uint32_t)(opts->tag ? strlen(opts->tag) : 0)},
		.no_local = opts->flags & SALVO_CONSUME_NO_LOCAL,
		.no_ack = opts->flags & SALVO_CONSUME_NO_ACK,
		.exclusive = opts->flags & SALVO_CONSUME_EXCLUSIVE,
		.arguments = sv_table_of(opts->arguments),
	};
	rc = sv_channel_rpc_for(
	    ch, &m, &(struct sv_rpc){.reply_id = SV_BASIC_CONSUME_OK, .on_reply = sv_consume_ok},
	    cons, &submitted, err);
	if (!submitted)
		sv_consumer_put(cons); /* the request's reference, never handed over */
	e.name = cons->tag; /* the broker's choice when none was given */
	sv_topo_record(ch, &e, cons, &tk, rc);
	if (rc) {
		/* A consume-ok still to come registers a consumer nobody reads: its deliveries
		 * are rejected with requeue as they arrive (sv_consumer_deliver). */
		atomic_store(&cons->abandoned, 1);
		sv_consumer_put(cons);
		return rc;
	}
	if (cons->on_message)
		disp_link(ch->client, cons);
	sv_consumer_stats_link(cons);
	*out = cons;
	return 0;
}

int sv_consumer_reissue(struct salvo_consumer *cons, const char *queue, unsigned flags,
			const salvo_table *arguments, salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_CONSUME};

	/* The request's reference: consume-ok finds the consumer on its channel's list
	 * already (kept across the loss) and drops it. */
	atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
	m.a.basic_consume = (struct sv_basic_consume){
		.queue = {(const uint8_t *)queue, (uint32_t)strlen(queue)},
		.consumer_tag = {(const uint8_t *)cons->tag, (uint32_t)strlen(cons->tag)},
		.no_local = flags & SALVO_CONSUME_NO_LOCAL,
		.no_ack = flags & SALVO_CONSUME_NO_ACK,
		.exclusive = flags & SALVO_CONSUME_EXCLUSIVE,
		.arguments = sv_table_of(arguments),
	};
	bool submitted = false;
	int rc = sv_channel_rpc_for(
	    cons->ch, &m,
	    &(struct sv_rpc){.reply_id = SV_BASIC_CONSUME_OK, .on_reply = sv_consume_ok}, cons,
	    &submitted, err);

	if (!submitted)
		sv_consumer_put(cons);
	return rc;
}

const char *salvo_consumer_tag(const salvo_consumer *cons)
{
	return cons ? cons->tag : "";
}

int salvo_consumer_cancel(salvo_consumer *cons, salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_CANCEL};
	int status;

	if (!cons)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_consumer_cancel: no consumer");
	pthread_mutex_lock(&cons->lock);
	status = cons->end_status;
	if (status && status != SALVO_ERR_CANCELLED)
		sv_error_copy(err, &cons->end_err);
	pthread_mutex_unlock(&cons->lock);
	if (status)
		return status == SALVO_ERR_CANCELLED ? 0 : status;
	m.a.basic_cancel.consumer_tag =
		(struct sv_bytes){(const uint8_t *)cons->tag, (uint32_t)strlen(cons->tag)};
	return sv_channel_rpc(
	    cons->ch, &m,
	    &(struct sv_rpc){.reply_id = SV_BASIC_CANCEL_OK, .on_reply = sv_cancel_ok}, NULL, NULL,
	    err);
}

void salvo_consumer_destroy(salvo_consumer *cons)
{
	if (!cons)
		return;
	/* Whatever arrives for it from now on is rejected with requeue as it arrives
	 * (sv_consumer_deliver), and what is queued is given back first: over
	 * consumer.buffer_bytes the I/O thread reads nothing, cancel-ok included. */
	atomic_store(&cons->abandoned, 1);
	sv_topo_forget_consumer(cons); /* also when the cancel below cannot be sent */
	sv_consumer_stats_unlink(cons);
	disp_unlink(cons->ch->client, cons);
	drop_queued(cons);
	salvo_consumer_cancel(cons, NULL);
	drop_queued(cons);
	sv_consumer_put(cons);
}

int salvo_basic_recover(salvo_channel *ch, bool requeue, salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_RECOVER, .a.basic_recover = {requeue}};

	if (!ch)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no channel");
	return sv_channel_rpc(ch, &m, &(struct sv_rpc){.reply_id = SV_BASIC_RECOVER_OK}, NULL, NULL,
			      err);
}

/* No reply: the request completes once the I/O thread has queued the frame. */
int salvo_basic_recover_async(salvo_channel *ch, bool requeue, salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_RECOVER_ASYNC, .a.basic_recover_async = {requeue}};

	if (!ch)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no channel");
	return sv_channel_rpc(ch, &m, &(struct sv_rpc){.reply_id = 0}, NULL, NULL, err);
}

void salvo_client_consume_stats(salvo_client *c, salvo_consume_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!c)
		return;
	st->delivered = atomic_load_explicit(&c->cctr.delivered, memory_order_relaxed);
	st->buffered_bytes = atomic_load_explicit(&c->buffered, memory_order_relaxed);
	st->buffered_peak = atomic_load_explicit(&c->cctr.buffered_peak, memory_order_relaxed);
	st->read_holds = atomic_load_explicit(&c->cctr.read_holds, memory_order_relaxed);
	st->settles = atomic_load_explicit(&c->cctr.settles, memory_order_relaxed);
	st->settle_frames = atomic_load_explicit(&c->cctr.settle_frames, memory_order_relaxed);
	st->settles_dropped =
		atomic_load_explicit(&c->cctr.settles_dropped, memory_order_relaxed);
	st->handovers = atomic_load_explicit(&c->cctr.handovers, memory_order_relaxed);
	st->envelopes = atomic_load_explicit(&c->cctr.envelopes, memory_order_relaxed);
	st->records = atomic_load_explicit(&c->cctr.records, memory_order_relaxed);
	st->envelopes_rejected =
		atomic_load_explicit(&c->cctr.envelopes_rejected, memory_order_relaxed);
	st->stream_holds = atomic_load_explicit(&c->cctr.stream_holds, memory_order_relaxed);
}
