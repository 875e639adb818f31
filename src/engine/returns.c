/* SPDX-License-Identifier: MIT */
/*
 * Returned messages with their content. A basic.return comes in pieces on its channel:
 * the method (reply code and text, exchange, routing key), the content header (properties
 * and the body's size) and body frames. The I/O thread assembles them into a struct
 * sv_return and, once whole, queues it on the channel's publisher (under ret_lock); the
 * publisher's thread takes it from there: with the message's outcome in confirm modes
 * (matched by the x-salvo-seq stamp), or for on_return in best effort, never on the I/O
 * thread.
 *
 * The bound. What the returns of a client hold for its application is counted in
 * client->ret_bytes against publisher.returns.max_bytes: the I/O thread adds a return's
 * cost (its bookkeeping, the content header's size as a bound on the properties, and the
 * body's size as announced) before it allocates anything, and does not keep the content
 * of one that does not fit: its body frames are skipped as they come, however large the
 * header said the body is. The publishers' threads subtract as they free what they were
 * handed. The I/O thread is the only one adding, so its check-then-add cannot overshoot:
 * a concurrent subtraction only makes the check conservative. In confirm modes the return
 * itself is kept even then (its outcome must still say RETURNED), but that is bounded by
 * the window; in best effort a dropped return is not kept at all. Nothing is kept that
 * nobody will be handed: without on_outcome (async) or on_return (best effort), returns
 * are counted only.
 */
#include <stdlib.h>
#include <string.h>

#include "../codec/table.h"
#include "io_internal.h"
#include "props.h"
#include "returns.h"

void sv_return_free(salvo_client *c, struct sv_return *r)
{
	struct sv_return_content *k;

	if (!r)
		return;
	k = r->content;
	if (k && --k->refs == 0) {
		atomic_fetch_sub_explicit(&c->ret_bytes, k->cost, memory_order_relaxed);
		free(k->props_mem);
		free(k->body);
		free(k);
	}
	free(r);
}

/* The I/O thread's half. */

/* Whether the publisher's application is handed returns' content. */
static bool wants_content(const struct salvo_publisher *pub)
{
	switch (pub->mode) {
	case SALVO_CONFIRM_SYNC:
		return true;
	case SALVO_CONFIRM_ASYNC:
		return pub->on_outcome != NULL;
	default:
		return pub->on_return != NULL;
	}
}

void sv_start_return(salvo_client *c, salvo_channel *ch, const struct sv_basic_return *a)
{
	struct salvo_publisher *pub = ch->pub;
	struct sv_return *r;

	ch->returning_seen = true;
	if (!pub)
		return;
	if (!pub->slots && !pub->on_return) {
		/* Best effort without on_return: counted, nobody to report it to. */
		sv_stat_add(&pub->ctr.returned, 1);
		return;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "out of memory receiving a basic.return");
		sv_conn_fail(c, &e);
		return;
	}
	char exchange[80], routing_key[80];
	sv_text_escape(r->reply_text, sizeof r->reply_text, a->reply_text.ptr, a->reply_text.len);
	sv_error_set(&r->err, SALVO_ERR_RETURNED, SALVO_ERROR_CHANNEL,
		     "returned %u %.80s: exchange '%s', routing key '%s'", a->reply_code,
		     r->reply_text,
		     sv_text_escape(exchange, sizeof exchange, a->exchange.ptr, a->exchange.len),
		     sv_text_escape(routing_key, sizeof routing_key, a->routing_key.ptr,
				    a->routing_key.len));
	r->err.reply_code = a->reply_code;
	sv_copy_str(r->exchange, a->exchange);
	sv_copy_str(r->routing_key, a->routing_key);
	r->want = wants_content(pub);
	ch->returning = r;
}

/* Room for cost more bytes of returns, taken; false when over the limit (logged once). */
static bool budget_take(salvo_client *c, uint64_t cost)
{
	uint64_t max = c->set.returns_max_bytes;
	uint64_t held = atomic_load_explicit(&c->ret_bytes, memory_order_relaxed);

	if (cost <= max && held <= max - cost) {
		atomic_fetch_add_explicit(&c->ret_bytes, cost, memory_order_relaxed);
		return true;
	}
	if (!c->ret_warned) {
		c->ret_warned = true;
		sv_log(&c->set.log, SALVO_LOG_WARNING, "publisher",
		       "a returned message of %llu bytes does not fit in "
		       "publisher.returns.max_bytes (%llu, %llu held): its content is dropped; "
		       "such returns are counted in returns_dropped",
		       (unsigned long long)cost, (unsigned long long)max, (unsigned long long)held);
	}
	return false;
}

/* The content header: which message it is (confirm modes), and room for its content. */
static void return_header(salvo_client *c, salvo_channel *ch, struct sv_return *r,
			  const struct sv_decoded_frame *d)
{
	const struct sv_content_header *h = &d->u.header;
	struct salvo_publisher *pub = ch->pub;
	struct sv_return_content *k;
	struct sv_field f;
	uint64_t cost;

	if (pub && pub->slots && (h->props.flags & SV_PROP_HEADERS) &&
	    sv_table_find(h->props.headers, SV_SEQ_HEADER, &f) &&
	    (f.type == SV_FIELD_I64 || f.type == SV_FIELD_U64))
		r->seq = f.type == SV_FIELD_I64 ? (uint64_t)f.v.i64 : f.v.u64;
	r->last = r->seq;
	/* An envelope's stamp is its first record's; every record of it comes back. */
	if (r->seq && pub->envs && sv_table_find(h->props.headers, SV_BATCH_RECORDS_HEADER, &f) &&
	    f.type == SV_FIELD_I32 && f.v.i32 > 0 && (uint64_t)f.v.i32 <= pub->wmask + 1)
		r->last = r->seq + (uint64_t)f.v.i32 - 1;
	if (!r->want)
		return;
	/* Checked against the bound from the announced size, before anything is allocated. */
	cost = sizeof *r + sizeof *k + d->frame.size + h->body_size;
	if (!budget_take(c, cost)) {
		r->dropped = true;
		if (pub)
			sv_stat_add(&pub->ctr.returns_dropped, 1);
		return;
	}
	k = calloc(1, sizeof *k);
	if (k) {
		k->refs = 1;
		k->cost = cost;
		k->len = (size_t)h->body_size;
		k->body = k->len ? malloc(k->len) : NULL;
		r->content = k;
	}
	/* The properties point into the read buffer: the return keeps copies. */
	if (!k || (k->len && !k->body) || sv_props_copy(&h->props, &k->props, &k->props_mem)) {
		salvo_error e;
		if (!k)
			atomic_fetch_sub_explicit(&c->ret_bytes, cost, memory_order_relaxed);
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "out of memory for a %llu-byte returned message",
			     (unsigned long long)h->body_size);
		sv_conn_fail(c, &e);
	}
}

/* The whole return is in: queue it for the publisher's thread. */
static void return_done(salvo_client *c, salvo_channel *ch, struct sv_return *r)
{
	struct salvo_publisher *pub = ch->pub;

	if (!pub) {
		sv_return_free(c, r);
		return;
	}
	if (!pub->slots) {
		/* Best effort: counted here, handed to on_return unless dropped. */
		sv_stat_add(&pub->ctr.returned, 1);
		if (r->dropped) {
			sv_return_free(c, r);
			return;
		}
	} else {
		/* A return salvo cannot match (no stamp, or not awaiting its confirm) changes
		 * no outcome: the message's ack still comes. It is counted, not lost without a
		 * trace. The records marked are those it reports; a range cut short (a count
		 * that is not ours) ends at the last one that could be. Its ack comes after
		 * its content, so the outcome is not drained before the return is queued. */
		if (r->seq && sv_confirm_mark_returned(&pub->win, r->seq))
			r->seq = 0;
		for (uint64_t s = r->seq + 1; r->seq && s <= r->last; s++)
			if (sv_confirm_mark_returned(&pub->win, s))
				r->last = s - 1;
		if (!r->seq) {
			sv_stat_add(&pub->ctr.returns_unmatched, 1);
			sv_return_free(c, r);
			return;
		}
	}
	pthread_mutex_lock(&pub->ret_lock);
	CK_STAILQ_INSERT_TAIL(&pub->returns, r, link);
	pthread_mutex_unlock(&pub->ret_lock);
}

void sv_return_frame(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d,
		     int event)
{
	struct sv_return *r = ch->returning;

	if (event == SV_CONTENT_COMPLETE)
		ch->returning_seen = false;
	if (!r)
		return;
	if (d->frame.type == SV_FRAME_HEADER) {
		return_header(c, ch, r, d);
	} else if (d->frame.type == SV_FRAME_BODY && r->content && r->content->body) {
		/* sv_content_feed has checked the body frames add up to the header's size. */
		memcpy(r->content->body + r->content->got, d->frame.payload, d->frame.size);
		r->content->got += d->frame.size;
	}
	if (event == SV_CONTENT_COMPLETE) {
		ch->returning = NULL;
		return_done(c, ch, r);
	}
}

/* The publisher's half. */

struct sv_return *sv_return_take(struct salvo_publisher *p, uint64_t seq)
{
	struct sv_return *r, *found = NULL;

	pthread_mutex_lock(&p->ret_lock);
	while ((r = CK_STAILQ_FIRST(&p->returns)) && r->seq <= seq) {
		if (seq < r->last) {
			found = malloc(sizeof *found);
			if (found) {
				*found = *r;
				if (found->content)
					found->content->refs++;
			}
			break;
		}
		CK_STAILQ_REMOVE_HEAD(&p->returns, link);
		if (seq == r->last) {
			sv_return_free(p->client, found);
			found = r;
		} else {
			sv_return_free(p->client, r);
		}
	}
	pthread_mutex_unlock(&p->ret_lock);
	return found;
}

struct sv_return *sv_return_next(struct salvo_publisher *p)
{
	struct sv_return *r;

	pthread_mutex_lock(&p->ret_lock);
	r = CK_STAILQ_FIRST(&p->returns);
	if (r)
		CK_STAILQ_REMOVE_HEAD(&p->returns, link);
	pthread_mutex_unlock(&p->ret_lock);
	return r;
}

void sv_return_fill(const struct sv_return *r, uint64_t seq, salvo_returned *out)
{
	const struct sv_return_content *k = r->content;

	*out = (salvo_returned){
	    .reply_code = (uint16_t)r->err.reply_code,
	    .reply_text = r->reply_text,
	    .exchange = r->exchange,
	    .routing_key = r->routing_key,
	    .dropped = r->dropped,
	    .record_index = seq > r->seq ? (uint32_t)(seq - r->seq) : 0,
	    .record_count = (uint32_t)(r->last - r->seq + 1),
	};
	if (k) {
		out->props = &k->props;
		out->body = k->body;
		out->len = k->len;
	}
}

void sv_return_free_all(struct salvo_publisher *p)
{
	struct sv_return *r;

	while ((r = CK_STAILQ_FIRST(&p->returns))) {
		CK_STAILQ_REMOVE_HEAD(&p->returns, link);
		sv_return_free(p->client, r);
	}
}
