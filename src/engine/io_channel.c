/* SPDX-License-Identifier: MIT */
/*
 * Channels and requests on the I/O thread. Requests come from application threads
 * (request.c): methods are queued for the next send and await their reply on their
 * channel, in order; attaches and detaches go to the publisher list; a close is sent once
 * everything queued before it has gone. Frames on a channel come here from the reader:
 * the broker's own methods (close, flow, acks, returns, deliveries, cancels) go to their
 * handler, and a reply completes the request at the head of its channel's queue.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

/* Copy what the application asked for out of a reply, which points into rbuf. */
static void take_reply(struct sv_request *req, const struct sv_method *m)
{
	switch (m->id) {
	case SV_QUEUE_DECLARE_OK: {
		const struct sv_queue_declare_ok *a = &m->a.queue_declare_ok;
		memcpy(req->queue.name, a->queue.ptr, a->queue.len);
		req->queue.name[a->queue.len] = '\0';
		req->queue.message_count = a->message_count;
		req->queue.consumer_count = a->consumer_count;
		break;
	}
	case SV_QUEUE_PURGE_OK:
		req->message_count = m->a.queue_purge_ok.message_count;
		break;
	case SV_QUEUE_DELETE_OK:
		req->message_count = m->a.queue_delete_ok.message_count;
		break;
	}
}

static void channel_peer_close(salvo_client *c, salvo_channel *ch,
			       const struct sv_channel_close *cl)
{
	struct sv_method ok = {.id = SV_CHANNEL_CLOSE_OK};
	struct sv_request *req, *next, *ours = NULL;
	salvo_error e;

	sv_broker_error(&e, SALVO_ERROR_CHANNEL, cl->reply_code, cl->reply_text, cl->class_id,
		     cl->method_id);
	sv_channel_mark_closed(ch, &e);
	salvo_message_destroy(ch->incoming);
	ch->incoming = NULL;
	sv_send_method(c, ch->id, &ok);
	/* A close of ours crossing the broker's stays awaited: its close-ok ends the channel,
	 * and salvo_channel_close reports the broker's error from ch->error. */
	for (req = ch->await_head; req; req = next) {
		next = req->next;
		if (req->reply_id == SV_CHANNEL_CLOSE_OK && !ours) {
			ours = req;
			req->next = NULL;
			continue;
		}
		sv_request_complete(req, e.status, &e);
	}
	ch->await_head = ch->await_tail = ours;
	if (!ours)
		sv_channel_forget(c, ch);
}

static void channel_method(salvo_client *c, salvo_channel *ch, const struct sv_method *m)
{
	struct sv_request *req = ch->await_head;

	switch (m->id) {
	case SV_CHANNEL_CLOSE:
		channel_peer_close(c, ch, &m->a.channel_close);
		return;
	case SV_CHANNEL_FLOW: {
		struct sv_method ok = {.id = SV_CHANNEL_FLOW_OK,
				       .a.channel_flow_ok.active = m->a.channel_flow.active};
		sv_send_method(c, ch->id, &ok);
		return;
	}
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
	if (m->id == SV_BASIC_GET_EMPTY && req && req->reply_id == SV_BASIC_GET_OK)
		m = NULL; /* the queue is empty: complete with no message */
	else if (!req || req->reply_id != m->id) {
		sv_protocol_error(c, 505, "unexpected %s on channel %u", sv_method_name(m->id),
			       ch->id);
		return;
	}
	if (m && m->id == SV_BASIC_GET_OK) {
		/* Completed when its content has arrived (get_content). */
		sv_start_get(c, ch, &m->a.basic_get_ok);
		return;
	}
	ch->await_head = req->next;
	if (!ch->await_head)
		ch->await_tail = NULL;
	if (m)
		take_reply(req, m);
	if (m && m->id == SV_BASIC_CONSUME_OK && req->consumer)
		sv_register_consumer(ch, req, &m->a.basic_consume_ok);
	if (m && m->id == SV_BASIC_CANCEL_OK)
		sv_cancel_consumer(c, ch, m->a.basic_cancel_ok.consumer_tag, false);
	if (req->resume)
		sv_pub_resume(req->resume);
	if (req->ckpt) {
		if (req->ckpt_count > req->ckpt->be_verified)
			req->ckpt->be_verified = req->ckpt_count;
		req->ckpt->ckpt_inflight = false;
	}
	sv_request_complete(req, 0, NULL);
	if (m && m->id == SV_CHANNEL_CLOSE_OK) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_CHANNEL, "channel %u is closed",
			     ch->id);
		sv_channel_mark_closed(ch, &e);
		sv_fail_awaiting(ch, &e);
		sv_channel_forget(c, ch);
	}
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
		if (d->frame.type == SV_FRAME_HEADER && ch->returning)
			sv_return_header(ch, &d->u.header);
		if (event == SV_CONTENT_COMPLETE)
			ch->returning_seen = false;
	} else {
		sv_get_content(c, ch, d, event);
	}
}

static void take_method(salvo_client *c, struct sv_request *req)
{
	salvo_channel *ch = req->ch;


	if (ch && atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED) {
		sv_request_complete(req, ch->error.status, &ch->error);
		return;
	}
	if (sv_out_append(c, req->frame, req->frame_len)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		sv_request_complete(req, e.status, &e);
		return;
	}
	if (req->reply_id == SV_CHANNEL_OPEN_OK) {
		/* The table holds a reference until the channel ends. */
		atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
		c->channels[ch->id] = ch;
		sv_content_init(&ch->content);
	}
	if (req->reply_id == SV_CHANNEL_CLOSE_OK)
		ch->close_sent = true;
	if (!req->reply_id)
		sv_request_complete(req, 0, NULL);
	else
		sv_channel_await(ch, req);
}

void sv_take_requests(salvo_client *c)
{
	struct sv_request *req, *next;

	pthread_mutex_lock(&c->lock);
	req = c->queue_head;
	c->queue_head = c->queue_tail = NULL;
	pthread_mutex_unlock(&c->lock);
	/* Settles pushed before these requests were queued go out first (a channel.close
	 * must not overtake the acks its caller made before it). The lock taken above makes
	 * every push that happened before a queued request visible to this exchange. */
	if (req)
		sv_take_settles(c);

	for (; req; req = next) {
		next = req->next;
		req->next = NULL;
		/* Between connections, methods and new publishers wait for the next one (their
		 * callers' timeouts still run); closes and detaches are served at once. */
		if (atomic_load(&c->state) == SV_CONN_RECOVERING && req->kind == SV_REQ_ATTACH) {
			/* Its channel was opened on the lost connection, so it is closed: the
			 * publisher could never send. */
			salvo_error e = sv_lost_error(c);
			sv_request_complete(req, e.status, &e);
			continue;
		}
		if (atomic_load(&c->state) == SV_CONN_RECOVERING && req->kind == SV_REQ_METHOD) {
			if (c->held_tail)
				c->held_tail->next = req;
			else
				c->held_head = req;
			c->held_tail = req;
			continue;
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
