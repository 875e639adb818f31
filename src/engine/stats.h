/* SPDX-License-Identifier: MIT */
/*
 * The client's figures for monitoring, taken in one go (stats.c) and written as a JSON
 * document (stats_json.c) or as Prometheus text (stats_prom.c): both forms read the same
 * snapshot, so they cannot disagree on what a figure is.
 */
#ifndef SALVO_STATS_H
#define SALVO_STATS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "salvo.h"

struct sv_stats_pub {
	uint16_t channel;
	salvo_confirm_mode mode;
	salvo_pub_stats st;
	salvo_pub_stats interval; /* latencies only: the outcomes since the last document */
};

struct sv_stats_cons {
	uint16_t channel;
	char tag[256];
	salvo_consumer_stats st;
};

struct sv_stats_snap {
	char name[256];	    /* connection_name, else "salvo" */
	const char *state;  /* open, closing, recovering, closed */
	char endpoint[300]; /* host:port connected to (or last) */
	uint64_t time_ms;   /* CLOCK_REALTIME, ms since the epoch */
	uint64_t interval_ms; /* since the last document (JSON only; 0 for the first) */
	uint64_t seq;	      /* documents before this one */
	uint64_t reconnects, events_dropped;
	bool blocked;
	uint64_t blocked_ms; /* in all, the current block included */
	salvo_io_stats io;
	salvo_pub_stats total;	  /* every publisher, closed ones included */
	salvo_pub_stats closed;	  /* the closed ones */
	salvo_pub_stats interval; /* latencies of total since the last document */
	salvo_consume_stats consume;
	struct sv_stats_pub *pubs;
	size_t npubs;
	struct sv_stats_cons *cons;
	size_t ncons;
	bool incomplete;
};

/* Take the snapshot (allocates its lists; out of memory, they are empty and incomplete is
 * set, which the documents report). With interval, latencies since the last call with interval are
 * computed and the mark moved: the statistics callback's, one caller at a time. */
void sv_stats_take(salvo_client *c, struct sv_stats_snap *s, bool interval);
void sv_stats_release(struct sv_stats_snap *s);

/* Text built piece by piece: into a fixed buffer (counting what does not fit, as
 * snprintf) or, with grow, into one reallocated as needed (failed set when that fails). */
struct sv_out {
	char *buf;
	size_t cap, len;
	bool grow, failed;
};

void sv_out_printf(struct sv_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string's contents or a Prometheus label value: \ and " escaped, newline as
 * \n, other control bytes as \u00XX (JSON) or U+FFFD (Prometheus), bytes that are not
 * well-formed UTF-8 as U+FFFD: valid UTF-8 out, whatever came in. */
void sv_out_escaped(struct sv_out *o, const char *s, bool json);

void sv_stats_json(const struct sv_stats_snap *s, struct sv_out *o);
void sv_stats_prom(const struct sv_stats_snap *snaps, size_t n, struct sv_out *o);

#endif
