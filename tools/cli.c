/* SPDX-License-Identifier: MIT */
/* The command-line programs' shared helpers; see cli.h. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

const char *const confirm_names[3] = {"none", "async", "sync"};

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
	salvo_channel *ch;
	salvo_error err = {0};
	int rc;

	rc = salvo_channel_open(c, &ch, &err);
	if (rc) {
		fail(rc, &err, "open a channel to declare queue '%s'", name);
		return rc;
	}
	rc = salvo_queue_declare(ch, name, 0, NULL, NULL, &err);
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
