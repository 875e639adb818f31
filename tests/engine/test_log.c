/* SPDX-License-Identifier: MIT */
/*
 * Log lines without a broker: log.level filters what reaches the callback and stderr; the
 * default sink's format on stderr (captured through a file put on fd 2); the TLS
 * verify_none warning once per process on stderr and once per logger with a callback;
 * each event's level, facility and text; the callback copied by salvo_conf_dup; and a
 * client whose endpoints all refuse, logging at debug, never showing its password.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "salvo.h"

#include "conf_internal.h"
#include "log.h"

#include "../check.h"

#define MAX_LINES 64

struct line {
	int level;
	char facility[32];
	char text[1024];
};

struct lines {
	struct line l[MAX_LINES];
	int n;
};

static void collect(void *arg, int level, const char *facility, const char *message)
{
	struct lines *ls = arg;

	CHECK(ls->n < MAX_LINES);
	ls->l[ls->n].level = level;
	snprintf(ls->l[ls->n].facility, sizeof ls->l[0].facility, "%s", facility);
	snprintf(ls->l[ls->n].text, sizeof ls->l[0].text, "%s", message);
	ls->n++;
}

/* A logger as a client makes it, from a conf with log.level (NULL: the default) and the
 * callback collecting into ls (NULL: stderr). */
static void make_logger(struct sv_log *lg, const char *level, struct lines *ls)
{
	salvo_conf *conf = salvo_conf_new();
	char errstr[256];

	CHECK(conf);
	if (level)
		CHECK(salvo_conf_set(conf, "log.level", level, errstr, sizeof errstr) == 0);
	if (ls)
		CHECK(salvo_conf_set_log_cb(conf, collect, ls) == 0);
	sv_log_init(lg, conf);
	/* The logger points at the conf's password, and this conf goes now: "masks" sets
	 * one of its own. */
	lg->password = NULL;
	salvo_conf_destroy(conf);
}

/* Every line is masked against the password, whatever text carried it. */
static void case_masks(void)
{
	struct lines ls = {.n = 0};
	struct sv_log lg;

	make_logger(&lg, NULL, &ls);
	lg.password = "Hunter2-xyz";
	sv_log(&lg, SALVO_LOG_WARNING, "connection", "lost: 320 CONNECTION_FORCED - %s and %s",
	       "Hunter2-xyz", "again Hunter2-xyz.");
	CHECK(ls.n == 1);
	CHECK(strcmp(ls.l[0].text, "lost: 320 CONNECTION_FORCED - *********** and again "
				   "***********.") == 0);
	lg.password = "";
	sv_log(&lg, SALVO_LOG_WARNING, "connection", "no password: kept");
	CHECK(ls.n == 2 && strcmp(ls.l[1].text, "no password: kept") == 0);
}

/* Each log.level passes its own level and the more severe ones, nothing else. */
static void case_levels(void)
{
	const char *names[] = {"error", "warning", "notice", "info", "debug"};

	for (int i = 0; i < 5; i++) {
		struct lines ls = {.n = 0};
		struct sv_log lg;

		make_logger(&lg, names[i], &ls);
		for (int level = SALVO_LOG_ERR; level <= SALVO_LOG_DEBUG; level++) {
			CHECK(sv_log_enabled(&lg, level) == (level <= SALVO_LOG_ERR + i));
			sv_log(&lg, level, "test", "line %d", level);
		}
		CHECK(ls.n == i + 1);
		for (int k = 0; k < ls.n; k++) {
			char want[32];

			snprintf(want, sizeof want, "line %d", SALVO_LOG_ERR + k);
			CHECK(ls.l[k].level == SALVO_LOG_ERR + k);
			CHECK(strcmp(ls.l[k].facility, "test") == 0);
			CHECK(strcmp(ls.l[k].text, want) == 0);
		}
	}
	/* The default is notice. */
	struct lines ls = {.n = 0};
	struct sv_log lg;
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();

	make_logger(&lg, NULL, &ls);
	CHECK(sv_log_enabled(&lg, SALVO_LOG_NOTICE) && !sv_log_enabled(&lg, SALVO_LOG_INFO));
	CHECK(sv_log_enabled(NULL, SALVO_LOG_NOTICE) && !sv_log_enabled(NULL, SALVO_LOG_INFO));
	/* Names only, as the key's range says. */
	CHECK(conf);
	CHECK(salvo_conf_set(conf, "log.level", "5", errstr, sizeof errstr) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(errstr, "error, warning, notice, info, debug"));
	CHECK(salvo_conf_set(conf, "log.level", "WARNING", errstr, sizeof errstr) ==
	      SALVO_ERR_INVALID_ARGUMENT);
	salvo_conf_destroy(conf);
	CHECK(strcmp(salvo_log_level_name(SALVO_LOG_ERR), "ERROR") == 0);
	CHECK(strcmp(salvo_log_level_name(SALVO_LOG_DEBUG), "DEBUG") == 0);
	CHECK(strcmp(salvo_log_level_name(42), "LOG") == 0);
}

/* Run fn with fd 2 on a temporary file; its contents into buf. */
static void capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	CHECK(f && saved >= 0);
	fflush(stderr);
	CHECK(dup2(fileno(f), 2) == 2);
	fn();
	fflush(stderr);
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	rewind(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void log_to_stderr(void)
{
	struct sv_log lg, quiet;

	make_logger(&lg, "info", NULL);
	sv_log(&lg, SALVO_LOG_WARNING, "connection", "connection lost: %s", "timed out");
	sv_log(&lg, SALVO_LOG_INFO, "connection", "connected to %s", "h:1");
	sv_log(&lg, SALVO_LOG_DEBUG, "connection", "not shown");
	/* No logger: stderr at the default level. */
	sv_log(NULL, SALVO_LOG_NOTICE, "connection", "reconnected to h:1 (attempt 1)");
	sv_log(NULL, SALVO_LOG_INFO, "connection", "not shown either");
	/* The TLS warning: once per process, whoever asks, unless filtered out (which does
	 * not use up the once). */
	make_logger(&quiet, "error", NULL);
	sv_log_verify_none(&quiet);
	sv_log_verify_none(&lg);
	sv_log_verify_none(&lg);
	sv_log_verify_none(NULL);
	make_logger(&lg, NULL, NULL);
	sv_log_verify_none(&lg);
}

static void case_stderr(void)
{
	char out[4096];

	capture_stderr(log_to_stderr, out, sizeof out);
	printf("stderr:\n%s", out);
	CHECK(strcmp(out, "salvo: WARNING [connection] connection lost: timed out\n"
			  "salvo: INFO [connection] connected to h:1\n"
			  "salvo: NOTICE [connection] reconnected to h:1 (attempt 1)\n"
			  "salvo: WARNING [tls] TLS peer verification is disabled "
			  "(verify=verify_none): the broker's certificate and name are not "
			  "checked\n") == 0);
}

/* With a callback: once per logger (a client), each client's callback hears it. */
static void case_tls_once_per_logger(void)
{
	struct lines a = {.n = 0}, b = {.n = 0};
	struct sv_log la, lb;

	make_logger(&la, NULL, &a);
	make_logger(&lb, NULL, &b);
	for (int i = 0; i < 3; i++) {
		sv_log_verify_none(&la);
		sv_log_verify_none(&lb);
	}
	CHECK(a.n == 1 && b.n == 1);
	CHECK(a.l[0].level == SALVO_LOG_WARNING && strcmp(a.l[0].facility, "tls") == 0);
	CHECK(strstr(a.l[0].text, "TLS peer verification is disabled"));
}

static void expect_line(const struct line *l, int level, const char *facility, const char *text)
{
	printf("%s %s %s\n", salvo_log_level_name(l->level), l->facility, l->text);
	CHECK(l->level == level);
	CHECK(strcmp(l->facility, facility) == 0);
	CHECK(strcmp(l->text, text) == 0);
}

/* Every event: its level, facility and words. */
static void case_events(void)
{
	struct lines ls = {.n = 0};
	struct sv_log lg;
	salvo_event ev;

	make_logger(&lg, "debug", &ls);
	memset(&ev, 0, sizeof ev);
	ev.kind = SALVO_EVENT_CONNECTION_LOST;
	ev.error = (salvo_error){.status = 320, .kind = SALVO_ERROR_CONNECTION, .reply_code = 320};
	snprintf(ev.error.text, sizeof ev.error.text, "CONNECTION_FORCED - closed via management");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_RECONNECTING;
	ev.attempt = 1;
	ev.delay_ms = 70;
	sv_log_event(&lg, &ev);
	ev.attempt = 2;
	ev.delay_ms = 150;
	ev.error = (salvo_error){.status = SALVO_ERR_IO, .kind = SALVO_ERROR_LOCAL};
	snprintf(ev.error.text, sizeof ev.error.text, "connect 127.0.0.1:1: Connection refused");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_RECONNECTED;
	snprintf(ev.endpoint, sizeof ev.endpoint, "127.0.0.1:5672");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_GIVING_UP;
	snprintf(ev.reason, sizeof ev.reason, "not retried: reconnect is off");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_BLOCKED;
	snprintf(ev.reason, sizeof ev.reason, "low on memory");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_UNBLOCKED;
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_CONSUMER_CANCELLED;
	ev.error = (salvo_error){.status = SALVO_ERR_CANCELLED, .kind = SALVO_ERROR_CHANNEL};
	snprintf(ev.error.text, sizeof ev.error.text, "the broker cancelled consumer 'c1'");
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_ENVELOPE_REJECTED;
	snprintf(ev.error.text, sizeof ev.error.text, "malformed envelope (...)");
	sv_log_event(&lg, &ev);

	CHECK(ls.n == 9);
	expect_line(&ls.l[0], SALVO_LOG_WARNING, "connection",
		    "connection lost: 320 CONNECTION_FORCED - closed via management");
	expect_line(&ls.l[1], SALVO_LOG_NOTICE, "connection", "reconnecting: attempt 1 in 70 ms");
	expect_line(&ls.l[2], SALVO_LOG_NOTICE, "connection",
		    "reconnecting: attempt 2 in 150 ms (attempt 1 failed: I/O error: connect "
		    "127.0.0.1:1: Connection refused)");
	expect_line(&ls.l[3], SALVO_LOG_NOTICE, "connection",
		    "reconnected to 127.0.0.1:5672 (attempt 2)");
	expect_line(&ls.l[4], SALVO_LOG_ERR, "connection",
		    "giving up, not retried: reconnect is off; the client is closed: I/O error: "
		    "connect 127.0.0.1:1: Connection refused");
	expect_line(&ls.l[5], SALVO_LOG_WARNING, "connection",
		    "the broker blocked the connection: low on memory");
	expect_line(&ls.l[6], SALVO_LOG_NOTICE, "connection", "the broker unblocked the connection");
	expect_line(&ls.l[7], SALVO_LOG_WARNING, "consumer", "the broker cancelled consumer 'c1'");
	expect_line(&ls.l[8], SALVO_LOG_WARNING, "consumer", "malformed envelope (...)");

	/* Filtered: at error only giving up passes. */
	ls.n = 0;
	make_logger(&lg, "error", &ls);
	ev.kind = SALVO_EVENT_CONNECTION_LOST;
	sv_log_event(&lg, &ev);
	ev.kind = SALVO_EVENT_GIVING_UP;
	sv_log_event(&lg, &ev);
	CHECK(ls.n == 1 && ls.l[0].level == SALVO_LOG_ERR);
}

/* salvo_conf_dup copies the callback; NULL restores stderr; a NULL conf is refused. */
static void case_conf(void)
{
	struct lines ls = {.n = 0};
	salvo_conf *conf = salvo_conf_new(), *copy;
	struct sv_log lg;

	CHECK(conf);
	CHECK(salvo_conf_set_log_cb(NULL, collect, &ls) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_conf_set_log_cb(conf, collect, &ls) == 0);
	CHECK(salvo_conf_set(conf, "log.level", "warning", NULL, 0) == 0);
	copy = salvo_conf_dup(conf);
	CHECK(copy);
	sv_log_init(&lg, copy);
	CHECK(lg.fn == collect && lg.arg == &ls && lg.level == SALVO_LOG_WARNING);
	sv_log(&lg, SALVO_LOG_WARNING, "test", "through the copy");
	CHECK(ls.n == 1);
	CHECK(salvo_conf_set_log_cb(copy, NULL, &ls) == 0);
	sv_log_init(&lg, copy);
	CHECK(lg.fn == NULL && lg.arg == NULL);
	salvo_conf_destroy(copy);
	salvo_conf_destroy(conf);
}

#define PASSWORD "S3cr3t:Pa55/zz9"
#define PASSWORD_ESCAPED "S3cr3t%3APa55%2Fzz9"

/* A port nothing listens on (bound, then closed). */
static unsigned closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A client whose two endpoints refuse logs each at debug, and no line shows the password,
 * plain or as the URI wrote it; nothing goes to stderr meanwhile. */
static void case_refused_no_secret(void)
{
	struct lines ls = {.n = 0};
	salvo_conf *conf = salvo_conf_new();
	char uri[256], add[128], errstr[256];
	unsigned p1 = closed_port(), p2 = closed_port();
	salvo_client *c = NULL;
	salvo_error err;

	CHECK(conf);
	snprintf(uri, sizeof uri, "amqp://salvo-test-user:%s@127.0.0.1:%u", PASSWORD_ESCAPED, p1);
	snprintf(add, sizeof add, "amqp://127.0.0.1:%u", p2);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "uri.add", add, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "log.level", "debug", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set_log_cb(conf, collect, &ls) == 0);
	CHECK(salvo_client_new(conf, &c, &err) == SALVO_ERR_IO);
	salvo_conf_destroy(conf);
	CHECK(ls.n == 2);
	for (int i = 0; i < ls.n; i++) {
		char want[64];

		printf("%s %s %s\n", salvo_log_level_name(ls.l[i].level), ls.l[i].facility,
		       ls.l[i].text);
		snprintf(want, sizeof want, "connecting to 127.0.0.1:%u failed: I/O error",
			 i ? p2 : p1);
		CHECK(ls.l[i].level == SALVO_LOG_DEBUG);
		CHECK(strcmp(ls.l[i].facility, "connection") == 0);
		CHECK(strncmp(ls.l[i].text, want, strlen(want)) == 0);
		CHECK(!strstr(ls.l[i].text, PASSWORD) && !strstr(ls.l[i].text, PASSWORD_ESCAPED));
		CHECK(!strstr(ls.l[i].text, "Pa55"));
	}
}

static const struct test_case cases[] = {
    {"levels", .run = case_levels},
    {"masks", .run = case_masks},
    {"stderr", .run = case_stderr},
    {"tls once per logger", .run = case_tls_once_per_logger},
    {"events", .run = case_events},
    {"conf", .run = case_conf},
    {"refused no secret", .run = case_refused_no_secret},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
