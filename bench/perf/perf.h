/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf: what its files share. options.c parses the command line into struct options
 * (tools/cli.c reports the errors); report.c prints progress, CSV rows, the summary and
 * the JSON; salvo-perf.c runs the clients, the producer threads and the clock;
 * consumer.c runs the consumer threads (--consumers); body.c makes the bodies (--body) and
 * reads their stamps back; plot.c draws the per-second rows with gnuplot (--plot).
 */
#ifndef SALVO_PERF_H
#define SALVO_PERF_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
/* Pattern bodies of at least HEADER_SIZE bytes start with the sequence number and the send
 * time (body.c). */
#define HEADER_SIZE 16
/* The producer's index goes in the sequence number's top 16 bits, its count below. */
#define SEQ_INDEX_SHIFT		48
#define MAX_PRODUCERS		4096
#define MAX_CONSUMERS		1024
#define MAX_CONNECTIONS		1024
#define DEFAULT_DRAIN_TIMEOUT_S 10
#define NS			1000000000ull
#define MAX_SIZE		(1u << 30) /* the largest publisher.ring_size */
/* --body json: room for the stamp and a field or two. */
#define BODY_JSON_MIN 64

enum body_kind { BODY_PATTERN, BODY_JSON };
/* --queue-type: QUEUE_ANY declares without x-queue-type (the broker's default). */
enum queue_type { QUEUE_ANY, QUEUE_CLASSIC, QUEUE_QUORUM, QUEUE_STREAM };
#define MAX_QUEUES	1024
#define STREAM_PREFETCH 1000 /* a stream consumer's prefetch unless --prefetch says */

struct options {
	const char **uris; /* --uri in order: "uri", then "uri.add" */
	size_t nuris;
	char **conf; /* the KEY=VALUE arguments of --conf, in order */
	size_t nconf;
	unsigned connections;
	unsigned producers;
	size_t size;
	enum body_kind body;
	salvo_confirm_mode confirm;
	size_t window; /* 0: the configuration's publisher.window */
	uint64_t count;
	uint64_t duration_s; /* 0: run for count messages */
	uint64_t rate;	     /* messages/s in all; 0: unlimited */
	const char *exchange;
	const char *routing_key;
	bool declare_queue;
	unsigned queues;	   /* --queues; 0: the one queue named by routing_key */
	enum queue_type queue_type;
	char **queue_names;	   /* KEY-1 .. KEY-N, or KEY: producer and consumer j use j % n */
	unsigned nqueue_names;
	unsigned flags;		/* SALVO_MSG_* */
	struct cli_batch batch; /* opts.max_records 0: no batching */
	bool json;
	bool progress;
	const char *csv;
	const char *plot; /* --plot: the PNG to write */
	char *gnuplot;	  /* with --plot: the gnuplot found in PATH */
	int metrics_port; /* --metrics-port; -1: none */
	/* Consumers (0: none). */
	unsigned consumers;
	unsigned consumer_connections; /* 0: consumers share the producers' connections */
	unsigned prefetch;	       /* basic.qos prefetch count per consumer; 0: none */
	bool auto_ack;		       /* no_ack consumers */
	unsigned multi_ack_every;      /* manual acks: one multiple ack per this many (1: each) */
	bool consume_callback;	       /* take messages through on_message and dispatch */
	uint64_t consumer_rate;	       /* messages/s in all; 0: unlimited */
	uint64_t drain_timeout_s;      /* after the producers: the longest wait for a message */
};

/* One sample of the counters: progress lines and CSV rows. */
struct sample {
	double t; /* seconds since the clock started */
	uint64_t sent;
	uint64_t consumed;   /* by the consumers, every message (older ones too) */
	uint64_t consumed_run; /* ... of them, the run's own */
	salvo_pub_stats pub; /* summed over every client */
	salvo_pub_stats e2e; /* the consumers' publish -> consume latencies handed over so far */
};

/* What the run achieved, for the summary and the JSON. */
struct result {
	uint64_t sent;
	double seconds;
	double cpu_seconds;
	salvo_pub_stats pub;
	uint64_t reconnects; /* over every connection */
	bool failed;	     /* an error stopped the run */
	bool interrupted;    /* a signal did */
	/* The first message that was nacked, returned or failed, when one was. */
	salvo_outcome_kind first_bad;
	char first_bad_text[256];
	/* Consumers. */
	uint64_t consumed;	     /* messages of this run */
	uint64_t consumed_other;     /* messages not sent by this run (left in the queue before) */
	uint64_t redelivered;	     /* of this run's, those the broker marked redelivered */
	/* The consumers' sequence check, per producer in each consumer: counters skipped,
	 * and counters that came again or late. With one consumer both 0 and consumed ==
	 * sent mean every message arrived once, in each producer's order. */
	uint64_t sequence_gaps, sequence_repeats;
	uint64_t expected;	     /* what they should have received: acked, or sent (none) */
	double consume_seconds;	     /* from the go to the last message received (any) */
	double consumer_cpu_seconds; /* the consumer threads' own CPU time */
	salvo_pub_stats e2e;	     /* publish -> consume latency: only its histogram is used */
	salvo_consume_stats cst;     /* every connection's, summed */
	salvo_io_stats io;	     /* every connection's I/O thread, summed */
};

enum phase { PHASE_SETUP, PHASE_GO, PHASE_RELEASE };

/* metrics.c: --metrics-port, served from a thread of its own from metrics_start (after
 * every connection is made) to metrics_stop (before any is closed). */
struct metrics {
	int fd; /* the listening socket; -1: not serving */
	int port;
	pthread_t thread;
	atomic_bool stop;
	salvo_client *const *clients;
	size_t nclients;
};
/* Returns 0, or -1 (reported). */
int metrics_start(struct metrics *m, salvo_client *const *clients, size_t n, int port);
void metrics_stop(struct metrics *m);

struct producer;
struct consumer;

/* The run's shared state (salvo-perf.c). */
struct perf {
	const struct options *o;
	salvo_client **clients; /* the producers' connections, then the consumers' own */
	unsigned nclients;
	struct metrics metrics; /* --metrics-port */
	struct producer *producers;
	unsigned nproducers; /* threads started */
	struct consumer *consumers;
	unsigned nconsumers; /* threads started */
	/* Read by every producer before every message, written once or twice a run: on its
	 * own cache line so that nothing written often invalidates it. */
	_Alignas(64) atomic_bool stop;
	atomic_bool consumers_stop; /* written once, read by consumers once per wait */
	_Alignas(64) pthread_mutex_t lock;
	pthread_cond_t main_cv; /* the main thread waits: ready, done, interrupted, ticks */
	pthread_cond_t prod_cv; /* producers and consumers wait: phase */
	enum phase phase;
	unsigned ready, done;
	bool failed;	 /* an error was reported */
	int interrupted; /* the signal that stopped the run, or 0 */
	sigset_t signals;
	/* CLOCK_REALTIME at the go: every message of the run carries a send time after it.
	 * Written before the go, read by consumers after it. */
	uint64_t start_real_ns;
};

/* salvo-perf.c: what the consumer threads share with the producers. */
uint64_t mono_ns(void);
uint64_t real_ns(void);
void run_error(struct perf *pf, int status, const salvo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wait_phase(struct perf *pf, enum phase phase);
void count_in(struct perf *pf, unsigned *counter);

/* Pacing (--rate, --consumer-rate): a token bucket checked once per batch of messages. */
struct pacer {
	double rate, tokens, cap;
	uint64_t batch, last_ns;
};
void pacer_init(struct pacer *pc, double rate);
void pacer_take(struct pacer *pc);

/* consumer.c */
struct consumer *consumers_new(unsigned n);
/* Start the consumer threads (each opens its channel and consumer, reports ready, then
 * waits for the go); pf->nconsumers says how many started. Returns 0 or -1 (reported). */
int start_consumers(struct perf *pf);
/* Messages of this run received so far, over every consumer. Any thread. */
uint64_t consumed_total(struct perf *pf);
uint64_t received_total(struct perf *pf); /* with messages not of the run */
/* Add the end-to-end latencies the consumers have handed over so far to sum. Any thread. */
void e2e_total(struct perf *pf, salvo_pub_stats *sum);
/* Tell the consumers to stop (they ack what they received, cancel and close their
 * channels) and join them. */
void stop_consumers(struct perf *pf);
/* After stop_consumers: their counts, latencies and CPU time into r. */
void collect_consumers(struct perf *pf, struct result *r);

/* body.c: the bodies of one producer, and the stamp (sequence number, send time) each
 * carries (--body; the layouts are in body.c and --help). */
struct bodies {
	enum body_kind kind;
	size_t size;
	unsigned n; /* bodies in the pool: a power of two */
	uint8_t *mem;
};
struct stamp {
	uint64_t ns;   /* CLOCK_REALTIME */
	char text[19]; /* json: ns in decimal */
};
extern const char *const body_names[2];
/* Returns 0, or -1 out of memory. */
int bodies_new(struct bodies *b, enum body_kind kind, size_t size, unsigned producer);
void bodies_free(struct bodies *b);
/* A new send time, read from the clock by the caller. */
void stamp_time(struct stamp *st, enum body_kind kind, uint64_t ns);
/* The body of message n, stamped with seq and st's time (not for pattern bodies under
 * HEADER_SIZE bytes, which carry no stamp). */
uint8_t *body_stamp(struct bodies *b, uint64_t n, uint64_t seq, const struct stamp *st);
/* A body's stamp: true with *seq and *sent_ns, or false when it carries none. */
bool body_read(enum body_kind kind, const uint8_t *body, size_t len, uint64_t *seq,
	       uint64_t *sent_ns);

/* options.c */
int parse_args(int argc, char **argv, struct options *o);
int configure(salvo_conf *conf, const struct options *o);
void options_free(struct options *o);

/* report.c */
/* Messages per second from n0 at prev to n1 at s. */
double rate_between(const struct sample *s, const struct sample *prev, uint64_t n1, uint64_t n0);
/* The latencies of st that completed between the snapshots prev and st: the difference of
 * the histograms, in d (read with salvo_stats_latency_ns; its max is exact when the run's
 * maximum grew in the interval, else the top of the highest bucket, about 12% above). */
void interval_latency(const salvo_pub_stats *st, const salvo_pub_stats *prev, salvo_pub_stats *d);
void progress_line(const struct options *o, const struct sample *s, const struct sample *prev);
int csv_header(const struct options *o, FILE *f);
void csv_row(const struct options *o, FILE *f, const struct sample *s, const struct sample *prev);
void summary(const struct options *o, const struct result *r);
void json(const struct options *o, const struct result *r);

/* plot.c: --plot. The rows go to a data file in a private temporary directory as the run
 * goes; after it, gnuplot draws them into the PNG. */
struct plot {
	char dir[512]; /* the temporary directory; "" before plot_open */
	FILE *data;
	int png; /* opened before the run, so that a bad path fails at once; -1: none */
	unsigned rows;
	bool confirm_lat, e2e_lat; /* some row has confirm, end-to-end latencies */
	bool drawn;		   /* gnuplot wrote the PNG */
};
/* The gnuplot executable in PATH, malloc'd, or NULL. */
char *plot_find_gnuplot(void);
/* Open the PNG and the data file. Returns 0, or -1 (reported). */
int plot_open(struct plot *p, const struct options *o);
void plot_row(struct plot *p, const struct options *o, const struct sample *s,
	      const struct sample *prev);
/* Run gnuplot on the rows. Returns 0, or -1 (reported). */
int plot_draw(struct plot *p, const struct options *o, const struct result *r);
/* Close the files and remove the temporary directory. Returns 0, or -1 when the PNG
 * could not be written (reported). */
int plot_close(struct plot *p, const struct options *o);


#endif
