/* SPDX-License-Identifier: MIT */
/*
 * A node of the three-node cluster (scripts/rabbitmq.sh cluster) killed with kill -9 under
 * load, through the public API only:
 *
 *   quorum publisher   an async-confirm publisher connected to the node that is killed,
 *                      sending persistent messages numbered 0.. to a fresh quorum queue
 *                      at about 10,000 a second; the node is killed after 2 s. Every
 *                      message must end acked (none nacked or failed); a consumer on
 *                      another node then finds every number in the queue, with at most as
 *                      many duplicates as the publisher resent.
 *   quorum consumer    a listener connected to the node that is killed, reading the quorum
 *                      queue while a publisher on another node publishes; after the kill it
 *                      consumes again on another node and every number arrives at least
 *                      once; the queue ends empty.
 *   stream publisher   the publisher case against a stream (x-queue-type stream), read
 *                      back from its first offset.
 *   stream consumer    the consumer case against a stream: the listener resumes on another
 *                      node past the last offset it handed out, repeating nothing.
 *
 * Each case prints a timeline, one line per 250 ms (acked and consumed so far and in the
 * slot, the client's state and endpoint), and a summary line; the recovery time is from
 * the kill to the end of the first 250 ms slot after it with at least half the rate before
 * it (acks for the publisher cases, deliveries for the consumer case). It is printed, and
 * must come within the case's time (a bound far above the figure, not a speed target).
 * Each case restarts the node it killed and waits for it, so the next finds three nodes.
 *
 * Failover quickly: reconnect.initial_delay 50 ms and reconnect.max_delay 500 ms (the
 * first attempt 50 ms after the loss, with jitter), heartbeat 2 s and connection_timeout
 * 2000 ms (a kill -9 closes the node's sockets, so the loss is seen at once and a dead
 * node's port refuses at once on loopback; these bound the rarer cases).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../rabbit.h"
#include "cluster.h"

#define RATE	   10000 /* messages a second */
#define KILL_AFTER 2.0	 /* seconds of publishing before the kill */
#define RUN_AFTER  4.0	 /* seconds of publishing after the rate is back */
#define GIVE_UP	   150.0 /* seconds after the kill without the rate back: fail */
#define SLOT	   0.25	 /* seconds per timeline line */
#define MAX_SLOTS  1024
#define MAX_MSGS   ((uint64_t)(RATE * (KILL_AFTER + GIVE_UP + RUN_AFTER + 2)))
#define BODY	   64

/* A client of every node, node first, with the failover settings above. */
#define FAILOVER_CLIENT(node, name)                                                                \
	cluster_client(node, name, "reconnect.initial_delay", "50", "reconnect.max_delay", "500",  \
		       "heartbeat", "2", "connection_timeout", "2000", NULL)

/* What the timeline watches, sampled every SLOT by the monitor thread. */
struct run {
	salvo_client *watch;	   /* whose state and endpoint the timeline shows */
	salvo_publisher *pub;	   /* acks counted from its statistics (NULL: none) */
	_Atomic uint64_t consumed; /* deliveries, duplicates included */
	double t0;
	_Atomic double kill_at; /* seconds after t0; 0 until the kill */
	/* Recovery measured on deliveries (consumer), on outcomes of any kind (acked or
	 * nacked: a publisher whose channel the broker nacks), or on acks (the default). */
	enum { BY_ACKED, BY_CONSUMED, BY_OUTCOMES } by;
	/* Publish this many seconds after the kill whatever the rate (0: until RUN_AFTER
	 * seconds after it is back): for a rate the broker sets, not salvo. */
	double run_after_kill;
	uint64_t acked[MAX_SLOTS], got[MAX_SLOTS], nacked[MAX_SLOTS], outcomes[MAX_SLOTS];
	_Atomic int slots;
	_Atomic double recovered; /* seconds from the kill; 0 until then */
	atomic_bool stop;
	pthread_t thread;
};

static double since(const struct run *r)
{
	return now_s() - r->t0;
}

/* The mean per slot of the slots wholly between 0.5 s and the kill (the first ones ramp). */
static double pre_kill_rate(const uint64_t *v, int n, double kill_at)
{
	double sum = 0;
	int k = 0;

	for (int i = 1; i < n && (i + 1) * SLOT <= kill_at; i++)
		if (i * SLOT >= 0.5) {
			sum += (double)(v[i] - v[i - 1]);
			k++;
		}
	return k ? sum / k : 0;
}

static void *monitor(void *arg)
{
	struct run *r = arg;
	struct timespec nap = {0, 5 * 1000000};

	while (!atomic_load(&r->stop)) {
		int i = atomic_load(&r->slots);
		double kill_at = atomic_load(&r->kill_at);
		char state[32], endpoint[300];
		salvo_pub_stats st = {0};
		uint64_t *v;

		if (since(r) < (i + 1) * SLOT) {
			nanosleep(&nap, NULL);
			continue;
		}
		if (i >= MAX_SLOTS)
			break;
		if (r->pub)
			salvo_publisher_stats(r->pub, &st);
		r->acked[i] = st.acked;
		r->nacked[i] = st.nacked + st.failed;
		r->outcomes[i] = r->acked[i] + r->nacked[i];
		r->got[i] = atomic_load(&r->consumed);
		cluster_client_state(r->watch, state, sizeof state, endpoint, sizeof endpoint);
		printf(
		    "  %6.2f s  acked %8llu (+%5llu)  nacked+failed %llu  consumed %8llu (+%5llu)  "
		    "%-10s %s%s\n",
		    (i + 1) * SLOT, (unsigned long long)r->acked[i],
		    (unsigned long long)(r->acked[i] - (i ? r->acked[i - 1] : 0)),
		    (unsigned long long)r->nacked[i], (unsigned long long)r->got[i],
		    (unsigned long long)(r->got[i] - (i ? r->got[i - 1] : 0)), state, endpoint,
		    kill_at > 0 && kill_at > i * SLOT && kill_at <= (i + 1) * SLOT ? "  <- kill"
										   : "");
		fflush(stdout);
		atomic_store(&r->slots, i + 1);
		v = r->by == BY_CONSUMED ? r->got : r->by == BY_OUTCOMES ? r->outcomes : r->acked;
		if (kill_at > 0 && atomic_load(&r->recovered) == 0 && i * SLOT >= kill_at &&
		    (double)(v[i] - v[i - 1]) >= pre_kill_rate(v, i, kill_at) / 2 &&
		    pre_kill_rate(v, i, kill_at) > 0)
			atomic_store(&r->recovered, (i + 1) * SLOT - kill_at);
	}
	return NULL;
}

static void run_start(struct run *r)
{
	r->t0 = now_s();
	CHECK(pthread_create(&r->thread, NULL, monitor, r) == 0);
}

static void run_end(struct run *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
}

/* Every node running before a case: a node an earlier failed case left down is restarted. */
static int cluster_ready(void)
{
	char status[4096];

	if (cluster_script("status", 0, status, sizeof status) != 0) {
		for (int i = 1; i <= cluster_n; i++) {
			char line[64];

			snprintf(line, sizeof line, "node=%d ", i);
			const char *at = strstr(status, line);
			if (at && strstr(at, " stopped") &&
			    strstr(at, " stopped") < strchr(at, '\n'))
				CHECK(cluster_script("restart", i, NULL, 0) == 0);
		}
		CHECK(cluster_script("status", 0, NULL, 0) == 0);
	}
	return 0;
}

static void *killer(void *arg)
{
	int node = *(int *)arg;

	CHECK(cluster_script("kill", node, NULL, 0) == 0);
	return NULL;
}

/*
 * A durable queue of type type (quorum, stream) declared on c, named prefix.PID in name:
 * a quorum queue declared again just after its deletion may meet the broker's 541 while
 * the old one's replicas are still going, so each run takes a name of its own.
 */
static void typed_queue(salvo_client *c, char *q, size_t size, const char *prefix, const char *type)
{
	salvo_table *args = salvo_table_new();
	salvo_channel *ch;
	salvo_error err;

	snprintf(q, size, "%s.%ld", prefix, (long)getpid());
	CHECK(args && salvo_table_add_string(args, "x-queue-type", type) == 0);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, q, SALVO_DURABLE, args, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
}

/* The client's events so far: CHECKs that it lost its connection and reconnected to a node
 * other than `gone`; prints each. */
static void check_failover(salvo_client *c, int gone)
{
	salvo_event ev;
	int lost = 0, back = 0;

	while (salvo_client_poll_event(c, &ev, 0) == 0) {
		if (ev.kind == SALVO_EVENT_CONNECTION_LOST) {
			lost++;
			printf("  event: connection lost: %s\n", ev.error.text);
		} else if (ev.kind == SALVO_EVENT_RECONNECTING) {
			printf("  event: reconnecting, attempt %u in %u ms\n", ev.attempt,
			       ev.delay_ms);
		} else if (ev.kind == SALVO_EVENT_RECONNECTED) {
			printf("  event: reconnected to %s (attempt %u)\n", ev.endpoint,
			       ev.attempt);
			CHECK(strcmp(ev.endpoint, cluster_endpoint(gone)) != 0);
			back++;
		} else {
			printf("  event %d\n", (int)ev.kind);
		}
	}
	CHECK(lost >= 1 && back >= 1);
}

/* The client is connected to node i. */
static void check_connected_to(salvo_client *c, int i)
{
	char state[32], endpoint[300];

	cluster_client_state(c, state, sizeof state, endpoint, sizeof endpoint);
	printf("connected to %s (%s), node %d\n", endpoint, state, i);
	CHECK(strcmp(state, "open") == 0 && strcmp(endpoint, cluster_endpoint(i)) == 0);
}

/* Each message's outcome by its number (the opaque pointer): 1 acked, 2 nacked, 3 other. */
static uint8_t *outcome_of;

static void on_outcome(const salvo_outcome *o, void *arg)
{
	uintptr_t seq = (uintptr_t)o->opaque;

	(void)arg;
	CHECK(seq < MAX_MSGS && outcome_of[seq] == 0);
	outcome_of[seq] = o->kind == SALVO_OUTCOME_ACKED    ? 1
			  : o->kind == SALVO_OUTCOME_NACKED ? 2
							    : 3;
}

static void body_of(uint8_t *b, uint64_t seq)
{
	memset(b, 'x', BODY);
	for (int k = 0; k < 8; k++)
		b[k] = (uint8_t)(seq >> (56 - 8 * k));
}

static uint64_t seq_of(const salvo_message *m)
{
	size_t len;
	const uint8_t *b = salvo_message_body(m, &len);
	uint64_t seq = 0;

	CHECK(len == BODY);
	for (int k = 0; k < 8; k++)
		seq = seq << 8 | b[k];
	return seq;
}

/*
 * Publish persistent numbered messages to q at RATE on p, killing node victim (from another
 * thread, so the pace goes on) KILL_AFTER seconds in, until RUN_AFTER seconds after the
 * rate is back (or GIVE_UP seconds after the kill, or r->run_after_kill seconds after it
 * when set); then wait for every confirm. The pace
 * never catches up more than 100 ms behind: after an outage it goes on at RATE.
 */
static uint64_t publish_through_kill(struct run *r, salvo_publisher *p, const char *q, int victim)
{
	uint8_t body[BODY];
	pthread_t kt;
	bool killed = false;
	double base = 0;
	uint64_t n = 0;
	salvo_error err;
	struct timespec nap = {0, 1000000};

	for (;;) {
		double t = since(r), kill_at = atomic_load(&r->kill_at),
		       rec = atomic_load(&r->recovered);

		if (!killed && t >= KILL_AFTER) {
			/* Just before the script runs: the recovery time is not understated. */
			atomic_store(&r->kill_at, t);
			CHECK(pthread_create(&kt, NULL, killer, &victim) == 0);
			killed = true;
		}
		if (killed && rec > 0 && t >= kill_at + rec + RUN_AFTER)
			break;
		if (killed && r->run_after_kill > 0 && t >= kill_at + r->run_after_kill)
			break;
		if (killed && t >= kill_at + GIVE_UP)
			break;
		if ((double)n >= (t - base) * RATE) {
			nanosleep(&nap, NULL);
			continue;
		}
		if ((t - base) * RATE - (double)n > RATE / 10)
			base = t - ((double)n + RATE / 10) / RATE;
		CHECK(n < MAX_MSGS);
		body_of(body, n);
		salvo_msg m = {.exchange = "",
			       .routing_key = q,
			       .body = body,
			       .len = BODY,
			       .flags = SALVO_MSG_PERSISTENT,
			       .opaque = (void *)(uintptr_t)n};
		OK(salvo_publish_msg(p, &m, 120000, NULL, &err));
		n++;
	}
	pthread_join(kt, NULL);
	/* The outcomes' counts are checked by the caller. */
	if (salvo_publisher_wait_confirms(p, 120000, &err))
		printf("wait_confirms: %s\n", err.text);
	return n;
}

/*
 * Read q on c from the start (streams: x-stream-offset first) until every number of the n
 * whose outcome was acked (outcome_of) has come and then nothing more for 2 s, or nothing
 * at all for a minute; counts[seq] gets how often each came (numbers past n too, below
 * MAX_MSGS). Returns the messages read.
 */
static uint64_t read_back(salvo_client *c, const char *q, bool stream, uint64_t n, uint32_t *counts)
{
	salvo_consumer_opts co = {0};
	salvo_table *args = NULL;
	salvo_channel *ch;
	salvo_consumer *cons;
	salvo_message *m;
	salvo_error err;
	uint64_t got = 0, acked = 0, acked_seen = 0;
	double last = now_s();

	for (uint64_t i = 0; i < n; i++)
		acked += outcome_of[i] == 1;
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_basic_qos(ch, 0, 1000, false, &err));
	if (stream) {
		args = salvo_table_new();
		CHECK(args && salvo_table_add_string(args, "x-stream-offset", "first") == 0);
		co.arguments = args;
	}
	OK(salvo_consume(ch, q, &co, &cons, &err));
	for (;;) {
		int rc = salvo_consumer_get(cons, 250, &m, &err);

		if (rc == SALVO_ERR_TIMEOUT) {
			if (acked_seen == acked && now_s() - last >= 2)
				break;
			if (now_s() - last >= 60)
				break;
			continue;
		}
		OK(rc);
		uint64_t seq = seq_of(m);
		CHECK(seq < MAX_MSGS);
		acked_seen += counts[seq]++ == 0 && outcome_of[seq] == 1;
		got++;
		last = now_s();
		OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
	}
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	salvo_table_destroy(args);
	return got;
}

static double recovery_or_fail(struct run *r)
{
	double rec = atomic_load(&r->recovered);

	if (rec == 0)
		printf("the rate was not back within %.0f s of the kill\n", GIVE_UP);
	CHECK(rec > 0);
	return rec;
}

/*
 * After a failover with the leader's node gone, a leader-on-victim publisher's channel is
 * nacked; a new channel on the same connection, once a leader is elected, is acked: 1,000
 * messages on a new publisher, every one acked (within a minute of tries: the election).
 */
static void check_new_channel_acked(salvo_client *c, const char *q, uint64_t n)
{
	uint8_t body[BODY];
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	double t0 = now_s();

	for (;;) {
		OK(salvo_publisher_new(c, &opts, &p, &err));
		/* Numbered after the case's own messages, which read_back then also takes. */
		for (uint64_t i = 0; i < 1000; i++) {
			body_of(body, n + i);
			OK(salvo_publish(p, "", q, body, BODY, SALVO_MSG_PERSISTENT, 30000, &err));
		}
		(void)salvo_publisher_wait_confirms(p, 60000, &err);
		salvo_publisher_stats(p, &st);
		OK(salvo_publisher_close(p, 10000, &err));
		printf("a new channel %.1f s after the kill's outcomes: %llu acked, %llu nacked\n",
		       now_s() - t0, (unsigned long long)st.acked, (unsigned long long)st.nacked);
		if (st.acked == 1000 || now_s() - t0 > 60)
			break;
	}
	CHECK(st.acked == 1000);
}

/*
 * The publisher cases: queue type type, the publisher connected to node 2, node 2 killed,
 * the queue read back on node 3. The queue is declared on node 1 (its leader there), or,
 * with leader_dies, on node 2 (its leader dies with the publisher's connection).
 *
 * leader_dies: RabbitMQ 3.10.8 nacks every publish of a channel opened while the quorum
 * queue's leader is down, for the channel's whole life (the same with a fresh connection
 * of salvo-publish or of rabbitmq-c, not only salvo's reconnection), and salvo reconnects
 * within ~50 ms, before the election. So that case checks what salvo owes then: every
 * message gets an outcome (acked or nacked, none failed or stuck), every acked one is in
 * the queue, and a new channel is acked; the recovery of the outcomes' rate is printed
 * (the broker's nacks set it), not required.
 */
static void publisher_case(const char *prefix, const char *type, bool leader_dies)
{
	char q[256], line[1024];
	const int victim = 2, reader = 3, leader = leader_dies ? victim : 1;
	salvo_publisher_opts opts = {
	    .confirm = SALVO_CONFIRM_ASYNC, .window = 4096, .on_outcome = on_outcome};
	/* With the leader gone the outcomes come at the pace of the broker's nacks (about
	 * 1,500 a second here, against 10,000 published), so that case publishes a fixed 8 s
	 * after the kill and prints the rate's recovery without requiring it. */
	struct run r = {.by = leader_dies ? BY_OUTCOMES : BY_ACKED,
			.run_after_kill = leader_dies ? 8 : 0};
	salvo_client *c, *dc, *rc;
	salvo_publisher *p;
	salvo_pub_stats st;
	salvo_error err;
	uint32_t *counts = calloc(MAX_MSGS, sizeof *counts);
	uint64_t n, got, missing = 0, dups = 0, queued = 0, acked = 0, nacked = 0, other = 0;
	bool stream = strcmp(type, "stream") == 0;
	double rec;

	outcome_of = calloc(MAX_MSGS, 1);
	CHECK(counts && outcome_of);
	cluster_ready();
	dc = FAILOVER_CLIENT(leader, "node-loss declare");
	typed_queue(dc, q, sizeof q, prefix, type);
	rabbit_close(dc, 10000);
	cluster_queue_line(1, q, line, sizeof line);
	printf("queue declared on node %d: %s", leader, line);
	c = FAILOVER_CLIENT(victim, "node-loss publisher");
	check_connected_to(c, victim);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	r.watch = c;
	r.pub = p;
	run_start(&r);
	n = publish_through_kill(&r, p, q, victim);
	run_end(&r);
	rec = atomic_load(&r.recovered);
	salvo_publisher_stats(p, &st);
	for (uint64_t i = 0; i < n; i++) {
		acked += outcome_of[i] == 1;
		nacked += outcome_of[i] == 2;
		other += outcome_of[i] != 1 && outcome_of[i] != 2;
	}
	printf("publisher: published %llu acked %llu nacked %llu failed %llu resent %llu, "
	       "reconnects %llu; outcomes by number: %llu acked, %llu nacked, %llu other\n",
	       (unsigned long long)st.published, (unsigned long long)st.acked,
	       (unsigned long long)st.nacked, (unsigned long long)st.failed,
	       (unsigned long long)st.resent, (unsigned long long)salvo_client_reconnects(c),
	       (unsigned long long)acked, (unsigned long long)nacked, (unsigned long long)other);
	check_failover(c, victim);
	CHECK(st.published == n && st.failed == 0 && st.in_flight == 0);
	CHECK(st.acked == acked && st.nacked == nacked && other == 0);
	if (!leader_dies)
		CHECK(st.acked == n && st.nacked == 0);
	OK(salvo_publisher_close(p, 10000, &err));
	if (leader_dies)
		check_new_channel_acked(c, q, n);

	rc = FAILOVER_CLIENT(reader, "node-loss reader");
	check_connected_to(rc, reader);
	if (!stream && !leader_dies) {
		salvo_channel *ch;

		OK(salvo_channel_open(rc, &ch, &err));
		queued = settled_queue_count(ch, q, 3, 300);
		OK(salvo_channel_close(ch, &err));
	}
	got = read_back(rc, q, stream, n, counts);
	for (uint64_t i = 0; i < n; i++) {
		missing += counts[i] == 0 && outcome_of[i] == 1;
		dups += counts[i] > 1 ? counts[i] - 1 : 0;
	}
	printf("summary: published %llu acked %llu nacked %llu consumed %llu missing %llu "
	       "duplicates %llu (resent %llu) recovery %.2f s%s\n",
	       (unsigned long long)n, (unsigned long long)st.acked, (unsigned long long)st.nacked,
	       (unsigned long long)got, (unsigned long long)missing, (unsigned long long)dups,
	       (unsigned long long)st.resent, rec, leader_dies ? " (of outcomes)" : "");
	CHECK(missing == 0);
	CHECK(dups <= st.resent);
	if (queued)
		CHECK(got == queued);
	if (!leader_dies)
		recovery_or_fail(&r);
	rabbit_delete_queue(rc, q);
	rabbit_close(rc, 10000);
	rabbit_close(c, 10000);
	free(counts);
	free(outcome_of);
	CHECK(cluster_script("restart", victim, NULL, 0) == 0);
}

static void case_quorum_publisher(void)
{
	publisher_case("salvo.test.cluster.quorum.pub", "quorum", false);
}

static void case_quorum_publisher_leader(void)
{
	publisher_case("salvo.test.cluster.quorum.leader", "quorum", true);
}

static void case_stream_publisher(void)
{
	publisher_case("salvo.test.cluster.stream.pub", "stream", false);
}

/* The listener's side of the consumer case: each number counted, each message acked. */
struct listened {
	struct run *run;
	uint32_t *counts;
	uint64_t n;
	_Atomic uint64_t distinct;
};

static salvo_listener_action on_message(salvo_message *m, void *arg)
{
	struct listened *l = arg;
	uint64_t seq = seq_of(m);

	CHECK(seq < l->n);
	if (l->counts[seq]++ == 0)
		atomic_fetch_add(&l->distinct, 1);
	atomic_fetch_add(&l->run->consumed, 1);
	return SALVO_LISTENER_ACK;
}

/*
 * The consumer cases: a listener on node 3 (killed), a publisher on node 1 (the queue's
 * leader there too); every number consumed at least once. A quorum queue ends empty; on a
 * stream the listener resumes past the last offset it handed out (consuming from the
 * first offset at the start), so it repeats nothing: no more duplicates than the
 * publisher resent.
 */
static void consumer_case(const char *prefix, const char *type)
{
	char q[256];
	const int victim = 3, pubnode = 1;
	const bool stream = strcmp(type, "stream") == 0;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 4096};
	salvo_table *cargs = salvo_table_new();
	salvo_listener_opts lo = {.prefetch = 500, .consume_arguments = stream ? cargs : NULL};
	struct run r = {.by = BY_CONSUMED};
	struct listened ld = {.run = &r, .n = MAX_MSGS};
	salvo_client *pc, *lc;
	salvo_publisher *p;
	salvo_listener *l;
	salvo_listener_stats ls;
	salvo_pub_stats st;
	salvo_channel *ch;
	salvo_error err;
	uint64_t n, missing = 0, dups = 0, left = 0;
	double rec, last_change;
	char line[1024];

	ld.counts = calloc(MAX_MSGS, sizeof *ld.counts);
	CHECK(ld.counts && cargs);
	CHECK(salvo_table_add_string(cargs, "x-stream-offset", "first") == 0);
	cluster_ready();
	pc = FAILOVER_CLIENT(pubnode, "node-loss publisher");
	check_connected_to(pc, pubnode);
	typed_queue(pc, q, sizeof q, prefix, type);
	cluster_queue_line(1, q, line, sizeof line);
	printf("queue: %s", line);
	lc = FAILOVER_CLIENT(victim, "node-loss listener");
	check_connected_to(lc, victim);
	OK(salvo_listener_new(lc, q, on_message, &ld, &lo, &l, &err));
	OK(salvo_publisher_new(pc, &opts, &p, &err));
	r.watch = lc;
	r.pub = p;
	run_start(&r);
	n = publish_through_kill(&r, p, q, victim);
	salvo_publisher_stats(p, &st);
	CHECK(st.published == n && st.acked == n && st.nacked == 0 && st.failed == 0);
	/* Every number consumed, then 2 s more for late duplicates; a minute without progress
	 * ends the wait. */
	last_change = now_s();
	for (uint64_t seen = 0;;) {
		uint64_t d = atomic_load(&ld.distinct);
		struct timespec nap = {0, 100 * 1000000};

		if (d != seen) {
			seen = d;
			last_change = now_s();
		}
		if (d == n && now_s() - last_change >= 2)
			break;
		if (now_s() - last_change >= 60)
			break;
		nanosleep(&nap, NULL);
	}
	run_end(&r);
	OK(salvo_listener_stop(l, 10000, &err));
	salvo_listener_get_stats(l, &ls);
	for (uint64_t i = 0; i < n; i++) {
		missing += ld.counts[i] == 0;
		dups += ld.counts[i] > 1 ? ld.counts[i] - 1 : 0;
	}
	rec = atomic_load(&r.recovered);
	printf("listener: received %llu acked %llu settle errors %llu restarts %llu; last error: "
	       "%s\n",
	       (unsigned long long)ls.received, (unsigned long long)ls.acked,
	       (unsigned long long)ls.settle_errors, (unsigned long long)ls.restarts,
	       ls.last_error.text);
	check_failover(lc, victim);
	/* A stream keeps its messages: only a quorum queue is emptied by the acks. */
	if (!stream) {
		OK(salvo_channel_open(pc, &ch, &err));
		left = settled_queue_count(ch, q, 3, 300);
		OK(salvo_channel_close(ch, &err));
	}
	printf("summary: published %llu acked %llu nacked %llu consumed %llu missing %llu "
	       "duplicates %llu (publisher resent %llu; stream deliveries skipped %llu) left in "
	       "queue %llu recovery %.2f s\n",
	       (unsigned long long)n, (unsigned long long)st.acked, (unsigned long long)st.nacked,
	       (unsigned long long)ls.received, (unsigned long long)missing,
	       (unsigned long long)dups, (unsigned long long)st.resent,
	       (unsigned long long)ls.stream_skipped, (unsigned long long)left, rec);
	CHECK(missing == 0);
	CHECK(ls.restarts >= 1);
	CHECK(left == 0);
	if (stream)
		CHECK(dups <= st.resent);
	recovery_or_fail(&r);
	salvo_listener_destroy(l);
	OK(salvo_publisher_close(p, 10000, &err));
	rabbit_delete_queue(pc, q);
	rabbit_close(lc, 10000);
	rabbit_close(pc, 10000);
	free(ld.counts);
	salvo_table_destroy(cargs);
	CHECK(cluster_script("restart", victim, NULL, 0) == 0);
}

static void case_quorum_consumer(void)
{
	consumer_case("salvo.test.cluster.quorum.consume", "quorum");
}

static void case_stream_consumer(void)
{
	consumer_case("salvo.test.cluster.stream.consume", "stream");
}

static const struct test_case cases[] = {
    {"quorum publisher", .run = case_quorum_publisher},
    {"quorum publisher leader", .run = case_quorum_publisher_leader},
    {"quorum consumer", .run = case_quorum_consumer},
    {"stream publisher", .run = case_stream_publisher},
    {"stream consumer", .run = case_stream_consumer},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], cluster_need, NULL);
}
