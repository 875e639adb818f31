/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf's command line: the options and their help. The conventions, and the helpers
 * that keep them, are salvo-publish's (tools/cli.c): getopt_long, decimal-only numbers,
 * --conf KEY=VALUE applied after --uri, usage errors exit 2, run errors are
 * "salvo-perf: what: status: detail".
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"

const char cli_prog[] = PROG;

/* Options without a short form: salvo-publish has no such option to stay in line with. */
enum {
	OPT_CONNECTIONS = 256,
	OPT_PRODUCERS,
	OPT_DURATION,
	OPT_RATE,
	OPT_CSV,
	OPT_PLOT,
	OPT_METRICS_PORT,
	OPT_BODY,
	OPT_QUEUES,
	OPT_QUEUE_TYPE,
	OPT_CONSUMERS,
	/* The options that need --consumers: from here to the end. */
	OPT_CONSUMER_CONNECTIONS,
	OPT_PREFETCH,
	OPT_AUTO_ACK,
	OPT_MULTI_ACK_EVERY,
	OPT_CONSUME_CALLBACK,
	OPT_CONSUMER_RATE,
	OPT_DRAIN_TIMEOUT,
};

static const struct option long_options[] = {
    {"uri", required_argument, NULL, 'u'},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"size", required_argument, NULL, 's'},
    {"body", required_argument, NULL, OPT_BODY},
    {"confirm", required_argument, NULL, 'C'},
    {"window", required_argument, NULL, 'w'},
    {"count", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"rate", required_argument, NULL, OPT_RATE},
    {"exchange", required_argument, NULL, 'e'},
    {"routing-key", required_argument, NULL, 'r'},
    {"declare-queue", no_argument, NULL, 'd'},
    {"queues", required_argument, NULL, OPT_QUEUES},
    {"queue-type", required_argument, NULL, OPT_QUEUE_TYPE},
    {"persistent", no_argument, NULL, 'p'},
    {"mandatory", no_argument, NULL, 'm'},
    CLI_BATCH_LONG_OPTIONS,
    {"consumers", required_argument, NULL, OPT_CONSUMERS},
    {"consumer-connections", required_argument, NULL, OPT_CONSUMER_CONNECTIONS},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"auto-ack", no_argument, NULL, OPT_AUTO_ACK},
    {"multi-ack-every", required_argument, NULL, OPT_MULTI_ACK_EVERY},
    {"consume-callback", no_argument, NULL, OPT_CONSUME_CALLBACK},
    {"consumer-rate", required_argument, NULL, OPT_CONSUMER_RATE},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"json", no_argument, NULL, 'j'},
    {"csv", required_argument, NULL, OPT_CSV},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"metrics-port", required_argument, NULL, OPT_METRICS_PORT},
    {"conf", required_argument, NULL, 'c'},
    {"progress", no_argument, NULL, 'P'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs(
	    "Usage: " PROG " [OPTION]...\n"
	    "Publish generated messages to an AMQP 0-9-1 broker (RabbitMQ) from several producer\n"
	    "threads and connections, and report throughput, CPU cost and confirm latency; with\n"
	    "--consumers, consume them too and report the consume rate and end-to-end latency.\n"
	    "\n"
	    "Broker and load:\n"
	    "  -u, --uri URI          broker to connect to; repeatable: the first is the\n"
	    "                         configuration key uri, later ones are added as uri.add\n"
	    "                         (failover endpoints: whole URIs with the first one's\n"
	    "                         user, password and vhost, or amqp://host:port; connection\n"
	    "                         i tries endpoint i mod n first, so the connections are\n"
	    "                         spread over them) (default: $SALVO_URI if set, else\n"
	    "                         " DEFAULT_URI ")\n"
	    "      --connections N    open N connections (salvo clients); producers are spread\n"
	    "                         over them round-robin (default 1, at most --producers)\n"
	    "      --producers N      N producer threads, each with its own publisher (default 1)\n"
	    "  -s, --size B           body size in bytes (default 100). Bodies of 16 bytes or\n"
	    "                         more start with a big-endian 64-bit sequence number (the\n"
	    "                         producer's index 0..N-1 in the top 16 bits, its own count\n"
	    "                         from 0 in the low 48), then the send time as a big-endian\n"
	    "                         64-bit count of nanoseconds of CLOCK_REALTIME (since the\n"
	    "                         Unix epoch, so consumers on other hosts can compare; read\n"
	    "                         once per 16 messages, or per message with --rate or\n"
	    "                         --consumers), then the pattern abc...z; shorter bodies\n"
	    "                         hold the pattern only\n"
	    "      --body KIND        pattern (the default: the layout above) or json: each body "
	    "is\n"
	    "                         one JSON object of exactly --size bytes (at least 64),\n"
	    "                         like a line of telemetry, for measuring compression:\n"
	    "                         {\"seq\":\"<16 hex digits>\",\"ts\":<19 digits>, then\n"
	    "                         host, dc, metric, value and unit fields that vary from\n"
	    "                         body to body (dropped from the end when they do not\n"
	    "                         fit), \"msg\" words filling the rest}; seq and ts are the\n"
	    "                         sequence number and send time above, in text\n"
	    "  -C, --confirm MODE     none (default, best effort), async (publisher confirms,\n"
	    "                         streamed) or sync (each publish waits for its confirm)\n"
	    "  -w, --window N         confirm modes: most messages awaiting confirms per\n"
	    "                         producer (default: the configuration key publisher.window)\n"
	    "  -n, --count N          publish N messages in all, split evenly over the producers\n"
	    "                         (the default, with N = 1000000); 0 with --consumers:\n"
	    "                         publish nothing and drain what is queued (below)\n"
	    "      --duration S       publish for S seconds instead of a count\n"
	    "      --rate R           publish at most R messages/s in all, split evenly over the\n"
	    "                         producers (default 0: unlimited)\n"
	    "  -e, --exchange NAME    exchange to publish to (default \"\", the default one)\n"
	    "  -r, --routing-key KEY  routing key of every message (default " DEFAULT_KEY ")\n"
	    "  -d, --declare-queue    first declare a queue named KEY (not durable, not\n"
	    "                         auto-delete; one that exists must match), for use with\n"
	    "                         the default exchange\n"
	    "      --queues N         spread over N queues, KEY-1 .. KEY-N (1..1024; default:\n"
	    "                         the one queue KEY): producer j publishes with routing\n"
	    "                         key KEY-(j % N + 1), consumer j consumes KEY-(j % N + 1);\n"
	    "                         with --consumers there must be at least N, so that every\n"
	    "                         queue is consumed; with --declare-queue each is declared,\n"
	    "                         KEY-(i + 1) through connection i mod --connections, so\n"
	    "                         that in a cluster the queues start on the nodes the\n"
	    "                         connections are spread over (with --exchange, bind them\n"
	    "                         yourself)\n"
	    "      --queue-type T     classic, quorum or stream: declare the queue(s) (implies\n"
	    "                         --declare-queue) with x-queue-type T. quorum and stream\n"
	    "                         queues are durable, and their messages are published\n"
	    "                         persistent (as --persistent) since they exist to keep\n"
	    "                         them; a stream's consumers need manual acks (no\n"
	    "                         --auto-ack) and a prefetch (default 1000 for streams),\n"
	    "                         and read from x-stream-offset \"next\": the messages\n"
	    "                         published after they start, so --count 0 finds nothing\n"
	    "  -p, --persistent       mark messages persistent (delivery mode 2)\n"
	    "  -m, --mandatory        set the mandatory flag; with confirms, an unroutable\n"
	    "                         message counts as returned\n"
	    "  -c, --conf KEY=VALUE   set a salvo configuration key, after --uri; repeatable\n"
	    "                         (e.g. publisher.ring_size=16777216; keys below)\n"
	    "\n" CLI_BATCH_HELP
	    "                         With batching the sequence numbers, counts, rates and\n"
	    "                         latencies are of records; each is stamped as it is\n"
	    "                         published, so the linger counts in its latency\n"
	    "\n"
	    "Consumers (end-to-end latency):\n"
	    "      --consumers N      N consumer threads (default 0: none), each with its own\n"
	    "                         channel and consumer on the queue named KEY (the routing\n"
	    "                         key: the default exchange, or a queue bound to the\n"
	    "                         exchange with it), consuming while the producers publish;\n"
	    "                         each message's publish -> consume latency is its receive\n"
	    "                         time minus the send time in its body, so --size must be\n"
	    "                         at least 16. Messages not sent by this run (a body too\n"
	    "                         short, another producer index, a send time before the\n"
	    "                         start or more than 1 s after its receive time) are\n"
	    "                         counted apart and not timed, but count in the consume\n"
	    "                         rate like the run's own. salvo consumers hand out the\n"
	    "                         records of envelopes one by one: each record is a\n"
	    "                         message here\n"
	    "      --consumer-connections N  put the consumers on N connections of their own,\n"
	    "                         round-robin (default 1, at most --consumers); 0: consumer\n"
	    "                         i shares producer connection i % --connections, where\n"
	    "                         the broker's flow control of the publishing connection\n"
	    "                         holds back the acks queued behind the publishes (TCP\n"
	    "                         keeps their order), and with them the deliveries\n"
	    "      --prefetch N       basic.qos prefetch count of each consumer, 0..65535\n"
	    "                         (default 0: no basic.qos, the broker does not limit)\n"
	    "      --auto-ack         consume with no_ack: the broker counts a message acked\n"
	    "                         when it sends it (default: manual acks)\n"
	    "      --multi-ack-every K  manual acks: one basic.ack with multiple for every K\n"
	    "                         messages, 1..65535, at most --prefetch (default 1: every\n"
	    "                         message is acked, and salvo's I/O thread merges the acks\n"
	    "                         it sends together into multiple acks); messages held\n"
	    "                         back are acked as soon as none arrives for 50 ms\n"
	    "      --consume-callback each consumer takes its messages through a callback\n"
	    "                         (salvo_consumer_opts.on_message, run by\n"
	    "                         salvo_consumer_dispatch on its thread) instead of\n"
	    "                         salvo_consumer_get; the same work per message\n"
	    "      --consumer-rate R  consume at most R messages/s in all, split evenly over\n"
	    "                         the consumers (default 0: unlimited)\n"
	    "      --drain-timeout S  after the producers finish, wait until the consumers\n"
	    "                         have every message the broker took (acked, or sent with\n"
	    "                         --confirm none), giving up once no message (of this\n"
	    "                         run or an earlier one) has arrived for S seconds\n"
	    "                         (1..3600, default 10). With --count 0 nothing is\n"
	    "                         published: the consumers drain the queue (a backlog\n"
	    "                         left by earlier runs or other publishers) until no\n"
	    "                         message has arrived for S seconds\n"
	    "\n"
	    "Output:\n"
	    "  -P, --progress         once a second on stderr: \"t=3s sent N (R msg/s)\", with\n"
	    "                         acked, nacked and in-flight counts in confirm modes,\n"
	    "                         \"envelopes N (R/s)\" with batching and \"consumed N\n"
	    "                         (R msg/s)\" with consumers, counting every message\n"
	    "                         received, older ones too (the default)\n"
	    "  -q, --quiet            no progress lines\n"
	    "      --csv FILE         write to FILE one row per second and one at the end:\n"
	    "                         t (seconds since the start), sent, acked, nacked,\n"
	    "                         in_flight, msgs_per_s (since the previous row), with\n"
	    "                         batching envelopes, envelopes_per_s, with consumers\n"
	    "                         consumed, consume_msgs_per_s (every message received,\n"
	    "                         older ones too), with confirms\n"
	    "                         confirm_p50_us, confirm_p99_us, confirm_max_us (the\n"
	    "                         confirm latencies sampled since the previous row), and\n"
	    "                         with consumers e2e_p50_us, e2e_p99_us, e2e_max_us (the\n"
	    "                         end-to-end latencies of the messages received since the\n"
	    "                         previous row, less up to 256 per consumer not yet\n"
	    "                         handed over); a latency field is empty when no latency\n"
	    "                         was sampled, and a max is exact when it is the run's\n"
	    "                         largest so far, else up to 12% high\n"
	    "      --plot FILE        after the run, draw the per-second rows (as in --csv)\n"
	    "                         into FILE as a PNG with gnuplot, which must be in PATH:\n"
	    "                         messages/s sent, acked and consumed; messages in flight\n"
	    "                         and not yet consumed; confirm and end-to-end latency\n"
	    "                         p50, p99 and max in ms on a log scale; titled with the\n"
	    "                         run's parameters and the broker's address (no user or\n"
	    "                         password)\n"
	    "      --metrics-port P   while connected, serve salvo's statistics of every\n"
	    "                         connection in the Prometheus text format\n"
	    "                         (salvo_stats_prometheus, docs/statistics.md) over HTTP\n"
	    "                         on 127.0.0.1:P, at any path (e.g. /metrics); 0: a port\n"
	    "                         the kernel picks. The address goes to stderr as\n"
	    "                         \"salvo-perf: metrics at http://127.0.0.1:P/metrics\".\n"
	    "                         Each connection's series carry connection=\"perf-N\"\n"
	    "                         (its number from 1) unless connection_name is set\n"
	    "  -j, --json             end stdout with one JSON object: sent, acked, nacked,\n"
	    "                         returned, failed, bytes (body bytes sent), seconds,\n"
	    "                         msgs_per_s, mbytes_per_s (10^6 bytes), cpu_seconds,\n"
	    "                         cpu_us_per_msg, latency_us {p50, p99, p999, max} (confirm\n"
	    "                         latency over every connection; null with --confirm none),\n"
	    "                         reconnects, duplicates_possible (messages sent again after\n"
	    "                         a reconnection), possibly_lost (best effort: sent on\n"
	    "                         lost connections after the last checkpoint), producers,\n"
	    "                         connections, size, confirm, rate, max_rss_kb (peak RSS),\n"
	    "                         body (pattern or json); records and records_per_s (the\n"
	    "                         same as sent and msgs_per_s: every publish is a record),\n"
	    "                         batch_records, batch_bytes, linger_us (0: salvo's\n"
	    "                         default), compression, compression_level, envelopes\n"
	    "                         (salvo_pub_stats.envelopes: the messages the broker\n"
	    "                         got), envelopes_per_s, envelope_bytes (their bodies as\n"
	    "                         sent), envelope_raw_bytes (before compression),\n"
	    "                         records_per_envelope, envelope_bytes_per_record (what\n"
	    "                         the broker stores per record; both null without\n"
	    "                         envelopes);\n"
	    "                         and for consumers (0 and nulls without): consumers,\n"
	    "                         consumer_connections, prefetch, auto_ack,\n"
	    "                         multi_ack_every, consume_callback, consumed (messages of\n"
	    "                         this run only),\n"
	    "                         not_consumed (of those acked, or sent with --confirm\n"
	    "                         none), consumed_other (not sent by this run),\n"
	    "                         redelivered, sequence_gaps and sequence_repeats\n"
	    "                         (each consumer checks every producer's sequence\n"
	    "                         numbers: counters skipped, counters again or late;\n"
	    "                         with one consumer, 0 and 0 and consumed == sent mean\n"
	    "                         every message once, in order), consumed_total\n"
	    "                         (consumed + consumed_other: every message taken),\n"
	    "                         consume_seconds (from the start to the last message\n"
	    "                         received, of the run or not), consume_msgs_per_s\n"
	    "                         (consumed_total / consume_seconds; before consumed_total\n"
	    "                         existed it counted the run's messages only, and draining\n"
	    "                         a backlog read as nearly 0),\n"
	    "                         e2e_latency_us {p50, p99, p999, max} (every message of the\n"
	    "                         run), consumer_cpu_seconds, consumer_cpu_us_per_msg (the\n"
	    "                         consumer threads' own CPU per message of consumed_total;\n"
	    "                         salvo's I/O work for them is in cpu_seconds only);\n"
	    "                         and always io {turns, waits, sends, recvs, wakeups, kicks,\n"
	    "                         ack_holds, stream_holds} (salvo_io_stats and\n"
	    "                         stream_holds of salvo_consume_stats, every connection's\n"
	    "                         summed over the whole run, connecting included),\n"
	    "                         voluntary_ctx_switches and involuntary_ctx_switches\n"
	    "                         (the process's, getrusage)\n"
	    "  -h, --help             print this help and exit\n"
	    "  -V, --version          print the salvo version and exit\n"
	    "\n"
	    "The clock runs from when every producer has its publisher (and every consumer is\n"
	    "consuming) until every message has its outcome from the broker (async, sync) or has\n"
	    "been handed to the kernel (none): seconds and msgs_per_s; connecting and declaring\n"
	    "are not counted. With consumers the run goes on until they have drained the queue,\n"
	    "and consume_msgs_per_s counts every message received over the span from the start\n"
	    "to the last one.\n"
	    "CPU time is the whole process's (producers, consumers and salvo's I/O threads) over\n"
	    "the whole run. Confirm latency is sampled by salvo:\n"
	    "every message in sync mode, one in 16 in async mode. A readable summary goes to\n"
	    "stderr. SIGINT or SIGTERM ends the run early with a summary; a second one kills.\n"
	    "Numbers are decimal digits only.\n"
	    "\n"
	    "Exit status: 0 if every message was sent (with confirms: acked) and every publisher\n"
	    "and connection closed cleanly; 1 on a failure: connecting, declaring or opening a\n"
	    "publisher (no summary), an error that ends a channel or connection during the run\n"
	    "(reported as \"" PROG ": what: status: detail\"; the summary and JSON still say\n"
	    "what was achieved), a run stopped by a signal, with confirms any message not acked,\n"
	    "or with consumers any message acked by the broker (sent, with --confirm none) and\n"
	    "not consumed after the drain; 2 on a usage error.\n"
	    "\n",
	    out);
	salvo_conf_print_help(out);
}

/* Which consumer options were given, for the checks between them. */
struct consumer_args {
	const char *first; /* the first consumer option given, "" if none */
	bool connections, prefetch, multi_ack;
};

/* The checks between consumer options. Returns -1 to go on, else the exit status. */
static int check_consumer_args(struct options *o, const struct consumer_args *ca)
{
	if (!o->consumers)
		return ca->first[0] ? usage_error("--%s needs --consumers", ca->first) : -1;
	if (!ca->connections)
		o->consumer_connections = 1;
	if (o->size < HEADER_SIZE)
		return usage_error("--consumers needs --size of at least %d: consumers read the "
				   "send time from bytes 8..15 of each body (--size is %zu)",
				   HEADER_SIZE, o->size);
	if (!o->routing_key[0])
		return usage_error("--consumers needs a non-empty --routing-key: the queue they "
				   "consume");
	if (o->consumer_connections > o->consumers)
		return usage_error("--consumer-connections %u is more than --consumers %u: a "
				   "connection would have no consumer",
				   o->consumer_connections, o->consumers);
	if (o->queues > o->consumers)
		return usage_error("--consumers %u is fewer than --queues %u: a queue would have "
				   "no consumer",
				   o->consumers, o->queues);
	if (o->queue_type == QUEUE_STREAM && o->auto_ack)
		return usage_error("--auto-ack with --queue-type stream: a stream's consumers must "
				   "ack");
	if (o->queue_type == QUEUE_STREAM && !ca->prefetch)
		o->prefetch = STREAM_PREFETCH;
	if (o->queue_type == QUEUE_STREAM && !o->prefetch)
		return usage_error("--prefetch 0 with --queue-type stream: a stream's consumers "
				   "need a prefetch");
	if (o->auto_ack && ca->prefetch)
		return usage_error("--prefetch with --auto-ack: the broker does not limit no_ack "
				   "deliveries");
	if (o->auto_ack && ca->multi_ack)
		return usage_error("--multi-ack-every with --auto-ack: no_ack messages are not "
				   "acked");
	if (o->prefetch && o->multi_ack_every > o->prefetch)
		return usage_error("--multi-ack-every %u is more than --prefetch %u: each consumer "
				   "would wait for messages the broker holds back until it acks",
				   o->multi_ack_every, o->prefetch);
	return -1;
}

/* o->queue_names: KEY-1 .. KEY-N with --queues N, else KEY alone. AMQP names hold at most
 * 255 bytes. Returns -1, or the exit status of a bad setting. */
static int queue_names(struct options *o)
{
	o->nqueue_names = o->queues ? o->queues : 1;
	o->queue_names = calloc(o->nqueue_names, sizeof *o->queue_names);
	if (!o->queue_names) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_FAILED;
	}
	for (unsigned i = 0; i < o->nqueue_names; i++) {
		char name[300];
		int len = o->queues ? snprintf(name, sizeof name, "%s-%u", o->routing_key, i + 1)
				    : snprintf(name, sizeof name, "%s", o->routing_key);

		if (len > 255)
			return usage_error("--routing-key: a queue name of %d bytes (at most 255)",
					   len);
		o->queue_names[i] = strdup(name);
		if (!o->queue_names[i]) {
			fprintf(stderr, PROG ": out of memory\n");
			return EXIT_FAILED;
		}
	}
	return -1;
}

/* The checks between options, once all are read. */
static int check_args(struct options *o, bool counted, bool windowed,
		      const struct consumer_args *ca)
{
	int rc;

	if (counted && o->duration_s)
		return usage_error("--count and --duration exclude each other");
	if (!counted && !o->duration_s)
		o->count = DEFAULT_COUNT;
	if (o->connections > o->producers)
		return usage_error("--connections %u is more than --producers %u: a connection "
				   "would have no producer",
				   o->connections, o->producers);
	if (windowed && o->confirm == SALVO_CONFIRM_NONE)
		return usage_error("--window needs --confirm async or sync");
	if (o->declare_queue && !o->routing_key[0])
		return usage_error("--declare-queue needs a non-empty --routing-key");
	if (o->queues && !o->routing_key[0])
		return usage_error("--queues needs a non-empty --routing-key: the queues' names "
				   "start with it");
	/* Quorum queues and streams keep every message on disk: publish them as such. */
	if (o->queue_type == QUEUE_QUORUM || o->queue_type == QUEUE_STREAM)
		o->flags |= SALVO_MSG_PERSISTENT;
	rc = queue_names(o);
	if (rc >= 0)
		return rc;
	if (o->body == BODY_JSON && o->size < BODY_JSON_MIN)
		return usage_error("--body json needs --size of at least %d (--size is %zu)",
				   BODY_JSON_MIN, o->size);
	/* Before the run, not after it: a run can take long. */
	if (o->plot && !(o->gnuplot = plot_find_gnuplot()))
		return usage_error("--plot needs gnuplot (the Debian package gnuplot-nox), and "
				   "there is none in PATH");
	rc = cli_batch_check(&o->batch);
	return rc ? rc : check_consumer_args(o, ca);
}

/* Returns -1 to go on, else the exit status. */
int parse_args(int argc, char **argv, struct options *o)
{
	bool counted = false, windowed = false;
	struct consumer_args ca = {.first = ""};
	const char *env = getenv("SALVO_URI");
	uint64_t v;
	int opt, rc;

	o->connections = 1;
	o->producers = 1;
	o->size = DEFAULT_SIZE;
	o->exchange = "";
	o->routing_key = DEFAULT_KEY;
	o->progress = true;
	o->multi_ack_every = 1;
	o->drain_timeout_s = DEFAULT_DRAIN_TIMEOUT_S;
	o->metrics_port = -1;
	/* --uri and --conf can each appear at most once per argument, plus the default. */
	o->uris = calloc((size_t)argc + 1, sizeof *o->uris);
	o->conf = calloc((size_t)argc, sizeof *o->conf);
	if (!o->uris || !o->conf) {
		fail(SALVO_ERR_NO_MEMORY, NULL, "parse arguments");
		return EXIT_FAILED;
	}

	opterr = 0; /* our own messages, in our format */
	while ((opt = getopt_long(argc, argv, ":u:s:C:w:n:e:r:dpmjc:PqhV", long_options, NULL)) !=
	       -1) {
		rc = 0;
		switch (opt) {
		case 'u':
			o->uris[o->nuris++] = optarg;
			break;
		case OPT_CONNECTIONS:
			rc = parse_range("connections", optarg, 1, MAX_CONNECTIONS, &v);
			o->connections = (unsigned)v;
			break;
		case OPT_PRODUCERS:
			rc = parse_range("producers", optarg, 1, MAX_PRODUCERS, &v);
			o->producers = (unsigned)v;
			break;
		case 's':
			rc = parse_range("size", optarg, 0, MAX_SIZE, &v);
			o->size = (size_t)v;
			break;
		case OPT_BODY:
			if (!strcmp(optarg, body_names[BODY_JSON]))
				o->body = BODY_JSON;
			else if (strcmp(optarg, body_names[BODY_PATTERN]))
				return usage_error("--body: '%s' is not pattern or json", optarg);
			break;
		case 'C':
			rc = parse_confirm(optarg, &o->confirm);
			break;
		case 'w':
			rc = parse_range("window", optarg, 1, 1u << 24, &v);
			o->window = (size_t)v;
			windowed = true;
			break;
		case 'n':
			rc = parse_range("count", optarg, 0, UINT64_MAX, &o->count);
			counted = true;
			break;
		case OPT_DURATION:
			/* A year: far beyond any benchmark, far from overflowing a timespec. */
			rc = parse_range("duration", optarg, 1, 365 * 24 * 3600, &o->duration_s);
			break;
		case OPT_RATE:
			rc = parse_range("rate", optarg, 0, UINT32_MAX, &o->rate);
			break;
		case 'e':
			o->exchange = optarg;
			break;
		case 'r':
			o->routing_key = optarg;
			break;
		case 'd':
			o->declare_queue = true;
			break;
		case OPT_QUEUES:
			rc = parse_range("queues", optarg, 1, MAX_QUEUES, &v);
			o->queues = (unsigned)v;
			break;
		case OPT_QUEUE_TYPE:
			if (!strcmp(optarg, "classic"))
				o->queue_type = QUEUE_CLASSIC;
			else if (!strcmp(optarg, "quorum"))
				o->queue_type = QUEUE_QUORUM;
			else if (!strcmp(optarg, "stream"))
				o->queue_type = QUEUE_STREAM;
			else
				return usage_error("--queue-type: '%s' is not classic, quorum or "
						   "stream",
						   optarg);
			o->declare_queue = true;
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
		case OPT_CSV:
			if (!optarg[0])
				return usage_error("--csv needs a file name");
			o->csv = optarg;
			break;
		case OPT_PLOT:
			if (!optarg[0])
				return usage_error("--plot needs a file name");
			o->plot = optarg;
			break;
		case OPT_METRICS_PORT:
			rc = parse_range("metrics-port", optarg, 0, 65535, &v);
			o->metrics_port = (int)v;
			break;
		case 'c':
			rc = add_conf(optarg, o->conf, &o->nconf);
			break;
		case OPT_CONSUMERS:
			rc = parse_range("consumers", optarg, 0, MAX_CONSUMERS, &v);
			o->consumers = (unsigned)v;
			break;
		case OPT_CONSUMER_CONNECTIONS:
			rc = parse_range("consumer-connections", optarg, 0, MAX_CONNECTIONS, &v);
			o->consumer_connections = (unsigned)v;
			ca.connections = true;
			break;
		case OPT_PREFETCH:
			rc = parse_range("prefetch", optarg, 0, UINT16_MAX, &v);
			o->prefetch = (unsigned)v;
			ca.prefetch = true;
			break;
		case OPT_AUTO_ACK:
			o->auto_ack = true;
			break;
		case OPT_MULTI_ACK_EVERY:
			rc = parse_range("multi-ack-every", optarg, 1, UINT16_MAX, &v);
			o->multi_ack_every = (unsigned)v;
			ca.multi_ack = true;
			break;
		case OPT_CONSUME_CALLBACK:
			o->consume_callback = true;
			break;
		case OPT_CONSUMER_RATE:
			rc = parse_range("consumer-rate", optarg, 0, UINT32_MAX, &o->consumer_rate);
			break;
		case OPT_DRAIN_TIMEOUT:
			rc = parse_range("drain-timeout", optarg, 1, 3600, &o->drain_timeout_s);
			break;
		case 'P':
			o->progress = true;
			break;
		case 'q':
			o->progress = false;
			break;
		default:
			if (opt >= CLI_OPT_BATCH_RECORDS && opt < CLI_OPT_BATCH_END) {
				rc = cli_batch_option(opt, optarg, &o->batch);
				break;
			}
			return other_option(opt, argv, long_options, usage);
		}
		if (rc)
			return rc;
		if (opt >= OPT_CONSUMER_CONNECTIONS && opt <= OPT_DRAIN_TIMEOUT && !ca.first[0])
			ca.first = option_name(long_options, opt);
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->nuris)
		o->uris[o->nuris++] = env && *env ? env : DEFAULT_URI;
	return check_args(o, counted, windowed, &ca);
}

/* Returns 0, or the exit status of a bad setting. "uri" first: it replaces the endpoint
 * list that "uri.add" appends to. A URI is not echoed (it may hold a password); salvo's
 * message never holds one. */
int configure(salvo_conf *conf, const struct options *o)
{
	char errstr[512];

	for (size_t i = 0; i < o->nuris; i++)
		if (salvo_conf_set(conf, i ? "uri.add" : "uri", o->uris[i], errstr, sizeof errstr))
			return usage_error("--uri (#%zu): %s", i + 1, errstr);
	return apply_conf(conf, o->conf, o->nconf);
}

void options_free(struct options *o)
{
	for (unsigned i = 0; o->queue_names && i < o->nqueue_names; i++)
		free(o->queue_names[i]);
	free(o->queue_names);
	free(o->uris);
	free(o->conf);
	free(o->gnuplot);
}
