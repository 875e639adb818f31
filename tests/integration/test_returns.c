/* SPDX-License-Identifier: MIT */
/*
 * Returned messages with their content (salvo_returned) against a real RabbitMQ: a
 * mandatory message to a routing key no queue is bound to comes back with its body and
 * properties as published and 312 NO_ROUTE, through on_return in best effort, with its
 * outcome in async mode and from salvo_publisher_returned in sync mode (republished from
 * on_return, it reaches a queue), while a routable
 * mandatory message is not returned; a body larger than frame_max (several body frames);
 * a flood of returns over publisher.returns.max_bytes, counted and dropped with the
 * memory bound kept, the other confirms coming all the same; a bound of 0; a body
 * announced larger than the bound, dropped before any of it is buffered. And the broker's
 * channel.flow against a fake broker (hostile_broker.py channel-flow, no RabbitMQ): flow
 * off stops a publisher's sends, its producer fills the ring and then waits within its
 * timeout, flow on sends the rest.
 *
 * argv[1] names the case. The RabbitMQ cases need SALVO_TEST_URI, the fake broker's
 * SALVO_SOURCE_ROOT (each skips with 77 without it).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../fake.h"
#include "../rabbit.h"


/* Each case's own queue (cases run in parallel against one broker): the case's name. */
static char QUEUE[64];
#define NOWHERE "salvo.test.returns.nowhere"

/* The properties every returned message is published with. */
static salvo_table *sample_headers(void)
{
	salvo_table *h = salvo_table_new();

	CHECK(h);
	CHECK(salvo_table_add_string(h, "tenant", "acme") == 0);
	CHECK(salvo_table_add_int(h, "attempt", 3) == 0);
	return h;
}

static salvo_props sample_props(const salvo_table *h)
{
	return (salvo_props){.content_type = "application/json",
			     .correlation_id = "corr-42",
			     .headers = h,
			     .flags = SALVO_PROP_PRIORITY,
			     .priority = 4};
}

/* A copy of what a salvo_returned said, taken while it was valid. */
struct seen {
	int n;
	uint16_t reply_code;
	char reply_text[64], exchange[256], routing_key[256];
	char content_type[64], correlation_id[64], tenant[64];
	int64_t attempt;
	bool has_props, has_seq, dropped;
	uint8_t priority;
	uint32_t record_index, record_count;
	uint8_t *body;
	size_t len;
};

static void keep(struct seen *s, const salvo_returned *r)
{
	salvo_table_iter it;
	salvo_field f;

	s->n++;
	s->reply_code = r->reply_code;
	snprintf(s->reply_text, sizeof s->reply_text, "%s", r->reply_text);
	snprintf(s->exchange, sizeof s->exchange, "%s", r->exchange);
	snprintf(s->routing_key, sizeof s->routing_key, "%s", r->routing_key);
	s->dropped = r->dropped;
	s->record_index = r->record_index;
	s->record_count = r->record_count;
	free(s->body);
	s->body = NULL;
	s->len = r->len;
	if (r->body) {
		s->body = malloc(r->len);
		CHECK(s->body);
		memcpy(s->body, r->body, r->len);
	}
	s->has_props = r->props != NULL;
	if (!r->props)
		return;
	snprintf(s->content_type, sizeof s->content_type, "%s",
		 r->props->content_type ? r->props->content_type : "(none)");
	snprintf(s->correlation_id, sizeof s->correlation_id, "%s",
		 r->props->correlation_id ? r->props->correlation_id : "(none)");
	s->priority = r->props->flags & SALVO_PROP_PRIORITY ? r->props->priority : 0xff;
	salvo_table_iter_init(&it, r->props->headers);
	while (salvo_table_next(&it, &f) == 1) {
		if (!strcmp(f.key, "tenant") && f.type == SALVO_FIELD_STRING)
			snprintf(s->tenant, sizeof s->tenant, "%.*s", (int)f.v.bytes.len,
				 (const char *)f.v.bytes.ptr);
		else if (!strcmp(f.key, "attempt") && f.type == SALVO_FIELD_I64)
			s->attempt = f.v.i64;
		else if (!strcmp(f.key, "x-salvo-seq"))
			s->has_seq = true;
	}
}

/* The message came back as published: body, properties, 312 NO_ROUTE, where it went. */
static void check_seen(const struct seen *s, const void *body, size_t len, bool stamped)
{
	CHECK(s->reply_code == 312 && !strcmp(s->reply_text, "NO_ROUTE"));
	CHECK(!strcmp(s->exchange, "") && !strcmp(s->routing_key, NOWHERE));
	CHECK(!s->dropped && s->has_props && s->record_index == 0 && s->record_count == 1);
	CHECK(s->len == len && (len == 0 || (s->body && !memcmp(s->body, body, len))));
	CHECK(!strcmp(s->content_type, "application/json"));
	CHECK(!strcmp(s->correlation_id, "corr-42"));
	CHECK(s->priority == 4 && !strcmp(s->tenant, "acme") && s->attempt == 3);
	/* The stamp that matches a return to its message, in confirm modes only. */
	CHECK(s->has_seq == stamped);
}

static void on_return(const salvo_returned *r, void *arg)
{
	keep(arg, r);
}

/* Two mandatory messages with props: one routable (taken, not returned), then body to a
 * routing key no queue is bound to. */
static void publish_pair(salvo_publisher *p, const salvo_props *props, const char *body)
{
	salvo_error err;

	OK(salvo_publish_msg(
	    p, &(salvo_msg){"", QUEUE, "kept", 4, SALVO_MSG_MANDATORY, .props = props}, 5000, NULL,
	    &err));
	OK(salvo_publish_msg(
	    p, &(salvo_msg){"", NOWHERE, body, strlen(body), SALVO_MSG_MANDATORY, .props = props},
	    5000, NULL, &err));
}

/* After this, the broker has handled everything p sent, and whatever it returned has
 * reached p: a synchronous method on p's own channel is answered after them. */
static void settle_channel(salvo_publisher *p)
{
	salvo_error err;

	OK(salvo_publisher_flush(p, 10000, &err));
	OK(salvo_queue_declare(salvo_publisher_channel(p), QUEUE, SALVO_PASSIVE, NULL, NULL, &err));
}

/* Best effort: republish each returned message to the queue, from on_return. */
struct republish {
	salvo_publisher *p;
	int n, rc;
};

static void republish(const salvo_returned *r, void *arg)
{
	struct republish *rp = arg;
	salvo_msg m = {"", QUEUE, r->body, r->len, 0, NULL, r->props};

	rp->n++;
	rp->rc |= salvo_publish_msg(rp->p, &m, 5000, NULL, NULL);
}

static void case_best_effort(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	struct seen s = {0};
	salvo_publisher_opts o = {.on_return = on_return, .on_return_arg = &s};
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	const char body[] = "{\"order\": 17}";

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, QUEUE, NULL);
	OK(salvo_publisher_new(c, &o, &p, &err));
	publish_pair(p, &props, body);
	settle_channel(p);
	CHECK(s.n == 0); /* only poll runs on_return */
	CHECK(salvo_publisher_poll(p, 0, &err) == 1);
	CHECK(s.n == 1);
	check_seen(&s, body, strlen(body), false);
	CHECK(salvo_publisher_poll(p, 0, &err) == 0);
	salvo_publisher_stats(p, &st);
	CHECK(st.returned == 1 && st.returns_dropped == 0 && st.published == 2);
	CHECK(channel_queue_count(ch, QUEUE) == 1);
	printf("best effort: returned %d, %zu-byte body, content_type %s, correlation_id %s\n", s.n,
	       s.len, s.content_type, s.correlation_id);
	OK(salvo_publisher_close(p, 5000, &err));

	/* on_return may publish on its publisher: what came back goes to the queue instead,
	 * with its properties; the queue then holds it, its properties as returned. */
	struct republish rp = {0};
	OK(salvo_queue_purge(ch, QUEUE, NULL, &err));
	o = (salvo_publisher_opts){.on_return = republish, .on_return_arg = &rp};
	OK(salvo_publisher_new(c, &o, &p, &err));
	rp.p = p;
	publish_pair(p, &props, body);
	settle_channel(p);
	CHECK(salvo_publisher_poll(p, 0, &err) == 1 && rp.n == 1 && rp.rc == 0);
	settle_channel(p);
	salvo_message *m;
	size_t len;
	OK(salvo_basic_get(ch, QUEUE, true, &m, &err));
	CHECK(m && salvo_message_body(m, &len) && len == 4); /* the routable one, first */
	salvo_message_destroy(m);
	OK(salvo_basic_get(ch, QUEUE, true, &m, &err));
	CHECK(m);
	const void *b = salvo_message_body(m, &len);
	CHECK(len == strlen(body) && !memcmp(b, body, len));
	CHECK(!strcmp(salvo_message_props(m)->correlation_id, "corr-42"));
	salvo_message_destroy(m);
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_queue_delete(ch, QUEUE, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(h);
	free(s.body);
	rabbit_close(c, 5000);
}

/* Async outcomes: the returned one carries its message, the others nothing. */
struct outcomes {
	struct seen s;
	int acked, returned, other;
	bool acked_with_return;
};

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct outcomes *t = arg;

	if (o->kind == SALVO_OUTCOME_RETURNED) {
		t->returned++;
		CHECK(o->returned && o->returned->reply_code == o->reply_code);
		keep(&t->s, o->returned);
	} else if (o->kind == SALVO_OUTCOME_ACKED) {
		t->acked++;
		t->acked_with_return |= o->returned != NULL;
	} else {
		t->other++;
	}
}

static void case_async(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	struct outcomes t = {0};
	salvo_publisher_opts o = {
	    .confirm = SALVO_CONFIRM_ASYNC, .on_outcome = on_outcome, .on_outcome_arg = &t};
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_error err;
	const char body[] = "async body";

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, QUEUE, NULL);
	/* on_return belongs to best effort: refused here, with the reason. */
	o.on_return = on_return;
	CHECK(salvo_publisher_new(c, &o, &p, &err) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(strstr(err.text, "on_return"));
	o.on_return = NULL;
	OK(salvo_publisher_new(c, &o, &p, &err));
	publish_pair(p, &props, body);
	CHECK(salvo_publisher_wait_confirms(p, 10000, &err) == SALVO_ERR_RETURNED);
	CHECK(t.acked == 1 && t.returned == 1 && t.other == 0 && !t.acked_with_return);
	check_seen(&t.s, body, strlen(body), true);
	CHECK(channel_queue_count(ch, QUEUE) == 1);
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_queue_delete(ch, QUEUE, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(h);
	free(t.s.body);
	rabbit_close(c, 5000);
}

/* Sync: the returned message until the next call; a body over frame_max comes back whole. */
static void case_sync(void)
{
	salvo_client *c = rabbit_connect(rabbit_test_uri(), NULL);
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_SYNC};
	const size_t big = 300000; /* frame_max 131072: three body frames each way */
	uint8_t *body = malloc(big);
	const salvo_returned *r;
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_pub_stats st;
	struct seen s = {0};
	salvo_error err;

	CHECK(body);
	for (size_t i = 0; i < big; i++)
		body[i] = (uint8_t)(i * 7 + i / 251);
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, QUEUE, NULL);
	OK(salvo_publisher_new(c, &o, &p, &err));
	CHECK(salvo_publisher_returned(p) == NULL);
	CHECK(salvo_publish_msg(
		  p, &(salvo_msg){"", NOWHERE, body, big, SALVO_MSG_MANDATORY, .props = &props},
		  10000, NULL, &err) == SALVO_ERR_RETURNED);
	CHECK(err.reply_code == 312);
	r = salvo_publisher_returned(p);
	CHECK(r);
	keep(&s, r);
	check_seen(&s, body, big, true);
	printf("sync: a %zu-byte body returned whole (reply %u %s)\n", s.len, s.reply_code,
	       s.reply_text);
	/* The next call frees it; a routable mandatory message is acked, nothing returned. */
	OK(salvo_publish_msg(
	    p, &(salvo_msg){"", QUEUE, body, 100, SALVO_MSG_MANDATORY, .props = &props}, 10000,
	    NULL, &err));
	CHECK(salvo_publisher_returned(p) == NULL);
	salvo_publisher_stats(p, &st);
	CHECK(st.returned == 1 && st.acked == 1 && st.returns_dropped == 0);
	OK(salvo_publisher_close(p, 5000, &err));
	CHECK(salvo_publisher_returned(NULL) == NULL);

	/* Best effort with the same large body. */
	struct seen b = {0};
	salvo_publisher_opts bo = {.on_return = on_return, .on_return_arg = &b};
	OK(salvo_publisher_new(c, &bo, &p, &err));
	OK(salvo_publish_msg(
	    p, &(salvo_msg){"", NOWHERE, body, big, SALVO_MSG_MANDATORY, .props = &props}, 5000,
	    NULL, &err));
	settle_channel(p);
	CHECK(salvo_publisher_poll(p, 0, &err) == 1);
	check_seen(&b, body, big, false);
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_queue_delete(ch, QUEUE, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(h);
	free(s.body);
	free(b.body);
	free(body);
	rabbit_close(c, 5000);
}

/* Log lines about the bound (facility "publisher"). */
static int bound_lines;
static void on_log(void *arg, int level, const char *facility, const char *message)
{
	(void)arg;
	(void)level;
	if (!strcmp(facility, "publisher") && strstr(message, "publisher.returns.max_bytes"))
		__atomic_fetch_add(&bound_lines, 1, __ATOMIC_RELAXED);
}

static salvo_client *connect_bounded(const char *max_bytes)
{
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	char errstr[256];

	CHECK(conf);
	CHECK(salvo_conf_set(conf, "uri", rabbit_test_uri(), errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "publisher.returns.max_bytes", max_bytes, errstr,
			     sizeof errstr) == 0);
	CHECK(salvo_conf_set_log_cb(conf, on_log, NULL) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	return c;
}

/* Outcomes of the flood: which came with content, which dropped. */
struct flood {
	int acked, kept, dropped, other;
	bool bodies_ok;
};

#define FLOOD_BODY    4096
#define FLOOD_RETURNS 200
#define FLOOD_ROUTED  100
#define FLOOD_MAX     65536

static void on_flood(const salvo_outcome *o, void *arg)
{
	struct flood *f = arg;
	const salvo_returned *r = o->returned;

	if (o->kind == SALVO_OUTCOME_ACKED) {
		f->acked++;
	} else if (o->kind == SALVO_OUTCOME_RETURNED && r && r->reply_code == 312) {
		if (r->dropped) {
			f->dropped++;
			f->bodies_ok &= !r->body && !r->props;
		} else {
			f->kept++;
			/* Each body is filled with its index's low byte. */
			uint8_t want = (uint8_t)(uintptr_t)o->opaque;
			f->bodies_ok &= r->len == FLOOD_BODY && r->props &&
					((const uint8_t *)r->body)[0] == want &&
					((const uint8_t *)r->body)[FLOOD_BODY - 1] == want;
		}
	} else {
		f->other++;
	}
}

static void on_flood_return(const salvo_returned *r, void *arg)
{
	struct flood *f = arg;

	f->kept++;
	f->bodies_ok &= r->len == FLOOD_BODY && !r->dropped && r->props;
}

static void publish_flood(salvo_publisher *p, bool routed_too)
{
	static uint8_t body[FLOOD_BODY];
	salvo_error err;

	for (int i = 0; i < FLOOD_RETURNS; i++) {
		memset(body, i & 0xff, sizeof body);
		OK(salvo_publish_msg(p,
				     &(salvo_msg){"", NOWHERE, body, sizeof body,
						  SALVO_MSG_MANDATORY,
						  .opaque = (void *)(uintptr_t)(i & 0xff)},
				     10000, NULL, &err));
		if (routed_too && i % 2)
			OK(salvo_publish(p, "", QUEUE, "r", 1, SALVO_MSG_MANDATORY, 10000, &err));
	}
}

/*
 * 200 returns of 4 KiB against a 64 KiB bound, nobody taking them until all are in: the
 * content of those that fit is kept, the rest dropped and counted, every outcome still
 * comes (the routed messages' acks too), and the bound holds: what was kept fits in it.
 * Once handed out, the space is back. Then the same in best effort.
 */
static void case_flood(void)
{
	salvo_client *c = connect_bounded("65536");
	struct flood f = {.bodies_ok = true};
	salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_ASYNC,
				  .window = 1024,
				  .on_outcome = on_flood,
				  .on_outcome_arg = &f};
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, QUEUE, NULL);
	OK(salvo_publisher_new(c, &o, &p, &err));
	publish_flood(p, true);
	/* Every outcome known, none handed out yet (flush delivers none). */
	OK(salvo_publisher_flush(p, 30000, &err));
	salvo_publisher_stats(p, &st);
	printf("flood async: returned %llu, dropped %llu, acked %llu, in flight %llu\n",
	       (unsigned long long)st.returned, (unsigned long long)st.returns_dropped,
	       (unsigned long long)st.acked, (unsigned long long)st.in_flight);
	CHECK(st.returned == FLOOD_RETURNS && st.acked == FLOOD_ROUTED && st.in_flight == 0);
	CHECK(st.returns_dropped > 0 && st.returns_dropped < FLOOD_RETURNS);
	CHECK(salvo_publisher_wait_confirms(p, 10000, &err) == SALVO_ERR_RETURNED);
	printf("flood async: %d kept with content, %d dropped, %d acked\n", f.kept, f.dropped,
	       f.acked);
	CHECK(f.bodies_ok && f.other == 0 && f.acked == FLOOD_ROUTED);
	CHECK(f.kept + f.dropped == FLOOD_RETURNS && (uint64_t)f.dropped == st.returns_dropped);
	/* The bound: what was held at once fits in it. */
	CHECK(f.kept * FLOOD_BODY <= FLOOD_MAX);
	/* Handed out and freed: a return fits again. */
	memset(&f, 0, sizeof f);
	f.bodies_ok = true;
	OK(salvo_publish(p, "", NOWHERE, "again", 5, SALVO_MSG_MANDATORY, 10000, &err));
	CHECK(salvo_publisher_wait_confirms(p, 10000, &err) == SALVO_ERR_RETURNED);
	CHECK(f.kept == 1 && f.dropped == 0 && f.other == 0);
	OK(salvo_publisher_close(p, 5000, &err));
	CHECK(channel_queue_count(ch, QUEUE) == FLOOD_ROUTED);

	/* Best effort: the dropped ones never reach on_return. */
	struct flood b = {.bodies_ok = true};
	salvo_publisher_opts bo = {.on_return = on_flood_return, .on_return_arg = &b};
	OK(salvo_publisher_new(c, &bo, &p, &err));
	publish_flood(p, false);
	settle_channel(p);
	salvo_publisher_stats(p, &st);
	CHECK(st.returned == FLOOD_RETURNS && st.returns_dropped > 0);
	CHECK(salvo_publisher_poll(p, 0, &err) == b.kept);
	printf("flood best effort: returned %llu, %d handed to on_return, %llu dropped\n",
	       (unsigned long long)st.returned, b.kept, (unsigned long long)st.returns_dropped);
	CHECK(b.bodies_ok && (uint64_t)b.kept + st.returns_dropped == FLOOD_RETURNS);
	CHECK(b.kept * FLOOD_BODY <= FLOOD_MAX);
	OK(salvo_publisher_close(p, 5000, &err));
	/* Said once per client, not once per drop. */
	CHECK(__atomic_load_n(&bound_lines, __ATOMIC_RELAXED) == 1);
	OK(salvo_queue_delete(ch, QUEUE, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

/* Bound 0: nothing is kept, every outcome still says RETURNED. */
static void case_bound_zero(void)
{
	salvo_client *c = connect_bounded("0");
	struct outcomes t = {0};
	salvo_publisher_opts o = {
	    .confirm = SALVO_CONFIRM_ASYNC, .on_outcome = on_outcome, .on_outcome_arg = &t};
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;

	OK(salvo_publisher_new(c, &o, &p, &err));
	OK(salvo_publish(p, "", NOWHERE, "x", 1, SALVO_MSG_MANDATORY, 5000, &err));
	CHECK(salvo_publisher_wait_confirms(p, 10000, &err) == SALVO_ERR_RETURNED);
	CHECK(t.returned == 1 && t.s.dropped && !t.s.has_props && !t.s.body);
	CHECK(t.s.reply_code == 312 && !strcmp(t.s.routing_key, NOWHERE));
	salvo_publisher_stats(p, &st);
	CHECK(st.returned == 1 && st.returns_dropped == 1);
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 5000);
}

/* A body announced larger than the whole bound is never buffered: dropped at its content
 * header, however empty the bound is; a small one right after is kept. */
static void case_over_bound(void)
{
	salvo_client *c = connect_bounded("65536");
	salvo_publisher_opts o = {.confirm = SALVO_CONFIRM_SYNC};
	const size_t big = 300000;
	uint8_t *body = calloc(1, big);
	const salvo_returned *r;
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;

	CHECK(body);
	OK(salvo_publisher_new(c, &o, &p, &err));
	CHECK(salvo_publish(p, "", NOWHERE, body, big, SALVO_MSG_MANDATORY, 10000, &err) ==
	      SALVO_ERR_RETURNED);
	r = salvo_publisher_returned(p);
	CHECK(r && r->dropped && !r->props && !r->body && r->reply_code == 312);
	CHECK(!strcmp(r->routing_key, NOWHERE));
	CHECK(salvo_publish(p, "", NOWHERE, body, 1000, SALVO_MSG_MANDATORY, 10000, &err) ==
	      SALVO_ERR_RETURNED);
	r = salvo_publisher_returned(p);
	CHECK(r && !r->dropped && r->props && r->len == 1000);
	salvo_publisher_stats(p, &st);
	CHECK(st.returned == 2 && st.returns_dropped == 1);
	OK(salvo_publisher_close(p, 5000, &err));
	free(body);
	rabbit_close(c, 5000);
}

/* hostile_broker.py CASE in the background, its log in *log_path; returns its pid and sets
 * *port. */
static pid_t start_fake(const char *fake_case, const char *after, char *log_path, size_t n,
			unsigned *port)
{
	char script[1024], port_path[256];

	fake_script("hostile_broker.py", script, sizeof script);
	fake_paths("returns", port_path, sizeof port_path, log_path, n);
	char *argv[] = {"python3",     script, (char *)fake_case, port_path, "--after-publishes",
			(char *)after, NULL};
	return fake_spawn(argv, port_path, log_path, port);
}

/* The next event of kind, skipping others, within timeout_ms. */
static void wait_event(salvo_client *c, salvo_event_kind kind, salvo_event *ev, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;

	for (;;) {
		int left = (int)((end - now_s()) * 1000);
		CHECK(left > 0);
		CHECK(salvo_client_poll_event(c, ev, left) == 0);
		if (ev->kind == kind)
			return;
	}
}

static bool log_has(const char *path, const char *line)
{
	return fake_log_find(path, line, 1) != 0;
}

#define FLOW_FIRST 100 /* publishes before the fake stops the channel's flow */
#define FLOW_BODY  1000

/*
 * channel.flow from the broker (hostile_broker.py channel-flow: after 100 publishes it
 * sends channel.flow active=false on their channel, counts what comes for 2 s after the
 * client's flow-ok, then sends active=true). salvo answers both, reports both as events,
 * sends nothing while flow is off (the fake checks), its producer fills the ring and then
 * waits as for a full ring, within its timeout, and the rest goes once flow is on.
 */
static void case_channel_flow(void)
{
	char log_path[256], uri[128], line[128];
	uint8_t body[FLOW_BODY] = {0};
	unsigned port;
	pid_t pid = start_fake("channel-flow", "100", log_path, sizeof log_path, &port);
	salvo_client *c;
	salvo_publisher *p;
	salvo_event ev;
	salvo_error err;
	int rc, status, queued = 0;

	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%u", port);
	c = rabbit_connect(uri, "reconnect", "0", "publisher.ring_size", "65536", NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	for (int i = 0; i < FLOW_FIRST; i++)
		OK(salvo_publish(p, "", "q", body, sizeof body, 0, 5000, &err));
	wait_event(c, SALVO_EVENT_FLOW_STOPPED, &ev, 5000);
	CHECK(ev.channel == 1);
	printf("event: %s\n", ev.reason);
	/* Flow is off: the ring fills (64 KiB, about 60 of these), then a publish that may
	 * not wait says so, and one that may waits its timeout out. */
	while ((rc = salvo_publish(p, "", "q", body, sizeof body, 0, 0, &err)) == 0)
		CHECK(++queued <= 65536 / FLOW_BODY);
	CHECK(rc == SALVO_ERR_WOULD_BLOCK && queued > 0);
	double t0 = now_s();
	CHECK(salvo_publish(p, "", "q", body, sizeof body, 0, 200, &err) == SALVO_ERR_TIMEOUT);
	CHECK(now_s() - t0 >= 0.19);
	printf("flow off: %d messages queued in the ring, then full\n", queued);
	wait_event(c, SALVO_EVENT_FLOW_RESUMED, &ev, 8000);
	CHECK(ev.channel == 1);
	OK(salvo_publisher_flush(p, 5000, &err));
	OK(salvo_publish(p, "", "q", body, sizeof body, 0, 5000, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 5000);
	CHECK(waitpid(pid, &status, 0) == pid);
	snprintf(line, sizeof line, "client published %d messages (first on channel 1)",
		 FLOW_FIRST + queued + 1);
	fprintf(stderr, "fake broker's log in %s\n", log_path);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(log_has(log_path, "client channel.flow-ok active 0"));
	CHECK(log_has(log_path, "check ok: 0 basic.publish while flow was off"));
	CHECK(log_has(log_path, "client channel.flow-ok active 1"));
	CHECK(log_has(log_path, line));
	unlink(log_path);
}

static const struct test_case cases[] = {
	{"best effort", .run = case_best_effort},
	{"async", .run = case_async},
	{"sync large", .run = case_sync},
	{"flood", .run = case_flood},
	{"bound zero", .run = case_bound_zero},
	{"over the bound", .run = case_over_bound},
	{"channel flow", .run = case_channel_flow},
};

int main(int argc, char **argv)
{
	snprintf(QUEUE, sizeof QUEUE, "salvo.test.returns.%s", argc > 1 ? argv[1] : "all");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
