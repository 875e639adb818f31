/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf's consumers (--consumers N): N threads, each with its own channel and
 * consumer on the queue named by --routing-key, consumer i on connection i % M of the
 * --consumer-connections M of their own, or with M = 0 on the producers' connection
 * i % --connections.
 *
 * A consumer opens its channel, sets its prefetch (basic.qos), starts consuming (awaiting
 * consume-ok), reports ready and waits for the go with the producers, so nothing it
 * receives is queueing from before the clock started. Then it takes messages with
 * salvo_consumer_get until the main thread says stop. For each message it reads the send
 * time the producer stamped into the body (body.c: bytes 8..15, or the "ts" digits of a
 * JSON body; CLOCK_REALTIME ns) and records the publish -> consume latency in a histogram
 * of salvo's own bucket scheme, so that salvo_stats_latency_ns reads its quantiles. A
 * message without a stamp, whose producer index is not one of this run's, whose send
 * time is older than the go or more than CLOCK_SLACK_NS ahead of the receive time was
 * left in the queue by someone else (or carries something else in those bytes, as
 * salvo-publish's bodies do): counted apart, not timed. Every message, the run's or not,
 * counts in the consume rate: draining a backlog is consuming too. With batching,
 * salvo's consumer hands out an envelope's records one by one: each is a message here,
 * timed on its own.
 *
 * With --consume-callback each consumer has a callback (on_message) that
 * salvo_consumer_dispatch runs on the consumer's thread; it does the same per message.
 *
 * Acks (without --auto-ack): one salvo_message_ack per message by default, which salvo's
 * I/O thread turns into multiple acks when it can; with --multi-ack-every K, one ack with
 * multiple every K messages. Messages held for a multiple ack are acked as soon as the
 * queue runs dry (a wait of ACK_IDLE_MS finds nothing) and when the consumer stops, so a
 * prefetch is never starved by acks held back and every message received is acked.
 *
 * What the main thread reads while the run goes is one counter per consumer, alone on
 * its cache line, stored (not added to with a locked instruction) by its consumer, and
 * once a second the latency histogram for the per-second rows. A lock per message would
 * cost the consumer more than the histogram does, so the consumer records into a private
 * histogram and adds it to the one the main thread reads, under a lock, every
 * E2E_HANDOVER messages and whenever a wait finds nothing: a row's latencies are those
 * of the messages received by its time, less at most E2E_HANDOVER per consumer. The
 * other counts are read after the thread is joined.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "perf.h"

/* How long a consumer waits for a message before it acks what it holds and looks at the
 * stop flag again. */
#define ACK_IDLE_MS 50
/* Messages per hand-over of the latencies to the main thread (a power of two). */
#define E2E_HANDOVER 256
/* A send time this far ahead of the receive time is not a clock step between a
 * producer's read and a consumer's on one machine: the body is not one of the run's. */
#define CLOCK_SLACK_NS NS

struct consumer {
	/* Stored by the consumer after every message, read by the main thread: the run's
	 * messages, and every message received (the drain's sign of progress). */
	_Alignas(64) _Atomic uint64_t consumed;
	_Atomic uint64_t received;
	_Alignas(64) struct perf *perf;
	unsigned index;
	salvo_client *client;
	double rate; /* messages/s; 0: unlimited */
	pthread_t thread;
	uint64_t other;	      /* messages not sent by this run */
	uint64_t redelivered; /* of this run's */
	/* The sequence check: per producer, the counter expected next; gaps (counters
	 * skipped) and repeats (a counter at or below one already seen). */
	uint64_t *next;
	uint64_t gaps, repeats;
	uint64_t last_ns;	 /* CLOCK_REALTIME when the last message (any) came */
	/* The consumer thread's own, shared by salvo_consumer_get and the callback: the
	 * newest message not yet acked (--multi-ack-every) and how many it covers, every
	 * message taken (for the pacer) and the run's; failed: an ack failed (reported). */
	salvo_message *held;
	unsigned nheld;
	uint64_t n, mine;
	struct pacer pc;
	bool failed;
	double cpu_seconds;	 /* this thread's, from the go to its stop */
	salvo_pub_stats pending; /* latencies not yet handed over: the histogram only */
	/* What the consumer has handed over, read by the main thread: under e2e_lock, on a
	 * cache line apart from what the consumer writes for every message. */
	_Alignas(64) pthread_mutex_t e2e_lock;
	salvo_pub_stats e2e;
};

struct consumer *consumers_new(unsigned n)
{
	struct consumer *cs = aligned_alloc(_Alignof(struct consumer), n * sizeof *cs);

	if (!cs)
		return NULL;
	memset(cs, 0, n * sizeof *cs);
	for (unsigned i = 0; i < n; i++)
		pthread_mutex_init(&cs[i].e2e_lock, NULL);
	return cs;
}

/* Add the pending latencies to those the main thread reads. */
static void hand_over(struct consumer *cs)
{
	if (!cs->pending.latency_count)
		return;
	pthread_mutex_lock(&cs->e2e_lock);
	salvo_pub_stats_add(&cs->e2e, &cs->pending);
	pthread_mutex_unlock(&cs->e2e_lock);
	memset(&cs->pending, 0, sizeof cs->pending);
}

/* Time one message, or count it as someone else's. Returns true for a message of the run. */
static bool note_message(struct consumer *cs, const salvo_message *m)
{
	const struct perf *pf = cs->perf;
	size_t len;
	const uint8_t *body = salvo_message_body(m, &len);
	uint64_t now = real_ns(), seq, sent;

	cs->last_ns = now;
	if (!body_read(pf->o->body, body, len, &seq, &sent) ||
	    seq >> SEQ_INDEX_SHIFT >= pf->o->producers || sent < pf->start_real_ns ||
	    sent > now + CLOCK_SLACK_NS) {
		cs->other++;
		return false;
	}
	/* One machine's clock: a send time slightly in the future is a clock step, not a
	 * latency. */
	salvo_stats_latency_record(&cs->pending, now > sent ? now - sent : 0);
	if (!(cs->pending.latency_count & (E2E_HANDOVER - 1)))
		hand_over(cs);
	if (cs->next) {
		uint64_t *next = &cs->next[seq >> SEQ_INDEX_SHIFT];
		uint64_t ctr = seq & (((uint64_t)1 << SEQ_INDEX_SHIFT) - 1);

		if (ctr < *next) {
			cs->repeats++;
		} else {
			cs->gaps += ctr - *next;
			*next = ctr + 1;
		}
	}
	cs->redelivered += salvo_message_redelivered(m);
	return true;
}

/* Open the consumer's channel and consumer. Returns 0, or the status (reported). */
static void on_message(salvo_message *m, void *arg);

static int consumer_open(struct consumer *cs, salvo_channel **ch, salvo_consumer **cons)
{
	struct perf *pf = cs->perf;
	const struct options *o = pf->o;
	salvo_consumer_opts copts = {.flags = o->auto_ack ? SALVO_CONSUME_NO_ACK : 0,
				     .on_message = o->consume_callback ? on_message : NULL,
				     .on_message_arg = cs};
	const char *queue = o->queue_names[cs->index % o->nqueue_names];
	salvo_table *args = NULL;
	salvo_error err = {0};
	int rc;

	*cons = NULL;
	rc = salvo_channel_open(cs->client, ch, &err);
	if (rc) {
		*ch = NULL;
		run_error(pf, rc, &err, "consumer %u: open a channel", cs->index);
		return rc;
	}
	if (o->prefetch) {
		rc = salvo_basic_qos(*ch, 0, (uint16_t)o->prefetch, false, &err);
		if (rc) {
			run_error(pf, rc, &err, "consumer %u: set prefetch %u", cs->index,
				  o->prefetch);
			return rc;
		}
	}
	/* A stream is read from an offset: the messages published from now on, as the run's
	 * consumers start before its producers. */
	if (o->queue_type == QUEUE_STREAM) {
		args = salvo_table_new();
		if (!args || salvo_table_add_string(args, "x-stream-offset", "next")) {
			salvo_table_destroy(args);
			run_error(pf, SALVO_ERR_NO_MEMORY, NULL, "consumer %u: arguments", cs->index);
			return SALVO_ERR_NO_MEMORY;
		}
		copts.arguments = args;
	}
	rc = salvo_consume(*ch, queue, &copts, cons, &err);
	salvo_table_destroy(args);
	if (rc) {
		*cons = NULL;
		run_error(pf, rc, &err, "consumer %u: consume queue '%s'", cs->index, queue);
	}
	return rc;
}

/* Ack *held (with multiple: everything received up to it) and let it go. */
static int ack_held(struct consumer *cs, salvo_message **held, unsigned *nheld)
{
	salvo_error err = {0};
	int rc;

	if (!*held)
		return 0;
	rc = salvo_message_ack(*held, *nheld > 1, &err);
	salvo_message_destroy(*held);
	*held = NULL;
	*nheld = 0;
	if (rc)
		run_error(cs->perf, rc, &err, "consumer %u: ack", cs->index);
	return rc;
}

/* One message taken: timed and counted, then acked, or held for a multiple ack. Returns
 * nonzero when the consumer must stop (an ack failed, reported). */
static int take_one(struct consumer *cs, salvo_message *m)
{
	const struct options *o = cs->perf->o;

	/* Only this thread writes them: relaxed stores, no read-modify-write. */
	if (note_message(cs, m))
		atomic_store_explicit(&cs->consumed, ++cs->mine, memory_order_relaxed);
	atomic_store_explicit(&cs->received, ++cs->n, memory_order_relaxed);
	if (o->auto_ack) {
		salvo_message_destroy(m);
	} else {
		/* The held message is covered by the multiple ack of a later one. */
		salvo_message_destroy(cs->held);
		cs->held = m;
		if (++cs->nheld >= o->multi_ack_every && ack_held(cs, &cs->held, &cs->nheld))
			return -1;
	}
	/* A slow consumer: paced after each batch (pacer_init grants the first). */
	if (cs->rate > 0 && !(cs->n & (cs->pc.batch - 1)))
		pacer_take(&cs->pc);
	return 0;
}

/* --consume-callback: salvo_consumer_dispatch runs this on the consumer's thread. After a
 * failed ack the rest are let go of unacked (the broker requeues them at the close). */
static void on_message(salvo_message *m, void *arg)
{
	struct consumer *cs = arg;

	if (cs->failed)
		salvo_message_destroy(m);
	else if (take_one(cs, m))
		cs->failed = true; /* m went with the failed ack (ack_held) */
}

/* Take messages until the stop flag (or an error, reported). */
static void consume_all(struct consumer *cs, salvo_consumer *cons)
{
	struct perf *pf = cs->perf;
	const struct options *o = pf->o;
	salvo_error err = {0};
	int rc;

	if (cs->rate > 0)
		pacer_init(&cs->pc, cs->rate);
	/* Without it (no memory) the run goes on unchecked: gaps and repeats stay 0. */
	cs->next = calloc(o->producers, sizeof *cs->next);
	while (!atomic_load_explicit(&pf->consumers_stop, memory_order_relaxed) && !cs->failed) {
		salvo_message *m;

		if (o->consume_callback) {
			rc = salvo_consumer_dispatch(cons, ACK_IDLE_MS, 0, &err);
			if (rc > 0)
				continue;
		} else {
			rc = salvo_consumer_get(cons, ACK_IDLE_MS, &m, &err);
			if (!rc) {
				if (take_one(cs, m))
					break;
				continue;
			}
		}
		if (rc == SALVO_ERR_TIMEOUT) {
			hand_over(cs);
			if (ack_held(cs, &cs->held, &cs->nheld))
				break;
			continue;
		}
		run_error(pf, rc, &err, "consumer %u: receive after %" PRIu64 " messages",
			  cs->index, cs->mine);
		break;
	}
	ack_held(cs, &cs->held, &cs->nheld);
	hand_over(cs);
	free(cs->next);
	cs->next = NULL;
}

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *consumer_main(void *arg)
{
	struct consumer *cs = arg;
	struct perf *pf = cs->perf;
	salvo_channel *ch;
	salvo_consumer *cons;
	salvo_error err = {0};
	double cpu0;
	int rc;

	consumer_open(cs, &ch, &cons);
	count_in(pf, &pf->ready);
	wait_phase(pf, PHASE_GO);
	cpu0 = thread_cpu_s();
	if (cons)
		consume_all(cs, cons);
	cs->cpu_seconds = thread_cpu_s() - cpu0;
	if (cons) {
		/* A cancel first, so its error (a lost connection) is reported; destroy
		 * frees the messages received after the stop, unacked: the broker requeues
		 * them when the channel closes. */
		rc = salvo_consumer_cancel(cons, &err);
		if (rc)
			run_error(pf, rc, &err, "consumer %u: cancel", cs->index);
		salvo_consumer_destroy(cons);
	}
	if (ch) {
		rc = salvo_channel_close(ch, &err);
		if (rc)
			run_error(pf, rc, &err, "consumer %u: close the channel", cs->index);
	}
	return NULL;
}

int start_consumers(struct perf *pf)
{
	const struct options *o = pf->o;
	/* Their own connections come after the producers' in pf->clients. */
	unsigned first = o->consumer_connections ? o->connections : 0;
	unsigned nconn = o->consumer_connections ? o->consumer_connections : o->connections;

	for (unsigned i = 0; i < o->consumers; i++) {
		struct consumer *cs = &pf->consumers[i];
		int rc;

		cs->perf = pf;
		cs->index = i;
		cs->client = pf->clients[first + i % nconn];
		cs->rate = (double)o->consumer_rate / o->consumers;
		rc = pthread_create(&cs->thread, NULL, consumer_main, cs);
		if (rc) {
			fprintf(stderr, PROG ": start consumer thread %u: %s\n", i, strerror(rc));
			pthread_mutex_lock(&pf->lock);
			pf->failed = true;
			pthread_mutex_unlock(&pf->lock);
			return -1;
		}
		pf->nconsumers++;
	}
	return 0;
}

uint64_t consumed_total(struct perf *pf)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < pf->nconsumers; i++)
		n += atomic_load_explicit(&pf->consumers[i].consumed, memory_order_relaxed);
	return n;
}

void e2e_total(struct perf *pf, salvo_pub_stats *sum)
{
	for (unsigned i = 0; i < pf->nconsumers; i++) {
		struct consumer *cs = &pf->consumers[i];

		pthread_mutex_lock(&cs->e2e_lock);
		salvo_pub_stats_add(sum, &cs->e2e);
		pthread_mutex_unlock(&cs->e2e_lock);
	}
}

uint64_t received_total(struct perf *pf)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < pf->nconsumers; i++)
		n += atomic_load_explicit(&pf->consumers[i].received, memory_order_relaxed);
	return n;
}

void stop_consumers(struct perf *pf)
{
	atomic_store_explicit(&pf->consumers_stop, true, memory_order_relaxed);
	for (unsigned i = 0; i < pf->nconsumers; i++)
		pthread_join(pf->consumers[i].thread, NULL);
}

void collect_consumers(struct perf *pf, struct result *r)
{
	uint64_t last = 0;

	for (unsigned i = 0; i < pf->nconsumers; i++) {
		const struct consumer *cs = &pf->consumers[i];

		r->consumed += atomic_load_explicit(&cs->consumed, memory_order_relaxed);
		r->consumed_other += cs->other;
		r->redelivered += cs->redelivered;
		r->sequence_gaps += cs->gaps;
		r->sequence_repeats += cs->repeats;
		r->consumer_cpu_seconds += cs->cpu_seconds;
		salvo_pub_stats_add(&r->e2e, &cs->e2e);
		if (cs->last_ns > last)
			last = cs->last_ns;
	}
	r->consume_seconds =
	    last > pf->start_real_ns ? (double)(last - pf->start_real_ns) / 1e9 : 0;
	for (unsigned i = 0; i < pf->nclients; i++) {
		salvo_consume_stats st;

		salvo_client_consume_stats(pf->clients[i], &st);
		r->cst.delivered += st.delivered;
		r->cst.handovers += st.handovers;
		r->cst.settles += st.settles;
		r->cst.settle_frames += st.settle_frames;
		r->cst.stream_holds += st.stream_holds;
	}
}
