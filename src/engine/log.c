/* SPDX-License-Identifier: MIT */
/*
 * Log lines. A line is formatted only once its level passes the client's log.level, into
 * a buffer on the stack, and handed to the application's callback or written to stderr in
 * one call. The texts come from salvo_error (never a password), endpoints as host:port,
 * and text from the network escaped on arrival (sv_text_escape), so every line is safe to
 * print and to keep.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf_internal.h"
#include "log.h"

/* The default of "log.level", for code with no client's logger at hand. */
#define DEFAULT_LEVEL SALVO_LOG_NOTICE

/* Room for a salvo_error_format (at most 512 bytes) and what frames it. */
#define LINE_MAX 1024

const char *salvo_log_level_name(int level)
{
	switch (level) {
	case SALVO_LOG_ERR:
		return "ERROR";
	case SALVO_LOG_WARNING:
		return "WARNING";
	case SALVO_LOG_NOTICE:
		return "NOTICE";
	case SALVO_LOG_INFO:
		return "INFO";
	case SALVO_LOG_DEBUG:
		return "DEBUG";
	}
	return "LOG";
}

void sv_log_init(struct sv_log *lg, const struct salvo_conf *conf)
{
	lg->fn = conf->log_fn;
	lg->arg = conf->log_arg;
	lg->level = SV_LOG_LEVEL_BASE + (int)conf->log_level;
	lg->password = conf->password;
	atomic_flag_clear(&lg->tls_warned);
}

void sv_redact(char *text, const char *password)
{
	size_t n = strlen(password);
	char *hit = text;

	if (!n)
		return;
	/* Search on past each mask: a password made of '*' would match its own mask. */
	while ((hit = strstr(hit, password))) {
		memset(hit, '*', n);
		hit += n;
	}
}

bool sv_log_enabled(const struct sv_log *lg, int level)
{
	return level <= (lg ? lg->level : DEFAULT_LEVEL);
}

static void emit(const struct sv_log *lg, int level, const char *facility, const char *line)
{
	if (lg && lg->fn)
		lg->fn(lg->arg, level, facility, line);
	else
		fprintf(stderr, "salvo: %s [%s] %s\n", salvo_log_level_name(level), facility, line);
}

void sv_log(const struct sv_log *lg, int level, const char *facility, const char *fmt, ...)
{
	char line[LINE_MAX];
	va_list ap;

	if (!sv_log_enabled(lg, level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* The texts are safe already (salvo_error never holds the password, the handshake
	 * masks an echo), but a broker may echo it later, in any close or reason text. */
	if (lg && lg->password)
		sv_redact(line, lg->password);
	emit(lg, level, facility, line);
}

void sv_log_event(const struct sv_log *lg, const salvo_event *ev)
{
	static const int levels[] = {
		[SALVO_EVENT_CONNECTION_LOST] = SALVO_LOG_WARNING,
		[SALVO_EVENT_RECONNECTING] = SALVO_LOG_NOTICE,
		[SALVO_EVENT_RECONNECTED] = SALVO_LOG_NOTICE,
		[SALVO_EVENT_GIVING_UP] = SALVO_LOG_ERR,
		[SALVO_EVENT_BLOCKED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_UNBLOCKED] = SALVO_LOG_NOTICE,
		[SALVO_EVENT_CONSUMER_CANCELLED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_ENVELOPE_REJECTED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_ENDPOINT_FAILED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_FLOW_STOPPED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_FLOW_RESUMED] = SALVO_LOG_NOTICE,
		[SALVO_EVENT_QUEUE_RENAMED] = SALVO_LOG_NOTICE,
		[SALVO_EVENT_TOPOLOGY_FAILED] = SALVO_LOG_WARNING,
		[SALVO_EVENT_TOPOLOGY_RECOVERED] = SALVO_LOG_NOTICE,
	};
	/* An event kind without a level here (a new one) is a warning, logged by number. */
	int level = (size_t)ev->kind < sizeof levels / sizeof levels[0] && levels[ev->kind]
			? levels[ev->kind]
			: SALVO_LOG_WARNING;
	char e[512];

	if (!sv_log_enabled(lg, level))
		return;
	salvo_error_format(&ev->error, e, sizeof e);
	switch (ev->kind) {
	case SALVO_EVENT_CONNECTION_LOST:
		sv_log(lg, level, "connection", "connection lost: %s", e);
		break;
	case SALVO_EVENT_RECONNECTING:
		/* The first attempt follows the loss, logged just before. */
		if (ev->attempt > 1)
			sv_log(lg, level, "connection",
			       "reconnecting: attempt %u in %u ms (attempt %u failed: %s)",
			       ev->attempt, ev->delay_ms, ev->attempt - 1, e);
		else
			sv_log(lg, level, "connection", "reconnecting: attempt %u in %u ms",
			       ev->attempt, ev->delay_ms);
		break;
	case SALVO_EVENT_RECONNECTED:
		sv_log(lg, level, "connection", "reconnected to %s (attempt %u)", ev->endpoint,
		       ev->attempt);
		break;
	case SALVO_EVENT_GIVING_UP:
		sv_log(lg, level, "connection", "giving up%s%s; the client is closed: %s",
		       ev->reason[0] ? ", " : "", ev->reason, e);
		break;
	case SALVO_EVENT_BLOCKED:
		sv_log(lg, level, "connection", "the broker blocked the connection: %s",
		       ev->reason[0] ? ev->reason : "(no reason given)");
		break;
	case SALVO_EVENT_UNBLOCKED:
		sv_log(lg, level, "connection", "the broker unblocked the connection");
		break;
	case SALVO_EVENT_CONSUMER_CANCELLED:
	case SALVO_EVENT_ENVELOPE_REJECTED:
		sv_log(lg, level, "consumer", "%s", ev->error.text);
		break;
	case SALVO_EVENT_ENDPOINT_FAILED:
		sv_log(lg, level, "connection", "endpoint %s failed (another was used): %s",
		       ev->endpoint, e);
		break;
	case SALVO_EVENT_FLOW_STOPPED:
		sv_log(lg, level, "publisher", "the broker stopped content: %s", ev->reason);
		break;
	case SALVO_EVENT_FLOW_RESUMED:
		sv_log(lg, level, "publisher", "the broker resumed content: %s", ev->reason);
		break;
	case SALVO_EVENT_QUEUE_RENAMED:
		sv_log(lg, level, "topology", "server-named queue '%s' is now '%s'", ev->name,
		       ev->new_name);
		break;
	case SALVO_EVENT_TOPOLOGY_FAILED:
		sv_log(lg, level, "topology", "%s (recovery goes on): %s", ev->reason, e);
		break;
	case SALVO_EVENT_TOPOLOGY_RECOVERED:
		sv_log(lg, level, "topology", "topology recovered: %s", ev->reason);
		break;
	default:
		sv_log(lg, level, "connection", "event %d: %s", (int)ev->kind, e);
		break;
	}
}

void sv_log_verify_none(struct sv_log *lg)
{
	static atomic_flag stderr_warned = ATOMIC_FLAG_INIT;
	atomic_flag *once = lg && lg->fn ? &lg->tls_warned : &stderr_warned;

	if (sv_log_enabled(lg, SALVO_LOG_WARNING) && !atomic_flag_test_and_set(once))
		sv_log(lg, SALVO_LOG_WARNING, "tls",
		       "TLS peer verification is disabled (verify=verify_none): the broker's "
		       "certificate and name are not checked");
}
