/* SPDX-License-Identifier: MIT */
/*
 * The soak's client (scripts/soak.sh runs it through tests/soak/soak.py): publishers and
 * listeners on several connections, built on the public API only, that keep a record of
 * every message so that the end of a run can say whether any confirmed message was lost.
 *
 *	soak_client [--connections N] [--rate R] [--heartbeat S] [--prefix P] URI [URI...]
 *
 * Connection i (0-based, named P-c<i>) tries the URIs in turn starting at URI i mod n
 * (salvo_client_new_at over "uri" and "uri.add", every URI whole). On it run an
 * asynchronous-confirm producer (number 2i) and a synchronous-confirm producer (2i+1), each
 * publishing persistent messages at most R a second into the quorum queue P-q<i>, and a
 * listener consuming queue P-q<i+1 mod N> (another connection's), which acks
 * every message. A body is "<producer> <sequence>" padded to 64 bytes.
 *
 * Each producer keeps a bitmap of the sequence numbers confirmed (acked by the broker), and
 * consumers a bitmap per producer of those consumed; a sequence consumed a second time is
 * a duplicate, counted apart when the broker marked that delivery redelivered (a consumer's
 * unacked message given again) and when it did not (a copy published again by salvo after
 * a reconnection, which salvo counts in resent).
 *
 * Output (stdout, one line each, key=value fields) for the driver:
 *	conn i name=...			once per connection at the start
 *	progress t=...			once a second: totals and each connection's state
 *	sample t=... rss_kb= fds= threads=	every 2 s, from /proc/self
 *	event t=... conn=i kind=...	each event of a client (lost, reconnected, ...)
 *	drain ...			while draining, once a second
 *	result {JSON}			the end: counts, losses, duplicates, queue depths
 * The run ends on a line "stop" on stdin, or at end of file: the producers stop and wait
 * for every outcome, the listeners drain the queues (at most 120 s), then each queue is
 * checked empty with a passive declare, and the queues are deleted (they are deleted
 * before the run too, should an earlier one have left them). Exit status 0 once the
 * result is printed, 1 when setting up failed, 2 for a usage error. Judging the result is
 * the driver's job.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <salvo.h>

#define MAX_CONNS     8
#define BODY_LEN      64
#define MISSING_SHOWN 10

/* A growable bitmap of sequence numbers, under the run's lock. */
struct bits {
	uint64_t *w;
	size_t words;
};

struct producer {
	unsigned id;
	bool sync;
	struct conn *conn;
	pthread_t thread;
	salvo_publisher *pub;
	/* Sequences handed out: 0 .. next-1. Written by the producer's thread only; atomic
	 * for the progress lines, which read it from the main thread. */
	_Atomic uint64_t next;
	/* Outcomes seen by this program (on_outcome or a sync publish's return). */
	_Atomic uint64_t acked, nacked, failed, unknown;
	struct bits confirmed; /* under run.lock */
	struct bits consumed;  /* under run.lock */
	char error[256];       /* why it stopped early, if it did */
};

struct conn {
	unsigned index;
	char name[64];
	char queue[64];	   /* the queue its producers publish to */
	char consumes[64]; /* the queue its listener consumes */
	salvo_client *client;
	salvo_listener *listener;
	const char *state; /* "up", "down", "blocked", "dead": main thread only */
	struct producer prod[2];
};

static struct {
	pthread_mutex_t lock;
	atomic_bool stop;
	double t0;
	unsigned nconns, rate, heartbeat;
	const char *prefix;
	struct conn conns[MAX_CONNS];
	/* Consumer side, under lock. */
	uint64_t consumed, dup_fresh, dup_redelivered, foreign;
} run = {.lock = PTHREAD_MUTEX_INITIALIZER, .rate = 200, .heartbeat = 2, .prefix = "soak"};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double elapsed(void)
{
	return now_s() - run.t0;
}

static void die(const char *what, int status, const salvo_error *err)
{
	char line[512];

	fprintf(stderr, "soak_client: %s: %s\n", what,
		err ? salvo_error_format(err, line, sizeof line) : salvo_err2str(status));
	exit(1);
}

/* Set bit n; returns whether it was set before. Caller holds run.lock. */
static bool bits_set(struct bits *b, uint64_t n)
{
	size_t word = (size_t)(n / 64);

	if (word >= b->words) {
		size_t words = b->words ? b->words : 1024;
		while (words <= word)
			words *= 2;
		uint64_t *w = realloc(b->w, words * sizeof *w);
		if (!w) {
			fprintf(stderr, "soak_client: out of memory\n");
			exit(1);
		}
		memset(w + b->words, 0, (words - b->words) * sizeof *w);
		b->w = w;
		b->words = words;
	}
	bool was = b->w[word] >> (n % 64) & 1;
	b->w[word] |= UINT64_C(1) << (n % 64);
	return was;
}

static bool bits_get(const struct bits *b, uint64_t n)
{
	size_t word = (size_t)(n / 64);

	return word < b->words && (b->w[word] >> (n % 64) & 1);
}

static struct producer *producer_by_id(unsigned id)
{
	if (id >= 2 * run.nconns)
		return NULL;
	return &run.conns[id / 2].prod[id % 2];
}

static void mark_confirmed(struct producer *p, uint64_t seq)
{
	pthread_mutex_lock(&run.lock);
	bits_set(&p->confirmed, seq);
	pthread_mutex_unlock(&run.lock);
}

static void on_outcome(const salvo_outcome *o, void *arg)
{
	struct producer *p = arg;
	uint64_t seq = (uint64_t)(uintptr_t)o->opaque;

	if (o->kind == SALVO_OUTCOME_ACKED) {
		mark_confirmed(p, seq);
		atomic_fetch_add(&p->acked, 1);
	} else if (o->kind == SALVO_OUTCOME_NACKED) {
		atomic_fetch_add(&p->nacked, 1);
	} else { /* failed; returned cannot happen (not mandatory) but would count here */
		atomic_fetch_add(&p->failed, 1);
	}
}

/* Sleep until sequence n is due at rate messages a second from *start. A producer more
 * than a second behind (blocked, reconnecting) starts a new schedule instead of sending
 * the backlog at once. */
static void pace(double *start, uint64_t n)
{
	double due = *start + (double)n / run.rate, wait = due - now_s();

	if (wait < -1.0)
		*start -= wait;
	else if (wait > 0) {
		struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	salvo_publisher_opts opts = {.confirm = p->sync ? SALVO_CONFIRM_SYNC : SALVO_CONFIRM_ASYNC,
				     .window = 256,
				     .on_outcome = p->sync ? NULL : on_outcome,
				     .on_outcome_arg = p};
	double start = now_s();
	salvo_error err;
	int rc;

	if ((rc = salvo_publisher_new(p->conn->client, &opts, &p->pub, &err)))
		die("publisher", rc, &err);
	while (!atomic_load(&run.stop)) {
		char body[BODY_LEN];
		uint64_t mine = atomic_load(&p->next);
		int n = snprintf(body, sizeof body, "%u %" PRIu64 " ", p->id, mine);
		memset(body + n, '.', sizeof body - (size_t)n);
		salvo_msg m = {.exchange = "",
			       .routing_key = p->conn->queue,
			       .body = body,
			       .len = sizeof body,
			       .flags = SALVO_MSG_PERSISTENT,
			       .opaque = (void *)(uintptr_t)mine};
		uint64_t seq = 0;

		pace(&start, mine);
		rc = salvo_publish_msg(p->pub, &m, p->sync ? 60000 : 1000, &seq, &err);
		if (seq == 0) {
			/* Nothing queued: a full window or ring (a block, a reconnection), or a
			 * channel error returned once before the publisher reopens. Try the same
			 * sequence again, unless the client has closed for good. */
			if (rc == SALVO_ERR_CLOSED) {
				salvo_error_format(&err, p->error, sizeof p->error);
				break;
			}
			continue;
		}
		atomic_store(&p->next, mine + 1);
		if (!p->sync) {
			salvo_publisher_poll(p->pub, 0, NULL);
			continue;
		}
		if (rc == 0) {
			mark_confirmed(p, mine);
			atomic_fetch_add(&p->acked, 1);
		} else if (rc == SALVO_ERR_NACKED) {
			atomic_fetch_add(&p->nacked, 1);
		} else if (rc == SALVO_ERR_TIMEOUT) {
			atomic_fetch_add(&p->unknown, 1); /* still tracked by salvo, not by us */
		} else {
			atomic_fetch_add(&p->failed, 1);
		}
	}
	/* Every outcome of what was published, then the channel closed. */
	if (!p->sync && (rc = salvo_publisher_wait_confirms(p->pub, 120000, &err)) &&
	    rc == SALVO_ERR_TIMEOUT)
		snprintf(p->error, sizeof p->error, "wait_confirms: no outcome within 120 s");
	salvo_publisher_close(p->pub, 10000, &err);
	return NULL;
}

static salvo_listener_action on_message(salvo_message *m, void *arg)
{
	size_t len;
	const char *body = salvo_message_body(m, &len);
	char text[BODY_LEN + 1];
	unsigned id;
	uint64_t seq;
	struct producer *p;

	(void)arg;
	memcpy(text, body, len < BODY_LEN ? len : BODY_LEN);
	text[len < BODY_LEN ? len : BODY_LEN] = '\0';
	pthread_mutex_lock(&run.lock);
	if (sscanf(text, "%u %" SCNu64, &id, &seq) != 2 || !(p = producer_by_id(id)) ||
	    seq >= UINT64_C(1) << 40) {
		run.foreign++;
	} else if (bits_set(&p->consumed, seq)) {
		if (salvo_message_redelivered(m))
			run.dup_redelivered++;
		else
			run.dup_fresh++;
	} else {
		run.consumed++;
	}
	pthread_mutex_unlock(&run.lock);
	return SALVO_LISTENER_ACK;
}

static void resources(long *rss_kb, long *fds, long *threads)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	*rss_kb = *fds = *threads = -1;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "VmRSS: %ld", rss_kb);
		sscanf(line, "Threads: %ld", threads);
	}
	if (f)
		fclose(f);
	if (d) {
		*fds = 0;
		while ((e = readdir(d)))
			*fds += e->d_name[0] != '.';
		closedir(d);
		(*fds)--; /* the directory's own descriptor */
	}
}

static void totals(uint64_t *published, uint64_t *acked, uint64_t *nacked, uint64_t *failed,
		   uint64_t *unknown, uint64_t *resent)
{
	*published = *acked = *nacked = *failed = *unknown = *resent = 0;
	for (unsigned i = 0; i < run.nconns; i++) {
		salvo_pub_stats st;
		salvo_client_stats(run.conns[i].client, &st);
		*resent += st.resent;
		for (int k = 0; k < 2; k++) {
			struct producer *p = &run.conns[i].prod[k];
			*published += atomic_load(&p->next);
			*acked += atomic_load(&p->acked);
			*nacked += atomic_load(&p->nacked);
			*failed += atomic_load(&p->failed);
			*unknown += atomic_load(&p->unknown);
		}
	}
}

static const char *event_name(salvo_event_kind k)
{
	switch (k) {
	case SALVO_EVENT_CONNECTION_LOST:
		return "lost";
	case SALVO_EVENT_RECONNECTING:
		return "reconnecting";
	case SALVO_EVENT_RECONNECTED:
		return "reconnected";
	case SALVO_EVENT_GIVING_UP:
		return "giving_up";
	case SALVO_EVENT_BLOCKED:
		return "blocked";
	case SALVO_EVENT_UNBLOCKED:
		return "unblocked";
	case SALVO_EVENT_CONSUMER_CANCELLED:
		return "consumer_cancelled";
	default:
		return "other";
	}
}

/* Take every pending event of every client: print it, follow the connection's state. */
static void poll_events(void)
{
	salvo_event ev;

	for (unsigned i = 0; i < run.nconns; i++) {
		struct conn *c = &run.conns[i];
		while (salvo_client_poll_event(c->client, &ev, 0) == 0) {
			char line[512] = "";
			if (ev.error.status)
				salvo_error_format(&ev.error, line, sizeof line);
			/* One line per event: the text's newlines would break it. */
			for (char *s = line; *s; s++)
				*s = *s == '\n' ? ' ' : *s;
			if (ev.kind == SALVO_EVENT_CONNECTION_LOST)
				c->state = "down";
			else if (ev.kind == SALVO_EVENT_RECONNECTED ||
				 ev.kind == SALVO_EVENT_UNBLOCKED)
				c->state = "up";
			else if (ev.kind == SALVO_EVENT_BLOCKED)
				c->state = "blocked";
			else if (ev.kind == SALVO_EVENT_GIVING_UP)
				c->state = "dead";
			if (ev.kind == SALVO_EVENT_RECONNECTING)
				continue; /* one per attempt: too many lines to be useful */
			printf("event t=%.3f conn=%u kind=%s endpoint=%s error=%s\n", elapsed(), i,
			       event_name(ev.kind), ev.endpoint[0] ? ev.endpoint : "-",
			       line[0] ? line : "-");
		}
	}
}

static void progress(const char *tag)
{
	uint64_t published, acked, nacked, failed, unknown, resent, consumed, dup;

	totals(&published, &acked, &nacked, &failed, &unknown, &resent);
	pthread_mutex_lock(&run.lock);
	consumed = run.consumed;
	dup = run.dup_fresh + run.dup_redelivered;
	pthread_mutex_unlock(&run.lock);
	printf("%s t=%.3f published=%" PRIu64 " acked=%" PRIu64 " nacked=%" PRIu64
	       " failed=%" PRIu64 " unknown=%" PRIu64 " resent=%" PRIu64 " consumed=%" PRIu64
	       " dup=%" PRIu64 " conns=",
	       tag, elapsed(), published, acked, nacked, failed, unknown, resent, consumed, dup);
	for (unsigned i = 0; i < run.nconns; i++)
		printf("%s%s", i ? "," : "", run.conns[i].state);
	printf(" reconnects=");
	for (unsigned i = 0; i < run.nconns; i++)
		printf("%s%" PRIu64, i ? "," : "", salvo_client_reconnects(run.conns[i].client));
	printf("\n");
}

static void sample(void)
{
	long rss, fds, threads;

	resources(&rss, &fds, &threads);
	printf("sample t=%.3f rss_kb=%ld fds=%ld threads=%ld\n", elapsed(), rss, fds, threads);
}

/* Reads stdin until "stop" or end of file, then raises run.stop. */
static void *watch_stdin(void *arg)
{
	char line[64];

	(void)arg;
	while (fgets(line, sizeof line, stdin) && strncmp(line, "stop", 4) != 0)
		;
	atomic_store(&run.stop, true);
	return NULL;
}

/* Confirmed and not consumed, over every producer. Caller holds run.lock. */
static uint64_t count_missing(void)
{
	uint64_t missing = 0;

	for (unsigned id = 0; id < 2 * run.nconns; id++) {
		struct producer *p = producer_by_id(id);
		for (uint64_t s = 0; s < p->next; s++)
			missing += bits_get(&p->confirmed, s) && !bits_get(&p->consumed, s);
	}
	return missing;
}

/* Ready messages in every queue (passive declares over a channel of client 0), or -1
 * when a declare failed (the error printed). */
static long queue_depths(long depth[MAX_CONNS])
{
	salvo_channel *ch;
	salvo_error err;
	long sum = 0;
	int rc;

	if ((rc = salvo_channel_open(run.conns[0].client, &ch, &err))) {
		char line[512];
		fprintf(stderr, "soak_client: channel for passive declares: %s\n",
			salvo_error_format(&err, line, sizeof line));
		return -1;
	}
	for (unsigned i = 0; i < run.nconns; i++) {
		salvo_queue_info info;
		if ((rc = salvo_queue_declare(ch, run.conns[i].queue, SALVO_PASSIVE, NULL, &info,
					      &err))) {
			char line[512];
			fprintf(stderr, "soak_client: passive declare %s: %s\n", run.conns[i].queue,
				salvo_error_format(&err, line, sizeof line));
			salvo_channel_close(ch, &err);
			return -1;
		}
		depth[i] = info.message_count;
		sum += info.message_count;
	}
	salvo_channel_close(ch, &err);
	return sum;
}

/* The run's queues deleted, once its result is printed (a failure only reported). */
static void delete_queues(void)
{
	salvo_channel *ch;
	salvo_error err;
	char line[512];
	int rc = salvo_channel_open(run.conns[0].client, &ch, &err);

	if (rc == 0) {
		for (unsigned i = 0; i < run.nconns && rc == 0; i++)
			rc = salvo_queue_delete(ch, run.conns[i].queue, 0, NULL, &err);
		salvo_channel_close(ch, NULL);
	}
	if (rc)
		fprintf(stderr, "soak_client: deleting the queues: %s\n",
			salvo_error_format(&err, line, sizeof line));
}

static void connect_all(int nuris, char **uris)
{
	salvo_table *args = salvo_table_new();
	salvo_channel *ch;
	salvo_error err;
	char errstr[256], num[16];
	int rc;

	for (unsigned i = 0; i < run.nconns; i++) {
		struct conn *c = &run.conns[i];
		salvo_conf *conf = salvo_conf_new();
		c->index = i;
		c->state = "up";
		snprintf(c->name, sizeof c->name, "%s-c%u", run.prefix, i);
		snprintf(c->queue, sizeof c->queue, "%s-q%u", run.prefix, i);
		snprintf(c->consumes, sizeof c->consumes, "%s-q%u", run.prefix,
			 (i + 1) % run.nconns);
		snprintf(num, sizeof num, "%u", run.heartbeat);
		/* Every URI whole, as the tools take them ("uri", then "uri.add"); connection i
		 * starts at URI i mod n and fails over to the others in turn
		 * (salvo_client_new_at, as a pool spreads its connections). */
		bool ok = conf && salvo_conf_set(conf, "uri", uris[0], errstr, sizeof errstr) == 0;
		for (int k = 1; ok && k < nuris; k++)
			ok = salvo_conf_set(conf, "uri.add", uris[k], errstr, sizeof errstr) == 0;
		ok =
		    ok &&
		    salvo_conf_set(conf, "connection_name", c->name, errstr, sizeof errstr) == 0 &&
		    salvo_conf_set(conf, "heartbeat", num, errstr, sizeof errstr) == 0 &&
		    salvo_conf_set(conf, "connection_timeout", "5000", errstr, sizeof errstr) ==
			0 &&
		    salvo_conf_set(conf, "rpc_timeout", "15000", errstr, sizeof errstr) == 0 &&
		    /* A ring's pages count in RSS once first written: rings of 64 KiB (the
		     * async window's 256 messages take about 36 KiB) are written through in
		     * the first seconds, so that RSS later measures growth, not first
		     * touches of the default 4 MiB. */
		    salvo_conf_set(conf, "publisher.ring_size", "65536", errstr, sizeof errstr) ==
			0 &&
		    salvo_conf_set(conf, "reconnect.initial_delay", "100", errstr, sizeof errstr) ==
			0 &&
		    salvo_conf_set(conf, "reconnect.max_delay", "2000", errstr, sizeof errstr) == 0;
		if (!ok) {
			fprintf(stderr, "soak_client: configuration: %s\n", errstr);
			exit(2);
		}
		if ((rc = salvo_client_new_at(conf, i, &c->client, &err)))
			die(c->name, rc, &err);
		salvo_conf_destroy(conf);
		printf("conn %u name=%s queue=%s consumes=%s\n", i, c->name, c->queue, c->consumes);
	}
	/* Durable quorum queues, replicated over the cluster's nodes. */
	if (!args || salvo_table_add_string(args, "x-queue-type", "quorum"))
		die("arguments", SALVO_ERR_NO_MEMORY, NULL);
	if ((rc = salvo_channel_open(run.conns[0].client, &ch, &err)))
		die("channel", rc, &err);
	/* Deleted first: a queue left by an earlier run on the same cluster would hand this
	 * run messages it did not publish under the same (producer, sequence) names. */
	for (unsigned i = 0; i < run.nconns; i++)
		if ((rc = salvo_queue_delete(ch, run.conns[i].queue, 0, NULL, &err)) ||
		    (rc = salvo_queue_declare(ch, run.conns[i].queue, SALVO_DURABLE, args, NULL,
					      &err)))
			die(run.conns[i].queue, rc, &err);
	salvo_channel_close(ch, &err);
	salvo_table_destroy(args);
}

/* s as the inside of a JSON string: quotes, backslashes and control bytes escaped. */
static void print_json_text(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
}

static void print_result(long depth_sum, const long *depth, double drain_s)
{
	uint64_t published = 0, acked = 0, nacked = 0, failed = 0, unknown = 0, lost = 0;
	salvo_pub_stats st = {0};
	unsigned shown = 0;

	printf("result {\"producers\": [");
	pthread_mutex_lock(&run.lock);
	for (unsigned id = 0; id < 2 * run.nconns; id++) {
		struct producer *p = producer_by_id(id);
		uint64_t confirmed = 0, plost = 0;
		for (uint64_t s = 0; s < p->next; s++) {
			bool c = bits_get(&p->confirmed, s);
			confirmed += c;
			plost += c && !bits_get(&p->consumed, s);
		}
		printf("%s{\"id\": %u, \"mode\": \"%s\", \"conn\": %u, \"published\": %" PRIu64
		       ", \"acked\": %" PRIu64 ", \"nacked\": %" PRIu64 ", \"failed\": %" PRIu64
		       ", \"unknown\": %" PRIu64 ", \"confirmed\": %" PRIu64 ", \"lost\": %" PRIu64
		       ", \"error\": \"",
		       id ? ", " : "", id, p->sync ? "sync" : "async", id / 2, p->next,
		       atomic_load(&p->acked), atomic_load(&p->nacked), atomic_load(&p->failed),
		       atomic_load(&p->unknown), confirmed, plost);
		print_json_text(p->error);
		printf("\"}");
		published += p->next;
		acked += atomic_load(&p->acked);
		nacked += atomic_load(&p->nacked);
		failed += atomic_load(&p->failed);
		unknown += atomic_load(&p->unknown);
		lost += plost;
	}
	printf("], \"missing\": [");
	for (unsigned id = 0; id < 2 * run.nconns && shown < MISSING_SHOWN; id++) {
		struct producer *p = producer_by_id(id);
		for (uint64_t s = 0; s < p->next && shown < MISSING_SHOWN; s++)
			if (bits_get(&p->confirmed, s) && !bits_get(&p->consumed, s))
				printf("%s[%u, %" PRIu64 "]", shown++ ? ", " : "", id, s);
	}
	for (unsigned i = 0; i < run.nconns; i++) {
		salvo_pub_stats one;
		salvo_client_stats(run.conns[i].client, &one);
		salvo_pub_stats_add(&st, &one);
	}
	printf("], \"published\": %" PRIu64 ", \"acked\": %" PRIu64 ", \"nacked\": %" PRIu64
	       ", \"failed\": %" PRIu64 ", \"unknown\": %" PRIu64 ", \"lost\": %" PRIu64
	       ", \"consumed\": %" PRIu64 ", \"dup_fresh\": %" PRIu64
	       ", \"dup_redelivered\": %" PRIu64 ", \"foreign\": %" PRIu64,
	       published, acked, nacked, failed, unknown, lost, run.consumed, run.dup_fresh,
	       run.dup_redelivered, run.foreign);
	pthread_mutex_unlock(&run.lock);
	printf(", \"salvo\": {\"published\": %" PRIu64 ", \"acked\": %" PRIu64
	       ", \"nacked\": %" PRIu64 ", \"returned\": %" PRIu64 ", \"failed\": %" PRIu64
	       ", \"in_flight\": %" PRIu64 ", \"resent\": %" PRIu64 "}",
	       st.published, st.acked, st.nacked, st.returned, st.failed, st.in_flight, st.resent);
	printf(", \"queues_ready\": %ld, \"queue_depths\": [", depth_sum);
	for (unsigned i = 0; i < run.nconns; i++)
		printf("%s%ld", i ? ", " : "", depth_sum < 0 ? -1 : depth[i]);
	printf("], \"drain_s\": %.3f, \"reconnects\": [", drain_s);
	for (unsigned i = 0; i < run.nconns; i++)
		printf("%s%" PRIu64, i ? ", " : "", salvo_client_reconnects(run.conns[i].client));
	printf("]}\n");
}

static void usage(void)
{
	fprintf(stderr, "usage: soak_client [--connections N] [--rate R] [--heartbeat S] "
			"[--prefix P] URI [URI...]\n");
	exit(2);
}

static unsigned number(const char *s, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = s ? strtoul(s, &end, 10) : 0;
	if (!s || errno || *end || end == s || v < lo || v > hi)
		usage();
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	pthread_t stdin_thread;
	long depth[MAX_CONNS] = {0}, depth_sum;
	double next_progress, next_sample, drain_start;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	run.nconns = 3;
	for (i = 1; i < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--connections"))
			run.nconns = number(argv[i + 1], 1, MAX_CONNS);
		else if (!strcmp(argv[i], "--rate"))
			run.rate = number(argv[i + 1], 1, 100000);
		else if (!strcmp(argv[i], "--heartbeat"))
			run.heartbeat = number(argv[i + 1], 1, 600);
		else if (!strcmp(argv[i], "--prefix") && argv[i + 1])
			run.prefix = argv[i + 1];
		else
			usage();
	}
	if (i >= argc)
		usage();

	run.t0 = now_s();
	connect_all(argc - i, argv + i);
	for (unsigned c = 0; c < run.nconns; c++) {
		struct conn *cn = &run.conns[c];
		salvo_listener_opts lo = {.prefetch = 100};
		salvo_error err;
		int rc;
		for (int k = 0; k < 2; k++) {
			cn->prod[k] = (struct producer){
			    .id = 2 * c + (unsigned)k, .sync = k == 1, .conn = cn};
		}
		if ((rc = salvo_listener_new(cn->client, cn->consumes, on_message, NULL, &lo,
					     &cn->listener, &err)))
			die(cn->consumes, rc, &err);
	}
	for (unsigned c = 0; c < run.nconns; c++)
		for (int k = 0; k < 2; k++)
			if (pthread_create(&run.conns[c].prod[k].thread, NULL, produce,
					   &run.conns[c].prod[k]))
				die("thread", SALVO_ERR_NO_MEMORY, NULL);
	if (pthread_create(&stdin_thread, NULL, watch_stdin, NULL))
		die("thread", SALVO_ERR_NO_MEMORY, NULL);
	pthread_detach(stdin_thread);

	next_progress = 1, next_sample = 0;
	while (!atomic_load(&run.stop)) {
		poll_events();
		if (elapsed() >= next_sample) {
			sample();
			next_sample += 2;
		}
		if (elapsed() >= next_progress) {
			progress("progress");
			next_progress += 1;
		}
		usleep(20000);
	}

	/* Stop: every producer's outcomes first, then drain. */
	for (unsigned c = 0; c < run.nconns; c++)
		for (int k = 0; k < 2; k++)
			pthread_join(run.conns[c].prod[k].thread, NULL);
	poll_events();
	progress("stopped");
	drain_start = now_s();
	{
		uint64_t last_consumed = UINT64_MAX;
		double stable_since = now_s();
		while (now_s() - drain_start < 120) {
			uint64_t missing, consumed;
			poll_events();
			pthread_mutex_lock(&run.lock);
			missing = count_missing();
			consumed = run.consumed + run.dup_fresh + run.dup_redelivered + run.foreign;
			pthread_mutex_unlock(&run.lock);
			if (consumed != last_consumed)
				last_consumed = consumed, stable_since = now_s();
			depth_sum = queue_depths(depth);
			printf("drain t=%.3f missing=%" PRIu64 " ready=%ld\n", elapsed(), missing,
			       depth_sum);
			/* Done when nothing confirmed is missing, the queues hold nothing ready,
			 * and nothing has arrived for 2 s (the listeners' prefetched copies). */
			if (missing == 0 && depth_sum == 0 && now_s() - stable_since >= 2)
				break;
			sleep(1);
		}
	}
	double drain_s = now_s() - drain_start;
	/* Listeners stopped: what they held unacked goes back to the queues, so an empty
	 * queue now means every message was consumed and acked. */
	for (unsigned c = 0; c < run.nconns; c++)
		salvo_listener_destroy(run.conns[c].listener);
	sleep(1);
	depth_sum = queue_depths(depth);
	poll_events();
	sample();
	print_result(depth_sum, depth, drain_s);
	delete_queues();
	for (unsigned c = 0; c < run.nconns; c++) {
		salvo_error err;
		salvo_client_close(run.conns[c].client, 5000, &err);
		salvo_client_destroy(run.conns[c].client);
	}
	return 0;
}
