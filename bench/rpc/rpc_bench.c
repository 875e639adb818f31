/* SPDX-License-Identifier: MIT */
/*
 * rpc_bench: direct reply-to round trips per second through salvo_rpc_call, with 1 and
 * with 16 calling threads (or the counts given), and the client's CPU time per call.
 *
 *	rpc_bench [URI] [--calls N] [--threads A,B,...] [--body BYTES] [--rpcs K]
 *
 * URI: else $SALVO_TEST_URI (neither: exit 77, skipped, for the smoke test).
 * --rpcs K makes K RPC clients (K channels, each with its publisher, reply consumer and
 * thread) on the one connection, thread i calling through client i mod K: the figure for
 * spreading calls over several channels.
 *
 * The server runs in a child process (forked before any thread exists): a listener on
 * queue salvo.bench.rpc.<pid> that answers each request with salvo_message_reply, acking it
 * (prefetch 256). The parent, the client, makes one RPC client and, for each thread count
 * T, runs T threads that make N calls in all (N / T each), every reply checked against its
 * request. CPU time is the parent's alone (getrusage RUSAGE_SELF: the calling threads, the
 * RPC client's thread and the I/O thread), over the calls. Latency percentiles are of each
 * call's time, from the start of salvo_rpc_call to its return.
 *
 * Prints one line per thread count:
 *	threads 16: 20000 calls in 1.52 s = 13158 calls/s, client CPU 41.2 us/call,
 *	latency p50 1.1 ms p99 2.9 ms
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <salvo.h>

static const char *uri;
static char queue[64];
static size_t body_len = 16;
static int nrpcs = 1;

static void die(const char *what, int rc, const salvo_error *err)
{
	char line[512];

	fprintf(stderr, "rpc_bench: %s: %d %s\n", what, rc,
		salvo_error_format(err, line, sizeof line));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static salvo_client *connect_to(const char *name)
{
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	int rc;

	if (!conf || salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) ||
	    salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr)) {
		fprintf(stderr, "rpc_bench: %s: %s\n", uri, conf ? errstr : "out of memory");
		exit(1);
	}
	rc = salvo_client_new(conf, &c, &err);
	if (rc)
		die("connect", rc, &err);
	salvo_conf_destroy(conf);
	return c;
}

/* The server: echo each request's body back. arg: its publisher. */
static salvo_listener_action serve(salvo_message *m, void *arg)
{
	size_t len;
	const void *body = salvo_message_body(m, &len);
	salvo_error err;
	int rc = salvo_message_reply(m, arg, &(salvo_msg){.body = body, .len = len}, 5000, &err);

	if (rc)
		die("reply", rc, &err);
	return SALVO_LISTENER_ACK;
}

/* The child: serve until the parent closes the pipe (or dies); ready written once
 * consuming. */
static void server(int ready, int done)
{
	salvo_listener_opts lo = {
	    .prefetch = 256, .declare = true, .declare_flags = SALVO_AUTO_DELETE};
	salvo_client *c = connect_to("salvo rpc_bench server");
	salvo_publisher *p;
	salvo_listener *l;
	salvo_error err;
	char b;
	int rc;

	rc = salvo_publisher_new(c, NULL, &p, &err);
	if (!rc)
		rc = salvo_listener_new(c, queue, serve, p, &lo, &l, &err);
	if (rc)
		die("server", rc, &err);
	if (write(ready, "r", 1) != 1)
		exit(1);
	while (read(done, &b, 1) < 0 && errno == EINTR)
		;
	salvo_listener_destroy(l);
	salvo_publisher_close(p, 5000, NULL);
	salvo_client_close(c, 5000, NULL);
	salvo_client_destroy(c);
	exit(0);
}

struct caller {
	pthread_t t;
	salvo_rpc *rpc;
	int id;
	size_t calls;
	salvo_pub_stats lat; /* its histogram: call times */
};

static void *caller_main(void *arg)
{
	struct caller *k = arg;
	char *body = malloc(body_len + 32);
	salvo_error err;

	if (!body)
		exit(1);
	memset(body, 'x', body_len + 32);
	for (size_t i = 0; i < k->calls; i++) {
		int n = snprintf(body, 32, "%d-%zu", k->id, i);
		size_t len = body_len > (size_t)n ? body_len : (size_t)n;
		salvo_msg req = {.exchange = "", .routing_key = queue, .body = body, .len = len};
		salvo_message *reply;
		size_t rlen;
		const void *rb;
		double t0 = now_s();
		int rc = salvo_rpc_call(k->rpc, &req, 10000, &reply, &err);

		if (rc)
			die("call", rc, &err);
		salvo_stats_latency_record(&k->lat, (uint64_t)((now_s() - t0) * 1e9));
		rb = salvo_message_body(reply, &rlen);
		if (rlen != len || memcmp(rb, body, len) != 0) {
			fprintf(stderr, "rpc_bench: a reply that is not its request's\n");
			exit(1);
		}
		salvo_message_destroy(reply);
	}
	free(body);
	return NULL;
}

static void run(salvo_rpc **rpc, int threads, size_t calls)
{
	struct caller *k = calloc((size_t)threads, sizeof *k);
	salvo_pub_stats lat = {0};
	double t0, c0, secs, cpu;
	size_t total = 0;

	if (!k)
		exit(1);
	c0 = cpu_s();
	t0 = now_s();
	for (int i = 0; i < threads; i++) {
		k[i].rpc = rpc[i % nrpcs];
		k[i].id = i;
		k[i].calls = calls / (size_t)threads + ((size_t)i < calls % (size_t)threads);
		total += k[i].calls;
		if (pthread_create(&k[i].t, NULL, caller_main, &k[i]))
			exit(1);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(k[i].t, NULL);
		salvo_pub_stats_add(&lat, &k[i].lat);
	}
	secs = now_s() - t0;
	cpu = cpu_s() - c0;
	printf("rpcs %d threads %d: %zu calls in %.2f s = %.0f calls/s, client CPU %.1f us/call, "
	       "latency p50 %.2f ms p90 %.2f ms p99 %.2f ms\n",
	       nrpcs, threads, total, secs, (double)total / secs, cpu / (double)total * 1e6,
	       (double)salvo_stats_latency_ns(&lat, 0.5) / 1e6,
	       (double)salvo_stats_latency_ns(&lat, 0.9) / 1e6,
	       (double)salvo_stats_latency_ns(&lat, 0.99) / 1e6);
	free(k);
}

int main(int argc, char **argv)
{
	char threads_arg[128] = "1,16";
	size_t calls = 20000;
	int ready[2], done[2];
	salvo_client *c;
	salvo_rpc *rpc[64];
	salvo_error err;
	pid_t child;
	char b;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	int first = argc > 1 && argv[1][0] != '-' ? 2 : 1;

	uri = first == 2 ? argv[1] : getenv("SALVO_TEST_URI");
	if (!uri) {
		/* 77: meson's "skipped", for the smoke test without a broker. */
		fprintf(stderr, "usage: rpc_bench [URI] [--calls N] [--threads A,B,...] "
				"[--body BYTES] [--rpcs K] (URI: else $SALVO_TEST_URI)\n");
		return 77;
	}
	if ((argc - first) % 2) {
		fprintf(stderr, "rpc_bench: %s needs a value\n", argv[argc - 1]);
		return 2;
	}
	for (int i = first; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--calls") == 0)
			calls = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--threads") == 0)
			snprintf(threads_arg, sizeof threads_arg, "%s", argv[i + 1]);
		else if (strcmp(argv[i], "--body") == 0)
			body_len = strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--rpcs") == 0)
			nrpcs = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "rpc_bench: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!calls || nrpcs < 1 || nrpcs > 64) {
		fprintf(stderr, "rpc_bench: --calls must be at least 1, --rpcs 1 to 64\n");
		return 2;
	}
	snprintf(queue, sizeof queue, "salvo.bench.rpc.%d", (int)getpid());
	if (pipe(ready) || pipe(done))
		return 1;
	child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		close(ready[0]);
		close(done[1]);
		server(ready[1], done[0]);
	}
	close(ready[1]);
	close(done[0]);
	if (read(ready[0], &b, 1) != 1) {
		fprintf(stderr, "rpc_bench: the server did not start\n");
		return 1;
	}

	c = connect_to("salvo rpc_bench client");
	for (int i = 0; i < nrpcs; i++) {
		rc = salvo_rpc_new(c, NULL, &rpc[i], &err);
		if (rc)
			die("salvo_rpc_new", rc, &err);
	}
	/* Warm up: connections, the broker's first deliveries. */
	run(rpc, 1, calls / 20 ? calls / 20 : 1);
	printf("(the line above was the warm-up)\n");
	for (char *save, *tok = strtok_r(threads_arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int t = atoi(tok);
		if (t < 1 || t > 1024) {
			fprintf(stderr, "rpc_bench: --threads takes counts of 1 to 1024\n");
			return 2;
		}
		run(rpc, t, calls);
	}
	salvo_rpc_stats st, sum = {0};
	for (int i = 0; i < nrpcs; i++) {
		salvo_rpc_get_stats(rpc[i], &st);
		sum.calls += st.calls;
		sum.replies += st.replies;
		sum.timeouts += st.timeouts;
		sum.failed += st.failed;
		sum.late += st.late;
		sum.unknown += st.unknown;
		salvo_rpc_destroy(rpc[i]);
	}
	st = sum;
	printf("rpc stats: calls %llu replies %llu timeouts %llu failed %llu late %llu "
	       "unknown %llu\n",
	       (unsigned long long)st.calls, (unsigned long long)st.replies,
	       (unsigned long long)st.timeouts, (unsigned long long)st.failed,
	       (unsigned long long)st.late, (unsigned long long)st.unknown);
	salvo_client_close(c, 5000, NULL);
	salvo_client_destroy(c);
	close(done[1]);
	waitpid(child, &rc, 0);
	return st.replies == st.calls ? 0 : 1;
}
