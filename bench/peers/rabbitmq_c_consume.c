/* SPDX-License-Identifier: MIT */
/*
 * rabbitmq_c_consume: the consumer a C programmer would write with rabbitmq-c (librabbitmq,
 * Debian 12's 0.11) instead of using salvo, run with the workload of salvo-perf --count 0
 * --consumers 1 --prefetch N (drain a queue) so that scripts/bench.sh can set the two side
 * by side against the same broker.
 *
 * It uses rabbitmq-c the way its examples do: one connection and channel, basic.qos with
 * --prefetch, basic.consume (manual acks), then amqp_consume_message in a loop, one
 * amqp_basic_ack per message, or one with multiple every --multi-ack-every K messages.
 * Acks held back for a multiple ack go out when no delivery has come for ACK_IDLE_MS, as
 * salvo-perf's do, so a prefetch is never starved. It stops after --count messages, or when
 * none has come for --drain-timeout seconds. Bodies are not looked at.
 *
 * The clock runs from consume-ok to the last message received (salvo-perf's
 * consume_seconds); CPU time and context switches are the whole process's (getrusage
 * RUSAGE_SELF) from consume-ok to the end of the loop, the idle wait included, as
 * salvo-perf's cpu_seconds include its drain.
 *
 * Exit status: 0 success (the queue may have held fewer than --count), 1 any failure, 2 a
 * usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "peer.h"

#define PROG	    "rabbitmq_c_consume"
#define DEFAULT_URI "amqp://guest:guest@localhost:5672"
#define CHANNEL	    1
/* How long a wait for a delivery lasts before held acks go out and the idle time is
 * looked at. */
#define ACK_IDLE_MS 50

const char peer_prog[] = PROG;


struct options {
	const char *uri;
	const char *queue;
	uint64_t count; /* 0: until the queue is idle */
	uint64_t prefetch;
	uint64_t multi_ack_every;
	uint64_t drain_timeout_s;
	bool json;
};

/* What the run took, for the report. */
struct result {
	uint64_t consumed;
	uint64_t redelivered;
	uint64_t ack_frames;
	double seconds; /* consume-ok to the last message */
	double cpu_seconds;
	long nvcsw, nivcsw; /* voluntary and involuntary context switches */
};

static const struct option long_options[] = {
    {"uri", required_argument, NULL, 'u'},
    {"queue", required_argument, NULL, 'q'},
    {"count", required_argument, NULL, 'n'},
    {"prefetch", required_argument, NULL, 'p'},
    {"multi-ack-every", required_argument, NULL, 'k'},
    {"drain-timeout", required_argument, NULL, 't'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs("Usage: " PROG " [OPTION]...\n"
	      "Consume a queue with rabbitmq-c (librabbitmq), acking every message, and report\n"
	      "the rate and the client's CPU cost, for comparison with salvo-perf --consumers.\n"
	      "\n"
	      "  --uri URI          broker (default " DEFAULT_URI "); amqp:// only\n"
	      "  --queue Q          queue to consume (default salvo-peer); it must exist\n"
	      "  --count N          stop after N messages (default 0: when the queue is idle)\n"
	      "  --prefetch N       basic.qos prefetch count, 0..65535 (default 1000; 0: no\n"
	      "                     basic.qos, the broker does not limit)\n"
	      "  --multi-ack-every K  one basic.ack with multiple for every K messages,\n"
	      "                     1..65535, at most --prefetch (default 1: each message its\n"
	      "                     own ack); held acks go out when nothing arrives for 50 ms\n"
	      "  --drain-timeout S  stop when no message has arrived for S seconds (1..3600,\n"
	      "                     default 10)\n"
	      "  --json             end stdout with one JSON object: client, client_version,\n"
	      "                     prefetch, multi_ack_every, consumed, redelivered,\n"
	      "                     ack_frames, seconds, msgs_per_s, cpu_seconds,\n"
	      "                     cpu_us_per_msg, voluntary_ctx_switches,\n"
	      "                     involuntary_ctx_switches\n"
	      "  --help             print this help and exit\n"
	      "\n"
	      "seconds runs from consume-ok to the last message received; CPU time and context\n"
	      "switches are the whole process's from consume-ok to the end, the idle wait\n"
	      "included. Exit status: 0 success (fewer than --count messages included), 1 any\n"
	      "failure, 2 a usage error.\n",
	      out);
}

/* "rabbitmq_c_consume: what[: detail]" on stderr. Returns -1. */
static int fail(const char *detail, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const char *detail, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = peer_vfail(NULL, detail, fmt, ap);
	va_end(ap);
	return rc;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	int opt;

	*o = (struct options){
	    .uri = DEFAULT_URI,
	    .queue = "salvo-peer",
	    .prefetch = 1000,
	    .multi_ack_every = 1,
	    .drain_timeout_s = 10,
	};
	opterr = 0; /* our own messages, in our format */
	while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		switch (opt) {
		case 'u':
			o->uri = optarg;
			break;
		case 'q':
			o->queue = optarg;
			break;
		case 'n':
			if (!peer_parse_number(optarg, 0, UINT64_MAX, &o->count))
				return peer_usage_error("--count: '%s' is not a count (0..%" PRIu64 ")",
						   optarg, UINT64_MAX);
			break;
		case 'p':
			if (!peer_parse_number(optarg, 0, UINT16_MAX, &o->prefetch))
				return peer_usage_error("--prefetch: '%s' is not a count (0..%u)", optarg,
						   UINT16_MAX);
			break;
		case 'k':
			if (!peer_parse_number(optarg, 1, UINT16_MAX, &o->multi_ack_every))
				return peer_usage_error("--multi-ack-every: '%s' is not a count (1..%u)",
						   optarg, UINT16_MAX);
			break;
		case 't':
			if (!peer_parse_number(optarg, 1, 3600, &o->drain_timeout_s))
				return peer_usage_error("--drain-timeout: '%s' is not a number of seconds "
						   "(1..3600)",
						   optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) ? EXIT_FAILED : 0;
		case ':':
			return peer_usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return peer_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return peer_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->queue[0])
		return peer_usage_error("--queue needs a name");
	if (o->prefetch && o->multi_ack_every > o->prefetch)
		return peer_usage_error("--multi-ack-every %" PRIu64 " is more than --prefetch %" PRIu64
				   ": the broker would hold back the messages it waits for",
				   o->multi_ack_every, o->prefetch);
	return -1;
}

/* 0 for a normal reply, else reports it: -1. */
static int check_reply(amqp_rpc_reply_t r, const char *what)
{
	char text[400];

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		return fail("no reply from the broker", "%s", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return fail(amqp_error_string2(r.library_error), "%s", what);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		peer_describe_method(r.reply, text, sizeof text);
		return fail(text, "%s", what);
	}
	return fail("unknown reply type", "%s", what);
}

/* Connects, logs in, opens the channel, sets the prefetch and starts consuming. Returns 0
 * or -1. */
static int start_consumer(amqp_connection_state_t conn, const struct options *o,
			  const struct amqp_connection_info *ci)
{
	amqp_socket_t *sock = amqp_tcp_socket_new(conn);
	int rc;

	if (!sock)
		return fail("out of memory", "amqp_tcp_socket_new");
	rc = amqp_socket_open(sock, ci->host, ci->port);
	if (rc != AMQP_STATUS_OK)
		return fail(amqp_error_string2(rc), "connect to %s:%d", ci->host, ci->port);
	if (check_reply(amqp_login(conn, ci->vhost, AMQP_DEFAULT_MAX_CHANNELS,
				   AMQP_DEFAULT_FRAME_SIZE, AMQP_DEFAULT_HEARTBEAT,
				   AMQP_SASL_METHOD_PLAIN, ci->user, ci->password),
			"log in"))
		return -1;
	amqp_channel_open(conn, CHANNEL);
	if (check_reply(amqp_get_rpc_reply(conn), "channel.open"))
		return -1;
	if (o->prefetch) {
		amqp_basic_qos(conn, CHANNEL, 0, (uint16_t)o->prefetch, 0);
		if (check_reply(amqp_get_rpc_reply(conn), "basic.qos"))
			return -1;
	}
	amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(o->queue), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	return check_reply(amqp_get_rpc_reply(conn), "basic.consume");
}

/* Ack delivery tag *held (with multiple: every one up to it) and forget it. */
static int ack_held(amqp_connection_state_t conn, uint64_t *held, uint64_t *nheld,
		    struct result *r)
{
	int rc;

	if (!*nheld)
		return 0;
	rc = amqp_basic_ack(conn, CHANNEL, *held, *nheld > 1);
	*nheld = 0;
	r->ack_frames++;
	return rc == AMQP_STATUS_OK ? 0 : fail(amqp_error_string2(rc), "basic.ack");
}

/* A frame that is not a delivery came where one was awaited: the broker closing the
 * channel or the connection, or something unexpected. Reports it: -1. */
static int not_a_delivery(amqp_connection_state_t conn)
{
	char text[400];
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame(conn, &f);

	if (rc != AMQP_STATUS_OK)
		return fail(amqp_error_string2(rc), "wait for a delivery");
	if (f.frame_type != AMQP_FRAME_METHOD)
		return fail(NULL, "unexpected frame of type %u on channel %u", f.frame_type,
			    f.channel);
	peer_describe_method(f.payload.method, text, sizeof text);
	return fail(text, "wait for a delivery");
}

/* Takes messages until --count or --drain-timeout idle, acking every one. Returns 0 or
 * -1; r says what was taken either way. */
static int consume(amqp_connection_state_t conn, const struct options *o, struct result *r,
		   double t0)
{
	uint64_t held = 0, nheld = 0;
	double last = t0;

	while (!o->count || r->consumed < o->count) {
		struct timeval tv = {0, ACK_IDLE_MS * 1000};
		amqp_envelope_t env;
		amqp_rpc_reply_t rep;

		amqp_maybe_release_buffers(conn);
		rep = amqp_consume_message(conn, &env, &tv, 0);
		if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    rep.library_error == AMQP_STATUS_TIMEOUT) {
			if (ack_held(conn, &held, &nheld, r))
				return -1;
			if (peer_now_seconds() - last >= (double)o->drain_timeout_s)
				break;
			continue;
		}
		if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    rep.library_error == AMQP_STATUS_UNEXPECTED_STATE)
			return not_a_delivery(conn);
		if (check_reply(rep, "receive a delivery"))
			return -1;
		last = peer_now_seconds();
		r->seconds = last - t0;
		r->consumed++;
		r->redelivered += env.redelivered != 0;
		held = env.delivery_tag;
		amqp_destroy_envelope(&env);
		if (++nheld >= o->multi_ack_every && ack_held(conn, &held, &nheld, r))
			return -1;
	}
	return ack_held(conn, &held, &nheld, r);
}

/* Every thread's user plus system time, and the context switches. */
static void usage_now(double *cpu, long *nvcsw, long *nivcsw)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
	*nvcsw = ru.ru_nvcsw;
	*nivcsw = ru.ru_nivcsw;
}

static void report(const struct options *o, const struct result *r)
{
	double rate = r->seconds > 0 ? (double)r->consumed / r->seconds : 0;
	double us_per_msg = r->consumed ? r->cpu_seconds * 1e6 / (double)r->consumed : 0;

	fprintf(stderr,
		"consumed %" PRIu64 " messages in %.3f s: %.0f msgs/s (prefetch %" PRIu64
		", %" PRIu64 " ack frames)\ncpu %.3f s: %.3f us/msg; context switches: %ld "
		"voluntary, %ld involuntary\n",
		r->consumed, r->seconds, rate, o->prefetch, r->ack_frames, r->cpu_seconds,
		us_per_msg, r->nvcsw, r->nivcsw);
	if (!o->json)
		return;
	printf("{\"client\": \"rabbitmq-c\", \"client_version\": \"%s\", \"prefetch\": %" PRIu64
	       ", \"multi_ack_every\": %" PRIu64 ", \"consumed\": %" PRIu64
	       ", \"redelivered\": %" PRIu64 ", \"ack_frames\": %" PRIu64
	       ", \"seconds\": %.6f, \"msgs_per_s\": %.1f, \"cpu_seconds\": %.6f, "
	       "\"cpu_us_per_msg\": %.3f, \"voluntary_ctx_switches\": %ld, "
	       "\"involuntary_ctx_switches\": %ld}\n",
	       amqp_version(), o->prefetch, o->multi_ack_every, r->consumed, r->redelivered,
	       r->ack_frames, r->seconds, rate, r->cpu_seconds, us_per_msg, r->nvcsw, r->nivcsw);
}

int main(int argc, char **argv)
{
	struct amqp_connection_info ci;
	amqp_connection_state_t conn;
	struct options o;
	struct result r = {0};
	double t0, cpu0, cpu1;
	long vcs0, ivcs0, vcs1, ivcs1;
	char *uri;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;
	/* amqp_parse_url cuts the string it parses into pieces, and ci points into them. */
	uri = strdup(o.uri);
	if (!uri)
		return fail("out of memory", "parse --uri"), EXIT_FAILED;
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(uri, &ci) != AMQP_STATUS_OK)
		/* Not repeated: it may hold a password. */
		return peer_usage_error("--uri: not an amqp:// URI");
	if (ci.ssl)
		return peer_usage_error("--uri: amqps:// is not supported here");
	conn = amqp_new_connection();
	if (!conn)
		return fail("out of memory", "amqp_new_connection"), EXIT_FAILED;
	ret = start_consumer(conn, &o, &ci);
	if (!ret) {
		t0 = peer_now_seconds();
		usage_now(&cpu0, &vcs0, &ivcs0);
		ret = consume(conn, &o, &r, t0);
		usage_now(&cpu1, &vcs1, &ivcs1);
		r.cpu_seconds = cpu1 - cpu0;
		r.nvcsw = vcs1 - vcs0;
		r.nivcsw = ivcs1 - ivcs0;
	}
	/* Closing the channel requeues what was delivered past --count and not acked. */
	if (!ret)
		ret = check_reply(amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS),
				  "channel.close") ||
		      check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS),
				  "connection.close");
	if (!ret)
		report(&o, &r);
	amqp_destroy_connection(conn);
	free(uri);
	if (fflush(stdout) || ferror(stdout))
		ret = fail(strerror(errno), "write standard output");
	return ret ? EXIT_FAILED : 0;
}
