/* SPDX-License-Identifier: MIT */
/*
 * Publishers' counters: the I/O thread writes them (one writer, relaxed stores), any thread
 * reads them; the client keeps a list of its live publishers and the sum of the closed
 * ones, so salvo_client_stats covers both. And the latency histogram: log-linear, eight
 * buckets per power of two.
 */
#include <string.h>

#include "engine.h"

/* The histogram's bucket for ns: below 8 a bucket each; then (b - 2) * 8 plus the three
 * bits after the top bit b, about 12% wide. */
static unsigned latency_bucket(uint64_t ns)
{
	unsigned b, i;

	if (ns < 8)
		return (unsigned)ns;
	b = 63u - (unsigned)__builtin_clzll(ns);
	i = (b - 2) * 8 + (unsigned)((ns >> (b - 3)) & 7);
	return i < SALVO_LATENCY_BUCKETS ? i : SALVO_LATENCY_BUCKETS - 1;
}

void salvo_stats_latency_record(salvo_pub_stats *st, uint64_t ns)
{
	st->latency[latency_bucket(ns)]++;
	st->latency_count++;
	st->latency_sum_ns += ns;
	if (ns > st->latency_max_ns)
		st->latency_max_ns = ns;
}

void sv_latency_record(struct sv_pub_counters *ctr, uint64_t ns)
{
	unsigned i = latency_bucket(ns);

	/* One writer (the I/O thread): plain read-modify-write, no lock prefix. */
	atomic_store_explicit(&ctr->latency[i],
			      atomic_load_explicit(&ctr->latency[i], memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&ctr->latency_count,
			      atomic_load_explicit(&ctr->latency_count, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&ctr->latency_sum_ns,
			      atomic_load_explicit(&ctr->latency_sum_ns, memory_order_relaxed) + ns,
			      memory_order_relaxed);
	if (ns > atomic_load_explicit(&ctr->latency_max_ns, memory_order_relaxed))
		atomic_store_explicit(&ctr->latency_max_ns, ns, memory_order_relaxed);
}

void sv_pub_stats_link(salvo_publisher *p)
{
	salvo_client *c = p->client;

	p->stats_channel = p->ch->id;
	pthread_mutex_lock(&c->stats_lock);
	p->stats_next = c->stats_pubs;
	c->stats_pubs = p;
	pthread_mutex_unlock(&c->stats_lock);
}

void salvo_pub_stats_add(salvo_pub_stats *sum, const salvo_pub_stats *st)
{
	if (!sum || !st)
		return;
	sum->published += st->published;
	sum->acked += st->acked;
	sum->nacked += st->nacked;
	sum->returned += st->returned;
	sum->failed += st->failed;
	sum->resent += st->resent;
	sum->possibly_lost += st->possibly_lost;
	sum->returns_unmatched += st->returns_unmatched;
	sum->returns_dropped += st->returns_dropped;
	sum->in_flight += st->in_flight;
	sum->envelopes += st->envelopes;
	sum->envelope_bytes += st->envelope_bytes;
	sum->envelope_raw_bytes += st->envelope_raw_bytes;
	sum->latency_count += st->latency_count;
	sum->latency_sum_ns += st->latency_sum_ns;
	if (st->latency_max_ns > sum->latency_max_ns)
		sum->latency_max_ns = st->latency_max_ns;
	for (size_t i = 0; i < SALVO_LATENCY_BUCKETS; i++)
		sum->latency[i] += st->latency[i];
}

/* Take p off the client's list, its numbers into the closed totals: what never got an
 * outcome counts as failed. */
void sv_pub_stats_unlink(salvo_publisher *p)
{
	salvo_client *c = p->client;
	salvo_publisher **pp;
	salvo_pub_stats st;

	/* Read under the lock: a snapshot sees p's figures either listed or in the closed
	 * sums, never in both or neither. */
	pthread_mutex_lock(&c->stats_lock);
	salvo_publisher_stats(p, &st);
	if (p->mode != SALVO_CONFIRM_NONE) {
		st.failed += st.in_flight;
		st.in_flight = 0;
	}
	for (pp = &c->stats_pubs; *pp; pp = &(*pp)->stats_next)
		if (*pp == p) {
			*pp = p->stats_next;
			break;
		}
	salvo_pub_stats_add(&c->closed_stats, &st);
	pthread_mutex_unlock(&c->stats_lock);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void salvo_publisher_stats(const salvo_publisher *p, salvo_pub_stats *st)
{
	uint64_t settled;

	memset(st, 0, sizeof *st);
	if (!p)
		return;
	st->published = LOAD(p->published);
	st->acked = LOAD(p->ctr.acked);
	st->nacked = LOAD(p->ctr.nacked);
	st->returned = LOAD(p->ctr.returned);
	st->failed = LOAD(p->ctr.failed);
	st->resent = LOAD(p->ctr.resent);
	st->possibly_lost = LOAD(p->ctr.possibly_lost);
	st->returns_unmatched = LOAD(p->ctr.returns_unmatched);
	st->returns_dropped = LOAD(p->ctr.returns_dropped);
	st->envelopes = LOAD(p->batch.envelopes);
	st->envelope_bytes = LOAD(p->batch.bytes);
	st->envelope_raw_bytes = LOAD(p->batch.raw_bytes);
	st->latency_max_ns = LOAD(p->ctr.latency_max_ns);
	st->latency_sum_ns = LOAD(p->ctr.latency_sum_ns);
	/* The count is the buckets' sum, read with them: a latency recorded meanwhile is in
	 * both or neither, so the histogram stays consistent (Prometheus: +Inf == _count). */
	for (size_t i = 0; i < SALVO_LATENCY_BUCKETS; i++) {
		st->latency[i] = LOAD(p->ctr.latency[i]);
		st->latency_count += st->latency[i];
	}
	settled = st->acked + st->nacked + st->returned + st->failed;
	if (p->mode != SALVO_CONFIRM_NONE)
		st->in_flight = st->published > settled ? st->published - settled : 0;
}

void salvo_client_stats(salvo_client *c, salvo_pub_stats *st)
{
	salvo_pub_stats one;

	memset(st, 0, sizeof *st);
	if (!c)
		return;
	pthread_mutex_lock(&c->stats_lock);
	*st = c->closed_stats;
	for (salvo_publisher *p = c->stats_pubs; p; p = p->stats_next) {
		salvo_publisher_stats(p, &one);
		salvo_pub_stats_add(st, &one);
	}
	pthread_mutex_unlock(&c->stats_lock);
}

/* The largest time bucket i holds. */
static uint64_t bucket_top(unsigned i)
{
	unsigned b;

	if (i < 8)
		return i;
	b = i / 8 + 2;
	return ((uint64_t)(8 + i % 8 + 1) << (b - 3)) - 1;
}

uint64_t salvo_stats_latency_ns(const salvo_pub_stats *st, double q)
{
	uint64_t want, seen = 0;

	if (!st || !st->latency_count || q <= 0)
		return 0;
	if (q >= 1)
		return st->latency_max_ns;
	want = (uint64_t)(q * (double)st->latency_count + 0.999999);
	for (unsigned i = 0; i < SALVO_LATENCY_BUCKETS; i++) {
		seen += st->latency[i];
		if (seen >= want) {
			uint64_t top = bucket_top(i);
			return top < st->latency_max_ns ? top : st->latency_max_ns;
		}
	}
	return st->latency_max_ns;
}
