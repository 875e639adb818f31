/* SPDX-License-Identifier: MIT */
/*
 * sv_connect: the handshake against a real RabbitMQ (success, bad password, unknown vhost)
 * and against servers inside this test that misbehave on purpose (closed port, silent
 * listener, wrong protocol, garbage, no PLAIN, no AMQPLAIN, dropped login, echoed
 * password), plus scripted servers that check what salvo sends (PLAIN's and AMQPLAIN's
 * responses, the server properties kept) and that nothing past open-ok is read; and one
 * that refuses connection.update-secret as RabbitMQ does, through salvo_client.
 *
 * argv[1] names the case. Broker cases need SALVO_TEST_URI
 * (amqp://guest:guest@127.0.0.1:PORT, as scripts/rabbitmq.sh prints) and skip (exit 77)
 * without it; the others need no broker. Every failure case also checks that sv_connect
 * closed its socket.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../../src/engine/connect.h"
#include "salvo.h"
#include "frame.h"
#include "methods.h"
#include "table.h"

#include "../check.h"

#define PASSWORD "hunter2-not-the-password"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void show(int rc, const salvo_error *e)
{
	printf("  rc %d (%s), kind %d, reply %u, method \"%s\", text \"%s\"\n", rc,
	       salvo_err2str(rc), e->kind, e->reply_code, e->method, e->text);
}

static struct sv_connect_params params(const char *host, uint16_t port)
{
	return (struct sv_connect_params){
	    .host = host,
	    .port = port,
	    .user = "guest",
	    .password = PASSWORD,
	    .vhost = "/",
	    .heartbeat = 10,
	    .connection_name = "salvo test_connect",
	    .timeout_ms = 5000,
	};
}

/* Blocking socket helpers, for the fake servers and for talking over a session's fd. */

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			struct pollfd pfd = {fd, POLLOUT, 0};

			CHECK(poll(&pfd, 1, 5000) == 1);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* false on EOF (or reset) before the first byte. Waits with poll so it works on
 * non-blocking fds. */
static bool recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		CHECK(poll(&pfd, 1, 5000) == 1);
		n = recv(fd, p + got, len - got, 0);
		if ((n == 0 || (n < 0 && errno == ECONNRESET)) && got == 0)
			return false;
		CHECK(n > 0);
		got += (size_t)n;
	}
	return true;
}

static void send_method(int fd, uint16_t channel, const struct sv_method *m)
{
	uint8_t buf[4096];
	struct sv_codec_error cerr;
	size_t n = sv_frame_put_method(buf, sizeof buf, channel, m, &cerr);

	CHECK(n > 0);
	send_all(fd, buf, n);
}

/* Read one frame into buf (which d then points into); false on EOF. */
static bool recv_frame(int fd, uint8_t *buf, size_t cap, struct sv_decoded_frame *d)
{
	struct sv_codec_error cerr;
	uint32_t size;

	if (!recv_all(fd, buf, SV_FRAME_HEADER_SIZE))
		return false;
	size = sv_load32(buf + 3);
	CHECK(size + SV_FRAME_OVERHEAD <= cap);
	CHECK(recv_all(fd, buf + SV_FRAME_HEADER_SIZE, size + 1));
	CHECK(sv_frame_decode(buf, size + SV_FRAME_OVERHEAD, (uint32_t)cap, d, &cerr) > 0);
	return true;
}

static void expect_method(int fd, uint8_t *buf, size_t cap, uint16_t channel, uint32_t id,
			  struct sv_decoded_frame *d)
{
	CHECK(recv_frame(fd, buf, cap, d));
	CHECK(d->frame.type == SV_FRAME_METHOD);
	if (d->u.method.id != id || d->frame.channel != channel) {
		fprintf(stderr, "expected %s on channel %u, got %s on channel %u\n",
			sv_method_name(id), channel, sv_method_name(d->u.method.id),
			d->frame.channel);
		exit(1);
	}
}

static int listen_loopback(int family, uint16_t *port)
{
	struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
	socklen_t len =
	    family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;
	}
	CHECK(listen(fd, 1) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/*
 * A fake server: a thread accepts one connection, reads the protocol header, runs a
 * script, and closes. Scripts record what salvo sent for the main thread to check after
 * fake_finish (the join orders those writes before the reads).
 */
struct fake {
	int listen_fd;
	uint16_t port;
	pthread_t thread;
	void (*script)(struct fake *f, int fd);
	uint8_t buf[65536];
	/* Filled by scripts. */
	uint16_t close_code;  /* of a connection.close salvo sent */
	bool got_close_ok;    /* salvo acknowledged our connection.close */
	bool props_ok;	      /* start-ok carried the expected client properties */
	uint8_t response[64]; /* start-ok's SASL response */
	uint32_t response_len;
	char mechanism[16];   /* start-ok's mechanism */
	char secret[64], reason[64]; /* of a connection.update-secret */
	struct sv_connection_tune_ok tune_ok;
	char vhost[64];
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t header[8];
	int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(recv_all(fd, header, sizeof header));
	CHECK(memcmp(header, sv_protocol_header, sizeof header) == 0);
	f->script(f, fd);
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, int family, void (*script)(struct fake *, int))
{
	memset(f, 0, sizeof *f);
	f->script = script;
	f->listen_fd = listen_loopback(family, &f->port);
	CHECK(f->listen_fd >= 0);
	CHECK(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

static void fake_finish(struct fake *f)
{
	CHECK(pthread_join(f->thread, NULL) == 0);
	close(f->listen_fd);
}

static void send_start(int fd, const char *mechanisms)
{
	uint8_t props[256];
	struct sv_table_writer w;
	struct sv_codec_error cerr;
	struct sv_method m = {.id = SV_CONNECTION_START};

	sv_table_writer_init(&w, props, sizeof props);
	sv_tw_str(&w, "product", "FakeMQ");
	sv_tw_str(&w, "version", "0.0.1");
	sv_tw_table_begin(&w, "capabilities");
	sv_tw_bool(&w, "publisher_confirms", true);
	sv_tw_bool(&w, "basic.nack", false);
	sv_tw_table_end(&w);
	CHECK(sv_table_writer_finish(&w, &m.a.connection_start.server_properties, &cerr) == 0);
	m.a.connection_start.version_major = 0;
	m.a.connection_start.version_minor = 9;
	m.a.connection_start.mechanisms =
	    (struct sv_bytes){(const uint8_t *)mechanisms, (uint32_t)strlen(mechanisms)};
	m.a.connection_start.locales = SV_BYTES("en_US");
	send_method(fd, 0, &m);
}

static bool str_field_is(struct sv_table t, const char *key, const char *want)
{
	struct sv_field v;

	return sv_table_find(t, key, &v) && v.type == SV_FIELD_LONGSTR &&
	       v.v.str.len == strlen(want) && !memcmp(v.v.str.ptr, want, v.v.str.len);
}

static bool bool_field_is_true(struct sv_table t, const char *key)
{
	struct sv_field v;

	return sv_table_find(t, key, &v) && v.type == SV_FIELD_BOOL && v.v.b;
}

/* connection.start with PLAIN, then read and record start-ok. */
static void fake_login(struct fake *f, int fd)
{
	struct sv_decoded_frame d;
	struct sv_table props, caps = {0};
	struct sv_field v;

	send_start(fd, "AMQPLAIN PLAIN");
	expect_method(fd, f->buf, sizeof f->buf, 0, SV_CONNECTION_START_OK, &d);
	const struct sv_connection_start_ok *so = &d.u.method.a.connection_start_ok;
	props = so->client_properties;
	if (sv_table_find(props, "capabilities", &v) && v.type == SV_FIELD_TABLE)
		caps = v.v.table;
	f->props_ok = str_field_is(props, "product", "salvo") &&
		      str_field_is(props, "version", SALVO_VERSION_STRING) &&
		      str_field_is(props, "connection_name", "salvo test_connect") &&
		      bool_field_is_true(caps, "publisher_confirms") &&
		      bool_field_is_true(caps, "basic.nack") &&
		      bool_field_is_true(caps, "consumer_cancel_notify") &&
		      bool_field_is_true(caps, "connection.blocked") &&
		      bool_field_is_true(caps, "authentication_failure_close") &&
		      bool_field_is_true(caps, "exchange_exchange_bindings");
	CHECK(so->response.len <= sizeof f->response);
	memcpy(f->response, so->response.ptr, so->response.len);
	f->response_len = so->response.len;
	CHECK(so->mechanism.len < sizeof f->mechanism);
	memcpy(f->mechanism, so->mechanism.ptr, so->mechanism.len);
}

/* Through start-ok, tune (no limits offered) and open; records tune-ok and the vhost. */
static void fake_login_tune(struct fake *f, int fd)
{
	struct sv_decoded_frame d;
	struct sv_method m = {.id = SV_CONNECTION_TUNE};

	fake_login(f, fd);
	send_method(fd, 0, &m);
	expect_method(fd, f->buf, sizeof f->buf, 0, SV_CONNECTION_TUNE_OK, &d);
	f->tune_ok = d.u.method.a.connection_tune_ok;
	expect_method(fd, f->buf, sizeof f->buf, 0, SV_CONNECTION_OPEN, &d);
	CHECK(d.u.method.a.connection_open.virtual_host.len < sizeof f->vhost);
	memcpy(f->vhost, d.u.method.a.connection_open.virtual_host.ptr,
	       d.u.method.a.connection_open.virtual_host.len);
}

/* Read until EOF, recording a connection.close salvo sends. */
static void fake_drain(struct fake *f, int fd)
{
	struct sv_decoded_frame d;

	while (recv_frame(fd, f->buf, sizeof f->buf, &d)) {
		if (d.frame.type == SV_FRAME_METHOD && d.u.method.id == SV_CONNECTION_CLOSE)
			f->close_code = d.u.method.a.connection_close.reply_code;
		if (d.frame.type == SV_FRAME_METHOD && d.u.method.id == SV_CONNECTION_CLOSE_OK)
			f->got_close_ok = true;
	}
}

static void script_old_version(struct fake *f, int fd)
{
	(void)f;
	send_all(fd, "AMQP\0\0\x09\x00", 8);
}

static void script_garbage(struct fake *f, int fd)
{
	const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

	send_all(fd, reply, sizeof reply - 1);
	fake_drain(f, fd);
}

static void script_amqplain(struct fake *f, int fd)
{
	(void)f;
	send_start(fd, "AMQPLAIN EXTERNAL XPLAIN");
}

static void script_plain_only(struct fake *f, int fd)
{
	(void)f;
	send_start(fd, "PLAIN EXTERNAL");
}

/* A whole handshake, then read what salvo sends until it closes, answering its close. */
static void script_open(struct fake *f, int fd)
{
	struct sv_method m = {.id = SV_CONNECTION_OPEN_OK};
	struct sv_decoded_frame d;

	fake_login_tune(f, fd);
	send_method(fd, 0, &m);
	while (recv_frame(fd, f->buf, sizeof f->buf, &d)) {
		if (d.frame.type != SV_FRAME_METHOD || d.u.method.id != SV_CONNECTION_CLOSE)
			continue;
		f->close_code = d.u.method.a.connection_close.reply_code;
		m = (struct sv_method){.id = SV_CONNECTION_CLOSE_OK};
		send_method(fd, 0, &m);
	}
}

/* RabbitMQ's refusal of update-secret (rabbit_reader: a backend refused the secret): a
 * connection error, 530. */
static void script_refuse_secret(struct fake *f, int fd)
{
	struct sv_method m = {.id = SV_CONNECTION_OPEN_OK};
	struct sv_decoded_frame d;

	fake_login_tune(f, fd);
	send_method(fd, 0, &m);
	expect_method(fd, f->buf, sizeof f->buf, 0, SV_CONNECTION_UPDATE_SECRET, &d);
	const struct sv_connection_update_secret *us = &d.u.method.a.connection_update_secret;
	CHECK(us->new_secret.len < sizeof f->secret && us->reason.len < sizeof f->reason);
	memcpy(f->secret, us->new_secret.ptr, us->new_secret.len);
	memcpy(f->reason, us->reason.ptr, us->reason.len);
	m = (struct sv_method){.id = SV_CONNECTION_CLOSE};
	m.a.connection_close.reply_code = 530;
	m.a.connection_close.reply_text =
	    SV_BYTES("NOT_ALLOWED - New secret was refused by one of the backends");
	m.a.connection_close.class_id = SV_CLASS_CONNECTION;
	m.a.connection_close.method_id = SV_CONNECTION_UPDATE_SECRET & 0xFFFF;
	send_method(fd, 0, &m);
	fake_drain(f, fd);
}

/* channel.open-ok where tune belongs */
static void script_unexpected(struct fake *f, int fd)
{
	struct sv_method m = {.id = SV_CHANNEL_OPEN_OK};

	fake_login(f, fd);
	send_method(fd, 1, &m);
	fake_drain(f, fd);
}

static void script_login_dropped(struct fake *f, int fd)
{
	fake_login(f, fd);
}

static void script_close_echoes_password(struct fake *f, int fd)
{
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};

	fake_login_tune(f, fd);
	m.a.connection_close.reply_code = 530;
	m.a.connection_close.reply_text = SV_BYTES("NOT_ALLOWED - no vhost for you, " PASSWORD);
	m.a.connection_close.class_id = SV_CLASS_CONNECTION;
	m.a.connection_close.method_id = SV_CONNECTION_OPEN & 0xFFFF;
	send_method(fd, 0, &m);
	fake_drain(f, fd);
}

/* A full handshake with a heartbeat before start, and open-ok sent in one write with a
 * frame that belongs to the I/O thread. */
static void script_handshake(struct fake *f, int fd)
{
	uint8_t buf[64];
	struct sv_codec_error cerr;
	struct sv_method m = {.id = SV_CONNECTION_OPEN_OK};
	size_t n;

	sv_frame_put_heartbeat(buf);
	send_all(fd, buf, SV_HEARTBEAT_FRAME_SIZE);
	fake_login_tune(f, fd);
	n = sv_frame_put_method(buf, sizeof buf, 0, &m, &cerr);
	CHECK(n > 0);
	m = (struct sv_method){.id = SV_CHANNEL_OPEN_OK};
	n += sv_frame_put_method(buf + n, sizeof buf - n, 7, &m, &cerr);
	send_all(fd, buf, n);
	fake_drain(f, fd);
}

/* Run sv_connect against a fake server; checks that a failure leaves no socket behind. */
static int connect_fake_as(struct fake *f, int family, enum sv_auth auth,
			   void (*script)(struct fake *, int), struct sv_session *s,
			   salvo_error *err)
{
	struct sv_connect_params p;
	int fds = open_fds();
	int rc;

	fake_start(f, family, script);
	p = params(family == AF_INET ? "127.0.0.1" : "::1", f->port);
	p.auth = auth;
	rc = sv_connect(&p, s, err);
	show(rc, err);
	if (rc) {
		CHECK(s->fd == -1);
		fake_finish(f);
		CHECK(open_fds() == fds);
	}
	CHECK(strstr(err->text, PASSWORD) == NULL);
	return rc;
}

static int connect_fake(struct fake *f, int family, void (*script)(struct fake *, int),
			struct sv_session *s, salvo_error *err)
{
	return connect_fake_as(f, family, SV_AUTH_PLAIN, script, s, err);
}

static int test_fake_handshake(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;
	struct sv_decoded_frame d;
	uint8_t buf[256];

	CHECK(connect_fake(&f, AF_INET, script_handshake, &s, &err) == 0);
	CHECK(err.status == 0 && err.kind == SALVO_ERROR_NONE);
	/* Nothing offered a limit: the defaults. */
	CHECK(s.channel_max == 65535 && s.frame_max == 131072 && s.heartbeat == 10);
	CHECK(!strcmp(s.server_product, "FakeMQ") && !strcmp(s.server_version, "0.0.1"));
	CHECK(s.cap_publisher_confirms && !s.cap_basic_nack && !s.cap_connection_blocked);
	/* The frame after open-ok is still in the socket. */
	expect_method(s.fd, buf, sizeof buf, 7, SV_CHANNEL_OPEN_OK, &d);
	close(s.fd);
	fake_finish(&f);
	CHECK(f.props_ok);
	CHECK(!strcmp(f.mechanism, "PLAIN"));
	CHECK(f.response_len == 2 + 5 + strlen(PASSWORD));
	CHECK(!memcmp(f.response, "\0guest\0" PASSWORD, f.response_len));
	CHECK(f.tune_ok.channel_max == 65535 && f.tune_ok.frame_max == 131072 &&
	      f.tune_ok.heartbeat == 10);
	CHECK(!strcmp(f.vhost, "/"));
	return 0;
}

/* AMQPLAIN: the response is a table's contents (no length prefix) with LOGIN and PASSWORD
 * as long strings, as RabbitMQ's rabbit_auth_mechanism_amqplain parses it; the server's
 * properties are kept whole. */
static int test_fake_amqplain(void)
{
	static const uint8_t want[] = "\x05LOGINS\0\0\0\x05guest"
				      "\x08PASSWORDS\0\0\0\x18" PASSWORD;
	struct fake f;
	struct sv_session s;
	salvo_error err;
	struct sv_field v;
	struct sv_table props;

	CHECK(connect_fake_as(&f, AF_INET, SV_AUTH_AMQPLAIN, script_handshake, &s, &err) == 0);
	close(s.fd);
	fake_finish(&f);
	CHECK(f.props_ok);
	CHECK(!strcmp(f.mechanism, "AMQPLAIN"));
	CHECK(strlen(PASSWORD) == 0x18);
	CHECK(f.response_len == sizeof want - 1);
	CHECK(!memcmp(f.response, want, f.response_len));
	props = (struct sv_table){s.server_props, s.server_props_len};
	CHECK(str_field_is(props, "product", "FakeMQ") && str_field_is(props, "version", "0.0.1"));
	CHECK(sv_table_find(props, "capabilities", &v) && v.type == SV_FIELD_TABLE);
	CHECK(bool_field_is_true(v.v.table, "publisher_confirms"));
	return 0;
}

static int test_no_amqplain(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake_as(&f, AF_INET, SV_AUTH_AMQPLAIN, script_plain_only, &s, &err) ==
	      SALVO_ERR_UNSUPPORTED);
	CHECK(err.kind == SALVO_ERROR_LOCAL);
	CHECK(strstr(err.text, "offers SASL mechanisms \"PLAIN EXTERNAL\", not AMQPLAIN "
			       "(auth_mechanism=amqplain)") != NULL);
	return 0;
}

/* A client whose update-secret the broker refuses: the 530 and its text come back, the
 * client is closed (a 530 is not retried), and the next call says so. */
static int test_update_secret_refused(void)
{
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_event ev;
	salvo_error err;
	struct fake f;
	bool lost = false, gave_up = false;

	fake_start(&f, AF_INET, script_refuse_secret);
	snprintf(uri, sizeof uri, "amqp://guest:%s@127.0.0.1:%u", PASSWORD, f.port);
	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", "salvo test_connect", errstr,
			     sizeof errstr) == 0);
	CHECK(salvo_client_new(conf, &c, &err) == 0);
	salvo_conf_destroy(conf);
	CHECK(salvo_client_update_secret(c, "new-token", "token refreshed", &err) == 530);
	show(530, &err);
	CHECK(err.status == 530 && err.reply_code == 530 && err.kind == SALVO_ERROR_CONNECTION);
	CHECK(!strcmp(err.method, "connection.update-secret"));
	CHECK(!strcmp(err.text, "NOT_ALLOWED - New secret was refused by one of the backends"));
	while (!gave_up && salvo_client_poll_event(c, &ev, 5000) == 0) {
		lost |= ev.kind == SALVO_EVENT_CONNECTION_LOST && ev.error.status == 530;
		gave_up = ev.kind == SALVO_EVENT_GIVING_UP;
	}
	CHECK(lost && gave_up);
	CHECK(salvo_client_update_secret(c, "newer-token", NULL, &err) == 530);
	salvo_client_destroy(c);
	fake_finish(&f);
	CHECK(!strcmp(f.secret, "new-token") && !strcmp(f.reason, "token refreshed"));
	CHECK(f.got_close_ok);
	return 0;
}

/* update-secret's refusals before anything is sent. */
static int test_update_secret_arguments(void)
{
	char uri[128], errstr[256], big[4098];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	struct fake f;

	fake_start(&f, AF_INET, script_open);
	snprintf(uri, sizeof uri, "amqp://guest:%s@127.0.0.1:%u?frame_max=4096", PASSWORD,
		 f.port);
	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", "salvo test_connect", errstr,
			     sizeof errstr) == 0);
	CHECK(salvo_client_new(conf, &c, &err) == 0);
	salvo_conf_destroy(conf);
	CHECK(salvo_client_update_secret(NULL, "s", NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_client_update_secret(c, NULL, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_client_update_secret(c, "", NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "the secret is NULL or empty") != NULL);
	memset(big, 's', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(salvo_client_update_secret(c, big, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "the secret is longer than 4096 bytes") != NULL);
	CHECK(salvo_client_update_secret(c, "s", big + 3841, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "the reason is longer than 255 bytes") != NULL);
	/* 4096 bytes of secret need more than the 4096 of this connection's frame_max */
	big[4096] = '\0';
	CHECK(salvo_client_update_secret(c, big, NULL, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "exceeds frame_max 4096") != NULL);
	CHECK(salvo_client_close(c, 5000, &err) == 0);
	CHECK(salvo_client_update_secret(c, "s", NULL, &err) == SALVO_ERR_CLOSED);
	salvo_client_destroy(c);
	fake_finish(&f);
	return 0;
}

static int test_ipv6(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;
	uint16_t port;
	int probe = listen_loopback(AF_INET6, &port);

	if (probe < 0) {
		fprintf(stderr, "no IPv6 loopback here\n");
		return 77;
	}
	close(probe);
	/* A server without PLAIN: failing there proves the handshake ran over IPv6. */
	CHECK(connect_fake(&f, AF_INET6, script_amqplain, &s, &err) == SALVO_ERR_UNSUPPORTED);
	CHECK(strstr(err.text, "[::1]:") != NULL);
	return 0;
}

static int test_old_version(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_old_version, &s, &err) == SALVO_ERR_PROTOCOL);
	CHECK(err.status == SALVO_ERR_PROTOCOL);
	CHECK(strstr(err.text, "AMQP 0-9-0") != NULL);
	return 0;
}

static int test_garbage(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_garbage, &s, &err) == SALVO_ERR_PROTOCOL);
	CHECK(err.kind == SALVO_ERROR_CONNECTION && err.reply_code == SV_REPLY_FRAME_ERROR);
	CHECK(f.close_code == SV_REPLY_FRAME_ERROR);
	return 0;
}

static int test_mechanism(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_amqplain, &s, &err) == SALVO_ERR_UNSUPPORTED);
	CHECK(err.kind == SALVO_ERROR_LOCAL);
	CHECK(strstr(err.text, "AMQPLAIN EXTERNAL XPLAIN") != NULL);
	return 0;
}

static int test_unexpected(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_unexpected, &s, &err) == SALVO_ERR_PROTOCOL);
	CHECK(err.reply_code == SV_REPLY_UNEXPECTED_FRAME);
	CHECK(!strcmp(err.method, "channel.open-ok"));
	CHECK(strstr(err.text, "expected connection.tune, got channel.open-ok") != NULL);
	CHECK(f.close_code == SV_REPLY_UNEXPECTED_FRAME);
	return 0;
}

static int test_login_dropped(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_login_dropped, &s, &err) == 403);
	CHECK(err.kind == SALVO_ERROR_CONNECTION && err.reply_code == 403);
	CHECK(strstr(err.text, "authentication failure") != NULL);
	return 0;
}

static int test_password_redacted(void)
{
	struct fake f;
	struct sv_session s;
	salvo_error err;

	CHECK(connect_fake(&f, AF_INET, script_close_echoes_password, &s, &err) == 530);
	CHECK(err.kind == SALVO_ERROR_CONNECTION && err.reply_code == 530);
	CHECK(err.class_id == SV_CLASS_CONNECTION && !strcmp(err.method, "connection.open"));
	CHECK(strstr(err.text, "NOT_ALLOWED - no vhost for you, ****") != NULL);
	CHECK(f.got_close_ok);
	return 0;
}

static int test_closed_port(void)
{
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error err;
	uint16_t port;
	int fd = listen_loopback(AF_INET, &port);
	int fds, rc;
	int64_t t0;

	/* A port that was free a moment ago and now has no listener. */
	close(fd);
	p = params("127.0.0.1", port);
	fds = open_fds();
	t0 = now_ms();
	rc = sv_connect(&p, &s, &err);
	show(rc, &err);
	CHECK(rc == SALVO_ERR_IO && err.status == SALVO_ERR_IO && err.kind == SALVO_ERROR_LOCAL);
	CHECK(now_ms() - t0 < 1000);
	CHECK(strstr(err.text, "Connection refused") != NULL);
	CHECK(s.fd == -1 && open_fds() == fds);
	return 0;
}

static int test_silent_server(void)
{
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error err;
	uint16_t port;
	/* Never accepted: the kernel completes the TCP handshake and no one ever answers. */
	int fd = listen_loopback(AF_INET, &port);
	int64_t t0, took;
	int rc;

	p = params("127.0.0.1", port);
	p.timeout_ms = 500;
	t0 = now_ms();
	rc = sv_connect(&p, &s, &err);
	took = now_ms() - t0;
	show(rc, &err);
	printf("  took %lld ms\n", (long long)took);
	CHECK(rc == SALVO_ERR_TIMEOUT && err.kind == SALVO_ERROR_LOCAL);
	CHECK(took >= 450 && took < 5000);
	CHECK(strstr(err.text, "timed out after 500 ms") != NULL);
	close(fd);
	return 0;
}

static int test_invalid_arguments(void)
{
	struct sv_connect_params p = params("127.0.0.1", 1);
	struct sv_session s;
	salvo_error err;
	char vhost[300];

	p.password = NULL;
	CHECK(sv_connect(&p, &s, &err) == SALVO_ERR_INVALID_ARGUMENT && s.fd == -1);
	p = params("", 1);
	CHECK(sv_connect(&p, &s, &err) == SALVO_ERR_INVALID_ARGUMENT);
	p = params("127.0.0.1", 1);
	p.timeout_ms = 0;
	CHECK(sv_connect(&p, &s, NULL) == SALVO_ERR_INVALID_ARGUMENT);
	memset(vhost, 'v', sizeof vhost - 1);
	vhost[sizeof vhost - 1] = '\0';
	p = params("127.0.0.1", 1);
	p.vhost = vhost;
	CHECK(sv_connect(&p, &s, &err) == SALVO_ERR_INVALID_ARGUMENT);
	show(SALVO_ERR_INVALID_ARGUMENT, &err);
	return 0;
}

/* Broker cases. */

static char broker_user[64], broker_pass[64], broker_host[64];
static unsigned broker_port;

static bool broker(struct sv_connect_params *p)
{
	const char *uri = getenv("SALVO_TEST_URI");

	if (!uri) {
		fprintf(stderr, "SALVO_TEST_URI not set: no broker to test against\n");
		return false;
	}
	/* The test broker's URI has this one shape; the real URI parser is the engine's. */
	CHECK(sscanf(uri, "amqp://%63[^:]:%63[^@]@%63[^:]:%u", broker_user, broker_pass,
		     broker_host, &broker_port) == 4);
	*p = params(broker_host, (uint16_t)broker_port);
	p->user = broker_user;
	p->password = broker_pass;
	return true;
}

static int test_broker_handshake(void)
{
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error err;
	struct sv_decoded_frame d;
	struct sv_method m;
	uint8_t buf[4096];
	int rc;

	if (!broker(&p))
		return 77;
	rc = sv_connect(&p, &s, &err);
	show(rc, &err);
	CHECK(rc == 0);
	printf("  %s %s: channel_max %u, frame_max %u, heartbeat %u\n", s.server_product,
	       s.server_version, s.channel_max, s.frame_max, s.heartbeat);
	CHECK(s.frame_max == 131072);
	CHECK(s.heartbeat == 10); /* we ask 10, RabbitMQ offers 60 */
	CHECK(s.channel_max > 0);
	CHECK(!strcmp(s.server_product, "RabbitMQ") && s.server_version[0]);
	CHECK(s.cap_publisher_confirms && s.cap_basic_nack && s.cap_connection_blocked &&
	      s.cap_authentication_failure_close);
	CHECK(fcntl(s.fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(s.fd, F_GETFD) & FD_CLOEXEC);

	m = (struct sv_method){.id = SV_CHANNEL_OPEN};
	send_method(s.fd, 1, &m);
	expect_method(s.fd, buf, sizeof buf, 1, SV_CHANNEL_OPEN_OK, &d);
	m = (struct sv_method){.id = SV_CONNECTION_CLOSE,
			       .a.connection_close = {200, SV_BYTES("bye")}};
	send_method(s.fd, 0, &m);
	expect_method(s.fd, buf, sizeof buf, 0, SV_CONNECTION_CLOSE_OK, &d);
	close(s.fd);
	return 0;
}

static int test_broker_wrong_password(void)
{
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error err;
	int64_t t0;
	int rc, fds;

	if (!broker(&p))
		return 77;
	p.password = PASSWORD;
	fds = open_fds();
	t0 = now_ms();
	rc = sv_connect(&p, &s, &err);
	show(rc, &err);
	CHECK(rc == 403 && err.status == 403 && err.reply_code == 403);
	CHECK(err.kind == SALVO_ERROR_CONNECTION);
	CHECK(now_ms() - t0 < 5000);
	CHECK(strstr(err.text, "ACCESS_REFUSED") != NULL);
	CHECK(strstr(err.text, PASSWORD) == NULL);
	CHECK(s.fd == -1 && open_fds() == fds);
	return 0;
}

static int test_broker_missing_vhost(void)
{
	struct sv_connect_params p;
	struct sv_session s;
	salvo_error err;
	int rc, fds;

	if (!broker(&p))
		return 77;
	p.vhost = "salvo-no-such-vhost";
	fds = open_fds();
	rc = sv_connect(&p, &s, &err);
	show(rc, &err);
	CHECK(rc == 530 && err.reply_code == 530 && err.kind == SALVO_ERROR_CONNECTION);
	CHECK(strstr(err.text, "NOT_ALLOWED") != NULL);
	CHECK(s.fd == -1 && open_fds() == fds);
	return 0;
}

static const struct test_case cases[] = {
    {"handshake", .run_status = test_broker_handshake},
    {"wrong-password", .run_status = test_broker_wrong_password},
    {"missing-vhost", .run_status = test_broker_missing_vhost},
    {"closed-port", .run_status = test_closed_port},
    {"silent-server", .run_status = test_silent_server},
    {"old-protocol-version", .run_status = test_old_version},
    {"garbage", .run_status = test_garbage},
    {"no-plain", .run_status = test_mechanism},
    {"no-amqplain", .run_status = test_no_amqplain},
    {"fake-amqplain", .run_status = test_fake_amqplain},
    {"update-secret-refused", .run_status = test_update_secret_refused},
    {"update-secret-arguments", .run_status = test_update_secret_arguments},
    {"unexpected-frame", .run_status = test_unexpected},
    {"login-dropped", .run_status = test_login_dropped},
    {"password-redacted", .run_status = test_password_redacted},
    {"fake-handshake", .run_status = test_fake_handshake},
    {"ipv6", .run_status = test_ipv6},
    {"invalid-arguments", .run_status = test_invalid_arguments},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
