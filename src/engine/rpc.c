/* SPDX-License-Identifier: MIT */
/*
 * RPC over direct reply-to: the client (salvo_rpc_*) and the server's reply
 * (salvo_message_reply).
 *
 * RabbitMQ answers a publish with reply_to amq.rabbitmq.reply-to by sending the reply to
 * the consumer of that pseudo-queue on the publishing channel, so one channel carries the
 * requests and the replies: the RPC client's publisher's. Its parts:
 *  - calls (any thread): each takes a sequence number, enters the table of calls in flight
 *    (rpc->lock), publishes under pub_lock and sleeps on its own condition variable until
 *    its reply, its failure or its deadline. The call's record lives on the caller's stack,
 *    so memory grows with the calls in flight only, bounded by max_calls.
 *  - the RPC client's thread: takes replies from the consumer and hands each to its call
 *    by correlation id; when the consumer ends (the connection or the channel is gone) it
 *    fails every call in flight, since a reply to the old channel can never come, waits
 *    for the client to be connected, and makes a new publisher and consumer.
 * It makes a new publisher rather than consume again on the old one's channel: salvo
 * reopens a publisher's channel only after the on-connect hooks, and a basic.consume sent
 * before that channel.open would reach the broker on a channel it does not know.
 *
 * Lock order: pub_lock, then lock. The thread takes pub_lock only to swap the publisher;
 * a call never holds lock while it publishes, nor either lock while it waits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define REPLY_TO       "amq.rabbitmq.reply-to"
#define DEFAULT_CALLS  1024
#define BUCKETS	       256 /* power of two: calls in flight by seq */
#define RETRY_FIRST_MS 100 /* after a failed consume, doubling up to RETRY_MAX_MS */
#define RETRY_MAX_MS   5000
#define PUB_CLOSE_MS   1000
#define PUB_SLICE_MS   100 /* the longest a call holds pub_lock waiting for ring room */

enum rpc_state {
	RPC_READY,	/* a reply consumer is active */
	RPC_RECOVERING, /* none: calls wait for the next one */
	RPC_CLOSED,	/* closed: calls return closed_err */
};

/* A call in flight, on its caller's stack. */
struct rpc_call {
	struct rpc_call *next, **pprev; /* in its bucket */
	uint64_t seq;
	pthread_cond_t cond;
	bool done;
	int status;
	salvo_error err;
	salvo_message *reply;
};

struct salvo_rpc {
	salvo_client *c;
	size_t max_calls;
	char prefix[64]; /* correlation ids are prefix + seq */
	size_t prefix_len;
	pthread_t thread;

	/* Calls publish under pub_lock; the thread swaps the publisher under it. */
	pthread_mutex_t pub_lock;
	salvo_publisher *p;

	/* The thread's: it writes it under lock (salvo_rpc_close interrupts it there). */
	salvo_consumer *cons;

	pthread_mutex_t lock;	   /* guards the fields below */
	pthread_cond_t state_cond; /* state changed, a place freed, or a stop asked */
	enum rpc_state state;
	salvo_error closed_err;
	bool stopping, closed;
	uint64_t next_seq;
	size_t in_flight;
	size_t place_waiters; /* calls waiting for a place among max_calls */
	struct rpc_call *buckets[BUCKETS];
	salvo_error last_error;

	_Atomic uint64_t calls, replies, timeouts, failed, late, unknown, restarts;
};

static _Atomic uint64_t rpc_serial;

static void count(_Atomic uint64_t *x)
{
	atomic_fetch_add_explicit(x, 1, memory_order_relaxed);
}

/* Calls in flight: lock held. */
static void table_insert(salvo_rpc *rpc, struct rpc_call *call)
{
	struct rpc_call **head = &rpc->buckets[call->seq & (BUCKETS - 1)];

	call->next = *head;
	call->pprev = head;
	if (*head)
		(*head)->pprev = &call->next;
	*head = call;
	rpc->in_flight++;
}

static void table_remove(salvo_rpc *rpc, struct rpc_call *call)
{
	*call->pprev = call->next;
	if (call->next)
		call->next->pprev = call->pprev;
	call->pprev = NULL;
	rpc->in_flight--;
	if (rpc->place_waiters)
		pthread_cond_broadcast(&rpc->state_cond);
}

static struct rpc_call *table_find(salvo_rpc *rpc, uint64_t seq)
{
	for (struct rpc_call *call = rpc->buckets[seq & (BUCKETS - 1)]; call; call = call->next)
		if (call->seq == seq)
			return call;
	return NULL;
}

/* End call with status and err (lock held): it leaves the table and its caller wakes. */
static void finish_call(salvo_rpc *rpc, struct rpc_call *call, int status, const salvo_error *err)
{
	table_remove(rpc, call);
	call->done = true;
	call->status = status;
	if (err)
		call->err = *err;
	pthread_cond_signal(&call->cond);
}

/* Fail every call in flight with why (lock held). */
static void fail_all(salvo_rpc *rpc, const salvo_error *why)
{
	for (size_t i = 0; i < BUCKETS; i++)
		while (rpc->buckets[i]) {
			count(&rpc->failed);
			finish_call(rpc, rpc->buckets[i], why->status, why);
		}
}

/* The sequence number of a correlation id this RPC client issued, or 0. */
static uint64_t our_seq(const salvo_rpc *rpc, const char *id)
{
	const char *digits;
	char *end;
	uint64_t seq;

	if (!id || strncmp(id, rpc->prefix, rpc->prefix_len) != 0)
		return 0;
	digits = id + rpc->prefix_len;
	if (*digits < '1' || *digits > '9')
		return 0;
	seq = strtoull(digits, &end, 10);
	return *end ? 0 : seq;
}

/* A reply: to its call, or dropped and counted. */
static void route(salvo_rpc *rpc, salvo_message *m)
{
	uint64_t seq = our_seq(rpc, salvo_message_props(m)->correlation_id);
	struct rpc_call *call;

	pthread_mutex_lock(&rpc->lock);
	call = seq ? table_find(rpc, seq) : NULL;
	if (call) {
		call->reply = m;
		count(&rpc->replies);
		finish_call(rpc, call, 0, NULL);
		m = NULL;
	} else if (seq && seq <= rpc->next_seq) {
		count(&rpc->late);
	} else {
		count(&rpc->unknown);
	}
	pthread_mutex_unlock(&rpc->lock);
	salvo_message_destroy(m);
}

/*
 * A new publisher and a reply consumer on its channel (the old publisher closed first).
 * The calling thread is the RPC client's (or salvo_rpc_new's, before it starts).
 */
static int make_consumer(salvo_rpc *rpc, salvo_error *err)
{
	salvo_consumer_opts co = {.flags = SALVO_CONSUME_NO_ACK | SALVO_CONSUME_NO_RECOVERY};
	salvo_publisher *p, *old;
	salvo_consumer *cons;
	int rc;

	pthread_mutex_lock(&rpc->pub_lock);
	old = rpc->p;
	rpc->p = NULL;
	pthread_mutex_unlock(&rpc->pub_lock);
	if (old)
		salvo_publisher_close(old, PUB_CLOSE_MS, NULL);
	rc = salvo_publisher_new(rpc->c, NULL, &p, err);
	if (rc)
		return rc;
	rc = salvo_consume(salvo_publisher_channel(p), REPLY_TO, &co, &cons, err);
	if (!rc) /* each reply is waited for: no read is held for them (io_recv.c) */
		atomic_store_explicit(&cons->no_hold, true, memory_order_relaxed);
	if (rc) {
		salvo_publisher_close(p, PUB_CLOSE_MS, NULL);
		return rc;
	}
	pthread_mutex_lock(&rpc->pub_lock);
	rpc->p = p;
	pthread_mutex_unlock(&rpc->pub_lock);
	pthread_mutex_lock(&rpc->lock);
	rpc->cons = cons; /* under lock: salvo_rpc_close interrupts it */
	if (rpc->state == RPC_RECOVERING) {
		rpc->state = RPC_READY;
		pthread_cond_broadcast(&rpc->state_cond);
	}
	/* A stop that came while it was being made found no consumer to interrupt. */
	if (rpc->stopping)
		sv_consumer_interrupt(cons);
	pthread_mutex_unlock(&rpc->lock);
	return 0;
}

/*
 * The consumer ended with why: the calls in flight cannot get their replies (a direct
 * reply-to reply goes to the channel that published, which is gone), so they fail now.
 */
static void consumer_ended(salvo_rpc *rpc, const salvo_error *why)
{
	int state = atomic_load(&rpc->c->state);
	const char *what = state == SV_CONN_CLOSING || state == SV_CONN_CLOSED
			       ? "the client was closed"
			   : why->kind == SALVO_ERROR_CHANNEL	 ? "the RPC channel was closed"
			   : why->kind == SALVO_ERROR_CONNECTION ? "the connection was lost"
								 : "the reply consumer ended";
	char cause[512];
	salvo_error e = *why;
	salvo_consumer *cons;

	snprintf(e.text, sizeof e.text, "%s before the reply came; the reply cannot come: %.170s",
		 what, salvo_error_format(why, cause, sizeof cause));
	e.status = SALVO_ERR_CLOSED;
	pthread_mutex_lock(&rpc->lock);
	cons = rpc->cons;
	rpc->cons = NULL;
	rpc->last_error = *why;
	if (rpc->state == RPC_READY)
		rpc->state = RPC_RECOVERING;
	fail_all(rpc, &e);
	pthread_mutex_unlock(&rpc->lock);
	salvo_consumer_destroy(cons);
}

/* The client closed for good, or the RPC client was: every call, now and later, fails. */
static void close_calls(salvo_rpc *rpc, const salvo_error *why)
{
	pthread_mutex_lock(&rpc->lock);
	rpc->state = RPC_CLOSED;
	rpc->closed_err = *why;
	fail_all(rpc, why);
	pthread_cond_broadcast(&rpc->state_cond);
	pthread_mutex_unlock(&rpc->lock);
}

/* Wait ms on state_cond, or less if a stop is asked; lock held. */
static void wait_ms(salvo_rpc *rpc, unsigned ms)
{
	struct timespec ts;

	sv_timespec_after(&ts, CLOCK_MONOTONIC, (int)ms);
	if (!rpc->stopping)
		pthread_cond_timedwait(&rpc->state_cond, &rpc->lock, &ts);
}

static bool stop_asked(salvo_rpc *rpc)
{
	bool stop;

	pthread_mutex_lock(&rpc->lock);
	stop = rpc->stopping;
	pthread_mutex_unlock(&rpc->lock);
	return stop;
}

static void note_error(salvo_rpc *rpc, const salvo_error *e)
{
	pthread_mutex_lock(&rpc->lock);
	rpc->last_error = *e;
	pthread_mutex_unlock(&rpc->lock);
}

static void *rpc_main(void *arg)
{
	salvo_rpc *rpc = arg;
	unsigned retry_ms = 0;

	while (!stop_asked(rpc)) {
		salvo_message *m;
		salvo_error e;
		int rc;

		if (!rpc->cons) {
			rc = sv_client_wait_open(rpc->c, &rpc->lock, &rpc->state_cond,
						 &rpc->stopping, &e);
			if (rc == 1)
				break;
			if (rc) {
				note_error(rpc, &e);
				close_calls(rpc, &e);
				return NULL;
			}
			rc = make_consumer(rpc, &e);
			if (rc) {
				note_error(rpc, &e);
				retry_ms = retry_ms ? retry_ms * 2 : RETRY_FIRST_MS;
				if (retry_ms > RETRY_MAX_MS)
					retry_ms = RETRY_MAX_MS;
				pthread_mutex_lock(&rpc->lock);
				wait_ms(rpc, retry_ms);
				pthread_mutex_unlock(&rpc->lock);
				continue;
			}
			retry_ms = 0;
			count(&rpc->restarts);
		}
		rc = salvo_consumer_get(rpc->cons, SALVO_FOREVER, &m, &e);
		if (rc == 0)
			route(rpc, m);
		else if (rc != SALVO_ERR_TIMEOUT)
			consumer_ended(rpc, &e);
		/* SALVO_ERR_TIMEOUT: interrupted by a stop, which the loop's test sees. */
	}
	return NULL;
}

static void rpc_free(salvo_rpc *rpc)
{
	pthread_mutex_destroy(&rpc->pub_lock);
	pthread_mutex_destroy(&rpc->lock);
	pthread_cond_destroy(&rpc->state_cond);
	free(rpc);
}

int salvo_rpc_new(salvo_client *c, const salvo_rpc_opts *opts, salvo_rpc **out, salvo_error *err)
{
	salvo_rpc *rpc;
	int rc;

	if (!c || !out)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_rpc_new: client and out are required");
	*out = NULL;
	rpc = calloc(1, sizeof *rpc);
	if (!rpc)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	rpc->c = c;
	rpc->max_calls = opts && opts->max_calls ? opts->max_calls : DEFAULT_CALLS;
	rpc->prefix_len =
	    (size_t)snprintf(rpc->prefix, sizeof rpc->prefix, "salvo-rpc-%ld-%llu-", (long)getpid(),
			     (unsigned long long)atomic_fetch_add(&rpc_serial, 1) + 1);
	pthread_mutex_init(&rpc->pub_lock, NULL);
	pthread_mutex_init(&rpc->lock, NULL);
	sv_cond_init_monotonic(&rpc->state_cond);
	rpc->state = RPC_RECOVERING;

	/* The first consumer on the caller's thread, so its errors come back from here. */
	rc = make_consumer(rpc, err);
	if (!rc) {
		/* pthread_create orders everything above before the thread's first step. */
		if (pthread_create(&rpc->thread, NULL, rpc_main, rpc) == 0) {
			*out = rpc;
			return 0;
		}
		salvo_consumer_destroy(rpc->cons);
		salvo_publisher_close(rpc->p, PUB_CLOSE_MS, NULL);
		rc = sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				  "cannot start the RPC client's thread");
	}
	rpc_free(rpc);
	return rc;
}

static int invalid(salvo_error *err, const char *what)
{
	return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			    "salvo_rpc_call: %s", what);
}

/*
 * Wait on cond (lock held) until deadline (NULL: none). Returns false once it has passed.
 */
static bool wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, const struct timespec *deadline)
{
	if (!deadline) {
		pthread_cond_wait(cond, lock);
		return true;
	}
	return pthread_cond_timedwait(cond, lock, deadline) != ETIMEDOUT;
}

/* Milliseconds left until deadline (NULL: SALVO_FOREVER), at least 1. */
static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ms;

	if (!deadline)
		return SALVO_FOREVER;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 1 ? 1 : ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Take a sequence number and a place in the table, waiting for a reply consumer and a free
 * place until deadline. Returns 0, or the error (lock held on entry and return). */
static int enter(salvo_rpc *rpc, struct rpc_call *call, const struct timespec *deadline,
		 int timeout_ms, salvo_error *err)
{
	for (;;) {
		bool full = rpc->in_flight >= rpc->max_calls;

		if (rpc->state == RPC_CLOSED) {
			sv_error_copy(err, &rpc->closed_err);
			return rpc->closed_err.status;
		}
		if (rpc->state == RPC_READY && !full)
			break;
		rpc->place_waiters += full;
		bool in_time = wait_until(&rpc->state_cond, &rpc->lock, deadline);
		rpc->place_waiters -= full;
		if (!in_time && rpc->state != RPC_CLOSED &&
		    (rpc->state != RPC_READY || rpc->in_flight >= rpc->max_calls))
			return sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					    "salvo_rpc_call: timed out after %d ms waiting for %s",
					    timeout_ms,
					    full ? "one of the calls in flight to end (max_calls)"
						 : "the reply consumer (the connection is being "
						   "recovered)");
	}
	call->seq = ++rpc->next_seq;
	table_insert(rpc, call);
	count(&rpc->calls);
	return 0;
}

int salvo_rpc_call(salvo_rpc *rpc, const salvo_msg *request, int timeout_ms, salvo_message **reply,
		   salvo_error *err)
{
	struct rpc_call call = {0};
	struct timespec ts, *deadline = NULL;
	char id[96];
	salvo_props props = {0};
	salvo_msg m;
	int rc;

	if (reply)
		*reply = NULL;
	if (!rpc || !request || !reply || !request->routing_key)
		return invalid(err, "rpc, request, its routing_key and reply are required");
	if (timeout_ms == 0 || timeout_ms < SALVO_FOREVER)
		return sv_error_set(
		    err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
		    "salvo_rpc_call: timeout %d ms (SALVO_FOREVER or more than 0: a "
		    "call always waits for its reply)",
		    timeout_ms);
	if (request->props && (request->props->correlation_id || request->props->reply_to))
		return invalid(err, "the request's correlation_id and reply_to are salvo's; leave "
				    "them NULL");
	if (request->props)
		props = *request->props;
	if (timeout_ms > 0) {
		sv_timespec_after(&ts, CLOCK_MONOTONIC, timeout_ms);
		deadline = &ts;
	}
	sv_cond_init_monotonic(&call.cond);

	pthread_mutex_lock(&rpc->lock);
	rc = enter(rpc, &call, deadline, timeout_ms, err);
	pthread_mutex_unlock(&rpc->lock);
	if (rc) {
		pthread_cond_destroy(&call.cond);
		return rc;
	}
	snprintf(id, sizeof id, "%s%llu", rpc->prefix, (unsigned long long)call.seq);
	props.correlation_id = id;
	props.reply_to = REPLY_TO;
	m = *request;
	m.props = &props;

	/* Published in slices of at most PUB_SLICE_MS under pub_lock: a call waiting for room
	 * in the ring (a blocked connection, a recovery) lets the other calls, the RPC
	 * client's thread and salvo_rpc_close have the lock in between, whatever its own
	 * timeout (SALVO_FOREVER included). */
	for (;;) {
		int left = ms_left(deadline);
		bool failed, stopping;

		pthread_mutex_lock(&rpc->pub_lock);
		pthread_mutex_lock(&rpc->lock);
		/* Failed already (the consumer ended since it entered): its publisher is gone. */
		failed = call.done;
		stopping = rpc->stopping;
		pthread_mutex_unlock(&rpc->lock);
		if (failed)
			rc = 0;
		else if (stopping || !rpc->p)
			rc = sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
					  "salvo_rpc_call: %s", stopping ? "the RPC client was closed"
								  : "the RPC client has no publisher");
		else
			rc = salvo_publish_msg(rpc->p, &m,
					       left < 0 || left > PUB_SLICE_MS ? PUB_SLICE_MS : left,
					       NULL, err);
		pthread_mutex_unlock(&rpc->pub_lock);
		if (rc != SALVO_ERR_TIMEOUT)
			break;
		if (deadline && left <= PUB_SLICE_MS) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "salvo_rpc_call: no room to publish the request within %d ms "
				     "(the connection is blocked or being recovered)",
				     timeout_ms);
			break;
		}
	}

	pthread_mutex_lock(&rpc->lock);
	if (rc && !call.done) {
		/* Not published: err holds why. */
		count(&rpc->failed);
		table_remove(rpc, &call);
		pthread_mutex_unlock(&rpc->lock);
		pthread_cond_destroy(&call.cond);
		return rc;
	}
	rc = 0;
	while (!call.done && wait_until(&call.cond, &rpc->lock, deadline))
		;
	if (!call.done) {
		count(&rpc->timeouts);
		table_remove(rpc, &call);
		rc = sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				  "salvo_rpc_call: no reply within %d ms (correlation id %s)",
				  timeout_ms, id);
	} else {
		rc = call.status;
		if (rc)
			sv_error_copy(err, &call.err);
	}
	pthread_mutex_unlock(&rpc->lock);
	pthread_cond_destroy(&call.cond);
	if (!rc)
		*reply = call.reply;
	else
		salvo_message_destroy(call.reply);
	return rc;
}

int salvo_rpc_close(salvo_rpc *rpc, int timeout_ms, salvo_error *err)
{
	salvo_error closed;
	salvo_publisher *p;
	bool ended;

	if (sv_check_timeout("salvo_rpc_close", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;
	if (!rpc)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_rpc_close: no RPC client");
	pthread_mutex_lock(&rpc->lock);
	if (rpc->closed) {
		pthread_mutex_unlock(&rpc->lock);
		return 0;
	}
	rpc->closed = rpc->stopping = true;
	if (rpc->cons)
		sv_consumer_interrupt(rpc->cons);
	pthread_cond_broadcast(&rpc->state_cond);
	/* The client's end, when it ended the thread first, says more than a close. */
	ended = rpc->state == RPC_CLOSED;
	pthread_mutex_unlock(&rpc->lock);
	pthread_join(rpc->thread, NULL);
	if (!ended) {
		sv_error_set(&closed, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
			     "the RPC client was closed");
		close_calls(rpc, &closed);
	}
	salvo_consumer_destroy(rpc->cons);
	rpc->cons = NULL;
	/* Calls still publishing hold pub_lock; once they let go, none comes back (closed). */
	pthread_mutex_lock(&rpc->pub_lock);
	p = rpc->p;
	rpc->p = NULL;
	pthread_mutex_unlock(&rpc->pub_lock);
	return p ? salvo_publisher_close(p, timeout_ms, err) : 0;
}

void salvo_rpc_destroy(salvo_rpc *rpc)
{
	if (!rpc)
		return;
	salvo_rpc_close(rpc, 5000, NULL);
	rpc_free(rpc);
}

void salvo_rpc_get_stats(salvo_rpc *rpc, salvo_rpc_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!rpc)
		return;
	st->calls = atomic_load_explicit(&rpc->calls, memory_order_relaxed);
	st->replies = atomic_load_explicit(&rpc->replies, memory_order_relaxed);
	st->timeouts = atomic_load_explicit(&rpc->timeouts, memory_order_relaxed);
	st->failed = atomic_load_explicit(&rpc->failed, memory_order_relaxed);
	st->late = atomic_load_explicit(&rpc->late, memory_order_relaxed);
	st->unknown = atomic_load_explicit(&rpc->unknown, memory_order_relaxed);
	st->restarts = atomic_load_explicit(&rpc->restarts, memory_order_relaxed);
	pthread_mutex_lock(&rpc->lock);
	st->in_flight = rpc->in_flight;
	st->last_error = rpc->last_error;
	pthread_mutex_unlock(&rpc->lock);
}

/* The server's side. */

int salvo_message_reply(const salvo_message *request, salvo_publisher *p, const salvo_msg *reply,
			int timeout_ms, salvo_error *err)
{
	const salvo_props *rp;
	salvo_props props = {0};
	salvo_msg m;

	if (!request || !p || !reply)
		return sv_error_set(
		    err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
		    "salvo_message_reply: request, publisher and reply are required");
	rp = salvo_message_props(request);
	if (!rp->reply_to || !rp->reply_to[0])
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_message_reply: the request has no reply_to: nobody to "
				    "answer");
	if (reply->exchange || reply->routing_key || (reply->props && reply->props->correlation_id))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "salvo_message_reply: the reply goes to the default exchange "
				    "with the request's reply_to and correlation_id; leave its "
				    "exchange, routing_key and correlation_id NULL");
	if (reply->props)
		props = *reply->props;
	props.correlation_id = rp->correlation_id;
	m = *reply;
	m.exchange = "";
	m.routing_key = rp->reply_to;
	m.props = &props;
	return salvo_publish_msg(p, &m, timeout_ms, NULL, err);
}
