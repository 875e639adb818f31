/* SPDX-License-Identifier: MIT */
/*
 * Channels and their synchronous methods: each call encodes its method on the caller's
 * thread, hands the frame to the I/O thread and waits for the reply (or the broker's
 * channel.close) at most rpc_timeout. A nowait method (SALVO_NOWAIT, the *_nowait binds)
 * sets the method's no-wait bit and asks for no reply: its request completes once the
 * I/O thread has queued the frame, and a refusal comes back as the channel's error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "props.h"

static int invalid(salvo_error *err, const char *what)
{
	sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s", what);
	return SALVO_ERR_INVALID_ARGUMENT;
}

/* The error that closed ch (acquire: pairs with the I/O thread's release of state). */
static int channel_closed_error(salvo_channel *ch, salvo_error *err)
{
	if (atomic_load_explicit(&ch->state, memory_order_acquire) != SV_CH_CLOSED)
		return 0;
	sv_error_copy(err, &ch->error);
	return ch->error.status;
}

/*
 * Send m on ch and wait for reply_id. On success *out (if given) holds the completed
 * request, for its reply fields; the caller puts it. A basic.consume carries its consumer
 * (one reference, the request's once submitted).
 */
static int channel_rpc(salvo_channel *ch, struct sv_method *m, const struct sv_rpc *rpc,
		       struct salvo_consumer *consumer, struct sv_request **out, bool *submitted,
		       int timeout_ms, salvo_error *err)
{
	salvo_client *c = ch->client;
	struct sv_codec_error cerr;
	struct sv_request *req;
	size_t cap = 1024;
	int rc;

	rc = channel_closed_error(ch, err);
	if (rc)
		return rc;
	/* Room for the fixed fields and short strings (at most three of 255 bytes), plus the
	 * method's tables, which the generated descriptor locates. */
	const struct sv_method_desc *d = sv_method_desc(m->id);
	for (unsigned i = 0; d && i < d->nargs; i++)
		if (d->args[i].type == SV_ARG_TABLE)
			cap += ((const struct sv_table *)((const char *)m + d->args[i].offset))->len;
	req = sv_request_new(SV_REQ_METHOD);
	if (req)
		req->frame = malloc(cap);
	if (!req || !req->frame) {
		free(req);
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	req->frame_len = sv_frame_put_method(req->frame, cap, ch->id, m, &cerr);
	if (!req->frame_len || req->frame_len > c->sess.frame_max) {
		if (req->frame_len)
			sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				     "%s: a %zu-byte frame exceeds frame_max %u",
				     sv_method_name(m->id), req->frame_len, c->sess.frame_max);
		else
			sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s",
				     cerr.reason);
		free(req->frame);
		free(req);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	/* The request keeps the channel alive: a caller that gave up (timeout) may close and
	 * free its handle while the request still waits in the I/O thread (for instance for
	 * the next connection). */
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	req->ch = ch;
	req->reply_id = rpc->reply_id;
	req->reply_alt = rpc->reply_alt;
	req->on_reply = rpc->on_reply;
	req->on_queued = rpc->on_queued;
	req->consumer = consumer;
	req->no_ack = m->id == SV_BASIC_GET && m->a.basic_get.no_ack;
	req->rec_gen = sv_topo_rec_gen();
	rc = sv_request_submit(c, req, err);
	if (rc) {
		sv_channel_put(ch);
		free(req->frame);
		free(req);
		return rc;
	}
	if (submitted)
		*submitted = true;
	rc = sv_request_wait(req, timeout_ms, err);
	if (rc || !out)
		sv_request_put(req);
	else
		*out = req;
	return rc;
}

int sv_channel_rpc(salvo_channel *ch, struct sv_method *m, const struct sv_rpc *rpc,
		   struct sv_request **out, bool *submitted, salvo_error *err)
{
	return channel_rpc(ch, m, rpc, NULL, out, submitted, ch->client->set.rpc_timeout_ms, err);
}

int sv_channel_rpc_for(salvo_channel *ch, struct sv_method *m, const struct sv_rpc *rpc,
		       struct salvo_consumer *consumer, bool *submitted, salvo_error *err)
{
	return channel_rpc(ch, m, rpc, consumer, NULL, submitted, ch->client->set.rpc_timeout_ms,
			   err);
}

/* Channels. */

static const struct sv_rpc open_rpc = {.reply_id = SV_CHANNEL_OPEN_OK,
				       .on_queued = sv_channel_opening};
static const struct sv_rpc close_rpc = {.reply_id = SV_CHANNEL_CLOSE_OK,
					.on_queued = sv_channel_closing,
					.on_reply = sv_channel_close_ok};

int salvo_channel_open(salvo_client *c, salvo_channel **out, salvo_error *err)
{
	struct sv_method m = {.id = SV_CHANNEL_OPEN};
	salvo_channel *ch;
	int id, rc;

	if (!c || !out)
		return invalid(err, "salvo_channel_open: client and out are required");
	*out = NULL;
	id = sv_channel_id_alloc(c);
	if (id < 0) {
		sv_error_set(err, SALVO_ERR_LIMIT, SALVO_ERROR_LOCAL,
			     "all %u channel numbers are in use", c->sess.channel_max);
		return SALVO_ERR_LIMIT;
	}
	ch = sv_zalloc_lines(sizeof *ch);
	if (!ch) {
		sv_channel_id_free(c, (uint16_t)id);
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	ch->client = c;
	ch->id = (uint16_t)id;
	atomic_init(&ch->generation, atomic_fetch_add(&c->channel_serial, 1) + 1);
	atomic_init(&ch->state, SV_CH_OPEN);
	sv_acked_init(&ch->acked);
	CK_STAILQ_INIT(&ch->await);
	/* The handle's reference; the I/O thread takes its own when it registers the channel. */
	atomic_init(&ch->refs, 1);
	atomic_fetch_add(&c->refs, 1);

	bool submitted = false;
	rc = sv_channel_rpc(ch, &m, &open_rpc, NULL, &submitted, err);
	if (rc) {
		/* A request the I/O thread never saw leaves the number to us; otherwise the
		 * I/O thread frees it when the channel ends (close below, or the connection's). */
		if (!submitted) {
			sv_channel_id_free(c, (uint16_t)id);
			sv_channel_put(ch);
		} else {
			salvo_channel_close(ch, NULL);
		}
		return rc;
	}
	*out = ch;
	return 0;
}

int salvo_channel_close(salvo_channel *ch, salvo_error *err)
{
	if (!ch)
		return invalid(err, "salvo_channel_close: no channel");
	return sv_channel_close_within(ch, ch->client->set.rpc_timeout_ms, err);
}

int sv_channel_close_within(salvo_channel *ch, int timeout_ms, salvo_error *err)
{
	struct sv_method m = {.id = SV_CHANNEL_CLOSE,
			      .a.channel_close = {200, SV_BYTES("closed by the application"), 0, 0}};
	int rc;

	rc = channel_closed_error(ch, err);
	if (!rc) {
		/* On a timeout the request keeps the channel until close-ok or the end of the
		 * connection; the handle's reference goes below either way. */
		rc = channel_rpc(ch, &m, &close_rpc, NULL, NULL, NULL, timeout_ms, err);
		/* The broker's own close may have crossed ours: report its error, not success. */
		if (channel_closed_error(ch, NULL) > 0)
			rc = channel_closed_error(ch, err);
	}
	sv_channel_put(ch);
	return rc;
}

/* Topology recovery's channel.open of a channel kept across a loss: the table has it
 * already, and once it is queued the application's calls go through again
 * (sv_channel_reopening). */
int sv_channel_reopen(salvo_channel *ch, salvo_error *err)
{
	struct sv_method m = {.id = SV_CHANNEL_OPEN};

	return sv_channel_rpc(ch, &m,
			      &(struct sv_rpc){.reply_id = SV_CHANNEL_OPEN_OK,
					       .on_queued = sv_channel_reopening},
			      NULL, NULL, err);
}

/* Synchronous methods. */

/* Replies whose fields the caller reads: copied out of the read buffer (I/O thread). */
static enum sv_reply_next declare_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				     const struct sv_method *m)
{
	const struct sv_queue_declare_ok *a = &m->a.queue_declare_ok;

	(void)c;
	(void)ch;
	memcpy(req->queue.name, a->queue.ptr, a->queue.len);
	req->queue.name[a->queue.len] = '\0';
	req->queue.message_count = a->message_count;
	req->queue.consumer_count = a->consumer_count;
	return SV_REPLY_DONE;
}

static enum sv_reply_next count_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				   const struct sv_method *m)
{
	(void)c;
	(void)ch;
	req->message_count = m->id == SV_QUEUE_PURGE_OK ? m->a.queue_purge_ok.message_count
							: m->a.queue_delete_ok.message_count;
	return SV_REPLY_DONE;
}

/* The reply a method waits for, and its handler: none when it has its no-wait bit (the
 * request completes once its frame is queued). */
#define REPLY(nowait, id, ...) (&(struct sv_rpc){.reply_id = (nowait) ? 0 : (id), __VA_ARGS__})

static int check_name(const char *what, const char *s, salvo_error *err)
{
	if (!s) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s is NULL", what);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (strlen(s) > SV_SHORTSTR_MAX) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "%s is %zu bytes; AMQP names hold at most 255", what, strlen(s));
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	return 0;
}

static struct sv_bytes str(const char *s)
{
	return (struct sv_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

#define CHECK_NAME(what, s)                                                                      \
	do {                                                                                     \
		int rc_ = check_name(what, s, err);                                              \
		if (rc_)                                                                         \
			return rc_;                                                              \
	} while (0)

#define CHECK_FLAGS(method, flags, allowed)                                                      \
	do {                                                                                     \
		int rc_ = sv_check_flags(method, flags, allowed, err);                           \
		if (rc_)                                                                         \
			return rc_;                                                              \
	} while (0)

/* Arguments are a field table; an array made by salvo_array_new would be sent as a
 * malformed one, and the broker would close the connection over it. */
#define CHECK_ARGUMENTS(t)                                                                       \
	do {                                                                                     \
		if ((t) && (t)->array)                                                           \
			return invalid(err, "arguments must be a table, not a field array");     \
	} while (0)

#define CHECK_CHANNEL(ch)                                                                        \
	do {                                                                                     \
		if (!(ch))                                                                       \
			return invalid(err, "no channel");                                       \
	} while (0)

int salvo_exchange_declare(salvo_channel *ch, const char *exchange, const char *type,
			   unsigned flags, const salvo_table *arguments, salvo_error *err)
{
	struct sv_method m = {.id = SV_EXCHANGE_DECLARE};
	salvo_topology_entity e = {.kind = SALVO_TOPOLOGY_EXCHANGE, .name = exchange,
				   .type = type, .flags = flags & ~SALVO_NOWAIT,
				   .arguments = arguments};
	struct sv_topo_ticket tk;
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_FLAGS("exchange.declare", flags,
		    SALVO_PASSIVE | SALVO_DURABLE | SALVO_AUTO_DELETE | SALVO_INTERNAL |
			SALVO_NOWAIT);
	CHECK_ARGUMENTS(arguments);
	CHECK_NAME("exchange", exchange);
	CHECK_NAME("exchange type", type);
	rc = sv_topo_reserve(ch, &e, &tk, err);
	if (rc)
		return rc;
	m.a.exchange_declare = (struct sv_exchange_declare){
		.exchange = str(exchange),
		.type = str(type),
		.passive = flags & SALVO_PASSIVE,
		.durable = flags & SALVO_DURABLE,
		.auto_delete = flags & SALVO_AUTO_DELETE,
		.internal = flags & SALVO_INTERNAL,
		.nowait = flags & SALVO_NOWAIT,
		.arguments = sv_table_of(arguments),
	};
	rc = sv_channel_rpc(ch, &m, REPLY(flags & SALVO_NOWAIT, SV_EXCHANGE_DECLARE_OK), NULL, NULL,
			    err);
	sv_topo_record(ch, &e, NULL, &tk, rc);
	return rc;
}

int salvo_exchange_delete(salvo_channel *ch, const char *exchange, unsigned flags,
			  salvo_error *err)
{
	struct sv_method m = {.id = SV_EXCHANGE_DELETE};
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_FLAGS("exchange.delete", flags, SALVO_IF_UNUSED | SALVO_NOWAIT);
	CHECK_NAME("exchange", exchange);
	m.a.exchange_delete.exchange = str(exchange);
	m.a.exchange_delete.if_unused = flags & SALVO_IF_UNUSED;
	m.a.exchange_delete.nowait = flags & SALVO_NOWAIT;
	rc = sv_channel_rpc(ch, &m, REPLY(flags & SALVO_NOWAIT, SV_EXCHANGE_DELETE_OK), NULL, NULL,
			    err);
	if (!rc)
		sv_topo_forget(ch->client, &(salvo_topology_entity){.kind = SALVO_TOPOLOGY_EXCHANGE,
								    .name = exchange});
	return rc;
}

/* A binding's method, sent, then recorded for topology recovery (a bind: its outcome
 * settles the reservation) or forgotten (an unbind that was done). */
static int binding_rpc(salvo_channel *ch, struct sv_method *m, bool bind,
		       const struct sv_rpc *rpc, const salvo_topology_entity *e,
		       struct sv_topo_ticket *tk, salvo_error *err)
{
	int rc = sv_channel_rpc(ch, m, rpc, NULL, NULL, err);

	if (bind)
		sv_topo_record(ch, e, NULL, tk, rc);
	else if (!rc)
		sv_topo_forget(ch->client, e);
	return rc;
}

static int exchange_binding(salvo_channel *ch, bool bind, bool nowait, const char *destination,
			    const char *source, const char *routing_key,
			    const salvo_table *arguments, salvo_error *err)
{
	struct sv_method m = {.id = bind ? SV_EXCHANGE_BIND : SV_EXCHANGE_UNBIND};
	salvo_topology_entity e = {.kind = SALVO_TOPOLOGY_EXCHANGE_BINDING, .source = source,
				   .destination = destination, .routing_key = routing_key,
				   .arguments = arguments};
	struct sv_topo_ticket tk = {0};
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_ARGUMENTS(arguments);
	CHECK_NAME("destination", destination);
	CHECK_NAME("source", source);
	CHECK_NAME("routing key", routing_key);
	if (bind && (rc = sv_topo_reserve(ch, &e, &tk, err)))
		return rc;
	if (bind) {
		m.a.exchange_bind.destination = str(destination);
		m.a.exchange_bind.source = str(source);
		m.a.exchange_bind.routing_key = str(routing_key);
		m.a.exchange_bind.nowait = nowait;
		m.a.exchange_bind.arguments = sv_table_of(arguments);
	} else {
		m.a.exchange_unbind.destination = str(destination);
		m.a.exchange_unbind.source = str(source);
		m.a.exchange_unbind.routing_key = str(routing_key);
		m.a.exchange_unbind.nowait = nowait;
		m.a.exchange_unbind.arguments = sv_table_of(arguments);
	}
	return binding_rpc(ch, &m, bind,
			   REPLY(nowait, bind ? SV_EXCHANGE_BIND_OK : SV_EXCHANGE_UNBIND_OK), &e, &tk,
			   err);
}

int salvo_exchange_bind(salvo_channel *ch, const char *destination, const char *source,
			const char *routing_key, const salvo_table *arguments, salvo_error *err)
{
	return exchange_binding(ch, true, false, destination, source, routing_key, arguments, err);
}

int salvo_exchange_bind_nowait(salvo_channel *ch, const char *destination, const char *source,
			       const char *routing_key, const salvo_table *arguments,
			       salvo_error *err)
{
	return exchange_binding(ch, true, true, destination, source, routing_key, arguments, err);
}

int salvo_exchange_unbind(salvo_channel *ch, const char *destination, const char *source,
			  const char *routing_key, const salvo_table *arguments, salvo_error *err)
{
	return exchange_binding(ch, false, false, destination, source, routing_key, arguments,
				err);
}

int salvo_exchange_unbind_nowait(salvo_channel *ch, const char *destination, const char *source,
				 const char *routing_key, const salvo_table *arguments,
				 salvo_error *err)
{
	return exchange_binding(ch, false, true, destination, source, routing_key, arguments, err);
}

int salvo_queue_declare(salvo_channel *ch, const char *queue, unsigned flags,
			const salvo_table *arguments, salvo_queue_info *info, salvo_error *err)
{
	struct sv_method m = {.id = SV_QUEUE_DECLARE};
	salvo_topology_entity e = {.kind = SALVO_TOPOLOGY_QUEUE, .name = queue,
				   .flags = flags & ~SALVO_NOWAIT, .arguments = arguments,
				   .server_named = !queue || !queue[0]};
	struct sv_topo_ticket tk;
	struct sv_request *req;
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_FLAGS("queue.declare", flags,
		    SALVO_PASSIVE | SALVO_DURABLE | SALVO_EXCLUSIVE | SALVO_AUTO_DELETE |
			SALVO_NOWAIT);
	CHECK_ARGUMENTS(arguments);
	CHECK_NAME("queue", queue);
	if ((flags & SALVO_NOWAIT) && !*queue)
		return invalid(err, "queue.declare: SALVO_NOWAIT with queue \"\": the name the "
				    "broker chooses comes only in declare-ok, which nowait "
				    "does not wait for");
	if ((flags & SALVO_NOWAIT) && info)
		return invalid(err, "queue.declare: SALVO_NOWAIT takes no info: no declare-ok "
				    "comes to fill it");
	rc = sv_topo_reserve(ch, &e, &tk, err);
	if (rc)
		return rc;
	m.a.queue_declare = (struct sv_queue_declare){
		.queue = str(queue),
		.passive = flags & SALVO_PASSIVE,
		.durable = flags & SALVO_DURABLE,
		.exclusive = flags & SALVO_EXCLUSIVE,
		.auto_delete = flags & SALVO_AUTO_DELETE,
		.nowait = flags & SALVO_NOWAIT,
		.arguments = sv_table_of(arguments),
	};
	rc = sv_channel_rpc(ch, &m,
			    REPLY(flags & SALVO_NOWAIT, SV_QUEUE_DECLARE_OK, .on_reply = declare_ok),
			    &req, NULL, err);
	if (!rc && !(flags & SALVO_NOWAIT))
		e.name = req->queue.name; /* the broker's choice for a server-named queue */
	sv_topo_record(ch, &e, NULL, &tk, rc);
	if (rc)
		return rc;
	if (info)
		*info = req->queue;
	sv_request_put(req);
	return 0;
}

static int queue_binding(salvo_channel *ch, bool bind, bool nowait, const char *queue,
			 const char *exchange, const char *routing_key,
			 const salvo_table *arguments, salvo_error *err)
{
	struct sv_method m = {.id = bind ? SV_QUEUE_BIND : SV_QUEUE_UNBIND};
	salvo_topology_entity e = {.kind = SALVO_TOPOLOGY_QUEUE_BINDING, .source = exchange,
				   .destination = queue, .routing_key = routing_key,
				   .arguments = arguments};
	struct sv_topo_ticket tk = {0};
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_ARGUMENTS(arguments);
	CHECK_NAME("queue", queue);
	CHECK_NAME("exchange", exchange);
	CHECK_NAME("routing key", routing_key);
	if (bind && (rc = sv_topo_reserve(ch, &e, &tk, err)))
		return rc;
	if (bind) {
		m.a.queue_bind.queue = str(queue);
		m.a.queue_bind.exchange = str(exchange);
		m.a.queue_bind.routing_key = str(routing_key);
		m.a.queue_bind.nowait = nowait;
		m.a.queue_bind.arguments = sv_table_of(arguments);
	} else {
		m.a.queue_unbind.queue = str(queue);
		m.a.queue_unbind.exchange = str(exchange);
		m.a.queue_unbind.routing_key = str(routing_key);
		m.a.queue_unbind.arguments = sv_table_of(arguments);
	}
	return binding_rpc(ch, &m, bind,
			   REPLY(nowait, bind ? SV_QUEUE_BIND_OK : SV_QUEUE_UNBIND_OK), &e, &tk, err);
}

int salvo_queue_bind(salvo_channel *ch, const char *queue, const char *exchange,
		     const char *routing_key, const salvo_table *arguments, salvo_error *err)
{
	return queue_binding(ch, true, false, queue, exchange, routing_key, arguments, err);
}

int salvo_queue_bind_nowait(salvo_channel *ch, const char *queue, const char *exchange,
			    const char *routing_key, const salvo_table *arguments,
			    salvo_error *err)
{
	return queue_binding(ch, true, true, queue, exchange, routing_key, arguments, err);
}

/* queue.unbind has no no-wait bit in AMQP 0-9-1: always waited for (salvo.h). */
int salvo_queue_unbind(salvo_channel *ch, const char *queue, const char *exchange,
		       const char *routing_key, const salvo_table *arguments, salvo_error *err)
{
	return queue_binding(ch, false, false, queue, exchange, routing_key, arguments, err);
}

static int queue_count_rpc(salvo_channel *ch, struct sv_method *m, bool nowait, uint32_t reply_id,
			   uint32_t *message_count, salvo_error *err)
{
	struct sv_request *req;
	int rc = sv_channel_rpc(ch, m, REPLY(nowait, reply_id, .on_reply = count_ok), &req, NULL,
				err);

	if (rc)
		return rc;
	if (message_count)
		*message_count = req->message_count;
	sv_request_put(req);
	return 0;
}

int salvo_queue_purge(salvo_channel *ch, const char *queue, uint32_t *message_count,
		      salvo_error *err)
{
	struct sv_method m = {.id = SV_QUEUE_PURGE};

	CHECK_CHANNEL(ch);
	CHECK_NAME("queue", queue);
	m.a.queue_purge.queue = str(queue);
	return queue_count_rpc(ch, &m, false, SV_QUEUE_PURGE_OK, message_count, err);
}

int salvo_queue_delete(salvo_channel *ch, const char *queue, unsigned flags,
		       uint32_t *message_count, salvo_error *err)
{
	struct sv_method m = {.id = SV_QUEUE_DELETE};
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_FLAGS("queue.delete", flags, SALVO_IF_UNUSED | SALVO_IF_EMPTY | SALVO_NOWAIT);
	CHECK_NAME("queue", queue);
	if ((flags & SALVO_NOWAIT) && message_count)
		return invalid(err, "queue.delete: SALVO_NOWAIT takes no message_count: no "
				    "delete-ok comes to say it");
	m.a.queue_delete.queue = str(queue);
	m.a.queue_delete.if_unused = flags & SALVO_IF_UNUSED;
	m.a.queue_delete.if_empty = flags & SALVO_IF_EMPTY;
	m.a.queue_delete.nowait = flags & SALVO_NOWAIT;
	rc = queue_count_rpc(ch, &m, flags & SALVO_NOWAIT, SV_QUEUE_DELETE_OK, message_count,
			     err);
	if (!rc)
		sv_topo_forget(ch->client, &(salvo_topology_entity){.kind = SALVO_TOPOLOGY_QUEUE,
								    .name = queue});
	return rc;
}

int salvo_basic_qos(salvo_channel *ch, uint32_t prefetch_size, uint16_t prefetch_count,
		    bool global, salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_QOS,
			      .a.basic_qos = {prefetch_size, prefetch_count, global}};

	int rc;

	CHECK_CHANNEL(ch);
	atomic_store_explicit(&ch->prefetch, prefetch_count, memory_order_relaxed);
	rc = sv_channel_rpc(ch, &m, &(struct sv_rpc){.reply_id = SV_BASIC_QOS_OK}, NULL, NULL,
			    err);
	if (!rc)
		sv_topo_qos(ch, prefetch_size, prefetch_count, global);
	return rc;
}

/* Channel modes. */

static int mode_rpc(salvo_channel *ch, uint32_t id, uint32_t reply_id, salvo_error *err)
{
	struct sv_method m = {.id = id};

	CHECK_CHANNEL(ch);
	return sv_channel_rpc(ch, &m, &(struct sv_rpc){.reply_id = reply_id}, NULL, NULL, err);
}

int salvo_confirm_select(salvo_channel *ch, salvo_error *err)
{
	return mode_rpc(ch, SV_CONFIRM_SELECT, SV_CONFIRM_SELECT_OK, err);
}

int salvo_tx_select(salvo_channel *ch, salvo_error *err)
{
	return mode_rpc(ch, SV_TX_SELECT, SV_TX_SELECT_OK, err);
}

int salvo_tx_commit(salvo_channel *ch, salvo_error *err)
{
	return mode_rpc(ch, SV_TX_COMMIT, SV_TX_COMMIT_OK, err);
}

int salvo_tx_rollback(salvo_channel *ch, salvo_error *err)
{
	return mode_rpc(ch, SV_TX_ROLLBACK, SV_TX_ROLLBACK_OK, err);
}

/* basic.get. */

int salvo_basic_get(salvo_channel *ch, const char *queue, bool no_ack, salvo_message **msg,
		    salvo_error *err)
{
	struct sv_method m = {.id = SV_BASIC_GET};
	struct sv_request *req;
	int rc;

	CHECK_CHANNEL(ch);
	CHECK_NAME("queue", queue);
	if (!msg)
		return invalid(err, "salvo_basic_get: msg is required");
	*msg = NULL;
	m.a.basic_get.queue = str(queue);
	m.a.basic_get.no_ack = no_ack;
	rc = sv_channel_rpc(
	    ch, &m, &(struct sv_rpc){SV_BASIC_GET_OK, SV_BASIC_GET_EMPTY, sv_get_reply, NULL}, &req,
	    NULL, err);
	if (rc)
		return rc;
	*msg = req->msg;
	req->msg = NULL; /* now the caller's */
	sv_request_put(req);
	return 0;
}
