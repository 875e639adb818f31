/* SPDX-License-Identifier: MIT */
/*
 * The byte stream under the frames: plain TCP, or TLS (amqps) over it. The rest of the
 * I/O thread sees one pair, receive into rbuf and send what was gathered, and never asks
 * which it is.
 *
 * Plain TCP receives straight into rbuf and sends the gathered iovecs with one sendmsg;
 * they are accounted when the send completes. TLS receives ciphertext into tls_in, feeds
 * it to the TLS object and decrypts into rbuf as room allows; a send first encrypts up to
 * SV_TLS_BATCH bytes of the gathered iovecs into records in tls_out (the sources are
 * accounted then: their bytes are in the records), and sends the records, resuming after
 * a short write before anything new is staged.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io_internal.h"
#include "tls.h"

void sv_transport_prep_recv(salvo_client *c, struct io_uring_sqe *sqe)
{
	c->recv_room = c->sess.tls ? SV_TLS_IN_SIZE : c->rcap - c->rlen;
	if (c->sess.tls)
		io_uring_prep_recv(sqe, c->sess.fd, c->tls_in, c->recv_room, 0);
	else
		io_uring_prep_recv(sqe, c->sess.fd, c->rbuf + c->rlen, c->recv_room, 0);
}

int sv_transport_received(salvo_client *c, size_t n, salvo_error *err)
{
	if (!c->sess.tls) {
		c->rlen += n;
		return 0;
	}
	if (sv_tls_feed(c->sess.tls, c->tls_in, n)) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "out of memory buffering TLS records");
		return -1;
	}
	return 0;
}

int sv_transport_more(salvo_client *c, size_t *got, salvo_error *err)
{
	int rc;

	*got = 0;
	if (!c->sess.tls || c->rlen >= c->rcap)
		return 0;
	/* A failure comes with nothing decrypted: what was decrypted before it goes first
	 * (tls.c keeps the error for the next call). */
	rc = sv_tls_read(c->sess.tls, c->rbuf + c->rlen, c->rcap - c->rlen, got, err);
	c->rlen += *got;
	if (rc == SALVO_ERR_CLOSED)
		sv_error_set(err, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
			     "the broker ended the TLS session (close_notify)");
	else if (rc)
		err->kind = SALVO_ERROR_CONNECTION;
	return rc ? -1 : 0;
}

bool sv_transport_staged(const salvo_client *c)
{
	return c->tls_out_sent < c->tls_out_len;
}

int sv_transport_stage(salvo_client *c, size_t *taken, bool *now, salvo_error *err)
{
	size_t want;
	int rc = 0;

	*taken = 0;
	*now = c->sess.tls != NULL;
	if (!c->sess.tls)
		return c->niov > 0;
	/* A sticky close_notify leaves err untouched: say so rather than pass garbage on. */
	sv_error_set(err, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
		     "the broker ended the TLS session (close_notify)");
	if (c->niov)
		rc = sv_tls_write(c->sess.tls, c->iov, (int)c->niov, SV_TLS_BATCH, taken, err);
	if (rc) {
		err->kind = SALVO_ERROR_CONNECTION;
		return -1;
	}
	/* Every record waiting in the TLS object, ours and its own (a key update). */
	want = sv_tls_pending(c->sess.tls);
	if (want > c->tls_out_cap) {
		uint8_t *nb = realloc(c->tls_out, want);
		if (!nb) {
			sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory for %zu bytes of TLS records", want);
			return -1;
		}
		c->tls_out = nb;
		c->tls_out_cap = want;
	}
	c->tls_out_len = sv_tls_take(c->sess.tls, c->tls_out, c->tls_out_cap);
	c->tls_out_sent = 0;
	return c->tls_out_len > 0;
}

void sv_transport_prep_send(salvo_client *c, struct io_uring_sqe *sqe)
{
	if (c->sess.tls) {
		io_uring_prep_send(sqe, c->sess.fd, c->tls_out + c->tls_out_sent,
				   c->tls_out_len - c->tls_out_sent, MSG_NOSIGNAL);
		return;
	}
	c->msg = (struct msghdr){.msg_iov = c->iov, .msg_iovlen = c->niov};
	io_uring_prep_sendmsg(sqe, c->sess.fd, &c->msg, MSG_NOSIGNAL);
}

bool sv_transport_sent(salvo_client *c, int res, size_t *took)
{
	*took = res > 0 ? (size_t)res : 0;
	if (!c->sess.tls)
		return true;
	c->tls_out_sent += *took;
	return false;
}

void sv_transport_send_now(salvo_client *c, const uint8_t *p, size_t n)
{
	if (c->sess.tls) {
		/* Never in clear on an amqps connection: one record, sent as it comes. */
		struct iovec v = {(void *)p, n};
		uint8_t rec[1024];
		size_t taken, k;

		if (sv_tls_write(c->sess.tls, &v, 1, n, &taken, NULL))
			return;
		while ((k = sv_tls_take(c->sess.tls, rec, sizeof rec)))
			if (send(c->sess.fd, rec, k, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)k)
				return;
		return;
	}
	(void)!send(c->sess.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void sv_transport_reset(salvo_client *c)
{
	/* Records of the old session, sent or not, mean nothing to the next one. */
	sv_tls_free(c->sess.tls);
	c->sess.tls = NULL;
	c->tls_out_len = c->tls_out_sent = 0;
}
