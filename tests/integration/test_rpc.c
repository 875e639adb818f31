/* SPDX-License-Identifier: MIT */
/*
 * Direct reply-to RPC against a real RabbitMQ (issue 17, part 3): salvo_rpc_* calls
 * answered by a listener that replies with salvo_message_reply.
 *
 *   round trip     one call, its reply's body and correlation id, the server's view
 *   16 threads     16 threads x 500 calls at once, each reply checked against its request
 *   late reply     a call times out; the reply that comes after is dropped and counted as
 *                  late, and the next call gets its own reply
 *   unknown id     a server that answers three times more (the same id, another, none):
 *                  counted as one late and two unknown, the call gets the first
 *   recovery       rabbitmqctl close_connection with a call in flight: it fails with
 *                  SALVO_ERR_CLOSED saying the reply cannot come; the next calls work
 *   channel error  a request to a missing exchange: the call fails with the channel's 404
 *                  at once, and the next call works on a new channel
 *   no route       a request nobody receives waits for its timeout
 *   bad input      NULL arguments, timeouts 0 and -2, correlation_id or reply_to given, a
 *                  request larger than the ring, salvo_message_reply's refusals, calls
 *                  after salvo_rpc_close and after the client's close
 *
 * argv[1] names the case. Needs SALVO_TEST_URI (skips with 77 without it); recovery also
 * SALVO_SOURCE_ROOT (scripts/rabbitmq.sh ctl).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"

static const char *uri;

/*
 * The server: a listener on queue q whose callback answers "re:<request body>" with
 * salvo_message_reply on a publisher of its own. A request whose body is "hold" waits in
 * the callback until the test releases it (held/release); extra > 0 makes the callback
 * send three more replies after the right one (same id, another id, no id).
 */
struct server {
	salvo_client *c;
	salvo_listener *l;
	salvo_publisher *p;
	char q[64];
	bool extra;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool held, released;
	char reply_to[256]; /* the first request's, as the broker rewrote it */
};

static void send_body(struct server *s, const salvo_message *m, const char *body)
{
	salvo_msg r = {.body = body, .len = strlen(body)};
	salvo_error err;

	OK(salvo_message_reply(m, s->p, &r, 5000, &err));
}

static salvo_listener_action serve(salvo_message *m, void *arg)
{
	struct server *s = arg;
	const salvo_props *props = salvo_message_props(m);
	size_t len;
	const char *b = salvo_message_body(m, &len);
	char body[256];
	salvo_error err;

	snprintf(body, sizeof body, "re:%.*s", (int)(len < 200 ? len : 200), b);
	pthread_mutex_lock(&s->lock);
	if (!s->reply_to[0] && props->reply_to)
		snprintf(s->reply_to, sizeof s->reply_to, "%s", props->reply_to);
	if (len == 4 && memcmp(b, "hold", 4) == 0) {
		struct timespec ts;

		s->held = true;
		pthread_cond_broadcast(&s->cond);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 30;
		while (!s->released)
			CHECK(pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0);
	}
	pthread_mutex_unlock(&s->lock);
	send_body(s, m, body);
	if (s->extra) {
		salvo_props other = {.correlation_id = "not-ours-1"}, none = {0};
		salvo_msg r = {.exchange = "",
			       .routing_key = props->reply_to,
			       .body = "x",
			       .len = 1,
			       .props = &other};

		send_body(s, m, "again");
		OK(salvo_publish_msg(s->p, &r, 5000, NULL, &err));
		r.props = &none;
		OK(salvo_publish_msg(s->p, &r, 5000, NULL, &err));
	}
	return SALVO_LISTENER_ACK;
}

static void server_start(struct server *s, const char *name)
{
	salvo_listener_opts lo = {.declare = true, .declare_flags = SALVO_AUTO_DELETE};
	salvo_error err;

	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	snprintf(s->q, sizeof s->q, "salvo.test.rpc.%s.%d", name, (int)getpid());
	s->c = rabbit_connect(uri, NULL);
	OK(salvo_publisher_new(s->c, NULL, &s->p, &err));
	OK(salvo_listener_new(s->c, s->q, serve, s, &lo, &s->l, &err));
}

/* Wait until a "hold" request is in the callback. */
static void server_wait_held(struct server *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&s->lock);
	while (!s->held)
		CHECK(pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0);
	pthread_mutex_unlock(&s->lock);
}

static void server_release(struct server *s)
{
	pthread_mutex_lock(&s->lock);
	s->released = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void server_stop(struct server *s)
{
	salvo_error err;

	server_release(s);
	salvo_listener_destroy(s->l);
	OK(salvo_publisher_close(s->p, 5000, &err));
	rabbit_close(s->c, 10000);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

/* A server, and an RPC client on a connection of its own named name (rabbitmqctl finds it
 * by that). */
struct rig {
	struct server s;
	salvo_client *c;
	salvo_rpc *rpc;
	char name[64];
};

static void rig_start(struct rig *r, const char *name)
{
	salvo_error err;

	server_start(&r->s, name);
	snprintf(r->name, sizeof r->name, "salvo-test-rpc-%s-%d", name, (int)getpid());
	r->c = rabbit_connect(uri, "connection_name", r->name, NULL);
	OK(salvo_rpc_new(r->c, NULL, &r->rpc, &err));
}

static void rig_stop(struct rig *r)
{
	salvo_rpc_destroy(r->rpc);
	rabbit_close(r->c, 10000);
	server_stop(&r->s);
}

/* Call body on q; the reply must be "re:<body>". */
static void call_ok(salvo_rpc *rpc, const char *q, const char *body, int timeout_ms)
{
	salvo_msg req = {.exchange = "", .routing_key = q, .body = body, .len = strlen(body)};
	salvo_message *reply;
	salvo_error err;
	size_t len;
	const char *b;
	char want[256];

	OK(salvo_rpc_call(rpc, &req, timeout_ms, &reply, &err));
	b = salvo_message_body(reply, &len);
	snprintf(want, sizeof want, "re:%s", body);
	if (len != strlen(want) || memcmp(b, want, len) != 0) {
		fprintf(stderr, "reply '%.*s' to '%s'\n", (int)len, b, body);
		exit(1);
	}
	salvo_message_destroy(reply);
}

/* Wait until the RPC client's counter *field (of a fresh snapshot) reaches want. */
static bool wait_stat(salvo_rpc *rpc, size_t offset, uint64_t want, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1e3;
	salvo_rpc_stats st;
	struct timespec nap = {0, 5 * 1000000};

	do {
		salvo_rpc_get_stats(rpc, &st);
		if (*(const uint64_t *)(const void *)((const char *)&st + offset) >= want)
			return true;
		nanosleep(&nap, NULL);
	} while (now_s() < end);
	return false;
}

static void case_round_trip(void)
{
	struct rig r = {0};
	salvo_rpc_stats st;
	salvo_message *reply;
	salvo_error err;
	salvo_msg req = {.exchange = "",
			 .body = "ping",
			 .len = 4,
			 .props = &(salvo_props){.content_type = "text/plain"}};
	size_t len;

	rig_start(&r, "rt");
	req.routing_key = r.s.q;
	OK(salvo_rpc_call(r.rpc, &req, 5000, &reply, &err));
	CHECK(salvo_message_body(reply, &len) && len == 7 &&
	      memcmp(salvo_message_body(reply, &len), "re:ping", 7) == 0);
	/* Our correlation id, copied by the server; the broker rewrote reply_to. */
	CHECK(strncmp(salvo_message_props(reply)->correlation_id, "salvo-rpc-", 10) == 0);
	CHECK(strncmp(r.s.reply_to, "amq.rabbitmq.reply-to.", 22) == 0);
	salvo_message_destroy(reply);
	call_ok(r.rpc, r.s.q, "second", 5000);
	salvo_rpc_get_stats(r.rpc, &st);
	printf("calls %llu replies %llu\n", (unsigned long long)st.calls,
	       (unsigned long long)st.replies);
	CHECK(st.calls == 2 && st.replies == 2 && st.timeouts == 0 && st.failed == 0 &&
	      st.late == 0 && st.unknown == 0 && st.in_flight == 0 && st.restarts == 0);
	rig_stop(&r);
}

#define THREADS	   16
#define PER_THREAD 500

struct caller {
	pthread_t t;
	salvo_rpc *rpc;
	const char *q;
	int id;
};

static void *caller_main(void *arg)
{
	struct caller *k = arg;
	char body[64];

	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(body, sizeof body, "t%d-%d", k->id, i);
		call_ok(k->rpc, k->q, body, 20000);
	}
	return NULL;
}

static void case_16_threads(void)
{
	struct rig r = {0};
	struct caller k[THREADS];
	salvo_rpc_stats st;
	double t0;

	rig_start(&r, "mt");
	t0 = now_s();
	for (int i = 0; i < THREADS; i++) {
		k[i] = (struct caller){.rpc = r.rpc, .q = r.s.q, .id = i};
		CHECK(pthread_create(&k[i].t, NULL, caller_main, &k[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(k[i].t, NULL);
	salvo_rpc_get_stats(r.rpc, &st);
	printf("%d calls in %.2f s\n", THREADS * PER_THREAD, now_s() - t0);
	CHECK(st.calls == THREADS * PER_THREAD && st.replies == THREADS * PER_THREAD);
	CHECK(st.timeouts == 0 && st.failed == 0 && st.late == 0 && st.unknown == 0 &&
	      st.in_flight == 0);
	rig_stop(&r);
}

struct held_call {
	salvo_rpc *rpc;
	const char *q;
	int timeout_ms;
	int rc;
	salvo_error err;
};

static void *held_call_main(void *arg)
{
	struct held_call *h = arg;
	salvo_msg req = {.exchange = "", .routing_key = h->q, .body = "hold", .len = 4};
	salvo_message *reply = NULL;

	h->rc = salvo_rpc_call(h->rpc, &req, h->timeout_ms, &reply, &h->err);
	CHECK(h->rc != 0 && reply == NULL);
	return NULL;
}

static void case_late_reply(void)
{
	struct rig r = {0};
	salvo_rpc_stats st;
	struct held_call h;
	pthread_t t;

	rig_start(&r, "late");
	h = (struct held_call){.rpc = r.rpc, .q = r.s.q, .timeout_ms = 300};
	CHECK(pthread_create(&t, NULL, held_call_main, &h) == 0);
	server_wait_held(&r.s);
	pthread_join(t, NULL);
	printf("held call: %d %s\n", h.rc, h.err.text);
	CHECK(h.rc == SALVO_ERR_TIMEOUT && strstr(h.err.text, "no reply within 300 ms"));
	salvo_rpc_get_stats(r.rpc, &st);
	CHECK(st.timeouts == 1 && st.in_flight == 0 && st.late == 0);
	/* Its reply comes now, to nobody. */
	server_release(&r.s);
	CHECK(wait_stat(r.rpc, offsetof(salvo_rpc_stats, late), 1, 5000));
	/* The next call gets its own reply, not the late one. */
	call_ok(r.rpc, r.s.q, "after", 5000);
	salvo_rpc_get_stats(r.rpc, &st);
	CHECK(st.calls == 2 && st.replies == 1 && st.timeouts == 1 && st.late == 1 &&
	      st.unknown == 0 && st.failed == 0);
	rig_stop(&r);
}

static void case_unknown_id(void)
{
	struct rig r = {.s.extra = true};
	salvo_rpc_stats st;

	rig_start(&r, "unknown");
	call_ok(r.rpc, r.s.q, "one", 5000);
	/* The extras: the same id again (late: answered already), then two not ours. The
	 * broker keeps their order on the channel, so once unknown is 2 late is 1. */
	CHECK(wait_stat(r.rpc, offsetof(salvo_rpc_stats, unknown), 2, 5000));
	salvo_rpc_get_stats(r.rpc, &st);
	printf("late %llu unknown %llu\n", (unsigned long long)st.late,
	       (unsigned long long)st.unknown);
	CHECK(st.calls == 1 && st.replies == 1 && st.late == 1 && st.unknown == 2);
	call_ok(r.rpc, r.s.q, "two", 5000);
	CHECK(wait_stat(r.rpc, offsetof(salvo_rpc_stats, unknown), 4, 5000));
	salvo_rpc_get_stats(r.rpc, &st);
	CHECK(st.calls == 2 && st.replies == 2 && st.late == 2 && st.unknown == 4);
	rig_stop(&r);
}

static void case_recovery(void)
{
	struct rig r = {0};
	salvo_rpc_stats st;
	struct held_call h;
	pthread_t t;

	rabbit_need_ctl(uri);
	rig_start(&r, "recovery");
	call_ok(r.rpc, r.s.q, "before", 5000);
	h = (struct held_call){.rpc = r.rpc, .q = r.s.q, .timeout_ms = 20000};
	CHECK(pthread_create(&t, NULL, held_call_main, &h) == 0);
	server_wait_held(&r.s);
	close_connection(r.name, "test: rpc recovery");
	pthread_join(t, NULL);
	printf("in flight at the loss: %d (%s): %s\n", h.rc, salvo_err2str(h.rc), h.err.text);
	CHECK(h.rc == SALVO_ERR_CLOSED && h.err.reply_code == 320 &&
	      strstr(h.err.text, "connection was lost") && strstr(h.err.text, "cannot come"));
	server_release(&r.s);
	/* Calls after it wait for the new reply consumer, within their timeout. */
	call_ok(r.rpc, r.s.q, "after", 20000);
	for (int i = 0; i < 10; i++)
		call_ok(r.rpc, r.s.q, "again", 5000);
	salvo_rpc_get_stats(r.rpc, &st);
	printf("restarts %llu failed %llu replies %llu\n", (unsigned long long)st.restarts,
	       (unsigned long long)st.failed, (unsigned long long)st.replies);
	CHECK(st.restarts == 1 && st.failed == 1 && st.replies == 12 && st.timeouts == 0 &&
	      st.last_error.reply_code == 320);
	CHECK(salvo_client_reconnects(r.c) == 1);
	rig_stop(&r);
}

/*
 * A request to a missing exchange: the broker closes the channel the calls share (404), the
 * call fails at once with the channel's error instead of waiting for its timeout, and the
 * RPC client goes on with a new channel.
 */
static void case_channel_error(void)
{
	struct rig r = {0};
	salvo_rpc_stats st;
	salvo_message *reply;
	salvo_error err;
	salvo_msg req = {
	    .exchange = "salvo.test.rpc.missing", .routing_key = "x", .body = "?", .len = 1};
	double t0;
	int rc;

	rig_start(&r, "chan");
	t0 = now_s();
	rc = salvo_rpc_call(r.rpc, &req, 10000, &reply, &err);
	printf("missing exchange: %d after %.3f s (reply code %u): %s\n", rc, now_s() - t0,
	       err.reply_code, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && err.reply_code == 404 && reply == NULL &&
	      strstr(err.text, "channel was closed") && strstr(err.text, "no exchange") &&
	      now_s() - t0 < 5);
	call_ok(r.rpc, r.s.q, "next", 10000);
	salvo_rpc_get_stats(r.rpc, &st);
	CHECK(st.calls == 2 && st.failed == 1 && st.replies == 1 && st.restarts == 1 &&
	      st.last_error.reply_code == 404);
	rig_stop(&r);
}

static void case_no_route(void)
{
	salvo_client *c = rabbit_connect(uri, NULL);
	salvo_msg req = {.exchange = "",
			 .routing_key = "salvo.test.rpc.nobody",
			 .body = "?",
			 .len = 1,
			 .flags = SALVO_MSG_MANDATORY};
	salvo_message *reply;
	salvo_rpc_stats st;
	salvo_rpc *rpc;
	salvo_error err;
	double t0;
	int rc;

	OK(salvo_rpc_new(c, NULL, &rpc, &err));
	t0 = now_s();
	rc = salvo_rpc_call(rpc, &req, 300, &reply, &err);
	printf("no route: %d after %.3f s: %s\n", rc, now_s() - t0, err.text);
	CHECK(rc == SALVO_ERR_TIMEOUT && reply == NULL && now_s() - t0 >= 0.29);
	salvo_rpc_get_stats(rpc, &st);
	CHECK(st.timeouts == 1 && st.in_flight == 0);
	salvo_rpc_destroy(rpc);
	rabbit_close(c, 10000);
}

#define REFUSED(call, what)                                                                        \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		printf("%s: %d %s\n", #call, rc_, err.text);                                       \
		CHECK(rc_ == SALVO_ERR_INVALID_ARGUMENT && strstr(err.text, what));                \
	} while (0)

static void case_bad_input(void)
{
	struct server s = {0}; /* its publisher and queue name only */
	salvo_client *c = rabbit_connect(uri, "publisher.ring_size", "65536", NULL);
	salvo_msg req = {.exchange = "", .routing_key = "x", .body = "?", .len = 1};
	salvo_props with_id = {.correlation_id = "mine"}, with_to = {.reply_to = "here"};
	salvo_message *reply, *plain;
	salvo_rpc_stats st;
	salvo_channel *ch;
	salvo_rpc *rpc;
	salvo_error err;
	char *big;
	int rc;

	REFUSED(salvo_rpc_new(NULL, NULL, &rpc, &err), "required");
	REFUSED(salvo_rpc_new(c, NULL, NULL, &err), "required");
	OK(salvo_rpc_new(c, NULL, &rpc, &err));
	REFUSED(salvo_rpc_call(NULL, &req, 1000, &reply, &err), "required");
	REFUSED(salvo_rpc_call(rpc, NULL, 1000, &reply, &err), "required");
	REFUSED(salvo_rpc_call(rpc, &req, 1000, NULL, &err), "required");
	req.routing_key = NULL;
	REFUSED(salvo_rpc_call(rpc, &req, 1000, &reply, &err), "routing_key");
	req.routing_key = "x";
	REFUSED(salvo_rpc_call(rpc, &req, 0, &reply, &err), "timeout 0");
	REFUSED(salvo_rpc_call(rpc, &req, -2, &reply, &err), "timeout -2");
	req.props = &with_id;
	REFUSED(salvo_rpc_call(rpc, &req, 1000, &reply, &err), "correlation_id");
	req.props = &with_to;
	REFUSED(salvo_rpc_call(rpc, &req, 1000, &reply, &err), "reply_to");
	req.props = NULL;
	/* Larger than the 64 KiB ring. */
	big = calloc(1, 100000);
	CHECK(big);
	req.body = big;
	req.len = 100000;
	rc = salvo_rpc_call(rpc, &req, 1000, &reply, &err);
	printf("too large: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_INVALID_ARGUMENT && reply == NULL &&
	      strstr(err.text, "publisher.ring_size"));
	free(big);
	req.body = "?";
	req.len = 1;
	salvo_rpc_get_stats(rpc, &st);
	CHECK(st.calls == 1 && st.failed == 1 && st.in_flight == 0);

	/* The server's side: a request without reply_to, and replies that set what is the
	 * request's. */
	OK(salvo_publisher_new(c, NULL, &s.p, &err));
	snprintf(s.q, sizeof s.q, "salvo.test.rpc.bad.%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, s.q, NULL);
	OK(salvo_publish(s.p, "", s.q, "q", 1, 0, 5000, &err));
	OK(salvo_publisher_flush(s.p, 5000, &err));
	plain = NULL;
	for (double end = now_s() + 5; !plain && now_s() < end;)
		OK(salvo_basic_get(ch, s.q, true, &plain, &err));
	CHECK(plain);
	{
		salvo_msg r = {.body = "r", .len = 1};

		REFUSED(salvo_message_reply(plain, s.p, &r, 1000, &err), "no reply_to");
		REFUSED(salvo_message_reply(NULL, s.p, &r, 1000, &err), "required");
		REFUSED(salvo_message_reply(plain, NULL, &r, 1000, &err), "required");
		REFUSED(salvo_message_reply(plain, s.p, NULL, 1000, &err), "required");
	}
	salvo_message_destroy(plain);
	/* A request with reply_to, answered with what the reply may not set. */
	{
		salvo_msg q = {.exchange = "",
			       .routing_key = s.q,
			       .body = "q",
			       .len = 1,
			       .props = &(salvo_props){.reply_to = "somewhere"}};
		salvo_msg r = {.body = "r", .len = 1};

		OK(salvo_publish_msg(s.p, &q, 5000, NULL, &err));
		OK(salvo_publisher_flush(s.p, 5000, &err));
		plain = NULL;
		for (double end = now_s() + 5; !plain && now_s() < end;)
			OK(salvo_basic_get(ch, s.q, true, &plain, &err));
		CHECK(plain);
		r.exchange = "amq.direct";
		REFUSED(salvo_message_reply(plain, s.p, &r, 1000, &err), "leave its");
		r.exchange = NULL;
		r.routing_key = "k";
		REFUSED(salvo_message_reply(plain, s.p, &r, 1000, &err), "leave its");
		r.routing_key = NULL;
		r.props = &with_id;
		REFUSED(salvo_message_reply(plain, s.p, &r, 1000, &err), "leave its");
		salvo_message_destroy(plain);
	}
	OK(salvo_queue_delete(ch, s.q, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_close(s.p, 5000, &err));

	/* After salvo_rpc_close: refused, every time. */
	OK(salvo_rpc_close(rpc, 5000, &err));
	OK(salvo_rpc_close(rpc, 5000, &err));
	for (int i = 0; i < 2; i++) {
		rc = salvo_rpc_call(rpc, &req, 1000, &reply, &err);
		printf("after close: %d %s\n", rc, err.text);
		CHECK(rc == SALVO_ERR_CLOSED && strstr(err.text, "RPC client was closed"));
	}
	salvo_rpc_destroy(rpc);

	/* After the client's close: closed, not a hang. */
	OK(salvo_rpc_new(c, NULL, &rpc, &err));
	OK(salvo_client_close(c, 5000, &err));
	rc = salvo_rpc_call(rpc, &req, 5000, &reply, &err);
	printf("after the client's close: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && reply == NULL);
	salvo_rpc_destroy(rpc);
	salvo_client_destroy(c);
}

static const struct test_case cases[] = {
    {"round trip", .run = case_round_trip}, {"16 threads", .run = case_16_threads},
    {"late reply", .run = case_late_reply}, {"unknown id", .run = case_unknown_id},
    {"recovery", .run = case_recovery},	    {"channel error", .run = case_channel_error},
    {"no route", .run = case_no_route},	    {"bad input", .run = case_bad_input},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
