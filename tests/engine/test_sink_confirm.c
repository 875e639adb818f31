/* SPDX-License-Identifier: MIT */
/*
 * Publisher confirms against salvo-sink's scripted ack patterns: acks out of order,
 * nacks every Nth tag, returns, an ack for a tag never published, a forced close, a reset
 * connection and a sink that stops reading (also while a publisher closes). In each, every
 * message published gets exactly one outcome, in order, and the counters add up; nothing
 * hangs.
 *
 * usage: test_sink_confirm CASE SALVO_SINK. Each case starts its own sink on an ephemeral
 * 127.0.0.1 port and stops it by PID. No RabbitMQ needed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"
#include "sink_child.h"

/* A client of the sink, with heartbeat and read_hold_us when given. */
static salvo_client *connect_sink_holding(const char *heartbeat, const char *read_hold_us)
{
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;

	CHECK(conf);
	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", sink_port);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	if (heartbeat)
		CHECK(salvo_conf_set(conf, "heartbeat", heartbeat, errstr, sizeof errstr) == 0);
	if (read_hold_us)
		CHECK(salvo_conf_set(conf, "read_hold_us", read_hold_us, errstr, sizeof errstr) ==
		      0);
	/* These cases are about what the faults do to confirms, so the connection must end
	 * with them (test_reconnect.c covers recovering from them). */
	CHECK(salvo_conf_set(conf, "reconnect", "0", errstr, sizeof errstr) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	return c;
}

static salvo_client *connect_sink(const char *heartbeat)
{
	return connect_sink_holding(heartbeat, NULL);
}

/* Outcomes as the callback saw them, per message by opaque index. */
struct tally {
	uint64_t next_seq;
	uint64_t n[4];
	uint8_t *kind_of;
	size_t cap;
	int fail_status;
	uint16_t reply_code;
};

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct tally *t = arg;
	size_t idx = (size_t)(uintptr_t)o->opaque;

	CHECK(o->seq == t->next_seq);
	t->next_seq++;
	t->n[o->kind]++;
	CHECK(idx < t->cap && t->kind_of[idx] == 0xff);
	t->kind_of[idx] = (uint8_t)o->kind;
	if (o->kind == SALVO_OUTCOME_FAILED) {
		CHECK(o->error);
		t->fail_status = o->error->status;
	}
	if (o->kind == SALVO_OUTCOME_RETURNED)
		t->reply_code = o->reply_code;
}

static salvo_publisher *async_publisher(salvo_client *c, struct tally *t, size_t cap,
					size_t window)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = window,
				     .on_outcome = on_outcome, .on_outcome_arg = t};
	salvo_publisher *p;
	salvo_error err;

	t->next_seq = 1;
	t->cap = cap;
	t->kind_of = malloc(cap);
	CHECK(t->kind_of);
	memset(t->kind_of, 0xff, cap);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	return p;
}

/* Publish up to n messages (stopping at the first error); returns how many went in. */
static size_t publish_n(salvo_publisher *p, size_t n, const char *rk, unsigned flags,
			int *status)
{
	salvo_error err;
	size_t i;

	*status = 0;
	for (i = 0; i < n; i++) {
		salvo_msg m = {"", rk, "0123456789", 10, flags, .opaque = (void *)(uintptr_t)i};
		*status = salvo_publish_msg(p, &m, 10000, NULL, &err);
		if (*status)
			break;
	}
	return i;
}

/* Every message published has exactly one outcome and the counters agree. */
static void check_accounted(salvo_publisher *p, const struct tally *t, size_t published)
{
	salvo_pub_stats st;

	salvo_publisher_stats(p, &st);
	printf("published %llu: acked %llu nacked %llu returned %llu failed %llu in flight %llu\n",
	       (unsigned long long)st.published, (unsigned long long)st.acked,
	       (unsigned long long)st.nacked, (unsigned long long)st.returned,
	       (unsigned long long)st.failed, (unsigned long long)st.in_flight);
	CHECK(st.published == published && st.in_flight == 0);
	CHECK(st.acked + st.nacked + st.returned + st.failed == published);
	CHECK(t->next_seq == published + 1);
	CHECK(t->n[0] == st.acked && t->n[1] == st.nacked && t->n[2] == st.returned &&
	      t->n[3] == st.failed);
	for (size_t i = 0; i < published; i++)
		CHECK(t->kind_of[i] != 0xff);
}

static void finish(salvo_client *c, salvo_publisher *p, struct tally *t, bool clean)
{
	salvo_error err;
	int rc = salvo_publisher_close(p, 5000, &err);

	if (clean)
		OK(rc);
	rc = salvo_client_close(c, 5000, &err);
	if (clean)
		OK(rc);
	salvo_client_destroy(c);
	free(t->kind_of);
}

static void case_out_of_order(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status;

	start_sink("--ack-out-of-order", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 200000, 4096);
	CHECK(publish_n(p, 200000, "q", 0, &status) == 200000 && status == 0);
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	check_accounted(p, &t, 200000);
	CHECK(t.n[SALVO_OUTCOME_ACKED] == 200000);
	finish(c, p, &t, true);
}

static void case_nack_every(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status, rc;

	start_sink("--nack-every", "10", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 100000, 4096);
	CHECK(publish_n(p, 100000, "q", 0, &status) == 100000 && status == 0);
	rc = salvo_publisher_wait_confirms(p, 30000, &err);
	CHECK(rc == SALVO_ERR_NACKED);
	check_accounted(p, &t, 100000);
	/* The tags are the sequence numbers, 1-based; message i is tag i + 1. */
	for (size_t i = 0; i < 100000; i++)
		CHECK(t.kind_of[i] ==
		      ((i + 1) % 10 == 0 ? SALVO_OUTCOME_NACKED : SALVO_OUTCOME_ACKED));
	CHECK(t.n[SALVO_OUTCOME_NACKED] == 10000);
	finish(c, p, &t, true);
}

static void case_returns(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int rc;

	start_sink("--return-unroutable", "nowhere", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 30000, 1024);
	for (size_t i = 0; i < 30000; i++) {
		salvo_msg m = {"", i % 7 == 3 ? "nowhere" : "q", "r", 1, SALVO_MSG_MANDATORY,
			       .opaque = (void *)(uintptr_t)i};
		OK(salvo_publish_msg(p, &m, 10000, NULL, &err));
	}
	/* Returned, none nacked: the wait says returned (it said nacked, 0 being nacked). */
	rc = salvo_publisher_wait_confirms(p, 30000, &err);
	CHECK(rc == SALVO_ERR_RETURNED && err.reply_code == 312);
	check_accounted(p, &t, 30000);
	for (size_t i = 0; i < 30000; i++)
		CHECK(t.kind_of[i] ==
		      (i % 7 == 3 ? SALVO_OUTCOME_RETURNED : SALVO_OUTCOME_ACKED));
	CHECK(t.reply_code == 312);
	finish(c, p, &t, true);
}

/* An ack for a tag never published is the broker breaking the protocol: the connection
 * ends with 503, and every message still waiting fails with that error. */
static void case_unknown_tag(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status, rc;
	size_t n;

	start_sink("--ack-unknown-tag", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 50000, 4096);
	n = publish_n(p, 50000, "q", 0, &status);
	printf("published %zu, then %d\n", n, status);
	rc = salvo_publisher_wait_confirms(p, 10000, &err);
	printf("wait_confirms: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED || rc == SALVO_ERR_PROTOCOL);
	CHECK(strstr(err.text, "delivery tag") != NULL);
	check_accounted(p, &t, n);
	/* Whatever was published after the sink's first confirms failed (how many depends on
	 * how far the producer got before the bad ack arrived: often none but the first). */
	CHECK(t.n[SALVO_OUTCOME_ACKED] + t.n[SALVO_OUTCOME_FAILED] == n);
	CHECK(salvo_publish(p, "", "q", "x", 1, 0, 1000, &err) == SALVO_ERR_CLOSED);
	finish(c, p, &t, false);
}

/* The sink closes the connection with 320 after 5000 messages. */
static void case_close_after(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status, rc;
	size_t n;

	start_sink("--close-after", "5000", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 20000, 1024);
	n = publish_n(p, 20000, "q", 0, &status);
	rc = salvo_publisher_wait_confirms(p, 10000, &err);
	printf("published %zu (%d); wait_confirms: %d (%s)\n", n, status, rc, err.text);
	CHECK(rc == 320 && err.kind == SALVO_ERROR_CONNECTION);
	check_accounted(p, &t, n);
	CHECK(t.n[SALVO_OUTCOME_ACKED] <= 5000 && t.fail_status == 320);
	finish(c, p, &t, false);
}

/* The sink resets the connection: every message without an ack fails, none vanishes. */
static void case_drop_after(void)
{
	struct tally t = {0};
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status, rc;
	size_t n;

	start_sink("--drop-after", "3000", NULL);
	c = connect_sink(NULL);
	p = async_publisher(c, &t, 20000, 1024);
	n = publish_n(p, 20000, "q", 0, &status);
	rc = salvo_publisher_wait_confirms(p, 10000, &err);
	printf("published %zu (%d); wait_confirms: %d (%s)\n", n, status, rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && err.kind == SALVO_ERROR_CONNECTION);
	check_accounted(p, &t, n);
	CHECK(t.n[SALVO_OUTCOME_FAILED] >= 1 && t.n[SALVO_OUTCOME_ACKED] <= 3000);
	finish(c, p, &t, false);
}

/*
 * The sink stops reading after 2000 messages but stays alive (it still sends heartbeats),
 * like a broker under a memory alarm: the confirms stop, the wait times out with the rest
 * still tracked, and closing does not hang.
 */
static void case_stall_after(void)
{
	struct tally t = {0};
	salvo_pub_stats st;
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	int status, rc;
	size_t n;

	start_sink("--stall-after", "2000", "--heartbeat", "1", NULL);
	c = connect_sink("1");
	p = async_publisher(c, &t, 5001, 8192);
	n = publish_n(p, 5000, "q", 0, &status);
	CHECK(n == 5000 && status == 0);
	rc = salvo_publisher_wait_confirms(p, 2000, &err);
	printf("wait_confirms: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_TIMEOUT);
	salvo_publisher_stats(p, &st);
	printf("acked %llu in flight %llu\n", (unsigned long long)st.acked,
	       (unsigned long long)st.in_flight);
	CHECK(st.acked == 2000 && st.in_flight == 3000 && t.next_seq == 2001);
	/* Heartbeats from the sink keep the connection up: 2 x heartbeat later it still is. */
	sleep(3);
	OK(salvo_publish_msg(p, &(salvo_msg){"", "q", "x", 1, 0, .opaque = (void *)(uintptr_t)5000}, 1000,
			     NULL, &err));
	/* The sink goes away: the messages still waiting fail, and closing is prompt. (A
	 * sink that stays and never reads while bytes are in a send: close-stalled.) */
	stop_sink();
	rc = salvo_publisher_wait_confirms(p, 10000, &err);
	printf("after the sink stopped: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED && err.kind == SALVO_ERROR_CONNECTION);
	check_accounted(p, &t, 5001);
	CHECK(t.n[SALVO_OUTCOME_ACKED] == 2000 && t.n[SALVO_OUTCOME_FAILED] == 3001);
	finish(c, p, &t, false);
}

/*
 * A sink that stops reading and stays, no heartbeats to call it dead: a send of the
 * publisher's bytes never finishes. salvo_publisher_close(p, 500) still returns in about
 * half a second (the flush's timeout, then at most 100 ms for the detach), and the I/O
 * thread frees the publisher once the send ends — here when the sink goes away. The
 * sanitizer pass of scripts/test.sh (AddressSanitizer, LeakSanitizer) checks that the
 * publisher freed in the background is freed once, not read after, and not leaked.
 */
static void case_close_stalled(void)
{
	static char body[65536];
	salvo_pub_stats st;
	salvo_client *c;
	salvo_publisher *p;
	salvo_error err;
	double t0, took;
	size_t n = 0;
	int rc;

	start_sink("--stall-after", "100", "--heartbeat", "0", NULL);
	c = connect_sink("0");
	OK(salvo_publisher_new(c, NULL, &p, &err));
	/* Until the ring stays full through a pause: the socket's buffers are full, and a
	 * send waits in the kernel with the ring's bytes. */
	for (int round = 0, more = 1; more; round++) {
		struct timespec pause = {0, 100 * 1000 * 1000};

		CHECK(round < 300);
		for (more = 0; (rc = salvo_publish(p, "", "q", body, sizeof body, 0, 0, &err)) == 0;
		     more++)
			n++;
		CHECK(rc == SALVO_ERR_WOULD_BLOCK);
		nanosleep(&pause, NULL);
	}
	printf("published %zu messages of 64 KiB before the ring stayed full\n", n);
	CHECK(n > 64);
	t0 = now_s();
	rc = salvo_publisher_close(p, 500, &err);
	took = now_s() - t0;
	printf("salvo_publisher_close(p, 500): %d (%s) after %.3f s\n", rc, err.text, took);
	CHECK(rc == SALVO_ERR_TIMEOUT);
	CHECK(took >= 0.45 && took < 2.0);
	/* Still the I/O thread's: its numbers are the client's until it is freed. */
	salvo_client_stats(c, &st);
	CHECK(st.published == n);
	stop_sink();
	rc = salvo_client_close(c, 5000, &err);
	printf("salvo_client_close after the sink went: %d (%s)\n", rc, err.text);
	salvo_client_stats(c, &st);
	CHECK(st.published == n);
	salvo_client_destroy(c);
}

#define SYNC_THREADS 64
#define SYNC_EACH 2000

struct sync_worker {
	salvo_client *c;
	int status;
	salvo_error err;
};

static void *sync_work(void *arg)
{
	struct sync_worker *w = arg;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;

	w->status = salvo_publisher_new(w->c, &opts, &p, &w->err);
	if (w->status)
		return NULL;
	for (int i = 0; i < SYNC_EACH && !w->status; i++)
		w->status = salvo_publish(p, "", "q", "s", 1, 0, 10000, &w->err);
	int rc = salvo_publisher_close(p, 5000, NULL);
	if (!w->status)
		w->status = rc;
	return NULL;
}

/* 64 threads publishing synchronously: every publish acked, the counters agree. */
static void case_sync_64(void)
{
	struct sync_worker w[SYNC_THREADS];
	pthread_t th[SYNC_THREADS];
	salvo_pub_stats st;
	salvo_client *c;
	salvo_error err;

	start_sink("--ack-out-of-order", NULL);
	c = connect_sink(NULL);
	for (int i = 0; i < SYNC_THREADS; i++) {
		w[i] = (struct sync_worker){.c = c};
		CHECK(pthread_create(&th[i], NULL, sync_work, &w[i]) == 0);
	}
	for (int i = 0; i < SYNC_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (w[i].status)
			fprintf(stderr, "thread %d: %d %s\n", i, w[i].status, w[i].err.text);
		CHECK(w[i].status == 0);
	}
	salvo_client_stats(c, &st);
	printf("sync: published %llu acked %llu\n", (unsigned long long)st.published,
	       (unsigned long long)st.acked);
	CHECK(st.published == SYNC_THREADS * SYNC_EACH && st.acked == st.published &&
	      st.latency_count == st.published);
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/*
 * A producer that starts to wait cuts a held read short. With read_hold_us at 50 ms, each
 * small read of an async publisher's acks (a few thousand messages a second, never
 * waiting for its window) holds the next read for 50 ms; a sync publisher on the same
 * connection must not sit those holds out (on average 25 ms each): its confirm comes
 * from the sink in well under a millisecond (park.c, sv_waiter_kick; io_pub.c,
 * sv_recv_hold_cut).
 */
struct streamer {
	salvo_client *c;
	atomic_bool stop;
	uint64_t sent;
	int status;
	salvo_error err;
};

static void *stream_async(void *arg)
{
	struct streamer *s = arg;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 16384};
	salvo_publisher *p;

	s->status = salvo_publisher_new(s->c, &opts, &p, &s->err);
	if (s->status)
		return NULL;
	while (!atomic_load(&s->stop) && !s->status) {
		s->status = salvo_publish(p, "", "q", "a", 1, 0, 10000, &s->err);
		s->sent += !s->status;
		usleep(200);
	}
	if (!s->status)
		s->status = salvo_publisher_wait_confirms(p, 10000, &s->err);
	int rc = salvo_publisher_close(p, 5000, NULL);
	if (!s->status)
		s->status = rc;
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void case_hold_cut(void)
{
	enum { N = 41 };
	struct streamer s = {0};
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;
	salvo_io_stats io;
	salvo_error err;
	pthread_t th;
	double ms[N];

	start_sink(NULL);
	s.c = connect_sink_holding(NULL, "50000");
	CHECK(pthread_create(&th, NULL, stream_async, &s) == 0);
	usleep(300 * 1000); /* the async stream's acks come and are held */
	OK(salvo_publisher_new(s.c, &opts, &p, &err));
	for (int i = 0; i < N; i++) {
		double t0 = now_s();

		OK(salvo_publish(p, "", "q", "s", 1, 0, 10000, &err));
		ms[i] = (now_s() - t0) * 1000;
		usleep(7 * 1000); /* begin the next wait at another point of the holds */
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	if (s.status)
		fprintf(stderr, "async: %d %s\n", s.status, s.err.text);
	CHECK(s.status == 0 && s.sent > 0);
	salvo_client_io_stats(s.c, &io);
	qsort(ms, N, sizeof ms[0], cmp_double);
	printf("sync confirms behind held reads: min %.1f ms, median %.1f ms, max %.1f ms; "
	       "%llu async sent, %llu ack holds in %llu reads\n",
	       ms[0], ms[N / 2], ms[N - 1], (unsigned long long)s.sent,
	       (unsigned long long)io.ack_holds, (unsigned long long)io.recvs);
	/* Holds happened (a read every 50 ms or so), and the sync waits did not sit them
	 * out: that would put the median near half a hold, 25 ms. */
	CHECK(io.ack_holds > 0);
	CHECK(ms[N / 2] < 10);
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_client_close(s.c, 5000, &err));
	salvo_client_destroy(s.c);
}

static const struct test_case cases[] = {
    {"out-of-order", .run = case_out_of_order},
    {"nack-every", .run = case_nack_every},
    {"returns", .run = case_returns},
    {"unknown-tag", .run = case_unknown_tag},
    {"close-after", .run = case_close_after},
    {"drop-after", .run = case_drop_after},
    {"stall-after", .run = case_stall_after},
    {"sync-64", .run = case_sync_64},
    {"close-stalled", .run = case_close_stalled},
    {"hold-cut", .run = case_hold_cut},
};

int main(int argc, char **argv)
{
	sink_exe = argc > 2 ? argv[2] : NULL;
	atexit(stop_sink);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], need_sink, stop_sink);
}
