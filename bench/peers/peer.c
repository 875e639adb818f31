/* SPDX-License-Identifier: MIT */
/* What the rabbitmq-c peers share (peer.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "peer.h"

#include <amqp_framing.h>

int peer_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", peer_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (--help lists the options)\n", stderr);
	return EXIT_USAGE;
}

int peer_vfail(const char *prefix, const char *detail, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", peer_prog, prefix ? prefix : "");
	vfprintf(stderr, fmt, ap);
	if (detail)
		fprintf(stderr, ": %s", detail);
	fputc('\n', stderr);
	return -1;
}

bool peer_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* The broker's text, printable ASCII kept and every other byte as '?': safe on a terminal. */
static const char *printable(amqp_bytes_t b, char *out, size_t size)
{
	size_t n = b.len < size - 1 ? b.len : size - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = ((const unsigned char *)b.bytes)[i];
		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[n] = '\0';
	return out;
}

void peer_describe_method(amqp_method_t m, char *buf, size_t size)
{
	char text[256];

	if (m.id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t *c = m.decoded;

		snprintf(buf, size, "connection closed by the broker: %u %s", c->reply_code,
			 printable(c->reply_text, text, sizeof text));
	} else if (m.id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t *c = m.decoded;

		snprintf(buf, size, "channel closed by the broker: %u %s", c->reply_code,
			 printable(c->reply_text, text, sizeof text));
	} else {
		snprintf(buf, size, "unexpected method %s", amqp_method_name(m.id));
	}
}

double peer_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
