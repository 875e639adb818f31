/* SPDX-License-Identifier: MIT */
/*
 * The AMQP 0-9-1 side of a sink connection: the handshake, the methods a publisher sends,
 * publishes validated frame by frame, and the injected faults.
 *
 * proto_input() is handed each read batch (the carried tail of the last read, then what
 * recv() returned) and parses frames in place: nothing is copied except a routing key that
 * changes, the one message --return-unroutable sends back, and an envelope's body that
 * comes in several frames (envelope.c). Other bodies are only counted, so a connection's
 * memory does not depend on message sizes beyond --envelope-max. Replies go to conn->out;
 * the worker sends them after the batch.
 *
 * At the end of each batch, batch.c sends what it owes: confirms and routing-key counts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink.h"
#include "table.h"

/* The largest method frame the sink sends: connection.start with its properties, or
 * basic.return and declare-ok with their 255-byte strings. */
#define METHOD_FRAME_MAX 1024

static uint8_t server_props_buf[512];
static struct sv_table server_props;
static _Atomic uint64_t generated_queues;

void proto_init(void)
{
	struct sv_table_writer w;
	struct sv_codec_error err;

	sv_table_writer_init(&w, server_props_buf, sizeof server_props_buf);
	sv_tw_str(&w, "product", "salvo-sink");
	sv_tw_str(&w, "version", SINK_VERSION);
	sv_tw_str(&w, "platform", "C11/Linux");
	sv_tw_str(&w, "information", "AMQP 0-9-1 sink for benchmarks and fault injection");
	/* Clients look here before using these features: pika refuses confirm_delivery()
	 * without publisher_confirms, and authentication_failure_close is what tells them a
	 * 403 close means a bad login. */
	sv_tw_table_begin(&w, "capabilities");
	sv_tw_bool(&w, "publisher_confirms", true);
	sv_tw_bool(&w, "basic.nack", true);
	sv_tw_bool(&w, "exchange_exchange_bindings", true);
	sv_tw_bool(&w, "consumer_cancel_notify", true);
	sv_tw_bool(&w, "connection.blocked", true);
	sv_tw_bool(&w, "authentication_failure_close", true);
	sv_tw_bool(&w, "per_consumer_qos", true);
	sv_tw_table_end(&w);
	if (sv_table_writer_finish(&w, &server_props, &err))
		die("server properties: %s", err.reason);
}

/* Output. */

void proto_put_method(struct buf *b, uint16_t channel, const struct sv_method *m)
{
	struct sv_codec_error err;
	size_t n = sv_frame_put_method(buf_reserve(b, METHOD_FRAME_MAX), METHOD_FRAME_MAX, channel,
				       m, &err);

	/* The sink encodes only its own replies, whose strings it bounds: a failure is a bug. */
	if (!n)
		die("encoding %s: %s", sv_method_name(m->id), err.reason);
	b->len += n;
}

/* A method without arguments, or whose arguments may all be zero and empty. */
static void reply(struct conn *c, uint16_t channel, uint32_t id)
{
	struct sv_method m = {.id = id};

	proto_put_method(&c->out, channel, &m);
}

static void reply_unless(struct conn *c, uint16_t channel, bool nowait, uint32_t id)
{
	if (!nowait)
		reply(c, channel, id);
}

void proto_put_heartbeat(struct conn *c)
{
	sv_frame_put_heartbeat(buf_reserve(&c->out, SV_HEARTBEAT_FRAME_SIZE));
	c->out.len += SV_HEARTBEAT_FRAME_SIZE;
}

static struct sv_bytes shortstr(const char *s)
{
	size_t n = strlen(s);

	return (struct sv_bytes){(const uint8_t *)s,
				 (uint32_t)(n > SV_SHORTSTR_MAX ? SV_SHORTSTR_MAX : n)};
}

static bool bytes_eq(struct sv_bytes b, const char *s)
{
	return b.len == strlen(s) && !memcmp(b.ptr, s, b.len);
}

static uint32_t frame_method(const struct sv_decoded_frame *d)
{
	return d->frame.type == SV_FRAME_METHOD ? d->u.method.id : 0;
}

/* "basic.publish", "a content header frame": what a log line or a reply text calls it. */
static const char *frame_name(const struct sv_decoded_frame *d)
{
	const char *name;

	switch (d->frame.type) {
	case SV_FRAME_METHOD:
		name = sv_method_name(d->u.method.id);
		return name ? name : "an unknown method";
	case SV_FRAME_HEADER:
		return "a content header frame";
	case SV_FRAME_BODY:
		return "a content body frame";
	default:
		return "a heartbeat frame";
	}
}

/* "UNEXPECTED_FRAME - reason", as RabbitMQ words its reply texts. */
static void reply_text(char *text, size_t cap, uint16_t code, const char *fmt, va_list ap)
{
	const char *name = sv_reply_code_name(code);
	int n = snprintf(text, cap, "%s - ", name ? name : "ERROR");

	vsnprintf(text + n, cap - (size_t)n, fmt, ap);
}

/* Closing. */

static void drain(struct conn *c)
{
	c->state = CONN_DRAIN;
	c->deadline_ms = c->w->now_ms + SINK_CLOSE_TIMEOUT_MS;
	conn_wake_at(c, c->deadline_ms);
}

/* connection.close from the sink: a protocol error, a refused login, --close-after. */
static void __attribute__((format(printf, 4, 5)))
close_connection(struct conn *c, uint16_t code, uint32_t method, const char *fmt, ...)
{
	char text[SV_SHORTSTR_MAX + 1];
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};
	va_list ap;

	va_start(ap, fmt);
	reply_text(text, sizeof text, code, fmt, ap);
	va_end(ap);
	conn_log(c, "closing the connection: %u %s", code, text);
	/* Messages completed before the error are confirmed first: after connection.close
	 * nothing else may be sent. Delayed confirms are dropped with the connection. */
	if (c->state == CONN_RUNNING)
		batch_end(c);
	c->held.off = c->held.len = 0;
	m.a.connection_close = (struct sv_connection_close){
	    code, shortstr(text), (uint16_t)(method >> 16), (uint16_t)method};
	proto_put_method(&c->out, 0, &m);
	c->state = CONN_CLOSING;
	c->deadline_ms = c->w->now_ms + SINK_CLOSE_TIMEOUT_MS;
	conn_wake_at(c, c->deadline_ms);
}

static void free_channel(struct conn *c, struct channel *ch)
{
	c->ch[ch->id] = NULL;
	buf_free(&ch->ret);
	buf_free(&ch->env_body);
	free(ch);
}

/* channel.close from the sink: the channel's error, the connection goes on. */
static void __attribute__((format(printf, 5, 6)))
close_channel(struct conn *c, struct channel *ch, uint16_t code, uint32_t method, const char *fmt,
	      ...)
{
	char text[SV_SHORTSTR_MAX + 1];
	struct sv_method m = {.id = SV_CHANNEL_CLOSE};
	va_list ap;

	va_start(ap, fmt);
	reply_text(text, sizeof text, code, fmt, ap);
	va_end(ap);
	conn_log(c, "closing channel %u: %u %s", ch->id, code, text);
	batch_settle_channel(c, ch);
	/* Held confirms of this channel must not follow its close; releasing all of them
	 * early is simpler than picking them out, and closing channels is rare. */
	batch_release_held(c, INT64_MAX);
	m.a.channel_close = (struct sv_channel_close){code, shortstr(text),
						      (uint16_t)(method >> 16), (uint16_t)method};
	proto_put_method(&c->out, ch->id, &m);
	ch->closing = true;
}

/* Handshake. */

static bool sasl_plain(struct sv_bytes r, struct sv_bytes *user, struct sv_bytes *pass)
{
	/* RFC 4616: [authzid] NUL authcid NUL passwd */
	const uint8_t *nul1 = memchr(r.ptr, 0, r.len), *nul2;

	if (!nul1)
		return false;
	nul2 = memchr(nul1 + 1, 0, r.len - (uint32_t)(nul1 + 1 - r.ptr));
	if (!nul2)
		return false;
	*user = (struct sv_bytes){nul1 + 1, (uint32_t)(nul2 - nul1 - 1)};
	*pass = (struct sv_bytes){nul2 + 1, r.len - (uint32_t)(nul2 + 1 - r.ptr)};
	return true;
}

/* AMQPLAIN: the response is a field table's contents holding LOGIN and PASSWORD. */
static bool sasl_amqplain(struct sv_bytes r, struct sv_bytes *user, struct sv_bytes *pass)
{
	struct sv_table t = {r.ptr, r.len};
	struct sv_codec_error err;
	struct sv_field f;

	if (sv_table_validate(r.ptr, r.len, &err))
		return false;
	if (!sv_table_find(t, "LOGIN", &f) || f.type != SV_FIELD_LONGSTR)
		return false;
	*user = f.v.str;
	if (!sv_table_find(t, "PASSWORD", &f) || f.type != SV_FIELD_LONGSTR)
		return false;
	*pass = f.v.str;
	return true;
}

static void start_ok(struct conn *c, const struct sv_connection_start_ok *so)
{
	struct sv_bytes user = {NULL, 0}, pass = {NULL, 0};
	bool parsed;
	struct sv_method m = {
	    .id = SV_CONNECTION_TUNE,
	    .a.connection_tune = {SINK_CHANNEL_MAX, sink_opts.frame_max, sink_opts.heartbeat},
	};

	if (bytes_eq(so->mechanism, "PLAIN")) {
		parsed = sasl_plain(so->response, &user, &pass);
	} else if (bytes_eq(so->mechanism, "AMQPLAIN")) {
		parsed = sasl_amqplain(so->response, &user, &pass);
	} else {
		close_connection(c, 503, SV_CONNECTION_START_OK,
				 "unknown authentication mechanism '%.*s'",
				 (int)(so->mechanism.len > 64 ? 64 : so->mechanism.len),
				 (const char *)so->mechanism.ptr);
		return;
	}
	/* Without --user/--password anyone is welcome, even with a malformed response. */
	if ((sink_opts.user || sink_opts.password) &&
	    (!parsed || (sink_opts.user && !bytes_eq(user, sink_opts.user)) ||
	     (sink_opts.password && !bytes_eq(pass, sink_opts.password)))) {
		close_connection(c, 403, 0, "login refused for user '%.*s' (mechanism %.*s)",
				 (int)(user.len > 64 ? 64 : user.len), (const char *)user.ptr,
				 (int)so->mechanism.len, (const char *)so->mechanism.ptr);
		return;
	}
	proto_put_method(&c->out, 0, &m);
	c->state = CONN_TUNE_OK;
}

/* Like RabbitMQ: the client may lower our limits, not raise them, and 0 ("no limit") is a
 * raise. */
static void tune_ok(struct conn *c, const struct sv_connection_tune_ok *t)
{
	if (!t->channel_max || t->channel_max > SINK_CHANNEL_MAX) {
		close_connection(c, 530, SV_CONNECTION_TUNE_OK,
				 "negotiated channel_max %u is above the maximum %u",
				 t->channel_max, SINK_CHANNEL_MAX);
		return;
	}
	if (!t->frame_max || t->frame_max > sink_opts.frame_max) {
		close_connection(c, 530, SV_CONNECTION_TUNE_OK,
				 "negotiated frame_max %u is above the maximum %u", t->frame_max,
				 sink_opts.frame_max);
		return;
	}
	if (t->frame_max < SV_FRAME_MIN_SIZE) {
		close_connection(c, 530, SV_CONNECTION_TUNE_OK,
				 "negotiated frame_max %u is below the minimum %u", t->frame_max,
				 SV_FRAME_MIN_SIZE);
		return;
	}
	c->channel_max = t->channel_max;
	c->frame_max = t->frame_max;
	c->heartbeat = t->heartbeat;
	c->state = CONN_OPEN;
}

static void connection_open(struct conn *c)
{
	c->ch = calloc((size_t)c->channel_max + 1, sizeof *c->ch);
	c->dirty = calloc((size_t)c->channel_max + 1, sizeof *c->dirty);
	if (!c->ch || !c->dirty)
		die("out of memory");
	reply(c, 0, SV_CONNECTION_OPEN_OK);
	c->state = CONN_RUNNING;
	c->deadline_ms = 0;
}

/* The client's connection.close: answer, and wait for it to hang up. */
static void client_closed(struct conn *c)
{
	if (c->state == CONN_RUNNING)
		batch_end(c);
	reply(c, 0, SV_CONNECTION_CLOSE_OK);
	drain(c);
}

static void handshake_frame(struct conn *c, const struct sv_decoded_frame *d)
{
	static const uint32_t expected[] = {
	    [CONN_START_OK] = SV_CONNECTION_START_OK,
	    [CONN_TUNE_OK] = SV_CONNECTION_TUNE_OK,
	    [CONN_OPEN] = SV_CONNECTION_OPEN,
	};
	uint32_t want = expected[c->state];
	const struct sv_method *m = &d->u.method;

	if (d->frame.type != SV_FRAME_METHOD || d->frame.channel != 0)
		close_connection(c, 503, frame_method(d), "expected %s, got %s on channel %u",
				 sv_method_name(want), frame_name(d), d->frame.channel);
	else if (m->id == SV_CONNECTION_CLOSE)
		client_closed(c);
	else if (m->id != want)
		close_connection(c, 503, m->id, "expected %s, got %s", sv_method_name(want),
				 frame_name(d));
	else if (m->id == SV_CONNECTION_START_OK)
		start_ok(c, &m->a.connection_start_ok);
	else if (m->id == SV_CONNECTION_TUNE_OK)
		tune_ok(c, &m->a.connection_tune_ok);
	else
		connection_open(c);
}

/* After our connection.close only close-ok (or the client's own close) matters. Frames
 * are only looked at, not decoded: the one that made us close may not decode. */
static void closing_frame(struct conn *c, const struct sv_frame *f)
{
	struct sv_method m;
	struct sv_codec_error err;

	if (f->type != SV_FRAME_METHOD || f->channel != 0 ||
	    sv_method_decode(f->payload, f->size, &m, &err))
		return;
	if (m.id == SV_CONNECTION_CLOSE)
		reply(c, 0, SV_CONNECTION_CLOSE_OK);
	if (m.id == SV_CONNECTION_CLOSE || m.id == SV_CONNECTION_CLOSE_OK)
		drain(c);
}

/* Channel 0 once the connection is open. */
static void connection_frame(struct conn *c, const struct sv_decoded_frame *d)
{
	struct sv_method m = {.id = SV_CONNECTION_UPDATE_SECRET_OK};

	if (d->frame.type != SV_FRAME_METHOD)
		close_connection(c, 505, 0, "%s on channel 0", frame_name(d));
	else if (d->u.method.id == SV_CONNECTION_CLOSE)
		client_closed(c);
	else if (d->u.method.id == SV_CONNECTION_UPDATE_SECRET)
		proto_put_method(&c->out, 0, &m);
	else
		close_connection(c, 503, d->u.method.id, "%s on channel 0 is not allowed",
				 frame_name(d));
}

/* Channels. */

static void open_channel(struct conn *c, uint16_t id)
{
	struct channel *ch = calloc(1, sizeof *ch);

	if (!ch)
		die("out of memory");
	ch->id = id;
	sv_content_init(&ch->content);
	c->ch[id] = ch;
	reply(c, id, SV_CHANNEL_OPEN_OK);
}

/* After our channel.close, everything on the channel is discarded until close-ok. */
static void closing_channel_frame(struct conn *c, struct channel *ch,
				  const struct sv_decoded_frame *d)
{
	uint32_t id = frame_method(d);

	if (id == SV_CHANNEL_CLOSE)
		reply(c, ch->id, SV_CHANNEL_CLOSE_OK);
	if (id == SV_CHANNEL_CLOSE || id == SV_CHANNEL_CLOSE_OK)
		free_channel(c, ch);
}

/* Queue names are short strings, so the generated ones fit in a short buffer. */
static struct sv_bytes queue_name(struct sv_bytes name, char *gen, size_t cap)
{
	if (name.len)
		return name;
	snprintf(gen, cap, "sink.gen-%llu", (unsigned long long)++generated_queues);
	return shortstr(gen);
}

static uint32_t clamp32(uint64_t n)
{
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static void queue_method(struct conn *c, struct channel *ch, const struct sv_method *in)
{
	struct sv_method m = {.id = in->id + 1}; /* every queue method's -ok follows it */
	char gen[32];
	struct sv_bytes name;

	batch_flush_counts(c);
	switch (in->id) {
	case SV_QUEUE_DECLARE:
		name = queue_name(in->a.queue_declare.queue, gen, sizeof gen);
		m.a.queue_declare_ok.queue = name;
		m.a.queue_declare_ok.message_count = clamp32(counts_get(name.ptr, name.len, false));
		if (!in->a.queue_declare.nowait)
			proto_put_method(&c->out, ch->id, &m);
		break;
	case SV_QUEUE_PURGE:
		name = in->a.queue_purge.queue;
		m.a.queue_purge_ok.message_count = clamp32(counts_get(name.ptr, name.len, true));
		if (!in->a.queue_purge.nowait)
			proto_put_method(&c->out, ch->id, &m);
		break;
	default: /* SV_QUEUE_DELETE */
		name = in->a.queue_delete.queue;
		m.a.queue_delete_ok.message_count = clamp32(counts_get(name.ptr, name.len, true));
		if (!in->a.queue_delete.nowait)
			proto_put_method(&c->out, ch->id, &m);
	}
}

/* A method without content on an open channel. */
static void channel_method(struct conn *c, struct channel *ch, const struct sv_method *m)
{
	struct sv_method r = {.id = m->id + 1}; /* every reply here is its request's id + 1 */
	uint16_t id = ch->id;

	switch (m->id) {
	case SV_CHANNEL_OPEN:
		close_connection(c, 504, m->id, "channel %u is already open", id);
		break;
	case SV_CHANNEL_CLOSE:
		/* Confirms still owed go out before close-ok; the client discards them. */
		batch_settle_channel(c, ch);
		batch_release_held(c, INT64_MAX);
		reply(c, id, SV_CHANNEL_CLOSE_OK);
		free_channel(c, ch);
		break;
	case SV_CHANNEL_FLOW:
		r.a.channel_flow_ok.active = m->a.channel_flow.active;
		proto_put_method(&c->out, id, &r);
		break;
	case SV_EXCHANGE_DECLARE:
		reply_unless(c, id, m->a.exchange_declare.nowait, SV_EXCHANGE_DECLARE_OK);
		break;
	case SV_EXCHANGE_DELETE:
		reply_unless(c, id, m->a.exchange_delete.nowait, SV_EXCHANGE_DELETE_OK);
		break;
	case SV_EXCHANGE_BIND:
		reply_unless(c, id, m->a.exchange_bind.nowait, SV_EXCHANGE_BIND_OK);
		break;
	case SV_EXCHANGE_UNBIND:
		reply_unless(c, id, m->a.exchange_unbind.nowait, SV_EXCHANGE_UNBIND_OK);
		break;
	case SV_QUEUE_DECLARE:
	case SV_QUEUE_PURGE:
	case SV_QUEUE_DELETE:
		queue_method(c, ch, m);
		break;
	case SV_QUEUE_BIND:
		reply_unless(c, id, m->a.queue_bind.nowait, SV_QUEUE_BIND_OK);
		break;
	case SV_QUEUE_UNBIND:
		reply(c, id, SV_QUEUE_UNBIND_OK);
		break;
	case SV_BASIC_QOS:
		reply(c, id, SV_BASIC_QOS_OK);
		break;
	case SV_BASIC_GET:
		reply(c, id, SV_BASIC_GET_EMPTY);
		break;
	case SV_BASIC_CANCEL:
		r.a.basic_cancel_ok.consumer_tag = m->a.basic_cancel.consumer_tag;
		if (!m->a.basic_cancel.nowait)
			proto_put_method(&c->out, id, &r);
		break;
	case SV_BASIC_RECOVER:
		reply(c, id, SV_BASIC_RECOVER_OK);
		break;
	case SV_BASIC_RECOVER_ASYNC:
		break;
	case SV_BASIC_ACK:
	case SV_BASIC_NACK:
	case SV_BASIC_REJECT:
		/* The three put the delivery tag first: the sink never delivers, so it is
		 * unknown whatever it is. */
		close_channel(c, ch, 406, m->id, "unknown delivery tag %llu",
			      (unsigned long long)m->a.basic_ack.delivery_tag);
		break;
	case SV_CONFIRM_SELECT:
		if (ch->tx) {
			close_channel(c, ch, 406, m->id,
				      "a transactional channel cannot be put into confirm mode");
			break;
		}
		ch->confirm = true;
		reply_unless(c, id, m->a.confirm_select.nowait, SV_CONFIRM_SELECT_OK);
		break;
	case SV_TX_SELECT:
		if (ch->confirm) {
			close_channel(c, ch, 406, m->id,
				      "a channel in confirm mode cannot be made transactional");
			break;
		}
		ch->tx = true;
		reply(c, id, SV_TX_SELECT_OK);
		break;
	case SV_TX_COMMIT:
	case SV_TX_ROLLBACK:
		if (ch->tx)
			reply(c, id, m->id + 1);
		else
			close_channel(c, ch, 406, m->id, "channel %u is not transactional", id);
		break;
	case SV_BASIC_CONSUME:
		close_connection(c, 540, m->id, "salvo-sink has no consumers");
		break;
	default:
		/* connection.* off channel 0, and what only servers send (deliver, *-ok). */
		close_connection(c, 503, m->id, "%s is not allowed from a client on channel %u",
				 sv_method_name(m->id), id);
	}
}

/* Publishes. */

static void publish_method(struct conn *c, struct channel *ch, const struct sv_method *m)
{
	const struct sv_basic_publish *p = &m->a.basic_publish;
	const char *rkey = sink_opts.return_key;

	/* The content-bearing methods other than publish are the server's. */
	if (m->id != SV_BASIC_PUBLISH) {
		close_connection(c, 503, m->id, "%s is sent by servers, not clients",
				 sv_method_name(m->id));
		return;
	}
	/* RabbitMQ dropped immediate in 3.0 and refuses it the same way. */
	if (p->immediate) {
		close_connection(c, 540, m->id, "immediate=true");
		return;
	}
	if (p->routing_key.len != ch->key_len || memcmp(p->routing_key.ptr, ch->key, ch->key_len)) {
		batch_flush_key(ch);
		ch->key_len = (uint8_t)p->routing_key.len;
		memcpy(ch->key, p->routing_key.ptr, ch->key_len);
	}
	ch->returning = rkey && p->mandatory && bytes_eq(p->routing_key, rkey);
	if (ch->returning) {
		struct sv_method r = {
		    .id = SV_BASIC_RETURN,
		    .a.basic_return = {312, SV_BYTES("NO_ROUTE"), p->exchange, p->routing_key},
		};

		ch->ret.off = ch->ret.len = 0;
		proto_put_method(&ch->ret, ch->id, &r);
	}
}

static void publish_header(struct conn *c, struct channel *ch, const struct sv_decoded_frame *d)
{
	ch->body_size = d->u.header.body_size;
	envelope_header(ch, &d->u.header.props, ch->body_size);
	if (!ch->returning)
		return;
	if (ch->body_size > SINK_RETURN_MAX) {
		close_channel(c, ch, 406, SV_BASIC_PUBLISH,
			      "message of %llu bytes is too large to return (limit %u)",
			      (unsigned long long)ch->body_size, SINK_RETURN_MAX);
		return;
	}
	/* The header and body frames go back as they came: same channel, and sizes the
	 * client itself chose under the negotiated frame_max. */
	buf_put(&ch->ret, d->frame.payload - SV_FRAME_HEADER_SIZE,
		d->frame.size + SV_FRAME_OVERHEAD);
}

static void publish_body(struct channel *ch, const struct sv_decoded_frame *d, bool last)
{
	envelope_body(ch, d->frame.payload, d->frame.size, last);
	if (ch->returning)
		buf_put(&ch->ret, d->frame.payload - SV_FRAME_HEADER_SIZE,
			d->frame.size + SV_FRAME_OVERHEAD);
}

static void publish_done(struct conn *c, struct channel *ch)
{
	uint64_t n = ++c->msgs;

	c->batch_msgs++;
	c->batch_bytes += ch->body_size;
	c->batch_records += envelope_done(c, ch);
	if (ch->returning) {
		/* Before the message's confirm, which waits for the end of the batch. */
		buf_put(&c->out, ch->ret.p, ch->ret.len);
		if (ch->ret.cap > SINK_RETURN_KEEP)
			buf_free(&ch->ret);
	} else {
		ch->key_pending++;
	}
	if (ch->confirm)
		ch->tag++;
	if (!ch->dirty) {
		ch->dirty = true;
		c->dirty[c->ndirty++] = ch->id;
	}

	if (n == sink_opts.drop_after) {
		conn_log(c, "resetting the connection after %llu messages", (unsigned long long)n);
		conn_drop(c);
	} else if (n == sink_opts.close_after) {
		close_connection(c, 320, 0, "closed by salvo-sink after %llu messages",
				 (unsigned long long)n);
	} else if (n == sink_opts.stall_after) {
		conn_log(c, "no longer reading after %llu messages", (unsigned long long)n);
		batch_end(c);
		c->state = CONN_STALLED;
	}
}

/* One frame of an open connection, on a channel other than 0. */
static void channel_frame(struct conn *c, const struct sv_decoded_frame *d)
{
	uint16_t id = d->frame.channel;
	struct sv_codec_error err;
	struct channel *ch;
	int ev;

	if (id > c->channel_max) {
		close_connection(c, 504, frame_method(d), "%s on channel %u, above channel_max %u",
				 frame_name(d), id, c->channel_max);
		return;
	}
	ch = c->ch[id];
	if (!ch && frame_method(d) == SV_CHANNEL_OPEN) {
		open_channel(c, id);
		return;
	}
	if (!ch) {
		close_connection(c, 504, frame_method(d), "%s on channel %u, which is not open",
				 frame_name(d), id);
		return;
	}
	if (ch->closing) {
		closing_channel_frame(c, ch, d);
		return;
	}

	ev = sv_content_feed(&ch->content, d, &err);
	if (ev < 0) {
		close_connection(c, err.reply_code, frame_method(d), "%s", err.reason);
		return;
	}
	if (ev == SV_CONTENT_METHOD) {
		channel_method(c, ch, &d->u.method);
		return;
	}
	if (d->frame.type == SV_FRAME_METHOD)
		publish_method(c, ch, &d->u.method);
	else if (d->frame.type == SV_FRAME_HEADER)
		publish_header(c, ch, d);
	else
		publish_body(ch, d, ev == SV_CONTENT_COMPLETE);
	if (ev == SV_CONTENT_COMPLETE && c->state == CONN_RUNNING && !ch->closing)
		publish_done(c, ch);
}

static bool parsing(const struct conn *c)
{
	return c->state >= CONN_START_OK && c->state <= CONN_RUNNING;
}

size_t proto_input(struct conn *c, uint8_t *buf, size_t len)
{
	size_t off = 0;

	if (c->state == CONN_HEADER) {
		struct sv_method m = {
		    .id = SV_CONNECTION_START,
		    .a.connection_start = {0, 9, server_props, SV_BYTES("PLAIN AMQPLAIN"),
					   SV_BYTES("en_US")},
		};

		if (len < sizeof sv_protocol_header)
			return 0;
		if (memcmp(buf, sv_protocol_header, sizeof sv_protocol_header)) {
			/* The spec's answer to a version we do not speak: ours, then close. */
			conn_log(c, "not an AMQP 0-9-1 protocol header; answering with ours");
			buf_put(&c->out, sv_protocol_header, sizeof sv_protocol_header);
			drain(c);
			return len;
		}
		proto_put_method(&c->out, 0, &m);
		c->state = CONN_START_OK;
		off = sizeof sv_protocol_header;
	}

	while (parsing(c) || c->state == CONN_CLOSING) {
		struct sv_decoded_frame d;
		struct sv_codec_error err;
		ssize_t n;

		if (c->state == CONN_CLOSING)
			n = sv_frame_parse(buf + off, len - off, c->frame_max, &d.frame, &err);
		else
			n = sv_frame_decode(buf + off, len - off, c->frame_max, &d, &err);
		if (n == 0)
			break;
		if (n < 0 && c->state == CONN_CLOSING) {
			drain(c); /* what follows cannot be framed: wait for the hang-up */
			break;
		}
		if (n < 0) {
			/* The closing state looks at this same frame again: if only its
			 * contents were bad, its envelope still gets us past it. */
			close_connection(c, err.reply_code,
					 ((uint32_t)err.class_id << 16) | err.method_id, "%s",
					 err.reason);
			continue;
		}
		off += (size_t)n;
		if (d.frame.type == SV_FRAME_HEARTBEAT)
			continue;
		if (c->state == CONN_CLOSING)
			closing_frame(c, &d.frame);
		else if (c->state != CONN_RUNNING)
			handshake_frame(c, &d);
		else if (d.frame.channel)
			channel_frame(c, &d);
		else
			connection_frame(c, &d);
	}
	if (c->state == CONN_RUNNING)
		batch_end(c);
	/* Once a connection stops parsing, the rest of its input is of no use. */
	return parsing(c) || c->state == CONN_CLOSING ? off : len;
}

void proto_free(struct conn *c)
{
	if (c->ch)
		for (uint32_t i = 0; i <= c->channel_max; i++)
			if (c->ch[i])
				free_channel(c, c->ch[i]);
	free(c->ch);
	free(c->dirty);
	buf_free(&c->out);
	buf_free(&c->held);
}
