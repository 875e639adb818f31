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

/* Seconds of CLOCK_MONOTONIC. */
double now_s(void);

/* User plus system time of every thread of the process, salvo's I/O threads included. */
double cpu_s(void);

#endif
