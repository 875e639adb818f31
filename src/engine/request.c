/* SPDX-License-Identifier: MIT */
/*
 * Requests: what an application thread hands the I/O thread (a synchronous method, a
 * publisher's attach or detach) and waits for. Both sides of the handshake are here: the
 * caller submits under the client's lock and sleeps on the request's done word; the I/O
 * thread stores the outcome, releases done and wakes it. Each side holds a reference, so a
 * caller that stops waiting leaves the request to the I/O thread.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

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
	free(req->frame);
	/* Never the client's last reference: the application's outlives the I/O thread. */
	if (req->ch)
		sv_channel_put(req->ch);
	free(req);
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)word, op | FUTEX_PRIVATE_FLAG, val, ts, NULL, 0);
}

void sv_futex_wake_all(_Atomic uint32_t *word)
{
	futex(word, FUTEX_WAKE, INT32_MAX, NULL);
}

/* After the connection has closed, wait until the I/O thread has let go of every ring. */
void sv_io_wait_exit_if_closed(salvo_client *c)
{
	if (atomic_load(&c->state) != SV_CONN_CLOSED)
		return;
	while (!atomic_load_explicit(&c->io_exited, memory_order_acquire))
		futex(&c->io_exited, FUTEX_WAIT, 0, NULL);
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
	futex(&req->done, FUTEX_WAKE, 1, NULL);
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
		struct timespec ts, *tsp = NULL;
		if (timeout_ms >= 0) {
			uint64_t now = sv_now_ns();
			if (now >= deadline) {
				sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					     "no answer from the broker within %d ms", timeout_ms);
				return SALVO_ERR_TIMEOUT;
			}
			ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
			ts.tv_nsec = (long)((deadline - now) % 1000000000u);
			tsp = &ts;
		}
		/* Sleeps only while done is still 0: no wake-up can be missed. */
		futex(&req->done, FUTEX_WAIT, 0, tsp);
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
	if (c->queue_tail)
		c->queue_tail->next = req;
	else
		c->queue_head = req;
	c->queue_tail = req;
	pthread_mutex_unlock(&c->lock);
	/* Always wake the I/O thread: it may be waiting on a send that will not complete soon
	 * (a broker not reading), and requests are not the hot path. */
	eventfd_write(c->wake_fd, 1);
	return 0;
}
