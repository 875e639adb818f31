/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf's output: progress lines and the summary on stderr, CSV rows, and the JSON
 * object that ends stdout.
 */
#include <inttypes.h>
#include <sys/resource.h>

#include "perf.h"

static double rate_between(const struct sample *s, const struct sample *prev)
{
	double dt = s->t - prev->t;

	return dt > 0 ? (double)(s->sent - prev->sent) / dt : 0;
}

void progress_line(const struct options *o, const struct sample *s, const struct sample *prev)
{
	char outcomes[160] = "";

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
	/* One fprintf: a line never interleaves with an error another thread reports. */
	fprintf(stderr, "t=%.0fs sent %" PRIu64 " (%.0f msg/s)%s\n", s->t, s->sent,
		rate_between(s, prev), outcomes);
}

int csv_header(FILE *f)
{
	return fputs("t,sent,acked,nacked,in_flight,msgs_per_s\n", f) < 0 ? -1 : 0;
}

void csv_row(FILE *f, const struct sample *s, const struct sample *prev)
{
	fprintf(f, "%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f\n", s->t, s->sent,
		s->pub.acked, s->pub.nacked, s->pub.in_flight, rate_between(s, prev));
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

static const char *const outcome_names[] = {"acked", "nacked", "returned", "failed"};

void summary(const struct options *o, const struct result *r)
{
	const salvo_pub_stats *p = &r->pub;
	double bytes = (double)r->sent * (double)o->size;

	fprintf(stderr,
		"%u producer%s on %u connection%s, %zu-byte bodies, confirm %s%s\n"
		"sent %" PRIu64 " messages in %.3f s: %.0f msgs/s, %.2f MB/s\n"
		"cpu %.3f s: %.3f us/msg\n"
		"memory: peak RSS %ld KiB\n",
		o->producers, plural(o->producers), o->connections, plural(o->connections), o->size,
		confirm_names[o->confirm],
		r->failed	 ? " (stopped by an error)"
		: r->interrupted ? " (interrupted)"
				 : "",
		r->sent, r->seconds, per_second((double)r->sent, r->seconds),
		per_second(bytes, r->seconds) / 1e6, r->cpu_seconds,
		r->sent ? r->cpu_seconds * 1e6 / (double)r->sent : 0.0, max_rss_kb());
	if (r->reconnects)
		fprintf(stderr,
			"reconnections: %" PRIu64 ", messages sent again: %" PRIu64
			", possibly lost (best effort): %" PRIu64 "\n",
			r->reconnects, p->resent, p->possibly_lost);
	if (o->confirm == SALVO_CONFIRM_NONE)
		return;
	fprintf(stderr,
		"outcomes: %" PRIu64 " acked, %" PRIu64 " nacked, %" PRIu64 " returned, %" PRIu64
		" failed\n",
		p->acked, p->nacked, p->returned, p->failed);
	if (p->latency_count)
		fprintf(stderr,
			"confirm latency: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us "
			"(%" PRIu64 " sample%s)\n",
			latency_us(p, 0.5), latency_us(p, 0.99), latency_us(p, 0.999),
			latency_us(p, 1), p->latency_count, plural(p->latency_count));
	if (r->first_bad != SALVO_OUTCOME_ACKED)
		fprintf(stderr, "first message not acked (%s)%s%s\n", outcome_names[r->first_bad],
			r->first_bad_text[0] ? ": " : "", r->first_bad_text);
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
	if (o->confirm == SALVO_CONFIRM_NONE || !p->latency_count)
		printf("\"latency_us\": {\"p50\": null, \"p99\": null, \"p999\": null, "
		       "\"max\": null}, ");
	else
		printf("\"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
		       "\"max\": %.1f}, ",
		       latency_us(p, 0.5), latency_us(p, 0.99), latency_us(p, 0.999),
		       latency_us(p, 1));
	printf("\"reconnects\": %" PRIu64 ", \"duplicates_possible\": %" PRIu64
	       ", \"possibly_lost\": %" PRIu64
	       ", \"producers\": %u, \"connections\": %u, \"size\": %zu, "
	       "\"confirm\": \"%s\", \"rate\": %" PRIu64 ", \"max_rss_kb\": %ld}\n",
	       r->reconnects, p->resent, p->possibly_lost, o->producers, o->connections, o->size,
	       confirm_names[o->confirm], o->rate, max_rss_kb());
}
