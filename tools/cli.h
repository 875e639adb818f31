/* SPDX-License-Identifier: MIT */
/*
 * What the command-line programs (tools/salvo-publish, bench/perf/salvo-perf) share: their
 * exit statuses, their two ways of failing (usage errors exit 2, run errors are
 * "PROG: what: status: detail"), decimal-only numbers, the options they have in common,
 * --conf KEY=VALUE, declaring the queue of --declare-queue, and the clocks.
 * Public API only: the programs link the shared library.
 */
#ifndef SALVO_CLI_H
#define SALVO_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "salvo.h"

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* The program's name, which starts every message; each program defines it. */
extern const char cli_prog[];

/* --confirm's values, indexed by salvo_confirm_mode. */
extern const char *const confirm_names[3];

/* "PROG: <message>" and a pointer to --help on stderr. Returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "PROG: <what failed>: <the error>" on stderr, the error as salvo_error_format writes it
 * (status, reply code, the broker's text, the method), err NULL giving the status alone. Any
 * thread; the line is not interleaved with another thread's output to stderr. */
void fail(int status, const salvo_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decimal digits only, like salvo_conf_set: no sign, blanks, base prefix or suffix, and
 * no silent wrap-around. Returns false, *out untouched, on anything else. */
bool parse_u64(const char *s, uint64_t *out);

/* A number in [min, max] (parse_u64's digits) for the option --opt: 0 with *out set, or
 * the exit status of the usage error naming the option and the range. */
int parse_range(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out);

/* The long name of the option whose val is val in longopts, or "?". */
const char *option_name(const struct option *longopts, int val);

/* --confirm MODE: 0 with *mode set, or the exit status of the usage error. */
int parse_confirm(const char *arg, salvo_confirm_mode *mode);

/* --conf KEY=VALUE: checks the form and appends arg to kv[*n]. Returns 0, or the exit
 * status of the usage error. */
int add_conf(char *arg, char **kv, size_t *n);

/* The rest of a getopt_long switch: -h (usage to stdout), -V, and getopt's ':' (a missing
 * value) and '?' (an unknown option; opterr must be 0). Returns the exit status. */
int other_option(int opt, char **argv, const struct option *longopts, void (*usage)(FILE *));

/* A new configuration in *conf. Returns 0, or EXIT_FAILED (reported) without one. */
int new_conf(salvo_conf **conf);

/* Sets the --conf KEY=VALUE arguments kv[0..n) on conf, in order. Returns 0, or the exit
 * status of a bad setting (reported). */
int apply_conf(salvo_conf *conf, char *const *kv, size_t n);

/* Declares the queue name (not durable, not auto-delete) on a channel of its own.
 * Returns 0 or the salvo status (reported). */
int declare_queue(salvo_client *c, const char *name);
/* The same with queue.declare's flags (SALVO_DURABLE, ...) and arguments (NULL: none). */
int declare_queue_with(salvo_client *c, const char *name, unsigned flags,
		       const salvo_table *args);

/*
 * Batching (salvo_batch_opts), the same five options in both programs: their getopt
 * values (above any program's own), their struct option entries, their help text, and
 * their parsing. A program puts CLI_BATCH_LONG_OPTIONS in its long options, CLI_BATCH_HELP
 * in its --help, hands every value from CLI_OPT_BATCH_RECORDS up to cli_batch_option, and
 * calls cli_batch_check once all options are read.
 */
enum {
	CLI_OPT_BATCH_RECORDS = 1024,
	CLI_OPT_BATCH_BYTES,
	CLI_OPT_LINGER_US,
	CLI_OPT_COMPRESSION,
	CLI_OPT_COMPRESSION_LEVEL,
	CLI_OPT_BATCH_END,
};
/* Formatted by hand: clang-format would split the last entry over four lines. */
/* clang-format off */
#define CLI_BATCH_LONG_OPTIONS                                                                     \
	{"batch-records", required_argument, NULL, CLI_OPT_BATCH_RECORDS},                         \
	{"batch-bytes", required_argument, NULL, CLI_OPT_BATCH_BYTES},                             \
	{"linger-us", required_argument, NULL, CLI_OPT_LINGER_US},                                 \
	{"compression", required_argument, NULL, CLI_OPT_COMPRESSION},                             \
	{"compression-level", required_argument, NULL, CLI_OPT_COMPRESSION_LEVEL}
/* clang-format on */
#define CLI_BATCH_MAX_RECORDS (1u << 20) /* salvo_batch_opts.max_records */
#define CLI_BATCH_MAX_BYTES   INT32_MAX	 /* frame_max's own limit; salvo checks the real one */
#define CLI_LINGER_MAX_US     60000000u	 /* a minute */
#define CLI_BATCH_HELP                                                                             \
	"Batching (records packed into envelopes: README \"Batching\"):\n"                         \
	"      --batch-records N  pack up to N records (each a publish) with the same\n"           \
	"                         exchange, routing key and flags into one envelope message,\n"    \
	"                         1..1048576 (default: no batching, unless the configuration\n"    \
	"                         key publisher.batch.records says otherwise); the options\n"      \
	"                         below need it\n"                                                 \
	"      --batch-bytes B    close an envelope at B bytes of records (each costs its\n"       \
	"                         length + 4), before compression, 1..2147483647 (default\n"       \
	"                         65536); salvo refuses more than one body frame of the\n"         \
	"                         negotiated frame_max\n"                                          \
	"      --linger-us U      close an envelope U microseconds after its first record,\n"      \
	"                         1..60000000 (default 1000)\n"                                    \
	"      --compression C    none (default), lz4 or zstd: each envelope's body is one\n"      \
	"                         LZ4 or zstd frame\n"                                             \
	"      --compression-level L  the codec's level: lz4 0..12, zstd 0..19 (default 0:\n"      \
	"                         the codec's own default); needs --compression lz4 or zstd\n"

/* The batching options as given, for the checks between them. */
struct cli_batch {
	salvo_batch_opts opts;
	bool level;	   /* --compression-level given */
	const char *first; /* the first batching option other than --batch-records, or NULL */
};

/* --compression's values, indexed by salvo_compression. */
extern const char *const compression_names[3];

/* One batching option (opt from CLI_OPT_BATCH_RECORDS to CLI_OPT_BATCH_END - 1) into b.
 * Returns 0, or the exit status of the usage error. */
int cli_batch_option(int opt, const char *arg, struct cli_batch *b);

/* The checks between the batching options, once all are read: the others need
 * --batch-records, a level needs a codec and must be in its range. Returns 0, or the exit
 * status of the usage error. */
int cli_batch_check(const struct cli_batch *b);

/* Summary line(s) on stderr of a batching run: records, envelopes, their rates and sizes.
 * records: the records published; seconds: the clock's span. Nothing without batching. */
void cli_batch_summary(const salvo_batch_opts *b, const salvo_pub_stats *st, uint64_t records,
		       double seconds);

/* The batching fields of a JSON object (each followed by ", "): batch_records,
 * batch_bytes, linger_us, compression, compression_level, envelopes, envelopes_per_s,
 * envelope_bytes, envelope_raw_bytes, records_per_envelope (null without envelopes),
 * envelope_bytes_per_record (null without envelopes). */
void cli_batch_json(FILE *f, const salvo_batch_opts *b, const salvo_pub_stats *st, uint64_t records,
		    double seconds);

/* Seconds of CLOCK_MONOTONIC. */
double now_s(void);

/* User plus system time of every thread of the process, salvo's I/O threads included. */
double cpu_s(void);

#endif
