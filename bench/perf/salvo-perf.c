/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf: a PerfTest-style publishing benchmark over salvo's public API.
 *
 * Threads. The main thread connects --connections clients and starts --producers producer
 * threads, producer i on client i % connections. Each producer opens its own publisher and
 * reports ready; when all are, the main thread starts the clock and lets them go. Producers
 * publish their share (or until the stop flag), then wait for every outcome (confirm
 * modes) or for every byte to reach the kernel (none), and report done. With --consumers,
 * consumer threads (consumer.c) start before the producers and report ready with them;
 * when every producer is done they drain the queue: the run ends when they have received
 * every message the broker took, or none for --drain-timeout seconds. Then the main
 * thread stops the clock, stops the consumers and lets the producers close their
 * publishers. Meanwhile the main thread samples the counters once a second for the
 * progress line, the CSV and the plot's rows, and ends a --duration run by raising the stop flag. A
 * signal thread turns the first SIGINT or SIGTERM into the stop flag, so an interrupted run still
 * reports.
 *
 * The hot loop reads no clock unless the body carries a send time (--size >= 16) or the
 * rate is capped, and then the pacer reads one about once a millisecond. What the sampler
 * reads from a producer is one counter, alone on its cache line, that the producer stores
 * (a plain store, not a locked add) after each message; outcomes come from salvo's own
 * counters (salvo_client_stats), which the I/O threads keep anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "perf.h"

/* A broker that pushes back through TCP flow control may take minutes to drain a large
 * ring; a dead one is caught sooner by heartbeats. */
#define FLUSH_TIMEOUT_MS 600000
/* Only the close handshakes are left by then. */
#define CLOSE_TIMEOUT_MS 30000
/* Async mode: deliver known outcomes (to note_outcome) every this many messages, a power
 * of two, in small batches as they come; a full window would deliver them too, but a
 * window's worth at a time. salvo's counters do not wait for delivery. */
#define POLL_EVERY 1024
/* Messages per read of the clock for the send time in bodies (a power of two). */
#define STAMP_EVERY 16
/* While the consumers drain the queue: how often the main thread looks at their count. */
#define DRAIN_POLL_NS 50000000ull

struct producer {
	/* Stored by the producer after every message, read by the sampler once a second:
	 * alone on its cache line, so neither the producer's other fields nor another
	 * producer's counter share it. */
	_Alignas(64) _Atomic uint64_t sent;
	_Alignas(64) struct perf *perf;
	unsigned index;
	salvo_client *client;
	salvo_publisher *pub;
	uint64_t quota; /* UINT64_MAX: until the stop flag */
	double rate;	/* messages/s; 0: unlimited */
	pthread_t thread;
	/* The first message that was not acked (async: from on_outcome; sync: from the
	 * publish's status). SALVO_OUTCOME_ACKED: none so far. */
	salvo_outcome_kind first_bad;
	char first_bad_text[256];
};

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void timespec_at(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / NS);
	ts->tv_nsec = (long)(ns % NS);
}

/* Report an error (only the first of the run: later ones are usually its echoes from other
 * producers or from closing) and stop every producer. */
void run_error(struct perf *pf, int status, const salvo_error *err, const char *fmt, ...)
{
	char what[256];
	bool first;
	va_list ap;

	pthread_mutex_lock(&pf->lock);
	first = !pf->failed;
	pf->failed = true;
	pthread_mutex_unlock(&pf->lock);
	atomic_store_explicit(&pf->stop, true, memory_order_relaxed);
	if (!first)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	fail(status, err, "%s", what);
}

/* Pacing: a token bucket refilled at the producer's rate, checked once per batch of
 * messages. The batch (a power of two, at most 256) is about a millisecond's worth, so the
 * clock is read about once a millisecond however fast the rate, and a slow rate still
 * checks before every message. The bucket holds at most 50 ms of messages (two batches at
 * least): enough to make up for a late wake-up, too little for a burst that would break
 * the cap over any span a reader would measure. CLOCK_MONOTONIC, not a coarse clock: read
 * once a batch it costs nothing, and a coarse clock's 4 ms steps would make every sleep
 * a guess. */
void pacer_init(struct pacer *pc, double rate)
{
	pc->batch = 1;
	while (pc->batch < 256 && (double)(pc->batch * 2) <= rate / 1000)
		pc->batch *= 2;
	pc->rate = rate;
	pc->cap = rate / 20 > (double)(2 * pc->batch) ? rate / 20 : (double)(2 * pc->batch);
	pc->tokens = (double)pc->batch; /* the first batch goes at once */
	pc->last_ns = mono_ns();
}

/* Take a batch's tokens, sleeping until the bucket holds them. */
void pacer_take(struct pacer *pc)
{
	for (;;) {
		uint64_t now = mono_ns();

		pc->tokens += (double)(now - pc->last_ns) * pc->rate / 1e9;
		pc->last_ns = now;
		if (pc->tokens > pc->cap)
			pc->tokens = pc->cap;
		if (pc->tokens >= (double)pc->batch) {
			pc->tokens -= (double)pc->batch;
			return;
		}
		struct timespec ts;

		/* + 1: never a zero sleep for a fraction of a nanosecond's tokens. */
		timespec_at((uint64_t)(((double)pc->batch - pc->tokens) / pc->rate * 1e9) + 1, &ts);
		nanosleep(&ts, NULL);
	}
}

/* Async outcomes arrive here in sequence order; keep only the first that is not an ack,
 * for the summary. An ack costs one comparison. */
static void note_outcome(const salvo_outcome *out, void *arg)
{
	struct producer *pr = arg;

	if (out->kind == SALVO_OUTCOME_ACKED || pr->first_bad != SALVO_OUTCOME_ACKED)
		return;
	pr->first_bad = out->kind;
	if (out->error)
		snprintf(pr->first_bad_text, sizeof pr->first_bad_text, "%s", out->error->text);
}

/* Sync mode: a nack or return is the publish's status, with the detail in err. */
static void note_sync_outcome(struct producer *pr, int rc, const salvo_error *err)
{
	if (pr->first_bad != SALVO_OUTCOME_ACKED)
		return;
	pr->first_bad = rc == SALVO_ERR_NACKED ? SALVO_OUTCOME_NACKED : SALVO_OUTCOME_RETURNED;
	snprintf(pr->first_bad_text, sizeof pr->first_bad_text, "%s", err->text);
}

/* Publish the producer's share. Returns 0, or the status of the error that stopped it
 * (in err), with *n the messages sent. */
static int publish_all(struct producer *pr, struct bodies *bodies, uint64_t *n, salvo_error *err)
{
	struct perf *pf = pr->perf;
	const struct options *o = pf->o;
	const bool stamped = o->body == BODY_JSON || o->size >= HEADER_SIZE;
	/* A paced message may wait a while after the one before; a consumer times each. */
	const bool stamp_each = pr->rate > 0 || o->consumers;
	const bool async = o->confirm == SALVO_CONFIRM_ASYNC;
	const uint64_t index = (uint64_t)pr->index << SEQ_INDEX_SHIFT;
	const uint64_t seq_mask = (1ull << SEQ_INDEX_SHIFT) - 1;
	salvo_msg m = {.exchange = o->exchange,
		       .routing_key = o->queue_names[pr->index % o->nqueue_names],
		       .len = o->size,
		       .flags = o->flags};
	struct stamp st = {0};
	struct pacer pc = {0};
	int rc;

	if (pr->rate > 0)
		pacer_init(&pc, pr->rate);
	for (*n = 0; *n < pr->quota; ++*n) {
		if (pr->rate > 0 && !(*n & (pc.batch - 1)))
			pacer_take(&pc);
		if (atomic_load_explicit(&pf->stop, memory_order_relaxed))
			break;
		/* A clock read costs ~27 ns on a VM's kvm-clock, as much as the rest of a
		 * publish (28% of the client's CPU at 7M msgs/s when read per message), so
		 * the send time is read once every STAMP_EVERY messages: at most that many
		 * publishes stale, a few microseconds at full speed, far below any broker
		 * latency it measures. But a publish that waited for ring room would leave
		 * the rest of its batch stamped before the wait, so with consumers timing
		 * each message every one is stamped (they run at the broker's pace anyway).
		 * Pattern bodies under 16 bytes carry no stamp and skip it. */
		if (stamped && (stamp_each || !(*n & (STAMP_EVERY - 1))))
			stamp_time(&st, o->body, real_ns());
		m.body = body_stamp(bodies, *n, index | (*n & seq_mask), &st);
		rc = salvo_publish_msg(pr->pub, &m, SALVO_FOREVER, NULL, err);
		if (rc == SALVO_ERR_NACKED || rc == SALVO_ERR_RETURNED)
			note_sync_outcome(pr, rc, err); /* counted by salvo; not a reason to stop */
		else if (rc)
			return rc;
		/* Only this thread writes it: a relaxed store, no read-modify-write. */
		atomic_store_explicit(&pr->sent, *n + 1, memory_order_relaxed);
		if (async && !(*n & (POLL_EVERY - 1)))
			salvo_publisher_poll(pr->pub, 0, NULL);
	}
	return 0;
}

void wait_phase(struct perf *pf, enum phase phase)
{
	pthread_mutex_lock(&pf->lock);
	while (pf->phase < phase)
		pthread_cond_wait(&pf->prod_cv, &pf->lock);
	pthread_mutex_unlock(&pf->lock);
}

void count_in(struct perf *pf, unsigned *counter)
{
	pthread_mutex_lock(&pf->lock);
	++*counter;
	pthread_cond_signal(&pf->main_cv);
	pthread_mutex_unlock(&pf->lock);
}

static void *producer_main(void *arg)
{
	struct producer *pr = arg;
	struct perf *pf = pr->perf;
	const struct options *o = pf->o;
	salvo_publisher_opts popts = {
	    .confirm = o->confirm,
	    .window = o->window,
	    .on_outcome = o->confirm == SALVO_CONFIRM_ASYNC ? note_outcome : NULL,
	    .on_outcome_arg = pr,
	    .batch = o->batch.opts,
	};
	salvo_error err = {0};
	struct bodies bodies;
	bool have_bodies = bodies_new(&bodies, o->body, o->size, pr->index) == 0;
	uint64_t n = 0;
	int rc;

	rc = have_bodies ? salvo_publisher_new(pr->client, &popts, &pr->pub, &err)
			 : SALVO_ERR_NO_MEMORY;
	if (rc) {
		pr->pub = NULL;
		run_error(pf, rc, have_bodies ? &err : NULL, "producer %u: open a publisher",
			  pr->index);
	}
	count_in(pf, &pf->ready);
	wait_phase(pf, PHASE_GO);
	if (pr->pub) {
		rc = publish_all(pr, &bodies, &n, &err);
		if (rc)
			run_error(pf, rc, &err, "producer %u: publish message %" PRIu64, pr->index,
				  n);
		/* Every outcome, or (best effort) every byte handed to the kernel. Nacks and
		 * returns are counted, not errors. */
		rc = salvo_publisher_wait_confirms(pr->pub, FLUSH_TIMEOUT_MS, &err);
		if (rc && rc != SALVO_ERR_NACKED)
			run_error(pf, rc, &err,
				  "producer %u: wait for %s after %" PRIu64 " messages", pr->index,
				  o->confirm ? "confirms" : "the sends", n);
	}
	count_in(pf, &pf->done);
	wait_phase(pf, PHASE_RELEASE);
	if (pr->pub) {
		/* A broker error caused by the last publishes (a missing exchange, best
		 * effort) surfaces here at the latest. */
		rc = salvo_publisher_close(pr->pub, CLOSE_TIMEOUT_MS, &err);
		if (rc)
			run_error(pf, rc, &err, "producer %u: close the publisher", pr->index);
	}
	if (have_bodies)
		bodies_free(&bodies);
	return NULL;
}

/* The first SIGINT or SIGTERM of a run stops it (the producers finish what they sent, the
 * summary follows); any other kills the process as it would have without us. Every other
 * thread blocks both signals, so none of salvo's waits is ever interrupted. */
static void *signal_main(void *arg)
{
	struct perf *pf = arg;
	sigset_t one;
	int sig;

	for (;;) {
		if (sigwait(&pf->signals, &sig))
			continue;
		pthread_mutex_lock(&pf->lock);
		bool stop_run = pf->phase == PHASE_GO && !pf->interrupted;
		if (stop_run) {
			pf->interrupted = sig;
			atomic_store_explicit(&pf->stop, true, memory_order_relaxed);
			pthread_cond_signal(&pf->main_cv);
		}
		pthread_mutex_unlock(&pf->lock);
		if (stop_run)
			continue;
		signal(sig, SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
		raise(sig);
	}
	return NULL;
}

static void take_sample(struct perf *pf, uint64_t t0, struct sample *s)
{
	salvo_pub_stats one;

	memset(s, 0, sizeof *s);
	s->t = (double)(mono_ns() - t0) / 1e9;
	/* Outcomes first: a sync publish is acked before the producer counts it sent, so
	 * read the other way round a line could show more acked than sent. */
	for (unsigned i = 0; i < pf->nclients; i++) {
		salvo_client_stats(pf->clients[i], &one);
		salvo_pub_stats_add(&s->pub, &one);
	}
	for (unsigned i = 0; i < pf->nproducers; i++)
		s->sent += atomic_load_explicit(&pf->producers[i].sent, memory_order_relaxed);
	s->consumed = received_total(pf);
	s->consumed_run = consumed_total(pf);
	e2e_total(pf, &s->e2e);
}

/* Where the per-second rows go: --csv, --plot (each NULL when not asked for). */
struct rows {
	FILE *csv;
	struct plot *plot;
};

static void write_row(const struct perf *pf, const struct rows *out, const struct sample *s,
		      const struct sample *prev)
{
	if (out->csv)
		csv_row(pf->o, out->csv, s, prev);
	if (out->plot)
		plot_row(out->plot, pf->o, s, prev);
}

/* One tick: a progress line and a row. Called without pf->lock: sampling takes each
 * client's stats lock and each consumer's latency lock. */
static void tick(struct perf *pf, const struct rows *out, uint64_t t0, struct sample *prev)
{
	struct sample cur;

	take_sample(pf, t0, &cur);
	if (pf->o->progress)
		progress_line(pf->o, &cur, prev);
	write_row(pf, out, &cur, prev);
	*prev = cur;
}

/* The drain, after the producers: whether it is over — every message the broker took
 * (acked with confirms, sent without) received, none (of the run or not: the run's may
 * wait behind older ones) for --drain-timeout, or an error or signal. A run that
 * publishes nothing (--count 0) only drains what is queued: it ends when nothing has
 * come for --drain-timeout. *seen and *idle_since follow the consumers' progress. With
 * pf->lock held. */
static bool drained(struct perf *pf, uint64_t expected, uint64_t now, uint64_t *seen,
		    uint64_t *idle_since)
{
	const bool backlog_only = !pf->o->duration_s && !pf->o->count;
	uint64_t r = received_total(pf);

	if ((!backlog_only && consumed_total(pf) >= expected) || pf->failed || pf->interrupted)
		return true;
	if (r != *seen) {
		*seen = r;
		*idle_since = now;
		return false;
	}
	return now - *idle_since >= pf->o->drain_timeout_s * NS;
}

/* Run the clock from the go until the run is over: the last producer's done, then, with
 * consumers, the drain (above). A tick a second for the progress line and the rows, the
 * stop flag at the end of a --duration. Fills r's seconds (the producers' span) and CPU
 * seconds (the whole run's). */
static void run_clock(struct perf *pf, const struct rows *out, struct result *r)
{
	const struct options *o = pf->o;
	struct sample prev = {0}, cur;
	uint64_t t0, next, end, now, wake;
	uint64_t expected = 0, seen = 0, idle_since = 0;
	double cpu0, total;
	bool publishing = true, told = false;
	struct timespec ts;

	pthread_mutex_lock(&pf->lock);
	cpu0 = cpu_s();
	pf->start_real_ns = real_ns();
	t0 = mono_ns();
	pf->phase = PHASE_GO;
	pthread_cond_broadcast(&pf->prod_cv);
	next = t0 + NS;
	end = o->duration_s ? t0 + o->duration_s * NS : UINT64_MAX;
	for (;;) {
		now = mono_ns();
		if (publishing && pf->done == pf->nproducers) {
			publishing = false;
			r->seconds = (double)(now - t0) / 1e9;
			if (!pf->nconsumers)
				break;
			/* Every outcome is in: what the consumers should receive is known. */
			pthread_mutex_unlock(&pf->lock);
			take_sample(pf, t0, &cur);
			pthread_mutex_lock(&pf->lock);
			expected = o->confirm != SALVO_CONFIRM_NONE ? cur.pub.acked : cur.sent;
			idle_since = now;
		}
		if (!publishing && drained(pf, expected, now, &seen, &idle_since))
			break;
		wake = next < end ? next : end;
		if (!publishing && now + DRAIN_POLL_NS < wake)
			wake = now + DRAIN_POLL_NS;
		timespec_at(wake, &ts);
		pthread_cond_timedwait(&pf->main_cv, &pf->lock, &ts);
		now = mono_ns();
		if (now >= end) {
			atomic_store_explicit(&pf->stop, true, memory_order_relaxed);
			end = UINT64_MAX;
		}
		if (pf->interrupted && !told) {
			fprintf(stderr, PROG ": %s: stopping\n", strsignal(pf->interrupted));
			told = true;
		}
		if (now < next || (publishing && pf->done == pf->nproducers))
			continue;
		pthread_mutex_unlock(&pf->lock);
		tick(pf, out, t0, &prev);
		while (next <= now)
			next += NS;
		pthread_mutex_lock(&pf->lock);
	}
	total = (double)(mono_ns() - t0) / 1e9;
	r->cpu_seconds = cpu_s() - cpu0;
	pthread_mutex_unlock(&pf->lock);
	if (out->csv || out->plot) {
		take_sample(pf, t0, &cur);
		cur.t = total;
		write_row(pf, out, &cur, &prev);
	}
}

static int connect_all(struct perf *pf, const salvo_conf *conf)
{
	const struct options *o = pf->o;
	salvo_error err = {0};
	char where[4200];
	size_t where_size = sizeof where;

	/* The password reads back as ***, so the URI is safe to print. */
	if (salvo_conf_get(conf, "uri", where, &where_size))
		snprintf(where, sizeof where, "the broker");
	for (; pf->nclients < o->connections + o->consumer_connections; pf->nclients++) {
		salvo_conf *named = salvo_conf_dup(conf);
		char name[300];
		size_t name_size = sizeof name;
		int rc;

		/* Each connection's own name (unless the user gave one): the broker's
		 * management UI and the metrics' connection label tell them apart. */
		if (named && !salvo_conf_get(conf, "connection_name", name, &name_size) &&
		    !name[0]) {
			snprintf(name, sizeof name, "perf-%u", pf->nclients + 1);
			salvo_conf_set(named, "connection_name", name, NULL, 0);
		}
		/* Connection i tries endpoint i mod n first (as a pool's connection i): the
		 * connections are spread over the --uri endpoints in turn. */
		rc = salvo_client_new_at(named ? named : conf, pf->nclients,
					 &pf->clients[pf->nclients], &err);
		salvo_conf_destroy(named);
		if (rc) {
			fail(rc, &err, "connect to %s (connection %u)", where, pf->nclients + 1);
			return rc;
		}
	}
	if (o->metrics_port >= 0 &&
	    metrics_start(&pf->metrics, pf->clients, pf->nclients, o->metrics_port))
		return SALVO_ERR_INVALID_ARGUMENT;
	return 0;
}

/* Start the producer threads; pf->nproducers says how many started. */
static int start_producers(struct perf *pf)
{
	const struct options *o = pf->o;

	for (unsigned i = 0; i < o->producers; i++) {
		struct producer *pr = &pf->producers[i];
		int rc;

		pr->perf = pf;
		pr->index = i;
		/* The producers' connections only: the consumers' own come after them. */
		pr->client = pf->clients[i % o->connections];
		pr->quota = o->duration_s ? UINT64_MAX
					  : o->count / o->producers + (i < o->count % o->producers);
		pr->rate = (double)o->rate / o->producers;
		rc = pthread_create(&pr->thread, NULL, producer_main, pr);
		if (rc) {
			fprintf(stderr, PROG ": start producer thread %u: %s\n", i, strerror(rc));
			pthread_mutex_lock(&pf->lock);
			pf->failed = true;
			pthread_mutex_unlock(&pf->lock);
			return -1;
		}
		pf->nproducers++;
	}
	return 0;
}

/* Wait until every started producer has its publisher and every started consumer is
 * consuming (or has failed to). */
static void wait_ready(struct perf *pf)
{
	pthread_mutex_lock(&pf->lock);
	while (pf->ready < pf->nproducers + pf->nconsumers)
		pthread_cond_wait(&pf->main_cv, &pf->lock);
	pthread_mutex_unlock(&pf->lock);
}

/* After a failed setup: producers and consumers go and come back at once (the stop flags
 * are up), so they close what they opened. */
static void abort_run(struct perf *pf)
{
	atomic_store_explicit(&pf->stop, true, memory_order_relaxed);
	atomic_store_explicit(&pf->consumers_stop, true, memory_order_relaxed);
	pthread_mutex_lock(&pf->lock);
	pf->phase = PHASE_GO;
	pthread_cond_broadcast(&pf->prod_cv);
	while (pf->done < pf->nproducers)
		pthread_cond_wait(&pf->main_cv, &pf->lock);
	pthread_mutex_unlock(&pf->lock);
}

static void release_producers(struct perf *pf)
{
	pthread_mutex_lock(&pf->lock);
	pf->phase = PHASE_RELEASE;
	pthread_cond_broadcast(&pf->prod_cv);
	pthread_mutex_unlock(&pf->lock);
	for (unsigned i = 0; i < pf->nproducers; i++)
		pthread_join(pf->producers[i].thread, NULL);
}

/* After every publisher and consumer is closed: the outcomes, the first message not
 * acked, and what the consumers received. */
static void collect(struct perf *pf, struct result *r)
{
	salvo_pub_stats one;
	salvo_io_stats io;

	for (unsigned i = 0; i < pf->nproducers; i++) {
		const struct producer *pr = &pf->producers[i];

		r->sent += atomic_load_explicit(&pr->sent, memory_order_relaxed);
		if (r->first_bad == SALVO_OUTCOME_ACKED && pr->first_bad != SALVO_OUTCOME_ACKED) {
			r->first_bad = pr->first_bad;
			memcpy(r->first_bad_text, pr->first_bad_text, sizeof r->first_bad_text);
		}
	}
	for (unsigned i = 0; i < pf->nclients; i++) {
		salvo_client_stats(pf->clients[i], &one);
		salvo_pub_stats_add(&r->pub, &one);
		r->reconnects += salvo_client_reconnects(pf->clients[i]);
		salvo_client_io_stats(pf->clients[i], &io);
		r->io.turns += io.turns;
		r->io.waits += io.waits;
		r->io.sends += io.sends;
		r->io.recvs += io.recvs;
		r->io.wakeups += io.wakeups;
		r->io.kicks += io.kicks;
		r->io.ack_holds += io.ack_holds;
	}
	collect_consumers(pf, r);
	r->expected = pf->o->confirm != SALVO_CONFIRM_NONE ? r->pub.acked : r->sent;
}

static void close_clients(struct perf *pf)
{
	salvo_error err = {0};

	metrics_stop(&pf->metrics);

	for (unsigned i = 0; i < pf->nclients; i++) {
		int rc = salvo_client_close(pf->clients[i], CLOSE_TIMEOUT_MS, &err);

		if (rc)
			run_error(pf, rc, &err, "close connection %u", i + 1);
		salvo_client_destroy(pf->clients[i]);
	}
}

/* --declare-queue: each queue, with x-queue-type and durable for --queue-type quorum and
 * stream, queue i through producer connection i mod --connections: in a cluster a queue
 * (a quorum queue's leader, a stream's) starts on the node that declared it, and
 * connection i is on endpoint i mod n, so the queues are spread over the nodes as the
 * connections are. Returns 0 or the salvo status (reported). */
static int declare_queues(struct perf *pf, const struct options *o)
{
	static const char *const types[] = {
	    [QUEUE_CLASSIC] = "classic", [QUEUE_QUORUM] = "quorum", [QUEUE_STREAM] = "stream"};
	salvo_table *args = NULL;
	unsigned flags = 0;
	int rc = 0;

	if (o->queue_type != QUEUE_ANY) {
		args = salvo_table_new();
		if (!args || salvo_table_add_string(args, "x-queue-type", types[o->queue_type])) {
			salvo_table_destroy(args);
			fprintf(stderr, PROG ": out of memory\n");
			return SALVO_ERR_NO_MEMORY;
		}
		/* RabbitMQ refuses a quorum queue or stream that is not durable. */
		if (o->queue_type != QUEUE_CLASSIC)
			flags = SALVO_DURABLE;
	}
	for (unsigned i = 0; i < o->nqueue_names && !rc; i++)
		rc = declare_queue_with(pf->clients[i % o->connections], o->queue_names[i], flags,
					args);
	salvo_table_destroy(args);
	return rc;
}

/* Publish with every producer (and consume with every consumer), then report. Returns
 * the exit status. Setup failures (connect, declare, open a publisher, start a consumer)
 * end it without a summary. */
static int run(struct perf *pf, const salvo_conf *conf, const struct rows *out)
{
	const struct options *o = pf->o;
	struct result r = {0};
	int status = 0;

	if (connect_all(pf, conf) || (o->declare_queue && declare_queues(pf, o))) {
		close_clients(pf);
		return EXIT_FAILED;
	}
	/* Consumers first: each is consuming before the go, so no message waits for one. */
	if (start_consumers(pf) == 0 && start_producers(pf) == 0)
		wait_ready(pf);
	if (pf->failed) {
		abort_run(pf);
		stop_consumers(pf);
		release_producers(pf);
		close_clients(pf);
		return EXIT_FAILED;
	}

	run_clock(pf, out, &r);
	stop_consumers(pf);
	release_producers(pf);
	collect(pf, &r);
	close_clients(pf);
	r.failed = pf->failed;
	r.interrupted = pf->interrupted != 0;
	summary(o, &r);
	if (o->json)
		json(o, &r);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, PROG ": write standard output: %s\n", strerror(errno));
		status = EXIT_FAILED;
	}
	if (out->plot && plot_draw(out->plot, o, &r))
		status = EXIT_FAILED;
	if (o->confirm != SALVO_CONFIRM_NONE && r.pub.acked != r.sent) {
		fprintf(stderr, PROG ": %" PRIu64 " of %" PRIu64 " messages were not acked\n",
			r.sent - r.pub.acked, r.sent);
		status = EXIT_FAILED;
	}
	if (o->consumers && r.consumed < r.expected) {
		fprintf(stderr, PROG ": %" PRIu64 " of %" PRIu64 " messages %s were not consumed\n",
			r.expected - r.consumed, r.expected,
			o->confirm != SALVO_CONFIRM_NONE ? "acked by the broker" : "sent");
		status = EXIT_FAILED;
	}
	if (pf->failed || pf->interrupted)
		status = EXIT_FAILED;
	return status;
}

/* The run's shared state. Static: the signal thread may use it (its lock) until the
 * process exits. */
static struct perf perf;

static int perf_init(struct perf *pf, const struct options *o)
{
	pthread_condattr_t attr;
	pthread_t sig_thread;
	int rc;

	pf->o = o;
	pf->metrics.fd = -1;
	pthread_mutex_init(&pf->lock, NULL);
	/* The main thread's ticks are deadlines on the monotonic clock. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pf->main_cv, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&pf->prod_cv, NULL);
	pf->clients = calloc(o->connections + o->consumer_connections, sizeof *pf->clients);
	pf->producers =
	    aligned_alloc(_Alignof(struct producer), o->producers * sizeof *pf->producers);
	pf->consumers = o->consumers ? consumers_new(o->consumers) : NULL;
	if (!pf->clients || !pf->producers || (o->consumers && !pf->consumers)) {
		fail(SALVO_ERR_NO_MEMORY, NULL, "allocate %u producers and %u consumers",
		     o->producers, o->consumers);
		return -1;
	}
	memset(pf->producers, 0, o->producers * sizeof *pf->producers);
	/* Blocked before any other thread exists, so every thread (salvo's I/O threads too)
	 * inherits the mask and only the signal thread takes them. */
	sigemptyset(&pf->signals);
	sigaddset(&pf->signals, SIGINT);
	sigaddset(&pf->signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &pf->signals, NULL);
	rc = pthread_create(&sig_thread, NULL, signal_main, pf);
	if (rc) {
		fprintf(stderr, PROG ": start the signal thread: %s\n", strerror(rc));
		return -1;
	}
	pthread_detach(sig_thread);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	salvo_conf *conf = NULL;
	struct plot plot = {.png = -1};
	struct rows out = {0};
	int status;

	status = parse_args(argc, argv, &o);
	if (status >= 0)
		goto out;
	status = new_conf(&conf);
	if (!status)
		status = configure(conf, &o);
	if (status)
		goto out;
	if (o.csv) {
		out.csv = fopen(o.csv, "w");
		if (!out.csv || csv_header(&o, out.csv)) {
			fprintf(stderr, PROG ": write %s: %s\n", o.csv, strerror(errno));
			status = EXIT_FAILED;
			goto out;
		}
	}
	if (o.plot) {
		out.plot = &plot;
		if (plot_open(&plot, &o)) {
			status = EXIT_FAILED;
			goto out;
		}
	}
	status = perf_init(&perf, &o) ? EXIT_FAILED : run(&perf, conf, &out);
out:
	if (out.plot && plot_close(&plot, &o))
		status = EXIT_FAILED;
	if (out.csv) {
		/* ferror: a row that failed to go out earlier; fclose: the last ones. */
		bool bad = ferror(out.csv);

		if (fclose(out.csv) || bad) {
			fprintf(stderr, PROG ": write %s: %s\n", o.csv,
				bad ? "write error" : strerror(errno));
			status = EXIT_FAILED;
		}
	}
	free(perf.clients);
	free(perf.producers);
	free(perf.consumers);
	salvo_conf_destroy(conf);
	options_free(&o);
	return status;
}
