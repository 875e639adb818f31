/* SPDX-License-Identifier: MIT */
/*
 * Requests: what an application thread hands the I/O thread (a synchronous method, a
 * publisher's attach or detach) and waits for. Both sides of the handshake are here: the
 * caller submits under the client's lock and sleeps on the request's done word; the I/O
 * thread stores the outcome, releases done and wakes it. Each side holds a reference, so a
 * caller that stops waiting leaves the request to the I/O thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "park.h"

struct sv_request *sv_request_new(enum sv_req_kind kind)
{
	struct sv_request *req = calloc(1, sizeof *req);

	if (!req)
		return NULL;
	req->kind = kind;
	atomic_init(&req->done, 0);
	atomic_init(&req->refs, 2);
	return req;
}

void sv_request_put(struct sv_request *req)
{
	/* acq_rel: the last owner must see every write the other made before letting go. */
	if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* A basic.get answered after its caller gave up still owns its message. */
	salvo_message_destroy(req->msg);
	if (req->consumer)
		sv_consumer_put(req->consumer);
	if (req->secret) {
		/* Both hold the secret: do not leave it in freed memory. */
		if (req->frame)
			explicit_bzero(req->frame, req->frame_len);
		explicit_bzero(req->secret, strlen(req->secret));
		free(req->secret);
	}
	free(req->frame);
	/* Never the client's last reference: the application's outlives the I/O thread. */
	if (req->ch)
		sv_channel_put(req->ch);
	free(req);
}

/* After the connection has closed, wait until the I/O thread has let go of every ring. */
void sv_io_wait_exit_if_closed(salvo_client *c)
{
	if (atomic_load(&c->state) != SV_CONN_CLOSED)
		return;
	while (!atomic_load_explicit(&c->io_exited, memory_order_acquire))
		sv_futex_wait(&c->io_exited, 0, NULL);
}

/* I/O thread: publish the outcome, wake the waiter, drop the I/O thread's reference. */
void sv_request_complete(struct sv_request *req, int status, const salvo_error *err)
{
	req->status = status;
	if (err)
		req->err = *err;
	else
		memset(&req->err, 0, sizeof req->err);
	/* Release: the waiter's acquire load of done makes status, err and replies visible. */
	atomic_store_explicit(&req->done, 1, memory_order_release);
	sv_futex_wake(&req->done, 1);
	sv_request_put(req);
}

/*
 * Wait for the I/O thread's answer; on timeout the request stays with the I/O thread (its
 * reference keeps it alive until the reply comes or the connection ends).
 */
int sv_request_wait(struct sv_request *req, int timeout_ms, salvo_error *err)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : sv_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!atomic_load_explicit(&req->done, memory_order_acquire)) {
		/* CLOCK_MONOTONIC, as sv_now_ns. */
		struct timespec ts = {(time_t)(deadline / 1000000000u),
				      (long)(deadline % 1000000000u)};

		if (timeout_ms >= 0 && sv_now_ns() >= deadline) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "no answer from the broker within %d ms", timeout_ms);
			return SALVO_ERR_TIMEOUT;
		}
		/* Sleeps only while done is still 0: no wake-up can be missed. */
		sv_futex_wait(&req->done, 0, timeout_ms >= 0 ? &ts : NULL);
	}
	if (req->status)
		sv_error_copy(err, &req->err);
	return req->status;
}

int sv_request_submit(salvo_client *c, struct sv_request *req, salvo_error *err)
{
	enum sv_conn_state state;

	pthread_mutex_lock(&c->lock);
	state = atomic_load_explicit(&c->state, memory_order_relaxed);
	/* Detaching a publisher must still work while the connection closes: its memory may
	 * not be freed while the I/O thread can still send from it. */
	if (state == SV_CONN_CLOSED ||
	    (state == SV_CONN_CLOSING && req->kind != SV_REQ_DETACH)) {
		int status = c->error.status ? c->error.status : SALVO_ERR_CLOSED;
		if (c->error.status)
			sv_error_copy(err, &c->error);
		else
			sv_error_set(err, SALVO_ERR_CLOSED, SALVO_ERROR_CONNECTION,
				     "the connection is closed");
		pthread_mutex_unlock(&c->lock);
		return status;
	}
	CK_STAILQ_INSERT_TAIL(&c->queue, req, link);
	pthread_mutex_unlock(&c->lock);
	/* Always wake the I/O thread: it may be waiting on a send that will not complete soon
	 * (a broker not reading), and requests are not the hot path. */
	sv_client_wake(c);
	return 0;
}
