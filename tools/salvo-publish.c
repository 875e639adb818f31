/* SPDX-License-Identifier: MIT */
/*
 * salvo-publish: publish messages from the command line and report the rate.
 *
 * Two sources of messages:
 *   --count N [--size B]  N generated bodies of B bytes. Each starts with its sequence
 *                         number 0..N-1 as an 8-byte big-endian integer, so a consumer can
 *                         spot loss and reordering; the rest is the pattern "abc...zabc...".
 *                         Bodies shorter than 8 bytes hold the low B bytes of the number,
 *                         still big-endian (B = 0 sends empty bodies).
 *   standard input        one message per line, without its '\n'; a last line without one
 *                         counts too, and lines may be of any length.
 *
 * Either source can be batched (--batch-records and the other options of cli.h): each
 * message above is then a record, packed with others into envelopes (README "Batching"),
 * and the summary and the JSON add the envelopes salvo sent.
 *
 * --confirm picks the delivery guarantee. none (the default) is best effort: success means
 * every message was handed to the kernel and both the publisher and the connection closed
 * cleanly, which is also when a broker's refusal (404 for a missing exchange) comes back at
 * the latest. async and sync use publisher confirms: success means the broker acked every
 * message; nacked, returned (--mandatory) and failed ones are counted and make the exit
 * status 1.
 *
 * The clock runs from the first publish until every message has been handed to the kernel
 * (none) or has its outcome (async, sync), so connecting and declaring are not counted.
 * CPU time is the whole process's (this thread and salvo's I/O thread) over the same span.
 *
 * Exit status: 0 success, 1 a failure (reported as "what: status: detail"), 2 a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"

#define PROG	     "salvo-publish"
#define DEFAULT_URI  "amqp://guest:guest@localhost:5672"
#define DEFAULT_SIZE 100
/* Draining a large ring (publisher.ring_size goes up to 1 GiB) into a broker that pushes
 * back through TCP flow control can take minutes; a dead broker is caught sooner by
 * heartbeats. */
#define FLUSH_TIMEOUT_MS 600000
/* Only the close handshake is left by then. */
#define CLOSE_TIMEOUT_MS 30000

struct options {
	const char **uris; /* --uri in order: "uri", then "uri.add" */
	size_t nuris;
	const char *exchange;
	const char *routing_key;
	bool counted;
	uint64_t count;
	bool sized;
	size_t size;
	unsigned flags;
	bool json;
	bool progress;
	bool declare_queue;
	char **conf; /* the KEY=VALUE arguments of --conf, in order */
	size_t nconf;
	salvo_confirm_mode confirm;
	size_t window;		/* 0: the configuration's publisher.window */
	struct cli_batch batch; /* opts.max_records 0: no batching */
};

struct stats {
	uint64_t sent;
	uint64_t bytes;
	double seconds;
	double cpu_seconds;
	salvo_pub_stats pub; /* confirm modes: outcomes */
	uint64_t reconnects;
};

const char cli_prog[] = PROG;

static const struct option long_options[] = {
    {"uri", required_argument, NULL, 'u'},
    {"exchange", required_argument, NULL, 'e'},
    {"routing-key", required_argument, NULL, 'r'},
    {"count", required_argument, NULL, 'n'},
    {"size", required_argument, NULL, 's'},
    {"persistent", no_argument, NULL, 'p'},
    {"mandatory", no_argument, NULL, 'm'},
    {"json", no_argument, NULL, 'j'},
    {"progress", no_argument, NULL, 'P'},
    {"declare-queue", no_argument, NULL, 'd'},
    {"conf", required_argument, NULL, 'c'},
    {"confirm", required_argument, NULL, 'C'},
    {"window", required_argument, NULL, 'w'},
    CLI_BATCH_LONG_OPTIONS,
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs(
	    "Usage: " PROG " -r KEY [OPTION]...\n"
	    "Publish messages to an AMQP 0-9-1 broker (RabbitMQ) and report the rate.\n"
	    "Without --count, each line of standard input (without its newline) is one message.\n"
	    "\n"
	    "  -u, --uri URI          broker to connect to; repeatable: the first is the\n"
	    "                         configuration key uri, later ones are added as uri.add\n"
	    "                         (failover endpoints, with the first one's user, password\n"
	    "                         and vhost or none) (default: $SALVO_URI if set, else\n"
	    "                         " DEFAULT_URI ")\n"
	    "  -e, --exchange NAME    exchange to publish to (default \"\", the default one)\n"
	    "  -r, --routing-key KEY  routing key of every message (required; may be \"\")\n"
	    "  -n, --count N          publish N generated messages instead of reading stdin;\n"
	    "                         each body starts with its number 0..N-1 as an 8-byte\n"
	    "                         big-endian integer (its low B bytes when B < 8), then\n"
	    "                         the pattern abc...z repeated\n"
	    "  -s, --size B           body size of the --count messages in bytes (default 100)\n"
	    "  -p, --persistent       mark messages persistent (delivery mode 2)\n"
	    "  -m, --mandatory        set the mandatory flag; with confirms, an unroutable\n"
	    "                         message counts as returned\n"
	    "  -C, --confirm MODE     none (default, best effort), async (publisher confirms,\n"
	    "                         streamed) or sync (each publish waits for its confirm)\n"
	    "  -w, --window N         async: most messages awaiting confirms at once (default:\n"
	    "                         the configuration key publisher.window)\n"
	    "  -j, --json             print the results as one JSON object on stdout: sent,\n"
	    "                         bytes (body bytes in all), size (null for stdin), seconds,\n"
	    "                         msgs_per_s, mbytes_per_s (10^6 bytes), cpu_seconds,\n"
	    "                         cpu_us_per_msg, confirm, acked, nacked, returned, failed\n"
	    "                         (0 with --confirm none), reconnects, duplicates_possible\n"
	    "                         (messages sent again after a reconnection),\n"
	    "                         possibly_lost (best effort: sent on lost connections\n"
	    "                         after the broker last proved it had handled them);\n"
	    "                         batch_records, batch_bytes, linger_us, compression,\n"
	    "                         compression_level, envelopes, envelopes_per_s,\n"
	    "                         envelope_bytes (their bodies as sent),\n"
	    "                         envelope_raw_bytes (before compression),\n"
	    "                         records_per_envelope, envelope_bytes_per_record (null\n"
	    "                         without envelopes): with batching each message is a\n"
	    "                         record, and sent counts records\n"
	    "  -P, --progress         print the rate on stderr once a second while publishing\n"
	    "  -d, --declare-queue    first declare a queue named KEY (not durable, not\n"
	    "                         auto-delete; one that exists must match), for use with\n"
	    "                         the default exchange\n"
	    "  -c, --conf KEY=VALUE   set a salvo configuration key, after --uri; repeatable\n"
	    "                         (e.g. publisher.ring_size=16777216; keys below)\n"
	    "  -h, --help             print this help and exit\n"
	    "  -V, --version          print the salvo version and exit\n"
	    "\n" CLI_BATCH_HELP
	    "                         Lines of standard input or --count messages are the\n"
	    "                         records: e.g. " PROG " -r KEY --batch-records 1000\n"
	    "                         --compression zstd < events.jsonl\n"
	    "\n"
	    "Timing runs from the first publish until every message has been handed to the\n"
	    "kernel (--confirm none) or has its outcome from the broker (async, sync). A\n"
	    "summary goes to stderr. Numbers are decimal digits only.\n"
	    "\n"
	    "Exit status: 0 if every message was sent (with confirms: acked) and the connection\n"
	    "closed cleanly, 1 on a failure (connection, declare, a broker error such as 404\n"
	    "for a missing exchange, a message nacked, returned or failed), 2 on a usage error.\n"
	    "\n",
	    out);
	salvo_conf_print_help(out);
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	uint64_t v;
	int opt, rc;

	o->exchange = "";
	o->size = DEFAULT_SIZE;
	/* --uri and --conf can appear at most once per remaining argument; one more for the
	 * default URI. */
	o->uris = calloc((size_t)argc + 1, sizeof *o->uris);
	o->conf = calloc((size_t)argc, sizeof *o->conf);
	if (!o->uris || !o->conf) {
		fail(SALVO_ERR_NO_MEMORY, NULL, "parse arguments");
		return EXIT_FAILED;
	}

	opterr = 0; /* our own messages, in our format */
	while ((opt = getopt_long(argc, argv, ":u:e:r:n:s:pmjPdc:C:w:hV", long_options, NULL)) !=
	       -1) {
		switch (opt) {
		case 'u':
			o->uris[o->nuris++] = optarg;
			break;
		case 'e':
			o->exchange = optarg;
			break;
		case 'r':
			o->routing_key = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, &o->count))
				return usage_error("--count: '%s' is not a count (0..%" PRIu64 ")",
						   optarg, UINT64_MAX);
			o->counted = true;
			break;
		case 's':
			if (!parse_u64(optarg, &v) || v > SIZE_MAX)
				return usage_error("--size: '%s' is not a size in bytes", optarg);
			o->size = (size_t)v;
			o->sized = true;
			break;
		case 'p':
			o->flags |= SALVO_MSG_PERSISTENT;
			break;
		case 'm':
			o->flags |= SALVO_MSG_MANDATORY;
			break;
		case 'j':
			o->json = true;
			break;
		case 'P':
			o->progress = true;
			break;
		case 'd':
			o->declare_queue = true;
			break;
		case 'C':
			rc = parse_confirm(optarg, &o->confirm);
			if (rc)
				return rc;
			break;
		case 'w':
			if (!parse_u64(optarg, &v) || v == 0 || v > (1u << 24))
				return usage_error("--window: '%s' is not a count (1..16777216)",
						   optarg);
			o->window = (size_t)v;
			break;
		case 'c':
			rc = add_conf(optarg, o->conf, &o->nconf);
			if (rc)
				return rc;
			break;
		default:
			if (opt >= CLI_OPT_BATCH_RECORDS && opt < CLI_OPT_BATCH_END) {
				rc = cli_batch_option(opt, optarg, &o->batch);
				if (rc)
					return rc;
				break;
			}
			return other_option(opt, argv, long_options, usage);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->nuris) {
		const char *env = getenv("SALVO_URI");
		o->uris[o->nuris++] = env && *env ? env : DEFAULT_URI;
	}
	rc = cli_batch_check(&o->batch);
	if (rc)
		return rc;
	if (!o->routing_key)
		return usage_error("--routing-key is required");
	if (o->sized && !o->counted)
		return usage_error("--size needs --count (stdin messages are lines)");
	if (o->declare_queue && !o->routing_key[0])
		return usage_error("--declare-queue needs a non-empty --routing-key");
	return -1;
}

/* Returns 0, or the exit status of a bad setting. */
static int configure(salvo_conf *conf, const struct options *o)
{
	char errstr[512];

	/* "uri" first: it replaces the endpoint list that "uri.add" appends to. A URI is not
	 * echoed (it may hold a password); salvo's message never holds one. */
	for (size_t i = 0; i < o->nuris; i++)
		if (salvo_conf_set(conf, i ? "uri.add" : "uri", o->uris[i], errstr, sizeof errstr))
			return usage_error("--uri (#%zu): %s", i + 1, errstr);
	return apply_conf(conf, o->conf, o->nconf);
}

static void start_clock(struct stats *st)
{
	st->seconds = now_s();
	st->cpu_seconds = cpu_s();
}

static void stop_clock(struct stats *st)
{
	st->seconds = now_s() - st->seconds;
	st->cpu_seconds = cpu_s() - st->cpu_seconds;
}

/* The low min(size, 8) bytes of seq, big-endian, at the start of body. */
static void put_seq(uint8_t *body, size_t size, uint64_t seq)
{
	size_t n = size < 8 ? size : 8;

	for (size_t i = 0; i < n; i++)
		body[n - 1 - i] = (uint8_t)(seq >> (8 * i));
}

/* Once a second at most: messages so far and the rate since the last line. Checked every
 * 4096 messages, so the clock is not read per message. */
static void progress(salvo_publisher *p, const struct options *o, const struct stats *st,
		     double *last_t, uint64_t *last_n)
{
	salvo_pub_stats ps;
	double t;

	if (!o->progress || st->sent % 4096)
		return;
	t = now_s();
	if (t - *last_t < 1.0)
		return;
	fprintf(stderr, PROG ": %" PRIu64 " sent, %.0f msgs/s", st->sent,
		(double)(st->sent - *last_n) / (t - *last_t));
	if (o->confirm != SALVO_CONFIRM_NONE) {
		salvo_publisher_stats(p, &ps);
		fprintf(stderr, ", %" PRIu64 " acked, %" PRIu64 " nacked, %" PRIu64 " in flight",
			ps.acked, ps.nacked, ps.in_flight);
	}
	fputc('\n', stderr);
	*last_t = t;
	*last_n = st->sent;
}

/* A sync publish that was nacked or returned is an outcome to count, not a reason to stop. */
static int publish_one(salvo_publisher *p, const struct options *o, const void *body,
		       size_t len, salvo_error *err)
{
	int rc = salvo_publish(p, o->exchange, o->routing_key, body, len, o->flags,
			       SALVO_FOREVER, err);

	return rc == SALVO_ERR_NACKED || rc == SALVO_ERR_RETURNED ? 0 : rc;
}

static int publish_counted(salvo_publisher *p, const struct options *o, struct stats *st)
{
	double last_t;
	uint64_t last_n = 0;
	salvo_error err = {0};
	uint8_t *body = malloc(o->size ? o->size : 1);
	int rc = 0;

	if (!body) {
		fail(SALVO_ERR_NO_MEMORY, NULL, "allocate a body of %zu bytes", o->size);
		return SALVO_ERR_NO_MEMORY;
	}
	for (size_t i = 8; i < o->size; i++)
		body[i] = (uint8_t)('a' + (i - 8) % 26);

	start_clock(st);
	last_t = now_s();
	for (uint64_t seq = 0; seq < o->count; seq++) {
		put_seq(body, o->size, seq);
		rc = publish_one(p, o, body, o->size, &err);
		if (rc) {
			fail(rc, &err, "publish message %" PRIu64, seq);
			break;
		}
		st->sent++;
		st->bytes += o->size;
		progress(p, o, st, &last_t, &last_n);
	}
	free(body);
	return rc;
}

static int publish_lines(salvo_publisher *p, const struct options *o, struct stats *st)
{
	salvo_error err = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	start_clock(st);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		/* Waiting for the first line is not publishing. */
		if (st->sent == 0)
			start_clock(st);
		if (n > 0 && line[n - 1] == '\n')
			n--;
		rc = publish_one(p, o, line, (size_t)n, &err);
		if (rc) {
			fail(rc, &err, "publish line %" PRIu64, st->sent + 1);
			break;
		}
		st->sent++;
		st->bytes += (uint64_t)n;
	}
	if (!rc && ferror(stdin)) {
		fprintf(stderr, PROG ": read standard input: %s\n", strerror(errno));
		rc = SALVO_ERR_IO;
	}
	free(line);
	return rc;
}

static void report(const struct options *o, const struct stats *st)
{
	double secs = st->seconds > 0 ? st->seconds : 0;
	double rate = secs > 0 ? (double)st->sent / secs : 0;
	double mbps = secs > 0 ? (double)st->bytes / secs / 1e6 : 0;
	double us_per_msg = st->sent ? st->cpu_seconds * 1e6 / (double)st->sent : 0;

	if (o->counted)
		fprintf(stderr, "sent %" PRIu64 " messages (%zu bytes each)", st->sent, o->size);
	else
		fprintf(stderr, "sent %" PRIu64 " messages (%" PRIu64 " bytes in all)", st->sent,
			st->bytes);
	fprintf(stderr, " in %.3f s: %.0f msgs/s, %.2f MB/s\n", secs, rate, mbps);
	fprintf(stderr, "cpu %.3f s: %.3f us/msg\n", st->cpu_seconds, us_per_msg);
	if (o->confirm != SALVO_CONFIRM_NONE)
		fprintf(stderr,
			"confirms (%s): %" PRIu64 " acked, %" PRIu64 " nacked, %" PRIu64
			" returned, %" PRIu64 " failed; latency p50 %.0f us, p99 %.0f us\n",
			confirm_names[o->confirm], st->pub.acked, st->pub.nacked, st->pub.returned,
			st->pub.failed, salvo_stats_latency_ns(&st->pub, 0.5) / 1e3,
			salvo_stats_latency_ns(&st->pub, 0.99) / 1e3);
	cli_batch_summary(&o->batch.opts, &st->pub, st->sent, secs);
	if (st->pub.possibly_lost)
		fprintf(stderr,
			"possibly lost: %" PRIu64 " (best effort: sent before a loss of the connection "
			"or channel, and not shown handled by the broker)\n",
			st->pub.possibly_lost);
	if (!o->json)
		return;
	printf("{\"sent\": %" PRIu64 ", \"bytes\": %" PRIu64 ", ", st->sent, st->bytes);
	if (o->counted)
		printf("\"size\": %zu, ", o->size);
	else
		printf("\"size\": null, ");
	printf("\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"mbytes_per_s\": %.3f, "
	       "\"cpu_seconds\": %.6f, \"cpu_us_per_msg\": %.3f, ",
	       secs, rate, mbps, st->cpu_seconds, us_per_msg);
	cli_batch_json(stdout, &o->batch.opts, &st->pub, st->sent, secs);
	printf("\"confirm\": \"%s\", \"acked\": %" PRIu64 ", \"nacked\": %" PRIu64
	       ", \"returned\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"reconnects\": %" PRIu64
	       ", \"duplicates_possible\": %" PRIu64 ", \"possibly_lost\": %" PRIu64 "}\n",
	       confirm_names[o->confirm], st->pub.acked, st->pub.nacked, st->pub.returned,
	       st->pub.failed, st->reconnects, st->pub.resent, st->pub.possibly_lost);
}

/* Connect, declare, publish, flush, close. Returns the exit status. */
static int run(const struct options *o, const salvo_conf *conf)
{
	struct stats st = {0};
	salvo_client *c = NULL;
	salvo_publisher *p;
	salvo_error err = {0};
	char where[4200];
	size_t where_size = sizeof where;
	int rc;

	/* The password reads back as ***, so the URI is safe to print. */
	if (salvo_conf_get(conf, "uri", where, &where_size))
		snprintf(where, sizeof where, "the broker");
	rc = salvo_client_new(conf, &c, &err);
	if (rc) {
		fail(rc, &err, "connect to %s", where);
		return EXIT_FAILED;
	}
	if (o->declare_queue && declare_queue(c, o->routing_key))
		goto fail;
	salvo_publisher_opts popts = {
	    .confirm = o->confirm, .window = o->window, .batch = o->batch.opts};
	rc = salvo_publisher_new(c, &popts, &p, &err);
	if (rc) {
		fail(rc, &err, "open a publisher");
		goto fail;
	}

	rc = o->counted ? publish_counted(p, o, &st) : publish_lines(p, o, &st);
	if (rc) {
		salvo_publisher_close(p, CLOSE_TIMEOUT_MS, NULL);
		goto fail;
	}
	/* Every outcome, or (best effort) every byte handed to the kernel. */
	rc = salvo_publisher_wait_confirms(p, FLUSH_TIMEOUT_MS, &err);
	stop_clock(&st);
	salvo_publisher_stats(p, &st.pub);
	st.reconnects = salvo_client_reconnects(c);
	if (rc == SALVO_ERR_NACKED || rc == SALVO_ERR_RETURNED)
		rc = 0; /* counted; judged below */
	/* A broker error caused by the last publishes (a missing exchange) surfaces here at
	 * the latest. */
	if (!rc)
		rc = salvo_publisher_close(p, CLOSE_TIMEOUT_MS, &err);
	else
		salvo_publisher_close(p, CLOSE_TIMEOUT_MS, NULL);
	/* The closed publisher's figures, with what its close counted (possibly_lost). */
	salvo_client_stats(c, &st.pub);
	if (rc) {
		fail(rc, &err, "flush and close the publisher after %" PRIu64 " messages", st.sent);
		/* The summary and the JSON still say what was achieved, and what may be lost. */
		report(o, &st);
		goto fail;
	}
	rc = salvo_client_close(c, CLOSE_TIMEOUT_MS, &err);
	salvo_client_destroy(c);
	if (rc) {
		fail(rc, &err, "close the connection");
		return EXIT_FAILED;
	}
	report(o, &st);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, PROG ": write standard output: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	if (o->confirm != SALVO_CONFIRM_NONE && st.pub.acked != st.sent) {
		fprintf(stderr, PROG ": %" PRIu64 " of %" PRIu64 " messages were not acked\n",
			st.sent - st.pub.acked, st.sent);
		return EXIT_FAILED;
	}
	return 0;

fail:
	/* The failure is already reported; closing is only cleanup. */
	salvo_client_close(c, CLOSE_TIMEOUT_MS, NULL);
	salvo_client_destroy(c);
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	salvo_conf *conf = NULL;
	int status;

	status = parse_args(argc, argv, &o);
	if (status >= 0)
		goto out;
	status = new_conf(&conf);
	if (!status)
		status = configure(conf, &o);
	if (!status)
		status = run(&o, conf);
	salvo_conf_destroy(conf);
out:
	free(o.uris);
	free(o.conf);
	return status;
}
