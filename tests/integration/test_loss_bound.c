/* SPDX-License-Identifier: MIT */
/*
 * Best effort's loss bound against the real RabbitMQ, on every path a loss can take: four
 * best-effort publishers, and `rabbitmqctl close_all_connections` landing while they
 * publish, while they flush, while they close, and again while the client reconnects.
 * The queue's count is the truth: published - queued = lost, and salvo_pub_stats'
 * possibly_lost (summed over the client's publishers, closed ones included) must be at
 * least that.
 * "publishing batched" does it with batching publishers (envelopes of up to 100 records):
 * published and possibly_lost count records, and the truth is the records the queued
 * envelopes hold.
 *   test_loss_bound CASE     CASE: publishing | flushing | closing | reconnecting |
 *                            publishing batched
 * Needs SALVO_TEST_URI and SALVO_SOURCE_ROOT (for scripts/rabbitmq.sh ctl).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../rabbit.h"

enum { PRODUCERS = 4 };

enum phase { PUBLISHING, FLUSHING, CLOSING, RECONNECTING };

struct run {
	enum phase phase;
	salvo_client *c;
	const char *queue;
	uint64_t per_producer;
	int persistent;
	size_t batch; /* records per envelope; 0: no batching */
	_Atomic int trigger; /* the phase has begun: the killer goes */
	_Atomic int killed;
	int close_rc[PRODUCERS];
	char close_err[PRODUCERS][256];
};

struct producer {
	struct run *r;
	int idx;
	salvo_publisher *p;
};

static char conn_name[64]; /* the publishers' connection: "salvo loss-bound CASE PID" */

/* rabbitmqctl close_connection for the publishers' connection only (other tests may be
 * using the broker). */
static void close_all(void)
{
	close_connection(conn_name, "salvo loss-bound test");
}

static void *killer(void *arg)
{
	struct run *r = arg;
	salvo_event ev;

	while (!atomic_load(&r->trigger))
		usleep(1000);
	close_all();
	atomic_store(&r->killed, 1);
	if (r->phase == RECONNECTING) {
		/* Again, once the client is back: while publishers resume on the new connection. */
		for (;;) {
			CHECK(salvo_client_poll_event(r->c, &ev, 30000) == 0);
			if (ev.kind == SALVO_EVENT_RECONNECTED)
				break;
		}
		close_all();
		atomic_store(&r->killed, 2);
	}
	return NULL;
}

static void *produce(void *arg)
{
	struct producer *pr = arg;
	struct run *r = pr->r;
	char body[100];
	salvo_error err;
	int rc;

	memset(body, 'a' + pr->idx, sizeof body);
	for (uint64_t i = 0; i < r->per_producer; i++) {
		if (i == r->per_producer / 4 && pr->idx == 0 &&
		    (r->phase == PUBLISHING || r->phase == RECONNECTING))
			atomic_store(&r->trigger, 1);
		rc = salvo_publish(pr->p, "", r->queue, body, sizeof body,
				   r->persistent ? SALVO_MSG_PERSISTENT : 0, 60000, &err);
		/* Best effort: publish fails only with an error that ended the channel. */
		if (rc) {
			fprintf(stderr, "producer %d: publish %llu: %d %s\n", pr->idx,
				(unsigned long long)i, rc, err.text);
			CHECK(0);
		}
	}
	if (r->phase == FLUSHING)
		atomic_store(&r->trigger, 1);
	rc = salvo_publisher_flush(pr->p, 120000, &err);
	if (rc)
		printf("producer %d: flush: %d %s\n", pr->idx, rc, err.text);
	if (r->phase == CLOSING)
		atomic_store(&r->trigger, 1);
	r->close_rc[pr->idx] = salvo_publisher_close(pr->p, 120000, &err);
	snprintf(r->close_err[pr->idx], sizeof r->close_err[0], "%s",
		 r->close_rc[pr->idx] ? err.text : "");
	return NULL;
}

/* Drain q with basic.get, summing the records of its envelopes (x-salvo-records). */
static uint64_t queued_records(salvo_channel *ch, const char *q)
{
	uint64_t records = 0;
	salvo_message *m;
	salvo_error err;

	for (;;) {
		salvo_table_iter it;
		salvo_field f;
		uint64_t n = 0;

		OK(salvo_basic_get(ch, q, true, &m, &err));
		if (!m)
			return records;
		salvo_table_iter_init(&it, salvo_message_props(m)->headers);
		while (salvo_table_next(&it, &f) == 1)
			if (strcmp(f.key, "x-salvo-records") == 0 && f.type == SALVO_FIELD_I32)
				n = (uint64_t)f.v.i32;
		CHECK(n > 0);
		records += n;
		salvo_message_destroy(m);
	}
}

static void run_phase(enum phase phase, uint64_t per_producer, int persistent, size_t batch)
{
	static const char *const names[] = {"publishing", "flushing", "closing", "reconnecting"};
	struct run r = {.phase = phase, .per_producer = per_producer, .persistent = persistent,
			.batch = batch};
	salvo_publisher_opts opts = {.batch = {.max_records = batch}};
	struct producer pr[PRODUCERS];
	pthread_t t[PRODUCERS], k;
	salvo_channel *ch;
	salvo_client *counter;
	salvo_pub_stats st;
	salvo_error err;
	char queue[64];

	snprintf(queue, sizeof queue, "salvo.test.loss.%s%s", names[phase], batch ? ".batched" : "");
	r.queue = queue;
	/* The queue is counted on a connection of its own, which the kills also end. */
	snprintf(conn_name, sizeof conn_name, "salvo loss-bound %s%s %d", names[phase],
		 batch ? " batched" : "", (int)getpid());
	r.c = rabbit_connect(rabbit_test_uri(), "connection_name", conn_name,
			     "reconnect.initial_delay", "50", "publisher.ring_size", "16777216",
			     NULL);
	OK(salvo_channel_open(r.c, &ch, &err));
	OK(salvo_queue_delete(ch, queue, 0, NULL, &err));
	OK(salvo_queue_declare(ch, queue, persistent ? SALVO_DURABLE : 0, NULL, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	for (int i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){.r = &r, .idx = i};
		OK(salvo_publisher_new(r.c, &opts, &pr[i].p, &err));
	}
	CHECK(pthread_create(&k, NULL, killer, &r) == 0);
	for (int i = 0; i < PRODUCERS; i++)
		CHECK(pthread_create(&t[i], NULL, produce, &pr[i]) == 0);
	for (int i = 0; i < PRODUCERS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	CHECK(pthread_join(k, NULL) == 0);
	salvo_client_stats(r.c, &st);
	for (int i = 0; i < PRODUCERS; i++)
		printf("publisher %d close: %d %s\n", i, r.close_rc[i], r.close_err[i]);

	/* The truth, once the broker has taken in what it will. */
	counter = rabbit_connect(rabbit_test_uri(), NULL);
	OK(salvo_channel_open(counter, &ch, &err));
	uint64_t queued = settled_queue_count(ch, queue, 5, 200);
	if (batch)
		queued = queued_records(ch, queue);
	uint64_t lost = st.published > queued ? st.published - queued : 0;
	printf("%s%s: kills %d, published %llu, queued %llu, lost %llu, possibly_lost %llu, "
	       "reconnects %llu, envelopes %llu\n",
	       names[phase], batch ? " batched" : "", atomic_load(&r.killed),
	       (unsigned long long)st.published, (unsigned long long)queued,
	       (unsigned long long)lost, (unsigned long long)st.possibly_lost,
	       (unsigned long long)salvo_client_reconnects(r.c),
	       (unsigned long long)st.envelopes);
	CHECK(st.published == PRODUCERS * per_producer);
	CHECK(!batch || (st.envelopes >= st.published / batch && st.envelopes < st.published / 2));
	CHECK(lost <= st.possibly_lost);
	OK(salvo_queue_delete(ch, queue, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	rabbit_close(counter, 5000);
	salvo_client_close(r.c, 5000, NULL);
	salvo_client_destroy(r.c);
}

static void case_publishing(void)
{
	run_phase(PUBLISHING, 250000, 0, 0);
}

static void case_flushing(void)
{
	run_phase(FLUSHING, 150000, 0, 0);
}

static void case_closing(void)
{
	run_phase(CLOSING, 100000, 1, 0);
}

static void case_reconnecting(void)
{
	run_phase(RECONNECTING, 250000, 0, 0);
}

static void case_publishing_batched(void)
{
	run_phase(PUBLISHING, 250000, 0, 100);
}

static const struct test_case cases[] = {
	{"publishing", .run = case_publishing},
	{"flushing", .run = case_flushing},
	{"closing", .run = case_closing},
	{"reconnecting", .run = case_reconnecting},
	{"publishing batched", .run = case_publishing_batched},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
