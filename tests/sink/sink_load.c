/* SPDX-License-Identifier: MIT */
/*
 * sink-load: one thread publishing as fast as it can write, to measure salvo-sink without a
 * client library in the way, and to check that every message is confirmed and counted.
 *
 *   sink-load --port P [--host H] [--count N] [--size B] [--key K] [--confirm] [--check]
 *
 * A megabyte's worth of messages is laid down once with the codec's publish template and
 * sent again and again (the last send cut to the count); publishing then costs the sender
 * one send() per megabyte. In confirm mode acks and nacks are read between sends and
 * counted per delivery tag. At the end it declares the queue named K passively and prints
 * its message_count. --check makes that a test: exit 1 unless every message was acked
 * exactly once, nothing else was, and the count is N.
 *
 * Any connection.close or channel.close from the server ends the run with exit 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "methods.h"
#include "template.h"

#define RBUF	   (1u << 20)
#define SEND_BATCH (1u << 20)

struct load {
	int fd;
	uint32_t frame_max;
	uint8_t *rb;
	size_t rlen;
	/* confirms: one bit per delivery tag, tags 1..count */
	uint8_t *settled_bits;
	uint64_t count, sent, low; /* every tag <= low is settled */
	uint64_t acked, nacked, bad;
	int64_t declared; /* message_count from declare-ok, -1 until it comes */
	bool closed;	  /* close-ok received */
};

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fputs("sink-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_all(struct load *l, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(l->fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			fail("send: %s", strerror(errno));
		p += k;
		n -= (size_t)k;
	}
}

static void send_method(struct load *l, uint16_t channel, const struct sv_method *m)
{
	uint8_t buf[1024];
	struct sv_codec_error err;
	size_t n = sv_frame_put_method(buf, sizeof buf, channel, m, &err);

	if (!n)
		fail("encoding %s: %s", sv_method_name(m->id), err.reason);
	send_all(l, buf, n);
}

static void settle_one(struct load *l, uint64_t tag, bool nack)
{
	if (!tag || tag > l->sent || (l->settled_bits[tag / 8] >> (tag % 8) & 1)) {
		l->bad++;
		return;
	}
	l->settled_bits[tag / 8] |= (uint8_t)(1u << (tag % 8));
	if (nack)
		l->nacked++;
	else
		l->acked++;
	while (l->low < l->sent && (l->settled_bits[(l->low + 1) / 8] >> ((l->low + 1) % 8) & 1))
		l->low++;
}

/* A multiple ack or nack settles every tag up to it that is still outstanding. */
static void settle(struct load *l, uint64_t tag, bool multiple, bool nack)
{
	if (!multiple) {
		settle_one(l, tag, nack);
		return;
	}
	if (tag > l->sent || tag <= l->low) {
		l->bad++;
		return;
	}
	for (uint64_t t = l->low + 1; t <= tag; t++)
		if (!(l->settled_bits[t / 8] >> (t % 8) & 1))
			settle_one(l, t, nack);
}

static void on_method(struct load *l, uint16_t channel, const struct sv_method *m)
{
	switch (m->id) {
	case SV_BASIC_ACK:
		settle(l, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple, false);
		break;
	case SV_BASIC_NACK:
		settle(l, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple, true);
		break;
	case SV_QUEUE_DECLARE_OK:
		l->declared = m->a.queue_declare_ok.message_count;
		break;
	case SV_CONNECTION_CLOSE_OK:
		l->closed = true;
		break;
	case SV_CONNECTION_CLOSE:
		fail("connection.close %u: %.*s", m->a.connection_close.reply_code,
		     (int)m->a.connection_close.reply_text.len,
		     (const char *)m->a.connection_close.reply_text.ptr);
	case SV_CHANNEL_CLOSE:
		fail("channel.close %u on channel %u: %.*s", m->a.channel_close.reply_code, channel,
		     (int)m->a.channel_close.reply_text.len,
		     (const char *)m->a.channel_close.reply_text.ptr);
	}
}

/* Read what is there (waiting up to timeout_ms) and handle every whole frame. Returns the
 * id of the last method seen, 0 if none. */
static uint32_t pump(struct load *l, int timeout_ms)
{
	struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
	struct sv_decoded_frame d;
	struct sv_codec_error err;
	uint32_t last = 0;
	size_t off = 0;
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	n = recv(l->fd, l->rb + l->rlen, RBUF - l->rlen, MSG_DONTWAIT);
	if (n == 0)
		fail("the server closed the connection");
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		fail("recv: %s", strerror(errno));
	if (n < 0)
		return 0;
	l->rlen += (size_t)n;
	while ((n = sv_frame_decode(l->rb + off, l->rlen - off, l->frame_max, &d, &err)) > 0) {
		off += (size_t)n;
		if (d.frame.type == SV_FRAME_METHOD) {
			on_method(l, d.frame.channel, &d.u.method);
			last = d.u.method.id;
		}
	}
	if (n < 0)
		fail("bad frame from the server: %u %s", err.reply_code, err.reason);
	memmove(l->rb, l->rb + off, l->rlen - off);
	l->rlen -= off;
	return last;
}

static void expect(struct load *l, uint32_t id, struct sv_method *out)
{
	struct sv_decoded_frame d;
	struct sv_codec_error err;

	/* One frame at a time, so that what out points to stays at the front of rb. */
	for (;;) {
		ssize_t n = sv_frame_decode(l->rb, l->rlen, l->frame_max, &d, &err);
		ssize_t k;

		if (n < 0)
			fail("bad frame from the server: %u %s", err.reply_code, err.reason);
		if (n > 0 && d.frame.type == SV_FRAME_METHOD && d.u.method.id == id) {
			if (out)
				*out = d.u.method;
			memmove(l->rb, l->rb + n, l->rlen - (size_t)n);
			l->rlen -= (size_t)n;
			return;
		}
		if (n > 0) {
			if (d.frame.type == SV_FRAME_METHOD)
				on_method(l, d.frame.channel, &d.u.method);
			memmove(l->rb, l->rb + n, l->rlen - (size_t)n);
			l->rlen -= (size_t)n;
			continue;
		}
		k = recv(l->fd, l->rb + l->rlen, RBUF - l->rlen, 0);
		if (k <= 0)
			fail("waiting for %s: %s", sv_method_name(id), k ? strerror(errno) : "EOF");
		l->rlen += (size_t)k;
	}
}

static void handshake(struct load *l, bool confirm)
{
	static const uint8_t plain[] = "\0guest\0guest";
	struct sv_method m;

	send_all(l, sv_protocol_header, sizeof sv_protocol_header);
	expect(l, SV_CONNECTION_START, NULL);
	m = (struct sv_method){.id = SV_CONNECTION_START_OK};
	m.a.connection_start_ok.mechanism = SV_BYTES("PLAIN");
	m.a.connection_start_ok.response = (struct sv_bytes){plain, sizeof plain - 1};
	m.a.connection_start_ok.locale = SV_BYTES("en_US");
	send_method(l, 0, &m);
	expect(l, SV_CONNECTION_TUNE, &m);
	l->frame_max = m.a.connection_tune.frame_max ? m.a.connection_tune.frame_max : 131072;
	m = (struct sv_method){
	    .id = SV_CONNECTION_TUNE_OK,
	    .a.connection_tune_ok = {m.a.connection_tune.channel_max, l->frame_max, 0},
	};
	send_method(l, 0, &m);
	m = (struct sv_method){.id = SV_CONNECTION_OPEN,
			       .a.connection_open.virtual_host = SV_BYTES("/")};
	send_method(l, 0, &m);
	expect(l, SV_CONNECTION_OPEN_OK, NULL);
	m = (struct sv_method){.id = SV_CHANNEL_OPEN};
	send_method(l, 1, &m);
	expect(l, SV_CHANNEL_OPEN_OK, NULL);
	if (confirm) {
		m = (struct sv_method){.id = SV_CONFIRM_SELECT};
		send_method(l, 1, &m);
		expect(l, SV_CONFIRM_SELECT_OK, NULL);
	}
}

static int connect_to(const char *host, unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		fail("--host: '%s' is not an IPv4 address", host);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa))
		fail("connect to %s:%u: %s", host, port, strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'h'},  {"port", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'n'}, {"size", required_argument, NULL, 's'},
	    {"key", required_argument, NULL, 'k'},   {"confirm", no_argument, NULL, 'c'},
	    {"check", no_argument, NULL, 'C'},	     {NULL, 0, NULL, 0},
	};
	const char *host = "127.0.0.1", *key = "sink-load";
	unsigned port = 0;
	uint64_t count = 1000000, size = 100;
	bool confirm = false, check = false;
	struct load l = {.fd = -1, .frame_max = SV_FRAME_MIN_SIZE, .declared = -1};
	struct sv_publish_template t;
	struct sv_basic_props props = {0};
	struct sv_codec_error err;
	uint8_t tbuf[1024], *batch, *body;
	size_t msg_len, per_batch;
	double t0, secs;
	int opt;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			count = strtoull(optarg, NULL, 10);
			break;
		case 's':
			size = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			key = optarg;
			break;
		case 'c':
			confirm = true;
			break;
		case 'C':
			check = true;
			break;
		default:
			fprintf(stderr,
				"usage: sink-load --port P [--host H] [--count N] [--size B] "
				"[--key K] [--confirm] [--check]\n");
			return 2;
		}
	}
	if (!port || !count || size > SEND_BATCH || strlen(key) > SV_SHORTSTR_MAX) {
		fprintf(
		    stderr,
		    "sink-load: need --port, a count > 0, a size <= 1 MiB, a key <= 255 bytes\n");
		return 2;
	}

	l.rb = malloc(RBUF);
	l.settled_bits = calloc(count / 8 + 1, 1);
	body = calloc(1, size + 1);
	if (!l.rb || !l.settled_bits || !body)
		fail("out of memory");
	l.count = count;
	l.fd = connect_to(host, port);
	handshake(&l, confirm);

	if (sv_publish_template_init(&t, tbuf, sizeof tbuf, 1, SV_BYTES(""),
				     (struct sv_bytes){(const uint8_t *)key, (uint32_t)strlen(key)},
				     false, &props, l.frame_max, &err))
		fail("publish template: %s", err.reason);
	msg_len = sv_publish_size(&t, size);
	per_batch = SEND_BATCH / msg_len ? SEND_BATCH / msg_len : 1;
	batch = malloc(per_batch * msg_len);
	if (!batch)
		fail("out of memory");
	for (size_t i = 0; i < per_batch; i++)
		sv_publish_write(&t, batch + i * msg_len, body, size);

	t0 = now_s();
	while (l.sent < count) {
		uint64_t n = count - l.sent < per_batch ? count - l.sent : per_batch;

		send_all(&l, batch, n * msg_len);
		l.sent += n;
		/* Take the acks that are there; the sink sends one per read batch. */
		while (confirm && pump(&l, 0))
			;
	}
	while (confirm && l.low < count)
		if (!pump(&l, 10000) && l.low < count)
			fail("timed out waiting for confirms: %llu of %llu settled",
			     (unsigned long long)(l.acked + l.nacked), (unsigned long long)count);
	secs = now_s() - t0;

	{
		struct sv_method m = {.id = SV_QUEUE_DECLARE};

		m.a.queue_declare.queue =
		    (struct sv_bytes){(const uint8_t *)key, (uint32_t)strlen(key)};
		m.a.queue_declare.passive = true;
		send_method(&l, 1, &m);
		while (l.declared < 0)
			if (!pump(&l, 10000))
				fail("no queue.declare-ok");
		m = (struct sv_method){.id = SV_CONNECTION_CLOSE};
		send_method(&l, 0, &m);
		while (!l.closed)
			if (!pump(&l, 10000))
				fail("no connection.close-ok");
	}

	printf("sink-load: %llu messages of %llu bytes in %.3f s: %.0f msgs/s, %.1f MB/s",
	       (unsigned long long)count, (unsigned long long)size, secs, (double)count / secs,
	       (double)(count * size) / 1e6 / secs);
	if (confirm)
		printf("; acked %llu, nacked %llu, bad %llu", (unsigned long long)l.acked,
		       (unsigned long long)l.nacked, (unsigned long long)l.bad);
	printf("; queue '%s' message_count %lld\n", key, (long long)l.declared);
	close(l.fd);
	free(batch);
	free(body);
	free(l.settled_bits);
	free(l.rb);
	if (check &&
	    ((confirm && (l.acked != count || l.nacked || l.bad)) || (uint64_t)l.declared != count))
		return 1;
	return 0;
}
