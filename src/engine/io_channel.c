/* SPDX-License-Identifier: MIT */
/*
 * Channels and requests on the I/O thread. Requests come from application threads
 * (request.c): methods are queued for the next send and await their reply on their
 * channel, in order; attaches and detaches go to the publisher list; a close is sent once
 * everything queued before it has gone. Frames on a channel come here from the reader:
 * the broker's own methods (close, flow, acks, returns, deliveries, cancels) go to their
 * handler, and a reply completes the request at the head of its channel's queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "returns.h"

static void channel_peer_close(salvo_client *c, salvo_channel *ch,
			       const struct sv_channel_close *cl)
{
	struct sv_method ok = {.id = SV_CHANNEL_CLOSE_OK};
	struct sv_request *req, *ours = NULL;
	salvo_error e;

	sv_broker_error(c, &e, SALVO_ERROR_CHANNEL, cl->reply_code, cl->reply_text, cl->class_id,
			cl->method_id);
	sv_channel_mark_closed(ch, &e);
	sv_drop_incoming(ch, &e);
	sv_send_method(c, ch->id, &ok);
	/* A close of ours crossing the broker's stays awaited: its close-ok ends the channel,
	 * and salvo_channel_close reports the broker's error from ch->error. */
	while ((req = CK_STAILQ_FIRST(&ch->await))) {
		CK_STAILQ_REMOVE_HEAD(&ch->await, link);
		if (req->reply_id == SV_CHANNEL_CLOSE_OK && !ours)
			ours = req;
		else
			sv_request_complete(req, e.status, &e);
	}
	if (ours)
		CK_STAILQ_INSERT_TAIL(&ch->await, ours, link);
	else
		sv_channel_forget(c, ch);
}

/*
 * The broker's channel.flow: active=false asks salvo to send no more content on the
 * channel, active=true to go on. The publisher's ring keeps filling and is not sent
 * (io_pub.c, pub_ready) until flow is on again; the rest of a message a short write cut
 * still goes, as the spec allows ("finish sending the current content"). Answered with
 * flow-ok either way, and reported when it changes.
 */
static void channel_peer_flow(salvo_client *c, salvo_channel *ch, bool active)
{
	struct sv_method ok = {.id = SV_CHANNEL_FLOW_OK, .a.channel_flow_ok.active = active};
	salvo_event ev = {.channel = ch->id};

	sv_send_method(c, ch->id, &ok);
	if (ch->flow_stopped == !active)
		return;
	ch->flow_stopped = !active;
	ev.kind = active ? SALVO_EVENT_FLOW_RESUMED : SALVO_EVENT_FLOW_STOPPED;
	snprintf(ev.reason, sizeof ev.reason, "channel.flow active=%s on channel %u%s",
		 active ? "true" : "false", ch->id,
		 ch->pub ? (active ? ": its publisher sends again" : ": its publisher waits") : "");
	sv_event_push(c, &ev);
}

static void channel_method(salvo_client *c, salvo_channel *ch, const struct sv_method *m)
{
	struct sv_request *req = CK_STAILQ_FIRST(&ch->await);

	switch (m->id) {
	case SV_CHANNEL_CLOSE:
		channel_peer_close(c, ch, &m->a.channel_close);
		return;
	case SV_CHANNEL_FLOW:
		channel_peer_flow(c, ch, m->a.channel_flow.active);
		return;
	case SV_BASIC_ACK:
		sv_pub_confirmed(c, ch, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple, false);
		return;
	case SV_BASIC_NACK:
		sv_pub_confirmed(c, ch, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple, true);
		return;
	case SV_BASIC_RETURN:
		sv_start_return(c, ch, &m->a.basic_return);
		return;
	case SV_BASIC_DELIVER:
		sv_start_delivery(c, ch, &m->a.basic_deliver);
		return;
	case SV_BASIC_CANCEL: {
		/* consumer_cancel_notify: the broker ended a consumer (its queue is gone). */
		struct sv_method ok = {.id = SV_BASIC_CANCEL_OK};

		sv_cancel_consumer(c, ch, m->a.basic_cancel.consumer_tag, true);
		ok.a.basic_cancel_ok.consumer_tag = m->a.basic_cancel.consumer_tag;
		if (!m->a.basic_cancel.nowait)
			sv_send_method(c, ch->id, &ok);
		return;
	}
	}
	if (!req || (m->id != req->reply_id && m->id != req->reply_alt)) {
		sv_protocol_error(c, 505, "unexpected %s on channel %u", sv_method_name(m->id),
				  ch->id);
		return;
	}
	/* The reply to the oldest request awaiting one: its handler copies what it needs. */
	CK_STAILQ_REMOVE_HEAD(&ch->await, link);
	if (req->on_reply && req->on_reply(c, ch, req, m) == SV_REPLY_LATER)
		return;
	sv_request_complete(req, 0, NULL);
}

/* A frame on an open channel: its method, or the content of a message or a return. */
void sv_channel_frame(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d)
{
	struct sv_codec_error cerr;
	int event = sv_content_feed(&ch->content, d, &cerr);

	if (event < 0) {
		sv_protocol_error(c, cerr.reply_code, "%s", cerr.reason);
		return;
	}
	if (d->frame.type == SV_FRAME_METHOD) {
		channel_method(c, ch, &d->u.method);
	} else if (ch->returning_seen) {
		sv_return_frame(c, ch, d, event);
	} else {
		sv_get_content(c, ch, d, event);
	}
}

/* channel.open's frame is queued: the table holds a reference until the channel ends. */
void sv_channel_opening(salvo_client *c, salvo_channel *ch, struct sv_request *req)
{
	(void)req;
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	c->channels[ch->id] = ch;
	sv_content_init(&ch->content);
}

/* Topology recovery's channel.open of a channel kept across a loss is queued: it starts
 * afresh (its generation moved at the loss). The table holds it still. From now on the
 * application's calls on it go through again: they follow the channel.open on the wire,
 * so the broker has the channel when they come. (Let through only at open-ok, a close
 * in between would be taken for one of a channel the broker never saw and the number
 * freed, with the open still on its way.) */
void sv_channel_reopening(salvo_client *c, salvo_channel *ch, struct sv_request *req)
{
	(void)req;
	sv_content_init(&ch->content);
	sv_prefetch_clear(c, ch);
	sv_acked_free(&ch->acked);
	sv_acked_init(&ch->acked);
	ch->close_sent = ch->peer_closed = false;
	ch->recovering = false;
}

/* channel.close's frame is queued: settles for it are dropped from now on. */
void sv_channel_closing(salvo_client *c, salvo_channel *ch, struct sv_request *req)
{
	(void)c;
	(void)req;
	ch->close_sent = true;
}

/* channel.close-ok: the channel ends, and so does every request still awaiting a reply. */
enum sv_reply_next sv_channel_close_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				       const struct sv_method *m)
{
	salvo_error e;

	(void)req;
	(void)m;
	sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_CHANNEL, "channel %u is closed", ch->id);
	sv_channel_mark_closed(ch, &e);
	sv_fail_awaiting(ch, &e);
	sv_channel_forget(c, ch);
	return SV_REPLY_DONE;
}

/*
 * A request that may not go out: topology recovery's for another connection than this
 * one (or for none, between connections), and the application's on a channel kept for
 * its consumers until recovery has reopened it. Completed here (true), with an error,
 * but the application's close of such a channel, which ends it at once: the broker has
 * no channel to close.
 */
static bool refused(salvo_client *c, struct sv_request *req)
{
	salvo_channel *ch = req->ch;
	salvo_error e;

	if (req->rec_gen) {
		if (ch && (ch->close_sent || ch->peer_closed)) {
			/* The application closed the channel recovery is making consumers on
			 * again: nothing more goes on it. */
			sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_CHANNEL,
				     "channel %u was closed during topology recovery", ch->id);
			sv_request_complete(req, e.status, &e);
			return true;
		}
		if (atomic_load(&c->state) == SV_CONN_OPEN && !c->end_pending &&
		    req->rec_gen == c->generation + 1)
			return false;
		e = sv_lost_error(c);
		sv_request_complete(req, e.status, &e);
		return true;
	}
	if (!ch || !ch->recovering || ch->pub)
		return false;
	if (req->on_queued == sv_channel_closing) {
		sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_CHANNEL, "channel %u is closed",
			     ch->id);
		sv_channel_mark_closed(ch, &e);
		sv_fail_awaiting(ch, &e);
		sv_channel_forget(c, ch);
		sv_request_complete(req, 0, NULL);
		return true;
	}
	sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
		     "channel %u is being recovered after the connection was lost (its "
		     "consumers are made again); call again once topology recovery has finished",
		     ch->id);
	sv_request_complete(req, e.status, &e);
	return true;
}

static void take_method(salvo_client *c, struct sv_request *req)
{
	salvo_channel *ch = req->ch;

	if (ch && atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED) {
		sv_request_complete(req, ch->error.status, &ch->error);
		return;
	}
	if (refused(c, req))
		return;
	if (sv_out_append(c, req->frame, req->frame_len)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		sv_request_complete(req, e.status, &e);
		return;
	}
	if (req->on_queued)
		req->on_queued(c, ch, req);
	if (!req->reply_id)
		sv_request_complete(req, 0, NULL);
	else if (ch)
		sv_channel_await(ch, req);
	else
		CK_STAILQ_INSERT_TAIL(&c->await0, req, link);
}

/* connection.update-secret: the secret is the next login's from now on, whatever the
 * broker answers (its refusal is a 530 that ends the client anyway). On an open
 * connection the method goes out and its reply completes the request; between
 * connections there is nothing to tell the broker: the next attempt logs in with it. */
static void take_secret(salvo_client *c, struct sv_request *req)
{
	sv_creds_set_password(&c->creds, req->secret);
	if (atomic_load(&c->state) == SV_CONN_RECOVERING || c->end_pending)
		sv_request_complete(req, 0, NULL);
	else
		take_method(c, req);
}

/*
 * Control frames queued and not yet handed to the kernel. While a send is in flight and
 * more than this waits behind it, methods stay in the client's queue: nowait callers wait
 * until their frame is taken, so a broker that reads nothing holds a loop of nowait calls
 * back instead of letting their frames pile up here.
 */
#define SV_OUT_HOLD (256u * 1024u)

static bool out_full(const salvo_client *c)
{
	return c->send_inflight && c->out_len - c->out_sent + c->out_next_len > SV_OUT_HOLD;
}

/* Put back what is left of batch ahead of what was queued since: order is kept. */
static void requeue(salvo_client *c, struct sv_request_list *batch)
{
	pthread_mutex_lock(&c->lock);
	CK_STAILQ_CONCAT(batch, &c->queue);
	CK_STAILQ_MOVE(&c->queue, batch, link);
	pthread_mutex_unlock(&c->lock);
}

void sv_take_requests(salvo_client *c)
{
	struct sv_request_list batch;
	struct sv_request *req;

	pthread_mutex_lock(&c->lock);
	CK_STAILQ_MOVE(&batch, &c->queue, link);
	CK_STAILQ_INIT(&c->queue);
	pthread_mutex_unlock(&c->lock);
	/* Settles pushed before these requests were queued go out first (a channel.close
	 * must not overtake the acks its caller made before it). The lock taken above makes
	 * every push that happened before a queued request visible to this exchange. */
	if (!CK_STAILQ_EMPTY(&batch)) {
		sv_take_settles(c);
		/* A reply someone waits for must not wait for a read held back (io_recv.c). */
		sv_recv_unhold(c);
	}

	while ((req = CK_STAILQ_FIRST(&batch))) {
		CK_STAILQ_REMOVE_HEAD(&batch, link);
		/* Between connections, methods and new publishers wait for the next one (their
		 * callers' timeouts still run); closes and detaches are served at once. */
		if (atomic_load(&c->state) == SV_CONN_RECOVERING && req->kind == SV_REQ_ATTACH) {
			/* Its channel was opened on the lost connection, so it is closed: the
			 * publisher could never send. */
			salvo_error e = sv_lost_error(c);
			sv_request_complete(req, e.status, &e);
			continue;
		}
		/* Also once an end is recorded (a settle above ran out of memory): the safe
		 * point recovers, and they go on the next connection, or it closes everything
		 * and fails them with the rest. */
		if ((atomic_load(&c->state) == SV_CONN_RECOVERING || c->end_pending) &&
		    req->kind == SV_REQ_METHOD) {
			if (refused(c, req))
				continue;
			CK_STAILQ_INSERT_TAIL(&c->held, req, link);
			continue;
		}
		/* The send in flight completes (or the connection is declared dead) before
		 * the loop parks: the next turn takes them. */
		if (req->kind == SV_REQ_METHOD && out_full(c)) {
			CK_STAILQ_INSERT_HEAD(&batch, req, link);
			requeue(c, &batch);
			return;
		}
		switch (req->kind) {
		case SV_REQ_METHOD:
			take_method(c, req);
			break;
		case SV_REQ_ATTACH:
			if (sv_pub_attach(c, req->pub)) {
				sv_request_complete(req, 0, NULL);
			} else {
				salvo_error e;
				sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					     "out of memory");
				sv_request_complete(req, e.status, &e);
			}
			break;
		case SV_REQ_DETACH:
			sv_pub_detach(c, req);
			break;
		case SV_REQ_SECRET:
			take_secret(c, req);
			break;
		case SV_REQ_CLOSE:
			if (c->close_req) {
				/* A second close (after the first timed out) takes over; the first
				 * one's waiter has gone. */
				salvo_error e;
				sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					     "superseded by a later close");
				sv_request_complete(c->close_req, e.status, &e);
			}
			c->close_req = req;
			break;
		}
	}
}
