/* SPDX-License-Identifier: MIT */
/*
 * What every part of the I/O thread may do to the connection and its channels: queue a
 * control frame, record that the connection has ended (the loop acts on it), tell the
 * broker it broke the protocol, and end a channel for its application handle.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "io_internal.h"

/* Control frames queued while a send is in flight go to out_next, so the kernel never reads
 * a buffer that moves. */
int sv_out_append(salvo_client *c, const uint8_t *p, size_t n)
{
	uint8_t **buf = c->send_inflight ? &c->out_next : &c->out;
	size_t *len = c->send_inflight ? &c->out_next_len : &c->out_len;
	size_t *cap = c->send_inflight ? &c->out_next_cap : &c->out_cap;

	if (*cap - *len < n) {
		size_t want = *cap ? *cap : 4096;
		while (want - *len < n)
			want *= 2;
		uint8_t *nb = realloc(*buf, want);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

bool sv_live(salvo_client *c)
{
	int state = atomic_load(&c->state);

	return !c->end_pending && (state == SV_CONN_OPEN || state == SV_CONN_CLOSING);
}

/*
 * Send a connection-level method right away, bypassing the ring, as the connection is
 * about to be shut. Best effort, and only between frames: never behind a send in flight
 * or into a frame a short write cut.
 */
void sv_send_now(salvo_client *c, const struct sv_method *m)
{
	uint8_t buf[512];
	struct sv_codec_error cerr;
	size_t n;

	if (c->send_inflight || c->partial_out || c->partial_pub || sv_transport_staged(c))
		return;
	n = sv_frame_put_method(buf, sizeof buf, 0, m, &cerr);
	if (!n)
		return;
	sv_transport_send_now(c, buf, n);
}

void sv_send_method(salvo_client *c, uint16_t channel, const struct sv_method *m)
{
	uint8_t buf[1024];
	struct sv_codec_error cerr;
	size_t n = sv_frame_put_method(buf, sizeof buf, channel, m, &cerr);

	/* Only small fixed-shape methods (close, close-ok, flow-ok) are built here. */
	if (!n || sv_out_append(c, buf, n)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "cannot queue %s: %s", sv_method_name(m->id), n ? "out of memory" : cerr.reason);
		sv_conn_fail(c, &e);
	}
}

void sv_redact_secrets(const salvo_client *c, char *text)
{
	sv_redact(text, c->set.conf.password);
	sv_redact(text, c->creds.password);
}

/* An error the broker sent in channel.close or connection.close. */
void sv_broker_error(const salvo_client *c, salvo_error *e, salvo_error_kind kind, uint16_t code,
		     struct sv_bytes text, uint16_t class_id, uint16_t method_id)
{
	char t[sizeof e->text];

	sv_text_escape(t, sizeof t, text.ptr, text.len);
	sv_redact_secrets(c, t);
	/* A close without a code would read as success. */
	sv_error_set(e, code ? code : SALVO_ERR_PROTOCOL, kind, "%s", t);
	sv_error_set_reply(e, code, class_id, method_id);
}

/*
 * Ending is recorded here and done by the loop (recover.c, sv_teardown) between two turns,
 * as redis frees a client in beforeSleep: a handler deep in a read may fail the connection
 * and go on returning through code that still uses the channel table, the requests and
 * the buffers. From here on sv_live is false, so nothing more is read, sent or handled.
 */
static void record_end(salvo_client *c, const salvo_error *why, enum sv_end_kind kind)
{
	if (!sv_live(c))
		return;
	c->end_pending = true;
	c->end_kind = kind;
	if (why)
		c->end_why = *why;
	else
		memset(&c->end_why, 0, sizeof c->end_why);
}

void sv_conn_fail(salvo_client *c, const salvo_error *why)
{
	record_end(c, why, SV_END_FAILED);
}

void sv_conn_fail_final(salvo_client *c, const salvo_error *why)
{
	record_end(c, why, SV_END_FINAL);
}

void sv_conn_closed(salvo_client *c)
{
	record_end(c, NULL, SV_END_CLOSED);
}

/* The broker broke the protocol: tell it why (best effort) and end the connection. */
void sv_protocol_error(salvo_client *c, uint16_t code, const char *fmt, ...)
{
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};
	salvo_error e;
	va_list ap;

	memset(&e, 0, sizeof e);
	e.status = SALVO_ERR_PROTOCOL;
	e.kind = SALVO_ERROR_CONNECTION;
	e.reply_code = code;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	m.a.connection_close.reply_code = code;
	m.a.connection_close.reply_text =
		(struct sv_bytes){(const uint8_t *)e.text, (uint32_t)strnlen(e.text, 255)};
	if (sv_live(c) && sv_log_enabled(&c->set.log, SALVO_LOG_ERR)) {
		char line[512];

		sv_log(&c->set.log, SALVO_LOG_ERR, "protocol",
		       "closing the connection: %s",
		       salvo_error_format(&e, line, sizeof line));
	}
	sv_send_now(c, &m);
	sv_conn_fail(c, &e);
}

/* The connection's loss as a channel or a request sees it: closed, with the cause's text. */
salvo_error sv_lost_error(const salvo_client *c)
{
	salvo_error e = c->lost;

	e.status = SALVO_ERR_CLOSED;
	e.kind = SALVO_ERROR_CONNECTION;
	return e;
}

void sv_channel_await(salvo_channel *ch, struct sv_request *req)
{
	CK_STAILQ_INSERT_TAIL(&ch->await, req, link);
}

struct sv_request *sv_channel_own_request(salvo_client *c, salvo_channel *ch,
					  const struct sv_method *m, uint32_t reply_id,
					  sv_reply_fn on_reply, struct salvo_publisher *pub)
{
	struct sv_request *req = sv_request_new(SV_REQ_METHOD);
	struct sv_codec_error cerr;
	uint8_t buf[512]; /* fixed fields and a short string or two: no tables */
	size_t n = sv_frame_put_method(buf, sizeof buf, ch->id, m, &cerr);

	if (!req || !n || sv_out_append(c, buf, n)) {
		free(req);
		return NULL;
	}
	atomic_store(&req->refs, 1); /* nobody waits for it */
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	req->ch = ch;
	req->reply_id = reply_id;
	req->on_reply = on_reply;
	req->pub = pub;
	sv_channel_await(ch, req);
	return req;
}

/* A message arriving on ch will not be finished: drop it, and fail its basic.get. */
void sv_drop_incoming(salvo_channel *ch, const salvo_error *why)
{
	sv_delivery_free(ch->incoming);
	ch->incoming = NULL;
	if (ch->incoming_req) {
		sv_request_complete(ch->incoming_req, why->status, why);
		ch->incoming_req = NULL;
	}
}

void sv_conn_fail_awaiting(salvo_client *c, const salvo_error *why)
{
	struct sv_request *req;

	while ((req = CK_STAILQ_FIRST(&c->await0))) {
		CK_STAILQ_REMOVE_HEAD(&c->await0, link);
		sv_request_complete(req, why->status, why);
	}
}

void sv_fail_awaiting(salvo_channel *ch, const salvo_error *why)
{
	struct sv_request *req;

	sv_drop_incoming(ch, why);
	while ((req = CK_STAILQ_FIRST(&ch->await))) {
		CK_STAILQ_REMOVE_HEAD(&ch->await, link);
		sv_request_complete(req, why->status, why);
	}
}

/* The channel has ended: so have its consumers, once their queued messages are taken. */
void sv_end_consumers(salvo_channel *ch, const salvo_error *why)
{
	struct salvo_consumer *cons;

	ch->incoming_to = NULL;
	while ((cons = ch->consumers)) {
		ch->consumers = cons->next;
		sv_consumer_end(cons, why);
		sv_consumer_put(cons);
	}
}

/* The channel is closed for its application handle: record why, publish, fail waiters. */
void sv_channel_mark_closed(salvo_channel *ch, const salvo_error *why)
{
	if (atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED)
		return;
	ch->error = *why;
	/* Release: a thread that sees CLOSED also sees error. */
	atomic_store_explicit(&ch->state, SV_CH_CLOSED, memory_order_release);
	sv_end_consumers(ch, why);
	/* Its ring is discarded by settle_pubs once nothing of it is in flight; a producer
	 * blocked on a full ring learns of the close now. */
	if (ch->pub)
		sv_ring_interrupt(&ch->pub->ring);
}

/* Both sides are done with the channel number: drop the table's reference. */
void sv_channel_forget(salvo_client *c, salvo_channel *ch)
{
	sv_prefetch_clear(c, ch);
	c->channels[ch->id] = NULL;
	sv_channel_id_free(c, ch->id);
	sv_channel_put(ch);
}
