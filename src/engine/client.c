/* SPDX-License-Identifier: MIT */
/*
 * The client's life (connect, start the I/O thread, close, free), its channel numbers and
 * its events. Requests to the I/O thread are request.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "envelope.h"
#include "returns.h"
#include "tls.h"

/* Channel numbers. */

int sv_channel_id_alloc(salvo_client *c)
{
	int id = -1;

	pthread_mutex_lock(&c->lock);
	for (unsigned w = 0; w <= c->sess.channel_max / 64u && id < 0; w++) {
		uint64_t free_bits = ~c->channel_ids[w];
		if (!free_bits)
			continue;
		unsigned bit = (unsigned)__builtin_ctzll(free_bits);
		if (w * 64u + bit > c->sess.channel_max)
			break;
		c->channel_ids[w] |= UINT64_C(1) << bit;
		id = (int)(w * 64u + bit);
	}
	pthread_mutex_unlock(&c->lock);
	return id;
}

void sv_channel_id_free(salvo_client *c, uint16_t id)
{
	pthread_mutex_lock(&c->lock);
	c->channel_ids[id / 64u] &= ~(UINT64_C(1) << (id % 64u));
	pthread_mutex_unlock(&c->lock);
}

void sv_channel_put(salvo_channel *ch)
{
	salvo_client *c = ch->client;

	if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
		return;
	sv_return_free(c, ch->returning);
	sv_delivery_free(ch->incoming);
	sv_acked_free(&ch->acked);
	free(ch);
	sv_client_put(c);
}

/* Events. */

void sv_event_push(salvo_client *c, const salvo_event *ev)
{
	size_t cap = sizeof c->events / sizeof c->events[0];

	/* First, so a line is out before its event can be polled. */
	sv_log_event(&c->set.log, ev);
	pthread_mutex_lock(&c->lock);
	if (c->ev_count == cap) {
		/* Full: the oldest goes. */
		c->ev_head = (c->ev_head + 1) % cap;
		c->ev_count--;
		c->ev_dropped++;
	}
	c->events[(c->ev_head + c->ev_count) % cap] = *ev;
	c->events[(c->ev_head + c->ev_count) % cap].time_ns = sv_now_ns();
	c->ev_count++;
	pthread_cond_broadcast(&c->ev_cond);
	pthread_mutex_unlock(&c->lock);
}

/* Wait on ev_cond until deadline_ns (monotonic; 0: for ever) or a statistics document
 * due at due_ns (0: none), whichever comes first. */
static int wait_event(salvo_client *c, uint64_t deadline_ns, uint64_t due_ns)
{
	uint64_t until = deadline_ns, now;
	struct timespec ts;

	if (due_ns && (!until || due_ns < until))
		until = due_ns;
	if (!until)
		return pthread_cond_wait(&c->ev_cond, &c->lock);
	/* ev_cond runs on CLOCK_REALTIME (shared with older code paths): wait the time left. */
	now = sv_now_ns();
	if (until <= now)
		return ETIMEDOUT;
	sv_timespec_after(&ts, CLOCK_REALTIME, (int)((until - now + 999999) / 1000000));
	return pthread_cond_timedwait(&c->ev_cond, &c->lock, &ts);
}

int salvo_client_poll_event(salvo_client *c, salvo_event *ev, int timeout_ms)
{
	uint64_t deadline = 0, due;
	int rc = 0;

	if (sv_check_timeout("salvo_client_poll_event", timeout_ms, NULL))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!c || !ev)
		return SALVO_ERR_INVALID_ARGUMENT;
	if (timeout_ms > 0)
		deadline = sv_now_ns() + (uint64_t)timeout_ms * 1000000u;
	pthread_mutex_lock(&c->lock);
	/* A statistics document that is due is written first (the lock released meanwhile),
	 * also while waiting. */
	due = sv_stats_poll_locked(c, sv_now_ns());
	while (!c->ev_count && timeout_ms != 0) {
		uint64_t now = sv_now_ns();
		if (deadline && now >= deadline)
			break;
		if (due && now >= due) {
			due = sv_stats_poll_locked(c, now);
			continue;
		}
		rc = wait_event(c, deadline, due);
		if (rc == ETIMEDOUT)
			due = sv_stats_poll_locked(c, sv_now_ns());
	}
	if (c->ev_count) {
		*ev = c->events[c->ev_head];
		c->ev_head = (c->ev_head + 1) % (sizeof c->events / sizeof c->events[0]);
		c->ev_count--;
		rc = 0;
	} else {
		rc = timeout_ms == 0 ? SALVO_ERR_WOULD_BLOCK : SALVO_ERR_TIMEOUT;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

uint64_t salvo_client_events_dropped(salvo_client *c)
{
	uint64_t n;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	n = c->ev_dropped;
	pthread_mutex_unlock(&c->lock);
	return n;
}

uint64_t salvo_client_reconnects(salvo_client *c)
{
	return c ? atomic_load_explicit(&c->reconnects, memory_order_relaxed) : 0;
}

/* Run the configuration's on-connect hooks in order; the first failure stops them. What
 * they declare is not recorded for topology recovery: they run again after every
 * reconnection (recorded, a server-named queue or a consumer of theirs would be made
 * once more by each). */
int sv_run_hooks(salvo_client *c, salvo_error *err)
{
	int rc = 0;

	sv_topo_quiet(true);
	for (size_t i = 0; i < c->set.conf.n_hooks && !rc; i++) {
		salvo_error e;

		memset(&e, 0, sizeof e);
		rc = c->set.conf.hooks[i].fn(c, c->set.conf.hooks[i].arg, &e);
		if (rc) {
			if (!e.text[0])
				sv_error_set(&e, rc, SALVO_ERROR_LOCAL, "on-connect hook %zu failed",
					     i + 1);
			e.status = rc;
			sv_error_copy(err, &e);
		}
	}
	sv_topo_quiet(false);
	return rc;
}

/* The endpoint as events and errors name it: host:port, an IPv6 address in brackets. */
static void endpoint_name(const struct sv_endpoint *ep, char *buf, size_t size)
{
	bool v6 = strchr(ep->host, ':') != NULL;

	snprintf(buf, size, "%s%s%s:%u", v6 ? "[" : "", ep->host, v6 ? "]" : "",
		 (unsigned)ep->port);
}

/*
 * All endpoints failed: err (the last failure) gets a text naming each endpoint and its
 * failure, in the order tried, cut at the end of err->text when there are many.
 */
static void all_failed(const struct sv_settings *set, size_t first, size_t tried,
		       const salvo_error *failed, salvo_error *err)
{
	size_t n = set->conf.n_endpoints, used;
	char text[sizeof err->text];

	used = (size_t)snprintf(text, sizeof text, "every endpoint failed: ");
	for (size_t k = 0; k < tried && used < sizeof text; k++) {
		char name[SV_HOST_MAX + 16];
		const char *why =
		    failed[k].text[0] ? failed[k].text : salvo_err2str(failed[k].status);

		endpoint_name(&set->conf.endpoints[(first + k) % n], name, sizeof name);
		/* Most texts name the endpoint already ("connect to 127.0.0.1:5672: ..."). */
		used += (size_t)snprintf(text + used, sizeof text - used, "%s%s%s%s",
					 k ? "; " : "", strstr(why, name) ? "" : name,
					 strstr(why, name) ? "" : ": ", why);
	}
	memcpy(err->text, text, sizeof text);
}

/*
 * Connect to the endpoints in turn, starting at *next (NULL: the first), until one
 * answers; *next then names the one after it. The login is creds', which the credentials
 * callback (if any) refreshes first: one question per attempt, whatever the number of
 * endpoints, all of which share one user and password; its failure is the attempt's. A
 * refusal that another endpoint would repeat (403 bad credentials, 530 missing vhost)
 * stops at once. When one answers after others failed, each failure is an
 * SALVO_EVENT_ENDPOINT_FAILED event of report (NULL: none); when all fail, err's text
 * names each one's failure. Returns sv_connect's status, or the callback's.
 */
int sv_connect_any(const struct sv_settings *set, struct salvo_credentials *creds,
		   struct sv_session *s, size_t *next, salvo_client *report, salvo_error *err)
{
	size_t n = set->conf.n_endpoints, first = next ? *next % n : 0;
	salvo_error failed[SV_ENDPOINTS_MAX];
	int rc = SALVO_ERR_IO;

	salvo_error local;

	if (!err)
		err = &local;
	memset(err, 0, sizeof *err);
	rc = sv_creds_refresh(&set->conf, creds, err);
	if (rc)
		return rc;
	for (size_t k = 0; k < n; k++) {
		const struct sv_endpoint *ep = &set->conf.endpoints[(first + k) % n];
		struct sv_connect_params p = set->connect;

		p.user = creds->user;
		p.password = creds->password;
		p.host = ep->host;
		p.port = (uint16_t)ep->port;
		p.tls = ep->tls;
		memset(err, 0, sizeof *err);
		rc = sv_connect(&p, s, err);
		if (!rc) {
			sv_log(&set->log, SALVO_LOG_INFO, "connection",
			       "connected to %s:%u (frame_max %u, channel_max %u, heartbeat %u s)",
			       ep->host, (unsigned)ep->port, (unsigned)s->frame_max,
			       (unsigned)s->channel_max, (unsigned)s->heartbeat);
		} else if (rc != SALVO_ERR_CLOSED && sv_log_enabled(&set->log, SALVO_LOG_DEBUG)) {
			char e[512];

			sv_log(&set->log, SALVO_LOG_DEBUG, "connection", "connecting to %s:%u failed: %s",
			       ep->host, (unsigned)ep->port, salvo_error_format(err, e, sizeof e));
		}
		if (!rc || rc == 403 || rc == 530 || rc == SALVO_ERR_CLOSED) {
			if (next)
				*next = first + k + 1;
			for (size_t j = 0; !rc && report && j < k; j++) {
				salvo_event ev = {.kind = SALVO_EVENT_ENDPOINT_FAILED,
						  .error = failed[j]};

				endpoint_name(&set->conf.endpoints[(first + j) % n], ev.endpoint,
					      sizeof ev.endpoint);
				sv_event_push(report, &ev);
			}
			return rc;
		}
		failed[k] = *err;
	}
	if (n > 1)
		all_failed(set, first, n, failed, err);
	return rc;
}

/* Client. */

int sv_settings_from_conf(const salvo_conf *conf, struct sv_settings *set, salvo_error *err)
{
	const struct sv_endpoint *ep;

	set->conf = *conf;
	/* A failover to amqp:// after amqps:// would carry on in clear without a word. */
	for (size_t i = 1; i < set->conf.n_endpoints; i++)
		if (set->conf.endpoints[i].tls != set->conf.endpoints[0].tls)
			return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
					    "the endpoints mix amqp:// and amqps://: a reconnection "
					    "could drop TLS; use one scheme for all");
	ep = &set->conf.endpoints[0];
	set->connect = (struct sv_connect_params){
		.host = ep->host,
		.port = (uint16_t)ep->port,
		.user = set->conf.user,
		.password = set->conf.password,
		.vhost = set->conf.vhost,
		.channel_max = (uint16_t)set->conf.channel_max,
		.frame_max = set->conf.frame_max,
		.heartbeat = (uint16_t)set->conf.heartbeat,
		.connection_name = set->conf.connection_name,
		.timeout_ms = (int)set->conf.connection_timeout,
		.tls = ep->tls,
		.auth = (enum sv_auth)set->conf.auth_mechanism,
	};
	sv_tls_settings_from_conf(&set->conf, &set->connect.tls_settings);
	sv_log_init(&set->log, &set->conf);
	set->connect.tls_settings.log = &set->log;
	set->rpc_timeout_ms = (int)set->conf.rpc_timeout;
	set->ring_size = set->conf.ring_size;
	set->window = set->conf.window;
	set->uring_entries = set->conf.io_uring_entries;
	set->consumer_buffer_bytes = set->conf.consumer_buffer_bytes;
	set->consumer_batch_max_bytes = set->conf.consumer_batch_max_bytes;
	set->returns_max_bytes = set->conf.returns_max_bytes;
	return 0;
}

void sv_settings_free(struct sv_settings *set)
{
	/* volatile: a plain memset of memory about to be freed may be optimised away */
	volatile char *p = set->conf.password;
	for (size_t i = 0; i < sizeof set->conf.password; i++)
		p[i] = 0;
}

static void client_free(salvo_client *c)
{
	if (c->uring_ready)
		io_uring_queue_exit(&c->uring);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	if (c->cancel_fd >= 0)
		close(c->cancel_fd);
	if (c->sess.fd >= 0)
		close(c->sess.fd);
	sv_tls_free(c->sess.tls);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->stats_lock);
	sv_topo_free(&c->topo);
	free(c->stats_prev);
	pthread_cond_destroy(&c->ev_cond);
	pthread_mutex_destroy(&c->disp_lock);
	pthread_cond_destroy(&c->disp_cond);
	free(c->channel_ids);
	free(c->channels);
	free(c->pubs);
	free(c->rbuf);
	free(c->tls_in);
	free(c->tls_out);
	free(c->out);
	free(c->out_next);
	free(c->iov);
	free(c->iov_pub);
	sv_scratch_free(&c->zbuf);
	sv_settle_free_all(sv_settle_take(c));
	sv_delivery_cache_free(c);
	sv_creds_wipe(&c->creds);
	sv_settings_free(&c->set);
	free(c);
}

int salvo_client_new(const salvo_conf *conf, salvo_client **out, salvo_error *err)
{
	return salvo_client_new_at(conf, 0, out, err);
}

int salvo_client_new_at(const salvo_conf *conf, size_t first, salvo_client **out,
			salvo_error *err)
{
	salvo_client *c;
	int rc;

	if (!conf || !out) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_client_new: conf and out are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	*out = NULL;
	c = sv_zalloc_lines(sizeof *c);
	if (!c)
		goto nomem;
	c->wake_fd = c->cancel_fd = -1;
	c->sess.fd = -1;
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	CK_STAILQ_INIT(&c->queue);
	CK_STAILQ_INIT(&c->held);
	CK_STAILQ_INIT(&c->await0);
	pthread_mutex_init(&c->stats_lock, NULL);
	pthread_cond_init(&c->ev_cond, NULL);
	pthread_mutex_init(&c->disp_lock, NULL);
	sv_cond_init_monotonic(&c->disp_cond);
	sv_topo_init(&c->topo, conf);
	rc = sv_settings_from_conf(conf, &c->set, err);
	if (rc) {
		client_free(c);
		return rc;
	}

	/* The configuration's order: every client made from it draws the same. */
	if (c->set.conf.endpoints_shuffle)
		sv_endpoints_shuffle(c->set.conf.endpoints, c->set.conf.n_endpoints,
				     c->set.conf.shuffle_seed);
	c->next_endpoint = first % c->set.conf.n_endpoints;
	sv_creds_init(&c->creds, &c->set.conf);
	rc = sv_connect_any(&c->set, &c->creds, &c->sess, &c->next_endpoint, c, err);
	if (rc) {
		client_free(c);
		return rc;
	}
	c->session_frame_max = c->sess.frame_max;
	atomic_init(&c->endpoint_at, (uint32_t)((c->next_endpoint + c->set.conf.n_endpoints - 1) %
						c->set.conf.n_endpoints));
	/* Reconnections ask for no more: the read buffer and the rings are cut to it. */
	c->set.connect.frame_max = c->sess.frame_max;

	c->channel_ids = calloc(c->sess.channel_max / 64u + 1, sizeof *c->channel_ids);
	c->channels = calloc((size_t)c->sess.channel_max + 1, sizeof *c->channels);
	/* Room for a whole frame beyond a partial one, so a read never has to wait for
	 * space; more only saves system calls. */
	c->rcap = 2 * (size_t)c->sess.frame_max + 65536;
	c->rbuf = malloc(c->rcap);
	/* amqps (every endpoint then is: sv_settings_from_conf refuses mixed lists). */
	if (c->set.connect.tls)
		c->tls_in = malloc(SV_TLS_IN_SIZE);
	if (!c->channel_ids || !c->channels || !c->rbuf || (c->set.connect.tls && !c->tls_in)) {
		client_free(c);
		goto nomem;
	}
	c->channel_ids[0] = 1; /* channel 0 is the connection's */
	sv_reader_init(&c->reader, c->sess.frame_max);

	c->wake_fd = eventfd(0, EFD_CLOEXEC);
	c->cancel_fd = eventfd(0, EFD_CLOEXEC);
	c->set.connect.cancellable = true;
	c->set.connect.cancel_fd = c->cancel_fd;
	if (c->wake_fd < 0 || c->cancel_fd < 0) {
		sv_error_set(err, SALVO_ERR_IO, SALVO_ERROR_LOCAL, "eventfd: %s", strerror(errno));
		client_free(c);
		return SALVO_ERR_IO;
	}
	rc = io_uring_queue_init(c->set.uring_entries, &c->uring, 0);
	if (rc < 0) {
		sv_error_set(err, SALVO_ERR_IO, SALVO_ERROR_LOCAL, "io_uring_queue_init: %s",
			     strerror(-rc));
		client_free(c);
		return SALVO_ERR_IO;
	}
	c->uring_ready = true;
	c->last_send_ns = c->last_recv_ns = sv_now_ns();
	atomic_init(&c->state, SV_CONN_OPEN);
	rc = pthread_create(&c->io_thread, NULL, sv_io_main, c);
	if (rc) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
			     "cannot start the I/O thread: %s", strerror(rc));
		client_free(c);
		return SALVO_ERR_NO_MEMORY;
	}
	rc = sv_run_hooks(c, err);
	if (rc) {
		salvo_client_destroy(c);
		return rc;
	}
	*out = c;
	return 0;

nomem:
	sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	return SALVO_ERR_NO_MEMORY;
}

int salvo_client_close(salvo_client *c, int timeout_ms, salvo_error *err)
{
	struct sv_request *req;
	int rc;

	if (sv_check_timeout("salvo_client_close", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!c) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no client");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	req = sv_request_new(SV_REQ_CLOSE);
	if (!req) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	rc = sv_request_submit(c, req, err);
	if (rc) {
		free(req);
		/* Already closed: a clean close by request is not an error. */
		return rc == SALVO_ERR_CLOSED ? 0 : rc;
	}
	/* A reconnection attempt in progress would hold the I/O thread (and so this close)
	 * for up to connection_timeout: abandon it. Never read: later attempts end too. */
	if (atomic_load(&c->state) == SV_CONN_RECOVERING)
		eventfd_write(c->cancel_fd, 1);
	rc = sv_request_wait(req, timeout_ms, err);
	sv_request_put(req);
	return rc;
}

/* Stop the I/O thread: it ends once the connection is closed, so close it the hard way if
 * an orderly close did not happen. */
static void stop_io(salvo_client *c)
{
	if (c->io_joined)
		return;
	pthread_mutex_lock(&c->lock);
	if (atomic_load(&c->state) != SV_CONN_CLOSED)
		shutdown(c->sess.fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->io_thread, NULL);
	c->io_joined = true;
}

void sv_client_put(salvo_client *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	stop_io(c);
	client_free(c);
}

void salvo_client_destroy(salvo_client *c)
{
	if (!c)
		return;
	/* Also while reconnecting: the close stops the attempts (the I/O thread would
	 * otherwise retry for ever and the join below never return). */
	if (atomic_load(&c->state) == SV_CONN_OPEN || atomic_load(&c->state) == SV_CONN_RECOVERING)
		salvo_client_close(c, 5000, NULL);
	stop_io(c);
	sv_client_put(c);
}

int sv_client_wait_open(salvo_client *c, pthread_mutex_t *lock, pthread_cond_t *cond,
			const bool *stopping, salvo_error *err)
{
	pthread_mutex_lock(lock);
	for (;;) {
		int state = atomic_load(&c->state);
		struct timespec ts;

		if (*stopping) {
			pthread_mutex_unlock(lock);
			return 1;
		}
		if (state == SV_CONN_OPEN)
			break;
		if (state == SV_CONN_CLOSING || state == SV_CONN_CLOSED) {
			int status;

			pthread_mutex_unlock(lock);
			pthread_mutex_lock(&c->lock);
			status = c->error.status;
			if (status)
				*err = c->error;
			pthread_mutex_unlock(&c->lock);
			if (!status)
				status = sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_CONNECTION,
						      "the client was closed");
			return status;
		}
		sv_timespec_after(&ts, CLOCK_MONOTONIC, SV_STATE_POLL_MS);
		pthread_cond_timedwait(cond, lock, &ts);
	}
	pthread_mutex_unlock(lock);
	return 0;
}
