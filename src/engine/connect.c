/* SPDX-License-Identifier: MIT */
/*
 * TCP connect, the TLS handshake for amqps://, and the AMQP 0-9-1 handshake on the calling
 * thread.
 *
 * The socket is non-blocking from the start (the I/O thread wants it so), and every wait
 * is a poll() bounded by one CLOCK_MONOTONIC deadline covering connect and handshake.
 * Frames are read exactly: the 7-byte header first, then the payload and frame-end it
 * announces. That costs two recv() calls per frame on a handshake of four frames, and
 * means nothing after connection.open-ok is consumed, so the I/O thread starts on a clean
 * frame boundary with no leftover buffer to hand over.
 *
 * With TLS the socket carries ciphertext, read in chunks and fed to the sv_tls object
 * (tls.c, memory BIOs); plaintext is still taken out exactly, so any later records stay
 * inside the sv_tls handed over in the session. send_all and recv_exact are the one place
 * that knows which path a connection takes: the AMQP dialogue above them is the same.
 * Nothing but the TLS handshake's own messages is sent before the peer is verified.
 *
 * Name lookup is inside the deadline too, and a close abandons it like the rest: a host
 * that is not an address literal is resolved by getaddrinfo on a thread of its own, which
 * the caller waits for with poll() on an eventfd (the deadline and the cancel eventfd
 * beside it). A lookup given up on finishes on its thread and frees itself; the two sides
 * share it by a reference count.
 */
#include "connect.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../codec/frame.h"
#include "../codec/table.h"

/* What the client uses when neither side limits frame size: RabbitMQ's default. */
#define DEFAULT_FRAME_MAX 131072
#define CLOSE_FRAME_MAX	  512 /* connection.close with a 255-byte text fits easily */
#define CIPHER_CHUNK	  16709 /* one TLS record, header and expansion included */

struct handshake {
	const struct sv_connect_params *p;
	salvo_error *err;
	int fd;
	struct sv_tls *tls;  /* amqps; NULL for TCP */
	bool tls_rx;	     /* ciphertext has arrived, so "AMQP" is no plain-AMQP answer */
	int64_t deadline_ms; /* CLOCK_MONOTONIC */
	const char *step; /* "waiting for connection.tune", for messages; NULL while connecting */
	bool framed;	  /* a frame arrived, so "AMQP" can no longer be a version refusal */
	char peer[300];	  /* "host:port" or "[v6]:port" as the caller named it */
	struct sv_reader reader;
	/* Every frame a server may send during the handshake fits in the size all peers
	 * accept before tuning; see read_frame. */
	uint8_t rbuf[SV_FRAME_MIN_SIZE];
	uint8_t cbuf[CIPHER_CHUNK]; /* TLS: ciphertext to and from the socket */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* strerror() may use a static buffer; the descriptions are constant strings. */
static const char *errstr(int e)
{
	const char *s = strerrordesc_np(e);

	return s ? s : "unknown error";
}

static int timed_out(struct handshake *h)
{
	if (!h->step)
		return sv_error_set(h->err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				 "connect to %s timed out after %d ms", h->peer, h->p->timeout_ms);
	return sv_error_set(h->err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
			 "connect to %s timed out after %d ms %s", h->peer, h->p->timeout_ms,
			 h->step);
}

static int socket_failed(struct handshake *h, int e)
{
	return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
			 "connection to %s failed %s: %s", h->peer, h->step, errstr(e));
}

/* Wait until fd is ready for events, within h's deadline, unless the client closes;
 * errors and hang-ups count as ready, for the next call on fd to report. */
static int wait_fd(struct handshake *h, int fd, short events)
{
	struct pollfd pfd[2] = {{.fd = fd, .events = events},
				{.fd = h->p->cancel_fd, .events = POLLIN}};

	for (;;) {
		int64_t left = h->deadline_ms - now_ms();
		int n;

		if (left <= 0)
			return timed_out(h);
		n = poll(pfd, h->p->cancellable ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0 && h->p->cancellable && pfd[1].revents)
			return sv_error_set(h->err, SALVO_ERR_CLOSED, SALVO_ERROR_LOCAL,
					    "connection to %s abandoned: the client is closing",
					    h->peer);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_LOCAL, "poll: %s",
					 errstr(errno));
	}
}

static int wait_ready(struct handshake *h, short events)
{
	return wait_fd(h, h->fd, events);
}

static int raw_send_all(struct handshake *h, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(h->fd, buf, len, MSG_NOSIGNAL);
		int rc;

		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return socket_failed(h, errno);
		rc = wait_ready(h, POLLOUT);
		if (rc)
			return rc;
	}
	return 0;
}

/* Receive between 1 and cap bytes into buf (*got). Returns SALVO_ERR_CLOSED, with err
 * untouched, when the server closed or reset the connection: what that means depends on the
 * step (see peer_closed). */
static int raw_recv(struct handshake *h, uint8_t *buf, size_t cap, size_t *got)
{
	for (;;) {
		ssize_t n = recv(h->fd, buf, cap, 0);
		int rc;

		if (n > 0) {
			*got = (size_t)n;
			return 0;
		}
		if (n == 0 || errno == ECONNRESET)
			return SALVO_ERR_CLOSED;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return socket_failed(h, errno);
		rc = wait_ready(h, POLLIN);
		if (rc)
			return rc;
	}
}

/* Send every byte of ciphertext the TLS connection has waiting. */
static int tls_flush(struct handshake *h)
{
	size_t n;

	while ((n = sv_tls_take(h->tls, h->cbuf, sizeof h->cbuf))) {
		int rc = raw_send_all(h, h->cbuf, n);

		if (rc)
			return rc;
	}
	return 0;
}

/* The next chunk of ciphertext from the socket, into the TLS connection. */
static int tls_receive(struct handshake *h)
{
	size_t n;
	int rc = raw_recv(h, h->cbuf, sizeof h->cbuf, &n);

	if (rc)
		return rc;
	/* A plain AMQP server answers a ClientHello with its protocol header. */
	if (!h->tls_rx && n >= 4 && !memcmp(h->cbuf, "AMQP", 4))
		return sv_error_set(h->err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL,
				    "TLS handshake with %s failed: the server answered in plain "
				    "AMQP (an amqp:// port, not amqps://?)",
				    h->peer);
	h->tls_rx = true;
	if (sv_tls_feed(h->tls, h->cbuf, n))
		return sv_error_set(h->err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				    "out of memory for TLS input");
	return 0;
}

static int send_all(struct handshake *h, const uint8_t *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};
	size_t taken;
	int rc;

	if (!h->tls)
		return raw_send_all(h, buf, len);
	rc = sv_tls_write(h->tls, &iov, 1, len, &taken, h->err);
	return rc ? rc : tls_flush(h);
}

/* Returns SALVO_ERR_CLOSED, with err untouched, when the server closed or reset the
 * connection (or, with TLS, sent close_notify). */
static int recv_exact(struct handshake *h, uint8_t *buf, size_t len)
{
	while (len) {
		size_t n;
		int rc;

		if (!h->tls) {
			rc = raw_recv(h, buf, len, &n);
		} else {
			rc = sv_tls_read(h->tls, buf, len, &n, h->err);
			/* Reading may have queued an answer (a TLS 1.3 key update). */
			if (!rc)
				rc = tls_flush(h);
			if (!rc && !n)
				rc = tls_receive(h);
		}
		if (rc)
			return rc;
		buf += n;
		len -= n;
	}
	return 0;
}

/* TLS from the first byte: the ClientHello, then the server's messages, until the peer is
 * verified. An alert our side raises on failure goes out before the socket is closed. */
static int tls_handshake(struct handshake *h)
{
	h->step = "during the TLS handshake";
	for (;;) {
		int rc = sv_tls_handshake(h->tls, h->err);
		int frc;

		if (rc < 0) {
			size_t n = sv_tls_take(h->tls, h->cbuf, sizeof h->cbuf);

			if (n)
				send(h->fd, h->cbuf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			return rc;
		}
		frc = tls_flush(h);
		if (frc)
			return frc;
		if (rc == 0)
			return 0;
		frc = tls_receive(h);
		if (frc == SALVO_ERR_CLOSED)
			return sv_error_set(h->err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL,
					    "TLS handshake with %s failed: the server closed the "
					    "connection",
					    h->peer);
		if (frc)
			return frc;
	}
}

/*
 * Send connection.close or close-ok while giving up on the connection. One non-blocking
 * send, no waiting and no error: the socket is about to be closed whatever happens, and the
 * handshake's few small frames leave the send buffer empty, so it goes out in practice.
 */
static void send_last(struct handshake *h, const struct sv_method *m)
{
	uint8_t buf[CLOSE_FRAME_MAX];
	struct sv_codec_error cerr;
	size_t n = sv_frame_put_method(buf, sizeof buf, 0, m, &cerr);
	struct iovec iov = {buf, n};
	const uint8_t *out = buf;
	salvo_error ignored;

	if (n && h->tls) {
		/* A TLS connection that already failed refuses, and then there is no one to
		 * tell anyway. */
		if (sv_tls_write(h->tls, &iov, 1, n, &n, &ignored))
			return;
		n = sv_tls_take(h->tls, h->cbuf, sizeof h->cbuf);
		out = h->cbuf;
	}
	if (n)
		send(h->fd, out, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void send_close(struct handshake *h, uint16_t reply_code, const char *text,
		       uint16_t class_id, uint16_t method_id)
{
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};
	struct sv_connection_close *c = &m.a.connection_close;
	size_t len = strlen(text);

	c->reply_code = reply_code;
	c->reply_text.ptr = (const uint8_t *)text;
	c->reply_text.len = (uint32_t)(len > SV_SHORTSTR_MAX ? SV_SHORTSTR_MAX : len);
	c->class_id = class_id;
	c->method_id = method_id;
	send_last(h, &m);
}

/* The peer broke the protocol: tell it why, as the spec asks, and report it. */
static int protocol_error(struct handshake *h, uint16_t reply_code, uint16_t class_id,
			  uint16_t method_id, const char *reason)
{
	send_close(h, reply_code, reason, class_id, method_id);
	sv_error_set(h->err, SALVO_ERR_PROTOCOL, SALVO_ERROR_CONNECTION,
		  "protocol error from %s %s: %s", h->peer, h->step, reason);
	sv_error_set_reply(h->err, reply_code, class_id, method_id);
	return SALVO_ERR_PROTOCOL;
}

static int malformed(struct handshake *h)
{
	const struct sv_codec_error *e = &h->reader.err;

	return protocol_error(h, e->reply_code, e->class_id, e->method_id, e->reason);
}

/*
 * Read one frame into h->rbuf and decode it. The reader's frame_max stays at
 * SV_FRAME_MIN_SIZE for the whole handshake, tune included: the server may then send only
 * open-ok, close (its text is a short string) and heartbeats, all far smaller, and the
 * reader checks the announced size before any payload is read into the fixed buffer.
 */
static int read_frame(struct handshake *h, struct sv_decoded_frame *d)
{
	uint8_t *b = h->rbuf;
	uint32_t size;
	int rc;

	rc = recv_exact(h, b, SV_FRAME_HEADER_SIZE);
	if (rc)
		return rc;
	/* A server that refuses our version answers with its own 8-byte protocol header;
	 * 'A' is no frame type, so this cannot be mistaken for a frame. */
	if (!h->framed && !memcmp(b, "AMQP", 4)) {
		rc = recv_exact(h, b + SV_FRAME_HEADER_SIZE, 1);
		if (rc)
			return rc;
		return sv_error_set(h->err, SALVO_ERR_PROTOCOL, SALVO_ERROR_CONNECTION,
				 "%s speaks AMQP %u-%u-%u, not 0-9-1", h->peer, b[5], b[6], b[7]);
	}
	/* The header alone: the reader validates type and size before we read the rest. */
	if (sv_reader_next(&h->reader, b, SV_FRAME_HEADER_SIZE, d) < 0)
		return malformed(h);
	size = sv_load32(b + 3);
	rc = recv_exact(h, b + SV_FRAME_HEADER_SIZE, (size_t)size + 1);
	if (rc)
		return rc;
	if (sv_reader_next(&h->reader, b, (size_t)size + SV_FRAME_OVERHEAD, d) < 0)
		return malformed(h);
	h->framed = true;
	return 0;
}

/*
 * The server closed the socket without connection.close. Right after start-ok that is how
 * a broker without authentication_failure_close refuses a login (RabbitMQ's access control
 * guide says so); anywhere else it is just a lost connection.
 */
static int peer_closed(struct handshake *h, uint32_t expected)
{
	if (expected == SV_CONNECTION_TUNE) {
		sv_error_set(h->err, 403, SALVO_ERROR_CONNECTION,
			  "authentication failure (connection closed during login)");
		sv_error_set_reply(h->err, 403, 0, 0);
		return 403;
	}
	return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
			 "%s closed the connection %s", h->peer, h->step);
}

/* connection.close from the broker: acknowledge it and report its reply. */
static int broker_closed(struct handshake *h, const struct sv_connection_close *c)
{
	/* A close with 0 would read as success to the caller, whose socket is gone. */
	int status = c->reply_code ? c->reply_code : SALVO_ERR_CLOSED;
	struct sv_method ok = {.id = SV_CONNECTION_CLOSE_OK};

	send_last(h, &ok);
	char text[sizeof h->err->text - 80];

	sv_text_escape(text, sizeof text, c->reply_text.ptr, c->reply_text.len);
	/* "amqp://host/" names the empty vhost, which nobody means: say so. */
	if (c->reply_code == 530 && !h->p->vhost[0])
		sv_error_set(h->err, status, SALVO_ERROR_CONNECTION,
			     "%s (the vhost is empty: a URI ending in '/' names the empty vhost; "
			     "none or /%%2F names '/')",
			     text);
	else
		sv_error_set(h->err, status, SALVO_ERROR_CONNECTION, "%s", text);
	sv_error_set_reply(h->err, c->reply_code, c->class_id, c->method_id);
	return status;
}

static int unexpected(struct handshake *h, uint32_t expected, const struct sv_decoded_frame *d)
{
	const struct sv_frame *f = &d->frame;
	char reason[160];

	if (f->type != SV_FRAME_METHOD) {
		snprintf(reason, sizeof reason, "expected %s, got a %s frame on channel %u",
			 sv_method_name(expected),
			 f->type == SV_FRAME_HEADER ? "content header" : "content body",
			 f->channel);
		return protocol_error(h, SV_REPLY_UNEXPECTED_FRAME, 0, 0, reason);
	}
	snprintf(reason, sizeof reason, "expected %s, got %s on channel %u",
		 sv_method_name(expected), sv_method_name(d->u.method.id), f->channel);
	return protocol_error(h, SV_REPLY_UNEXPECTED_FRAME, (uint16_t)(d->u.method.id >> 16),
			      (uint16_t)d->u.method.id, reason);
}

/* The next method on channel 0, which must be the expected one. */
static int expect_method(struct handshake *h, uint32_t expected, struct sv_decoded_frame *d)
{
	for (;;) {
		int rc = read_frame(h, d);

		if (rc == SALVO_ERR_CLOSED)
			return peer_closed(h, expected);
		if (rc)
			return rc;
		/* A server may start heartbeating before open-ok; there is nothing to answer. */
		if (d->frame.type == SV_FRAME_HEARTBEAT)
			continue;
		if (d->frame.type == SV_FRAME_METHOD && d->frame.channel == 0) {
			if (d->u.method.id == expected)
				return 0;
			if (d->u.method.id == SV_CONNECTION_CLOSE)
				return broker_closed(h, &d->u.method.a.connection_close);
		}
		return unexpected(h, expected, d);
	}
}

/*
 * Connect h->fd to one address. Returns 0 when connected; an errno when this address
 * failed and the next may be tried; or a negative status, err filled, when the deadline
 * passed (h->fd is left for the caller to close).
 */
static int tcp_connect_one(struct handshake *h, const struct addrinfo *ai)
{
	int one = 1;
	int e = 0;
	int rc;

	h->fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (h->fd < 0)
		return errno;
	if (connect(h->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		/* EINTR leaves the connect going on in the background, like EINPROGRESS. */
		if (errno != EINPROGRESS && errno != EINTR) {
			e = errno;
		} else {
			socklen_t len = sizeof e;

			rc = wait_ready(h, POLLOUT);
			if (rc)
				return rc;
			if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
		}
	}
	if (!e && setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		e = errno;
	if (e) {
		close(h->fd);
		h->fd = -1;
	}
	return e;
}

/* A name lookup on a thread of its own (see the top of the file). */
struct lookup {
	_Atomic int refs; /* the waiter's and the thread's */
	_Atomic int done; /* stored (release) before efd is written */
	int efd;	  /* written once the answer is in */
	char host[256], port[8];
	int rc, err_no;
	struct addrinfo *list;
};

static const struct addrinfo lookup_hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_NUMERICSERV,
};

static void lookup_put(struct lookup *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (l->list)
		freeaddrinfo(l->list);
	close(l->efd);
	free(l);
}

static void *lookup_main(void *arg)
{
	struct lookup *l = arg;

	l->rc = getaddrinfo(l->host, l->port, &lookup_hints, &l->list);
	l->err_no = errno;
	atomic_store_explicit(&l->done, 1, memory_order_release);
	eventfd_write(l->efd, 1);
	lookup_put(l);
	return NULL;
}

static bool is_address(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/*
 * getaddrinfo for h's host and port, within h's deadline and abandoned if the client
 * closes. Returns 0 with *list (the caller frees it), or a status with err filled.
 */
static int resolve(struct handshake *h, struct addrinfo **list)
{
	struct lookup *l = NULL;
	pthread_t t;
	char port[8];
	int rc;

	snprintf(port, sizeof port, "%u", h->p->port);
	if (!is_address(h->p->host) && strlen(h->p->host) < sizeof l->host)
		l = calloc(1, sizeof *l);
	if (l) {
		atomic_init(&l->refs, 2);
		snprintf(l->host, sizeof l->host, "%s", h->p->host);
		memcpy(l->port, port, sizeof port);
		l->efd = eventfd(0, EFD_CLOEXEC);
		if (l->efd < 0 || pthread_create(&t, NULL, lookup_main, l) != 0) {
			if (l->efd >= 0)
				close(l->efd);
			free(l);
			l = NULL;
		}
	}
	if (!l) {
		/* An address literal (no DNS), or no thread to be had: on this thread. */
		rc = getaddrinfo(h->p->host, port, &lookup_hints, list);
	} else {
		pthread_detach(t);
		rc = wait_fd(h, l->efd, POLLIN);
		if (rc) {
			if (rc == SALVO_ERR_TIMEOUT)
				sv_error_set(h->err, rc, SALVO_ERROR_LOCAL,
					     "resolve %s: no answer within %d ms", h->p->host,
					     h->p->timeout_ms);
			lookup_put(l); /* the thread frees it when its answer comes */
			return rc;
		}
		/* The eventfd was written after done: this sees the answer. */
		while (!atomic_load_explicit(&l->done, memory_order_acquire))
			sched_yield();
		rc = l->rc;
		errno = l->err_no;
		*list = l->list;
		l->list = NULL;
		lookup_put(l);
	}
	if (rc)
		return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_LOCAL, "resolve %s: %s",
				    h->p->host, rc == EAI_SYSTEM ? errstr(errno) : gai_strerror(rc));
	return 0;
}

/*
 * Try each address in turn within the one deadline. Returns 0 with h->fd connected, or a
 * status with err filled: the last address's error, or the timeout.
 */
static int tcp_connect(struct handshake *h)
{
	struct addrinfo *list, *ai;
	int tried = 0;
	int rc = 0;

	rc = resolve(h, &list);
	if (rc)
		return rc;
	for (ai = list; ai; ai = ai->ai_next) {
		tried++;
		rc = tcp_connect_one(h, ai);
		if (rc <= 0)
			break;
	}
	freeaddrinfo(list);
	if (rc <= 0)
		return rc;
	if (tried == 1)
		return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_LOCAL, "connect to %s: %s",
				 h->peer, errstr(rc));
	return sv_error_set(h->err, SALVO_ERR_IO, SALVO_ERROR_LOCAL,
			 "connect to %s: %s (last of %d addresses tried)", h->peer, errstr(rc),
			 tried);
}

static bool has_mechanism(struct sv_bytes list, const char *name)
{
	size_t n = strlen(name);
	const uint8_t *p = list.ptr;
	const uint8_t *end = list.ptr + list.len;

	/* A space-separated list; match whole words only ("XPLAIN" is not "PLAIN"). */
	while (p < end) {
		const uint8_t *word = p;

		while (p < end && *p != ' ')
			p++;
		if ((size_t)(p - word) == n && !memcmp(word, name, n))
			return true;
		p++;
	}
	return false;
}

static void copy_property(char *dst, size_t cap, struct sv_table props, const char *key)
{
	struct sv_field f;
	uint32_t n = 0;

	if (sv_table_find(props, key, &f) && f.type == SV_FIELD_LONGSTR) {
		n = f.v.str.len < cap ? f.v.str.len : (uint32_t)cap - 1;
		memcpy(dst, f.v.str.ptr, n);
	}
	dst[n] = '\0';
}

static bool capability(struct sv_table caps, const char *key)
{
	struct sv_field f;

	return sv_table_find(caps, key, &f) && f.type == SV_FIELD_BOOL && f.v.b;
}

/* The SASL mechanisms' names, by enum sv_auth. */
static const char *const mechanism_names[] = {
	[SV_AUTH_PLAIN] = "PLAIN",
	[SV_AUTH_EXTERNAL] = "EXTERNAL",
	[SV_AUTH_AMQPLAIN] = "AMQPLAIN",
};

static int check_start(struct handshake *h, const struct sv_connection_start *st,
		       struct sv_session *s)
{
	const char *want = mechanism_names[h->p->auth];
	struct sv_table caps = {NULL, 0};
	struct sv_field f;
	char mech[104];

	sv_text_escape(mech, sizeof mech, st->mechanisms.ptr, st->mechanisms.len);
	if (st->version_major != 0 || st->version_minor != 9)
		return sv_error_set(h->err, SALVO_ERR_PROTOCOL, SALVO_ERROR_CONNECTION,
				 "%s speaks AMQP %u-%u, not 0-9 (connection.start)", h->peer,
				 st->version_major, st->version_minor);
	if (!has_mechanism(st->mechanisms, want))
		return sv_error_set(h->err, SALVO_ERR_UNSUPPORTED, SALVO_ERROR_LOCAL,
				    "%s offers SASL mechanisms \"%s\", not %s (auth_mechanism=%s%s)",
				    h->peer, mech, want,
				    h->p->auth == SV_AUTH_PLAIN	   ? "plain; salvo also speaks amqplain"
				    : h->p->auth == SV_AUTH_AMQPLAIN ? "amqplain"
								     : "external",
				    h->p->auth == SV_AUTH_EXTERNAL
					? "; RabbitMQ needs the rabbitmq_auth_mechanism_ssl plugin"
					: "");
	copy_property(s->server_product, sizeof s->server_product, st->server_properties,
		      "product");
	copy_property(s->server_version, sizeof s->server_version, st->server_properties,
		      "version");
	/* Read exactly into a buffer of frame-min-size (read_frame), so it fits. */
	memcpy(s->server_props, st->server_properties.ptr, st->server_properties.len);
	s->server_props_len = st->server_properties.len;
	if (sv_table_find(st->server_properties, "capabilities", &f) && f.type == SV_FIELD_TABLE)
		caps = f.v.table;
	s->cap_publisher_confirms = capability(caps, "publisher_confirms");
	s->cap_basic_nack = capability(caps, "basic.nack");
	s->cap_connection_blocked = capability(caps, "connection.blocked");
	s->cap_authentication_failure_close = capability(caps, "authentication_failure_close");
	s->cap_consumer_cancel_notify = capability(caps, "consumer_cancel_notify");
	s->cap_exchange_exchange_bindings = capability(caps, "exchange_exchange_bindings");
	return 0;
}

/* Encoding fails only on values the wire cannot carry, which come from the caller. */
static int encode_failed(struct handshake *h, const struct sv_codec_error *cerr)
{
	return sv_error_set(h->err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s", cerr->reason);
}

static void put_client_properties(struct sv_table_writer *w, const char *connection_name)
{
	sv_tw_str(w, "product", "salvo");
	sv_tw_str(w, "version", SALVO_VERSION_STRING);
	sv_tw_str(w, "platform", "C11/Linux");
	sv_tw_str(w, "information", "AMQP 0-9-1 client built for publishing throughput");
	if (connection_name && *connection_name)
		sv_tw_str(w, "connection_name", connection_name);
	/* authentication_failure_close makes RabbitMQ answer a bad login with connection.close
	 * 403 instead of dropping the socket; the others are what the engine handles. */
	sv_tw_table_begin(w, "capabilities");
	sv_tw_bool(w, "publisher_confirms", true);
	sv_tw_bool(w, "basic.nack", true);
	sv_tw_bool(w, "consumer_cancel_notify", true);
	sv_tw_bool(w, "connection.blocked", true);
	sv_tw_bool(w, "authentication_failure_close", true);
	sv_tw_bool(w, "exchange_exchange_bindings", true);
	sv_tw_table_end(w);
}

/*
 * The SASL response of p's mechanism into response (room for 32 + user + password bytes).
 * PLAIN (RFC 4616): authzid NUL authcid NUL passwd, no authzid. EXTERNAL (RFC 4422): empty,
 * asking for the identity of the TLS client certificate. AMQPLAIN (RabbitMQ's
 * rabbit_auth_mechanism_amqplain): a field table's contents, without the table's length
 * prefix, holding LOGIN and PASSWORD as long strings.
 */
static int sasl_response(struct handshake *h, uint8_t *response, size_t cap, struct sv_bytes *out)
{
	const struct sv_connect_params *p = h->p;
	size_t user_len = strlen(p->user), pass_len = strlen(p->password);
	struct sv_table_writer w;
	struct sv_codec_error cerr;
	struct sv_table t;

	switch (p->auth) {
	case SV_AUTH_EXTERNAL:
		*out = (struct sv_bytes){response, 0};
		return 0;
	case SV_AUTH_AMQPLAIN:
		sv_table_writer_init(&w, response, cap);
		sv_tw_str(&w, "LOGIN", p->user);
		sv_tw_str(&w, "PASSWORD", p->password);
		if (sv_table_writer_finish(&w, &t, &cerr))
			return encode_failed(h, &cerr);
		*out = (struct sv_bytes){t.ptr, t.len};
		return 0;
	case SV_AUTH_PLAIN:
		break;
	}
	response[0] = '\0';
	memcpy(response + 1, p->user, user_len);
	response[1 + user_len] = '\0';
	memcpy(response + 2 + user_len, p->password, pass_len);
	*out = (struct sv_bytes){response, (uint32_t)(2 + user_len + pass_len)};
	return 0;
}

static int send_start_ok(struct handshake *h)
{
	const struct sv_connect_params *p = h->p;
	/* Any mechanism's response: AMQPLAIN's is the longest, with 25 bytes of its own. */
	size_t response_cap = 32 + strlen(p->user) + strlen(p->password);
	size_t name_len = p->connection_name ? strlen(p->connection_name) : 0;
	/* The fixed properties take under 400 bytes; the rest of the frame under 64. */
	size_t props_cap = 512 + name_len;
	size_t frame_cap = props_cap + 64 + response_cap;
	struct sv_method m = {.id = SV_CONNECTION_START_OK};
	struct sv_connection_start_ok *so = &m.a.connection_start_ok;
	struct sv_table_writer w;
	struct sv_codec_error cerr;
	uint8_t *props, *frame, *response;
	size_t n;
	int rc;

	/* One allocation: properties, then the frame, then the SASL response. */
	props = malloc(props_cap + frame_cap + response_cap);
	if (!props)
		return sv_error_set(h->err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				 "out of memory for connection.start-ok");
	frame = props + props_cap;
	response = frame + frame_cap;

	sv_table_writer_init(&w, props, props_cap);
	put_client_properties(&w, p->connection_name);
	rc = sv_table_writer_finish(&w, &so->client_properties, &cerr);
	if (rc)
		rc = encode_failed(h, &cerr);
	if (!rc)
		rc = sasl_response(h, response, response_cap, &so->response);
	if (!rc) {
		so->mechanism = (struct sv_bytes){(const uint8_t *)mechanism_names[p->auth],
						  (uint32_t)strlen(mechanism_names[p->auth])};
		so->locale = SV_BYTES("en_US");
		n = sv_frame_put_method(frame, frame_cap, 0, &m, &cerr);
		rc = n ? send_all(h, frame, n) : encode_failed(h, &cerr);
	}
	/* The password is in the response and the frame: do not leave it in freed memory. */
	explicit_bzero(frame, frame_cap + response_cap);
	free(props);
	return rc;
}

/* Either side may leave a value at 0, "no limit / no preference": take the other's. */
static uint32_t negotiate(uint32_t ours, uint32_t theirs)
{
	if (!ours)
		return theirs;
	if (!theirs)
		return ours;
	return ours < theirs ? ours : theirs;
}

/* Settle tune's values, then send tune-ok and open in one write. */
static int send_tune_ok_open(struct handshake *h, const struct sv_connection_tune *t,
			     struct sv_session *s)
{
	const struct sv_connect_params *p = h->p;
	uint32_t channel_max = negotiate(p->channel_max, t->channel_max);
	uint32_t frame_max = negotiate(p->frame_max, t->frame_max);
	struct sv_codec_error cerr;
	struct sv_method m;
	uint8_t buf[512];
	size_t n, len;

	s->channel_max = channel_max ? (uint16_t)channel_max : UINT16_MAX;
	/* "Unlimited" still needs a bound the I/O thread can buffer. */
	if (!frame_max)
		frame_max = DEFAULT_FRAME_MAX;
	/* Every peer accepts frames of frame-min-size; a smaller offer breaks the spec. */
	s->frame_max = frame_max < SV_FRAME_MIN_SIZE ? SV_FRAME_MIN_SIZE : frame_max;
	s->heartbeat = (uint16_t)negotiate(p->heartbeat, t->heartbeat);

	m = (struct sv_method){
	    .id = SV_CONNECTION_TUNE_OK,
	    .a.connection_tune_ok = {s->channel_max, s->frame_max, s->heartbeat},
	};
	len = sv_frame_put_method(buf, sizeof buf, 0, &m, &cerr);
	if (!len)
		return encode_failed(h, &cerr);
	m = (struct sv_method){
	    .id = SV_CONNECTION_OPEN,
	    .a.connection_open.virtual_host = {(const uint8_t *)p->vhost,
					       (uint32_t)strlen(p->vhost)},
	};
	n = sv_frame_put_method(buf + len, sizeof buf - len, 0, &m, &cerr);
	if (!n)
		return encode_failed(h, &cerr);
	return send_all(h, buf, len + n);
}

static int handshake(struct handshake *h, struct sv_session *s)
{
	struct sv_decoded_frame d;
	int rc;

	sv_reader_init(&h->reader, SV_FRAME_MIN_SIZE);
	h->step = "sending the protocol header";
	rc = send_all(h, sv_protocol_header, sizeof sv_protocol_header);
	if (rc)
		return rc;
	h->step = "waiting for connection.start";
	rc = expect_method(h, SV_CONNECTION_START, &d);
	if (rc)
		return rc;
	rc = check_start(h, &d.u.method.a.connection_start, s);
	if (rc)
		return rc;
	h->step = "sending connection.start-ok";
	rc = send_start_ok(h);
	if (rc)
		return rc;
	h->step = "waiting for connection.tune";
	rc = expect_method(h, SV_CONNECTION_TUNE, &d);
	if (rc)
		return rc;
	h->step = "sending connection.tune-ok and connection.open";
	rc = send_tune_ok_open(h, &d.u.method.a.connection_tune, s);
	if (rc)
		return rc;
	h->step = "waiting for connection.open-ok";
	return expect_method(h, SV_CONNECTION_OPEN_OK, &d);
}

static int check_params(const struct sv_connect_params *p, salvo_error *err)
{
	if (!p || !p->host || !*p->host || !p->user || !p->password || !p->vhost)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				 "host, user, password and vhost are required");
	if ((unsigned)p->auth >= sizeof mechanism_names / sizeof mechanism_names[0])
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "unknown SASL mechanism %d", (int)p->auth);
	if (strlen(p->vhost) > SV_SHORTSTR_MAX)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				 "vhost is longer than %d bytes", SV_SHORTSTR_MAX);
	if (p->timeout_ms <= 0)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				 "timeout_ms must be positive, got %d", p->timeout_ms);
	if (p->auth == SV_AUTH_EXTERNAL &&
	    (!p->tls || !p->tls_settings.certfile || !*p->tls_settings.certfile))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "auth_mechanism=external needs an amqps:// endpoint and a "
				    "certfile");
	return 0;
}

int sv_connect(const struct sv_connect_params *p, struct sv_session *s, salvo_error *err)
{
	struct handshake h = {.p = p, .fd = -1};
	salvo_error scratch;
	bool v6;
	int rc;

	if (!err)
		err = &scratch;
	*err = (salvo_error){0};
	if (!s)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				 "no session to fill");
	*s = (struct sv_session){.fd = -1};
	rc = check_params(p, err);
	if (rc)
		return rc;
	h.err = err;
	h.deadline_ms = now_ms() + p->timeout_ms;
	v6 = strchr(p->host, ':') != NULL;
	snprintf(h.peer, sizeof h.peer, "%s%.255s%s:%u", v6 ? "[" : "", p->host, v6 ? "]" : "",
		 p->port);

	/* The TLS context first: a file that does not load fails before any network. */
	if (p->tls)
		rc = sv_tls_new(&p->tls_settings, p->host, h.peer, &h.tls, err);
	if (!rc)
		rc = tcp_connect(&h);
	if (!rc && h.tls)
		rc = tls_handshake(&h);
	if (!rc)
		rc = handshake(&h, s);
	if (rc) {
		if (h.fd >= 0)
			close(h.fd);
		sv_tls_free(h.tls);
		/* A hostile or careless server could echo the password back in its reply
		 * text: masked in place, the rest stays readable. */
		sv_redact(err->text, p->password);
		return rc;
	}
	s->fd = h.fd;
	s->tls = h.tls;
	return 0;
}

int sv_session_close(struct sv_session *s, uint16_t reply_code, const char *text, int timeout_ms,
		     salvo_error *err)
{
	const struct sv_connect_params p = {.timeout_ms = timeout_ms};
	struct handshake h = {.p = &p, .fd = s->fd, .tls = s->tls, .framed = true};
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};
	struct sv_connection_close *c = &m.a.connection_close;
	struct sv_decoded_frame d;
	struct sv_codec_error cerr;
	uint8_t buf[CLOSE_FRAME_MAX];
	salvo_error scratch;
	size_t n;
	int rc;

	if (!err)
		err = &scratch;
	*err = (salvo_error){0};
	h.err = err;
	h.deadline_ms = now_ms() + timeout_ms;
	h.step = "sending connection.close";
	snprintf(h.peer, sizeof h.peer, "the broker");
	sv_reader_init(&h.reader, SV_FRAME_MIN_SIZE);
	c->reply_code = reply_code;
	c->reply_text = (struct sv_bytes){(const uint8_t *)text, (uint32_t)strnlen(text, 255)};
	n = sv_frame_put_method(buf, sizeof buf, 0, &m, &cerr);
	rc = n ? send_all(&h, buf, n) : encode_failed(&h, &cerr);
	h.step = "waiting for connection.close-ok";
	/* Until close-ok: heartbeats, and anything else sent before the broker saw our close,
	 * are skipped. */
	while (!rc) {
		rc = read_frame(&h, &d);
		if (rc == SALVO_ERR_CLOSED)
			rc = sv_error_set(err, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
					  "the broker closed the connection %s", h.step);
		if (rc || d.frame.type != SV_FRAME_METHOD || d.frame.channel != 0)
			continue;
		if (d.u.method.id == SV_CONNECTION_CLOSE_OK)
			break;
		if (d.u.method.id == SV_CONNECTION_CLOSE) {
			struct sv_method ok = {.id = SV_CONNECTION_CLOSE_OK};

			send_last(&h, &ok);
			break;
		}
	}
	if (s->tls) {
		sv_tls_close_notify(s->tls);
		n = sv_tls_take(s->tls, h.cbuf, sizeof h.cbuf);
		if (n)
			send(s->fd, h.cbuf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (s->fd >= 0)
		close(s->fd);
	sv_tls_free(s->tls);
	s->fd = -1;
	s->tls = NULL;
	return rc;
}
