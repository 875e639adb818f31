/* SPDX-License-Identifier: MIT */
/*
 * Statistics against the real RabbitMQ, read as a monitoring system would: the JSON
 * documents of the statistics callback across a reconnection (rabbitmqctl
 * close_connection), parsed by Python's json module and checked against the C API by
 * check_stats.py; and the Prometheus text of salvo_stats_prometheus, parsed by the same
 * script.
 *   test_stats CASE     CASE: json reconnect | json off | prometheus | prometheus clients
 * Needs SALVO_TEST_URI and SALVO_SOURCE_ROOT (for scripts/rabbitmq.sh ctl and the script).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../rabbit.h"

#define Q "salvo.test.stats"
enum { MESSAGES = 20000, INTERVAL_MS = 100 };

struct docs {
	FILE *f;
	_Atomic int count;
	pthread_t poller;  /* the thread that polls events: the callback must run there */
	_Atomic int wrong_thread;
	_Atomic int stop, started;
	salvo_client *c;
	_Atomic int reconnected;
};

static void on_stats(salvo_client *c, const char *json, size_t len, void *arg)
{
	struct docs *d = arg;

	if (!pthread_equal(pthread_self(), d->poller) || c != d->c)
		atomic_store(&d->wrong_thread, 1);
	CHECK(strlen(json) == len);
	fwrite(json, 1, len, d->f);
	fputc('\n', d->f);
	atomic_fetch_add(&d->count, 1);
}

static void *poll_main(void *arg)
{
	struct docs *d = arg;
	salvo_event ev;

	d->poller = pthread_self();
	atomic_store(&d->started, 1);
	while (!atomic_load(&d->stop))
		if (salvo_client_poll_event(d->c, &ev, 50) == 0 &&
		    ev.kind == SALVO_EVENT_RECONNECTED)
			atomic_store(&d->reconnected, 1);
	return NULL;
}

/* Wait (at most 10 s) until n more documents have come. */
static void wait_docs(struct docs *d, int n)
{
	int want = atomic_load(&d->count) + n;
	double t0 = now_s();

	while (atomic_load(&d->count) < want && now_s() - t0 < 10)
		usleep(10000);
	CHECK(atomic_load(&d->count) >= want);
}

/* A client named name with statistics.interval_ms interval and the statistics callback fn
 * (NULL: none) given arg. */
static salvo_client *stats_client(const char *name, const char *interval, salvo_stats_fn fn,
				  void *arg)
{
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;

	CHECK(conf);
	OK(salvo_conf_set(conf, "uri", rabbit_test_uri(), errstr, sizeof errstr));
	OK(salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr));
	/* No heartbeats: after the run nothing moves, so the last document and the C API
	 * read after it must agree. */
	OK(salvo_conf_set(conf, "heartbeat", "0", errstr, sizeof errstr));
	OK(salvo_conf_set(conf, "statistics.interval_ms", interval, errstr, sizeof errstr));
	if (fn)
		OK(salvo_conf_set_stats_cb(conf, fn, arg));
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	return c;
}

static void publish(salvo_publisher *p, const char *q, int from, int to)
{
	char body[64];
	salvo_error err;

	for (int i = from; i < to; i++) {
		int n = snprintf(body, sizeof body, "stats %d", i);
		OK(salvo_publish(p, "", q, body, (size_t)n, 0, 10000, &err));
	}
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
}

/* Take n messages from cons, acking each. */
static void consume(salvo_consumer *cons, int n)
{
	salvo_message *m;
	salvo_error err;

	for (int i = 0; i < n; i++) {
		OK(salvo_consumer_get(cons, 10000, &m, &err));
		OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
	}
}

/* st's fields, as the documents name them. */
static void put_pub(FILE *f, const salvo_pub_stats *st)
{
	fprintf(f,
		"\"published\":%llu,\"acked\":%llu,\"nacked\":%llu,\"returned\":%llu,"
		"\"failed\":%llu,\"in_flight\":%llu,\"resent\":%llu,\"possibly_lost\":%llu,"
		"\"returns_unmatched\":%llu,\"returns_dropped\":%llu,\"envelopes\":%llu,\"envelope_bytes\":%llu,"
		"\"envelope_raw_bytes\":%llu,\"latency_count\":%llu,\"latency_sum_ns\":%llu,"
		"\"latency_max_ns\":%llu",
		(unsigned long long)st->published, (unsigned long long)st->acked,
		(unsigned long long)st->nacked, (unsigned long long)st->returned,
		(unsigned long long)st->failed, (unsigned long long)st->in_flight,
		(unsigned long long)st->resent, (unsigned long long)st->possibly_lost,
		(unsigned long long)st->returns_unmatched, (unsigned long long)st->returns_dropped,
		(unsigned long long)st->envelopes,
		(unsigned long long)st->envelope_bytes, (unsigned long long)st->envelope_raw_bytes,
		(unsigned long long)st->latency_count, (unsigned long long)st->latency_sum_ns,
		(unsigned long long)st->latency_max_ns);
}

/* What the C API says, as JSON for check_stats.py. */
/* The one publisher p: check_stats.py finds it as the document's only one. */
static void write_api(const char *path, salvo_client *c, salvo_publisher *p,
		      salvo_consumer *cons, const char *endpoint)
{
	FILE *f = fopen(path, "w");
	salvo_pub_stats st;
	salvo_consume_stats cs;
	salvo_consumer_stats k;
	salvo_io_stats io;

	CHECK(f);
	salvo_client_io_stats(c, &io);
	fprintf(f, "{\"reconnects\":%llu,\"endpoint\":\"%s\",",
		(unsigned long long)salvo_client_reconnects(c), endpoint);
	salvo_client_stats(c, &st);
	fprintf(f, "\"client\":{");
	put_pub(f, &st);
	fprintf(f, "},\"publishers\":[{");
	salvo_publisher_stats(p, &st);
	put_pub(f, &st);
	salvo_client_consume_stats(c, &cs);
	fprintf(f,
		"}],\"consume\":{\"delivered\":%llu,\"buffered_bytes\":%llu,\"buffered_peak\":%llu,"
		"\"read_holds\":%llu,\"settles\":%llu,\"settle_frames\":%llu,"
		"\"settles_dropped\":%llu,\"handovers\":%llu,\"envelopes\":%llu,\"records\":%llu,"
		"\"envelopes_rejected\":%llu,\"stream_holds\":%llu},",
		(unsigned long long)cs.delivered, (unsigned long long)cs.buffered_bytes,
		(unsigned long long)cs.buffered_peak, (unsigned long long)cs.read_holds,
		(unsigned long long)cs.settles, (unsigned long long)cs.settle_frames,
		(unsigned long long)cs.settles_dropped, (unsigned long long)cs.handovers,
		(unsigned long long)cs.envelopes, (unsigned long long)cs.records,
		(unsigned long long)cs.envelopes_rejected, (unsigned long long)cs.stream_holds);
	salvo_consumer_get_stats(cons, &k);
	fprintf(f,
		"\"consumers\":[{\"tag\":\"%s\",\"delivered\":%llu,\"taken\":%llu,\"handovers\":%llu,"
		"\"buffered_bytes\":%llu,\"acks\":%llu,\"nacks\":%llu,\"rejects\":%llu}],",
		salvo_consumer_tag(cons), (unsigned long long)k.delivered,
		(unsigned long long)k.taken, (unsigned long long)k.handovers,
		(unsigned long long)k.buffered_bytes, (unsigned long long)k.acks,
		(unsigned long long)k.nacks, (unsigned long long)k.rejects);
	fprintf(f,
		"\"io\":{\"turns\":%llu,\"waits\":%llu,\"submits\":%llu,\"sends\":%llu,"
		"\"send_bytes\":%llu,\"recvs\":%llu,\"recv_bytes\":%llu,\"wakeups\":%llu,"
		"\"kicks\":%llu,\"ack_holds\":%llu}}\n",
		(unsigned long long)io.turns, (unsigned long long)io.waits,
		(unsigned long long)io.submits, (unsigned long long)io.sends,
		(unsigned long long)io.send_bytes, (unsigned long long)io.recvs,
		(unsigned long long)io.recv_bytes, (unsigned long long)io.wakeups,
		(unsigned long long)io.kicks, (unsigned long long)io.ack_holds);
	CHECK(fclose(f) == 0);
}

/* Run check_stats.py MODE ARGS; it must pass, or with want_fail, fail (exit 1). */
static void check_script(const char *args, bool want_fail)
{
	char cmd[2048];
	int rc;

	snprintf(cmd, sizeof cmd, "python3 '%s/tests/integration/check_stats.py' %s%s",
		 getenv("SALVO_SOURCE_ROOT"), args, want_fail ? " >/dev/null 2>&1" : "");
	rc = system(cmd);
	CHECK(want_fail ? WIFEXITED(rc) && WEXITSTATUS(rc) == 1 : rc == 0);
}

/* The endpoint as the documents name it: host:port of SALVO_TEST_URI. */
static void test_endpoint(char *out, size_t size)
{
	const char *uri = rabbit_test_uri(), *at = strrchr(uri, '@');
	const char *host = at ? at + 1 : strstr(uri, "://") + 3;

	snprintf(out, size, "%.*s", (int)strcspn(host, "/?"), host);
}

/*
 * Publish half, consume and ack it, let the broker close the connection, publish the
 * other half after the reconnection; documents every 100 ms all along. Plain consumers
 * end with their connection, so the consumer's figures are those of the first half.
 */
static void case_json_reconnect(void)
{
	char dir[] = "/tmp/salvo-stats-XXXXXX", docs_path[128], api_path[128], args[1024],
	     name[64], endpoint[300];
	struct docs d = {0};
	salvo_channel *ch, *cch;
	salvo_publisher *p;
	salvo_consumer *cons;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_error err;
	pthread_t thread;

	CHECK(mkdtemp(dir));
	snprintf(docs_path, sizeof docs_path, "%s/docs.jsonl", dir);
	snprintf(api_path, sizeof api_path, "%s/api.json", dir);
	snprintf(name, sizeof name, "salvo stats json %d", (int)getpid());
	test_endpoint(endpoint, sizeof endpoint);
	CHECK((d.f = fopen(docs_path, "w")));
	d.c = stats_client(name, "100", on_stats, &d);
	CHECK(pthread_create(&thread, NULL, poll_main, &d) == 0);
	while (!atomic_load(&d.started))
		usleep(1000);

	OK(salvo_channel_open(d.c, &ch, &err));
	fresh_queue(ch, Q ".json", NULL);
	OK(salvo_channel_open(d.c, &cch, &err));
	OK(salvo_consume(cch, Q ".json", NULL, &cons, &err));
	OK(salvo_publisher_new(d.c, &opts, &p, &err));
	wait_docs(&d, 2);

	publish(p, Q ".json", 0, MESSAGES / 2);
	consume(cons, MESSAGES / 2);
	wait_docs(&d, 2);
	close_connection(name, "salvo stats test");
	for (double t0 = now_s(); !atomic_load(&d.reconnected) && now_s() - t0 < 30;)
		usleep(10000);
	CHECK(atomic_load(&d.reconnected));
	publish(p, Q ".json", MESSAGES / 2, MESSAGES);
	/* Quiet now: two more documents, the last wholly after everything settled. */
	wait_docs(&d, 3);
	atomic_store(&d.stop, 1);
	CHECK(pthread_join(thread, NULL) == 0);
	CHECK(!atomic_load(&d.wrong_thread));
	CHECK(fflush(d.f) == 0);
	write_api(api_path, d.c, p, cons, endpoint);

	snprintf(args, sizeof args, "json '%s' '%s'", docs_path, api_path);
	check_script(args, false);
	/* The check can fail: the C API saying one message more must not pass. */
	snprintf(args, sizeof args,
		 "sed -i 's/\"published\":%d,/\"published\":%d,/' '%s' && python3 '%s/tests/"
		 "integration/check_stats.py' json '%s' '%s' >/dev/null 2>&1",
		 MESSAGES, MESSAGES + 1, api_path, getenv("SALVO_SOURCE_ROOT"), docs_path, api_path);
	{
		int rc = system(args);
		CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
	}
	printf("json reconnect: %d documents; the last:\n", atomic_load(&d.count));
	fflush(stdout);
	snprintf(args, sizeof args, "tail -n 1 '%s'", docs_path);
	CHECK(system(args) == 0);

	salvo_consumer_destroy(cons);
	OK(salvo_publisher_close(p, 10000, &err));
	(void)salvo_channel_close(ch, &err);
	(void)salvo_channel_close(cch, &err);
	rabbit_close(d.c, 10000);
	fclose(d.f);
	unlink(docs_path);
	unlink(api_path);
	rmdir(dir);
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* statistics.interval_ms 0 with a callback, or an interval without one: no document. */
static void case_json_off(void)
{
	struct docs d = {0};
	salvo_event ev;

	CHECK((d.f = fopen("/dev/null", "w")));
	d.poller = pthread_self();
	d.c = stats_client("salvo stats off", "0", on_stats, &d);
	for (double t0 = now_s(); now_s() - t0 < 0.5;)
		(void)salvo_client_poll_event(d.c, &ev, 50);
	CHECK(atomic_load(&d.count) == 0);
	rabbit_close(d.c, 10000);

	/* An interval without a callback: polls time out as ever. */
	d.c = stats_client("salvo stats no callback", "10", NULL, NULL);
	for (double t0 = now_s(); now_s() - t0 < 0.3;)
		CHECK(salvo_client_poll_event(d.c, &ev, 50) == SALVO_ERR_TIMEOUT);
	rabbit_close(d.c, 10000);
	fclose(d.f);

	/* And on the callback's clock: one poll waiting a second for an event that does not
	 * come writes a document every 20 ms meanwhile, about 50, neither in a burst nor
	 * only when it returns. */
	d.count = 0;
	CHECK((d.f = fopen("/dev/null", "w")));
	d.c = stats_client("salvo stats clock", "20", on_stats, &d);
	double t0 = now_s(), cpu0 = cpu_s();
	CHECK(salvo_client_poll_event(d.c, &ev, 1000) == SALVO_ERR_TIMEOUT);
	double wall = now_s() - t0, cpu = cpu_s() - cpu0;
	printf("json off: %d documents at 20 ms in one poll of %.0f ms, %.0f ms of CPU\n",
	       atomic_load(&d.count), wall * 1000, cpu * 1000);
	CHECK(wall >= 0.99 && atomic_load(&d.count) >= 20 && atomic_load(&d.count) <= 51);
	/* Waiting between documents is sleeping, not spinning (a spin would cost the wall
	 * time in CPU). */
	CHECK(cpu < wall / 2);
	rabbit_close(d.c, 10000);
	fclose(d.f);
}

/* Publish n (async), consume and ack them on the same client. */
static void traffic(salvo_client *c, const char *q, int n, salvo_publisher **pp,
		    salvo_consumer **cp, salvo_channel **chp)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_channel *ch;
	salvo_error err;

	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, q, NULL);
	OK(salvo_consume(ch, q, NULL, cp, &err));
	OK(salvo_publisher_new(c, &opts, pp, &err));
	publish(*pp, q, 0, n);
	consume(*cp, n);
	*chp = ch;
}

/* Scrape cs into a file and check it: expect lists NAME=SUM; published is the sum of
 * salvo_publisher_published_total. */
static void scrape(salvo_client *const *cs, size_t n, const char *expect, uint64_t published)
{
	char path[] = "/tmp/salvo-prom-XXXXXX", small[64], args[1024];
	size_t need = salvo_stats_prometheus_clients(cs, n, small, sizeof small), got;
	char *buf = malloc(need + 1);
	int fd = mkstemp(path);
	FILE *f;

	/* Too small: truncated, terminated, and the length it needs. */
	CHECK(need > sizeof small && strlen(small) == sizeof small - 1);
	CHECK(buf && fd >= 0);
	got = salvo_stats_prometheus_clients(cs, n, buf, need + 1);
	/* Counters may have moved by a digit or two (the I/O thread's turns). */
	CHECK(got <= need + 64 && strlen(buf) == (got <= need ? got : need));
	if (got > need) {
		free(buf);
		CHECK((buf = malloc(got + 64)));
		got = salvo_stats_prometheus_clients(cs, n, buf, got + 64);
		CHECK(strlen(buf) == got);
	}
	CHECK((f = fdopen(fd, "w")) && fwrite(buf, 1, got, f) == got && fclose(f) == 0);
	snprintf(args, sizeof args, "prom '%s' %s", path, expect);
	check_script(args, false);
	/* The check can fail: one more than was published must not pass. */
	snprintf(args, sizeof args, "prom '%s' salvo_publisher_published_total=%llu", path,
		 (unsigned long long)published + 1);
	check_script(args, true);
	unlink(path);
	free(buf);
}

static void case_prometheus(void)
{
	salvo_client *c = stats_client("salvo stats prom", "0", NULL, NULL);
	salvo_publisher *p;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_error err;
	char expect[512];

	traffic(c, Q ".prom", 5000, &p, &cons, &ch);
	salvo_client_stats(c, &st);
	CHECK(st.published == 5000 && st.latency_count > 0);
	snprintf(expect, sizeof expect,
		 "salvo_publisher_published_total=5000 salvo_publisher_acked_total=5000 "
		 "salvo_publisher_confirm_latency_seconds_count=%llu "
		 "salvo_consumer_acks_total=5000 salvo_consumer_taken_total=5000 "
		 "salvo_connection_up=1 salvo_connection_reconnects_total=0",
		 (unsigned long long)st.latency_count);
	scrape(&c, 1, expect, 5000);

	/* A closed publisher's figures stay, under channel="closed". */
	OK(salvo_publisher_close(p, 10000, &err));
	scrape(&c, 1, "salvo_publisher_published_total=5000", 5000);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
}

/* Two clients in one text: each metric once, with both connections' series. */
static void case_prometheus_clients(void)
{
	salvo_client *cs[2] = {stats_client("salvo stats prom a", "0", NULL, NULL),
			       stats_client("salvo stats prom b", "0", NULL, NULL)};
	salvo_publisher *p[2];
	salvo_consumer *cons[2];
	salvo_channel *ch[2];
	salvo_error err;

	traffic(cs[0], Q ".prom-a", 1000, &p[0], &cons[0], &ch[0]);
	traffic(cs[1], Q ".prom-b", 2000, &p[1], &cons[1], &ch[1]);
	scrape(cs, 2,
	       "salvo_publisher_published_total=3000 salvo_consumer_delivered_total=3000 "
	       "salvo_connection_up=2",
	       3000);
	for (int i = 0; i < 2; i++) {
		salvo_consumer_destroy(cons[i]);
		OK(salvo_publisher_close(p[i], 10000, &err));
		OK(salvo_channel_close(ch[i], &err));
		rabbit_close(cs[i], 10000);
	}
}

struct churn {
	salvo_client *c;
	_Atomic int stop;
	_Atomic int scrapes, docs;
};

static void churn_doc(salvo_client *c, const char *json, size_t len, void *arg)
{
	struct churn *ch = arg;

	CHECK(c == ch->c && len > 100 && json[len - 1] == '}');
	atomic_fetch_add(&ch->docs, 1);
}

/* Scrape and write documents as fast as they come. */
static void *churn_main(void *arg)
{
	struct churn *ch = arg;
	static char buf[1 << 20];
	salvo_event ev;

	while (!atomic_load(&ch->stop)) {
		size_t n = salvo_stats_prometheus(ch->c, buf, sizeof buf);
		CHECK(n < sizeof buf && strlen(buf) == n);
		atomic_fetch_add(&ch->scrapes, 1);
		(void)salvo_client_poll_event(ch->c, &ev, 0);
	}
	return NULL;
}

/*
 * Snapshots while publishers and consumers come and go (the statistics must never read
 * one being freed: TSan and ASan builds run this): 30 rounds of a publisher and a
 * consumer opened, used and closed, with another thread scraping and writing documents
 * all along; then the closed publishers' sums hold everything published.
 */
static void case_churn(void)
{
	struct churn ch = {0};
	salvo_channel *chan;
	salvo_error err;
	pthread_t t;
	char q[64], expect[256];

	ch.c = stats_client("salvo stats churn", "1", churn_doc, &ch);
	snprintf(q, sizeof q, "%s.churn", Q);
	OK(salvo_channel_open(ch.c, &chan, &err));
	fresh_queue(chan, q, NULL);
	CHECK(pthread_create(&t, NULL, churn_main, &ch) == 0);
	for (int round = 0; round < 30; round++) {
		salvo_publisher_opts opts = {.confirm = round % 2 ? SALVO_CONFIRM_ASYNC
							       : SALVO_CONFIRM_SYNC};
		salvo_publisher *p;
		salvo_consumer *cons;
		salvo_channel *cch;
		salvo_message *m;

		OK(salvo_channel_open(ch.c, &cch, &err));
		OK(salvo_consume(cch, q, NULL, &cons, &err));
		OK(salvo_publisher_new(ch.c, &opts, &p, &err));
		publish(p, q, 0, 10);
		OK(salvo_publisher_close(p, 10000, &err));
		/* One message outlives its consumer: acked after the destroy. */
		OK(salvo_consumer_get(cons, 10000, &m, &err));
		consume(cons, 9);
		salvo_consumer_destroy(cons);
		OK(salvo_message_ack(m, false, &err));
		salvo_message_destroy(m);
		OK(salvo_channel_close(cch, &err));
	}
	atomic_store(&ch.stop, 1);
	CHECK(pthread_join(t, NULL) == 0);
	printf("churn: %d scrapes and %d documents during 30 rounds\n", atomic_load(&ch.scrapes),
	       atomic_load(&ch.docs));
	CHECK(atomic_load(&ch.scrapes) > 30 && atomic_load(&ch.docs) > 0);
	snprintf(expect, sizeof expect,
		 "salvo_publisher_published_total=300 salvo_publisher_acked_total=300 "
		 "salvo_consume_settles_total=300 salvo_consume_delivered_total=300");
	scrape(&ch.c, 1, expect, 300);
	OK(salvo_channel_close(chan, &err));
	rabbit_close(ch.c, 10000);
}

/* Names that need escaping, and bytes that are not UTF-8, still make valid documents
 * and scrapes, with the text the application gave where it was valid. */
static void name_doc(salvo_client *c, const char *json, size_t len, void *arg)
{
	(void)c;
	if (!atomic_load((_Atomic int *)arg)) {
		FILE *f = fopen(getenv("SALVO_STATS_NAME_DOC"), "w");
		CHECK(f && fwrite(json, 1, len, f) == len && fclose(f) == 0);
		atomic_store((_Atomic int *)arg, 1);
	}
}

static void case_names(void)
{
	/* A quote, a backslash, a tab, a newline, e-acute in UTF-8, a lone 0xff. */
	static const char name[] = "q\"b\\s\tt\nn \xc3\xa9 \xff end";
	static const char tag[] = "salvo \"tag\" \\ \xc3\xa9";
	char dir[] = "/tmp/salvo-names-XXXXXX", doc[128], prom[128], cmd[1024];
	salvo_consumer_opts co = {.tag = tag};
	_Atomic int got = 0;
	salvo_consumer *cons;
	salvo_channel *ch;
	salvo_client *c;
	salvo_error err;
	salvo_event ev;
	static char buf[1 << 16];
	FILE *f;

	CHECK(mkdtemp(dir));
	snprintf(doc, sizeof doc, "%s/doc.json", dir);
	snprintf(prom, sizeof prom, "%s/prom.txt", dir);
	setenv("SALVO_STATS_NAME_DOC", doc, 1);
	c = stats_client(name, "50", name_doc, &got);
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, Q ".names", NULL);
	OK(salvo_consume(ch, Q ".names", &co, &cons, &err));
	for (double t0 = now_s(); !atomic_load(&got) && now_s() - t0 < 10;)
		(void)salvo_client_poll_event(c, &ev, 100);
	CHECK(atomic_load(&got));
	CHECK(salvo_stats_prometheus(c, buf, sizeof buf) < sizeof buf);
	CHECK((f = fopen(prom, "w")) && fputs(buf, f) >= 0 && fclose(f) == 0);
	snprintf(cmd, sizeof cmd, "python3 '%s/tests/integration/check_stats.py' prom '%s'",
		 getenv("SALVO_SOURCE_ROOT"), prom);
	CHECK(system(cmd) == 0);
	/* Strict UTF-8 and JSON: the name and tag as given, the 0xff as U+FFFD; the label
	 * values as given, with the tab and the 0xff as U+FFFD. */
	snprintf(cmd, sizeof cmd,
		 "python3 -c 'import json, sys\n"
		 "d = json.loads(open(sys.argv[1], encoding=\"utf-8\", errors=\"strict\").read())\n"
		 "assert d[\"name\"] == \"q\\\"b\\\\s\\tt\\nn \\u00e9 \\ufffd end\", d[\"name\"]\n"
		 "assert d[\"consumers\"][0][\"tag\"] == \"salvo \\\"tag\\\" \\\\ \\u00e9\", d[\"consumers\"]\n"
		 "p = open(sys.argv[2], encoding=\"utf-8\", errors=\"strict\").read()\n"
		 "want = \"connection=\\\"q\\\\\\\"b\\\\\\\\s\\ufffdt\\\\nn \\u00e9 \\ufffd end\\\"\"\n"
		 "assert want in p, (want, p[:300])\n' '%s' '%s'",
		 doc, prom);
	CHECK(system(cmd) == 0);
	salvo_consumer_destroy(cons);
	OK(salvo_channel_close(ch, &err));
	rabbit_close(c, 10000);
	unlink(doc);
	unlink(prom);
	rmdir(dir);
}

static const struct test_case cases[] = {
	{"json reconnect", .run = case_json_reconnect},
	{"json off", .run = case_json_off},
	{"prometheus", .run = case_prometheus},
	{"prometheus clients", .run = case_prometheus_clients},
	{"churn", .run = case_churn},
	{"names", .run = case_names},
};

int main(int argc, char **argv)
{
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], rabbit_need_broker,
			 NULL);
}
