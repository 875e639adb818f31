/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf: what its three files share. options.c parses the command line into struct
 * options (tools/cli.c reports the errors); report.c prints progress, CSV rows, the
 * summary and the JSON; salvo-perf.c runs the clients, the producer threads and the clock.
 */
#ifndef SALVO_PERF_H
#define SALVO_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

#define PROG	      "salvo-perf"
#define DEFAULT_URI   "amqp://guest:guest@localhost:5672"
#define DEFAULT_KEY   "salvo-perf"
#define DEFAULT_SIZE  100
#define DEFAULT_COUNT 1000000
/* Bodies of at least HEADER_SIZE bytes start with the sequence number and the send time. */
#define HEADER_SIZE 16
/* The producer's index goes in the sequence number's top 16 bits, its count below. */
#define SEQ_INDEX_SHIFT 48
#define MAX_PRODUCERS	4096
#define MAX_CONNECTIONS 1024
#define MAX_SIZE	(1u << 30) /* the largest publisher.ring_size */

struct options {
	const char **uris; /* --uri in order: "uri", then "uri.add" */
	size_t nuris;
	char **conf; /* the KEY=VALUE arguments of --conf, in order */
	size_t nconf;
	unsigned connections;
	unsigned producers;
	size_t size;
	salvo_confirm_mode confirm;
	size_t window; /* 0: the configuration's publisher.window */
	uint64_t count;
	uint64_t duration_s; /* 0: run for count messages */
	uint64_t rate;	     /* messages/s in all; 0: unlimited */
	const char *exchange;
	const char *routing_key;
	bool declare_queue;
	unsigned flags; /* SALVO_MSG_* */
	bool json;
	bool progress;
	const char *csv;
};

/* One sample of the counters: progress lines and CSV rows. */
struct sample {
	double t; /* seconds since the clock started */
	uint64_t sent;
	salvo_pub_stats pub; /* summed over every client */
};

/* What the run achieved, for the summary and the JSON. */
struct result {
	uint64_t sent;
	double seconds;
	double cpu_seconds;
	salvo_pub_stats pub;
	uint64_t reconnects; /* over every connection */
	bool failed;	  /* an error stopped the run */
	bool interrupted; /* a signal did */
	/* The first message that was nacked, returned or failed, when one was. */
	salvo_outcome_kind first_bad;
	char first_bad_text[256];
};

/* options.c */
int parse_args(int argc, char **argv, struct options *o);
int configure(salvo_conf *conf, const struct options *o);
void options_free(struct options *o);

/* report.c */
void progress_line(const struct options *o, const struct sample *s, const struct sample *prev);
int csv_header(FILE *f);
void csv_row(FILE *f, const struct sample *s, const struct sample *prev);
void summary(const struct options *o, const struct result *r);
void json(const struct options *o, const struct result *r);

#endif
