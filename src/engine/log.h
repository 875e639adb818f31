/* SPDX-License-Identifier: MIT */
/*
 * Log lines (salvo.h, "Logging"): a client's logger, made from its configuration, and the
 * lines of its events. Internal to libsalvo.
 */
#ifndef SALVO_ENGINE_LOG_H
#define SALVO_ENGINE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "salvo.h"

struct salvo_conf;

/* Where a client's lines go. Read-only once made, but for tls_warned. */
struct sv_log {
	salvo_log_fn fn; /* NULL: stderr */
	void *arg;
	int level; /* the least severe level logged */
	/* The configuration's (it outlives the logger): masked in every line, whatever text
	 * carried it (a broker may echo it in a close text). */
	const char *password;
	/* fn only: the verify_none warning has been given to it (stderr has a flag for the
	 * whole process). */
	atomic_flag tls_warned;
};

/* From the client's own configuration, which must outlive the logger (it keeps a pointer
 * to the password). */
void sv_log_init(struct sv_log *lg, const struct salvo_conf *conf);

/* Overwrite every occurrence of password (not empty) in text with '*'s. Pure. */
void sv_redact(char *text, const char *password);

/* Whether a line of level would be logged (lg NULL: stderr at the default level). Call it
 * before building an expensive line. */
bool sv_log_enabled(const struct sv_log *lg, int level);

/* Log a line (lg NULL: stderr at the default level), formatted only if level passes.
 * Any thread; never call it holding a lock that application calls take. */
void sv_log(const struct sv_log *lg, int level, const char *facility, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The line of an event pushed for salvo_client_poll_event (client.c, sv_event_push). */
void sv_log_event(const struct sv_log *lg, const salvo_event *ev);

/* Once per process on stderr, once per logger with a callback: TLS peer verification is
 * off (tls.c). */
void sv_log_verify_none(struct sv_log *lg);

#endif
