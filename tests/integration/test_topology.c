/* SPDX-License-Identifier: MIT */
/*
 * Topology recovery against RabbitMQ (issue 17, part 1): what a client declared comes back
 * after rabbitmqctl close_connection (320, then salvo reconnects), and consumers go on.
 * Each case closes its own client's connection (named per case and process) and waits for
 * the events that say how recovery went; a second client ("admin", never closed) looks at
 * the broker, publishes, and changes things while the first is disconnected. The admin
 * client records too (topology_recovery is on by default); it never loses its connection.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../fake.h"
#include "../rabbit.h"

static const char *uri;

/* Events of c until one of kind (included) or the timeout: the list is for the case to
 * look through. Returns how many were collected; the last is of kind unless it timed out. */
#define MAX_EVENTS 64
static size_t events_until(salvo_client *c, salvo_event_kind kind, salvo_event *evs, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1e3;
	size_t n = 0;

	while (now_s() < end && n < MAX_EVENTS) {
		if (salvo_client_poll_event(c, &evs[n], 100))
			continue;
		if (evs[n++].kind == kind)
			return n;
	}
	fprintf(stderr, "no event %d within %d ms (%zu others)\n", (int)kind, timeout_ms, n);
	exit(1);
}

static const salvo_event *find_event(const salvo_event *evs, size_t n, salvo_event_kind kind)
{
	for (size_t i = 0; i < n; i++)
		if (evs[i].kind == kind)
			return &evs[i];
	return NULL;
}

/* A client named after the case (for close_connection), with more keys. */
static salvo_client *named_client(const char *tag, char *name, size_t size, const char *key,
				  const char *value)
{
	rabbit_need_ctl(uri);
	snprintf(name, size, "salvo-topology-%s-%d", tag, (int)getpid());
	return key ? rabbit_connect(uri, "connection_name", name, key, value, NULL)
		   : rabbit_connect(uri, "connection_name", name, NULL);
}

/* Does queue q exist? A passive declare on a channel of its own: 0, 404, or 405
 * RESOURCE_LOCKED for another connection's exclusive queue (it exists). */
static bool queue_exists(salvo_client *c, const char *q)
{
	salvo_channel *ch;
	salvo_error err;
	int rc;

	OK(salvo_channel_open(c, &ch, &err));
	rc = salvo_queue_declare(ch, q, SALVO_PASSIVE, NULL, NULL, &err);
	CHECK(rc == 0 || rc == 404 || rc == 405);
	salvo_channel_close(ch, NULL);
	return rc != 404;
}

/* Publish body to exchange with routing key key through a publisher of c (sync confirm),
 * mandatory: a message no binding routes fails the case. */
static void publish_to(salvo_client *c, const char *exchange, const char *key, const char *body)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;
	salvo_error err;

	OK(salvo_publisher_new(c, &opts, &p, &err));
	OK(salvo_publish(p, exchange, key, body, strlen(body), SALVO_MSG_MANDATORY, 5000, &err));
	OK(salvo_publisher_close(p, 5000, &err));
}

/* basic.get of q on c: the body must be want. */
static void get_body(salvo_client *c, const char *q, const char *want)
{
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	size_t len;
	const char *b;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_get(ch, q, true, &m, &err));
	CHECK(m);
	b = salvo_message_body(m, &len);
	CHECK(len == strlen(want) && !memcmp(b, want, len));
	salvo_message_destroy(m);
	OK(salvo_channel_close(ch, &err));
}

static void expect_body(salvo_message *m, const char *want)
{
	size_t len;
	const char *b = salvo_message_body(m, &len);

	if (len != strlen(want) || memcmp(b, want, len)) {
		fprintf(stderr, "got '%.*s', wanted '%s'\n", (int)len, b, want);
		exit(1);
	}
}

/* Close c's connection (named name) from the broker and wait for topology recovery to
 * end; the events up to it are left in evs (n of them). */
static size_t bounce(salvo_client *c, const char *name, salvo_event *evs)
{
	size_t n;

	close_connection(name, "test: topology");
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 20000);
	CHECK(find_event(evs, n, SALVO_EVENT_CONNECTION_LOST));
	CHECK(find_event(evs, n, SALVO_EVENT_RECONNECTED));
	CHECK(!find_event(evs, n, SALVO_EVENT_TOPOLOGY_FAILED));
	return n;
}

/*
 * An exclusive queue and an auto-delete queue, each bound to an exchange (the auto-delete
 * one consumed: the broker deletes it when its consumer goes), die with the connection and
 * come back: gone from the broker after the loss (checked through the admin client before
 * salvo reconnects), back after recovery, and messages published through the bindings
 * after RECONNECTED are in the exclusive queue and reach the auto-delete queue's consumer.
 */
static void case_exclusive(void)
{
	char name[96], q[96], ad[96], x[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c =
	    named_client("exclusive", name, sizeof name, "reconnect.initial_delay", "1000");
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	size_t n;

	snprintf(q, sizeof q, "salvo.test.topology.excl-%d", (int)getpid());
	snprintf(ad, sizeof ad, "salvo.test.topology.ad-%d", (int)getpid());
	snprintf(x, sizeof x, "salvo.test.topology.excl-x-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_declare(ch, x, "direct", SALVO_AUTO_DELETE, NULL, &err));
	OK(salvo_queue_declare(ch, q, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, q, x, "k", NULL, &err));
	OK(salvo_queue_declare(ch, ad, SALVO_AUTO_DELETE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, ad, x, "ad", NULL, &err));
	OK(salvo_consume(ch, ad, NULL, &cons, &err));

	close_connection(name, "test: topology");
	n = events_until(c, SALVO_EVENT_CONNECTION_LOST, evs, 10000);
	/* The broker deleted both with the connection (salvo waits 0.5 to 1 s to reconnect). */
	CHECK(!queue_exists(admin, q) && !queue_exists(admin, ad));
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 20000);
	CHECK(find_event(evs, n, SALVO_EVENT_RECONNECTED));
	CHECK(!find_event(evs, n, SALVO_EVENT_TOPOLOGY_FAILED));
	/* The exchange, two queues, two bindings and a consumer: 6 entities made again. */
	CHECK(evs[n - 1].attempt == 6);
	CHECK(queue_exists(admin, q) && queue_exists(admin, ad));
	publish_to(admin, x, "k", "after");
	get_body(c, q, "after");
	publish_to(admin, x, "ad", "auto-delete");
	OK(salvo_consumer_get(cons, 5000, &m, &err));
	expect_body(m, "auto-delete");
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/* The order topology recovery made entities in, as the filter saw them. */
struct order {
	pthread_mutex_t lock;
	salvo_topology_kind kinds[64];
	char names[64][128];
	size_t n;
	const char *skip; /* a name the filter skips */
};

static bool record_order(const salvo_topology_entity *e, void *arg)
{
	struct order *o = arg;
	const char *name = e->name ? e->name : e->destination;

	pthread_mutex_lock(&o->lock);
	if (o->n < 64) {
		o->kinds[o->n] = e->kind;
		snprintf(o->names[o->n], sizeof o->names[0], "%s", name);
		o->n++;
	}
	pthread_mutex_unlock(&o->lock);
	return !o->skip || strcmp(name, o->skip);
}

/* A client whose topology filter is record_order(o), set on a configuration and kept by
 * salvo_conf_dup (the client is made from the copy). */
static salvo_client *filtered_client(const char *tag, char *name, size_t size, struct order *o)
{
	salvo_conf *conf = salvo_conf_new(), *copy;
	salvo_client *c;
	salvo_error err;
	char errstr[256];

	rabbit_need_ctl(uri);
	snprintf(name, size, "salvo-topology-%s-%d", tag, (int)getpid());
	CHECK(conf);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect.initial_delay", "1000", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set_topology_filter(NULL, record_order, o) == SALVO_ERR_INVALID_ARGUMENT);
	OK(salvo_conf_set_topology_filter(conf, record_order, o));
	copy = salvo_conf_dup(conf);
	CHECK(copy);
	salvo_conf_destroy(conf);
	OK(salvo_client_new(copy, &c, &err));
	salvo_conf_destroy(copy);
	return c;
}

/*
 * An exchange-to-exchange chain x1 -> x2 -> q, deleted by another client while salvo is
 * disconnected: recovery makes it again, in the order exchanges, queues, bindings,
 * consumers (the filter sees each entity just before it is made), and a message published
 * to x1 after recovery reaches q. A consumer of q comes back last.
 */
static void case_exchange_chain(void)
{
	struct order o = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char name[96], q[96], x1[96], x2[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = filtered_client("chain", name, sizeof name, &o);
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_channel *ch, *ach;
	salvo_consumer *cons;
	salvo_message *m;
	salvo_error err;
	uint64_t deleted_ns;
	size_t n;
	static const salvo_topology_kind want[] = {
	    SALVO_TOPOLOGY_EXCHANGE,	  SALVO_TOPOLOGY_EXCHANGE,	   SALVO_TOPOLOGY_QUEUE,
	    SALVO_TOPOLOGY_QUEUE_BINDING, SALVO_TOPOLOGY_EXCHANGE_BINDING, SALVO_TOPOLOGY_CONSUMER};

	snprintf(q, sizeof q, "salvo.test.topology.chain-%d", (int)getpid());
	snprintf(x1, sizeof x1, "salvo.test.topology.chain-x1-%d", (int)getpid());
	snprintf(x2, sizeof x2, "salvo.test.topology.chain-x2-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	/* Declared in an order unlike recovery's: bindings before the queue's consumer, the
	 * exchange binding after the queue binding, and x2 first. */
	OK(salvo_exchange_declare(ch, x2, "fanout", 0, NULL, &err));
	OK(salvo_exchange_declare(ch, x1, "topic", 0, NULL, &err));
	OK(salvo_queue_declare(ch, q, 0, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, q, x2, "", NULL, &err));
	OK(salvo_exchange_bind(ch, x2, x1, "a.#", NULL, &err));
	OK(salvo_consume(ch, q, NULL, &cons, &err));

	close_connection(name, "test: topology");
	events_until(c, SALVO_EVENT_CONNECTION_LOST, evs, 10000);
	OK(salvo_channel_open(admin, &ach, &err));
	OK(salvo_exchange_delete(ach, x1, 0, &err));
	OK(salvo_exchange_delete(ach, x2, 0, &err));
	OK(salvo_queue_delete(ach, q, 0, NULL, &err));
	OK(salvo_channel_close(ach, &err));
	deleted_ns = (uint64_t)(now_s() * 1e9);
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 20000);
	/* The premise: all was gone before salvo reconnected. */
	CHECK(find_event(evs, n, SALVO_EVENT_RECONNECTED)->time_ns > deleted_ns);
	CHECK(!find_event(evs, n, SALVO_EVENT_TOPOLOGY_FAILED));
	CHECK(o.n == sizeof want / sizeof want[0]);
	for (size_t i = 0; i < o.n; i++) {
		printf("recovered %zu: kind %d %s\n", i, (int)o.kinds[i], o.names[i]);
		CHECK(o.kinds[i] == want[i]);
	}
	CHECK(!strcmp(o.names[0], x2) && !strcmp(o.names[1], x1));
	publish_to(admin, x1, "a.b", "through the chain");
	OK(salvo_consumer_get(cons, 5000, &m, &err));
	expect_body(m, "through the chain");
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_delete_queue(admin, q);
	OK(salvo_channel_open(admin, &ach, &err));
	OK(salvo_exchange_delete(ach, x1, 0, &err));
	OK(salvo_exchange_delete(ach, x2, 0, &err));
	OK(salvo_channel_close(ach, &err));
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/* A consumer's callback (salvo_consumer_dispatch): counts and keeps the last body. */
struct seen {
	atomic_int n;
	char last[64];
};

static void on_message(salvo_message *m, void *arg)
{
	struct seen *s = arg;
	size_t len;
	const char *b = salvo_message_body(m, &len);
	salvo_error err;

	snprintf(s->last, sizeof s->last, "%.*s", (int)len, b);
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	atomic_fetch_add(&s->n, 1);
}

/*
 * Plain consumers survive: on one channel with prefetch 7, a consumer read with
 * salvo_consumer_get and one with a callback (tag given), and a SALVO_CONSUME_NO_RECOVERY
 * consumer. A message taken before the loss can no longer be acked (refused locally); a
 * call on the channel during the outage is refused as "being recovered"; the
 * NO_RECOVERY consumer ends; after recovery the same consumer objects receive what is
 * published (by get and by dispatch), with the same tags and the prefetch set again.
 */
static void case_consumer_survives(void)
{
	char name[96], q1[96], q2[96], q3[96], prefetch[32];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c =
	    named_client("consumer", name, sizeof name, "reconnect.initial_delay", "1000");
	salvo_client *admin = rabbit_connect(uri, NULL);
	struct seen seen = {0};
	salvo_consumer_opts cb = {
	    .tag = "salvo-topology-cb", .on_message = on_message, .on_message_arg = &seen};
	salvo_consumer_opts once = {.flags = SALVO_CONSUME_NO_RECOVERY};
	salvo_consumer *get_cons, *cb_cons, *once_cons;
	salvo_channel *ch;
	salvo_message *m, *old;
	salvo_error err;
	char tag[256];
	size_t n;
	int rc;

	snprintf(q1, sizeof q1, "salvo.test.topology.cons1-%d", (int)getpid());
	snprintf(q2, sizeof q2, "salvo.test.topology.cons2-%d", (int)getpid());
	snprintf(q3, sizeof q3, "salvo.test.topology.cons3-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_qos(ch, 0, 7, false, &err));
	fresh_queue(ch, q1, NULL);
	fresh_queue(ch, q2, NULL);
	fresh_queue(ch, q3, NULL);
	OK(salvo_consume(ch, q1, NULL, &get_cons, &err));
	OK(salvo_consume(ch, q2, &cb, &cb_cons, &err));
	OK(salvo_consume(ch, q3, &once, &once_cons, &err));
	snprintf(tag, sizeof tag, "%s", salvo_consumer_tag(get_cons));
	rabbit_publish_n(admin, q1, 0, 1);
	OK(salvo_consumer_get(get_cons, 5000, &old, &err));

	close_connection(name, "test: topology");
	events_until(c, SALVO_EVENT_CONNECTION_LOST, evs, 10000);
	rc = salvo_queue_declare(ch, q1, SALVO_PASSIVE, NULL, NULL, &err);
	printf("declare during the outage: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && strstr(err.text, "being recovered"));
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 20000);
	CHECK(find_event(evs, n, SALVO_EVENT_RECONNECTED));
	CHECK(!find_event(evs, n, SALVO_EVENT_TOPOLOGY_FAILED));
	rc = salvo_message_ack(old, false, &err);
	CHECK(rc == SALVO_ERR_CLOSED && strstr(err.text, "refused"));
	salvo_message_destroy(old);
	rc = salvo_consumer_get(once_cons, 1000, &m, &err);
	printf("NO_RECOVERY consumer: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED || rc == 320);

	CHECK(!strcmp(salvo_consumer_tag(get_cons), tag));
	rabbit_ctl_find("list_consumers consumer_tag prefetch_count", tag, 2, prefetch,
			sizeof prefetch);
	printf("prefetch of %s after recovery: '%s'\n", tag, prefetch);
	CHECK(!strcmp(prefetch, "7"));
	rabbit_publish_n(admin, q1, 1, 3);
	for (uint32_t i = 1; i <= 3; i++) {
		OK(salvo_consumer_get(get_cons, 5000, &m, &err));
		/* The unacked message of before the loss comes again first (requeued). */
		if (i == 1 && rabbit_body_seq(m) == 0) {
			CHECK(salvo_message_redelivered(m));
			OK(salvo_message_ack(m, false, &err));
			salvo_message_destroy(m);
			OK(salvo_consumer_get(get_cons, 5000, &m, &err));
		}
		CHECK(rabbit_body_seq(m) == i);
		OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
	}
	rabbit_publish_n(admin, q2, 7, 1);
	CHECK(salvo_consumer_dispatch(cb_cons, 5000, 0, &err) == 1);
	CHECK(atomic_load(&seen.n) == 1 && !strcmp(seen.last, "7"));
	rabbit_publish_n(admin, q2, 8, 1);
	CHECK(salvo_client_dispatch(c, 5000, 0, &err) == 1);
	CHECK(atomic_load(&seen.n) == 2 && !strcmp(seen.last, "8"));
	CHECK(!strcmp(salvo_consumer_tag(cb_cons), "salvo-topology-cb"));

	salvo_consumer_destroy(get_cons);
	salvo_consumer_destroy(cb_cons);
	salvo_consumer_destroy(once_cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_delete_queue(admin, q1);
	rabbit_delete_queue(admin, q2);
	rabbit_delete_queue(admin, q3);
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * A server-named exclusive queue, bound and consumed (with a callback): after recovery
 * SALVO_EVENT_QUEUE_RENAMED gives the old and new names, salvo_client_queue_name maps
 * the old name to the new one (and the new to itself), the old queue is gone, and a
 * message published through the binding reaches the same consumer: binding and consumer
 * followed the rename. A second loss renames it again; the first name still maps.
 */
static void case_server_named(void)
{
	char name[96], x[96], now[256], first[256];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = named_client("renamed", name, sizeof name, NULL, NULL);
	salvo_client *admin = rabbit_connect(uri, NULL);
	struct seen seen = {0};
	salvo_consumer_opts cb = {.on_message = on_message, .on_message_arg = &seen};
	const salvo_event *ev;
	salvo_consumer *cons;
	salvo_queue_info info;
	salvo_channel *ch;
	salvo_error err;
	size_t n;

	snprintf(x, sizeof x, "salvo.test.topology.renamed-x-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_declare(ch, x, "direct", SALVO_AUTO_DELETE, NULL, &err));
	OK(salvo_queue_declare(ch, "", SALVO_EXCLUSIVE, NULL, &info, &err));
	snprintf(first, sizeof first, "%s", info.name);
	OK(salvo_queue_bind(ch, info.name, x, "k", NULL, &err));
	OK(salvo_consume(ch, info.name, &cb, &cons, &err));
	/* Not renamed yet: its own name. */
	OK(salvo_client_queue_name(c, first, now, sizeof now));
	CHECK(!strcmp(now, first));

	for (int round = 1; round <= 2; round++) {
		char before[256], body[16];

		OK(salvo_client_queue_name(c, first, before, sizeof before));
		n = bounce(c, name, evs);
		ev = find_event(evs, n, SALVO_EVENT_QUEUE_RENAMED);
		CHECK(ev);
		printf("round %d: renamed %s -> %s\n", round, ev->name, ev->new_name);
		CHECK(ev->entity == SALVO_TOPOLOGY_QUEUE && !strcmp(ev->name, before) &&
		      strcmp(ev->new_name, before) && ev->new_name[0]);
		OK(salvo_client_queue_name(c, first, now, sizeof now));
		CHECK(!strcmp(now, ev->new_name));
		OK(salvo_client_queue_name(c, before, now, sizeof now));
		CHECK(!strcmp(now, ev->new_name));
		OK(salvo_client_queue_name(c, ev->new_name, now, sizeof now));
		CHECK(!strcmp(now, ev->new_name));
		CHECK(!queue_exists(admin, before) && queue_exists(admin, ev->new_name));
		snprintf(body, sizeof body, "round %d", round);
		publish_to(admin, x, "k", body);
		CHECK(salvo_consumer_dispatch(cons, 5000, 0, &err) == 1);
		CHECK(!strcmp(seen.last, body));
	}
	/* Too small a buffer, and NULLs, are refused. */
	CHECK(salvo_client_queue_name(c, first, now, 4) == SALVO_ERR_INVALID_ARGUMENT);
	CHECK(salvo_client_queue_name(c, NULL, now, sizeof now) == SALVO_ERR_INVALID_ARGUMENT);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * What is deleted is forgotten: a deleted queue, an unbound binding (the exchange stays),
 * and an auto-delete queue whose last consumer was cancelled are not made again; the
 * filter, counting what it is asked about, sees only the exchange and the queue kept.
 */
static void case_delete_forgets(void)
{
	struct order o = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char name[96], gone[96], ad[96], kept[96], x[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = filtered_client("forget", name, sizeof name, &o);
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_error err;
	size_t n;

	snprintf(gone, sizeof gone, "salvo.test.topology.gone-%d", (int)getpid());
	snprintf(ad, sizeof ad, "salvo.test.topology.autodel-%d", (int)getpid());
	snprintf(kept, sizeof kept, "salvo.test.topology.kept-%d", (int)getpid());
	snprintf(x, sizeof x, "salvo.test.topology.forget-x-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_declare(ch, x, "direct", 0, NULL, &err));
	OK(salvo_queue_declare(ch, gone, 0, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, gone, x, "g", NULL, &err));
	OK(salvo_queue_declare(ch, kept, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, kept, x, "k", NULL, &err));
	OK(salvo_queue_unbind(ch, kept, x, "k", NULL, &err));
	OK(salvo_queue_declare(ch, ad, SALVO_AUTO_DELETE, NULL, NULL, &err));
	OK(salvo_consume(ch, ad, NULL, &cons, &err));
	OK(salvo_consumer_cancel(cons, &err));
	salvo_consumer_destroy(cons);
	OK(salvo_queue_delete(ch, gone, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	CHECK(!queue_exists(admin, ad)); /* the broker deleted it with its consumer */

	n = bounce(c, name, evs);
	CHECK(evs[n - 1].attempt == 2);
	CHECK(o.n == 2);
	CHECK(o.kinds[0] == SALVO_TOPOLOGY_EXCHANGE && !strcmp(o.names[0], x));
	CHECK(o.kinds[1] == SALVO_TOPOLOGY_QUEUE && !strcmp(o.names[1], kept));
	CHECK(!queue_exists(admin, gone) && !queue_exists(admin, ad) && queue_exists(admin, kept));
	/* The binding is not back: an unroutable mandatory message comes back. */
	{
		salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
		salvo_publisher *p;

		OK(salvo_publisher_new(admin, &opts, &p, &err));
		CHECK(salvo_publish(p, x, "k", "x", 1, SALVO_MSG_MANDATORY, 5000, &err) ==
		      SALVO_ERR_RETURNED);
		OK(salvo_publisher_close(p, 5000, &err));
	}
	/* Deleting the exchange forgets it: a third loss makes only the queue again. */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_delete(ch, x, 0, &err));
	OK(salvo_channel_close(ch, &err));
	o.n = 0;
	n = bounce(c, name, evs);
	CHECK(evs[n - 1].attempt == 1 && o.n == 1 && o.kinds[0] == SALVO_TOPOLOGY_QUEUE);
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * The filter skips an entity: of two exclusive queues, the one it refuses is not made
 * again (gone after recovery), the other is; a consumer it refuses ends with
 * SALVO_ERR_CLOSED while the queue's other consumer goes on.
 */
static void case_filter(void)
{
	char name[96], skipped[96], made[96];
	struct order o = {.lock = PTHREAD_MUTEX_INITIALIZER};
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = filtered_client("filter", name, sizeof name, &o);
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_consumer_opts skip = {.tag = "salvo-topology-skipped"};
	salvo_consumer *keep_cons, *skip_cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	size_t n;
	int rc;

	snprintf(skipped, sizeof skipped, "salvo.test.topology.skipped-%d", (int)getpid());
	snprintf(made, sizeof made, "salvo.test.topology.made-%d", (int)getpid());
	o.skip = skipped;
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, skipped, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_declare(ch, made, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_consume(ch, made, NULL, &keep_cons, &err));
	OK(salvo_consume(ch, made, &skip, &skip_cons, &err));
	n = bounce(c, name, evs);
	/* The skipped queue skipped: 1 queue and 2 consumers made. */
	CHECK(evs[n - 1].attempt == 3);
	CHECK(!queue_exists(admin, skipped) && queue_exists(admin, made));
	rabbit_publish_n(admin, made, 1, 1);
	OK(salvo_consumer_get(keep_cons, 5000, &m, &err));
	CHECK(rabbit_body_seq(m) == 1);
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);

	/* Now skip a consumer by its tag on the next loss. The queue skipped before stayed
	 * recorded: made again this time. */
	pthread_mutex_lock(&o.lock);
	o.skip = "salvo-topology-skipped";
	pthread_mutex_unlock(&o.lock);
	n = bounce(c, name, evs);
	CHECK(evs[n - 1].attempt == 3); /* both queues and one consumer */
	CHECK(queue_exists(admin, skipped));
	rc = salvo_consumer_get(skip_cons, 2000, &m, &err);
	printf("skipped consumer: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && strstr(err.text, "not recovered"));
	rabbit_publish_n(admin, made, 2, 1);
	OK(salvo_consumer_get(keep_cons, 5000, &m, &err));
	CHECK(rabbit_body_seq(m) == 2);
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	salvo_consumer_destroy(skip_cons);
	salvo_consumer_destroy(keep_cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * The bound: with topology_recovery.max_entities 3, a fourth entity is refused before
 * anything is sent (SALVO_ERR_LIMIT, the key named; the broker never saw the queue);
 * declaring a recorded one again is not a new entity; a delete makes room.
 */
static void case_bound(void)
{
	char q[4][96], x[96];
	salvo_client *c = rabbit_connect(uri, "topology_recovery.max_entities", "3", NULL);
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_error err;
	int rc;

	for (int i = 0; i < 4; i++)
		snprintf(q[i], sizeof q[i], "salvo.test.topology.bound%d-%d", i, (int)getpid());
	snprintf(x, sizeof x, "salvo.test.topology.bound-x-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_exchange_declare(ch, x, "direct", SALVO_AUTO_DELETE, NULL, &err));
	OK(salvo_queue_declare(ch, q[0], SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, q[0], x, "k", NULL, &err));
	rc = salvo_queue_declare(ch, q[1], SALVO_EXCLUSIVE, NULL, NULL, &err);
	printf("fourth: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_LIMIT && strstr(err.text, "topology_recovery.max_entities"));
	CHECK(salvo_queue_bind(ch, q[0], x, "other", NULL, &err) == SALVO_ERR_LIMIT);
	CHECK(salvo_consume(ch, q[0], NULL, &cons, &err) == SALVO_ERR_LIMIT);
	/* Nothing was sent: the channel is fine and the queue does not exist. */
	CHECK(!queue_exists(c, q[1]));
	/* Passive declares and declaring a recorded entity again record nothing new. */
	OK(salvo_queue_declare(ch, q[0], SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, q[0], x, "k", NULL, &err));
	OK(salvo_queue_declare(ch, q[0], SALVO_PASSIVE, NULL, NULL, &err));
	/* A delete makes room (the queue and its binding: two). */
	OK(salvo_queue_delete(ch, q[0], 0, NULL, &err));
	OK(salvo_queue_declare(ch, q[2], SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_declare(ch, q[3], SALVO_EXCLUSIVE, NULL, NULL, &err));
	CHECK(salvo_queue_declare(ch, q[1], SALVO_EXCLUSIVE, NULL, NULL, &err) == SALVO_ERR_LIMIT);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 5000);
}

/*
 * A failed re-declaration is an event, and the rest still comes back: a durable queue
 * with x-message-ttl 60000, deleted while salvo is disconnected and declared again by
 * another client with x-message-ttl 1000. Salvo's declaration is refused (406): a
 * SALVO_EVENT_TOPOLOGY_FAILED names the queue and carries the broker's error; the queue
 * declared after it, its binding and a consumer of it are made again, and the client goes
 * on.
 */
static void case_failed_redeclare(void)
{
	char name[96], durable[96], after[96], x[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c =
	    named_client("failed", name, sizeof name, "reconnect.initial_delay", "1000");
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_table *ttl60 = salvo_table_new(), *ttl1 = salvo_table_new();
	const salvo_event *ev;
	salvo_consumer *cons;
	salvo_channel *ch, *ach;
	salvo_message *m;
	salvo_error err;
	uint64_t redeclared_ns;
	size_t n;

	CHECK(ttl60 && ttl1);
	OK(salvo_table_add_int(ttl60, "x-message-ttl", 60000));
	OK(salvo_table_add_int(ttl1, "x-message-ttl", 1000));
	snprintf(durable, sizeof durable, "salvo.test.topology.durable-%d", (int)getpid());
	snprintf(after, sizeof after, "salvo.test.topology.after-%d", (int)getpid());
	snprintf(x, sizeof x, "salvo.test.topology.failed-x-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, durable, 0, NULL, &err));
	OK(salvo_queue_declare(ch, durable, SALVO_DURABLE, ttl60, NULL, &err));
	OK(salvo_exchange_declare(ch, x, "direct", SALVO_AUTO_DELETE, NULL, &err));
	OK(salvo_queue_declare(ch, after, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_queue_bind(ch, after, x, "a", NULL, &err));
	OK(salvo_consume(ch, after, NULL, &cons, &err));

	close_connection(name, "test: topology");
	events_until(c, SALVO_EVENT_CONNECTION_LOST, evs, 10000);
	OK(salvo_channel_open(admin, &ach, &err));
	OK(salvo_queue_delete(ach, durable, 0, NULL, &err));
	OK(salvo_queue_declare(ach, durable, SALVO_DURABLE, ttl1, NULL, &err));
	OK(salvo_channel_close(ach, &err));
	redeclared_ns = (uint64_t)(now_s() * 1e9);
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 20000);
	CHECK(find_event(evs, n, SALVO_EVENT_RECONNECTED)->time_ns > redeclared_ns);
	ev = find_event(evs, n, SALVO_EVENT_TOPOLOGY_FAILED);
	CHECK(ev);
	printf("failed: %s: %s (%d)\n", ev->reason, ev->error.text, ev->error.status);
	CHECK(ev->entity == SALVO_TOPOLOGY_QUEUE && !strcmp(ev->name, durable));
	CHECK(ev->error.status == 406 && ev->error.kind == SALVO_ERROR_CHANNEL);
	/* The exchange, the exclusive queue, its binding and its consumer: 4. */
	CHECK(evs[n - 1].attempt == 4);
	publish_to(admin, x, "a", "still here");
	OK(salvo_consumer_get(cons, 5000, &m, &err));
	expect_body(m, "still here");
	OK(salvo_message_ack(m, false, &err));
	salvo_message_destroy(m);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_delete_queue(admin, durable);
	salvo_table_destroy(ttl60);
	salvo_table_destroy(ttl1);
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * topology_recovery=0 keeps the old behaviour: nothing is made again (no
 * TOPOLOGY_RECOVERED event; the exclusive queue stays gone), the consumer ends with the
 * connection, and the channel is closed.
 */
static void case_off(void)
{
	char name[96], q[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = named_client("off", name, sizeof name, "topology_recovery", "0");
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_message *m;
	salvo_error err;
	size_t n;
	int rc;

	snprintf(q, sizeof q, "salvo.test.topology.off-%d", (int)getpid());
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, q, SALVO_EXCLUSIVE, NULL, NULL, &err));
	OK(salvo_consume(ch, q, NULL, &cons, &err));
	close_connection(name, "test: topology");
	n = events_until(c, SALVO_EVENT_RECONNECTED, evs, 20000);
	rc = salvo_consumer_get(cons, 2000, &m, &err);
	printf("consumer: %d %s\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED || rc == 320);
	CHECK(salvo_queue_declare(ch, q, SALVO_PASSIVE, NULL, NULL, &err) != 0);
	/* Whatever came after RECONNECTED within a second: no recovery. */
	while (n < MAX_EVENTS && salvo_client_poll_event(c, &evs[n], 1000) == 0)
		n++;
	CHECK(!find_event(evs, n, SALVO_EVENT_TOPOLOGY_RECOVERED));
	CHECK(!queue_exists(admin, q));
	salvo_consumer_destroy(cons);
	salvo_channel_close(ch, NULL);
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/* A listener's setup hook: declares an exchange (on a channel of its own). */
static int listener_setup(salvo_client *c, void *arg, salvo_error *err)
{
	salvo_channel *ch;
	int rc = salvo_channel_open(c, &ch, err);

	if (rc)
		return rc;
	rc = salvo_exchange_declare(ch, arg, "fanout", SALVO_AUTO_DELETE, NULL, err);
	salvo_channel_close(ch, NULL);
	return rc;
}

static salvo_listener_action listener_ack(salvo_message *m, void *arg)
{
	(void)m;
	atomic_fetch_add((atomic_int *)arg, 1);
	return SALVO_LISTENER_ACK;
}

/*
 * What a listener makes (its setup hook's exchange, its declared queue, its consumer) is
 * not recorded: after the loss no recovery runs (nothing recorded: no
 * SALVO_EVENT_TOPOLOGY_RECOVERED), the listener makes its consumer again itself (one
 * restart) and receives what is published after.
 */
static void case_listener_not_recorded(void)
{
	char name[96], q[96], x[96];
	salvo_event evs[MAX_EVENTS];
	salvo_client *c = named_client("listener", name, sizeof name, NULL, NULL);
	salvo_client *admin = rabbit_connect(uri, NULL);
	salvo_listener_opts opts = {.declare = true,
				    .declare_flags = SALVO_AUTO_DELETE,
				    .setup = listener_setup,
				    .setup_arg = x};
	salvo_listener_stats st;
	salvo_listener *l;
	salvo_error err;
	atomic_int got = 0;
	double end;
	size_t n;

	snprintf(q, sizeof q, "salvo.test.topology.listener-%d", (int)getpid());
	snprintf(x, sizeof x, "salvo.test.topology.listener-x-%d", (int)getpid());
	OK(salvo_listener_new(c, q, listener_ack, &got, &opts, &l, &err));
	close_connection(name, "test: topology");
	n = events_until(c, SALVO_EVENT_RECONNECTED, evs, 20000);
	/* Every event until the listener has consumed again and a message published after
	 * has reached it, and for a second more, is kept for the check below. */
	for (end = now_s() + 10; now_s() < end;) {
		salvo_listener_get_stats(l, &st);
		if (st.restarts == 1)
			break;
		if (n < MAX_EVENTS && salvo_client_poll_event(c, &evs[n], 50) == 0)
			n++;
	}
	CHECK(st.restarts == 1);
	rabbit_publish_n(admin, q, 1, 1);
	for (end = now_s() + 5; now_s() < end && atomic_load(&got) < 1;)
		if (n < MAX_EVENTS && salvo_client_poll_event(c, &evs[n], 50) == 0)
			n++;
	CHECK(atomic_load(&got) == 1);
	while (n < MAX_EVENTS && salvo_client_poll_event(c, &evs[n], 1000) == 0)
		n++;
	CHECK(n < MAX_EVENTS && !find_event(evs, n, SALVO_EVENT_TOPOLOGY_RECOVERED));
	salvo_listener_destroy(l);
	rabbit_close(c, 5000);
	rabbit_close(admin, 5000);
}

/*
 * The window of a kept channel's reopening (reopen_broker.py holds the second
 * connection's first channel.open-ok for 1 s). A consumer on a channel of the
 * application's, the connection closed with 320 by the fake after consume-ok; after
 * RECONNECTED, once recovery's channel.open is on its way, the application acts on that
 * channel: "close" closes it, "destroy" destroys the consumer. Returns the fake's log
 * path (in log, size len) after the client is closed and the fake has exited 0.
 */
static void reopen_window(bool close_it, char *log, size_t len)
{
	char script[1024], port_path[256], u[128];
	unsigned port;
	int status;

	fake_script("reopen_broker.py", script, sizeof script);
	fake_paths(close_it ? "topology-close" : "topology-destroy", port_path, sizeof port_path,
		   log, len);
	char *argv[] = {"python3", script, port_path, "1.0", NULL};
	pid_t pid = fake_spawn(argv, port_path, log, &port);
	snprintf(u, sizeof u, "amqp://guest:guest@127.0.0.1:%u", port);
	salvo_client *c = rabbit_connect(u, "reconnect.initial_delay", "20", NULL);
	salvo_event evs[MAX_EVENTS];
	salvo_consumer *cons;
	salvo_channel *ch, *ch2;
	salvo_error err;
	size_t n;

	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_consume(ch, "q", NULL, &cons, &err));
	events_until(c, SALVO_EVENT_RECONNECTED, evs, 10000);
	/* Recovery's channel.open goes out as soon as its thread starts; the fake holds its
	 * open-ok for 1 s. */
	nanosleep(&(struct timespec){0, 300 * 1000000}, NULL);
	if (close_it) {
		OK(salvo_channel_close(ch, &err));
		/* The number is not given to another channel while its open is on its way. */
		OK(salvo_channel_open(c, &ch2, &err));
		OK(salvo_basic_qos(ch2, 0, 5, false, &err));
		salvo_consumer_destroy(cons);
	} else {
		salvo_consumer_destroy(cons);
		OK(salvo_channel_open(c, &ch2, &err));
	}
	n = events_until(c, SALVO_EVENT_TOPOLOGY_RECOVERED, evs, 10000);
	CHECK(!find_event(evs, n, SALVO_EVENT_CONNECTION_LOST));
	CHECK(!find_event(evs, n, SALVO_EVENT_GIVING_UP));
	OK(salvo_basic_qos(ch2, 0, 7, false, &err)); /* the connection is well */
	OK(salvo_channel_close(ch2, &err));
	if (!close_it)
		OK(salvo_channel_close(ch, &err));
	CHECK(salvo_client_reconnects(c) == 1);
	rabbit_close(c, 5000);
	CHECK(waitpid(pid, &status, 0) == pid);
	fprintf(stderr, "fake broker's log in %s\n", log);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Closed while its reopening is on its way: the close goes after the open, recovery sends
 * nothing more on it (no basic.consume), its number is not reused before close-ok, and
 * the client goes on. */
static void case_close_during_reopen(void)
{
	char log[256];
	int open1, close1;

	reopen_window(true, log, sizeof log);
	open1 = fake_log_find(log, "conn 2 ch 1 channel.open ", 1);
	close1 = fake_log_find(log, "conn 2 ch 1 channel.close ", 1);
	CHECK(open1 && close1 > open1);
	CHECK(!fake_log_find(log, "conn 2 ch 1 basic.consume amq.ctag-1", 1));
	/* Channel 1 opened again only after its close. */
	CHECK(!fake_log_find(log, "conn 2 ch 1 channel.open ", open1 + 1) ||
	      fake_log_find(log, "conn 2 ch 1 channel.open ", open1 + 1) > close1);
	unlink(log);
}

/* The consumer destroyed while its channel's reopening is on its way: its cancel goes
 * first (answered), recovery may still make it again, and then salvo cancels that one too:
 * the last word to the broker on its tag is a cancel. */
static void case_destroy_during_reopen(void)
{
	char log[256];
	int consume, cancel;

	reopen_window(false, log, sizeof log);
	consume = fake_log_find(log, "conn 2 ch 1 basic.consume amq.ctag-1", 1);
	cancel = fake_log_find(log, "conn 2 ch 1 method 60.30 amq.ctag-1" /* basic.cancel */, consume + 1);
	printf("re-made consume at log line %d, a cancel after it at %d\n", consume, cancel);
	CHECK(!consume || cancel > consume);
	unlink(log);
}

static const struct test_case cases[] = {
    {"exclusive", .run = case_exclusive},
    {"exchange chain", .run = case_exchange_chain},
    {"consumer survives", .run = case_consumer_survives},
    {"server-named", .run = case_server_named},
    {"delete forgets", .run = case_delete_forgets},
    {"filter", .run = case_filter},
    {"bound", .run = case_bound},
    {"failed redeclare", .run = case_failed_redeclare},
    {"off", .run = case_off},
    {"listener not recorded", .run = case_listener_not_recorded},
    {"close during reopen", .run = case_close_during_reopen},
    {"destroy during reopen", .run = case_destroy_during_reopen},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uri = getenv("SALVO_TEST_URI");
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
