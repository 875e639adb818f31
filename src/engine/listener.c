/* SPDX-License-Identifier: MIT */
/*
 * Listeners: a consumer and its callback on a thread of their own, made again whenever
 * the consumer ends, and stopped gracefully.
 *
 * The listener's thread owns its channel and consumer; the only thing another thread
 * touches is the consumer's wait, which salvo_listener_stop interrupts (under l->lock,
 * which the thread also takes before it lets go of the consumer, so the consumer is alive
 * while it is interrupted). Lock order: l->lock, then the consumer's lock (inside
 * sv_consumer_interrupt); the thread never holds a consumer's lock while taking l->lock.
 *
 * After its consumer ends, the thread waits while the client reconnects (reading the
 * client's state every 20 ms), because a synchronous method started during the outage
 * would wait for the next connection up to rpc_timeout, and a stop could not interrupt it.
 *
 * Streams. A stream's deliveries carry their offset in the header x-stream-offset, and a
 * consume names where to start (the consume argument x-stream-offset). A listener takes
 * its queue for a stream only when told so (opts.stream, or the arguments that only a
 * stream's consumer or declarer gives), never from a message's headers: a copy of a
 * stream's message in another queue keeps the header, and acking it for a REQUEUE would
 * lose it. On a stream, before handing a
 * delivery that carries one to the callback, the thread notes its position: the offset,
 * and which record of its envelope it is (an envelope is one offset, split into records
 * here). Each consume after that starts just past the position: at offset + 1, or at the
 * offset itself when records of that envelope were left, in place of the caller's
 * x-stream-offset. RabbitMQ starts a numeric offset exactly there; what it sends of the
 * position itself (the records of a partly handed-out envelope, up to the one handed out)
 * is acked, for credit, without the callback. What was received and not handed out when a
 * consumer ended lies past the position, so it comes again; what was handed out does not.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "props.h"

#define DEFAULT_PREFETCH 64
#define RETRY_FIRST_MS	 100 /* after a failed consume, doubling up to RETRY_MAX_MS */
#define RETRY_MAX_MS	 5000

struct salvo_listener {
	salvo_client *c;
	char queue[256];
	salvo_listener_fn fn;
	void *arg;
	salvo_listener_opts opts;		  /* its tables are the two below */
	salvo_table *declare_args, *consume_args; /* copies of the caller's */
	pthread_t thread;

	/* The listener's thread only (the caller's, until the thread starts). */
	salvo_channel *ch;
	/* A stream's position: the last delivery handed to the callback that carried
	 * x-stream-offset (offset, record index, records in its envelope). resuming: since
	 * the last consume from it, no delivery past it came yet. */
	bool have_pos, resuming;
	uint64_t pos_offset;
	uint32_t pos_index, pos_count;

	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t cond;  /* stopping set; done set */
	salvo_consumer *cons; /* written by the listener's thread only */
	bool stopping, done, joined;
	int end_status; /* why the listener ended by itself: the client closed */
	salvo_error end_err;
	salvo_error last_error;

	_Atomic uint64_t received, acked, requeued, rejected, kept, settle_errors, restarts;
	_Atomic uint64_t stream_skipped;
};

static void note_error(salvo_listener *l, const salvo_error *e)
{
	pthread_mutex_lock(&l->lock);
	l->last_error = *e;
	pthread_mutex_unlock(&l->lock);
}

static bool stop_asked(salvo_listener *l)
{
	bool stop;

	pthread_mutex_lock(&l->lock);
	stop = l->stopping;
	pthread_mutex_unlock(&l->lock);
	return stop;
}

/* Wait ms on l->cond, or less if a stop is asked; l->lock held. */
static void wait_ms(salvo_listener *l, unsigned ms)
{
	struct timespec ts;

	sv_timespec_after(&ts, CLOCK_MONOTONIC, (int)ms);
	if (!l->stopping)
		pthread_cond_timedwait(&l->cond, &l->lock, &ts);
}

/*
 * The consume arguments of a stream listener that has a position: the caller's, with
 * x-stream-offset just past the position (see the top of the file). NULL when out of
 * memory.
 */
static salvo_table *resume_arguments(salvo_listener *l)
{
	salvo_table *args = sv_table_copy_without(l->opts.consume_arguments, "x-stream-offset");
	bool whole = l->pos_index + 1 >= l->pos_count;
	/* pos_offset <= INT64_MAX (salvo_message_stream_offset); the next one may not be. */
	int64_t from =
	    l->pos_offset + whole > INT64_MAX ? INT64_MAX : (int64_t)(l->pos_offset + whole);

	if (args && salvo_table_add_int(args, "x-stream-offset", from)) {
		salvo_table_destroy(args);
		args = NULL;
	}
	return args;
}

/* Setup hook, channel, declare, qos, basic.consume. */
static int make_consumer_quietly(salvo_listener *l, salvo_error *err)
{
	salvo_consumer_opts co = {.flags = l->opts.consume_flags |
					   (l->opts.stream ? SALVO_CONSUME_STREAM : 0),
				  .arguments = l->opts.consume_arguments};
	salvo_table *resume = NULL;
	salvo_consumer *cons;
	salvo_channel *ch;
	int rc;

	if (l->opts.setup) {
		memset(err, 0, sizeof *err);
		rc = l->opts.setup(l->c, l->opts.setup_arg, err);
		if (rc) {
			if (!err->text[0])
				sv_error_set(err, rc, SALVO_ERROR_LOCAL,
					     "the listener's setup hook failed");
			err->status = rc;
			return rc;
		}
	}
	if (l->have_pos) {
		resume = resume_arguments(l);
		if (!resume)
			return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					    "out of memory");
		co.arguments = resume;
	}
	rc = salvo_channel_open(l->c, &ch, err);
	if (rc) {
		salvo_table_destroy(resume);
		return rc;
	}
	if (l->opts.declare)
		rc = salvo_queue_declare(ch, l->queue, l->opts.declare_flags,
					 l->opts.declare_arguments, NULL, err);
	if (!rc && !(l->opts.consume_flags & SALVO_CONSUME_NO_ACK))
		rc = salvo_basic_qos(ch, 0, l->opts.prefetch, false, err);
	if (!rc)
		rc = salvo_consume(ch, l->queue, &co, &cons, err);
	salvo_table_destroy(resume);
	if (rc) {
		salvo_channel_close(ch, NULL);
		return rc;
	}
	l->ch = ch;
	l->resuming = resume != NULL;
	pthread_mutex_lock(&l->lock);
	l->cons = cons;
	/* A stop that came while this consumer was being made found none to interrupt. */
	if (l->stopping)
		sv_consumer_interrupt(cons);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* A listener makes its consumer again itself (setup hook and declare included), so
 * topology recovery records none of it. */
static int make_consumer(salvo_listener *l, salvo_error *err)
{
	int rc;

	sv_topo_quiet(true);
	rc = make_consumer_quietly(l, err);
	sv_topo_quiet(false);
	return rc;
}

/* Cancel (if the consumer is still active), give back what it holds, close the channel. */
static void drop_consumer(salvo_listener *l)
{
	salvo_consumer *cons;

	pthread_mutex_lock(&l->lock);
	cons = l->cons;
	l->cons = NULL;
	pthread_mutex_unlock(&l->lock);
	salvo_consumer_destroy(cons);
	salvo_channel_close(l->ch, NULL);
	l->ch = NULL;
}

/*
 * A stream's delivery m at offset off: true when it is the position a resumed consume
 * started from, or a record of it up to the one handed out (acked for credit and
 * destroyed here, not handed out again); false otherwise (the position then moves to it).
 * Lower offsets are handed out: RabbitMQ starts a numeric x-stream-offset exactly there,
 * so one below the position comes from another log (the stream deleted and declared
 * again), whose messages are new.
 */
static bool stream_seen(salvo_listener *l, salvo_message *m, uint64_t off)
{
	uint32_t index = salvo_message_record_index(m);
	salvo_error e;

	if (l->resuming && off == l->pos_offset && index <= l->pos_index) {
		atomic_fetch_add_explicit(&l->stream_skipped, 1, memory_order_relaxed);
		if (!(l->opts.consume_flags & SALVO_CONSUME_NO_ACK) &&
		    salvo_message_ack(m, false, &e)) {
			atomic_fetch_add_explicit(&l->settle_errors, 1, memory_order_relaxed);
			note_error(l, &e);
		}
		salvo_message_destroy(m);
		return true;
	}
	l->resuming = false;
	l->have_pos = true;
	l->pos_offset = off;
	l->pos_index = index;
	l->pos_count = salvo_message_record_count(m);
	return false;
}

static void handle(salvo_listener *l, salvo_message *m)
{
	salvo_listener_action act;
	uint64_t off;
	salvo_error e;
	int rc = 0;
	/* Before the callback, which may keep m and give it to a thread that frees it. */
	bool stream = l->opts.stream && salvo_message_stream_offset(m, &off) == 0;

	if (stream && stream_seen(l, m, off))
		return;
	atomic_fetch_add_explicit(&l->received, 1, memory_order_relaxed);
	act = l->fn(m, l->arg);
	if (act == SALVO_LISTENER_KEEP) {
		atomic_fetch_add_explicit(&l->kept, 1, memory_order_relaxed);
		return;
	}
	if (!(l->opts.consume_flags & SALVO_CONSUME_NO_ACK)) {
		switch (act) {
		case SALVO_LISTENER_ACK:
			rc = salvo_message_ack(m, false, &e);
			atomic_fetch_add_explicit(&l->acked, !rc, memory_order_relaxed);
			break;
		case SALVO_LISTENER_SETTLED:
			break;
		/* On a stream the consumer (SALVO_CONSUME_STREAM) sends these as acks: a
		 * stream takes acks only, and an ack there is only credit. */
		case SALVO_LISTENER_REJECT:
			rc = salvo_message_reject(m, false, &e);
			atomic_fetch_add_explicit(&l->rejected, !rc, memory_order_relaxed);
			break;
		case SALVO_LISTENER_REQUEUE:
		default: /* not an action: give the message back rather than lose it */
			rc = salvo_message_nack(m, false, true, &e);
			atomic_fetch_add_explicit(&l->requeued, !rc, memory_order_relaxed);
			break;
		}
		if (rc) {
			atomic_fetch_add_explicit(&l->settle_errors, 1, memory_order_relaxed);
			note_error(l, &e);
		}
	}
	salvo_message_destroy(m);
}

static void finish(salvo_listener *l, int status, const salvo_error *why)
{
	pthread_mutex_lock(&l->lock);
	l->done = true;
	l->end_status = status;
	if (why)
		l->end_err = *why;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void *listener_main(void *arg)
{
	salvo_listener *l = arg;
	unsigned retry_ms = 0;

	while (!stop_asked(l)) {
		salvo_message *m;
		salvo_error e;
		int rc;

		if (!l->cons) {
			rc = sv_client_wait_open(l->c, &l->lock, &l->cond, &l->stopping, &e);
			if (rc == 1)
				break;
			if (rc) {
				note_error(l, &e);
				finish(l, rc, &e);
				return NULL;
			}
			rc = make_consumer(l, &e);
			if (rc) {
				note_error(l, &e);
				retry_ms = retry_ms ? retry_ms * 2 : RETRY_FIRST_MS;
				if (retry_ms > RETRY_MAX_MS)
					retry_ms = RETRY_MAX_MS;
				pthread_mutex_lock(&l->lock);
				wait_ms(l, retry_ms);
				pthread_mutex_unlock(&l->lock);
				continue;
			}
			retry_ms = 0;
			atomic_fetch_add_explicit(&l->restarts, 1, memory_order_relaxed);
		}
		rc = salvo_consumer_get(l->cons, SALVO_FOREVER, &m, &e);
		if (rc == 0)
			handle(l, m);
		else if (rc != SALVO_ERR_TIMEOUT) {
			/* Ended: the broker cancelled it, or its channel or connection is gone. */
			note_error(l, &e);
			drop_consumer(l);
		}
		/* SALVO_ERR_TIMEOUT: interrupted by a stop, which the loop's test sees. */
	}
	if (l->cons)
		drop_consumer(l);
	finish(l, 0, NULL);
	return NULL;
}

static void free_tables(salvo_listener *l)
{
	salvo_table_destroy(l->declare_args);
	salvo_table_destroy(l->consume_args);
}

int salvo_listener_new(salvo_client *c, const char *queue, salvo_listener_fn on_message, void *arg,
		       const salvo_listener_opts *opts, salvo_listener **out, salvo_error *err)
{
	salvo_listener *l;
	salvo_error e;
	int rc;

	if (!c || !queue || !queue[0] || strlen(queue) > SV_SHORTSTR_MAX || !on_message || !out)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_listener_new: client, a queue name (1 to 255 bytes), "
				    "a callback and out are required");
	if (opts && ((opts->declare_arguments && opts->declare_arguments->array) ||
		     (opts->consume_arguments && opts->consume_arguments->array)))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_listener_new: declare_arguments and consume_arguments "
				    "must be tables, not field arrays");
	*out = NULL;
	l = calloc(1, sizeof *l);
	if (!l)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	l->c = c;
	strcpy(l->queue, queue);
	l->fn = on_message;
	l->arg = arg;
	if (opts)
		l->opts = *opts;
	if (!l->opts.prefetch)
		l->opts.prefetch = DEFAULT_PREFETCH;
	/* The caller may free its tables once this returns. */
	if (opts && opts->declare_arguments)
		l->declare_args = sv_table_copy_without(opts->declare_arguments, NULL);
	if (opts && opts->consume_arguments)
		l->consume_args = sv_table_copy_without(opts->consume_arguments, NULL);
	if ((opts && opts->declare_arguments && !l->declare_args) ||
	    (opts && opts->consume_arguments && !l->consume_args)) {
		free_tables(l);
		free(l);
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	}
	l->opts.declare_arguments = l->declare_args;
	l->opts.consume_arguments = l->consume_args;
	/* A stream by what the caller said of the queue, never by a message's headers. */
	if ((l->opts.consume_flags & SALVO_CONSUME_STREAM) ||
	    sv_table_has(l->consume_args, "x-stream-offset", NULL) ||
	    (l->opts.declare && sv_table_has(l->declare_args, "x-queue-type", "stream")))
		l->opts.stream = true;
	pthread_mutex_init(&l->lock, NULL);
	sv_cond_init_monotonic(&l->cond);

	/* The first consumer on the caller's thread, so its errors come back from here. A
	 * connection.close the broker sent meanwhile (RabbitMQ answers a consume argument it
	 * cannot read, such as an x-stream-offset of the wrong kind, with 541 on the
	 * connection) reads SALVO_ERR_CLOSED when the client reconnects: its reply code is
	 * the answer here. */
	rc = make_consumer(l, &e);
	if (rc == SALVO_ERR_CLOSED && e.reply_code)
		rc = e.status = (int)e.reply_code;
	if (rc)
		sv_error_copy(err, &e);
	if (!rc) {
		/* pthread_create orders everything above before the thread's first step. */
		rc = pthread_create(&l->thread, NULL, listener_main, l);
		if (rc) {
			drop_consumer(l);
			rc = sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					  "cannot start the listener's thread");
		}
	}
	if (rc) {
		pthread_mutex_destroy(&l->lock);
		pthread_cond_destroy(&l->cond);
		free_tables(l);
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

int salvo_listener_stop(salvo_listener *l, int timeout_ms, salvo_error *err)
{
	struct timespec ts;
	bool join = false;
	int rc = 0;

	if (sv_check_timeout("salvo_listener_stop", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!l)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_listener_stop: no listener");
	if (timeout_ms > 0)
		sv_timespec_after(&ts, CLOCK_MONOTONIC, timeout_ms);
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	if (l->cons)
		sv_consumer_interrupt(l->cons);
	pthread_cond_broadcast(&l->cond);
	while (!l->done && timeout_ms != 0 && rc == 0)
		rc = timeout_ms < 0 ? pthread_cond_wait(&l->cond, &l->lock)
				    : pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	if (!l->done) {
		pthread_mutex_unlock(&l->lock);
		return sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				    "the listener is still finishing after %d ms", timeout_ms);
	}
	rc = l->end_status;
	if (rc)
		sv_error_copy(err, &l->end_err);
	if (!l->joined)
		join = l->joined = true;
	pthread_mutex_unlock(&l->lock);
	if (join)
		pthread_join(l->thread, NULL);
	return rc;
}

void salvo_listener_destroy(salvo_listener *l)
{
	if (!l)
		return;
	salvo_listener_stop(l, SALVO_FOREVER, NULL);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free_tables(l);
	free(l);
}

void salvo_listener_get_stats(salvo_listener *l, salvo_listener_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!l)
		return;
	st->received = atomic_load_explicit(&l->received, memory_order_relaxed);
	st->acked = atomic_load_explicit(&l->acked, memory_order_relaxed);
	st->requeued = atomic_load_explicit(&l->requeued, memory_order_relaxed);
	st->rejected = atomic_load_explicit(&l->rejected, memory_order_relaxed);
	st->kept = atomic_load_explicit(&l->kept, memory_order_relaxed);
	st->settle_errors = atomic_load_explicit(&l->settle_errors, memory_order_relaxed);
	st->restarts = atomic_load_explicit(&l->restarts, memory_order_relaxed);
	st->stream_skipped = atomic_load_explicit(&l->stream_skipped, memory_order_relaxed);
	pthread_mutex_lock(&l->lock);
	st->last_error = l->last_error;
	pthread_mutex_unlock(&l->lock);
}
