/* SPDX-License-Identifier: MIT */
/*
 * salvo-sink: a minimal AMQP 0-9-1 server for benchmarks and fault injection.
 *
 * It accepts what a publisher sends (handshake, channels, topology methods, confirms,
 * transactions), checks every publish frame by frame, counts messages per routing key
 * instead of storing them, and confirms them in bulk, so it can outrun the client it
 * measures. Options make it misbehave on purpose: nacks, returns, forced closes, stalls,
 * resets, late, reordered and bogus acks. sink.h describes the parts.
 *
 * This file: options, the listening socket, the worker threads, and the main thread,
 * which prints statistics and waits for SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"

struct sink_opts sink_opts = {
    .frame_max = SINK_DEFAULT_FRAME_MAX,
    .heartbeat = 60,
};

static const char usage[] =
    "usage: salvo-sink [OPTION]...\n"
    "A minimal AMQP 0-9-1 server that accepts, validates, counts and confirms publishes.\n"
    "\n"
    "  --listen ADDR:PORT      listen there (default 127.0.0.1:5673); port 0 picks a free one;\n"
    "                          IPv6 as [ADDR]:PORT; loopback addresses only, unless "
    "--allow-remote\n"
    "  --allow-remote          allow a non-loopback listen address\n"
    "  --threads N             worker threads (default and maximum: the number of cores)\n"
    "  --port-file F           write the bound port to F once listening\n"
    "  --user U --password P   accept only this login (PLAIN or AMQPLAIN); others get\n"
    "                          connection.close 403 ACCESS_REFUSED (default: accept anyone)\n"
    "  --frame-max N           frame_max offered in connection.tune (default 131072,\n"
    "                          4096 to 16777216)\n"
    "  --heartbeat S           heartbeat offered in connection.tune, seconds (default 60,\n"
    "                          0 disables); the client's tune-ok decides\n"
    "  --stats                 print msgs/s, records/s and MB/s (message bodies) every second\n"
    "                          on stderr, and the totals at exit (SIGINT or SIGTERM)\n"
    "  --json                  at exit (SIGINT or SIGTERM), print the totals as one JSON\n"
    "                          object on stdout: messages, bytes (message bodies),\n"
    "                          records, envelopes, envelope_records, invalid_envelopes,\n"
    "                          seconds, msgs_per_s, records_per_s, mbytes_per_s\n"
    "  --quiet                 no log lines (connections refused, closed, timed out)\n"
    "  --help                  this text\n"
    "\n"
    "Envelopes (salvo's batches of records, README \"Batching\"): a publish with\n"
    "content_type application/vnd.salvo.batch+v1 is checked as one (its x-salvo-records\n"
    "header, content_encoding none, lz4 or zstd, the compressed frame, every record's\n"
    "length, the count) and its records are counted. records counts one per message that\n"
    "is not an envelope, each record of a valid envelope, and none for an invalid one,\n"
    "which is counted in invalid_envelopes and still confirmed, as a broker would.\n"
    "  --envelope-max N        the largest envelope body checked, in bytes, before and\n"
    "                          after decompression (default: --frame-max; 4096 to\n"
    "                          268435456); a larger one is invalid. Each worker thread\n"
    "                          holds a buffer of N bytes for decompression\n"
    "  --log-bad-envelopes     log each invalid envelope and why (unless --quiet)\n"
    "\n"
    "Fault injection (message counts are per connection, delivery tags per channel):\n"
    "  --nack-every N          basic.nack every delivery tag that is a multiple of N\n"
    "  --return-unroutable KEY answer a mandatory publish with routing key KEY with\n"
    "                          basic.return 312 NO_ROUTE (then its ack); bodies over 16 MiB\n"
    "                          get channel.close 406 instead\n"
    "  --close-after N         connection.close 320 CONNECTION_FORCED after N messages\n"
    "  --stall-after N         stop reading the connection after N messages, keep it open\n"
    "                          (heartbeats are still sent)\n"
    "  --drop-after N          reset the connection (RST) after N messages\n"
    "  --ack-delay-ms D        hold every ack and nack for D milliseconds\n"
    "  --ack-out-of-order      settle each tag of a batch on its own, highest first,\n"
    "                          instead of one multiple ack\n"
    "  --ack-unknown-tag       after a channel's first confirms, ack a tag never published\n"
    "\n"
    "Queues are not stored: queue.declare reports as message_count the messages received\n"
    "so far (all connections) whose routing key is the queue's name; queue.purge and\n"
    "queue.delete report that count and reset it. basic.get always answers get-empty.\n";

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("salvo-sink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("salvo-sink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(salvo-sink --help lists the options)\n", stderr);
	exit(2);
}

static uint64_t number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		usage_error("%s: expected a number from %llu to %llu, got '%s'", opt,
			    (unsigned long long)min, (unsigned long long)max, s);
	return v;
}

/* ADDR:PORT or [ADDR6]:PORT, numeric only. */
static socklen_t parse_listen(const char *s, struct sockaddr_storage *ss, bool allow_remote)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen;
	uint16_t port;

	if (!colon)
		usage_error("--listen: expected ADDR:PORT, got '%s'", s);
	port = (uint16_t)number("--listen port", colon + 1, 0, 65535);
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof host)
		usage_error("--listen: bad address '%s'", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof *ss);
	if (h == s) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			usage_error("--listen: '%s' is not an IPv4 address (IPv6 goes in brackets)",
				    host);
		if (!allow_remote && (ntohl(in->sin_addr.s_addr) >> 24) != 127)
			usage_error("--listen: %s is not a loopback address; add --allow-remote "
				    "to listen there",
				    host);
		return sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			usage_error("--listen: '%s' is not an IPv6 address", host);
		if (!allow_remote && !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			usage_error("--listen: %s is not a loopback address; add --allow-remote "
				    "to listen there",
				    host);
		return sizeof *in6;
	}
}

static int listen_on(const struct sockaddr_storage *ss, socklen_t len, uint16_t *port)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 1024))
		die("listen: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)ss, &len))
		die("getsockname: %s", strerror(errno));
	*port = ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					       : ((const struct sockaddr_in6 *)ss)->sin6_port);
	return fd;
}

/* Written whole and renamed into place, so a reader never sees half a number. */
static void write_port_file(const char *path, uint16_t port)
{
	size_t n = strlen(path) + 5;
	char *tmp = malloc(n);
	FILE *f;

	if (!tmp)
		die("out of memory");
	snprintf(tmp, n, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) || rename(tmp, path))
		die("--port-file %s: %s", path, strerror(errno));
	free(tmp);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The workers' counters, summed. */
struct totals {
	uint64_t msgs, bytes, records, envelopes, bad_envelopes;
	uint32_t conns;
};

static void totals(struct worker *w, unsigned n, struct totals *t)
{
	memset(t, 0, sizeof *t);
	for (unsigned i = 0; i < n; i++) {
		t->msgs += atomic_load_explicit(&w[i].msgs, memory_order_relaxed);
		t->bytes += atomic_load_explicit(&w[i].bytes, memory_order_relaxed);
		t->records += atomic_load_explicit(&w[i].records, memory_order_relaxed);
		t->envelopes += atomic_load_explicit(&w[i].envelopes, memory_order_relaxed);
		t->bad_envelopes += atomic_load_explicit(&w[i].bad_envelopes, memory_order_relaxed);
		t->conns += atomic_load_explicit(&w[i].conns_open, memory_order_relaxed);
	}
}

static double per_second(uint64_t n, double secs)
{
	return secs > 0 ? (double)n / secs : 0;
}

/* The totals at exit: a line on stderr (--stats), an object on stdout (--json). */
static void report(const struct totals *t, double secs, bool stats, bool json)
{
	/* Messages that are not envelopes count one record each. */
	uint64_t plain = t->msgs - t->envelopes - t->bad_envelopes;

	if (stats)
		fprintf(stderr,
			"salvo-sink: total %llu messages, %llu body bytes in %.3f s: %.0f msgs/s, "
			"%.1f MB/s; %llu records (%llu envelopes, %llu invalid): %.0f records/s\n",
			(unsigned long long)t->msgs, (unsigned long long)t->bytes, secs,
			per_second(t->msgs, secs), per_second(t->bytes, secs) / 1e6,
			(unsigned long long)t->records, (unsigned long long)t->envelopes,
			(unsigned long long)t->bad_envelopes, per_second(t->records, secs));
	if (json)
		printf("{\"messages\": %llu, \"bytes\": %llu, \"records\": %llu, "
		       "\"envelopes\": %llu, \"envelope_records\": %llu, "
		       "\"invalid_envelopes\": %llu, \"seconds\": %.6f, \"msgs_per_s\": %.1f, "
		       "\"records_per_s\": %.1f, \"mbytes_per_s\": %.3f}\n",
		       (unsigned long long)t->msgs, (unsigned long long)t->bytes,
		       (unsigned long long)t->records, (unsigned long long)t->envelopes,
		       (unsigned long long)(t->records - plain),
		       (unsigned long long)t->bad_envelopes, secs, per_second(t->msgs, secs),
		       per_second(t->records, secs), per_second(t->bytes, secs) / 1e6);
}

/* Until SIGINT or SIGTERM: every second, the rates of the last second if --stats. */
static void main_loop(struct worker *w, unsigned n, bool stats)
{
	struct timespec last, second = {1, 0};
	struct totals prev = {0}, cur;
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	clock_gettime(CLOCK_MONOTONIC, &last);
	for (;;) {
		int sig = sigtimedwait(&stop, NULL, &second);
		double dt;

		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (!stats)
			continue;
		totals(w, n, &cur);
		dt = seconds_since(&last);
		clock_gettime(CLOCK_MONOTONIC, &last);
		fprintf(stderr,
			"salvo-sink: %.0f msgs/s, %.1f MB/s, %u connections, %.0f records/s\n",
			per_second(cur.msgs - prev.msgs, dt),
			per_second(cur.bytes - prev.bytes, dt) / 1e6, cur.conns,
			per_second(cur.records - prev.records, dt));
		prev = cur;
	}
}

static void add_fd(int epfd, int fd, uint32_t events, void *tag)
{
	struct epoll_event e = {.events = events, .data.ptr = tag};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e))
		die("epoll_ctl: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 256,
		OPT_ALLOW_REMOTE,
		OPT_THREADS,
		OPT_PORT_FILE,
		OPT_USER,
		OPT_PASSWORD,
		OPT_FRAME_MAX,
		OPT_HEARTBEAT,
		OPT_STATS,
		OPT_JSON,
		OPT_QUIET,
		OPT_ENVELOPE_MAX,
		OPT_LOG_BAD_ENVELOPES,
		OPT_HELP,
		OPT_NACK_EVERY,
		OPT_RETURN_UNROUTABLE,
		OPT_CLOSE_AFTER,
		OPT_STALL_AFTER,
		OPT_DROP_AFTER,
		OPT_ACK_DELAY_MS,
		OPT_ACK_OUT_OF_ORDER,
		OPT_ACK_UNKNOWN_TAG,
	};
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"port-file", required_argument, NULL, OPT_PORT_FILE},
	    {"user", required_argument, NULL, OPT_USER},
	    {"password", required_argument, NULL, OPT_PASSWORD},
	    {"frame-max", required_argument, NULL, OPT_FRAME_MAX},
	    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
	    {"stats", no_argument, NULL, OPT_STATS},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"envelope-max", required_argument, NULL, OPT_ENVELOPE_MAX},
	    {"log-bad-envelopes", no_argument, NULL, OPT_LOG_BAD_ENVELOPES},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    {"help", no_argument, NULL, OPT_HELP},
	    {"nack-every", required_argument, NULL, OPT_NACK_EVERY},
	    {"return-unroutable", required_argument, NULL, OPT_RETURN_UNROUTABLE},
	    {"close-after", required_argument, NULL, OPT_CLOSE_AFTER},
	    {"stall-after", required_argument, NULL, OPT_STALL_AFTER},
	    {"drop-after", required_argument, NULL, OPT_DROP_AFTER},
	    {"ack-delay-ms", required_argument, NULL, OPT_ACK_DELAY_MS},
	    {"ack-out-of-order", no_argument, NULL, OPT_ACK_OUT_OF_ORDER},
	    {"ack-unknown-tag", no_argument, NULL, OPT_ACK_UNKNOWN_TAG},
	    {NULL, 0, NULL, 0},
	};
	const char *listen_addr = "127.0.0.1:5673", *port_file = NULL;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned nthreads = cores > 0 ? (unsigned)cores : 1;
	bool allow_remote = false, stats = false, json = false;
	struct sockaddr_storage ss;
	struct worker *workers;
	struct timespec t0;
	struct totals sum;
	sigset_t block;
	socklen_t sslen;
	uint16_t port;
	int opt, lfd, stop_fd;

	opterr = 0; /* our own messages, naming the option */
	while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			listen_addr = optarg;
			break;
		case OPT_ALLOW_REMOTE:
			allow_remote = true;
			break;
		case OPT_THREADS:
			nthreads = (unsigned)number("--threads", optarg, 1,
						    cores > 0 ? (uint64_t)cores : 1);
			break;
		case OPT_PORT_FILE:
			port_file = optarg;
			break;
		case OPT_USER:
			sink_opts.user = optarg;
			break;
		case OPT_PASSWORD:
			sink_opts.password = optarg;
			break;
		case OPT_FRAME_MAX:
			sink_opts.frame_max = (uint32_t)number(
			    "--frame-max", optarg, SV_FRAME_MIN_SIZE, SINK_MAX_FRAME_MAX);
			break;
		case OPT_HEARTBEAT:
			sink_opts.heartbeat =
			    (uint16_t)number("--heartbeat", optarg, 0, UINT16_MAX);
			break;
		case OPT_STATS:
			stats = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_ENVELOPE_MAX:
			sink_opts.envelope_max = (uint32_t)number(
			    "--envelope-max", optarg, SV_FRAME_MIN_SIZE, SINK_MAX_ENVELOPE);
			break;
		case OPT_LOG_BAD_ENVELOPES:
			sink_opts.log_bad_envelopes = true;
			break;
		case OPT_QUIET:
			sink_opts.quiet = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return 0;
		case OPT_NACK_EVERY:
			sink_opts.nack_every = number("--nack-every", optarg, 1, UINT64_MAX);
			break;
		case OPT_RETURN_UNROUTABLE:
			if (strlen(optarg) > SV_SHORTSTR_MAX)
				usage_error(
				    "--return-unroutable: a routing key has at most %d bytes",
				    SV_SHORTSTR_MAX);
			sink_opts.return_key = optarg;
			break;
		case OPT_CLOSE_AFTER:
			sink_opts.close_after = number("--close-after", optarg, 1, UINT64_MAX);
			break;
		case OPT_STALL_AFTER:
			sink_opts.stall_after = number("--stall-after", optarg, 1, UINT64_MAX);
			break;
		case OPT_DROP_AFTER:
			sink_opts.drop_after = number("--drop-after", optarg, 1, UINT64_MAX);
			break;
		case OPT_ACK_DELAY_MS:
			sink_opts.ack_delay_ms =
			    (uint32_t)number("--ack-delay-ms", optarg, 0, 3600000);
			break;
		case OPT_ACK_OUT_OF_ORDER:
			sink_opts.ack_out_of_order = true;
			break;
		case OPT_ACK_UNKNOWN_TAG:
			sink_opts.ack_unknown_tag = true;
			break;
		default:
			usage_error(opt == ':'
					? "option '%s' needs a value"
					: "unknown option '%s' (or a value it does not take)",
				    argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);

	if (!sink_opts.envelope_max)
		sink_opts.envelope_max = sink_opts.frame_max;
	sslen = parse_listen(listen_addr, &ss, allow_remote);
	proto_init();
	lfd = listen_on(&ss, sslen, &port);
	stop_fd = eventfd(0, EFD_CLOEXEC);
	if (stop_fd < 0)
		die("eventfd: %s", strerror(errno));

	/* Workers inherit this mask: the signals wait for the main thread's sigtimedwait. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);

	workers = aligned_alloc(64, sizeof *workers * nthreads);
	if (!workers)
		die("out of memory");
	for (unsigned i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		/* A whole frame must fit after the tail a previous read left (< frame_max). */
		size_t rcap = 2 * (size_t)sink_opts.frame_max > SINK_RECV_BUF
				  ? 2 * (size_t)sink_opts.frame_max
				  : SINK_RECV_BUF;

		memset(w, 0, sizeof *w);
		w->listen_fd = lfd;
		w->stop_fd = stop_fd;
		w->rcap = rcap;
		w->rbuf = malloc(rcap);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (!w->rbuf || w->epfd < 0)
			die("worker setup: %s", strerror(errno));
		/* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all of them. */
		add_fd(w->epfd, lfd, EPOLLIN | EPOLLEXCLUSIVE, &w->listen_fd);
		add_fd(w->epfd, stop_fd, EPOLLIN, &w->stop_fd);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, worker_run, &workers[i]);

		if (rc)
			die("pthread_create: %s", strerror(rc));
		workers[i].thread = t;
	}

	if (port_file)
		write_port_file(port_file, port);
	if (!sink_opts.quiet)
		fprintf(stderr, "salvo-sink: listening on %.*s:%u, %u threads\n",
			(int)(strrchr(listen_addr, ':') - listen_addr), listen_addr, port,
			nthreads);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	main_loop(workers, nthreads, stats);

	/* The eventfd stays readable, so every worker sees it, whichever wakes first. */
	if (eventfd_write(stop_fd, 1))
		die("eventfd_write: %s", strerror(errno));
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(workers[i].thread, NULL);
	/* Once every worker is done: nothing is counted after this. */
	totals(workers, nthreads, &sum);
	report(&sum, seconds_since(&t0), stats, json);
	for (unsigned i = 0; i < nthreads; i++) {
		free(workers[i].rbuf);
		free(workers[i].zbuf);
		close(workers[i].epfd);
		close(workers[i].spare_fd);
	}
	free(workers);
	close(lfd);
	close(stop_fd);
	if (json && (fflush(stdout) || ferror(stdout)))
		die("write standard output: %s", strerror(errno));
	return 0;
}
