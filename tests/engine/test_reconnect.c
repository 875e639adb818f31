/* SPDX-License-Identifier: MIT */
/*
 * Automatic reconnection. Against salvo-sink: a broker that closes every connection with
 * 320 after N messages, or resets it, so that a run of publishes crosses several
 * reconnections: every message ends acked (at-least-once: the sink may count duplicates),
 * sync publishers carry on, the on-connect hooks run on every connection, the events
 * arrive in order, an unreachable first endpoint fails over to the second, and a broker
 * that never comes back makes the client give up after max_attempts. Against RabbitMQ:
 * `rabbitmqctl close_connection` mid-stream, with a hook that declares a queue deleted
 * meanwhile.
 *
 * usage: test_reconnect CASE SALVO_SINK. The sink cases start their own sink on an
 * ephemeral 127.0.0.1 port and stop it by PID; the RabbitMQ case needs SALVO_TEST_URI
 * (and scripts/rabbitmq.sh, found from SALVO_SOURCE_ROOT) and skips with 77 without it.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "salvo.h"

#include "../check.h"
#include "../rabbit.h"
#include "sink_child.h"

/*
 * A resolver that hangs, for one name: this program's getaddrinfo, which the library
 * (linked in statically) calls, sleeps 3 s for HANG_HOST and answers that it has no such
 * name; every other name goes to the C library's.
 */
#define HANG_HOST "hang.salvo.invalid"

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

	if (node && !strcmp(node, HANG_HOST)) {
		sleep(3);
		return EAI_NONAME;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	return real(node, service, hints, res);
}

static atomic_int hook_runs;

static int count_hook(salvo_client *c, void *arg, salvo_error *err)
{
	(void)c;
	(void)arg;
	(void)err;
	atomic_fetch_add(&hook_runs, 1);
	return 0;
}

/* A client of the sink with fast reconnection (10 ms, at most 200 ms between tries) and
 * more configuration keys: key, value, ..., NULL. */
static salvo_client *connect_sink(const char *key, ...)
{
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;
	va_list ap;

	CHECK(conf);
	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", sink_port);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect.initial_delay", "10", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "reconnect.max_delay", "200", errstr, sizeof errstr) == 0);
	va_start(ap, key);
	for (; key; key = va_arg(ap, const char *))
		CHECK(salvo_conf_set(conf, key, va_arg(ap, const char *), errstr, sizeof errstr) == 0);
	va_end(ap);
	CHECK(salvo_conf_add_on_connect(conf, count_hook, NULL) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	return c;
}

/*
 * How many messages the sink received with routing key q (its queue.declare count),
 * asked on a connection of its own: the sink closes publishing connections at message
 * counts, and a method in flight when a connection is lost fails with the loss.
 */
static uint32_t sink_count(salvo_client *unused, const char *q)
{
	char uri[128];
	salvo_client *c;
	uint32_t n;

	(void)unused;
	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", sink_port);
	c = rabbit_connect(uri, NULL);
	n = queue_count(c, q);
	rabbit_close(c, 5000);
	return n;
}

/* Closing races the sink's next forced close: a close in flight then reports the loss. */
#define CLOSE_OK(call)                                                                     \
	do {                                                                               \
		int rc_ = (call);                                                          \
		if (rc_ != 0 && rc_ != SALVO_ERR_CLOSED) {                                 \
			fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__,     \
				#call, rc_, err.text);                                     \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

/* Drain the events: count each kind, check they come in a sensible order. */
static void check_events(salvo_client *c, unsigned *lost, unsigned *reconnected)
{
	salvo_event ev;
	bool down = false;
	uint64_t since = 0, longest = 0, total = 0;

	*lost = *reconnected = 0;
	/* Drain what is there; if the last loss is not recovered yet, wait for it. */
	while (salvo_client_poll_event(c, &ev, down ? 10000 : 0) == 0) {
		switch (ev.kind) {
		case SALVO_EVENT_CONNECTION_LOST:
			CHECK(!down && ev.error.status != 0);
			down = true;
			since = ev.time_ns;
			++*lost;
			break;
		case SALVO_EVENT_RECONNECTING:
			CHECK(down && ev.attempt >= 1);
			break;
		case SALVO_EVENT_RECONNECTED:
			CHECK(down && ev.endpoint[0] && ev.time_ns >= since);
			down = false;
			total += ev.time_ns - since;
			if (ev.time_ns - since > longest)
				longest = ev.time_ns - since;
			++*reconnected;
			break;
		case SALVO_EVENT_TOPOLOGY_RECOVERED:
			/* What the on-connect hooks declared is recorded, and made again
			 * after each reconnection, before the hooks run. */
			CHECK(!down);
			break;
		default:
			fprintf(stderr, "unexpected event %d\n", ev.kind);
			exit(1);
		}
	}
	if (*reconnected)
		printf("time to recover (lost -> reconnected): mean %.1f ms, longest %.1f ms\n",
		       (double)total / *reconnected / 1e6, (double)longest / 1e6);
}

/* batch: records per envelope (0: none); the sink's fault counts messages, i.e. envelopes. */
static void publish_async_across(const char *fault, const char *every, size_t batch)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 1024,
				     .batch = {.max_records = batch}};
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	unsigned lost, back;
	uint32_t counted;

	start_sink(fault, every, NULL);
	c = connect_sink(NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (int i = 0; i < 20000; i++)
		OK(salvo_publish(p, "", "rq", "0123456789", 10, 0, 30000, &err));
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	salvo_publisher_stats(p, &st);
	counted = sink_count(c, "rq");
	check_events(c, &lost, &back);
	printf("%s %s: acked %llu of %llu, resent %llu, envelopes %llu, reconnects %llu, sink "
	       "counted %u, hooks %d, events lost %u reconnected %u\n",
	       fault, every, (unsigned long long)st.acked, (unsigned long long)st.published,
	       (unsigned long long)st.resent, (unsigned long long)st.envelopes,
	       (unsigned long long)salvo_client_reconnects(c), counted, atomic_load(&hook_runs),
	       lost, back);
	CHECK(st.published == 20000 && st.acked == 20000 && st.failed == 0 && st.in_flight == 0);
	/* 20000 messages, a connection ends after every 5000: at least 3 reconnections. */
	CHECK(salvo_client_reconnects(c) >= 3);
	CHECK(lost == salvo_client_reconnects(c) && back == lost);
	/* The last reconnection's hooks may still be running on their thread. */
	for (int i = 0; i < 500 && atomic_load(&hook_runs) <= (int)salvo_client_reconnects(c);
	     i++)
		usleep(10000);
	CHECK(atomic_load(&hook_runs) == (int)salvo_client_reconnects(c) + 1);
	/* At least once: every message reached the sink; the resent ones may twice. With
	 * batching the sink counts envelopes, each holding `batch` records, resent whole. */
	if (batch) {
		/* Full ones, and those closed early by a wait for the window or by linger. */
		CHECK(st.envelopes >= 20000 / batch && st.envelopes < 20000);
		CHECK(counted >= st.envelopes && counted <= st.envelopes + st.resent);
	} else {
		CHECK(counted >= 20000 && counted <= 20000 + st.resent);
	}
	CLOSE_OK(salvo_publisher_close(p, 5000, &err));
	CLOSE_OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

static void case_close_after(void)
{
	publish_async_across("--close-after", "5000", 0);
}

/* The same with envelopes of 100 records: whole envelopes go again, each record gets one
 * outcome. */
static void case_close_after_batched(void)
{
	publish_async_across("--close-after", "50", 100);
}

static void case_drop_after(void)
{
	publish_async_across("--drop-after", "5000", 0);
}

/*
 * The sink stops reading each connection after 5,000 messages but stays alive, sending
 * heartbeats (1 s). Up to 128 MiB unconfirmed (16 KiB messages, a window of 8,192) is
 * far more than the socket buffers hold (tcp_rmem's maximum here is 32 MiB, the sink
 * reads 1 MiB ahead), so a send stops making progress: 2 x heartbeat later the connection
 * is declared dead and recovered, and the unconfirmed messages go again on the next one.
 * All 18,000 acked. (Were the buffers to take the whole window, nothing could tell this
 * broker from a slow one: the wait would time out instead.)
 */
static void case_stall_after(void)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 8192};
	static char body[16384];
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	unsigned lost, back;
	struct timespec t0, t1;

	start_sink("--stall-after", "5000", "--heartbeat", "1", NULL);
	c = connect_sink("heartbeat", "1", "publisher.ring_size", "268435456", NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 18000; i++)
		OK(salvo_publish(p, "", "stq", body, sizeof body, 0, 60000, &err));
	OK(salvo_publisher_wait_confirms(p, 60000, &err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	salvo_publisher_stats(p, &st);
	check_events(c, &lost, &back);
	printf("--stall-after 5000: acked %llu of %llu, failed %llu, resent %llu, reconnects "
	       "%llu, %.1f s\n",
	       (unsigned long long)st.acked, (unsigned long long)st.published,
	       (unsigned long long)st.failed, (unsigned long long)st.resent,
	       (unsigned long long)salvo_client_reconnects(c),
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	CHECK(st.published == 18000 && st.acked == 18000 && st.failed == 0 && st.in_flight == 0);
	/* Each connection acks exactly 5,000 before it stalls (what it did not ack goes again
	 * on the next): 15,000 on three, 3,000 on the fourth, which never stalls (so the
	 * closes below are answered). */
	CHECK(salvo_client_reconnects(c) == 3);
	CHECK(lost == salvo_client_reconnects(c) && back == lost);
	CLOSE_OK(salvo_publisher_close(p, 5000, &err));
	CLOSE_OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/* A sync publisher does not notice the reconnections, except in time. */
static void case_sync(void)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_SYNC};
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;

	start_sink("--close-after", "700", NULL);
	c = connect_sink(NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (int i = 0; i < 3000; i++)
		OK(salvo_publish(p, "", "sq", "s", 1, 0, 30000, &err));
	printf("sync: 3000 acked over %llu reconnections\n",
	       (unsigned long long)salvo_client_reconnects(c));
	CHECK(salvo_client_reconnects(c) >= 4);
	CLOSE_OK(salvo_publisher_close(p, 5000, &err));
	CLOSE_OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/* Best effort: publishing carries on across reconnections; what was in flight when a
 * connection ended is lost (nothing can resend it), nothing hangs. */
static void case_best_effort(void)
{
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	salvo_event ev;
	uint32_t counted, after = 0;
	bool back = false;

	start_sink("--close-after", "5000", NULL);
	c = connect_sink(NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	/* 7000: the first connection ends after 5000, the second gets at most the other
	 * 2000 and the 100 below, well before the sink would close it too. */
	for (int i = 0; i < 7000; i++)
		OK(salvo_publish(p, "", "bq", "b", 1, 0, 30000, &err));
	OK(salvo_publisher_flush(p, 30000, &err));
	/* The flush only means the kernel has the bytes; the sink then closes the connection
	 * after 5000 of them, and the rest is lost with it. */
	while (!back && salvo_client_poll_event(c, &ev, 10000) == 0)
		back = ev.kind == SALVO_EVENT_RECONNECTED;
	CHECK(back);
	/* What salvo sent on the new connection before the reconnection event may still be on
	 * its way into the sink's count (a slow sink: a sanitizer build, a loaded machine):
	 * counted once two counts 200 ms apart agree. */
	counted = sink_count(c, "bq");
	for (uint32_t again; (again = sink_count(c, "bq")) != counted; counted = again)
		usleep(200000);
	/* Publishing goes on over the new connection, nothing of it lost. */
	for (int i = 0; i < 100; i++)
		OK(salvo_publish(p, "", "bq", "b", 1, 0, 30000, &err));
	OK(salvo_publisher_flush(p, 30000, &err));
	for (int i = 0; i < 500 && (after = sink_count(c, "bq")) < counted + 100; i++)
		usleep(10000);
	printf("best effort: sink counted %u of 7000 over %llu reconnections, then %u of 100 "
	       "more\n",
	       counted, (unsigned long long)salvo_client_reconnects(c), after - counted);
	CHECK(counted >= 5000 && counted <= 7000 && after == counted + 100);
	/* What the loss cost is within what salvo reports as possibly lost. */
	{
		salvo_pub_stats st;

		salvo_publisher_stats(p, &st);
		printf("best effort: %u lost, %llu reported possibly lost\n", 7000 - counted,
		       (unsigned long long)st.possibly_lost);
		CHECK(st.possibly_lost >= 7000 - counted && st.possibly_lost <= 7000);
	}
	CLOSE_OK(salvo_publisher_close(p, 5000, &err));
	CLOSE_OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/* The sink goes away for good: after max_attempts the client gives up, once. */
static void case_give_up(void)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	salvo_event ev;
	bool gave_up = false;
	unsigned tries = 0;
	int rc;

	start_sink(NULL);
	c = connect_sink("reconnect.max_attempts", "3", NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	OK(salvo_publish(p, "", "gq", "g", 1, 0, 1000, &err));
	OK(salvo_publisher_wait_confirms(p, 5000, &err));
	stop_sink();
	/* Published while it retries, the message fails when it gives up; the three
	 * attempts (10, 20, 40 ms apart) may also be over already, and then the publish
	 * fails at once with the same error. */
	rc = salvo_publish(p, "", "gq", "g", 1, 0, 1000, &err);
	if (rc == 0)
		rc = salvo_publisher_wait_confirms(p, 10000, &err);
	printf("after the sink went away: %d (%s)\n", rc, err.text);
	CHECK(rc == SALVO_ERR_CLOSED || rc == SALVO_ERR_IO);
	while (salvo_client_poll_event(c, &ev, 0) == 0) {
		tries += ev.kind == SALVO_EVENT_RECONNECTING;
		gave_up |= ev.kind == SALVO_EVENT_GIVING_UP;
	}
	CHECK(tries == 3 && gave_up);
	CHECK(salvo_publish(p, "", "gq", "g", 1, 0, 1000, &err) != 0);
	salvo_publisher_close(p, 1000, NULL);
	salvo_client_destroy(c);
}

/* The sink goes away for good and the client is destroyed while it retries for ever:
 * the destroy ends the attempts instead of waiting for a broker that will not come. */
static void case_destroy_while_reconnecting(void)
{
	salvo_client *c;
	salvo_event ev;
	bool retrying = false;
	struct timespec t0, t1;

	start_sink(NULL);
	c = connect_sink(NULL);
	stop_sink();
	while (!retrying && salvo_client_poll_event(c, &ev, 10000) == 0)
		retrying = ev.kind == SALVO_EVENT_RECONNECTING && ev.attempt >= 2;
	CHECK(retrying);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	salvo_client_destroy(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("destroyed while reconnecting in %.0f ms\n",
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK(t1.tv_sec - t0.tv_sec < 10);
}

/* A listener on 127.0.0.1 that accepts TCP (the kernel's backlog does) and never says a
 * word; *uri names it. Returns its socket. */
static int silent_listener(char *uri, size_t size)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, len) == 0);
	CHECK(listen(fd, 4) == 0 && getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(uri, size, "amqp://127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

/*
 * A reconnection attempt stuck in a handshake (the second endpoint accepts TCP and never
 * says a word; connection_timeout 30 s) does not hold a destroy: the attempt is abandoned.
 */
static void case_destroy_during_attempt(void)
{
	char uri[128];
	int silent = silent_listener(uri, sizeof uri);
	salvo_client *c;
	salvo_event ev;
	bool attempting = false;
	struct timespec t0, t1;
	double ms;

	start_sink(NULL);
	c = connect_sink("uri.add", uri, "connection_timeout", "30000", NULL);
	stop_sink();
	/* The first attempt starts after the endpoint that worked: the silent one. */
	while (!attempting && salvo_client_poll_event(c, &ev, 10000) == 0)
		attempting = ev.kind == SALVO_EVENT_RECONNECTING;
	CHECK(attempting);
	usleep(500 * 1000); /* backoff (10 ms) over: the attempt waits for connection.start */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	salvo_client_destroy(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("destroyed during a handshake attempt (connection_timeout 30 s) in %.1f ms\n", ms);
	CHECK(ms < 2000);
	close(silent);
}

/*
 * A publisher closed while the only reconnection attempt hangs in a handshake: the close
 * keeps its timeout (the I/O thread, inside the attempt, cannot answer the detach), and
 * when the attempt fails and the client gives up, the I/O thread frees the publisher
 * handed to it (a sanitizer build sees a leak otherwise).
 */
static void case_close_during_attempt(void)
{
	char uri[128];
	int silent = silent_listener(uri, sizeof uri);
	salvo_publisher *p;
	salvo_client *c;
	salvo_event ev;
	salvo_error err;
	bool attempting = false, gave_up = false;
	double t0, took;
	int rc;

	start_sink(NULL);
	c = connect_sink("uri.add", uri, "connection_timeout", "1500", "reconnect.max_attempts",
			 "1", NULL);
	OK(salvo_publisher_new(c, NULL, &p, &err));
	OK(salvo_publish(p, "", "cq", "x", 1, 0, 1000, &err));
	OK(salvo_publisher_flush(p, 5000, &err));
	stop_sink();
	while (!attempting && salvo_client_poll_event(c, &ev, 10000) == 0)
		attempting = ev.kind == SALVO_EVENT_RECONNECTING;
	CHECK(attempting);
	usleep(200 * 1000); /* backoff (10 ms) over: the attempt waits for connection.start */
	t0 = now_s();
	rc = salvo_publisher_close(p, 200, &err);
	took = now_s() - t0;
	printf("publisher close during the attempt: %d (%s) after %.3f s\n", rc, err.text, took);
	CHECK(rc == SALVO_ERR_TIMEOUT && took < 1.0);
	while (!gave_up && salvo_client_poll_event(c, &ev, 10000) == 0)
		gave_up = ev.kind == SALVO_EVENT_GIVING_UP;
	CHECK(gave_up);
	salvo_client_destroy(c);
	close(silent);
}

/* A lookup that hangs is bounded by connection_timeout (it took the resolver's 3 s). */
static void case_resolve_timeout(void)
{
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c = NULL;
	salvo_error err;
	double t0, took;
	int rc;

	CHECK(conf);
	CHECK(salvo_conf_set(conf, "uri", "amqp://" HANG_HOST, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_set(conf, "connection_timeout", "500", errstr, sizeof errstr) == 0);
	t0 = now_s();
	rc = salvo_client_new(conf, &c, &err);
	took = now_s() - t0;
	printf("connect to a name whose lookup hangs: %d (%s) after %.3f s\n", rc, err.text, took);
	CHECK(rc == SALVO_ERR_TIMEOUT && !c && strstr(err.text, "resolve " HANG_HOST));
	CHECK(took >= 0.45 && took < 2.0);
	salvo_conf_destroy(conf);
}

/* A destroy while a reconnection attempt waits for a lookup that hangs: abandoned at once. */
static void case_destroy_during_lookup(void)
{
	char uri[128];
	salvo_client *c;
	salvo_event ev;
	bool attempting = false;
	double t0, took;

	start_sink(NULL);
	snprintf(uri, sizeof uri, "amqp://" HANG_HOST ":%d", sink_port);
	c = connect_sink("uri.add", uri, "connection_timeout", "30000", NULL);
	stop_sink();
	/* The first attempt starts after the endpoint that worked: the hanging name. */
	while (!attempting && salvo_client_poll_event(c, &ev, 10000) == 0)
		attempting = ev.kind == SALVO_EVENT_RECONNECTING;
	CHECK(attempting);
	usleep(300 * 1000); /* backoff (10 ms) over: the attempt waits for the lookup */
	t0 = now_s();
	salvo_client_destroy(c);
	took = now_s() - t0;
	printf("destroyed during a hanging lookup (3 s) in %.1f ms\n", took * 1e3);
	CHECK(took < 1.5);
}

/* A first endpoint that refuses connections: the second is used. */
static void case_failover(void)
{
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_error err;

	start_sink(NULL);
	CHECK(conf);
	CHECK(salvo_conf_set(conf, "uri", "amqp://guest:guest@127.0.0.1:1", errstr,
			     sizeof errstr) == 0);
	/* Endpoints after the first give only scheme, host and port. */
	snprintf(uri, sizeof uri, "amqp://127.0.0.1:%d", sink_port);
	CHECK(salvo_conf_set(conf, "uri.add", uri, errstr, sizeof errstr) == 0);
	OK(salvo_client_new(conf, &c, &err));
	CHECK(sink_count(c, "fq") == 0);
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
	salvo_conf_destroy(conf);
}

/*
 * A TCP proxy between the client and the sink, to break the first connection in ways a
 * broker does not: cut it (RST both ways) after some bytes, stall it (stop forwarding,
 * keep the sockets open: only heartbeats can tell), or deliver it one byte at a time.
 * Connections after the first are forwarded as they are.
 */
enum proxy_mode { PROXY_CUT, PROXY_STALL, PROXY_TRICKLE };

struct proxy {
	int listen_fd, port, target_port;
	enum proxy_mode mode;
	size_t after; /* bytes from the client before the cut or the stall */
	atomic_int connections;
	pthread_t thread;
};

struct pipe_pair {
	struct proxy *px;
	int a, b; /* client side, sink side */
	bool first;
};

static void reset_close(int fd)
{
	struct linger lg = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static void *proxy_pipe(void *arg)
{
	struct pipe_pair *pp = arg;
	enum proxy_mode mode = pp->px->mode;
	char local[65536];
	size_t from_client = 0;
	bool stalled = false;

	for (;;) {
		struct pollfd fds[2] = {{pp->a, POLLIN, 0}, {pp->b, POLLIN, 0}};

		if (stalled) {
			/* Keep both open and silent until the other side gives up. */
			if (poll(fds, 0, 100) < 0)
				break;
			if (recv(pp->a, local, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
				break;
			continue;
		}
		if (poll(fds, 2, 1000) < 0)
			break;
		for (int i = 0; i < 2; i++) {
			int from = i ? pp->b : pp->a, to = i ? pp->a : pp->b;
			size_t want = pp->first && mode == PROXY_TRICKLE ? 1 : sizeof local;
			ssize_t n;

			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = recv(from, local, want, 0);
			if (n <= 0)
				goto done;
			if (!i)
				from_client += (size_t)n;
			if (pp->first && !i && from_client >= pp->px->after) {
				if (mode == PROXY_CUT) {
					reset_close(pp->a);
					reset_close(pp->b);
					free(pp);
					return NULL;
				}
				if (mode == PROXY_STALL) {
					stalled = true;
					break;
				}
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(to, local + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w <= 0)
					goto done;
				off += w;
			}
		}
	}
done:
	close(pp->a);
	close(pp->b);
	free(pp);
	return NULL;
}

static void *proxy_accept(void *arg)
{
	struct proxy *px = arg;

	for (;;) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)px->target_port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		struct pipe_pair *pp;
		pthread_t t;
		int a = accept(px->listen_fd, NULL, NULL), b;

		if (a < 0)
			return NULL;
		b = socket(AF_INET, SOCK_STREAM, 0);
		if (b < 0 || connect(b, (struct sockaddr *)&sa, sizeof sa) < 0) {
			close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		pp = malloc(sizeof *pp);
		CHECK(pp);
		*pp = (struct pipe_pair){px, a, b, atomic_fetch_add(&px->connections, 1) == 0};
		CHECK(pthread_create(&t, NULL, proxy_pipe, pp) == 0);
		pthread_detach(t);
	}
}

static void proxy_start(struct proxy *px, int target_port, enum proxy_mode mode, size_t after)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;

	px->target_port = target_port;
	px->mode = mode;
	px->after = after;
	px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(px->listen_fd >= 0);
	CHECK(bind(px->listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	CHECK(listen(px->listen_fd, 16) == 0);
	CHECK(getsockname(px->listen_fd, (struct sockaddr *)&sa, &len) == 0);
	px->port = ntohs(sa.sin_port);
	CHECK(pthread_create(&px->thread, NULL, proxy_accept, px) == 0);
	pthread_detach(px->thread);
}

/* Through the proxy: 20,000 async messages, every one acked, the connection replaced. */
static void through_proxy(enum proxy_mode mode, size_t after, const char *heartbeat)
{
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 2048};
	struct proxy px = {0};
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	int sink = sink_port;
	uint64_t t0 = 0;
	struct timespec ts;

	start_sink(NULL);
	sink = sink_port;
	proxy_start(&px, sink, mode, after);
	sink_port = px.port; /* connect_sink connects to sink_port */
	c = connect_sink("heartbeat", heartbeat, NULL);
	sink_port = sink;
	OK(salvo_publisher_new(c, &opts, &p, &err));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 20000; i++)
		OK(salvo_publish(p, "", "pq", "0123456789", 10, 0, 30000, &err));
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	salvo_publisher_stats(p, &st);
	printf("proxy mode %d: acked %llu of %llu, resent %llu, reconnects %llu, "
	       "connections %d, %llu ms\n",
	       mode, (unsigned long long)st.acked, (unsigned long long)st.published,
	       (unsigned long long)st.resent, (unsigned long long)salvo_client_reconnects(c),
	       atomic_load(&px.connections),
	       (unsigned long long)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - t0));
	CHECK(st.acked == 20000 && st.failed == 0 && st.in_flight == 0);
	CHECK(sink_count(c, "pq") >= 20000);
	{
		unsigned lost, back;
		check_events(c, &lost, &back);
		CHECK(lost == back);
	}
	if (mode == PROXY_TRICKLE)
		CHECK(salvo_client_reconnects(c) == 0);
	else
		CHECK(salvo_client_reconnects(c) >= 1 && atomic_load(&px.connections) >= 2);
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
	close(px.listen_fd);
}

static void case_proxy_cut(void)
{
	through_proxy(PROXY_CUT, 100000, "60");
}

/* Nothing arrives any more, but the socket stays open: missed heartbeats end it. */
static void case_proxy_stall(void)
{
	through_proxy(PROXY_STALL, 100000, "1");
}

static void case_proxy_trickle(void)
{
	through_proxy(PROXY_TRICKLE, 0, "60");
}

/*
 * The test broker's URI for the RabbitMQ cases, with SALVO_TEST_PORT set from it for
 * scripts/rabbitmq.sh; skips (77) without SALVO_TEST_URI or SALVO_SOURCE_ROOT.
 */
static const char *rabbitmq_uri(void)
{
	const char *uri = getenv("SALVO_TEST_URI"), *port;

	if (!uri || !getenv("SALVO_SOURCE_ROOT")) {
		fprintf(stderr, "SALVO_TEST_URI or SALVO_SOURCE_ROOT not set\n");
		exit(77);
	}
	port = strrchr(uri, ':');
	CHECK(port && setenv("SALVO_TEST_PORT", port + 1, 1) == 0);
	return uri;
}

/* RabbitMQ: the queue the hook declares. */
#define RQ "salvo.test.reconnect"

static int declare_queue_hook(salvo_client *c, void *arg, salvo_error *err)
{
	salvo_channel *ch;
	int rc;

	(void)arg;
	atomic_fetch_add(&hook_runs, 1);
	rc = salvo_channel_open(c, &ch, err);
	if (rc)
		return rc;
	rc = salvo_queue_declare(ch, RQ, 0, NULL, NULL, err);
	salvo_channel_close(ch, NULL);
	return rc;
}


/*
 * rabbitmqctl close_connection mid-stream (320 CONNECTION_FORCED), after deleting the
 * queue: the client reconnects, the hook declares the queue again, publishing resumes and
 * every message is acked.
 */
static void case_rabbitmq(void)
{
	const char *uri = rabbitmq_uri();
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 1000};
	char name[64], errstr[256], conn[256] = "";
	salvo_conf *conf = salvo_conf_new();
	salvo_channel *ch;
	salvo_queue_info info;
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;

	snprintf(name, sizeof name, "salvo-reconnect-%d", (int)getpid());
	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "connection_name", name, errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "reconnect.initial_delay", "50", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_add_on_connect(conf, declare_queue_hook, NULL) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	CHECK(atomic_load(&hook_runs) == 1);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	for (int i = 0; i < 3000; i++)
		OK(salvo_publish(p, "", RQ, "r", 1, 0, 30000, &err));

	/* Delete the queue, then close the connection from the broker's side. */
	rabbit_ctl("delete_queue %s", RQ);
	connection_pid(name, conn, sizeof conn);
	printf("closing '%s'\n", conn);
	rabbit_ctl("close_connection '%s' 'salvo reconnect test'", conn);

	for (int i = 0; i < 3000; i++)
		OK(salvo_publish(p, "", RQ, "r", 1, 0, 30000, &err));
	OK(salvo_publisher_wait_confirms(p, 60000, &err));
	salvo_publisher_stats(p, &st);
	printf("rabbitmq: acked %llu of %llu, resent %llu, reconnects %llu, hooks %d\n",
	       (unsigned long long)st.acked, (unsigned long long)st.published,
	       (unsigned long long)st.resent, (unsigned long long)salvo_client_reconnects(c),
	       atomic_load(&hook_runs));
	CHECK(st.acked == 6000 && st.failed == 0 && st.in_flight == 0);
	CHECK(salvo_client_reconnects(c) == 1);
	{
		unsigned lost, back;
		check_events(c, &lost, &back);
		CHECK(lost == 1 && back == 1);
	}
	for (int i = 0; i < 500 && atomic_load(&hook_runs) < 2; i++)
		usleep(10000);
	CHECK(atomic_load(&hook_runs) == 2);
	/* The hook declared the queue again: everything published after the close is in it
	 * (and some of what was sent before and resent). */
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_declare(ch, RQ, SALVO_PASSIVE, NULL, &info, &err));
	printf("queue holds %u\n", info.message_count);
	CHECK(info.message_count >= 3000 && info.message_count <= 6000 + st.resent);
	OK(salvo_queue_delete(ch, RQ, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/*
 * Best effort against RabbitMQ: rabbitmqctl close_connection while 50,000 messages
 * stream out at about 10,000 a second (within what the broker handles, as in steady
 * production). What the loss cost (50,000 less what the queue holds: best effort sends
 * nothing twice) is at most what salvo reports as possibly lost, which checkpoints keep
 * near what was in flight: within a second's worth of messages of the real loss, far
 * below what the connection carried.
 */
#define BEQ "salvo.test.reconnect.be"
#define BE_N 50000

static char be_conn_name[64];

static void *close_from_broker(void *arg)
{
	char conn[256];

	(void)arg;
	connection_pid(be_conn_name, conn, sizeof conn);
	rabbit_ctl("close_connection '%s' 'salvo best-effort loss test'", conn);
	return NULL;
}

static void case_rabbitmq_best_effort(void)
{
	const char *uri = rabbitmq_uri();
	salvo_channel *ch;
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	pthread_t closer;
	uint32_t depth, prev = UINT32_MAX;

	snprintf(be_conn_name, sizeof be_conn_name, "salvo-best-effort-%d", (int)getpid());
	c = rabbit_connect(uri, "connection_name", be_conn_name, "reconnect.initial_delay", "50",
			   NULL);
	OK(salvo_channel_open(c, &ch, &err));
	fresh_queue(ch, BEQ, NULL);
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_new(c, NULL, &p, &err));
	for (uint32_t i = 0; i < BE_N; i++) {
		if (i == BE_N / 4)
			CHECK(pthread_create(&closer, NULL, close_from_broker, NULL) == 0);
		OK(salvo_publish(p, "", BEQ, &i, sizeof i, 0, 30000, &err));
		if (i % 10 == 9)
			usleep(1000);
	}
	pthread_join(closer, NULL);
	OK(salvo_publisher_flush(p, 30000, &err));
	CHECK(salvo_client_reconnects(c) == 1);
	/* The broker routes what it read; wait until the queue stops growing. */
	for (int i = 0; i < 100 && (depth = queue_count(c, BEQ)) != prev; i++) {
		prev = depth;
		usleep(200 * 1000);
	}
	salvo_publisher_stats(p, &st);
	printf("best effort vs RabbitMQ: published %u, queued %u: %u lost; reported possibly "
	       "lost %llu\n",
	       BE_N, depth, BE_N - depth, (unsigned long long)st.possibly_lost);
	CHECK(depth <= BE_N);
	CHECK(st.possibly_lost >= BE_N - depth);
	CHECK(st.possibly_lost <= BE_N - depth + BE_N / 5);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, BEQ, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	OK(salvo_publisher_close(p, 5000, &err));
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

/* Resident memory of this process, in KiB. */
static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	CHECK(f);
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static bool alarm_set;

static void restore_watermark(void)
{
	if (alarm_set)
		(void)!system("bash \"$SALVO_SOURCE_ROOT/scripts/rabbitmq.sh\" ctl -q "
			      "set_vm_memory_high_watermark 0.4 >/dev/null 2>&1");
}

#define BLOCKED_PRODUCERS 8
#define BQ "salvo.test.blocked"

struct blocked_producer {
	salvo_publisher *p;
	atomic_bool stop;
	uint64_t queued;
	int status;
};

static void *blocked_produce(void *arg)
{
	struct blocked_producer *bp = arg;
	salvo_error err;

	while (!atomic_load(&bp->stop)) {
		int rc = salvo_publish(bp->p, "", BQ, "blocked?", 8, 0, 200, &err);
		if (rc == 0)
			bp->queued++;
		else if (rc != SALVO_ERR_TIMEOUT) {
			bp->status = rc;
			break;
		}
	}
	return NULL;
}

/*
 * A memory alarm (set_vm_memory_high_watermark absolute 1): the broker blocks the
 * connection; salvo says so with an event and stops sending; eight producers keep trying
 * and memory stays within their rings; after the alarm ends, everything is acked.
 */
/* The value of metric name (its first series) in c's Prometheus text. */
static double prom_value(salvo_client *c, const char *name)
{
	static char text[1 << 16];
	char key[128];
	const char *at;
	double v = -1;

	CHECK(salvo_stats_prometheus(c, text, sizeof text) < sizeof text);
	snprintf(key, sizeof key, "\n%s{", name);
	at = strstr(text, key);
	CHECK(at && (at = strstr(at, "} ")) && sscanf(at + 2, "%lf", &v) == 1);
	return v;
}

static void case_rabbitmq_blocked(void)
{
	const char *uri = rabbitmq_uri();
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	struct blocked_producer bp[BLOCKED_PRODUCERS];
	pthread_t th[BLOCKED_PRODUCERS];
	char errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c;
	salvo_channel *ch;
	salvo_queue_info info;
	salvo_error err;
	salvo_event ev;
	salvo_pub_stats st;
	uint64_t queued = 0, before = 0;
	long rss0, rss1;
	bool blocked = false, unblocked = false;

	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "publisher.ring_size", "1048576", errstr, sizeof errstr) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	OK(salvo_channel_open(c, &ch, &err));
	OK(salvo_queue_delete(ch, BQ, 0, NULL, &err));
	OK(salvo_queue_declare(ch, BQ, 0, NULL, NULL, &err));
	for (int i = 0; i < BLOCKED_PRODUCERS; i++) {
		bp[i] = (struct blocked_producer){0};
		OK(salvo_publisher_new(c, &opts, &bp[i].p, &err));
		OK(salvo_publish(bp[i].p, "", BQ, "before", 6, 0, 5000, &err));
		OK(salvo_publisher_wait_confirms(bp[i].p, 10000, &err));
		before++;
	}

	atexit(restore_watermark); /* whatever happens below, the broker must recover */
	alarm_set = true;
	rabbit_ctl("set_vm_memory_high_watermark absolute 1");
	for (int i = 0; i < BLOCKED_PRODUCERS; i++)
		CHECK(pthread_create(&th[i], NULL, blocked_produce, &bp[i]) == 0);
	/* The broker blocks a connection when it next publishes. */
	while (!blocked && salvo_client_poll_event(c, &ev, 10000) == 0)
		if (ev.kind == SALVO_EVENT_BLOCKED) {
			blocked = true;
			printf("blocked: '%s'\n", ev.reason);
			CHECK(ev.reason[0]);
		}
	CHECK(blocked);
	/* A second client with blocked_timeout: its block becomes an error within it. */
	{
		salvo_conf *conf2 = salvo_conf_new();
		salvo_client *c2;
		salvo_publisher *p2;
		int rc;

		CHECK(conf2 && salvo_conf_set(conf2, "uri", uri, errstr, sizeof errstr) == 0 &&
		      salvo_conf_set(conf2, "blocked_timeout", "1000", errstr, sizeof errstr) == 0);
		OK(salvo_client_new(conf2, &c2, &err));
		salvo_conf_destroy(conf2);
		OK(salvo_publisher_new(c2, &opts, &p2, &err));
		OK(salvo_publish(p2, "", BQ, "timeout", 7, 0, 1000, &err));
		rc = salvo_publisher_wait_confirms(p2, 10000, &err);
		printf("blocked_timeout: %d (%s)\n", rc, err.text);
		CHECK(rc != 0 && rc != SALVO_ERR_TIMEOUT && strstr(err.text, "blocked_timeout"));
		salvo_publisher_stats(p2, &st);
		CHECK(st.failed == 1);
		/* Closed by the block: not blocked any more, and the time blocked stops. */
		{
			double t1 = prom_value(c2, "salvo_connection_blocked_seconds_total"), t2;
			CHECK(prom_value(c2, "salvo_connection_up") == 0);
			CHECK(prom_value(c2, "salvo_connection_blocked") == 0);
			usleep(300000);
			t2 = prom_value(c2, "salvo_connection_blocked_seconds_total");
			printf("blocked_timeout: blocked for %.3f s, %.3f s later\n", t1, t2);
			CHECK(t1 >= 0.9 && t2 == t1);
		}
		salvo_publisher_close(p2, 1000, NULL);
		salvo_client_destroy(c2);
	}
	sleep(1); /* the rings fill */
	rss0 = rss_kb();
	sleep(2); /* and the producers keep trying */
	rss1 = rss_kb();
	printf("RSS while blocked: %ld KiB, 2 s later %ld KiB\n", rss0, rss1);
	/* The statistics say so: blocked now, for at least the 3 s slept. */
	CHECK(prom_value(c, "salvo_connection_blocked") == 1);
	CHECK(prom_value(c, "salvo_connection_blocked_seconds_total") >= 3);
	/* Bounded by the rings (1 MiB each, already touched): no growth beyond noise. */
	CHECK(rss1 - rss0 < 2048);

	rabbit_ctl("set_vm_memory_high_watermark 0.4");
	while (!unblocked && salvo_client_poll_event(c, &ev, 10000) == 0)
		unblocked = ev.kind == SALVO_EVENT_UNBLOCKED;
	CHECK(unblocked);
	{
		double t1 = prom_value(c, "salvo_connection_blocked_seconds_total"), t2;
		CHECK(prom_value(c, "salvo_connection_blocked") == 0);
		usleep(200000);
		t2 = prom_value(c, "salvo_connection_blocked_seconds_total");
		printf("unblocked after %.3f s blocked (%.3f s later)\n", t1, t2);
		CHECK(t1 >= 3 && t2 == t1);
	}
	for (int i = 0; i < BLOCKED_PRODUCERS; i++)
		atomic_store(&bp[i].stop, true);
	for (int i = 0; i < BLOCKED_PRODUCERS; i++) {
		pthread_join(th[i], NULL);
		CHECK(bp[i].status == 0);
		OK(salvo_publisher_wait_confirms(bp[i].p, 60000, &err));
		salvo_publisher_stats(bp[i].p, &st);
		CHECK(st.acked == st.published && st.in_flight == 0);
		queued += bp[i].queued;
		OK(salvo_publisher_close(bp[i].p, 5000, &err));
	}
	OK(salvo_queue_declare(ch, BQ, SALVO_PASSIVE, NULL, &info, &err));
	printf("published %llu while blocked and after; the queue holds %u\n",
	       (unsigned long long)queued, info.message_count);
	/* Plus, perhaps, the second client's message: it failed (no confirm before its
	 * connection ended), which says nothing of whether the broker kept it. */
	CHECK(queued > 0 && info.message_count >= queued + before &&
	      info.message_count <= queued + before + 1);
	OK(salvo_queue_delete(ch, BQ, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
}

static void drop_user(void)
{
	(void)!system("bash \"$SALVO_SOURCE_ROOT/scripts/rabbitmq.sh\" ctl -q delete_user "
		      "salvo_reconnect_user >/dev/null 2>&1");
}

/*
 * The password changes while connected, then the broker closes the connection: the
 * reconnection is refused with 403, and salvo gives up at once instead of retrying.
 */
static void case_rabbitmq_auth(void)
{
	const char *uri = rabbitmq_uri(), *port = strrchr(uri, ':');
	char name[64], pid[256], user_uri[256];
	salvo_client *c;
	salvo_event ev;
	unsigned tries = 0;
	bool gave_up = false;

	atexit(drop_user);
	rabbit_ctl("add_user salvo_reconnect_user first-password");
	rabbit_ctl("set_permissions -p / salvo_reconnect_user '.*' '.*' '.*'");
	snprintf(user_uri, sizeof user_uri, "amqp://salvo_reconnect_user:first-password@127.0.0.1:%s",
		 port + 1);
	snprintf(name, sizeof name, "salvo-auth-%d", (int)getpid());
	c = rabbit_connect(user_uri, "connection_name", name, "reconnect.initial_delay", "20",
			   NULL);
	rabbit_ctl("change_password salvo_reconnect_user second-password");
	connection_pid(name, pid, sizeof pid);
	rabbit_ctl("close_connection '%s' 'password changed'", pid);
	while (!gave_up && salvo_client_poll_event(c, &ev, 10000) == 0) {
		tries += ev.kind == SALVO_EVENT_RECONNECTING;
		if (ev.kind == SALVO_EVENT_GIVING_UP) {
			gave_up = true;
			printf("gave up after %u attempt(s): %d %s\n", tries, ev.error.status,
			       ev.error.text);
			CHECK(ev.error.status == 403);
		}
	}
	CHECK(gave_up && tries == 1);
	CHECK(salvo_client_poll_event(c, &ev, 500) == SALVO_ERR_TIMEOUT); /* no retry loop */
	salvo_client_destroy(c);
}

/* kill -9: a broker of this case's own, on SALVO_TEST_PORT + 40 (+ 42 over TLS, with its
 * TLS listener on + 43), crashed and restarted. */
#define KQ "salvo.test.kill9"
#define KILL_N 200000
#define KILL_N_TLS 100000

static char kill_port[16];

/* Run scripts/rabbitmq.sh VERB for the case's broker; out gets line `line` (1-based) of
 * what it prints. */
static int run_script(const char *verb, int line, char *out, size_t size)
{
	char cmd[1024], buf[1024];
	FILE *f;
	int rc, n = 0;

	/* A restart recovers 200,000 persistent messages: on two shared cores that has taken
	 * over the script's default 120 s. */
	snprintf(cmd, sizeof cmd,
		 "SALVO_TEST_START_TIMEOUT=300 SALVO_TEST_PORT=%s bash '%s/scripts/rabbitmq.sh' %s",
		 kill_port, getenv("SALVO_SOURCE_ROOT"), verb);
	f = popen(cmd, "r");
	CHECK(f);
	if (out)
		out[0] = '\0';
	while (fgets(buf, sizeof buf, f))
		if (out && ++n == line) {
			size_t k = strcspn(buf, "\n");

			k = k < size ? k : size - 1;
			memcpy(out, buf, k);
			out[k] = '\0';
		}
	rc = pclose(f);
	return rc;
}

static void stop_kill_broker(void)
{
	if (kill_port[0])
		run_script("stop", 0, NULL, 0);
}

static int durable_queue_hook(salvo_client *c, void *arg, salvo_error *err)
{
	salvo_channel *ch;
	int rc;

	(void)arg;
	rc = salvo_channel_open(c, &ch, err);
	if (rc)
		return rc;
	rc = salvo_queue_declare(ch, KQ, SALVO_DURABLE, NULL, NULL, err);
	salvo_channel_close(ch, NULL);
	return rc;
}

static void *crash_and_restart(void *arg)
{
	(void)arg;
	CHECK(run_script("crash", 0, NULL, 0) == 0);
	CHECK(run_script("restart", 0, NULL, 0) == 0);
	return NULL;
}

/*
 * kill -9 of the broker mid-stream (durable queue, persistent messages, async confirms),
 * restarted on the same port: every message is acked, and reading the queue back finds
 * every sequence number at least once: no confirmed message lost. Over amqp, or over
 * amqps (the reconnection makes a new TLS session).
 */
static void kill9(bool tls)
{
	const uint64_t n = tls ? KILL_N_TLS : KILL_N;
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC, .window = 2000};
	char uri[256], errstr[256];
	salvo_conf *conf;
	salvo_client *c;
	salvo_publisher *p;
	salvo_channel *ch;
	salvo_message *msg;
	salvo_pub_stats st;
	salvo_error err;
	pthread_t crasher;
	uint8_t *seen;
	uint64_t got = 0, missing = 0, dups = 0;
	struct timespec t0, t1;
	const char *base = rabbitmq_uri();

	seen = calloc(n, 1);
	CHECK(seen);
	snprintf(kill_port, sizeof kill_port, "%d", atoi(strrchr(base, ':') + 1) + (tls ? 42 : 40));
	atexit(stop_kill_broker);
	CHECK(run_script(tls ? "start --tls" : "start", tls ? 2 : 1, uri, sizeof uri) == 0);
	CHECK(strncmp(uri, tls ? "amqps://" : "amqp://", tls ? 8 : 7) == 0);
	printf("kill -9: broker %s\n", uri);
	conf = salvo_conf_new();
	CHECK(conf && salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "reconnect.initial_delay", "200", errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "reconnect.max_delay", "1000", errstr, sizeof errstr) == 0 &&
	      salvo_conf_set(conf, "heartbeat", "2", errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_add_on_connect(conf, durable_queue_hook, NULL) == 0);
	OK(salvo_client_new(conf, &c, &err));
	salvo_conf_destroy(conf);
	/* The durable queue's record goes to disk before the kill: RabbitMQ keeps it in
	 * Mnesia, whose log is not synced per transaction. One run, killed about 2 s after the
	 * declare, read back 150,847 of 200,000: missing were exactly the 49,153 confirmed
	 * before the kill (the 2,048 resent and all after were there), which is what a queue
	 * whose record did not survive the kill looks like (the hook declares it anew on the
	 * reconnection). That is the broker's durability, not the client's, which this test
	 * is about. */
	CHECK(run_script("ctl eval 'mnesia:sync_log().'", 0, NULL, 0) == 0);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t body[8];

		for (int b = 0; b < 8; b++)
			body[b] = (uint8_t)(i >> (56 - 8 * b));
		if (i == n / 4)
			CHECK(pthread_create(&crasher, NULL, crash_and_restart, NULL) == 0);
		/* Longer than the restart may take (SALVO_TEST_START_TIMEOUT, 300 s): a slow
		 * restart then fails in the script, with the broker's logs, not here. */
		OK(salvo_publish(p, "", KQ, body, sizeof body, SALVO_MSG_PERSISTENT, 360000, &err));
	}
	OK(salvo_publisher_wait_confirms(p, 300000, &err));
	pthread_join(crasher, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	salvo_publisher_stats(p, &st);
	printf("kill -9: published %llu, acked %llu, failed %llu, resent %llu, reconnects %llu, "
	       "%.1f s\n",
	       (unsigned long long)st.published, (unsigned long long)st.acked,
	       (unsigned long long)st.failed, (unsigned long long)st.resent,
	       (unsigned long long)salvo_client_reconnects(c),
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	CHECK(st.acked == n && st.failed == 0 && st.in_flight == 0);
	CHECK(salvo_client_reconnects(c) >= 1);
	{
		unsigned lost, back;
		check_events(c, &lost, &back);
		CHECK(lost == back && back >= 1);
	}
	OK(salvo_publisher_close(p, 10000, &err));

	/* Read everything back. */
	OK(salvo_channel_open(c, &ch, &err));
	for (;;) {
		const uint8_t *b;
		size_t len;
		uint64_t seq = 0;

		OK(salvo_basic_get(ch, KQ, true, &msg, &err));
		if (!msg)
			break;
		b = salvo_message_body(msg, &len);
		CHECK(len == 8);
		for (int k = 0; k < 8; k++)
			seq = seq << 8 | b[k];
		CHECK(seq < n);
		dups += seen[seq] != 0;
		seen[seq] = 1;
		got++;
		salvo_message_destroy(msg);
	}
	for (uint64_t i = 0; i < n; i++)
		missing += !seen[i];
	printf("kill -9: read back %llu messages: %llu missing, %llu duplicates\n",
	       (unsigned long long)got, (unsigned long long)missing, (unsigned long long)dups);
	CHECK(missing == 0);
	OK(salvo_queue_delete(ch, KQ, 0, NULL, &err));
	OK(salvo_channel_close(ch, &err));
	OK(salvo_client_close(c, 5000, &err));
	salvo_client_destroy(c);
	free(seen);
}

static void case_rabbitmq_kill9(void)
{
	kill9(false);
}

static void case_rabbitmq_kill9_tls(void)
{
	kill9(true);
}

static int failing_hook(salvo_client *c, void *arg, salvo_error *err)
{
	(void)c;
	(void)arg;
	atomic_fetch_add(&hook_runs, 1);
	snprintf(err->text, sizeof err->text, "the application's hook said no");
	return SALVO_ERR_PROTOCOL;
}

/* The first hook that fails stops them: salvo_client_new returns its status and text, and
 * the hook after it never runs. */
static void case_hook_fails(void)
{
	char uri[128], errstr[256];
	salvo_conf *conf = salvo_conf_new();
	salvo_client *c = NULL;
	salvo_error err;

	CHECK(conf);
	start_sink(NULL);
	snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", sink_port);
	CHECK(salvo_conf_set(conf, "uri", uri, errstr, sizeof errstr) == 0);
	CHECK(salvo_conf_add_on_connect(conf, count_hook, NULL) == 0);
	CHECK(salvo_conf_add_on_connect(conf, failing_hook, NULL) == 0);
	CHECK(salvo_conf_add_on_connect(conf, count_hook, NULL) == 0);
	atomic_store(&hook_runs, 0);
	CHECK(salvo_client_new(conf, &c, &err) == SALVO_ERR_PROTOCOL && !c);
	CHECK(strstr(err.text, "the application's hook said no"));
	CHECK(atomic_load(&hook_runs) == 2);
	salvo_conf_destroy(conf);
}

static const struct test_case cases[] = {
    {"rabbitmq kill -9", .run = case_rabbitmq_kill9},
    {"rabbitmq kill -9 tls", .run = case_rabbitmq_kill9_tls},
    {"rabbitmq wrong password", .run = case_rabbitmq_auth},
    {"rabbitmq blocked", .run = case_rabbitmq_blocked},
    {"rabbitmq close_connection", .run = case_rabbitmq},
    {"rabbitmq best effort", .run = case_rabbitmq_best_effort},
    {"proxy-cut", .run = case_proxy_cut},
    {"proxy-stall", .run = case_proxy_stall},
    {"proxy-trickle", .run = case_proxy_trickle},
    {"close-after", .run = case_close_after},
    {"close-after batched", .run = case_close_after_batched},
    {"drop-after", .run = case_drop_after},
    {"stall-after", .run = case_stall_after},
    {"sync", .run = case_sync},
    {"best-effort", .run = case_best_effort},
    {"give-up", .run = case_give_up},
    {"destroy-while-reconnecting", .run = case_destroy_while_reconnecting},
    {"destroy-during-attempt", .run = case_destroy_during_attempt},
    {"close-during-attempt", .run = case_close_during_attempt},
    {"resolve-timeout", .run = case_resolve_timeout},
    {"destroy-during-lookup", .run = case_destroy_during_lookup},
    {"failover", .run = case_failover},
    {"hook fails", .run = case_hook_fails},
};

int main(int argc, char **argv)
{
	sink_exe = argc > 2 ? argv[2] : NULL;
	atexit(stop_sink);
	return run_cases(argc, argv, cases, sizeof cases / sizeof cases[0], need_sink, stop_sink);
}
