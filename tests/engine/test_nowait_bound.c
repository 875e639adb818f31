/* SPDX-License-Identifier: MIT */
/*
 * Nowait calls against a broker that reads nothing (salvo-sink --stall-after): the I/O
 * thread stops taking methods once 256 KiB of control frames wait behind the send in
 * flight, so a loop of nowait calls is held back: the call that finds no room times out
 * after rpc_timeout, having sent no more than the sockets' buffers and that bound hold,
 * and the client's memory has not grown with the calls made.
 *
 * usage: test_nowait_bound CASE SALVO_SINK. No RabbitMQ needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"
#include "sink_child.h"

/* The third figure of /proc/sys/net/ipv4/<name>: the most a socket's buffer grows to. */
static long sysctl_max(const char *name)
{
	char path[128];
	long lo, def, max;
	FILE *f;

	snprintf(path, sizeof path, "/proc/sys/net/ipv4/%s", name);
	f = fopen(path, "r");
	CHECK(f && fscanf(f, "%ld %ld %ld", &lo, &def, &max) == 3);
	fclose(f);
	return max;
}

static void case_stalled_sink(void)
{
	static char blob[4000];
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_table *args = salvo_table_new();
	salvo_error err;
	/* What may leave the client before the hold: both sockets' buffers, the bound, one
	 * frame; and the calls that would show a loop not held back (64 MiB more). */
	long room = sysctl_max("tcp_rmem") + sysctl_max("tcp_wmem") + 256 * 1024 + 8192;
	long frame = (long)sizeof blob + 100, cap = (room + 64L * 1024 * 1024) / frame;
	long rss0, rss1, i;
	double t0, waited;
	int rc = 0;

	CHECK(conf && args);
	OK(salvo_table_add_bytes(args, "x-blob", blob, sizeof blob));
	start_sink("--stall-after", "1", "--heartbeat", "0", NULL);
	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", sink_port);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "heartbeat", "0", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect", "0", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "rpc_timeout", "1000", errstr, sizeof errstr) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	OK(salvo_channel_open(c, &ch, &err));
	/* A few nowait calls while the sink reads, so the buffers are warm. */
	for (i = 0; i < 100; i++)
		OK(salvo_queue_bind_nowait(ch, "q", "x", "k", args, &err));
	OK(salvo_queue_declare(ch, "q", SALVO_PASSIVE, NULL, NULL, &err));
	/* The sink reads nothing after this message. */
	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_publish(p, "", "q", "x", 1, 0, 5000, &err));
	OK(salvo_publisher_flush(p, 5000, &err));

	rss0 = peak_rss_kib();
	t0 = now_s();
	for (i = 0; i < cap; i++) {
		t0 = now_s();
		rc = salvo_queue_bind_nowait(ch, "q", "x", "k", args, &err);
		if (rc)
			break;
	}
	waited = now_s() - t0;
	rss1 = peak_rss_kib();
	printf("%ld nowait calls of %ld bytes returned 0 (%ld KiB; room %ld KiB), then %d (%s) "
	       "after %.2f s; peak RSS %ld KiB before, %ld KiB after\n",
	       i, frame, i * frame / 1024, room / 1024, rc, err.text, waited, rss0, rss1);
	CHECK(rc == SALVO_ERR_TIMEOUT);
	CHECK(i * frame <= room);
	CHECK(waited >= 0.9 && waited < 5);
	CHECK(!rss_checked() || rss1 - rss0 < 4096);

	/* The sink goes away: the connection ends, the calls say so. */
	stop_sink();
	rc = salvo_queue_bind_nowait(ch, "q", "x", "k", args, &err);
	for (t0 = now_s(); rc == SALVO_ERR_TIMEOUT && now_s() - t0 < 10;)
		rc = salvo_queue_bind_nowait(ch, "q", "x", "k", args, &err);
	CHECK(rc == SALVO_ERR_CLOSED || rc == SALVO_ERR_IO);
	salvo_publisher_close(p, 1000, NULL);
	salvo_channel_close(ch, NULL);
	salvo_client_destroy(c);
	salvo_table_destroy(args);
}

static const struct test_case cases[] = {
    {"stalled sink", .run = case_stalled_sink},
};

int main(int argc, char **argv)
{
	sink_exe = argc > 2 ? argv[2] : NULL;
	atexit(stop_sink);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], need_sink, stop_sink);
}
