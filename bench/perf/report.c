/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf's output: progress lines and the summary on stderr, CSV rows, and the JSON
 * object that ends stdout.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/resource.h>

#include "perf.h"

/* Messages per second from n0 at prev to n1 at s. */
double rate_between(const struct sample *s, const struct sample *prev, uint64_t n1, uint64_t n0)
{
	double dt = s->t - prev->t;

	return dt > 0 ? (double)(n1 - n0) / dt : 0;
}

static bool batching(const struct options *o)
{
	return o->batch.opts.max_records > 0;
}

void progress_line(const struct options *o, const struct sample *s, const struct sample *prev)
{
	char outcomes[160] = "", envelopes[80] = "", consumed[80] = "";

	if (o->confirm != SALVO_CONFIRM_NONE) {
		int n = snprintf(outcomes, sizeof outcomes,
				 " acked %" PRIu64 " nacked %" PRIu64 " in-flight %" PRIu64,
				 s->pub.acked, s->pub.nacked, s->pub.in_flight);
		/* Rare outcomes only when there are some, so the usual line stays short. */
		if (s->pub.returned || s->pub.failed)
			snprintf(outcomes + n, sizeof outcomes - (size_t)n,
				 " returned %" PRIu64 " failed %" PRIu64, s->pub.returned,
				 s->pub.failed);
	}
	if (batching(o))
		snprintf(envelopes, sizeof envelopes, " envelopes %" PRIu64 " (%.0f/s)",
			 s->pub.envelopes,
			 rate_between(s, prev, s->pub.envelopes, prev->pub.envelopes));
	if (o->consumers)
		snprintf(consumed, sizeof consumed, " consumed %" PRIu64 " (%.0f msg/s)",
			 s->consumed, rate_between(s, prev, s->consumed, prev->consumed));
	/* One fprintf: a line never interleaves with an error another thread reports. */
	fprintf(stderr, "t=%.0fs sent %" PRIu64 " (%.0f msg/s)%s%s%s\n", s->t, s->sent,
		rate_between(s, prev, s->sent, prev->sent), outcomes, envelopes, consumed);
}

void interval_latency(const salvo_pub_stats *st, const salvo_pub_stats *prev, salvo_pub_stats *d)
{
	memset(d, 0, sizeof *d);
	for (unsigned i = 0; i < SALVO_LATENCY_BUCKETS; i++) {
		/* Each bucket only grows; the guard is for a snapshot taken mid-update. */
		d->latency[i] =
		    st->latency[i] > prev->latency[i] ? st->latency[i] - prev->latency[i] : 0;
		d->latency_count += d->latency[i];
	}
	d->latency_max_ns = st->latency_max_ns;
	/* The run's maximum is this interval's when it grew; else the q that reaches the
	 * last sample gives the top of the highest bucket (capped at the run's maximum). */
	if (d->latency_count && st->latency_max_ns <= prev->latency_max_ns)
		d->latency_max_ns = salvo_stats_latency_ns(d, ((double)d->latency_count - 0.5) /
								  (double)d->latency_count);
}

/* The columns: the first six always, then those of batching, of consumers, of confirm
 * latency and of end-to-end latency. */
int csv_header(const struct options *o, FILE *f)
{
	return fprintf(f, "t,sent,acked,nacked,in_flight,msgs_per_s%s%s%s%s\n",
		       batching(o) ? ",envelopes,envelopes_per_s" : "",
		       o->consumers ? ",consumed,consume_msgs_per_s" : "",
		       o->confirm != SALVO_CONFIRM_NONE
			   ? ",confirm_p50_us,confirm_p99_us,confirm_max_us"
			   : "",
		       o->consumers ? ",e2e_p50_us,e2e_p99_us,e2e_max_us" : "") < 0
		   ? -1
		   : 0;
}

/* ",p50,p99,max" in microseconds of the latencies between prev and st, or ",,," when
 * none completed. */
static void csv_latency(FILE *f, const salvo_pub_stats *st, const salvo_pub_stats *prev)
{
	salvo_pub_stats d;

	interval_latency(st, prev, &d);
	if (!d.latency_count)
		fputs(",,,", f);
	else
		fprintf(f, ",%.1f,%.1f,%.1f", (double)salvo_stats_latency_ns(&d, 0.5) / 1e3,
			(double)salvo_stats_latency_ns(&d, 0.99) / 1e3,
			(double)d.latency_max_ns / 1e3);
}

void csv_row(const struct options *o, FILE *f, const struct sample *s, const struct sample *prev)
{
	fprintf(f, "%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f", s->t, s->sent,
		s->pub.acked, s->pub.nacked, s->pub.in_flight,
		rate_between(s, prev, s->sent, prev->sent));
	if (batching(o))
		fprintf(f, ",%" PRIu64 ",%.1f", s->pub.envelopes,
			rate_between(s, prev, s->pub.envelopes, prev->pub.envelopes));
	if (o->consumers)
		fprintf(f, ",%" PRIu64 ",%.1f", s->consumed,
			rate_between(s, prev, s->consumed, prev->consumed));
	if (o->confirm != SALVO_CONFIRM_NONE)
		csv_latency(f, &s->pub, &prev->pub);
	if (o->consumers)
		csv_latency(f, &s->e2e, &prev->e2e);
	fputc('\n', f);
}

static double per_second(double x, double seconds)
{
	return seconds > 0 ? x / seconds : 0;
}

static double latency_us(const salvo_pub_stats *st, double q)
{
	return (double)salvo_stats_latency_ns(st, q) / 1e3;
}

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* The process's peak resident set: what the rings, windows and threads really cost. */
static long max_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? -1 : ru.ru_maxrss;
}

/* Every message the consumers took, this run's and older ones: what the consume rate and
 * the consumers' CPU per message count, so that draining a backlog reports its rate. */
static uint64_t consumed_all(const struct result *r)
{
	return r->consumed + r->consumed_other;
}

static double consume_rate(const struct result *r)
{
	return per_second((double)consumed_all(r), r->consume_seconds);
}

static double consumer_us_per_msg(const struct result *r)
{
	return consumed_all(r) ? r->consumer_cpu_seconds * 1e6 / (double)consumed_all(r) : 0.0;
}

static const char *const outcome_names[] = {"acked", "nacked", "returned", "failed"};

/* "p50 X us, p99 X us, p99.9 X us, max X us (N samples)" of a histogram. */
static void latency_line(const char *what, const salvo_pub_stats *st)
{
	fprintf(stderr,
		"%s: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us (%" PRIu64 " sample%s)\n",
		what, latency_us(st, 0.5), latency_us(st, 0.99), latency_us(st, 0.999),
		latency_us(st, 1), st->latency_count, plural(st->latency_count));
}

static void consumer_summary(const struct options *o, const struct result *r)
{
	char acks[64] = "manual acks";

	if (o->auto_ack)
		snprintf(acks, sizeof acks, "auto-ack");
	else if (o->multi_ack_every > 1)
		snprintf(acks, sizeof acks, "a multiple ack per %u messages", o->multi_ack_every);
	if (o->consume_callback)
		strncat(acks, ", callbacks", sizeof acks - strlen(acks) - 1);
	/* Shared: consumer i is on producer connection i % connections. */
	unsigned nconn = o->consumer_connections	 ? o->consumer_connections
			 : o->consumers < o->connections ? o->consumers
							 : o->connections;

	fprintf(stderr, "%u consumer%s on %u %s connection%s, prefetch %u, %s\n", o->consumers,
		plural(o->consumers), nconn, o->consumer_connections ? "own" : "shared",
		plural(nconn), o->prefetch, acks);
	fprintf(stderr,
		"consumed %" PRIu64 " messages in %.3f s: %.0f msgs/s (%" PRIu64 " of the %" PRIu64
		" of this run, %" PRIu64 " older)\n"
		"consumer threads cpu %.3f s: %.3f us/msg\n",
		consumed_all(r), r->consume_seconds, consume_rate(r), r->consumed, r->expected,
		r->consumed_other, r->consumer_cpu_seconds, consumer_us_per_msg(r));
	if (r->cst.handovers)
		fprintf(stderr,
			"deliveries: %" PRIu64 " in %" PRIu64 " hand-overs to the consumers "
			"(%.1f each); acks: %" PRIu64 " in %" PRIu64 " frames\n",
			r->cst.delivered, r->cst.handovers,
			(double)r->cst.delivered / (double)r->cst.handovers, r->cst.settles,
			r->cst.settle_frames);
	if (r->e2e.latency_count)
		latency_line("end-to-end latency", &r->e2e);
	if (r->redelivered)
		fprintf(stderr, "redelivered: %" PRIu64 "\n", r->redelivered);
	if (o->consumers)
		fprintf(stderr, "sequence check: %" PRIu64 " gap%s, %" PRIu64 " repeat%s%s\n",
			r->sequence_gaps, plural(r->sequence_gaps), r->sequence_repeats,
			plural(r->sequence_repeats),
			o->consumers > o->nqueue_names
			    ? " (several consumers share a queue: gaps expected)"
			    : "");
	if (r->consumed < r->expected)
		fprintf(stderr, "NOT CONSUMED: %" PRIu64 " message%s %s\n",
			r->expected - r->consumed, plural(r->expected - r->consumed),
			r->failed || r->interrupted
			    ? "when the run stopped"
			    : "(none arrived for the last --drain-timeout seconds)");
}

static const char *const queue_type_names[] = {
    [QUEUE_ANY] = "", [QUEUE_CLASSIC] = "classic", [QUEUE_QUORUM] = "quorum",
    [QUEUE_STREAM] = "stream"};

void summary(const struct options *o, const struct result *r)
{
	const salvo_pub_stats *p = &r->pub;
	double bytes = (double)r->sent * (double)o->size;

	fprintf(stderr,
		"%u producer%s on %u connection%s, %zu-byte %sbodies, confirm %s%s\n"
		"sent %" PRIu64 " messages in %.3f s: %.0f msgs/s, %.2f MB/s\n"
		"cpu %.3f s: %.3f us/msg\n"
		"memory: peak RSS %ld KiB\n",
		o->producers, plural(o->producers), o->connections, plural(o->connections), o->size,
		o->body == BODY_JSON ? "JSON " : "", confirm_names[o->confirm],
		r->failed	 ? " (stopped by an error)"
		: r->interrupted ? " (interrupted)"
				 : "",
		r->sent, r->seconds, per_second((double)r->sent, r->seconds),
		per_second(bytes, r->seconds) / 1e6, r->cpu_seconds,
		r->sent ? r->cpu_seconds * 1e6 / (double)r->sent : 0.0, max_rss_kb());
	if (o->queues || o->queue_type != QUEUE_ANY)
		fprintf(stderr, "queues: %u%s%s (%s .. %s)\n", o->nqueue_names,
			o->queue_type != QUEUE_ANY ? " " : "", queue_type_names[o->queue_type],
			o->queue_names[0], o->queue_names[o->nqueue_names - 1]);
	cli_batch_summary(&o->batch.opts, p, r->sent, r->seconds);
	if (r->reconnects)
		fprintf(stderr,
			"reconnections: %" PRIu64 ", messages sent again: %" PRIu64
			", possibly lost (best effort): %" PRIu64 "\n",
			r->reconnects, p->resent, p->possibly_lost);
	if (o->confirm != SALVO_CONFIRM_NONE) {
		fprintf(stderr,
			"outcomes: %" PRIu64 " acked, %" PRIu64 " nacked, %" PRIu64
			" returned, %" PRIu64 " failed\n",
			p->acked, p->nacked, p->returned, p->failed);
		if (p->latency_count)
			latency_line("confirm latency", p);
		if (r->first_bad != SALVO_OUTCOME_ACKED)
			fprintf(stderr, "first message not acked (%s)%s%s\n",
				outcome_names[r->first_bad], r->first_bad_text[0] ? ": " : "",
				r->first_bad_text);
	}
	if (o->consumers)
		consumer_summary(o, r);
}

/* "NAME": {"p50": X, "p99": X, "p999": X, "max": X}, with nulls when st is NULL or empty. */
static void json_latency(const char *name, const salvo_pub_stats *st)
{
	if (!st || !st->latency_count)
		printf("\"%s\": {\"p50\": null, \"p99\": null, \"p999\": null, \"max\": null}, ",
		       name);
	else
		printf("\"%s\": {\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}, ",
		       name, latency_us(st, 0.5), latency_us(st, 0.99), latency_us(st, 0.999),
		       latency_us(st, 1));
}

void json(const struct options *o, const struct result *r)
{
	const salvo_pub_stats *p = &r->pub;
	double bytes = (double)r->sent * (double)o->size;

	printf("{\"sent\": %" PRIu64 ", \"acked\": %" PRIu64 ", \"nacked\": %" PRIu64
	       ", \"returned\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"bytes\": %.0f, ",
	       r->sent, p->acked, p->nacked, p->returned, p->failed, bytes);
	printf("\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"mbytes_per_s\": %.3f, "
	       "\"cpu_seconds\": %.6f, \"cpu_us_per_msg\": %.3f, ",
	       r->seconds, per_second((double)r->sent, r->seconds),
	       per_second(bytes, r->seconds) / 1e6, r->cpu_seconds,
	       r->sent ? r->cpu_seconds * 1e6 / (double)r->sent : 0.0);
	json_latency("latency_us", o->confirm == SALVO_CONFIRM_NONE ? NULL : p);
	printf("\"reconnects\": %" PRIu64 ", \"duplicates_possible\": %" PRIu64
	       ", \"possibly_lost\": %" PRIu64
	       ", \"producers\": %u, \"connections\": %u, \"size\": %zu, "
	       "\"confirm\": \"%s\", \"rate\": %" PRIu64 ", ",
	       r->reconnects, p->resent, p->possibly_lost, o->producers, o->connections, o->size,
	       confirm_names[o->confirm], o->rate);
	printf("\"consumers\": %u, \"consumer_connections\": %u, \"prefetch\": %u, "
	       "\"auto_ack\": %s, \"multi_ack_every\": %u, \"consume_callback\": %s, "
	       "\"consumed\": %" PRIu64
	       ", \"not_consumed\": %" PRIu64 ", \"consumed_other\": %" PRIu64
	       ", \"redelivered\": %" PRIu64 ", \"sequence_gaps\": %" PRIu64
	       ", \"sequence_repeats\": %" PRIu64 ", ",
	       o->consumers, o->consumer_connections, o->prefetch, o->auto_ack ? "true" : "false",
	       o->multi_ack_every, o->consume_callback ? "true" : "false", r->consumed,
	       o->consumers && r->consumed < r->expected ? r->expected - r->consumed : 0,
	       r->consumed_other, r->redelivered, r->sequence_gaps, r->sequence_repeats);
	printf("\"consumed_total\": %" PRIu64 ", \"consume_seconds\": %.6f, "
	       "\"consume_msgs_per_s\": %.1f, ",
	       consumed_all(r), r->consume_seconds, consume_rate(r));
	printf("\"queues\": %u, \"queue_type\": %s%s%s, \"persistent\": %s, ", o->queues,
	       o->queue_type != QUEUE_ANY ? "\"" : "",
	       o->queue_type != QUEUE_ANY ? queue_type_names[o->queue_type] : "null",
	       o->queue_type != QUEUE_ANY ? "\"" : "",
	       o->flags & SALVO_MSG_PERSISTENT ? "true" : "false");
	printf("\"body\": \"%s\", \"records\": %" PRIu64 ", \"records_per_s\": %.1f, ",
	       body_names[o->body], r->sent, per_second((double)r->sent, r->seconds));
	cli_batch_json(stdout, &o->batch.opts, p, r->sent, r->seconds);
	json_latency("e2e_latency_us", o->consumers ? &r->e2e : NULL);
	struct rusage ru = {0};

	getrusage(RUSAGE_SELF, &ru);
	printf("\"io\": {\"turns\": %" PRIu64 ", \"waits\": %" PRIu64 ", \"sends\": %" PRIu64
	       ", \"recvs\": %" PRIu64 ", \"wakeups\": %" PRIu64 ", \"kicks\": %" PRIu64
	       ", \"ack_holds\": %" PRIu64 ", \"stream_holds\": %" PRIu64 "}, ",
	       r->io.turns, r->io.waits, r->io.sends, r->io.recvs, r->io.wakeups, r->io.kicks,
	       r->io.ack_holds, r->cst.stream_holds);
	printf("\"consumer_cpu_seconds\": %.6f, \"consumer_cpu_us_per_msg\": %.3f, "
	       "\"max_rss_kb\": %ld, \"voluntary_ctx_switches\": %ld, "
	       "\"involuntary_ctx_switches\": %ld}\n",
	       r->consumer_cpu_seconds, consumer_us_per_msg(r), max_rss_kb(), ru.ru_nvcsw,
	       ru.ru_nivcsw);
}
