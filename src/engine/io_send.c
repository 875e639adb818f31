/* SPDX-License-Identifier: MIT */
/*
 * Sending. Unless a send is already in flight, each loop turn gathers everything ready
 * into ONE send: the source a short write stopped in, then control frames, then the
 * pending span of every publisher ring (contiguous, thanks to the rings' double mapping).
 * While that send is in flight producers keep appending; the next send carries all of it.
 * That is the batching: one system call per loop, not per message. A short write can stop
 * in the middle of a frame; the source it stopped in goes first in the next send, so no
 * other bytes are ever spliced into a frame. Control frames queued while a send is in
 * flight wait in out_next, so the kernel never reads a buffer that moves.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

static bool iov_add(salvo_client *c, const uint8_t *p, size_t n, struct salvo_publisher *pub)
{
	if (!n)
		return true;
	if (c->niov == c->iov_cap) {
		size_t cap = c->iov_cap ? 2 * c->iov_cap : 16;
		if (cap > IOV_MAX)
			return false;
		void *iov = realloc(c->iov, cap * sizeof *c->iov);
		if (!iov)
			return false;
		c->iov = iov;
		void *src = realloc(c->iov_pub, cap * sizeof *c->iov_pub);
		if (!src)
			return false;
		c->iov_pub = src;
		c->iov_cap = cap;
	}
	c->iov[c->niov] = (struct iovec){(void *)p, n};
	c->iov_pub[c->niov] = pub;
	c->niov++;
	return true;
}

/* The control frames not yet sent (out is NULL until the first one). */
static void add_out(salvo_client *c)
{
	if (c->out_len > c->out_sent)
		iov_add(c, c->out + c->out_sent, c->out_len - c->out_sent, NULL);
}

static void add_pub(salvo_client *c, struct salvo_publisher *pub)
{
	struct sv_span sp;
	const uint8_t *p;

	if (sv_pub_span(c, pub, &p, &sp) && iov_add(c, p, sp.n, pub))
		sv_pub_in_send(pub, &sp);
}

/* Everything ready, in an order that never splits a frame: the source a short write
 * stopped in, then control frames, then each publisher's pending messages. */
static void gather(salvo_client *c)
{
	sv_settle_pubs(c);
	c->niov = 0;
	if (c->partial_out)
		add_out(c);
	else if (c->partial_pub)
		add_pub(c, c->partial_pub);
	if (!c->partial_out)
		add_out(c);
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i] != c->partial_pub)
			add_pub(c, c->pubs[i]);
}

/* gather(), and once everything queued before a close has gone: connection.close. */
static void gather_all(salvo_client *c)
{
	sv_pub_checkpoints(c);
	gather(c);
	if (!c->niov && c->close_req && atomic_load(&c->state) == SV_CONN_OPEN) {
		struct sv_method m = {.id = SV_CONNECTION_CLOSE,
				      .a.connection_close = {200, SV_BYTES("closed by the application"),
							     0, 0}};
		sv_send_method(c, 0, &m);
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->state, SV_CONN_CLOSING);
		pthread_mutex_unlock(&c->lock);
		gather(c);
	}
}

/*
 * The kernel, or for amqps the TLS layer, took the first n bytes of the gathered sources:
 * advance each (a publisher's sent, the control buffer) and let confirms release space.
 */
static void consumed(salvo_client *c, size_t n)
{
	c->partial_pub = NULL;
	c->partial_out = false;
	for (size_t i = 0; i < c->niov; i++) {
		size_t len = c->iov[i].iov_len, take = n < len ? n : len;
		struct salvo_publisher *pub = c->iov_pub[i];

		if (pub) {
			sv_pub_sent(c, pub, take, len);
			/* A producer may read the old sent: linger before a long park (park.c). */
			c->sent_lately = true;
		} else {
			c->out_sent += take;
			/* possibly mid-frame: the control frames lead the next send */
			c->partial_out = take && take < len;
		}
		n -= take;
	}
	c->niov = 0;
	sv_settle_pubs(c);
	if (c->out_sent) {
		memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
		c->out_len -= c->out_sent;
		c->out_sent = 0;
	}
}

static void submit_send(salvo_client *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);

	sv_transport_prep_send(c, sqe);
	io_uring_sqe_set_data64(sqe, SV_UD_SEND);
	c->send_inflight = true;
	c->send_started_ns = sv_now_ns();
}

/* Unless the transport still holds bytes a short write left: gather, stage, send. */
void sv_start_send(salvo_client *c)
{
	salvo_error e;
	size_t taken;
	bool now;
	int ready;

	if (!sv_transport_staged(c)) {
		gather_all(c);
		ready = sv_transport_stage(c, &taken, &now, &e);
		if (now)
			consumed(c, taken);
		if (ready < 0)
			sv_conn_fail(c, &e);
		if (ready <= 0)
			return;
	}
	submit_send(c);
}

void sv_on_send(salvo_client *c, int res)
{
	size_t took;

	c->send_inflight = false;
	if (sv_transport_sent(c, res, &took))
		consumed(c, took);
	/* Append the control frames queued while the kernel read the buffer. */
	if (c->out_next_len) {
		if (sv_out_append(c, c->out_next, c->out_next_len)) {
			salvo_error e;
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory queueing control frames");
			sv_conn_fail(c, &e);
		}
		c->out_next_len = 0;
	}
	if (res > 0)
		c->last_send_ns = sv_now_ns();
	if (res < 0 && sv_live(c)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION, "send: %s", strerror(-res));
		sv_conn_fail(c, &e);
	}
}
