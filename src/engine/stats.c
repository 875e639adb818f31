/* SPDX-License-Identifier: MIT */
/*
 * Statistics for monitoring: one snapshot of a client's figures (its publishers, its
 * consumers, its I/O thread, its connection), the consumer and I/O counters the snapshot
 * reads, and the schedule of the statistics callback.
 *
 * The snapshot is taken under stats_lock, which publishers and consumers take to join
 * and leave the client's lists, so nothing on a list is freed while it is read. Each
 * counter has one writer at a time and is read relaxed: a snapshot is exact per figure,
 * not across figures (a message may be counted acked before the in-flight count drops).
 *
 * The callback runs on an application thread inside salvo_client_poll_event, never on
 * the I/O thread: a document costs a walk over every publisher's 320-bucket histogram and
 * a allocation, which the thread that sends every message must not pay. Several pollers
 * may wait at once; the one that finds a document due marks the schedule busy (under
 * c->lock) and writes it with the lock released, so documents never overlap and the
 * interval marks (stats_prev) have one writer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "stats.h"

void sv_consumer_stats_link(struct salvo_consumer *cons)
{
	salvo_client *c = cons->ch->client;

	pthread_mutex_lock(&c->stats_lock);
	cons->stats_next = c->stats_cons;
	c->stats_cons = cons;
	cons->stats_linked = true;
	pthread_mutex_unlock(&c->stats_lock);
}

void sv_consumer_stats_unlink(struct salvo_consumer *cons)
{
	salvo_client *c = cons->ch->client;

	pthread_mutex_lock(&c->stats_lock);
	if (cons->stats_linked)
		for (struct salvo_consumer **pp = &c->stats_cons; *pp; pp = &(*pp)->stats_next)
			if (*pp == cons) {
				*pp = cons->stats_next;
				break;
			}
	cons->stats_linked = false;
	pthread_mutex_unlock(&c->stats_lock);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void salvo_consumer_get_stats(const salvo_consumer *cons, salvo_consumer_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!cons)
		return;
	st->delivered = LOAD(cons->ctr.delivered);
	st->taken = LOAD(cons->ctr.taken);
	st->handovers = LOAD(cons->ctr.handovers);
	st->buffered_bytes = LOAD(cons->ctr.buffered);
	st->acks = LOAD(cons->ctr.acks);
	st->nacks = LOAD(cons->ctr.nacks);
	st->rejects = LOAD(cons->ctr.rejects);
}

void salvo_client_io_stats(salvo_client *c, salvo_io_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!c)
		return;
	st->turns = LOAD(c->ioctr.turns);
	st->waits = LOAD(c->ioctr.waits);
	st->submits = LOAD(c->ioctr.submits);
	st->sends = LOAD(c->ioctr.sends);
	st->send_bytes = LOAD(c->ioctr.send_bytes);
	st->recvs = LOAD(c->ioctr.recvs);
	st->recv_bytes = LOAD(c->ioctr.recv_bytes);
	st->wakeups = LOAD(c->ioctr.wakeups);
	st->ack_holds = LOAD(c->ioctr.ack_holds);
	st->kicks = LOAD(c->ioctr.kicks);
}

void sv_stats_blocked(salvo_client *c, uint64_t since_ns)
{
	uint64_t at = LOAD(c->blocked_at);

	/* The block under way (if any) ends here, and since_ns starts the next (0: none).
	 * Sequentially consistent: the time is added before blocked_at moves, in the order
	 * sv_stats_take reads them. */
	if (at)
		atomic_store(&c->blocked_ns,
			     atomic_load(&c->blocked_ns) + (since_ns ? since_ns : sv_now_ns()) - at);
	atomic_store(&c->blocked_at, since_ns);
}

/* The histogram of now less the one at *mark into iv (latencies only), and *mark moved to
 * now; the mark is allocated on first use (out of memory: iv holds everything). */
static void interval_of(const salvo_pub_stats *now, uint64_t **mark, salvo_pub_stats *iv)
{
	uint64_t *prev = *mark;
	unsigned top = 0;

	memset(iv, 0, sizeof *iv);
	if (!prev)
		prev = *mark = calloc(SALVO_LATENCY_BUCKETS + 2, sizeof *prev);
	for (unsigned i = 0; i < SALVO_LATENCY_BUCKETS; i++) {
		uint64_t was = prev ? prev[i] : 0;

		/* A publisher's closing moves its counts into the closed totals: they never
		 * go down. */
		iv->latency[i] = now->latency[i] > was ? now->latency[i] - was : 0;
		iv->latency_count += iv->latency[i];
		if (iv->latency[i])
			top = i;
		if (prev)
			prev[i] = now->latency[i];
	}
	if (prev) {
		uint64_t sum = prev[SALVO_LATENCY_BUCKETS];
		iv->latency_sum_ns = now->latency_sum_ns > sum ? now->latency_sum_ns - sum : 0;
		prev[SALVO_LATENCY_BUCKETS] = now->latency_sum_ns;
	}
	/* The interval's largest: its top bucket's upper end, no more than the largest ever. */
	if (iv->latency_count) {
		salvo_pub_stats one = {.latency_count = 1, .latency_max_ns = now->latency_max_ns};
		one.latency[top] = 1;
		iv->latency_max_ns = salvo_stats_latency_ns(&one, 0.5);
	}
}

static const char *state_name(int state)
{
	switch (state) {
	case SV_CONN_OPEN:
		return "open";
	case SV_CONN_CLOSING:
		return "closing";
	case SV_CONN_RECOVERING:
		return "recovering";
	default:
		return "closed";
	}
}

static void take_lists(salvo_client *c, struct sv_stats_snap *s, bool interval)
{
	size_t np = 0, nc = 0;

	for (salvo_publisher *p = c->stats_pubs; p; p = p->stats_next)
		np++;
	for (struct salvo_consumer *k = c->stats_cons; k; k = k->stats_next)
		nc++;
	s->pubs = np ? calloc(np, sizeof *s->pubs) : NULL;
	s->cons = nc ? calloc(nc, sizeof *s->cons) : NULL;
	if ((np && !s->pubs) || (nc && !s->cons)) {
		s->incomplete = true;
		np = nc = 0;
	}
	s->total = c->closed_stats;
	s->closed = c->closed_stats;
	for (salvo_publisher *p = c->stats_pubs; p && s->npubs < np; p = p->stats_next) {
		struct sv_stats_pub *sp = &s->pubs[s->npubs++];

		sp->channel = p->stats_channel;
		sp->mode = p->mode;
		salvo_publisher_stats(p, &sp->st);
		salvo_pub_stats_add(&s->total, &sp->st);
		if (interval)
			interval_of(&sp->st, &p->stats_prev, &sp->interval);
	}
	if (s->incomplete)
		for (salvo_publisher *p = c->stats_pubs; p; p = p->stats_next) {
			salvo_pub_stats one;
			salvo_publisher_stats(p, &one);
			salvo_pub_stats_add(&s->total, &one);
		}
	if (interval)
		interval_of(&s->total, &c->stats_prev, &s->interval);
	for (struct salvo_consumer *k = c->stats_cons; k && s->ncons < nc; k = k->stats_next) {
		struct sv_stats_cons *sc = &s->cons[s->ncons++];

		sc->channel = k->ch->id;
		snprintf(sc->tag, sizeof sc->tag, "%s", k->tag);
		salvo_consumer_get_stats(k, &sc->st);
	}
}

void sv_stats_take(salvo_client *c, struct sv_stats_snap *s, bool interval)
{
	const struct sv_endpoint *ep;
	struct timespec ts;
	uint64_t at, now = sv_now_ns();

	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s",
		 c->set.conf.connection_name[0] ? c->set.conf.connection_name : "salvo");
	s->state = state_name(atomic_load(&c->state));
	ep = &c->set.conf.endpoints[LOAD(c->endpoint_at) % c->set.conf.n_endpoints];
	snprintf(s->endpoint, sizeof s->endpoint, "%s:%" PRIu32, ep->host, ep->port);
	clock_gettime(CLOCK_REALTIME, &ts);
	s->time_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	s->reconnects = salvo_client_reconnects(c);
	s->events_dropped = salvo_client_events_dropped(c);
	/* An unblock between the two loads would count the block twice (its time is added
	 * to blocked_ns before blocked_at is cleared): read again until blocked_ns held
	 * still around blocked_at. */
	for (uint64_t before = 1, after = 0; before != after;) {
		before = atomic_load(&c->blocked_ns);
		at = atomic_load(&c->blocked_at);
		after = atomic_load(&c->blocked_ns);
		s->blocked = at != 0;
		s->blocked_ms = (after + (at && now > at ? now - at : 0)) / 1000000u;
	}
	salvo_client_io_stats(c, &s->io);
	salvo_client_consume_stats(c, &s->consume);
	pthread_mutex_lock(&c->stats_lock);
	take_lists(c, s, interval);
	pthread_mutex_unlock(&c->stats_lock);
}

void sv_stats_release(struct sv_stats_snap *s)
{
	free(s->pubs);
	free(s->cons);
	s->pubs = NULL;
	s->cons = NULL;
	s->npubs = s->ncons = 0;
}

uint64_t sv_stats_poll_locked(salvo_client *c, uint64_t now)
{
	uint64_t every = (uint64_t)c->set.conf.statistics_interval_ms * 1000000u;
	struct sv_stats_snap s;
	struct sv_out o = {.grow = true};

	if (!every || !c->set.conf.stats_fn)
		return 0;
	if (!c->stats_due_ns)
		c->stats_due_ns = now + every;
	if (c->stats_busy || now < c->stats_due_ns)
		return c->stats_busy ? now + every : c->stats_due_ns;
	c->stats_busy = true;
	/* The next one an interval after this one was due, or after now when a poller came
	 * late: documents never bunch up after a pause. */
	c->stats_due_ns += every;
	if (c->stats_due_ns <= now)
		c->stats_due_ns = now + every;
	pthread_mutex_unlock(&c->lock);

	sv_stats_take(c, &s, true);
	s.seq = c->stats_docs;
	s.interval_ms = c->stats_last_ns ? (now - c->stats_last_ns) / 1000000u : 0;
	sv_stats_json(&s, &o);
	sv_stats_release(&s);
	if (!o.failed)
		c->set.conf.stats_fn(c, o.buf, o.len, c->set.conf.stats_arg);
	free(o.buf);

	pthread_mutex_lock(&c->lock);
	c->stats_last_ns = now;
	c->stats_docs++;
	c->stats_busy = false;
	return c->stats_due_ns;
}

void sv_out_printf(struct sv_out *o, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	for (;;) {
		room = o->cap > o->len ? o->cap - o->len : 0;
		va_start(ap, fmt);
		n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room || !o->grow || o->failed)
			break;
		size_t cap = o->cap ? o->cap * 2 : 4096;
		while (cap <= o->len + (size_t)n)
			cap *= 2;
		char *buf = realloc(o->buf, cap);
		if (!buf) {
			o->failed = true;
			return;
		}
		o->buf = buf;
		o->cap = cap;
	}
	o->len += (size_t)n;
}

void sv_out_escaped(struct sv_out *o, const char *text, bool json)
{
	const uint8_t *s = (const uint8_t *)text, *end = s + strlen(text);

	while (s < end) {
		size_t n = sv_utf8_len(s, (size_t)(end - s));

		if (*s == '\\' || *s == '"')
			sv_out_printf(o, "\\%c", *s);
		else if (*s == '\n')
			sv_out_printf(o, "\\n");
		else if (n && (*s >= 0x20 && *s != 0x7f))
			sv_out_printf(o, "%.*s", (int)n, (const char *)s);
		else if (n && json)
			sv_out_printf(o, "\\u%04x", *s); /* a control byte */
		else
			/* A control byte in a label, or bytes that are not UTF-8 (a tag is the
			 * broker's, a name the application's): U+FFFD, so the text stays valid
			 * UTF-8 whatever they hold. */
			sv_out_printf(o, "%s", json ? "\\ufffd" : "\xef\xbf\xbd");
		s += n ? n : 1;
	}
}
