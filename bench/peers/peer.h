/* SPDX-License-Identifier: MIT */
/*
 * What the rabbitmq-c peers (rabbitmq_c_publish, rabbitmq_c_consume) share: their messages,
 * their number parsing, the broker's close as text, the clock. Each program defines
 * peer_prog, the name that starts its messages.
 */
#ifndef SALVO_BENCH_PEER_H
#define SALVO_BENCH_PEER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

extern const char peer_prog[];

/* "PROG: message (--help lists the options)" on stderr. Returns EXIT_USAGE. */
int peer_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "PROG: [prefix]what[: detail]" on stderr, what formatted from fmt and ap (prefix and
 * detail may be NULL). Returns -1. */
int peer_vfail(const char *prefix, const char *detail, const char *fmt, va_list ap);

/* A whole decimal number in [min, max]: digits only, no sign, suffix or wrap-around. */
bool peer_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The broker's close method as "CODE TEXT" (its text printable ASCII only, other bytes as
 * '?'), or the name of an unexpected method. */
void peer_describe_method(amqp_method_t m, char *buf, size_t size);

/* CLOCK_MONOTONIC in seconds. */
double peer_now_seconds(void);

#endif
