/* SPDX-License-Identifier: MIT */
/*
 * The consumer's I/O half. A basic.deliver or basic.get-ok starts a message, its content
 * frames fill it, and the finished message goes to its consumer's queue (consumer.c
 * hands a read's deliveries over in one go) or to the basic.get waiting for it. An
 * envelope for a consumer that splits them goes as its records (envelope.c), or, when
 * malformed, is rejected without requeue here and reported.
 * Consumers are registered at consume-ok and end at cancel-ok, at the broker's cancel, or
 * with their channel. The application's acks, nacks and rejects arrive on a lock-free
 * stack and leave as few frames as the broker allows: consecutive single acks become one
 * multiple ack (acked.c); an envelope's settle that a multiple one covered already is
 * dropped (quiet).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "io_internal.h"
#include "props.h"

static void out_of_memory(salvo_client *c, const char *what)
{
	salvo_error e;

	sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION, "out of memory %s", what);
	sv_conn_fail(c, &e);
}

/*
 * Whether ch has half its prefetch or more unsettled, kept in c->channels_near: the
 * broker may soon wait for its acks, which must then not wait for a read held back
 * (io_recv.c). Looked at when a delivery comes and when settles move the floor; a
 * channel's end or reopening clears it (sv_prefetch_clear).
 */
void sv_note_prefetch(salvo_client *c, salvo_channel *ch)
{
	uint16_t prefetch = atomic_load_explicit(&ch->prefetch, memory_order_relaxed);
	bool near = prefetch && ch->acked.delivered - ch->acked.floor >= prefetch / 2u;

	if (near == ch->near_prefetch)
		return;
	ch->near_prefetch = near;
	if (near)
		c->channels_near++;
	else
		c->channels_near--;
}

void sv_prefetch_clear(salvo_client *c, salvo_channel *ch)
{
	if (ch->near_prefetch) {
		ch->near_prefetch = false;
		c->channels_near--;
	}
}

/* A message whose content (header, bodies) follows: basic.get-ok or basic.deliver. */
static struct sv_delivery *start_message(salvo_client *c, salvo_channel *ch, uint64_t tag,
					 bool redelivered, struct sv_bytes exchange,
					 struct sv_bytes routing_key)
{
	struct sv_delivery *d = sv_delivery_new(c);

	if (!d) {
		out_of_memory(c, "receiving a message");
		return NULL;
	}
	d->delivery_tag = tag;
	d->redelivered = redelivered;
	sv_copy_str(d->exchange, exchange);
	sv_copy_str(d->routing_key, routing_key);
	ch->incoming = d;
	ch->incoming_len = 0;
	ch->incoming_to = NULL;
	ch->incoming_env = 0;
	return d;
}

/* basic.get-ok (its content completes the request, message_done) or basic.get-empty. */
enum sv_reply_next sv_get_reply(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				const struct sv_method *m)
{
	const struct sv_basic_get_ok *a = &m->a.basic_get_ok;
	struct sv_delivery *msg;

	if (m->id == SV_BASIC_GET_EMPTY)
		return SV_REPLY_DONE; /* no message */
	/* Kept until the content completes it, or the channel's end fails it (also when
	 * there is no memory for the message: the connection fails). */
	ch->incoming_req = req;
	msg = start_message(c, ch, a->delivery_tag, a->redelivered, a->exchange, a->routing_key);
	if (msg)
		msg->message_count = a->message_count;
	return SV_REPLY_LATER;
}

static struct salvo_consumer *find_consumer(salvo_channel *ch, struct sv_bytes tag)
{
	for (struct salvo_consumer *k = ch->consumers; k; k = k->next)
		if (strlen(k->tag) == tag.len && !memcmp(k->tag, tag.ptr, tag.len))
			return k;
	return NULL;
}

void sv_start_delivery(salvo_client *c, salvo_channel *ch, const struct sv_basic_deliver *a)
{
	struct salvo_consumer *cons = find_consumer(ch, a->consumer_tag);
	struct sv_delivery *msg;

	if (!cons) {
		char tag[128];
		sv_protocol_error(c, 503, "basic.deliver on channel %u for consumer tag '%s', "
			       "which that channel does not have",
			       ch->id, sv_text_escape(tag, sizeof tag, a->consumer_tag.ptr,
						      a->consumer_tag.len));
		return;
	}
	msg = start_message(c, ch, a->delivery_tag, a->redelivered, a->exchange, a->routing_key);
	if (!msg)
		return;
	sv_copy_str(msg->consumer_tag, a->consumer_tag);
	msg->no_ack = cons->no_ack;
	ch->incoming_to = cons;
}

static void send_settle(salvo_client *c, uint16_t channel, const struct sv_settle *s,
			uint64_t tag, bool multiple)
{
	struct sv_method m;

	switch (s->kind) {
	case SV_SETTLE_ACK:
		m = (struct sv_method){.id = SV_BASIC_ACK, .a.basic_ack = {tag, multiple}};
		break;
	case SV_SETTLE_NACK:
		m = (struct sv_method){.id = SV_BASIC_NACK,
				       .a.basic_nack = {tag, multiple, s->requeue}};
		break;
	default:
		m = (struct sv_method){.id = SV_BASIC_REJECT, .a.basic_reject = {tag, s->requeue}};
		break;
	}
	sv_send_method(c, channel, &m);
	sv_stat_add(&c->cctr.settle_frames, 1);
}

/*
 * A malformed envelope for a consumer that splits them: rejected without requeue at once
 * (a dead-letter exchange gets it; with no_ack it is gone already), or acked for a
 * consumer of a stream, which takes acks only (it stays in the stream), counted and
 * reported, and freed. Its tag counts as settled, so multiple acks pass over it.
 */
static void refuse_envelope(salvo_client *c, salvo_channel *ch, struct salvo_consumer *cons,
			    struct sv_delivery *d, const char *reason)
{
	salvo_event ev = {.kind = SALVO_EVENT_ENVELOPE_REJECTED, .channel = ch->id};
	char key[80];

	/* A channel being closed takes nothing more (its close requeues the envelope). */
	if (!d->no_ack && !ch->close_sent && !ch->peer_closed) {
		send_settle(c, ch->id,
			    &(struct sv_settle){.kind = cons->acks_only ? SV_SETTLE_ACK
								: SV_SETTLE_REJECT},
			    d->delivery_tag, false);
		sv_acked_settle(&ch->acked, d->delivery_tag, false);
	}
	sv_stat_add(&c->cctr.envelopes_rejected, 1);
	snprintf(ev.consumer_tag, sizeof ev.consumer_tag, "%s", cons->tag);
	sv_error_set(&ev.error, SALVO_ERR_PROTOCOL, SALVO_ERROR_LOCAL,
		     "malformed envelope (delivery tag %llu on channel %u, routing key '%s') %s: "
		     "%s",
		     (unsigned long long)d->delivery_tag, ch->id,
		     sv_text_escape(key, sizeof key, (const uint8_t *)d->routing_key,
				    strlen(d->routing_key)),
		     d->no_ack	       ? "dropped (consumed with no_ack)"
		     : cons->acks_only ? "acked (a stream takes acks only), not handed out"
				       : "rejected without requeue",
		     reason);
	sv_event_push(c, &ev);
	sv_delivery_free(d);
}

/* A delivery is complete: to its consumer, whole or split into records. */
static void deliver(salvo_client *c, salvo_channel *ch, struct salvo_consumer *cons,
		    struct sv_delivery *d)
{
	struct salvo_message *first;
	uint32_t n;

	sv_acked_delivered(&ch->acked, d->delivery_tag, d->no_ack);
	d->acks_only = cons->acks_only;
	/* For the read's hold (io_recv.c): a request that asks for a reply (reply_to: its
	 * caller waits) and a reply an RPC client waits for are no part of a stream. */
	if (!atomic_load_explicit(&cons->no_hold, memory_order_relaxed) && !d->props.reply_to)
		c->batch_deliveries++;
	sv_note_prefetch(c, ch);
	if (!ch->incoming_env || atomic_load_explicit(&cons->abandoned, memory_order_relaxed)) {
		sv_consumer_deliver(c, cons, &d->whole, 1);
		return;
	}
	if (ch->incoming_env < 0) {
		refuse_envelope(c, ch, cons, d, ch->incoming_env_err.reason);
		return;
	}
	if (sv_envelope_split(d, &ch->incoming_info, c->set.consumer_batch_max_bytes, &c->zbuf,
			      &first, &n, &ch->incoming_env_err)) {
		refuse_envelope(c, ch, cons, d, ch->incoming_env_err.reason);
		return;
	}
	sv_stat_add(&c->cctr.envelopes, 1);
	sv_stat_add(&c->cctr.records, n);
	sv_consumer_deliver(c, cons, first, n);
}

/* The last frame of a message has come: it leaves the channel for a consumer's queue or
 * the basic.get waiting for it, keeping its channel for salvo_message_ack. */
static void message_done(salvo_client *c, salvo_channel *ch, struct sv_delivery *msg)
{
	struct salvo_consumer *cons = ch->incoming_to;
	struct sv_request *req;

	ch->incoming = NULL;
	ch->incoming_to = NULL;
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	msg->ch = ch;
	msg->generation = atomic_load_explicit(&ch->generation, memory_order_relaxed);
	if (cons) {
		deliver(c, ch, cons, msg);
		return;
	}
	req = ch->incoming_req;
	ch->incoming_req = NULL;
	msg->no_ack = req->no_ack;
	sv_acked_delivered(&ch->acked, msg->delivery_tag, msg->no_ack);
	req->msg = &msg->whole;
	sv_request_complete(req, 0, NULL);
}

/* Content frames of a basic.get-ok or basic.deliver (a return's are handled apart). */
void sv_get_content(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d,
			int event)
{
	struct sv_delivery *msg = ch->incoming;

	if (!msg)
		return;
	if (d->frame.type == SV_FRAME_HEADER) {
		if (d->u.header.body_size > SV_MAX_BODY) {
			sv_protocol_error(c, 502, "a %llu-byte body exceeds salvo's limit of %llu",
				       (unsigned long long)d->u.header.body_size,
				       (unsigned long long)SV_MAX_BODY);
			return;
		}
		/* The properties point into rbuf: the message keeps copies. Both in buffers
		 * the delivery may keep from an earlier message (delivery.c). */
		if (sv_delivery_body(msg, (size_t)d->u.header.body_size) ||
		    sv_props_copy_reuse(&d->u.header.props, &msg->props, &msg->props_mem,
					&msg->props_cap)) {
			salvo_error e;
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory for a %zu-byte message",
				     (size_t)d->u.header.body_size);
			sv_conn_fail(c, &e);
			return;
		}
		msg->whole.body = msg->body;
		msg->whole.len = msg->len;
		/* What it costs while queued: its body and property buffers (a recycled
		 * delivery's may be larger than this message needs) and the delivery itself. */
		msg->whole.cost = msg->body_cap + msg->props_cap + sizeof *msg;
		/* Whether it is an envelope is read here, from the properties as they came
		 * (a copied string stops at a NUL byte); a consumer splits it when complete. */
		if (ch->incoming_to && !ch->incoming_to->raw)
			ch->incoming_env = sv_batch_classify(&d->u.header.props, &ch->incoming_info,
							     &ch->incoming_env_err);
	} else if (d->frame.type == SV_FRAME_BODY) {
		/* sv_content_feed has checked the body frames add up to the header's size */
		memcpy(msg->body + ch->incoming_len, d->frame.payload, d->frame.size);
		ch->incoming_len += d->frame.size;
	}
	if (event == SV_CONTENT_COMPLETE)
		message_done(c, ch, msg);
}

/* Take the consumer tagged tag off the channel's list; NULL if it is not there. */
static struct salvo_consumer *unlink_consumer(salvo_channel *ch, struct sv_bytes tag)
{
	for (struct salvo_consumer **p = &ch->consumers; *p; p = &(*p)->next) {
		struct salvo_consumer *k = *p;

		if (strlen(k->tag) == tag.len && !memcmp(k->tag, tag.ptr, tag.len)) {
			*p = k->next;
			if (ch->incoming_to == k)
				ch->incoming_to = NULL;
			return k;
		}
	}
	return NULL;
}

/* A consumer is cancelled: by the broker (server), or by the application's cancel-ok. */
void sv_cancel_consumer(salvo_client *c, salvo_channel *ch, struct sv_bytes tag, bool server)
{
	struct salvo_consumer *cons = unlink_consumer(ch, tag);
	salvo_event ev = {.kind = SALVO_EVENT_CONSUMER_CANCELLED, .channel = ch->id};
	salvo_error e;
	char shown[128];

	if (!cons)
		return; /* our cancel crossed the broker's */
	/* The tag may be the broker's choice. */
	sv_text_escape(shown, sizeof shown, (const uint8_t *)cons->tag, strlen(cons->tag));
	if (server)
		sv_error_set(&e, SALVO_ERR_CANCELLED, SALVO_ERROR_CHANNEL,
			     "the broker cancelled consumer '%s' on channel %u (its queue was "
			     "deleted, or the queue's node went down)",
			     shown, ch->id);
	else
		sv_error_set(&e, SALVO_ERR_CANCELLED, SALVO_ERROR_LOCAL,
			     "consumer '%s' was cancelled by the application", shown);
	sv_consumer_end(cons, &e);
	sv_topo_forget_consumer(cons);
	if (server) {
		snprintf(ev.consumer_tag, sizeof ev.consumer_tag, "%s", cons->tag);
		ev.error = e;
		sv_event_push(c, &ev);
	}
	sv_consumer_put(cons);
}

/*
 * A consumer the broker has started while the application was destroying it (topology
 * recovery made it again, its own cancel refused or sent before; or its consume had timed
 * out): cancel it from here, so the broker does not keep delivering to nobody. cancel-ok
 * ends and unlists it as the application's would. Without memory, the connection fails
 * (its next one does not make the consumer again: it is no longer recorded).
 */
static void cancel_remade(salvo_client *c, salvo_channel *ch, struct salvo_consumer *cons)
{
	struct sv_method m = {.id = SV_BASIC_CANCEL};
	salvo_error e;

	m.a.basic_cancel.consumer_tag = (struct sv_bytes){(const uint8_t *)cons->tag,
							  (uint32_t)strlen(cons->tag)};
	if (sv_channel_own_request(c, ch, &m, SV_BASIC_CANCEL_OK, sv_cancel_ok, NULL))
		return;
	sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
		     "out of memory cancelling consumer '%s'", cons->tag);
	sv_conn_fail(c, &e);
}

/* consume-ok: the consumer's deliveries may come from now on. The request's reference
 * to it becomes the channel list's. */
enum sv_reply_next sv_consume_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				 const struct sv_method *m)
{
	struct salvo_consumer *cons = req->consumer;

	if (!cons)
		return SV_REPLY_DONE;
	req->consumer = NULL;
	cons->live_gen = c->generation;
	struct salvo_consumer *k = ch->consumers;
	while (k && k != cons)
		k = k->next;
	if (k) {
		/* Made again by topology recovery: listed since before the loss. */
		sv_consumer_put(cons);
	} else {
		/* The list takes the request's reference. */
		sv_copy_str(cons->tag, m->a.basic_consume_ok.consumer_tag);
		cons->next = ch->consumers;
		ch->consumers = cons;
	}
	/* Destroyed meanwhile (its own cancel went before this consume, or was refused while
	 * the channel was being recovered): the broker would deliver to nobody. */
	if (atomic_load(&cons->abandoned))
		cancel_remade(c, ch, cons);
	return SV_REPLY_DONE;
}

/* cancel-ok: the application's cancel has taken effect. */
enum sv_reply_next sv_cancel_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				const struct sv_method *m)
{
	(void)req;
	sv_cancel_consumer(c, ch, m->a.basic_cancel_ok.consumer_tag, false);
	return SV_REPLY_DONE;
}

/* The channel a settle is for, if it is still the opening the message came on. */
static salvo_channel *settle_channel(salvo_client *c, const struct sv_settle *s)
{
	salvo_channel *ch = s->channel <= c->sess.channel_max ? c->channels[s->channel] : NULL;

	if (!sv_live(c) || !ch || ch->close_sent || ch->peer_closed ||
	    atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED ||
	    atomic_load_explicit(&ch->generation, memory_order_relaxed) != s->generation)
		return NULL;
	return ch;
}

/*
 * The single acks recorded in [from, to) of a batch, for channel ch (NULL: all): the
 * floor moves over what is settled, and the highest single ack it passed goes out as one
 * multiple ack; those above the floor go out alone. The multiple ack is exact: every tag
 * below it is settled, and that tag itself is still unacked at the broker (RabbitMQ
 * refuses a multiple ack that finds nothing to ack). tag 0 marks a settle dealt with.
 */
static void flush_singles(salvo_client *c, salvo_channel *only, struct sv_settle *from,
			  struct sv_settle *to)
{
	struct sv_settle *s;
	salvo_channel *ch;

	for (s = from; s != to; s = s->next) {
		if (!s->tag || (only && c->channels[s->channel] != only))
			continue;
		ch = c->channels[s->channel];
		if (!ch) {
			/* Not expected: settle_channel found it, and channels are forgotten only
			 * at the loop's safe point. A settle for no channel is dropped. */
			s->tag = 0;
			continue;
		}
		if (ch->acked.due) {
			sv_acked_advance(&ch->acked);
			ch->acked.due = false;
		}
		if (s->tag > ch->acked.floor) {
			send_settle(c, ch->id, s, s->tag, false);
			s->tag = 0;
		} else if (s->tag > ch->acked.batch_max) {
			ch->acked.batch_max = s->tag;
		}
	}
	for (s = from; s != to; s = s->next) {
		if (!s->tag || (only && c->channels[s->channel] != only))
			continue;
		ch = c->channels[s->channel];
		if (ch && ch->acked.batch_max) {
			send_settle(c, ch->id, s, ch->acked.batch_max, true);
			ch->acked.batch_max = 0;
		}
		s->tag = 0;
	}
}

/*
 * An envelope's settle (quiet) whose tags a multiple settle covered already: nothing to
 * send (RabbitMQ would close the channel for an unknown tag). A multiple one needs some
 * tag up to it still unsettled: after the singles before it are recorded and the floor
 * has moved over them, that is floor + 1 if the tag is above the floor.
 */
static bool quiet_settled(salvo_client *c, salvo_channel *ch, struct sv_settle *list,
			  struct sv_settle *s)
{
	if (!s->multiple)
		return sv_acked_is_settled(&ch->acked, s->tag);
	flush_singles(c, ch, list, s);
	return s->tag <= sv_acked_advance(&ch->acked);
}

/*
 * Send what the application settled since the last loop, in its order. Single acks are
 * recorded and sent by flush_singles, at the end or before a nack, reject or multiple
 * ack of the same channel (which must come after them, as the application sent them).
 */
void sv_take_settles(salvo_client *c)
{
	struct sv_settle *list = sv_settle_take(c), *s;
	salvo_channel *ch;

	for (s = list; s; s = s->next) {
		ch = settle_channel(c, s);
		if (!ch) {
			sv_stat_add(&c->cctr.settles_dropped, 1);
			s->tag = 0;
		} else if (s->quiet && quiet_settled(c, ch, list, s)) {
			s->tag = 0;
		} else if (s->kind != SV_SETTLE_ACK || s->multiple) {
			flush_singles(c, ch, list, s);
			send_settle(c, ch->id, s, s->tag, s->multiple);
			sv_acked_settle(&ch->acked, s->tag, s->multiple);
			s->tag = 0;
		} else if (!sv_acked_settle(&ch->acked, s->tag, false)) {
			send_settle(c, ch->id, s, s->tag, false);
			s->tag = 0;
		} else {
			ch->acked.due = true;
		}
	}
	flush_singles(c, NULL, list, NULL);
	/* The floors have moved: a channel may be clear of its prefetch again. */
	for (s = list; s; s = s->next) {
		ch = s->channel <= c->sess.channel_max ? c->channels[s->channel] : NULL;
		if (ch && ch->near_prefetch) {
			sv_acked_advance(&ch->acked);
			sv_note_prefetch(c, ch);
		}
	}
	sv_settle_free_all(list);
}
