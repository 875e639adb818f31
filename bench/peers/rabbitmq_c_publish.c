/* SPDX-License-Identifier: MIT */
/*
 * rabbitmq_c_publish: the publisher a C programmer would write with rabbitmq-c (librabbitmq,
 * Debian 12's 0.11) instead of using salvo, run with the workload of salvo-publish --count N
 * --size B so that scripts/bench.sh can set the two side by side against the same broker.
 *
 * It uses rabbitmq-c the way its documentation and examples do: blocking calls, one
 * amqp_basic_publish per message (three frames, sent as they are encoded), the library's
 * default heartbeat (0, none) and frame_max (131072), and one connection per thread since a
 * connection is not thread-safe. 0.11 has no amqp_publisher_confirm_wait (0.12 added it),
 * so confirms are read as method frames with amqp_simple_wait_frame_noblock:
 *   none   basic.publish only. Done when the last publish returned and the channel and the
 *          connection closed cleanly, which is also when a broker's refusal (404 for a
 *          missing exchange) comes back at the latest.
 *   async  confirm.select, then publish while fewer than --window messages await their
 *          confirm; a full window blocks on basic.ack / basic.nack frames (multiple or not).
 *   sync   confirm.select, then every publish waits for its own confirm. --threads T runs T
 *          of these, each on its own connection, splitting --count between them.
 * Bodies are salvo-publish's: the message's sequence number 0..N-1 as an 8-byte big-endian
 * integer (its low B bytes when B < 8), then "abc...z" repeated.
 *
 * The clock runs from the first publish until every message is confirmed (async, sync) or
 * the connection is closed (none): connecting, declaring and confirm.select are outside it.
 * CPU time is the whole process's (getrusage RUSAGE_SELF, every thread) over the same span.
 *
 * Exit status: 0 success, 1 any failure (a nacked message included), 2 a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
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

#define PROG	    "rabbitmq_c_publish"
#define DEFAULT_URI "amqp://guest:guest@localhost:5672"
#define CHANNEL	    1
#define MAX_WINDOW  (1u << 24)
#define MAX_THREADS 256
#define MAX_BODY    (1u << 30)

const char peer_prog[] = PROG;

enum confirm_mode { CONFIRM_NONE, CONFIRM_ASYNC, CONFIRM_SYNC };

static const char *const confirm_names[] = {"none", "async", "sync"};

struct options {
	const char *uri;
	const char *exchange;
	const char *routing_key;
	uint64_t size;
	uint64_t count;
	enum confirm_mode confirm;
	uint64_t window;
	uint64_t threads;
	bool declare_queue;
	bool json;
};

/*
 * One connection with one channel and its share of the messages, used by one thread from
 * connect to close.
 *
 * Confirm modes track delivery tags, which the broker numbers from 1 in publish order.
 * Every tag in [oldest, next_tag) was published; pending[tag & mask] says whether it still
 * awaits its ack or nack. next_tag - oldest never exceeds the window, so a ring of
 * window slots (rounded up to a power of two) holds them all; acks may come in any order.
 */
struct publisher {
	const struct options *o;
	unsigned index;
	amqp_connection_state_t conn;
	bool conn_open;
	bool channel_open;
	uint64_t first_seq;
	uint64_t count;
	amqp_bytes_t body;
	uint8_t *pending;
	uint64_t mask;
	uint64_t next_tag;
	uint64_t oldest;
	uint64_t sent;
	uint64_t acked;
	uint64_t nacked;
};

static const struct option long_options[] = {
    {"uri", required_argument, NULL, 'u'},
    {"exchange", required_argument, NULL, 'e'},
    {"routing-key", required_argument, NULL, 'r'},
    {"size", required_argument, NULL, 's'},
    {"count", required_argument, NULL, 'n'},
    {"confirm", required_argument, NULL, 'C'},
    {"window", required_argument, NULL, 'w'},
    {"threads", required_argument, NULL, 't'},
    {"declare-queue", no_argument, NULL, 'd'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs("Usage: " PROG " [OPTION]...\n"
	      "Publish generated messages with rabbitmq-c (librabbitmq) and report the rate and\n"
	      "the client's CPU cost, for comparison with salvo-publish.\n"
	      "\n"
	      "  --uri URI          broker (default " DEFAULT_URI "); amqp:// only\n"
	      "  --exchange E       exchange to publish to (default \"\", the default one)\n"
	      "  --routing-key K    routing key of every message (default salvo-peer)\n"
	      "  --size B           body size in bytes (default 100)\n"
	      "  --count N          messages in all (default 1000000)\n"
	      "  --confirm MODE     none (default): basic.publish only; async: publisher\n"
	      "                     confirms with at most --window messages unconfirmed; sync:\n"
	      "                     each publish waits for its confirm\n"
	      "  --window W         async: most unconfirmed messages (default 4096)\n"
	      "  --threads T        sync: T threads, each with its own connection, splitting\n"
	      "                     --count (default 1)\n"
	      "  --declare-queue    first declare a queue named K (not durable, not exclusive,\n"
	      "                     not auto-delete)\n"
	      "  --json             end stdout with one JSON object: client, client_version,\n"
	      "                     confirm, threads, window, size, sent, bytes, acked, nacked,\n"
	      "                     seconds, msgs_per_s, mbytes_per_s (10^6 bytes), cpu_seconds,\n"
	      "                     cpu_us_per_msg\n"
	      "  --help             print this help and exit\n"
	      "\n"
	      "Timing runs from the first publish until every message is confirmed (async, sync)\n"
	      "or the channel and connection are closed (none). Exit status: 0 success, 1 any\n"
	      "failure (a nack included), 2 a usage error.\n",
	      out);
}

/* "rabbitmq_c_publish: [connection N: ]what[: detail]" on stderr. Returns -1. */
static int fail(const struct publisher *p, const char *detail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const struct publisher *p, const char *detail, const char *fmt, ...)
{
	char prefix[32] = "";
	va_list ap;
	int rc;

	if (p && p->o->threads > 1)
		snprintf(prefix, sizeof prefix, "connection %u: ", p->index);
	va_start(ap, fmt);
	rc = peer_vfail(prefix, detail, fmt, ap);
	va_end(ap);
	return rc;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	int opt;

	*o = (struct options){
	    .uri = DEFAULT_URI,
	    .exchange = "",
	    .routing_key = "salvo-peer",
	    .size = 100,
	    .count = 1000000,
	    .window = 4096,
	    .threads = 1,
	};
	opterr = 0; /* our own messages, in our format */
	while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		switch (opt) {
		case 'u':
			o->uri = optarg;
			break;
		case 'e':
			o->exchange = optarg;
			break;
		case 'r':
			o->routing_key = optarg;
			break;
		case 's':
			if (!peer_parse_number(optarg, 0, MAX_BODY, &o->size))
				return peer_usage_error("--size: '%s' is not a size (0..%u)", optarg,
						   MAX_BODY);
			break;
		case 'n':
			if (!peer_parse_number(optarg, 1, UINT64_MAX, &o->count))
				return peer_usage_error("--count: '%s' is not a count (1..%" PRIu64 ")",
						   optarg, UINT64_MAX);
			break;
		case 'C': {
			unsigned m = 0;

			while (m < 3 && strcmp(optarg, confirm_names[m]) != 0)
				m++;
			if (m == 3)
				return peer_usage_error("--confirm: '%s' is not none, async or sync",
						   optarg);
			o->confirm = (enum confirm_mode)m;
			break;
		}
		case 'w':
			if (!peer_parse_number(optarg, 1, MAX_WINDOW, &o->window))
				return peer_usage_error("--window: '%s' is not a count (1..%u)", optarg,
						   MAX_WINDOW);
			break;
		case 't':
			if (!peer_parse_number(optarg, 1, MAX_THREADS, &o->threads))
				return peer_usage_error("--threads: '%s' is not a count (1..%u)", optarg,
						   MAX_THREADS);
			break;
		case 'd':
			o->declare_queue = true;
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
	if (o->threads > 1 && o->confirm != CONFIRM_SYNC)
		return peer_usage_error("--threads is for --confirm sync only");
	if (o->threads > o->count)
		return peer_usage_error("--threads %" PRIu64 " is more than --count %" PRIu64,
				   o->threads, o->count);
	if (o->declare_queue && !o->routing_key[0])
		return peer_usage_error("--declare-queue needs a non-empty --routing-key");
	return -1;
}

/* Most messages awaiting their confirm at once: 0 without confirms. */
static uint64_t confirm_window(const struct options *o)
{
	switch (o->confirm) {
	case CONFIRM_ASYNC:
		return o->window;
	case CONFIRM_SYNC:
		return 1;
	default:
		return 0;
	}
}

/* The broker closed the channel or the connection: answer with close-ok, as the protocol
 * asks, and remember what is left open. */
static void answer_close(struct publisher *p, amqp_method_t m)
{
	if (m.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_ok_t ok = {0};

		p->channel_open = false;
		if (amqp_send_method(p->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) < 0)
			p->conn_open = false;
	} else if (m.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_ok_t ok = {0};

		p->channel_open = false;
		p->conn_open = false;
		amqp_send_method(p->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	}
}

/* 0 for a normal reply, else reports it (and answers a close from the broker): -1. */
static int check_reply(struct publisher *p, amqp_rpc_reply_t r, const char *what)
{
	char text[400];

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		p->conn_open = p->channel_open = false;
		return fail(p, "no reply from the broker", "%s", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		p->conn_open = p->channel_open = false;
		return fail(p, amqp_error_string2(r.library_error), "%s", what);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		peer_describe_method(r.reply, text, sizeof text);
		answer_close(p, r.reply);
		return fail(p, text, "%s", what);
	}
	return fail(p, "unknown reply type", "%s", what);
}

/* Connects, logs in, opens the channel, declares the queue (when asked and first) and
 * selects confirms (in confirm modes). Returns 0 or -1. */
static int connect_publisher(struct publisher *p, const struct amqp_connection_info *ci)
{
	const struct options *o = p->o;
	amqp_socket_t *sock;
	int rc;

	p->conn = amqp_new_connection();
	if (!p->conn)
		return fail(p, "out of memory", "amqp_new_connection");
	sock = amqp_tcp_socket_new(p->conn);
	if (!sock)
		return fail(p, "out of memory", "amqp_tcp_socket_new");
	rc = amqp_socket_open(sock, ci->host, ci->port);
	if (rc != AMQP_STATUS_OK)
		return fail(p, amqp_error_string2(rc), "connect to %s:%d", ci->host, ci->port);
	p->conn_open = true;
	if (check_reply(p,
			amqp_login(p->conn, ci->vhost, AMQP_DEFAULT_MAX_CHANNELS,
				   AMQP_DEFAULT_FRAME_SIZE, AMQP_DEFAULT_HEARTBEAT,
				   AMQP_SASL_METHOD_PLAIN, ci->user, ci->password),
			"log in"))
		return -1;
	amqp_channel_open(p->conn, CHANNEL);
	if (check_reply(p, amqp_get_rpc_reply(p->conn), "channel.open"))
		return -1;
	p->channel_open = true;
	if (o->declare_queue && p->index == 0) {
		amqp_queue_declare(p->conn, CHANNEL, amqp_cstring_bytes(o->routing_key), 0, 0, 0, 0,
				   amqp_empty_table);
		if (check_reply(p, amqp_get_rpc_reply(p->conn), "queue.declare"))
			return -1;
	}
	if (o->confirm != CONFIRM_NONE) {
		amqp_confirm_select(p->conn, CHANNEL);
		if (check_reply(p, amqp_get_rpc_reply(p->conn), "confirm.select"))
			return -1;
	}
	return 0;
}

/* Closes what is still open, channel then connection, and frees the connection. */
static int close_publisher(struct publisher *p)
{
	int ret = 0;
	int rc;

	if (!p->conn)
		return 0;
	if (p->channel_open) {
		p->channel_open = false;
		ret |= check_reply(p, amqp_channel_close(p->conn, CHANNEL, AMQP_REPLY_SUCCESS),
				   "channel.close");
	}
	if (p->conn_open) {
		p->conn_open = false;
		ret |= check_reply(p, amqp_connection_close(p->conn, AMQP_REPLY_SUCCESS),
				   "connection.close");
	}
	rc = amqp_destroy_connection(p->conn);
	p->conn = NULL;
	if (rc != AMQP_STATUS_OK)
		ret = fail(p, amqp_error_string2(rc), "amqp_destroy_connection");
	return ret;
}

/* basic.ack or basic.nack for tag (and with multiple, every earlier tag still pending). A
 * tag that is not awaiting its confirm is a protocol error. */
static int settle(struct publisher *p, uint64_t tag, bool multiple, bool nack)
{
	const char *name = nack ? "basic.nack" : "basic.ack";
	uint64_t from = tag;

	if (multiple) {
		from = p->oldest;
		/* Tag 0 with multiple stands for every message published so far. */
		if (tag == 0)
			tag = p->next_tag - 1;
	}
	if (tag < p->oldest || tag >= p->next_tag || !p->pending[tag & p->mask])
		return fail(p, NULL, "%s for delivery tag %" PRIu64 ", which awaits no confirm",
			    name, tag);
	for (uint64_t t = from; t <= tag; t++) {
		if (!p->pending[t & p->mask])
			continue;
		p->pending[t & p->mask] = 0;
		if (nack)
			p->nacked++;
		else
			p->acked++;
	}
	while (p->oldest < p->next_tag && !p->pending[p->oldest & p->mask])
		p->oldest++;
	return 0;
}

/* Waits for the broker's next frame on this connection (returned at once when the library
 * has it buffered already) and applies it. Returns 0 or -1. */
static int read_confirm(struct publisher *p)
{
	char text[400];
	amqp_frame_t f;
	int rc;

	rc = amqp_simple_wait_frame_noblock(p->conn, &f, NULL);
	if (rc != AMQP_STATUS_OK) {
		p->conn_open = p->channel_open = false;
		return fail(p, amqp_error_string2(rc), "wait for confirms");
	}
	if (f.frame_type != AMQP_FRAME_METHOD)
		return fail(p, NULL, "unexpected frame of type %u on channel %u", f.frame_type,
			    f.channel);
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		const amqp_basic_ack_t *m = f.payload.method.decoded;

		return settle(p, m->delivery_tag, m->multiple, false);
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *m = f.payload.method.decoded;

		return settle(p, m->delivery_tag, m->multiple, true);
	}
	default:
		peer_describe_method(f.payload.method, text, sizeof text);
		answer_close(p, f.payload.method);
		return fail(p, text, "wait for confirms");
	}
}

/* Reads confirms until at most max_unconfirmed messages await theirs. */
static int await_confirms(struct publisher *p, uint64_t max_unconfirmed)
{
	while (p->next_tag - p->oldest > max_unconfirmed)
		if (read_confirm(p))
			return -1;
	/* Decoded frames live in the connection's pools until released; frames the library
	 * queued and that were not read yet must stay. */
	if (!amqp_frames_enqueued(p->conn))
		amqp_maybe_release_buffers(p->conn);
	return 0;
}

/* The low min(size, 8) bytes of seq, big-endian, at the start of body. */
static void put_seq(amqp_bytes_t body, uint64_t seq)
{
	uint8_t *b = body.bytes;

	for (size_t i = body.len < 8 ? body.len : 8; i-- > 0; seq >>= 8)
		b[i] = (uint8_t)seq;
}

/* Publishes this publisher's messages: with confirms, until all are confirmed; without,
 * until the channel and the connection are closed. Returns 0 or -1. */
static int run_publisher(struct publisher *p)
{
	const struct options *o = p->o;
	amqp_bytes_t exchange = amqp_cstring_bytes(o->exchange);
	amqp_bytes_t key = amqp_cstring_bytes(o->routing_key);
	uint64_t window = confirm_window(o);
	int rc;

	for (uint64_t i = 0; i < p->count; i++) {
		put_seq(p->body, p->first_seq + i);
		rc = amqp_basic_publish(p->conn, CHANNEL, exchange, key, 0, 0, NULL, p->body);
		if (rc != AMQP_STATUS_OK) {
			p->conn_open = p->channel_open = false;
			return fail(p, amqp_error_string2(rc), "basic.publish of message %" PRIu64,
				    p->first_seq + i);
		}
		p->sent++;
		if (o->confirm == CONFIRM_NONE)
			continue;
		p->pending[p->next_tag++ & p->mask] = 1;
		/* Leaves room for the next publish: at most window messages unconfirmed. */
		if (await_confirms(p, window - 1))
			return -1;
	}
	if (o->confirm == CONFIRM_NONE)
		return close_publisher(p);
	return await_confirms(p, 0);
}

static int init_publisher(struct publisher *p, const struct options *o, unsigned index)
{
	uint64_t share = o->count / o->threads, extra = o->count % o->threads;
	uint64_t slots = 1;

	/* The first count % threads publishers take one message more. */
	p->o = o;
	p->index = index;
	p->count = share + (index < extra);
	p->first_seq = share * index + (index < extra ? index : extra);
	p->next_tag = p->oldest = 1;
	p->body.len = o->size;
	p->body.bytes = malloc(o->size ? o->size : 1);
	while (slots < confirm_window(o))
		slots <<= 1;
	p->mask = slots - 1;
	p->pending = calloc(slots, 1);
	if (!p->body.bytes || !p->pending)
		return fail(p, "out of memory", "allocate a %" PRIu64 "-byte body", o->size);
	for (size_t i = 8; i < o->size; i++)
		((uint8_t *)p->body.bytes)[i] = (uint8_t)('a' + (i - 8) % 26);
	return 0;
}

/* Threads wait here after connecting, so that the clock starts with every publisher
 * ready. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	bool cancel;
} start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static void open_start(bool cancel)
{
	pthread_mutex_lock(&start.lock);
	start.open = true;
	start.cancel = cancel;
	pthread_cond_broadcast(&start.cond);
	pthread_mutex_unlock(&start.lock);
}

struct thread_arg {
	struct publisher *p;
	pthread_t tid;
	int rc;
};

static void *publisher_thread(void *arg)
{
	struct thread_arg *a = arg;
	bool cancel;

	pthread_mutex_lock(&start.lock);
	while (!start.open)
		pthread_cond_wait(&start.cond, &start.lock);
	cancel = start.cancel;
	pthread_mutex_unlock(&start.lock);
	a->rc = cancel ? -1 : run_publisher(a->p);
	return NULL;
}

/* User plus system time of the process, every thread's. */
static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Runs every publisher, on threads when there are several. Returns 0 or -1. */
static int run_all(struct publisher *pubs, unsigned n, double *seconds, double *cpu)
{
	struct thread_arg *args;
	unsigned started = 0;
	int ret = 0;

	if (n == 1) {
		*seconds = peer_now_seconds();
		*cpu = cpu_seconds();
		ret = run_publisher(&pubs[0]);
		*seconds = peer_now_seconds() - *seconds;
		*cpu = cpu_seconds() - *cpu;
		return ret;
	}
	args = calloc(n, sizeof *args);
	if (!args)
		return fail(NULL, "out of memory", "start %u threads", n);
	for (; started < n; started++) {
		int err;

		args[started].p = &pubs[started];
		err = pthread_create(&args[started].tid, NULL, publisher_thread, &args[started]);
		if (err) {
			ret = fail(NULL, strerror(err), "start thread %u", started);
			break;
		}
	}
	*seconds = peer_now_seconds();
	*cpu = cpu_seconds();
	open_start(ret != 0);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(args[i].tid, NULL);
		ret |= args[i].rc;
	}
	*seconds = peer_now_seconds() - *seconds;
	*cpu = cpu_seconds() - *cpu;
	free(args);
	return ret;
}

static void report(const struct options *o, const struct publisher *pubs, double seconds,
		   double cpu)
{
	uint64_t sent = 0, acked = 0, nacked = 0, bytes;
	double rate, mbps, us_per_msg;

	for (unsigned i = 0; i < o->threads; i++) {
		sent += pubs[i].sent;
		acked += pubs[i].acked;
		nacked += pubs[i].nacked;
	}
	bytes = sent * o->size;
	rate = seconds > 0 ? (double)sent / seconds : 0;
	mbps = seconds > 0 ? (double)bytes / seconds / 1e6 : 0;
	us_per_msg = sent ? cpu * 1e6 / (double)sent : 0;
	fprintf(stderr,
		"sent %" PRIu64 " messages (%" PRIu64 " bytes each) in %.3f s: %.0f msgs/s, "
		"%.2f MB/s\ncpu %.3f s: %.3f us/msg\n",
		sent, o->size, seconds, rate, mbps, cpu, us_per_msg);
	if (o->confirm != CONFIRM_NONE)
		fprintf(stderr, "confirms (%s): %" PRIu64 " acked, %" PRIu64 " nacked\n",
			confirm_names[o->confirm], acked, nacked);
	if (!o->json)
		return;
	printf("{\"client\": \"rabbitmq-c\", \"client_version\": \"%s\", \"confirm\": \"%s\", "
	       "\"threads\": %" PRIu64 ", \"window\": %" PRIu64 ", \"size\": %" PRIu64
	       ", \"sent\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"acked\": %" PRIu64
	       ", \"nacked\": %" PRIu64 ", \"seconds\": %.6f, \"msgs_per_s\": %.1f, "
	       "\"mbytes_per_s\": %.3f, \"cpu_seconds\": %.6f, \"cpu_us_per_msg\": %.3f}\n",
	       amqp_version(), confirm_names[o->confirm], o->threads, confirm_window(o), o->size,
	       sent, bytes, acked, nacked, seconds, rate, mbps, cpu, us_per_msg);
}

int main(int argc, char **argv)
{
	struct amqp_connection_info ci;
	struct publisher *pubs;
	struct options o;
	double seconds = 0, cpu = 0;
	uint64_t nacked = 0;
	char *uri;
	unsigned n;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;
	ret = 0;
	/* amqp_parse_url cuts the string it parses into pieces, and ci points into them. */
	uri = strdup(o.uri);
	if (!uri)
		return fail(NULL, "out of memory", "parse --uri"), EXIT_FAILED;
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(uri, &ci) != AMQP_STATUS_OK)
		/* Not repeated: it may hold a password. */
		return peer_usage_error("--uri: not an amqp:// URI");
	if (ci.ssl)
		return peer_usage_error("--uri: amqps:// is not supported here");

	n = (unsigned)o.threads;
	pubs = calloc(n, sizeof *pubs);
	if (!pubs)
		return fail(NULL, "out of memory", "allocate %u publishers", n), EXIT_FAILED;
	for (unsigned i = 0; i < n && !ret; i++)
		ret = init_publisher(&pubs[i], &o, i) || connect_publisher(&pubs[i], &ci) ? -1 : 0;
	if (!ret)
		ret = run_all(pubs, n, &seconds, &cpu);
	if (!ret)
		report(&o, pubs, seconds, cpu);
	for (unsigned i = 0; i < n; i++) {
		nacked += pubs[i].nacked;
		ret |= close_publisher(&pubs[i]);
		free(pubs[i].body.bytes);
		free(pubs[i].pending);
	}
	free(pubs);
	free(uri);
	if (nacked)
		ret = fail(NULL, NULL, "%" PRIu64 " of %" PRIu64 " messages were nacked", nacked,
			   o.count);
	if (fflush(stdout) || ferror(stdout))
		ret = fail(NULL, strerror(errno), "write standard output");
	return ret ? EXIT_FAILED : 0;
}
