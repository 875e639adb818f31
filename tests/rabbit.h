/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the tests that talk to a broker (RabbitMQ, or salvo-sink in suite
 * engine): OK for a call that must succeed, the monotonic clock, clients from a URI plus
 * configuration keys, fresh queues and a queue's message count (a passive queue.declare),
 * rabbitmqctl close_connection (scripts/rabbitmq.sh under SALVO_SOURCE_ROOT), a port that
 * refuses connections. They stop the test at the first failure, like CHECK (check.h).
 */
#ifndef SALVO_TEST_RABBIT_H
#define SALVO_TEST_RABBIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "salvo.h"

#include "check.h"

/* A call that must return 0; otherwise print it with the salvo_error err in scope. */
#define OK(call)                                                                                   \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != 0) {                                                                    \
			fprintf(stderr, "%s:%d: %s returned %d (%s): %s\n", __FILE__, __LINE__,    \
				#call, rc_, salvo_err2str(rc_), err.text);                         \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/*
 * The before hook (run_cases, check.h) of a program whose every case needs the test
 * broker: 0, or 77 (skipped) with a message without SALVO_TEST_URI.
 */
static inline int rabbit_need_broker(void)
{
	if (getenv("SALVO_TEST_URI"))
		return 0;
	fprintf(stderr, "SALVO_TEST_URI not set: no broker to test against\n");
	return 77;
}

/* The test broker's URI (SALVO_TEST_URI); without one the test is skipped (exit 77). */
static inline const char *rabbit_test_uri(void)
{
	if (rabbit_need_broker())
		exit(77);
	return getenv("SALVO_TEST_URI");
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A socket bound to a loopback port that does not listen: a connect to *port is refused at
 * once. Held open until the caller closes it, so no other program can take the port. */
static inline int refusing_port(unsigned *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Set more configuration keys on conf: key, value, ..., NULL, from ap (a refusal ends the
 * test). */
static inline void rabbit_conf_keys(salvo_conf *conf, const char *key, va_list ap)
{
	char errstr[256];

	for (const char *k = key; k; k = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);

		if (salvo_conf_set(conf, k, v, errstr, sizeof errstr)) {
			fprintf(stderr, "conf %s: %s\n", k, errstr);
			exit(1);
		}
	}
}

/* A client of uri with more configuration keys: key, value, ..., NULL. */
static inline salvo_client *rabbit_connect(const char *uri, const char *key, ...)
{
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	va_list ap;
	int rc;

	CHECK(conf);
	if (salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "conf: %s\n", errstr);
		exit(1);
	}
	va_start(ap, key);
	rabbit_conf_keys(conf, key, ap);
	va_end(ap);
	rc = salvo_client_new(conf, &c, &err);
	salvo_conf_destroy(conf);
	if (rc) {
		fprintf(stderr, "connect: %d %s\n", rc, err.text);
		exit(1);
	}
	return c;
}

/* For the cases that run rabbitmqctl (scripts/rabbitmq.sh ctl) against the broker of uri:
 * SALVO_TEST_PORT set to its port; skipped (77) without SALVO_SOURCE_ROOT. */
static inline void rabbit_need_ctl(const char *uri)
{
	const char *auth = strstr(uri, "://") ? strstr(uri, "://") + 3 : uri;
	const char *host = strchr(auth, '@') ? strchr(auth, '@') + 1 : auth;
	const char *colon = strchr(host, ':'); /* the test broker is an IPv4 address or a name */
	char port[8];
	size_t n = colon ? strspn(colon + 1, "0123456789") : 0;

	if (!getenv("SALVO_SOURCE_ROOT")) {
		fprintf(stderr, "SALVO_SOURCE_ROOT not set\n");
		exit(77);
	}
	CHECK(n > 0 && n < sizeof port);
	memcpy(port, colon + 1, n);
	port[n] = '\0';
	CHECK(setenv("SALVO_TEST_PORT", port, 1) == 0);
}

/* rabbitmqctl ARGS (printf-style) against the test broker, through scripts/rabbitmq.sh
 * ctl (SALVO_TEST_PORT set: rabbit_need_ctl); a failure ends the test. */
static inline void rabbit_ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void rabbit_ctl(const char *fmt, ...)
{
	char args[512], cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "bash '%s/scripts/rabbitmq.sh' ctl -q %s >/dev/null",
		 getenv("SALVO_SOURCE_ROOT"), args);
	CHECK(system(cmd) == 0);
}

/* Delete queue q on a channel of its own (a failure ends the test). */
static inline void rabbit_delete_queue(salvo_client *c, const char *q)
{
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
}

/* Publish bodies "<first>" .. "<first + n - 1>" to q through p (the default exchange), all
 * confirmed. */
static inline void rabbit_publish_seq(salvo_publisher *p, const char *q, uint32_t first,
				      uint32_t n)
{
	salvo_error err;
	char body[16];

	for (uint32_t i = first; i < first + n; i++) {
		int len = snprintf(body, sizeof body, "%u", i);
		OK(salvo_publish(p, "", q, body, (size_t)len, 0, SALVO_FOREVER, &err));
	}
	OK(salvo_publisher_wait_confirms(p, 60000, &err));
}

/* rabbit_publish_seq through a publisher of c's own (async confirms), closed after. */
static inline void rabbit_publish_n(salvo_client *c, const char *q, uint32_t first, uint32_t n)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 4096};
	salvo_publisher *p;
	salvo_error err;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	rabbit_publish_seq(p, q, first, n);
	OK(salvo_publisher_close(p, 5000, &err));
}

/* The number a rabbit_publish_seq body carries. */
static inline uint32_t rabbit_body_seq(const salvo_message *m)
{
	size_t len;
	const char *b = salvo_message_body(m, &len);
	char buf[16];

	snprintf(buf, sizeof buf, "%.*s", (int)(len < 15 ? len : 15), b);
	return (uint32_t)strtoul(buf, NULL, 10);
}

/* Close c within timeout_ms (a failure ends the test) and destroy it. */
static inline void rabbit_close(salvo_client *c, int timeout_ms)
{
	salvo_error err;
	int rc = salvo_client_close(c, timeout_ms, &err);

	if (rc)
		fprintf(stderr, "close: %d %s\n", rc, err.text);
	CHECK(rc == 0);
	salvo_client_destroy(c);
}

/* A fresh, empty, non-durable queue named q (args may be NULL). */
static inline void fresh_queue(salvo_channel *ch, const char *q, salvo_table *args)
{
	salvo_error err;

	OK(salvo_queue_delete(ch, q, 0, NULL, &err));
	OK(salvo_queue_declare(ch, q, 0, args, NULL, &err));
}

/* How many messages q holds, asked on ch (passive queue.declare). */
static inline uint32_t channel_queue_count(salvo_channel *ch, const char *q)
{
	salvo_queue_info info;
	salvo_error err;

	OK(salvo_queue_declare(ch, q, SALVO_PASSIVE, NULL, &info, &err));
	return info.message_count;
}

/* q's count once the broker has counted what it took in: the same `times` times in a row,
 * ms apart. */
static inline uint32_t settled_queue_count(salvo_channel *ch, const char *q, int times, int ms)
{
	uint32_t n = channel_queue_count(ch, q), last = n + 1;
	struct timespec nap = {ms / 1000, (long)(ms % 1000) * 1000000};

	for (int same = 0; same < times; nanosleep(&nap, NULL)) {
		n = channel_queue_count(ch, q);
		same = n == last ? same + 1 : 0;
		last = n;
	}
	return n;
}

/* How many messages q holds, asked on a channel of its own. */
static inline uint32_t queue_count(salvo_client *c, const char *q)
{
	salvo_channel *ch;
	salvo_error err;
	uint32_t n;

	OK(salvo_channel_open(c, &ch, &err));
	n = channel_queue_count(ch, q);
	OK(salvo_channel_close(ch, &err));
	return n;
}

/* Field field (1-based) of the first line of `rabbitmqctl -q list` (e.g. "list_connections
 * pid client_properties") that contains match, into out; false when no line does. */
static inline bool rabbit_ctl_find(const char *list, const char *match, int field, char *out,
				   size_t size)
{
	char cmd[1024];
	bool found;
	FILE *f;

	snprintf(cmd, sizeof cmd,
		 "bash '%s/scripts/rabbitmq.sh' ctl -q %s | grep -F '%s' | cut -f%d",
		 getenv("SALVO_SOURCE_ROOT"), list, match, field);
	f = popen(cmd, "r");
	CHECK(f);
	found = fgets(out, (int)size, f) != NULL;
	pclose(f);
	if (!found)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return found;
}

/* The pid of the broker connection whose client properties contain name (its
 * connection_name), for rabbitmqctl close_connection. */
static inline void connection_pid(const char *name, char *pid, size_t size)
{
	CHECK(rabbit_ctl_find("list_connections pid client_properties", name, 1, pid, size));
}

/* rabbitmqctl close_connection, with reason, for the connection named name. */
static inline void close_connection(const char *name, const char *reason)
{
	char cmd[1024], pid[256] = "";

	connection_pid(name, pid, sizeof pid);
	snprintf(cmd, sizeof cmd,
		 "bash '%s/scripts/rabbitmq.sh' ctl -q close_connection '%s' '%s' >/dev/null",
		 getenv("SALVO_SOURCE_ROOT"), pid, reason);
	CHECK(system(cmd) == 0);
}

#endif
