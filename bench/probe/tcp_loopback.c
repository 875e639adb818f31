/* SPDX-License-Identifier: MIT */
/*
 * tcp_loopback: the most bytes per second this machine moves over TCP on 127.0.0.1, the
 * ceiling no AMQP client talking to a local broker or sink can pass.
 *
 * One thread writes --chunk bytes per send() as fast as the socket takes them for
 * --seconds; another reads into a large buffer and throws the bytes away. The writer then
 * shuts its side down, and the clock stops when the reader has seen every byte (end of
 * stream), so the figure is bytes delivered, not bytes queued in socket buffers.
 *
 * Listens on 127.0.0.1 only, on a port the kernel picks. Exit status: 0 success, 1 a
 * failure, 2 a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG	    "tcp_loopback"
#define READ_BUFFER (4u << 20)
#define MAX_CHUNK   (1u << 30)
#define MAX_SOCKBUF (1u << 30)
#define MAX_SECONDS 3600

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct options {
	uint64_t chunk;
	double seconds;
	uint64_t sockbuf; /* 0: the kernel's default and autotuning */
	bool nodelay;
	bool json;
};

struct writer {
	int fd;
	size_t chunk;
	atomic_bool stop;
	uint64_t bytes;
	int err; /* errno of a failed send, else 0 */
};

struct reader {
	int fd;
	uint64_t bytes;
	int err;
};

static const struct option long_options[] = {
    {"chunk", required_argument, NULL, 'c'},
    {"seconds", required_argument, NULL, 's'},
    {"sockbuf", required_argument, NULL, 'b'},
    {"nodelay", no_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
	fputs("Usage: " PROG " [OPTION]...\n"
	      "Measure TCP throughput over 127.0.0.1: one thread writes, one reads.\n"
	      "\n"
	      "  --chunk B      bytes per send() (default 262144)\n"
	      "  --seconds S    how long the writer writes (default 3; decimals allowed)\n"
	      "  --sockbuf B    set SO_SNDBUF on the writer's socket and SO_RCVBUF on the\n"
	      "                 reader's to B (the kernel doubles it and turns off autotuning)\n"
	      "  --nodelay      set TCP_NODELAY on both sockets\n"
	      "  --json         end stdout with one JSON object: bytes, seconds, bytes_per_s,\n"
	      "                 gbytes_per_s (10^9 bytes), chunk, sockbuf, nodelay\n"
	      "  --help         print this help and exit\n",
	      out);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s: '%s' (--help lists the options)\n", what, arg);
	return EXIT_USAGE;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err));
	return EXIT_FAILED;
}

/* A whole decimal number in [1, max]: digits only. */
static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > max)
		return false;
	*out = v;
	return true;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	char *end;
	int opt;

	*o = (struct options){.chunk = 262144, .seconds = 3};
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (!parse_count(optarg, MAX_CHUNK, &o->chunk))
				return usage_error("--chunk is not a size in 1..2^30", optarg);
			break;
		case 's':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(o->seconds > 0) ||
			    o->seconds > MAX_SECONDS)
				return usage_error("--seconds is not a duration in (0, 3600]",
						   optarg);
			break;
		case 'b':
			if (!parse_count(optarg, MAX_SOCKBUF, &o->sockbuf))
				return usage_error("--sockbuf is not a size in 1..2^30", optarg);
			break;
		case 'n':
			o->nodelay = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) ? EXIT_FAILED : 0;
		case ':':
			return usage_error("option needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	return -1;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	char *buf = malloc(w->chunk);

	if (!buf) {
		w->err = ENOMEM;
		shutdown(w->fd, SHUT_WR);
		return NULL;
	}
	memset(buf, 'x', w->chunk);
	/* relaxed: the flag carries no data; the main thread reads bytes after the join. */
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		ssize_t n = send(w->fd, buf, w->chunk, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;
			break;
		}
		w->bytes += (uint64_t)n;
	}
	/* End of stream: the reader's clock stops when it has read everything. */
	if (shutdown(w->fd, SHUT_WR) && !w->err)
		w->err = errno;
	free(buf);
	return NULL;
}

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	char *buf = malloc(READ_BUFFER);

	if (!buf) {
		r->err = ENOMEM;
		return NULL;
	}
	for (;;) {
		ssize_t n = recv(r->fd, buf, READ_BUFFER, 0);

		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r->err = errno;
			break;
		}
		r->bytes += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

static int set_int_option(int fd, int level, int name, uint64_t value, const char *what)
{
	int v = (int)value;

	if (setsockopt(fd, level, name, &v, sizeof v))
		return fail(what, errno);
	return 0;
}

static int get_int_option(int fd, int level, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	getsockopt(fd, level, name, &v, &len);
	return v;
}

/* A connected pair over 127.0.0.1: *wfd the writer's end, *rfd the reader's. Buffer sizes
 * are set before connect and listen so that the window scale fits them. */
static int connect_pair(const struct options *o, int *wfd, int *rfd)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
	socklen_t len = sizeof addr;
	int lfd, rc = EXIT_FAILED;

	*wfd = *rfd = -1;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*wfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || *wfd < 0) {
		rc = fail("socket", errno);
		goto out;
	}
	/* An accepted socket inherits the listener's SO_RCVBUF and TCP_NODELAY. */
	if (o->sockbuf && (set_int_option(lfd, SOL_SOCKET, SO_RCVBUF, o->sockbuf, "SO_RCVBUF") ||
			   set_int_option(*wfd, SOL_SOCKET, SO_SNDBUF, o->sockbuf, "SO_SNDBUF")))
		goto out;
	if (o->nodelay && (set_int_option(lfd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY") ||
			   set_int_option(*wfd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY")))
		goto out;
	if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len)) {
		rc = fail("listen on 127.0.0.1", errno);
		goto out;
	}
	if (connect(*wfd, (struct sockaddr *)&addr, sizeof addr)) {
		rc = fail("connect to 127.0.0.1", errno);
		goto out;
	}
	*rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*rfd < 0) {
		rc = fail("accept", errno);
		goto out;
	}
	rc = 0;
out:
	if (lfd >= 0)
		close(lfd);
	return rc;
}

int main(int argc, char **argv)
{
	struct writer w = {.err = 0};
	struct reader r = {.err = 0};
	pthread_t wt, rt;
	struct options o;
	struct timespec until;
	double t0, seconds, rate;
	int err, ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;
	ret = connect_pair(&o, &w.fd, &r.fd);
	if (ret)
		goto out;
	w.chunk = (size_t)o.chunk;
	atomic_init(&w.stop, false);
	fprintf(stderr,
		"127.0.0.1: chunk %" PRIu64 " B, SO_SNDBUF %d B, SO_RCVBUF %d B, TCP_NODELAY %s\n",
		o.chunk, get_int_option(w.fd, SOL_SOCKET, SO_SNDBUF),
		get_int_option(r.fd, SOL_SOCKET, SO_RCVBUF), o.nodelay ? "on" : "off");

	err = pthread_create(&rt, NULL, read_loop, &r);
	if (err) {
		ret = fail("start the reader", err);
		goto out;
	}
	t0 = now_seconds();
	clock_gettime(CLOCK_MONOTONIC, &until);
	err = pthread_create(&wt, NULL, write_loop, &w);
	if (err) {
		ret = fail("start the writer", err);
		shutdown(w.fd, SHUT_WR);
		pthread_join(rt, NULL);
		goto out;
	}
	until.tv_sec += (time_t)o.seconds;
	until.tv_nsec += (long)((o.seconds - (double)(time_t)o.seconds) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) == EINTR)
		;
	atomic_store_explicit(&w.stop, true, memory_order_relaxed);
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	seconds = now_seconds() - t0;

	if (w.err || r.err) {
		ret = fail(w.err ? "send" : "recv", w.err ? w.err : r.err);
		goto out;
	}
	if (r.bytes != w.bytes) {
		fprintf(stderr, PROG ": wrote %" PRIu64 " bytes but read %" PRIu64 "\n", w.bytes,
			r.bytes);
		ret = EXIT_FAILED;
		goto out;
	}
	rate = (double)r.bytes / seconds;
	fprintf(stderr, "%" PRIu64 " bytes in %.3f s: %.0f bytes/s, %.3f GB/s (%.2f Gbit/s)\n",
		r.bytes, seconds, rate, rate / 1e9, rate * 8 / 1e9);
	if (o.json)
		printf("{\"bytes\": %" PRIu64 ", \"seconds\": %.6f, \"bytes_per_s\": %.0f, "
		       "\"gbytes_per_s\": %.3f, \"chunk\": %" PRIu64 ", \"sockbuf\": %" PRIu64
		       ", \"nodelay\": %s}\n",
		       r.bytes, seconds, rate, rate / 1e9, o.chunk, o.sockbuf,
		       o.nodelay ? "true" : "false");
	if (fflush(stdout))
		ret = fail("write standard output", errno);
out:
	if (w.fd >= 0)
		close(w.fd);
	if (r.fd >= 0)
		close(r.fd);
	return ret;
}
