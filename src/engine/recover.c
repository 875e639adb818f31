/* SPDX-License-Identifier: MIT */
/*
 * Ending and reconnecting. The loop calls sv_teardown at its safe point, between two turns,
 * once something recorded the connection's end (io_core.c): a close the application asked
 * for, or a failure that is final, closes everything (close_all); a failure worth
 * another connection (recoverable) starts recovery.
 *
 * Recovery lets the old socket's operations finish, closes every channel but the
 * publishers' and those with consumers recorded for topology recovery, then reconnects
 * with exponential backoff and jitter: the loop keeps turning meanwhile (taking requests,
 * holding methods for the next connection, serving a close) and calls sv_recover_step
 * when an attempt is due. Once connected, topology recovery (topology.c) and the
 * on-connect hooks run on a thread of their own (they make synchronous calls, which this
 * thread serves; recovery reopens the kept channels itself); the loop sees them finish
 * (sv_recover_hooks_done), ends what recovery did not bring back, and reopens the
 * publishers' channels, each reopening's last reply resuming its publisher
 * (sv_pub_reopened).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_internal.h"
#include "returns.h"

static void close_all(salvo_client *c, const salvo_error *why)
{
	struct sv_request *req;

	if (why)
		sv_count_possibly_lost(c);
	sv_stats_blocked(c, 0); /* a closed connection is not blocked any more */
	pthread_mutex_lock(&c->lock);
	if (why)
		c->error = *why;
	atomic_store(&c->state, SV_CONN_CLOSED);
	/* Requests held for a connection that will not come, then those queued. */
	CK_STAILQ_CONCAT(&c->held, &c->queue);
	pthread_mutex_unlock(&c->lock);

	salvo_error closed;
	if (!why) {
		sv_error_set(&closed, SALVO_ERR_CLOSED, SALVO_ERROR_CONNECTION,
			     "the connection is closed");
		why = &closed;
	}
	while ((req = CK_STAILQ_FIRST(&c->held))) {
		CK_STAILQ_REMOVE_HEAD(&c->held, link);
		/* A detach is answered by the exit path with the others (detach_done): its
		 * publisher may have been handed over by a close that stopped waiting. */
		if (req->kind == SV_REQ_DETACH && !req->pub->detach)
			req->pub->detach = req;
		else
			sv_request_complete(req, why->status, why);
	}
	/* Channels report the connection's end as "closed" (a local timeout or I/O error is
	 * not something to retry on a channel), with the connection's text and kind; a
	 * broker's connection.close keeps its reply code. */
	salvo_error chan_err = *why;
	if (chan_err.status < 0)
		chan_err.status = SALVO_ERR_CLOSED;
	sv_conn_fail_awaiting(c, why);
	for (unsigned id = 1; id <= c->sess.channel_max; id++) {
		salvo_channel *ch = c->channels[id];
		if (!ch)
			continue;
		sv_channel_mark_closed(ch, &chan_err);
		sv_fail_awaiting(ch, &chan_err);
		c->channels[id] = NULL;
		sv_channel_put(ch);
	}
	if (c->close_req) {
		/* Closing on request ends well only through close-ok (handled by the caller). */
		sv_request_complete(c->close_req, why->status, why);
		c->close_req = NULL;
	}
	shutdown(c->sess.fd, SHUT_RDWR);
}

/*
 * Whether a lost connection is worth another: the network or the broker's restart, yes;
 * the broker refusing us (403, 530), a protocol error, or a close we asked for, no.
 */
static bool recoverable(salvo_client *c, const salvo_error *why)
{
	if (!c->set.conf.reconnect || c->close_req || atomic_load(&c->state) != SV_CONN_OPEN)
		return false;
	return why->status == SALVO_ERR_IO || why->status == SALVO_ERR_TIMEOUT ||
	       why->status == SALVO_ERR_TLS /* a record that does not decrypt: transport */ ||
	       why->status == 320 /* CONNECTION_FORCED */ || why->status == 541 /* INTERNAL_ERROR */;
}

/* A connection that ends for good without the application asking: a supervisor polling
 * events learns it as any loss (lost, then giving up), with the error. */
static void report_end(salvo_client *c, const salvo_error *why, const char *reason)
{
	salvo_event ev = {.kind = SALVO_EVENT_CONNECTION_LOST, .error = *why};

	sv_event_push(c, &ev);
	ev.kind = SALVO_EVENT_GIVING_UP;
	snprintf(ev.reason, sizeof ev.reason, "%s", reason);
	sv_event_push(c, &ev);
}

/* reason: why no more attempts (NULL: the error says it). */
static void give_up(salvo_client *c, const salvo_error *why, const char *reason)
{
	salvo_event ev = {.kind = SALVO_EVENT_GIVING_UP, .error = *why};

	if (reason)
		snprintf(ev.reason, sizeof ev.reason, "%s", reason);

	sv_event_push(c, &ev);
	close_all(c, why);
}

/* Close the old socket (the loop has let its operations finish) and drop what its
 * session buffered. */
static void drop_socket(salvo_client *c)
{
	int fd = c->sess.fd;

	pthread_mutex_lock(&c->lock);
	c->sess.fd = -1; /* stop_io must not shut down a reused number */
	pthread_mutex_unlock(&c->lock);
	close(fd);
	sv_transport_reset(c);
}

/* When the next attempt is due: exponential, with jitter (between half the delay and all
 * of it). last: why the connection is down, the loss or the attempt that just failed. */
static void schedule_attempt(salvo_client *c, const salvo_error *last)
{
	uint64_t delay = c->rec_delay_ms;
	uint64_t wait = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);
	salvo_event ev = {.kind = SALVO_EVENT_RECONNECTING, .attempt = ++c->rec_attempt,
			  .delay_ms = (unsigned)wait, .error = *last};

	sv_event_push(c, &ev);
	c->rec_next_ns = sv_now_ns() + wait * 1000000u;
}

/*
 * A channel of the application's with consumers recorded for topology recovery lives on
 * for recovery to reopen (true): its other consumers end now (a listener's makes its own
 * again at once), the recorded ones stay listed, to be made again on the same objects.
 */
static bool keep_for_consumers(salvo_channel *ch, const salvo_error *why)
{
	struct salvo_consumer **p = &ch->consumers;
	bool any = false;

	for (struct salvo_consumer *k = ch->consumers; k && !any; k = k->next)
		any = atomic_load(&k->recorded);
	if (!any)
		return false;
	ch->incoming_to = NULL;
	while (*p) {
		struct salvo_consumer *k = *p;

		if (atomic_load(&k->recorded)) {
			p = &k->next;
			continue;
		}
		*p = k->next;
		sv_consumer_end(k, why);
		sv_consumer_put(k);
	}
	return true;
}

/*
 * The connection is lost and worth another: let the old socket's operations finish,
 * close every channel but the publishers' and those kept for their consumers, and
 * schedule the first attempt.
 */
static void recover_begin(salvo_client *c, const salvo_error *why)
{
	salvo_event ev = {.kind = SALVO_EVENT_CONNECTION_LOST, .error = *why};
	salvo_error chan_err;

	c->lost = *why;
	chan_err = sv_lost_error(c);
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->state, SV_CONN_RECOVERING);
	pthread_mutex_unlock(&c->lock);
	sv_event_push(c, &ev);
	drop_socket(c);
	/* A message cut by the loss cannot be finished on a new channel: confirm modes
	 * resend it whole from released; best effort drops its rest. */
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		uint64_t sent = sv_ring_sent(&pub->ring);

		if (!pub->slots && pub->must_end > sent) {
			sv_ring_mark_sent(&pub->ring, (size_t)(pub->must_end - sent));
			sv_ring_release(&pub->ring, pub->must_end);
		}
		pub->must_end = 0;
	}
	c->rlen = 0;
	c->input_pending = false;
	c->out_len = c->out_sent = c->out_next_len = 0;
	c->partial_out = false;
	c->partial_pub = NULL;
	c->recv_hold_until = 0;
	/* The next connection's reads measure afresh. */
	c->stream_deliveries = 0;
	c->stream_full = false;
	c->ack_read_samples = 0;
	c->blocked = false;
	sv_stats_blocked(c, 0);
	sv_count_possibly_lost(c);

	sv_conn_fail_awaiting(c, &chan_err);
	/* Channels: publishers' wait for the new connection; the application's end here. */
	for (unsigned id = 1; id <= c->sess.channel_max; id++) {
		salvo_channel *ch = c->channels[id];

		if (!ch)
			continue;
		sv_fail_awaiting(ch, &chan_err);
		sv_prefetch_clear(c, ch); /* its deliveries are gone with the connection */
		sv_return_free(c, ch->returning);
		ch->returning = NULL;
		ch->returning_seen = false;
		/* A channel.flow of the lost connection: the new one starts with flow on. */
		ch->flow_stopped = false;
		if (ch->pub && !ch->pub->detach && !sv_pub_closed(ch->pub)) {
			/* Consumers on a publisher's channel (salvo_publisher_channel) are gone
			 * with the broker's side of it. */
			sv_end_consumers(ch, &chan_err);
			ch->recovering = true;
			/* Its delivery tags died with the connection: acks of them are refused
			 * from now on, not sent before the channel is reopened (hooks may run
			 * first) or on the reopened channel. */
			atomic_store_explicit(&ch->generation,
					      atomic_fetch_add(&c->channel_serial, 1) + 1,
					      memory_order_relaxed);
			ch->close_sent = ch->peer_closed = false;
			continue;
		}
		if (!ch->pub && keep_for_consumers(ch, &chan_err)) {
			ch->recovering = true;
			/* As a publisher's: its delivery tags died with the connection. */
			atomic_store_explicit(&ch->generation,
					      atomic_fetch_add(&c->channel_serial, 1) + 1,
					      memory_order_relaxed);
			continue;
		}
		sv_channel_mark_closed(ch, &chan_err);
		sv_channel_forget(c, ch);
	}
	sv_settle_pubs(c);
	c->rec_attempt = 0;
	c->rec_delay_ms = c->set.conf.reconnect_initial_delay;
	schedule_attempt(c, why);
}

void sv_teardown(salvo_client *c)
{
	salvo_error why = c->end_why;
	enum sv_end_kind kind = c->end_kind;

	c->end_pending = false;
	if (kind == SV_END_CLOSED) {
		/* Closing on request ends well only through close-ok. */
		sv_request_complete(c->close_req, 0, NULL);
		c->close_req = NULL;
		close_all(c, NULL);
		return;
	}
	if (kind == SV_END_FAILED && recoverable(c, &why)) {
		recover_begin(c, &why);
		return;
	}
	if (!c->close_req && atomic_load(&c->state) == SV_CONN_OPEN)
		report_end(c, &why,
			   kind == SV_END_FINAL ? "not retried: blocked for longer than blocked_timeout"
			   : c->set.conf.reconnect
				   ? "not retried: reconnection is for I/O errors, missed heartbeats, "
				     "320 and 541"
				   : "not retried: reconnect is off");
	close_all(c, &why);
}

/*
 * Reopen a publisher's channel, with the same number (its ring holds frames that name
 * it), and put it back in confirm mode: requests of the I/O thread's own, pipelined; the
 * last one's reply resumes the publisher.
 */
static void reopen(salvo_client *c, struct salvo_publisher *pub)
{
	struct sv_method open = {.id = SV_CHANNEL_OPEN}, select = {.id = SV_CONFIRM_SELECT};
	struct sv_method *steps[2] = {&open, pub->slots ? &select : NULL};
	uint32_t replies[2] = {SV_CHANNEL_OPEN_OK, SV_CONFIRM_SELECT_OK};
	salvo_channel *ch = pub->ch;

	sv_content_init(&ch->content);
	/* A new opening: delivery tags start again. */
	atomic_store_explicit(&ch->generation, atomic_fetch_add(&c->channel_serial, 1) + 1,
			      memory_order_relaxed);
	sv_acked_free(&ch->acked);
	sv_acked_init(&ch->acked);
	for (int i = 0; i < 2 && steps[i]; i++) {
		/* The last step's reply resumes the publisher. */
		bool last = i == 1 || !pub->slots;
		salvo_error e;

		if (sv_channel_own_request(c, ch, steps[i], replies[i],
					   last ? sv_pub_reopened : NULL, last ? pub : NULL))
			continue;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "out of memory reopening channel %u", ch->id);
		sv_conn_fail(c, &e);
		return;
	}
}

/*
 * Topology recovery is over: a kept channel it did not reopen (its consumers all skipped
 * by the filter or refused) closes, and a consumer it did not make again ends.
 */
static void sweep_unrecovered(salvo_client *c)
{
	salvo_error e = sv_lost_error(c);

	snprintf(e.text, sizeof e.text,
		 "not recovered after the connection was lost (skipped by the topology filter, "
		 "or refused: see SALVO_EVENT_TOPOLOGY_FAILED)");
	for (unsigned id = 1; id <= c->sess.channel_max; id++) {
		salvo_channel *ch = c->channels[id];
		struct salvo_consumer **p;

		if (!ch || ch->pub)
			continue;
		if (ch->recovering) {
			sv_channel_mark_closed(ch, &e);
			sv_fail_awaiting(ch, &e);
			sv_channel_forget(c, ch);
			continue;
		}
		for (p = &ch->consumers; *p;) {
			struct salvo_consumer *k = *p;

			if (k->live_gen == c->generation) {
				p = &k->next;
				continue;
			}
			*p = k->next;
			if (ch->incoming_to == k)
				ch->incoming_to = NULL;
			sv_consumer_end(k, &e);
			sv_consumer_put(k);
		}
	}
}

/* The hooks ran (or there were none): reopen the publishers' channels. */
static void resume_publishers(salvo_client *c)
{
	c->paused = false;
	sweep_unrecovered(c);
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i]->ch->recovering)
			reopen(c, c->pubs[i]);
}

/* The hooks' thread: run them, leave the result for the loop, wake it. */
struct hook_run {
	salvo_client *c;
	uint64_t generation; /* the connection they run for */
};

static void *hook_main(void *arg)
{
	struct hook_run *run = arg;
	salvo_client *c = run->c;
	uint64_t generation = run->generation;
	salvo_error err;
	int status;

	free(run);
	memset(&err, 0, sizeof err);
	status = sv_topo_recover(c, generation, &err);
	if (!status)
		status = sv_run_hooks(c, &err);
	pthread_mutex_lock(&c->lock);
	/* A thread for a connection lost since may finish after a later one's: it must not
	 * hide the later one's result. */
	if (generation + 1 > c->hooks_finished) {
		c->hooks_finished = generation + 1;
		c->hook_status = status;
		c->hook_err = err;
	}
	pthread_mutex_unlock(&c->lock);
	/* Unconditionally, as a request does: the loop looks at hooks_finished each turn
	 * while paused, and this makes sure it turns. */
	sv_client_wake(c);
	sv_client_put(c);
	return NULL;
}

void sv_recover_hooks_done(salvo_client *c)
{
	salvo_error err;
	bool finished;
	int status;

	pthread_mutex_lock(&c->lock);
	/* The hooks of a connection lost since do not count: the current one has its own. */
	finished = c->hooks_finished == c->generation + 1;
	status = c->hook_status;
	err = c->hook_err;
	pthread_mutex_unlock(&c->lock);
	if (!finished || !sv_live(c))
		return;
	if (status && c->close_req)
		/* The application's close came while they ran (their calls refused by it): the
		 * close ends the connection through close-ok, not as a failure. */
		return;
	if (status) {
		/* A hook failed: this connection is not ready; try again. */
		err.status = SALVO_ERR_IO;
		err.kind = SALVO_ERROR_CONNECTION;
		sv_conn_fail(c, &err);
		return;
	}
	resume_publishers(c);
}

/* Connected again: take the session, tell the application, run the hooks or resume. */
static void reconnected(salvo_client *c, const struct sv_session *sess)
{
	size_t ep = (c->next_endpoint + c->set.conf.n_endpoints - 1) % c->set.conf.n_endpoints;
	salvo_event ev = {.kind = SALVO_EVENT_RECONNECTED, .attempt = c->rec_attempt};
	salvo_error err;

	pthread_mutex_lock(&c->lock);
	c->sess = *sess;
	pthread_mutex_unlock(&c->lock);
	sv_reader_init(&c->reader, c->sess.frame_max);
	c->last_send_ns = c->last_recv_ns = sv_now_ns();
	atomic_fetch_add(&c->reconnects, 1);
	atomic_store_explicit(&c->endpoint_at, (uint32_t)ep, memory_order_relaxed);
	c->generation++;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->state, SV_CONN_OPEN);
	/* What waited for this connection goes first. */
	CK_STAILQ_CONCAT(&c->held, &c->queue);
	CK_STAILQ_MOVE(&c->queue, &c->held, link);
	CK_STAILQ_INIT(&c->held);
	pthread_mutex_unlock(&c->lock);
	snprintf(ev.endpoint, sizeof ev.endpoint, "%s:%u", c->set.conf.endpoints[ep].host,
		 c->set.conf.endpoints[ep].port);
	sv_event_push(c, &ev);
	/* The records that carried connection.open-ok may have brought the broker's next
	 * frames. */
	sv_decode_input(c, 0);
	if (!sv_live(c))
		return; /* lost again: the loop's safe point sees to it */
	if (c->set.conf.n_hooks || sv_topo_pending(c)) {
		struct hook_run *run = malloc(sizeof *run);
		pthread_t t;

		c->paused = true;
		atomic_fetch_add(&c->refs, 1);
		if (run) {
			*run = (struct hook_run){c, c->generation};
			if (pthread_create(&t, NULL, hook_main, run) == 0) {
				pthread_detach(t);
				return;
			}
			free(run);
		}
		atomic_fetch_sub(&c->refs, 1);
		sv_error_set(&err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "cannot start a thread for topology recovery and the on-connect "
			     "hooks");
		give_up(c, &err, NULL);
		return;
	}
	resume_publishers(c);
}

uint64_t sv_recover_step(salvo_client *c, uint64_t now)
{
	struct sv_session sess;
	salvo_error err;

	if (c->close_req) {
		give_up(c, &c->lost, NULL);
		return 0;
	}
	if (now < c->rec_next_ns)
		return c->rec_next_ns;
	memset(&err, 0, sizeof err);
	if (sv_connect_any(&c->set, &c->creds, &sess, &c->next_endpoint, c, &err)) {
		/* 403 again with the same credentials; a callback may have fresher ones for
		 * the next attempt. */
		if (err.status == 530 || (err.status == 403 && !c->set.conf.creds_fn)) {
			give_up(c, &err, NULL);
			return 0;
		}
		if (c->set.conf.reconnect_max_attempts &&
		    c->rec_attempt >= c->set.conf.reconnect_max_attempts) {
			give_up(c, &err, "reconnect.max_attempts reached");
			return 0;
		}
		c->rec_delay_ms = c->rec_delay_ms * 2 > c->set.conf.reconnect_max_delay
					  ? c->set.conf.reconnect_max_delay
					  : c->rec_delay_ms * 2;
		schedule_attempt(c, &err);
		return c->rec_next_ns;
	}
	/* The rings hold frames cut to the first connection's frame_max, on their channels. */
	if (sess.frame_max < c->session_frame_max || sess.channel_max < c->sess.channel_max) {
		sv_error_set(&err, SALVO_ERR_LIMIT, SALVO_ERROR_CONNECTION,
			     "the broker now allows frame_max %u and channel_max %u, below the "
			     "first connection's %u and %u",
			     sess.frame_max, sess.channel_max, c->session_frame_max,
			     c->sess.channel_max);
		close(sess.fd);
		sv_tls_free(sess.tls);
		give_up(c, &err, NULL);
		return 0;
	}
	sess.channel_max = c->sess.channel_max; /* the tables are sized for it */
	reconnected(c, &sess);
	return 0;
}
