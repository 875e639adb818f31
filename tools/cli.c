/* SPDX-License-Identifier: MIT */
/* The command-line programs' shared helpers; see cli.h. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

const char *const confirm_names[3] = {"none", "async", "sync"};
const char *const compression_names[3] = {"none", "lz4", "zstd"};

int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", cli_prog);
	return EXIT_USAGE;
}

void fail(int status, const salvo_error *err, const char *fmt, ...)
{
	va_list ap;

	/* stdio's lock, held across the pieces, keeps other threads' output out of the line. */
	flockfile(stderr);
	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	salvo_error e = {.status = status};
	if (err) {
		e = *err;
		e.status = status;
	}
	char line[512];
	fprintf(stderr, ": %s", salvo_error_format(&e, line, sizeof line));
	fputc('\n', stderr);
	funlockfile(stderr);
}

bool parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

const char *option_name(const struct option *longopts, int val)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

int parse_confirm(const char *arg, salvo_confirm_mode *mode)
{
	for (int m = 0; m < 3; m++)
		if (strcmp(arg, confirm_names[m]) == 0) {
			*mode = (salvo_confirm_mode)m;
			return 0;
		}
	return usage_error("--confirm: '%s' is not none, async or sync", arg);
}

int add_conf(char *arg, char **kv, size_t *n)
{
	if (!strchr(arg, '=') || arg[0] == '=')
		return usage_error("--conf: '%s' is not KEY=VALUE", arg);
	kv[(*n)++] = arg;
	return 0;
}

int other_option(int opt, char **argv, const struct option *longopts, void (*usage)(FILE *))
{
	switch (opt) {
	case 'h':
		usage(stdout);
		return fflush(stdout) || ferror(stdout) ? EXIT_FAILED : 0;
	case 'V':
		printf("%s %s\n", cli_prog, salvo_version());
		return fflush(stdout) || ferror(stdout) ? EXIT_FAILED : 0;
	case ':':
		return usage_error("option --%s needs a value", option_name(longopts, optopt));
	default:
		/* Long options (also "--json=x") are named by argv; a short one in a cluster
		 * only by optopt. */
		if (!optopt || strncmp(argv[optind - 1], "--", 2) == 0)
			return usage_error("unknown option '%s'", argv[optind - 1]);
		return usage_error("unknown option '-%c'", optopt);
	}
}

int new_conf(salvo_conf **conf)
{
	*conf = salvo_conf_new();
	if (!*conf) {
		fail(SALVO_ERR_NO_MEMORY, NULL, "create a configuration");
		return EXIT_FAILED;
	}
	return 0;
}

int apply_conf(salvo_conf *conf, char *const *kv, size_t n)
{
	char errstr[512];

	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(kv[i], '=');
		char *key = strndup(kv[i], (size_t)(eq - kv[i]));
		int rc;

		if (!key) {
			fail(SALVO_ERR_NO_MEMORY, NULL, "--conf %s", kv[i]);
			return EXIT_FAILED;
		}
		rc = salvo_conf_set(conf, key, eq + 1, errstr, sizeof errstr);
		free(key);
		if (rc)
			return usage_error("--conf %s: %s", kv[i], errstr);
	}
	return 0;
}

int declare_queue(salvo_client *c, const char *name)
{
	return declare_queue_with(c, name, 0, NULL);
}

int declare_queue_with(salvo_client *c, const char *name, unsigned flags,
		       const salvo_table *args)
{
	salvo_channel *ch;
	salvo_error err = {0};
	int rc;

	rc = salvo_channel_open(c, &ch, &err);
	if (rc) {
		fail(rc, &err, "open a channel to declare queue '%s'", name);
		return rc;
	}
	rc = salvo_queue_declare(ch, name, flags, args, NULL, &err);
	if (rc) {
		fail(rc, &err, "declare queue '%s'", name);
		salvo_channel_close(ch, NULL);
		return rc;
	}
	rc = salvo_channel_close(ch, &err);
	if (rc)
		fail(rc, &err, "close the channel that declared queue '%s'", name);
	return rc;
}

int parse_range(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!parse_u64(arg, out) || *out < min || *out > max)
		return usage_error("--%s: '%s' is not a number in %" PRIu64 "..%" PRIu64, opt, arg,
				   min, max);
	return 0;
}

int cli_batch_option(int opt, const char *arg, struct cli_batch *b)
{
	static const struct option names[] = {CLI_BATCH_LONG_OPTIONS, {NULL, 0, NULL, 0}};
	const char *name = option_name(names, opt);
	uint64_t v = 0;
	int rc = 0;

	if (opt != CLI_OPT_BATCH_RECORDS && !b->first)
		b->first = name;
	switch (opt) {
	case CLI_OPT_BATCH_RECORDS:
		rc = parse_range(name, arg, 1, CLI_BATCH_MAX_RECORDS, &v);
		b->opts.max_records = (size_t)v;
		break;
	case CLI_OPT_BATCH_BYTES:
		rc = parse_range(name, arg, 1, CLI_BATCH_MAX_BYTES, &v);
		b->opts.max_bytes = (size_t)v;
		break;
	case CLI_OPT_LINGER_US:
		/* 0 would be salvo's default (1000), not "no linger": refused, not misread. */
		rc = parse_range(name, arg, 1, CLI_LINGER_MAX_US, &v);
		b->opts.linger_us = (unsigned)v;
		break;
	case CLI_OPT_COMPRESSION:
		for (int c = 0; c < 3; c++)
			if (!strcmp(arg, compression_names[c])) {
				b->opts.compression = (salvo_compression)c;
				return 0;
			}
		return usage_error("--compression: '%s' is not none, lz4 or zstd", arg);
	default: /* CLI_OPT_COMPRESSION_LEVEL: its range depends on the codec, checked after */
		rc = parse_range(name, arg, 0, 19, &v);
		b->opts.level = (int)v;
		b->level = true;
	}
	return rc;
}

int cli_batch_check(const struct cli_batch *b)
{
	if (b->first && !b->opts.max_records)
		return usage_error("--%s needs --batch-records", b->first);
	if (!b->level)
		return 0;
	if (b->opts.compression == SALVO_COMPRESSION_NONE)
		return usage_error("--compression-level needs --compression lz4 or zstd");
	if (b->opts.compression == SALVO_COMPRESSION_LZ4 && b->opts.level > 12)
		return usage_error("--compression-level: %d is not an lz4 level (0..12)",
				   b->opts.level);
	return 0;
}

static double ratio(double x, double y)
{
	return y > 0 ? x / y : 0;
}

void cli_batch_summary(const salvo_batch_opts *b, const salvo_pub_stats *st, uint64_t records,
		       double seconds)
{
	if (!b->max_records)
		return;
	flockfile(stderr);
	fprintf(stderr, "batching: up to %zu records", b->max_records);
	if (b->max_bytes)
		fprintf(stderr, " or %zu bytes", b->max_bytes);
	if (b->linger_us)
		fprintf(stderr, ", linger %u us", b->linger_us);
	fprintf(stderr, ", compression %s", compression_names[b->compression]);
	if (b->compression != SALVO_COMPRESSION_NONE)
		fprintf(stderr, " level %d", b->level);
	fputc('\n', stderr);
	if (!st->envelopes)
		fprintf(stderr, "envelopes: 0 (salvo sent every record as a message of its own)\n");
	else
		fprintf(stderr,
			"envelopes: %llu in %.3f s: %.0f envelopes/s, %.1f records each, "
			"%.0f records/s; %llu bytes sent (%.1f per record), %.3f of the %llu "
			"bytes before compression\n",
			(unsigned long long)st->envelopes, seconds,
			ratio((double)st->envelopes, seconds),
			ratio((double)records, (double)st->envelopes),
			ratio((double)records, seconds), (unsigned long long)st->envelope_bytes,
			ratio((double)st->envelope_bytes, (double)records),
			ratio((double)st->envelope_bytes, (double)st->envelope_raw_bytes),
			(unsigned long long)st->envelope_raw_bytes);
	funlockfile(stderr);
}

void cli_batch_json(FILE *f, const salvo_batch_opts *b, const salvo_pub_stats *st, uint64_t records,
		    double seconds)
{
	fprintf(f,
		"\"batch_records\": %zu, \"batch_bytes\": %zu, \"linger_us\": %u, "
		"\"compression\": \"%s\", \"compression_level\": %d, \"envelopes\": %llu, "
		"\"envelopes_per_s\": %.1f, \"envelope_bytes\": %llu, "
		"\"envelope_raw_bytes\": %llu, ",
		b->max_records, b->max_bytes, b->linger_us, compression_names[b->compression],
		b->level, (unsigned long long)st->envelopes, ratio((double)st->envelopes, seconds),
		(unsigned long long)st->envelope_bytes, (unsigned long long)st->envelope_raw_bytes);
	if (st->envelopes)
		fprintf(f, "\"records_per_envelope\": %.3f, \"envelope_bytes_per_record\": %.3f, ",
			ratio((double)records, (double)st->envelopes),
			ratio((double)st->envelope_bytes, (double)records));
	else
		fputs("\"records_per_envelope\": null, \"envelope_bytes_per_record\": null, ", f);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
