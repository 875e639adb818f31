/* SPDX-License-Identifier: MIT */
/*
 * --metrics-port: a minimal HTTP server on 127.0.0.1 answering every request with
 * salvo_stats_prometheus_clients over the run's connections, so a Prometheus (or curl)
 * can scrape salvo's figures during a run. One thread, one request per connection
 * (Connection: close), a bounded request read with a timeout: a scrape at a time is all
 * a benchmark needs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "perf.h"

/* A request has this long to arrive whole, however it trickles in. */
#define REQUEST_MS 2000

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read until the end of the headers, REQUEST_MS after the connection came, or stop: the
 * request itself does not matter (any path is the metrics), but answering before it is
 * read would make the peer see a reset. Bytes past the buffer are read and dropped, only
 * the last three kept to find the end. Returns false to drop the connection unanswered. */
static bool read_request(struct metrics *m, int fd)
{
	char buf[4096 + 4];
	size_t len = 0;
	uint64_t deadline = now_ms() + REQUEST_MS;

	while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = now_ms();
		ssize_t n;

		if (now >= deadline)
			return false;
		/* At most 100 ms at a time: stop is seen promptly. */
		if (poll(&p, 1, deadline - now < 100 ? (int)(deadline - now) : 100) <= 0)
			continue;
		n = recv(fd, buf + len, sizeof buf - 1 - len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return false;
		if (n < 0)
			continue;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return true;
		if (len == sizeof buf - 1) {
			memmove(buf, buf + len - 3, 3);
			len = 3;
		}
	}
	return false;
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void answer(struct metrics *m, int fd)
{
	size_t cap = 1 << 16, len;
	char *body = malloc(cap), head[256];

	if (!read_request(m, fd)) {
		free(body);
		return;
	}
	/* The text's length is known only once written: grow until it fits. */
	while (body && (len = salvo_stats_prometheus_clients(m->clients, m->nclients, body, cap)) >=
			       cap) {
		char *bigger = realloc(body, len + 1);
		if (!bigger) {
			free(body);
			body = NULL;
			break;
		}
		body = bigger;
		cap = len + 1;
	}
	if (!body) {
		static const char oom[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
					  "Connection: close\r\n\r\n";
		send_all(fd, oom, sizeof oom - 1);
		return;
	}
	snprintf(head, sizeof head,
		 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 len);
	send_all(fd, head, strlen(head));
	send_all(fd, body, len);
	free(body);
}

static void *serve(void *arg)
{
	struct metrics *m = arg;
	/* Sends: a reader that stops reading cannot hold the thread longer than this. */
	struct timeval tv = {.tv_sec = 2};

	while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		struct pollfd p = {.fd = m->fd, .events = POLLIN};
		int fd;

		/* Woken by stop within 100 ms: no other way out of accept is needed. */
		if (poll(&p, 1, 100) <= 0)
			continue;
		/* The listening socket is non-blocking: a peer that went away between the poll
		 * and here cannot hold the thread in accept. */
		fd = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		answer(m, fd);
		close(fd);
	}
	return NULL;
}

int metrics_start(struct metrics *m, salvo_client *const *clients, size_t n, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int one = 1, rc;

	m->clients = clients;
	m->nclients = n;
	atomic_init(&m->stop, false);
	m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 16) ||
	    getsockname(m->fd, (struct sockaddr *)&a, &alen)) {
		fprintf(stderr, PROG ": --metrics-port %d: %s\n", port, strerror(errno));
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		return -1;
	}
	rc = pthread_create(&m->thread, NULL, serve, m);
	if (rc) {
		fprintf(stderr, PROG ": --metrics-port: start its thread: %s\n", strerror(rc));
		close(m->fd);
		m->fd = -1;
		return -1;
	}
	m->port = ntohs(a.sin_port);
	fprintf(stderr, PROG ": metrics at http://127.0.0.1:%d/metrics\n", m->port);
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (m->fd < 0)
		return;
	atomic_store_explicit(&m->stop, true, memory_order_relaxed);
	pthread_join(m->thread, NULL);
	close(m->fd);
	m->fd = -1;
}
