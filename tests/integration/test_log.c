/* SPDX-License-Identifier: MIT */
/*
 * No log line ever shows a password, against RabbitMQ, with salvo made to log all it can
 * at debug, every line collected through a callback. A user of the test broker,
 * salvo-test-user, gets the password PASSWORD (made with rabbitmqctl); then:
 *  - a client through a TCP relay in this test, with a dead failover endpoint: connected
 *    (info); rabbitmqctl close_connection: lost, reconnecting, the dead endpoint failing
 *    (debug), reconnected; the relay stopped: lost, attempts failing, giving up (error);
 *  - a client straight to the broker declaring an exchange of no known type: the broker's
 *    503 COMMAND_INVALID (protocol), lost, giving up;
 *  - a client with a wrong password: 403 ACCESS_REFUSED (debug);
 *  - with the TLS broker (SALVO_TEST_TLS_URI): verify_none, warned once to the callback.
 * The test asserts that the lines expected arrived, with their levels and facilities (so it
 * cannot pass on silence), and that none holds the password or the wrong one, plain or
 * percent-encoded as the URIs carry them, nor a piece of them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

#define USER "salvo-test-user"
#define PASSWORD "S3cr3t:Pa55/zz9"
#define PASSWORD_ESCAPED "S3cr3t%3APa55%2Fzz9"
#define WRONG "Wr0ng:Pa55/zz9"
#define WRONG_ESCAPED "Wr0ng%3APa55%2Fzz9"
/* Connection names for rabbitmqctl close_connection, with the pid: a connection of an
 * earlier run may still be listed while the broker closes it. */
static char relay_name[64], tls_name[64];

/* Lines collected from every client's callback (their I/O threads and this one). */
#define MAX_LINES 256
struct line {
	int level;
	char facility[32];
	char text[1024];
};
static struct line lines[MAX_LINES];
static int nlines;
static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;

static void collect(void *arg, int level, const char *facility, const char *message)
{
	(void)arg;
	pthread_mutex_lock(&lines_lock);
	if (nlines < MAX_LINES) {
		lines[nlines].level = level;
		snprintf(lines[nlines].facility, sizeof lines[0].facility, "%s", facility);
		snprintf(lines[nlines].text, sizeof lines[0].text, "%s", message);
		nlines++;
	}
	pthread_mutex_unlock(&lines_lock);
}

/* The line of level and facility that contains each of the words (NULL-terminated), or
 * NULL. */
static const struct line *find_line(int level, const char *facility, const char *word, ...)
{
	const struct line *found = NULL;

	pthread_mutex_lock(&lines_lock);
	for (int i = 0; i < nlines && !found; i++) {
		const char *w = word;
		va_list ap;
		bool all = lines[i].level == level && strcmp(lines[i].facility, facility) == 0;

		va_start(ap, word);
		for (; all && w; w = va_arg(ap, const char *))
			all = strstr(lines[i].text, w) != NULL;
		va_end(ap);
		if (all)
			found = &lines[i];
	}
	pthread_mutex_unlock(&lines_lock);
	return found;
}

#define EXPECT(level, facility, ...)                                                               \
	do {                                                                                       \
		if (!find_line(level, facility, __VA_ARGS__, (const char *)NULL)) {                \
			fprintf(stderr, "%s:%d: no %s line [%s] with: %s\n", __FILE__, __LINE__,   \
				salvo_log_level_name(level), facility, #__VA_ARGS__);              \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Wait up to 20 s for a line. */
#define AWAIT(level, facility, ...)                                                                \
	do {                                                                                       \
		double t0_ = now_s();                                                              \
		while (!find_line(level, facility, __VA_ARGS__, (const char *)NULL) &&             \
		       now_s() - t0_ < 20)                                                         \
			usleep(10000);                                                             \
		EXPECT(level, facility, __VA_ARGS__);                                              \
	} while (0)

/* The host:port of SALVO_TEST_URI (or of uri). */
static void host_port(const char *uri, char *host, size_t hcap, unsigned *port)
{
	const char *p = strstr(uri, "://");
	const char *at, *colon, *end;

	CHECK(p);
	p += 3;
	at = strchr(p, '@');
	if (at)
		p = at + 1;
	end = p + strcspn(p, "/?");
	colon = memchr(p, ':', (size_t)(end - p));
	CHECK(colon && (size_t)(colon - p) < hcap);
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	*port = (unsigned)atoi(colon + 1);
}

static void ctl(const char *args)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd, "bash '%s/scripts/rabbitmq.sh' ctl -q %s >/dev/null",
		 getenv("SALVO_SOURCE_ROOT"), args);
	CHECK(system(cmd) == 0);
}

/* salvo-test-user with PASSWORD and every permission on "/", made or reset. */
static void make_user(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd,
		 "bash '%s/scripts/rabbitmq.sh' ctl -q add_user '" USER "' '" PASSWORD
		 "' >/dev/null 2>&1",
		 getenv("SALVO_SOURCE_ROOT"));
	if (system(cmd) != 0)
		ctl("change_password '" USER "' '" PASSWORD "'");
	ctl("set_permissions -p / '" USER "' '.*' '.*' '.*'");
}

static int listen_any(unsigned *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	CHECK(listen(fd, 4) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port nothing listens on. */
static unsigned closed_port(void)
{
	unsigned port;

	close(listen_any(&port));
	return port;
}

/* A TCP relay to the broker, one connection at a time, until stopped: then its port
 * refuses connections. */
struct relay {
	int lfd;
	unsigned port;
	char host[256];
	unsigned broker_port;
	atomic_bool stop;
	pthread_t thread;
};

static int connect_to(const char *host, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0 && inet_pton(AF_INET, host, &a.sin_addr) == 1);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
	return fd;
}

static void shovel(struct relay *r, int a, int b)
{
	struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
	char buf[65536];

	while (!atomic_load(&r->stop)) {
		if (poll(p, 2, 20) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof buf);
			if (n <= 0)
				return;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[1 - i].fd, buf + off, (size_t)(n - off));
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct pollfd p = {.fd = r->lfd, .events = POLLIN};

	while (!atomic_load(&r->stop)) {
		int cfd, bfd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		cfd = accept(r->lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		bfd = connect_to(r->host, r->broker_port);
		shovel(r, cfd, bfd);
		close(cfd);
		close(bfd);
	}
	close(r->lfd);
	return NULL;
}

static void relay_start(struct relay *r, const char *host, unsigned broker_port)
{
	snprintf(r->host, sizeof r->host, "%s", host);
	r->broker_port = broker_port;
	atomic_init(&r->stop, false);
	r->lfd = listen_any(&r->port);
	CHECK(pthread_create(&r->thread, NULL, relay_main, r) == 0);
}

/* Its connection ends, and its port refuses from now on. */
static void relay_stop(struct relay *r)
{
	atomic_store(&r->stop, true);
	CHECK(pthread_join(r->thread, NULL) == 0);
}

static salvo_conf *log_conf(const char *uri, const char *key, ...)
{
	salvo_conf *conf = salvo_conf_new();
	char errstr[256];
	va_list ap;

	CHECK(conf);
	if (salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr)) {
		fprintf(stderr, "uri: %s\n", errstr);
		exit(1);
	}
	CHECK(salvo_conf_set(conf, "log.level", "debug", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set_log_cb(conf, collect, NULL) == 0);
	va_start(ap, key);
	for (const char *k = key; k; k = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);
		if (salvo_conf_set(conf, k, v, errstr, sizeof errstr)) {
			fprintf(stderr, "%s: %s\n", k, errstr);
			exit(1);
		}
	}
	va_end(ap);
	return conf;
}

/* Wait for the client to be closed for good (its GIVING_UP event). */
static void await_giving_up(salvo_client *c)
{
	salvo_event ev;

	do
		CHECK(salvo_client_poll_event(c, &ev, 30000) == 0);
	while (ev.kind != SALVO_EVENT_GIVING_UP);
}

static void relay_client(const char *host, unsigned broker_port)
{
	struct relay r;
	char uri[512], add[128];
	unsigned dead = closed_port();
	salvo_conf *conf;
	salvo_client *c;
	salvo_error err;
	char port[16];

	relay_start(&r, host, broker_port);
	snprintf(uri, sizeof uri, "amqp://%s:%s@127.0.0.1:%u", USER, PASSWORD_ESCAPED, r.port);
	snprintf(add, sizeof add, "amqp://127.0.0.1:%u", dead);
	conf = log_conf(uri, "uri.add", add, "connection_name", relay_name,
			"reconnect.initial_delay", "20", "reconnect.max_delay", "100",
			"reconnect.max_attempts", "3", NULL);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	snprintf(port, sizeof port, ":%u", r.port);
	EXPECT(SALVO_LOG_INFO, "connection", "connected to 127.0.0.1", port);

	/* A loss the broker makes: reconnected through the relay, after the dead endpoint. */
	close_connection(relay_name, "salvo log test");
	AWAIT(SALVO_LOG_NOTICE, "connection", "reconnected to 127.0.0.1", port);
	EXPECT(SALVO_LOG_WARNING, "connection", "connection lost: 320 CONNECTION_FORCED");
	EXPECT(SALVO_LOG_NOTICE, "connection", "reconnecting: attempt 1 in ");
	snprintf(port, sizeof port, ":%u failed", dead);
	EXPECT(SALVO_LOG_DEBUG, "connection", "connecting to 127.0.0.1", port);

	/* The relay gone: every attempt fails, then salvo gives up. */
	relay_stop(&r);
	await_giving_up(c);
	EXPECT(SALVO_LOG_NOTICE, "connection", "reconnecting: attempt 2 in ", "(attempt 1 failed: ");
	EXPECT(SALVO_LOG_NOTICE, "connection", "reconnecting: attempt 3 in ");
	EXPECT(SALVO_LOG_ERR, "connection",
	       "giving up, reconnect.max_attempts reached; the client is closed: ", "refused");
	salvo_client_close(c, 5000, &err);
	salvo_client_destroy(c);
}

/* An exchange type the broker does not know: a connection error, 503 COMMAND_INVALID. */
static void protocol_client(const char *host, unsigned broker_port)
{
	char uri[512];
	salvo_conf *conf;
	salvo_client *c;
	salvo_channel *ch;
	salvo_error err;

	snprintf(uri, sizeof uri, "amqp://%s:%s@%s:%u", USER, PASSWORD_ESCAPED, host,
		 broker_port);
	conf = log_conf(uri, NULL);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	OK(salvo_channel_open(c, &ch, &err));
	CHECK(salvo_exchange_declare(ch, "salvo-test-log-x", "x-salvo-no-such-type", 0, NULL,
				     &err) == 503);
	await_giving_up(c);
	salvo_channel_close(ch, &err);
	EXPECT(SALVO_LOG_ERR, "protocol", "the broker closed the connection over a protocol error",
	       "503 COMMAND_INVALID");
	EXPECT(SALVO_LOG_WARNING, "connection", "connection lost: 503 COMMAND_INVALID");
	EXPECT(SALVO_LOG_ERR, "connection", "giving up", "503 COMMAND_INVALID");
	salvo_client_close(c, 5000, &err);
	salvo_client_destroy(c);
}

static void wrong_password(const char *host, unsigned broker_port)
{
	char uri[512];
	salvo_conf *conf;
	salvo_client *c = NULL;
	salvo_error err;

	snprintf(uri, sizeof uri, "amqp://%s:%s@%s:%u", USER, WRONG_ESCAPED, host, broker_port);
	conf = log_conf(uri, NULL);
	CHECK(salvo_client_new(conf, &c, &err) == 403);
	salvo_conf_destroy(conf);
	EXPECT(SALVO_LOG_DEBUG, "connection", "failed: 403 ACCESS_REFUSED");
}

/* amqps with verify_none: the warning, once for this client however often it connects. */
static void tls_client(void)
{
	const char *tls = getenv("SALVO_TEST_TLS_URI");
	char host[256], uri[512];
	unsigned port;
	salvo_conf *conf;
	salvo_client *c;
	salvo_error err;
	int warnings = 0;

	host_port(tls, host, sizeof host, &port);
	snprintf(uri, sizeof uri, "amqps://%s:%s@%s:%u", USER, PASSWORD_ESCAPED, host, port);
	conf = log_conf(uri, "verify", "verify_none", "connection_name", tls_name, NULL);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	close_connection(tls_name, "salvo log test");
	snprintf(uri, sizeof uri, "reconnected to %s:%u", host, port);
	AWAIT(SALVO_LOG_NOTICE, "connection", uri);
	rabbit_close(c, 5000);
	pthread_mutex_lock(&lines_lock);
	for (int i = 0; i < nlines; i++)
		warnings += strcmp(lines[i].facility, "tls") == 0;
	pthread_mutex_unlock(&lines_lock);
	CHECK(warnings == 1);
	EXPECT(SALVO_LOG_WARNING, "tls", "TLS peer verification is disabled");
}

static int case_no_secrets(void)
{
	const char *secrets[] = {PASSWORD, PASSWORD_ESCAPED, WRONG, WRONG_ESCAPED, "Pa55",
				 "S3cr3t", "Wr0ng"};
	char host[256];
	unsigned port;

	snprintf(relay_name, sizeof relay_name, "salvo-test-log-relay-%d", (int)getpid());
	snprintf(tls_name, sizeof tls_name, "salvo-test-log-tls-%d", (int)getpid());
	host_port(rabbit_test_uri(), host, sizeof host, &port);
	make_user();
	relay_client(host, port);
	protocol_client(host, port);
	wrong_password(host, port);
	if (getenv("SALVO_TEST_TLS_URI") && getenv("SALVO_TEST_TLS_DIR"))
		tls_client();
	else
		printf("no TLS broker (SALVO_TEST_TLS_URI): the TLS warning is not checked\n");

	pthread_mutex_lock(&lines_lock);
	printf("%d lines:\n", nlines);
	for (int i = 0; i < nlines; i++) {
		printf("  %s [%s] %s\n", salvo_log_level_name(lines[i].level), lines[i].facility,
		       lines[i].text);
		for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++)
			if (strstr(lines[i].text, secrets[k]) ||
			    strstr(lines[i].facility, secrets[k])) {
				fprintf(stderr, "line %d shows a secret (%s)\n", i, secrets[k]);
				exit(1);
			}
	}
	CHECK(nlines < MAX_LINES); /* none was dropped unread */
	pthread_mutex_unlock(&lines_lock);
	return 0;
}

static const struct test_case cases[] = {
    {"no secrets", .run_status = case_no_secrets},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
