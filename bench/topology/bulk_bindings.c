/* SPDX-License-Identifier: MIT */
/*
 * bulk_bindings: declaring many bindings, nowait against waited, on one channel of a real
 * broker. One queue is bound to a direct exchange with N routing keys ("k0" ...), either
 * by salvo_queue_bind_nowait for each and one waited passive declare at the end (the
 * broker handles a channel's methods in order, so its answer means every bind is done),
 * or by salvo_queue_bind waiting for each bind-ok. The two alternate, ROUNDS times each,
 * on a fresh exchange and queue per run (deleting the exchange drops its bindings).
 *
 * Each run prints its wall time (until the broker has done the last bind), the time the
 * calls took (until the last returned: for nowait, the client's part), the client's
 * CPU time (user + system of the whole process: the calling thread and the I/O thread)
 * and binds per second; then the medians and their ratio, and the peak RSS.
 *
 * usage: bulk_bindings [--uri URI] [--count N] [--rounds R]
 *        (defaults: $SALVO_TEST_URI or amqp://guest:guest@127.0.0.1:5672, 10000, 3)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "salvo.h"

#define EXCHANGE "salvo.bench.bulk"
#define QUEUE "salvo.bench.bulkq"

static void die(const char *what, int rc, const salvo_error *err)
{
	char buf[512];

	fprintf(stderr, "bulk_bindings: %s: %s\n", what,
		err ? salvo_error_format(err, buf, sizeof buf) : salvo_err2str(rc));
	exit(1);
}

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void fresh(salvo_channel *ch)
{
	salvo_error err;
	int rc;

	if ((rc = salvo_exchange_delete(ch, EXCHANGE, 0, &err)) ||
	    (rc = salvo_queue_delete(ch, QUEUE, 0, NULL, &err)) ||
	    (rc = salvo_exchange_declare(ch, EXCHANGE, "direct", 0, NULL, &err)) ||
	    (rc = salvo_queue_declare(ch, QUEUE, 0, NULL, NULL, &err)))
		die("setting up", rc, &err);
}

/* One run: n binds, nowait or waited; wall and CPU seconds until the broker has them, and
 * wall seconds until the last call returned. */
static void run(salvo_channel *ch, unsigned n, int nowait, double *wall, double *cpu,
		double *calls)
{
	salvo_error err;
	char key[16];
	double w0, c0;
	int rc;

	fresh(ch);
	w0 = wall_s();
	c0 = cpu_s();
	for (unsigned i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%u", i);
		rc = nowait ? salvo_queue_bind_nowait(ch, QUEUE, EXCHANGE, key, NULL, &err)
			    : salvo_queue_bind(ch, QUEUE, EXCHANGE, key, NULL, &err);
		if (rc)
			die("queue.bind", rc, &err);
	}
	*calls = wall_s() - w0;
	rc = salvo_queue_declare(ch, QUEUE, SALVO_PASSIVE, NULL, NULL, &err);
	if (rc)
		die("passive queue.declare", rc, &err);
	*wall = wall_s() - w0;
	*cpu = cpu_s() - c0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	const char *uri = getenv("SALVO_TEST_URI") ? getenv("SALVO_TEST_URI")
						   : "amqp://guest:guest@127.0.0.1:5672";
	static const struct option longopts[] = {{"uri", required_argument, NULL, 'u'},
						 {"count", required_argument, NULL, 'n'},
						 {"rounds", required_argument, NULL, 'r'},
						 {"topology-recovery", required_argument, NULL, 't'},
						 {NULL, 0, NULL, 0}};
	unsigned n = 10000, rounds = 3, record = 1;
	char errstr[256];
	salvo_conf *conf;
	salvo_client *c;
	salvo_channel *ch;
	salvo_error err;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			uri = optarg;
			break;
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			record = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: bulk_bindings [--uri URI] [--count N] [--rounds R] "
					"[--topology-recovery 0|1]\n");
			return 2;
		}
	}
	if (!n || !rounds || rounds > 100) {
		fprintf(stderr, "bulk_bindings: --count must be at least 1, --rounds 1..100\n");
		return 2;
	}
	conf = salvo_conf_new();
	/* Topology recovery records every binding (the default): room for them all. */
	char max[32];
	snprintf(max, sizeof max, "%u", n + 16);
	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "topology_recovery", record ? "1" : "0", errstr,
			   sizeof errstr) ||
	    salvo_conf_set(conf, "topology_recovery.max_entities", max, errstr, sizeof errstr)) {
		fprintf(stderr, "bulk_bindings: %s\n", conf ? errstr : "out of memory");
		return 1;
	}
	rc = salvo_client_new(conf, &c, &err);
	salvo_conf_destroy(conf);
	if (rc)
		die("connect", rc, &err);
	if ((rc = salvo_channel_open(c, &ch, &err)))
		die("channel.open", rc, &err);

	double wall[2][100], cpu[2][100];
	printf("%u bindings (one queue, a direct exchange, keys k0..k%u), %u rounds, topology "
	       "recovery %s\n",
	       n, n - 1, rounds, record ? "on (recorded)" : "off");
	printf("%-8s %5s %10s %10s %10s %12s %12s\n", "mode", "round", "wall s", "calls s",
	       "cpu s", "binds/s", "cpu us/bind");
	for (unsigned r = 0; r < rounds; r++) {
		for (int nowait = 1; nowait >= 0; nowait--) {
			double *w = &wall[nowait][r], *cp = &cpu[nowait][r], calls;
			run(ch, n, nowait, w, cp, &calls);
			printf("%-8s %5u %10.3f %10.3f %10.3f %12.0f %12.2f\n",
			       nowait ? "nowait" : "waited", r + 1, *w, calls, *cp, n / *w,
			       *cp * 1e6 / n);
		}
	}
	double wn = median(wall[1], rounds), ww = median(wall[0], rounds);
	double cn = median(cpu[1], rounds), cw = median(cpu[0], rounds);
	printf("median: nowait %.3f s wall, %.3f s cpu; waited %.3f s wall, %.3f s cpu\n", wn, cn,
	       ww, cw);
	printf("waited/nowait: wall %.2fx, cpu %.2fx\n", ww / wn, cw / cn);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("peak RSS %ld KiB\n", ru.ru_maxrss);

	if ((rc = salvo_exchange_delete(ch, EXCHANGE, 0, &err)) ||
	    (rc = salvo_queue_delete(ch, QUEUE, 0, NULL, &err)) ||
	    (rc = salvo_channel_close(ch, &err)) || (rc = salvo_client_close(c, 10000, &err)))
		die("cleaning up", rc, &err);
	salvo_client_destroy(c);
	return 0;
}
