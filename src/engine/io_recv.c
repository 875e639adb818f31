/* SPDX-License-Identifier: MIT */
/*
 * Receiving. Reads are one at a time into rbuf (transport.c); complete frames are decoded
 * in place and handled, the tail of a partial one is moved to the front. Connection
 * methods are handled here, channel frames go to their channel (io_channel.c). Decoding
 * stops while the consumers' queued messages exceed their bound, and resumes when the
 * application has taken enough. After a read, the consumers get its deliveries in one
 * hand-over and each publisher with new confirms is drained once; a small read of acks
 * no producer needs at once holds the next read back for a while (io_pub.c says how
 * long), so that acks pile up in the socket instead of waking the thread every few, and
 * a read that brought a stream of deliveries does the same for read_hold_us.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "read_hold.h"

/* How small a read of nothing but acks must be to hold the next one (for how long:
 * sv_pubs_hold_ns, io_pub.c). */
#define SV_RECV_HOLD_BYTES 4096u
/* A read that delivered this many messages or more is a stream: the next read waits for
 * sv_recv_hold_ns (read_hold_us). */
#define SV_HOLD_DELIVERIES 8u

static void connection_method(salvo_client *c, const struct sv_method *m)
{
	struct sv_request *req = CK_STAILQ_FIRST(&c->await0);

	/* The reply to the oldest request awaiting one on channel 0 (update-secret-ok). */
	if (req && m->id == req->reply_id) {
		CK_STAILQ_REMOVE_HEAD(&c->await0, link);
		if (!req->on_reply || req->on_reply(c, NULL, req, m) == SV_REPLY_DONE)
			sv_request_complete(req, 0, NULL);
		return;
	}
	switch (m->id) {
	case SV_CONNECTION_CLOSE: {
		struct sv_method ok = {.id = SV_CONNECTION_CLOSE_OK};
		const struct sv_connection_close *cl = &m->a.connection_close;
		salvo_error e;

		sv_broker_error(c, &e, SALVO_ERROR_CONNECTION, cl->reply_code, cl->reply_text,
				cl->class_id, cl->method_id);
		/* The broker says salvo broke the protocol (or sent a command it refuses):
		 * 501..505 and 540, the codes the spec gives to such errors. */
		if (((cl->reply_code >= 501 && cl->reply_code <= 505) || cl->reply_code == 540) &&
		    sv_log_enabled(&c->set.log, SALVO_LOG_ERR)) {
			char line[512];

			sv_log(&c->set.log, SALVO_LOG_ERR, "protocol",
			       "the broker closed the connection over a protocol error: %s",
			       salvo_error_format(&e, line, sizeof line));
		}
		sv_send_now(c, &ok);
		sv_conn_fail(c, &e);
		return;
	}
	case SV_CONNECTION_CLOSE_OK:
		if (atomic_load(&c->state) == SV_CONN_CLOSING && c->close_req) {
			sv_conn_closed(c);
			return;
		}
		break;
	case SV_CONNECTION_BLOCKED: {
		salvo_event ev = {.kind = SALVO_EVENT_BLOCKED};
		struct sv_bytes r = m->a.connection_blocked.reason;

		/* Publishers stop sending (their rings fill and producers feel it); control
		 * frames and heartbeats go on. */
		c->blocked = true;
		sv_stats_blocked(c, sv_now_ns());
		sv_text_escape(ev.reason, sizeof ev.reason, r.ptr, r.len);
		sv_text_escape(c->blocked_reason, sizeof c->blocked_reason, r.ptr, r.len);
		sv_redact_secrets(c, ev.reason);
		sv_redact_secrets(c, c->blocked_reason);
		sv_event_push(c, &ev);
		return;
	}
	case SV_CONNECTION_UNBLOCKED: {
		salvo_event ev = {.kind = SALVO_EVENT_UNBLOCKED};

		c->blocked = false;
		sv_stats_blocked(c, 0);
		/* A send stuck through the block starts its stall clock now. */
		c->send_started_ns = sv_now_ns();
		sv_event_push(c, &ev);
		return;
	}
	}
	sv_protocol_error(c, 503, "unexpected %s on channel 0", sv_method_name(m->id));
}

static void handle_frame(salvo_client *c, const struct sv_decoded_frame *d)
{
	salvo_channel *ch;

	if (d->frame.type == SV_FRAME_HEARTBEAT)
		return;
	if (d->frame.type != SV_FRAME_METHOD ||
	    (d->u.method.id != SV_BASIC_ACK && d->u.method.id != SV_BASIC_NACK))
		c->batch_acks_only = false;
	else
		c->batch_acks = true;
	if (d->frame.channel == 0) {
		if (d->frame.type != SV_FRAME_METHOD)
			sv_protocol_error(c, 505, "content frame on channel 0");
		else
			connection_method(c, &d->u.method);
		return;
	}
	ch = d->frame.channel <= c->sess.channel_max ? c->channels[d->frame.channel] : NULL;
	if (!ch) {
		sv_protocol_error(c, 504, "frame on channel %u, which is not open", d->frame.channel);
		return;
	}
	sv_channel_frame(c, ch, d);
}

/*
 * Decode and handle the complete frames in rbuf; keep the tail of a partial one. Decoding
 * stops, leaving the rest in rbuf (input_pending), while the consumers' queued messages
 * exceed consumer.buffer_bytes: the bound then holds within one message, whatever the
 * size of a read.
 */
static void frames(salvo_client *c)
{
	struct sv_decoded_frame d;
	size_t pos = 0;
	ssize_t n = 0;

	c->input_pending = false;
	while (sv_live(c) && !(c->input_pending = sv_hold_over_bound(c)) &&
	       (n = sv_reader_next(&c->reader, c->rbuf + pos, c->rlen - pos, &d)) > 0) {
		pos += (size_t)n;
		handle_frame(c, &d);
	}
	if (n < 0 && sv_live(c)) {
		sv_protocol_error(c, c->reader.err.reply_code, "%s", c->reader.err.reason);
		return;
	}
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
}

/*
 * Everything the transport has: what rbuf holds, then, for TLS, what the TLS object holds
 * decrypted into rbuf's room, as long as the consumers' bound allows (rbuf has room while
 * decoding goes on: a partial frame is smaller than frame_max, rcap is twice that).
 */
static void decode_all(salvo_client *c)
{
	salvo_error e;
	size_t got;

	frames(c); /* what was left undecoded first; and input_pending as of now */
	while (sv_live(c) && !c->input_pending) {
		if (sv_transport_more(c, &got, &e)) {
			sv_conn_fail(c, &e);
			return;
		}
		if (!got)
			return;
		frames(c);
	}
}

/*
 * A stream of deliveries: hold the next read for read_hold_us, so that a read brings a
 * couple of milliseconds of them and the consumer wakes once for them (a read of a few
 * messages cost a wake-up of this thread and one of the consumer, each dearer than the
 * messages; the consumer's acks ride along, park.c, for holds up to SV_PARK_SOON_NS). A
 * stream is a read of SV_HOLD_DELIVERIES or more: that many came while this thread
 * handled the last read, more than a consumer that waits for each message (an RPC reply,
 * a prefetch of 1) ever sees. The read after
 * one that filled its room counts with it (the broker's burst goes on). Not while the
 * room is full (more is waiting), and not when a channel nears its prefetch: the broker
 * then waits for acks, which would wait for the hold's end.
 */
static void hold_stream(salvo_client *c, size_t fresh)
{
	bool full = fresh >= c->recv_room;

	c->stream_deliveries = (c->stream_full ? c->stream_deliveries : 0) + c->batch_deliveries;
	c->stream_full = full;
	if (c->stream_deliveries < SV_HOLD_DELIVERIES || full || c->channels_near ||
	    c->close_req || !sv_recv_hold_ns(c) || sv_pubs_waiting(c) || !sv_live(c))
		return;
	c->recv_hold_until = c->last_recv_ns + sv_recv_hold_ns(c);
	sv_stat_add(&c->cctr.stream_holds, 1);
}

/*
 * A read of confirms armed at once after the one before: a sample of the rate acks come
 * at (io_pub.c's holds use it). The sums decay by an eighth per sample; a gap over
 * SV_ACK_GAP_MAX_NS (an idle time, reads held for the consumers' bound) is no sample.
 */
static void ack_sample(salvo_client *c, uint64_t confirms, uint64_t gap)
{
	if (gap > SV_ACK_GAP_MAX_NS)
		return;
	c->ack_read_confirms += confirms - c->ack_read_confirms / 8;
	c->ack_read_ns += gap - c->ack_read_ns / 8;
	c->ack_read_at = c->last_recv_ns;
	if (c->ack_read_samples < SV_ACK_SAMPLES)
		c->ack_read_samples++;
}

void sv_recv_unhold(salvo_client *c)
{
	if (!c->recv_hold_until)
		return;
	c->recv_hold_until = 0;
	c->recv_after_hold = true;
}

/*
 * Handle what a read brought (fresh bytes of it; 0 when decoding resumes after the
 * consumers drained, or for what a new TLS session already holds).
 */
void sv_decode_input(salvo_client *c, size_t fresh)
{
	uint64_t done0, done1, confirms, hold;

	c->batch_acks_only = true;
	c->batch_acks = false;
	c->batch_deliveries = 0;
	done0 = fresh ? sv_pubs_done_sum(c) : 0;
	decode_all(c);
	/* The read's last deliveries to the consumers' queues (one wake-up per batch). */
	sv_consumer_flush(c);
	/* One drain per publisher per read: a burst of acks wakes each producer once. */
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i]->drain_due)
			sv_pub_drain(c->pubs[i]);
	/* The rate acks come at: the confirms of the reads over the time since the read
	 * before each, the older reads weighing less (each sum loses an eighth per read), and
	 * not the reads after a hold (their gap measures the hold). One read alone misleads:
	 * a single ack after a pause while this thread sent a burst. */
	done1 = fresh ? sv_pubs_done_sum(c) : 0;
	confirms = done1 > done0 ? done1 - done0 : 0; /* a publisher may have gone */
	if (confirms && !c->recv_after_hold)
		ack_sample(c, confirms, c->last_recv_ns - c->prev_recv_ns);
	if (fresh)
		c->recv_after_hold = false;
	/* A small read of acks that no producer needs soon: let the next ones pile up in the
	 * socket for a moment instead of waking for every few (RabbitMQ acks a publishing
	 * stream in batches of about ten, and a wake-up costs more than ten publishes); how
	 * long, sv_pubs_hold_ns. Not after a read without an ack: a heartbeat alone, or no
	 * whole frame (the rest of a frame, or of a TLS record, may be what someone waits
	 * for). Not while a channel nears its prefetch (the broker may wait for its acks). */
	if (fresh && c->batch_acks_only && c->batch_acks && fresh < SV_RECV_HOLD_BYTES &&
	    !c->close_req && !c->channels_near && sv_live(c) && (hold = sv_pubs_hold_ns(c))) {
		c->recv_hold_until = c->last_recv_ns + hold;
		sv_stat_add(&c->ioctr.ack_holds, 1);
	} else if (fresh) {
		hold_stream(c, fresh);
	}
}

void sv_on_recv(salvo_client *c, int res)
{
	salvo_error e;

	c->recv_inflight = false;
	if (res <= 0) {
		if (!sv_live(c))
			return;
		if (res == 0)
			sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
				     "the broker closed the connection");
		else
			sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION, "recv: %s",
				     strerror(-res));
		sv_conn_fail(c, &e);
		return;
	}
	c->prev_recv_ns = c->last_recv_ns;
	c->last_recv_ns = sv_now_ns();
	if (sv_transport_received(c, (size_t)res, &e)) {
		sv_conn_fail(c, &e);
		return;
	}
	sv_decode_input(c, (size_t)res);
}
