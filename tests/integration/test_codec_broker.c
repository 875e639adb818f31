/* SPDX-License-Identifier: MIT */
/*
 * The codec against a real RabbitMQ: a plain blocking socket and nothing but src/codec
 * perform the handshake, open a channel in confirm mode, publish through a publish
 * template (bodies from empty to several frames), wait for the broker's acks, count and
 * fetch the messages, provoke a channel error, and close. If the codec disagreed with the
 * broker on any byte, RabbitMQ would close the connection with a frame or syntax error.
 *
 * Needs SALVO_TEST_URI (amqp://guest:guest@127.0.0.1:PORT, as scripts/rabbitmq.sh prints);
 * skips (exit 77) without it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "frame.h"
#include "methods.h"
#include "table.h"
#include "template.h"

#include "../check.h"

#define B(s) ((struct sv_bytes){(const uint8_t *)(s), sizeof(s) - 1})
#define STR(s) ((struct sv_bytes){(const uint8_t *)(s), (uint32_t)strlen(s)})

#define MESSAGES 2000
#define QUEUE "salvo-codec-broker-test"

static int fd;
static struct sv_reader reader;
static uint8_t rbuf[1 << 20];
static size_t rlen, rpos;
static uint8_t wbuf[1 << 20];

static void send_all(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		CHECK(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static void send_method(uint16_t ch, const struct sv_method *m)
{
	struct sv_codec_error err;
	size_t n = sv_frame_put_method(wbuf, sizeof wbuf, ch, m, &err);
	if (!n) {
		fprintf(stderr, "encode %s: %s\n", sv_method_name(m->id), err.reason);
		exit(1);
	}
	send_all(wbuf, n);
}

/* Next frame from the socket; heartbeats are skipped (the test asks for none anyway). */
static void next_frame(struct sv_decoded_frame *d)
{
	for (;;) {
		ssize_t n = sv_reader_next(&reader, rbuf + rpos, rlen - rpos, d);
		if (n < 0) {
			fprintf(stderr, "decode: %u %s\n", reader.err.reply_code, reader.err.reason);
			exit(1);
		}
		if (n > 0) {
			rpos += (size_t)n;
			if (d->frame.type == SV_FRAME_HEARTBEAT)
				continue;
			return;
		}
		/* Need more: keep the partial frame, compact, read. Frames alias rbuf, so only
		 * compact when the caller is done with the previous one (it is, by now). */
		memmove(rbuf, rbuf + rpos, rlen - rpos);
		rlen -= rpos;
		rpos = 0;
		CHECK(rlen < sizeof rbuf);
		n = recv(fd, rbuf + rlen, sizeof rbuf - rlen, 0);
		if (n <= 0) {
			fprintf(stderr, "recv: connection closed or timed out (%zd)\n", n);
			exit(1);
		}
		rlen += (size_t)n;
	}
}

static void expect_method(uint16_t ch, uint32_t id, struct sv_decoded_frame *d)
{
	next_frame(d);
	if (d->frame.type != SV_FRAME_METHOD || d->u.method.id != id || d->frame.channel != ch) {
		fprintf(stderr, "expected %s on channel %u, got frame type %u channel %u %s\n",
			sv_method_name(id), ch, d->frame.type, d->frame.channel,
			d->frame.type == SV_FRAME_METHOD ? sv_method_name(d->u.method.id) : "");
		if (d->frame.type == SV_FRAME_METHOD && (d->u.method.id == SV_CONNECTION_CLOSE ||
							 d->u.method.id == SV_CHANNEL_CLOSE)) {
			const struct sv_connection_close *c = &d->u.method.a.connection_close;
			fprintf(stderr, "  %u %.*s\n", c->reply_code, (int)c->reply_text.len,
				c->reply_text.ptr);
		}
		exit(1);
	}
}

static void connect_to(const char *uri)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 15};
	unsigned port;
	int one = 1;

	/* The test broker's URI has this one shape; the real URI parser is the engine's. */
	CHECK(sscanf(uri, "amqp://guest:guest@127.0.0.1:%u", &port) == 1);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
}

static uint32_t handshake(void)
{
	struct sv_decoded_frame d;
	struct sv_method m;
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_field f;
	uint8_t props[256];
	uint32_t frame_max;

	send_all(sv_protocol_header, sizeof sv_protocol_header);
	expect_method(0, SV_CONNECTION_START, &d);
	const struct sv_connection_start *s = &d.u.method.a.connection_start;
	CHECK(s->version_major == 0 && s->version_minor == 9);
	CHECK(memmem(s->mechanisms.ptr, s->mechanisms.len, "PLAIN", 5) != NULL);
	CHECK(sv_table_find(s->server_properties, "product", &f));
	CHECK(f.type == SV_FIELD_LONGSTR && f.v.str.len == 8 && !memcmp(f.v.str.ptr, "RabbitMQ", 8));
	CHECK(sv_table_find(s->server_properties, "capabilities", &f) && f.type == SV_FIELD_TABLE);
	CHECK(sv_table_find(f.v.table, "publisher_confirms", &f) && f.type == SV_FIELD_BOOL &&
	      f.v.b);

	sv_table_writer_init(&w, props, sizeof props);
	sv_tw_str(&w, "product", "salvo codec test");
	sv_tw_table_begin(&w, "capabilities");
	sv_tw_bool(&w, "publisher_confirms", true);
	sv_tw_bool(&w, "basic.nack", true);
	sv_tw_table_end(&w);
	m = (struct sv_method){.id = SV_CONNECTION_START_OK};
	CHECK(sv_table_writer_finish(&w, &m.a.connection_start_ok.client_properties, &err) == 0);
	m.a.connection_start_ok.mechanism = B("PLAIN");
	m.a.connection_start_ok.response = B("\0guest\0guest");
	m.a.connection_start_ok.locale = B("en_US");
	send_method(0, &m);

	expect_method(0, SV_CONNECTION_TUNE, &d);
	frame_max = d.u.method.a.connection_tune.frame_max;
	CHECK(frame_max >= SV_FRAME_MIN_SIZE);
	m = (struct sv_method){.id = SV_CONNECTION_TUNE_OK,
			       .a.connection_tune_ok = {d.u.method.a.connection_tune.channel_max,
							frame_max, 0}};
	send_method(0, &m);
	sv_reader_init(&reader, frame_max);

	m = (struct sv_method){.id = SV_CONNECTION_OPEN, .a.connection_open.virtual_host = B("/")};
	send_method(0, &m);
	expect_method(0, SV_CONNECTION_OPEN_OK, &d);
	return frame_max;
}

/* Publish MESSAGES bodies of assorted sizes through one template; returns the bytes. */
static void publish_all(uint32_t frame_max, uint8_t *body, size_t max_body)
{
	struct sv_basic_props props = {.flags = SV_PROP_DELIVERY_MODE | SV_PROP_CONTENT_TYPE,
				       .delivery_mode = 1,
				       .content_type = B("application/octet-stream")};
	struct sv_publish_template t;
	struct sv_codec_error err;
	static uint8_t tpl[1024];
	size_t used = 0;

	CHECK(sv_publish_template_init(&t, tpl, sizeof tpl, 1, B(""), B(QUEUE), true, &props,
				       frame_max, &err) == 0);
	for (unsigned i = 0; i < MESSAGES; i++) {
		/* Sizes cover empty, one frame, exactly one chunk, and several frames. */
		size_t len = i % 500 == 7 ? 3 * (size_t)t.chunk + 11
			     : i % 100 == 3 ? t.chunk
			     : i % 10 == 0  ? 0
					    : 1 + i % 300;
		size_t n = sv_publish_size(&t, len);
		CHECK(len <= max_body);
		if (used + n > sizeof wbuf) {
			send_all(wbuf, used);
			used = 0;
		}
		CHECK(n <= sizeof wbuf);
		body[0] = (uint8_t)i;
		sv_publish_write(&t, wbuf + used, body, len);
		used += n;
	}
	send_all(wbuf, used);
}

/* The whole conversation, one case: each step needs the ones before it. */
static int case_against_rabbitmq(void)
{
	const char *uri = getenv("SALVO_TEST_URI");
	struct sv_decoded_frame d;
	struct sv_content_state cs;
	struct sv_codec_error err;
	struct sv_method m;
	uint64_t acked = 0, got_bytes = 0;
	uint32_t frame_max;
	static uint8_t body[3 * 131072 + 64];

	if (!uri) {
		fprintf(stderr, "SALVO_TEST_URI not set: no broker to test against\n");
		return 77;
	}
	sv_reader_init(&reader, SV_FRAME_MIN_SIZE);
	connect_to(uri);
	frame_max = handshake();
	CHECK(frame_max <= 131072);

	m = (struct sv_method){.id = SV_CHANNEL_OPEN};
	send_method(1, &m);
	expect_method(1, SV_CHANNEL_OPEN_OK, &d);
	m = (struct sv_method){.id = SV_CONFIRM_SELECT};
	send_method(1, &m);
	expect_method(1, SV_CONFIRM_SELECT_OK, &d);
	m = (struct sv_method){.id = SV_QUEUE_DECLARE};
	m.a.queue_declare.queue = B(QUEUE);
	m.a.queue_declare.auto_delete = true;
	send_method(1, &m);
	expect_method(1, SV_QUEUE_DECLARE_OK, &d);
	m = (struct sv_method){.id = SV_QUEUE_PURGE, .a.queue_purge.queue = B(QUEUE)};
	send_method(1, &m);
	expect_method(1, SV_QUEUE_PURGE_OK, &d);

	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)(i * 31 + 7);
	publish_all(frame_max, body, sizeof body);

	/* Acks may be single or multiple; tags are 1..MESSAGES in order. */
	while (acked < MESSAGES) {
		expect_method(1, SV_BASIC_ACK, &d);
		uint64_t tag = d.u.method.a.basic_ack.delivery_tag;
		CHECK(tag > acked && tag <= MESSAGES);
		CHECK(d.u.method.a.basic_ack.multiple || tag == acked + 1);
		acked = tag;
	}
	printf("published %d messages, all acked (frame_max %u)\n", MESSAGES, frame_max);

	m = (struct sv_method){.id = SV_QUEUE_DECLARE};
	m.a.queue_declare.queue = B(QUEUE);
	m.a.queue_declare.passive = true;
	send_method(1, &m);
	expect_method(1, SV_QUEUE_DECLARE_OK, &d);
	CHECK(d.u.method.a.queue_declare_ok.message_count == MESSAGES);
	printf("queue holds %u messages\n", d.u.method.a.queue_declare_ok.message_count);

	/* Fetch message 7, the multi-frame one, and check content order and bytes. */
	for (unsigned i = 0; i <= 7; i++) {
		m = (struct sv_method){.id = SV_BASIC_GET, .a.basic_get = {0, B(QUEUE), true}};
		send_method(1, &m);
		sv_content_init(&cs);
		int ev;
		got_bytes = 0;
		do {
			next_frame(&d);
			ev = sv_content_feed(&cs, &d, &err);
			CHECK(ev > 0);
			if (d.frame.type == SV_FRAME_METHOD)
				CHECK(d.u.method.id == SV_BASIC_GET_OK);
			if (d.frame.type == SV_FRAME_BODY) {
				/* body[0] carried the message's index when it was published */
				size_t skip = got_bytes == 0;
				CHECK(!skip || d.frame.payload[0] == (uint8_t)i);
				CHECK(memcmp(d.frame.payload + skip, body + got_bytes + skip,
					     d.frame.size - skip) == 0);
				got_bytes += d.frame.size;
			}
		} while (ev != SV_CONTENT_COMPLETE);
	}
	CHECK(got_bytes > 2 * (uint64_t)(frame_max - SV_FRAME_OVERHEAD));
	printf("basic.get returned message 7 intact: %llu bytes in several body frames\n",
	       (unsigned long long)got_bytes);

	/* A soft error: the broker closes the channel with 404 naming queue.declare. */
	m = (struct sv_method){.id = SV_QUEUE_DECLARE};
	m.a.queue_declare.queue = B("salvo-no-such-queue");
	m.a.queue_declare.passive = true;
	send_method(1, &m);
	expect_method(1, SV_CHANNEL_CLOSE, &d);
	CHECK(d.u.method.a.channel_close.reply_code == 404);
	CHECK(sv_reply_code_class(404) == SV_REPLY_SOFT);
	CHECK(d.u.method.a.channel_close.class_id == SV_CLASS_QUEUE);
	CHECK(d.u.method.a.channel_close.method_id == (SV_QUEUE_DECLARE & 0xFFFF));
	printf("channel error: %u %.*s\n", d.u.method.a.channel_close.reply_code,
	       (int)d.u.method.a.channel_close.reply_text.len,
	       d.u.method.a.channel_close.reply_text.ptr);
	m = (struct sv_method){.id = SV_CHANNEL_CLOSE_OK};
	send_method(1, &m);

	m = (struct sv_method){.id = SV_CONNECTION_CLOSE, .a.connection_close = {200, B("bye")}};
	send_method(0, &m);
	expect_method(0, SV_CONNECTION_CLOSE_OK, &d);
	close(fd);
	return 0;
}

static const struct test_case cases[] = {
	{"against RabbitMQ", .run_status = case_against_rabbitmq},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
