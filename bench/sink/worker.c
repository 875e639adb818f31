/* SPDX-License-Identifier: MIT */
/*
 * One worker thread: an epoll loop over the listening socket (shared by all workers with
 * EPOLLEXCLUSIVE, so one of them takes each new connection) and the connections it
 * accepted.
 *
 * A readable connection gets one recv() of up to a megabyte per wake-up, into the
 * worker's receive buffer, after the few bytes of a frame the previous read cut in half.
 * proto_input() parses the batch in place; what it did not consume (a partial frame,
 * smaller than frame_max) is carried in the connection until the next read. Replies are
 * sent right after the batch with one send(). So the cost per message is parsing, and
 * syscalls are per megabyte, not per message.
 *
 * Level-triggered: a connection with more to read is simply woken again, after the others
 * had their turn. Timers (heartbeats, delayed confirms, handshake and close deadlines)
 * are looked at when the earliest of them is due, and at least once a second.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"

#define MAX_EVENTS	 64
#define ACCEPTS_PER_WAKE 64
#define TICK_MAX_MS	 1000

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	size_t pending = buf_pending(b), cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return b->p + b->len;
	if (b->off) {
		memmove(b->p, b->p + b->off, pending);
		b->off = 0;
		b->len = pending;
		if (b->cap - b->len >= n)
			return b->p + b->len;
	}
	cap = b->cap ? b->cap * 2 : 4096;
	if (cap < pending + n)
		cap = pending + n;
	p = realloc(b->p, cap);
	if (!p)
		die("out of memory");
	b->p = p;
	b->cap = cap;
	return b->p + b->len;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (n)
		memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){0};
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void conn_log(const struct conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (sink_opts.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "salvo-sink: %s: %s\n", c->peer, msg);
}

void conn_wake_at(struct conn *c, int64_t when_ms)
{
	if (when_ms < c->w->next_tick_ms)
		c->w->next_tick_ms = when_ms;
}

/* --drop-after: with a zero linger, close() resets the connection instead of a FIN. */
void conn_drop(struct conn *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	c->state = CONN_DEAD;
}

static void conn_destroy(struct conn *c)
{
	struct worker *w = c->w;

	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	proto_free(c);
	free(c->carry);
	free(c);
	atomic_fetch_sub_explicit(&w->conns_open, 1, memory_order_relaxed);
}

static void conn_send(struct conn *c)
{
	while (buf_pending(&c->out)) {
		ssize_t n = send(c->fd, c->out.p + c->out.off, buf_pending(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out.off += (size_t)n;
			c->last_send_ms = c->w->now_ms;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return;
		} else if (errno != EINTR) {
			c->state = CONN_DEAD; /* the client is gone: EPIPE, ECONNRESET */
			return;
		}
	}
	c->out.off = c->out.len = 0;
	/* Our last frame is out: the client sees EOF after it, and we wait for its own. */
	if (c->state == CONN_DRAIN && !c->shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
}

/* Register what the connection waits for now. Reading stops while the client leaves a lot
 * of our output unread, which bounds the output buffer, and for good once stalled. */
static void conn_update(struct conn *c)
{
	size_t owed = buf_pending(&c->out) + buf_pending(&c->held);
	uint32_t ev = EPOLLRDHUP;
	struct epoll_event e;

	if (c->state != CONN_STALLED && owed < SINK_OUT_HIGH)
		ev |= EPOLLIN;
	if (buf_pending(&c->out))
		ev |= EPOLLOUT;
	if (ev == c->events)
		return;
	/* While not reading we cannot hear the client's heartbeats: count silence anew. */
	if ((ev & EPOLLIN) && !(c->events & EPOLLIN))
		c->last_recv_ms = c->w->now_ms;
	e = (struct epoll_event){.events = ev, .data.ptr = c};
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &e))
		die("epoll_ctl: %s", strerror(errno));
	c->events = ev;
}

static void conn_read(struct conn *c)
{
	struct worker *w = c->w;
	size_t have = c->carry_len, used, left;
	ssize_t n;

	if (c->state == CONN_DRAIN) {
		n = recv(c->fd, w->rbuf, w->rcap, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			c->state = CONN_DEAD;
		return;
	}
	if (have)
		memcpy(w->rbuf, c->carry, have);
	n = recv(c->fd, w->rbuf + have, w->rcap - have, 0);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (c->state != CONN_CLOSING)
			conn_log(c, "connection lost without connection.close (%s)",
				 n ? strerror(errno) : "EOF");
		c->state = CONN_DEAD;
		return;
	}
	c->last_recv_ms = w->now_ms;
	used = proto_input(c, w->rbuf, have + (size_t)n);
	left = have + (size_t)n - used;
	if (left > c->carry_cap) {
		uint8_t *p = realloc(c->carry, left);

		if (!p)
			die("out of memory");
		c->carry = p;
		c->carry_cap = (uint32_t)left;
	}
	if (left)
		memcpy(c->carry, w->rbuf + used, left);
	c->carry_len = (uint32_t)left;

	if (c->batch_msgs) {
		atomic_fetch_add_explicit(&w->msgs, c->batch_msgs, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->bytes, c->batch_bytes, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->records, c->batch_records, memory_order_relaxed);
		c->batch_msgs = c->batch_bytes = c->batch_records = 0;
	}
	if (c->batch_envelopes || c->batch_bad_envelopes) {
		atomic_fetch_add_explicit(&w->envelopes, c->batch_envelopes, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->bad_envelopes, c->batch_bad_envelopes,
					  memory_order_relaxed);
		c->batch_envelopes = c->batch_bad_envelopes = 0;
	}
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CONN_STALLED) {
		/* Not reading any more; a hang-up is all we wait for. */
		if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
			c->state = CONN_DEAD;
	} else if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
		conn_read(c);
	}
	if (c->state != CONN_DEAD)
		conn_send(c);
	if (c->state == CONN_DEAD)
		conn_destroy(c);
	else
		conn_update(c);
}

/* Timers of one connection; returns when it next needs a look. */
static int64_t conn_timers(struct conn *c)
{
	int64_t now = c->w->now_ms, next = INT64_MAX;
	int64_t half = (int64_t)c->heartbeat * 500;
	bool open = c->state == CONN_RUNNING || c->state == CONN_STALLED;

	if (c->deadline_ms && now >= c->deadline_ms) {
		if (c->state != CONN_DRAIN)
			conn_log(c, "%s timed out",
				 c->state == CONN_CLOSING ? "closing" : "handshake");
		c->state = CONN_DEAD;
		return next;
	}
	if (c->deadline_ms)
		next = c->deadline_ms;
	if (buf_pending(&c->held)) {
		int64_t due = batch_release_held(c, now);

		if (due && due < next)
			next = due;
	}
	if (open && half) {
		int64_t beat = c->last_send_ms + half, dead = c->last_recv_ms + 4 * half;

		/* Only into an empty output: queued bytes will break the silence anyway. */
		if (now >= beat && !buf_pending(&c->out)) {
			proto_put_heartbeat(c);
			beat = now + half;
		} else if (now >= beat) {
			beat = now + half;
		}
		if (beat < next)
			next = beat;
		if ((c->events & EPOLLIN) && now >= dead) {
			conn_log(c, "no frame from the client in %u s (two heartbeat intervals)",
				 2 * c->heartbeat);
			c->state = CONN_DEAD;
			return INT64_MAX;
		}
		if ((c->events & EPOLLIN) && dead < next)
			next = dead;
	}
	conn_send(c);
	return next;
}

static void tick(struct worker *w)
{
	int64_t next = w->now_ms + TICK_MAX_MS;
	struct conn *c, *after;

	w->next_tick_ms = INT64_MAX; /* conn_wake_at from the timers must not be lost */
	for (c = w->conns; c; c = after) {
		int64_t t = conn_timers(c);

		after = c->next;
		if (t < next)
			next = t;
		if (c->state == CONN_DEAD)
			conn_destroy(c);
		else
			conn_update(c);
	}
	if (next < w->next_tick_ms)
		w->next_tick_ms = next;
}

static void describe_peer(struct conn *c, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(c->peer, sizeof c->peer, "[%s]:%u", host, port);
	}
}

static void conn_new(struct worker *w, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof *c);
	struct epoll_event e;
	int one = 1;

	if (!c)
		die("out of memory");
	/* Confirms are small and a publisher may wait for them: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	c->w = w;
	c->state = CONN_HEADER;
	c->frame_max = sink_opts.frame_max;
	c->last_recv_ms = c->last_send_ms = w->now_ms;
	c->deadline_ms = w->now_ms + SINK_HANDSHAKE_TIMEOUT_MS;
	c->events = EPOLLIN | EPOLLRDHUP;
	describe_peer(c, ss);
	e = (struct epoll_event){.events = c->events, .data.ptr = c};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e))
		die("epoll_ctl: %s", strerror(errno));
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	conn_wake_at(c, c->deadline_ms);
	atomic_fetch_add_explicit(&w->conns_open, 1, memory_order_relaxed);
}

static void accept_some(struct worker *w)
{
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(w->listen_fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(w, fd, &ss);
		} else if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors. The level-triggered listener would wake us forever
			 * with the connection still queued: free the spare descriptor, take the
			 * connection and close it, and keep the spare for next time. */
			if (!sink_opts.quiet)
				fprintf(
				    stderr,
				    "salvo-sink: out of file descriptors; refusing a connection\n");
			close(w->spare_fd);
			fd = accept(w->listen_fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			return;
		} else if (errno != EINTR && errno != ECONNABORTED) {
			return; /* EAGAIN: another worker took it, or none is left */
		}
	}
}

void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[MAX_EVENTS];

	w->now_ms = now_ms();
	w->next_tick_ms = w->now_ms + TICK_MAX_MS;
	for (;;) {
		int64_t wait = w->next_tick_ms - w->now_ms;
		int n = epoll_wait(w->epfd, ev, MAX_EVENTS, wait < 0 ? 0 : (int)wait);

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		w->now_ms = now_ms();
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;

			if (p == &w->listen_fd)
				accept_some(w);
			else if (p == &w->stop_fd)
				goto stop;
			else
				conn_event(p, ev[i].events);
		}
		if (w->now_ms >= w->next_tick_ms)
			tick(w);
	}
stop:
	while (w->conns)
		conn_destroy(w->conns);
	return NULL;
}
