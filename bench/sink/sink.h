/* SPDX-License-Identifier: MIT */
/*
 * salvo-sink: a minimal AMQP 0-9-1 server that swallows publishes as fast as it can,
 * validates every frame of them, confirms them, and misbehaves on request.
 *
 *   salvo-sink.c  options, listening socket, worker threads, statistics
 *   worker.c      one epoll loop per thread: accept, recv, send, timers, connection life
 *   proto.c       the AMQP side of a connection: handshake, methods, publishes, faults
 *   batch.c       what each read batch owes at its end: confirms (nacked, reordered,
 *                 delayed as asked) and routing-key counts
 *   counts.c      messages received per routing key, for queue.declare's message_count
 *   envelope.c    envelopes (batches of records): checked with the codec, records counted
 *
 * A connection belongs to the worker that accepted it for its whole life, so nothing in
 * struct conn or struct channel is shared between threads. What is shared: the options
 * (read-only once the workers start), the per-routing-key counts (a mutex, taken once per
 * read batch), and each worker's statistics counters (one writer, read by the stats loop).
 */
#ifndef SALVO_SINK_H
#define SALVO_SINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "frame.h"
#include "methods.h"

#define SINK_DEFAULT_FRAME_MAX 131072u
#define SINK_MAX_FRAME_MAX     (16u << 20)
#define SINK_MAX_ENVELOPE      (256u << 20) /* --envelope-max */
#define SINK_CHANNEL_MAX       2047
/* Each worker reads up to this much per recv(), or two frames if frame_max is larger. */
#define SINK_RECV_BUF (1u << 20)
/* A basic.return carries the whole message back, so its body must be held; larger
 * mandatory messages to the unroutable key get a 406 channel error instead. A return
 * buffer grown past SINK_RETURN_KEEP is freed once sent rather than kept for the next. */
#define SINK_RETURN_MAX	 (16u << 20)
#define SINK_RETURN_KEEP (1u << 20)
/* Stop reading a connection while this much output waits for the client to read it. */
#define SINK_OUT_HIGH		  (4u << 20)
#define SINK_HANDSHAKE_TIMEOUT_MS 10000
/* How long a closing connection waits for close-ok, or for EOF after our last frame. */
#define SINK_CLOSE_TIMEOUT_MS 1000

struct sink_opts {
	uint32_t frame_max;
	uint16_t heartbeat;
	const char *user; /* with password: the only login accepted; NULL: any */
	const char *password;
	uint64_t nack_every;	/* 0: off; else every Nth delivery tag of a channel is nacked */
	const char *return_key; /* NULL: off */
	uint64_t close_after;	/* messages per connection; 0: off */
	uint64_t stall_after;
	uint64_t drop_after;
	uint32_t ack_delay_ms;
	bool ack_out_of_order;
	bool ack_unknown_tag;
	bool quiet;
	uint32_t envelope_max; /* the most bytes of an envelope's body, before and after
				* decompression */
	bool log_bad_envelopes;
};

/* Set by main before any worker starts, read-only afterwards. */
extern struct sink_opts sink_opts;

/* A byte queue: pending bytes are [off, len) of p. */
struct buf {
	uint8_t *p;
	size_t off;
	size_t len;
	size_t cap;
};

/* Room for n more bytes at b->p + b->len; the caller adds what it wrote to len. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);

static inline size_t buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

struct channel {
	uint16_t id;
	bool closing;	   /* we sent channel.close and wait for close-ok */
	bool confirm;	   /* confirm.select seen */
	bool tx;	   /* tx.select seen */
	bool dirty;	   /* in conn->dirty: messages completed in this read batch */
	bool returning;	   /* the message in progress goes back as basic.return */
	bool unknown_sent; /* --ack-unknown-tag done for this channel */
	struct sv_content_state content;
	uint64_t body_size; /* of the message in progress */
	uint64_t tag;	    /* the last delivery tag given (confirm mode) */
	uint64_t settled;   /* every tag up to this one has been acked or nacked */
	/*
	 * Routing key of the latest publish and how many completed messages carried it since
	 * the counts were last updated: publishers mostly repeat one key, so this turns a
	 * locked table update per message into one per read batch.
	 */
	uint64_t key_pending;
	uint8_t key_len;
	uint8_t key[SV_SHORTSTR_MAX];
	struct buf ret; /* the basic.return being assembled: method, header, body frames */
	/* The message in progress as an envelope (envelope.c). */
	enum { ENV_NONE, ENV_OPEN, ENV_BAD } env;
	struct sv_batch_info env_info;
	struct buf env_body;	/* a body of several frames, gathered */
	const uint8_t *env_ptr; /* the whole body, once its last frame came */
	size_t env_len;
	struct sv_codec_error env_err; /* why it is ENV_BAD (or failed its check) */
};

enum conn_state {
	CONN_HEADER,   /* waiting for the protocol header */
	CONN_START_OK, /* connection.start sent */
	CONN_TUNE_OK,  /* connection.tune sent */
	CONN_OPEN,     /* waiting for connection.open */
	CONN_RUNNING,
	CONN_STALLED, /* --stall-after: never read again, heartbeats go on */
	CONN_CLOSING, /* connection.close sent, waiting for close-ok */
	CONN_DRAIN,   /* last frame queued: flush, shut down writing, discard input until EOF */
	CONN_DEAD,    /* to be destroyed by the worker */
};

struct worker;

struct conn {
	int fd;
	enum conn_state state;
	uint32_t events; /* the epoll interest currently registered */
	bool shut_wr;
	struct worker *w;
	struct conn *prev, *next; /* the worker's connections, for timers */
	char peer[64];

	uint32_t frame_max; /* the limit on frames we accept: ours, then the negotiated one */
	uint16_t channel_max;
	uint16_t heartbeat;
	int64_t last_recv_ms;
	int64_t last_send_ms;
	int64_t deadline_ms; /* handshake, closing or drain deadline; 0: none */
	uint64_t msgs;	     /* messages completed on this connection */

	/* The tail of the last read that was not a whole frame, carried to the next read. */
	uint8_t *carry;
	uint32_t carry_len;
	uint32_t carry_cap;

	struct buf out;	 /* to send */
	struct buf held; /* --ack-delay-ms: chunks of [due ms][length][frames] */

	struct channel **ch; /* [channel_max + 1] once open */
	uint16_t *dirty;     /* ids of channels with messages completed in this batch */
	uint16_t ndirty;

	/* Statistics of the read batch in progress, added to the worker's at its end. */
	uint64_t batch_msgs;
	uint64_t batch_bytes;
	uint64_t batch_records;
	uint64_t batch_envelopes;
	uint64_t batch_bad_envelopes;
};

struct worker {
	/* Written by this worker only; the stats loop reads them. Its own cache line, so the
	 * reader never bounces the line the worker's hot fields live on. */
	_Alignas(64) _Atomic uint64_t msgs;
	_Atomic uint64_t bytes;	  /* message bodies */
	_Atomic uint64_t records; /* see envelope.c */
	_Atomic uint64_t envelopes;
	_Atomic uint64_t bad_envelopes;
	_Atomic uint32_t conns_open;

	_Alignas(64) pthread_t thread;
	int epfd;
	int listen_fd;
	int stop_fd;
	int spare_fd;  /* kept open to be given up when accept() runs out of descriptors */
	uint8_t *rbuf; /* one receive buffer shared by this worker's connections */
	size_t rcap;
	uint8_t *zbuf; /* envelopes inflate here: sink_opts.envelope_max bytes, once needed */
	int64_t now_ms;
	int64_t next_tick_ms; /* the earliest time a connection needs its timers looked at */
	struct conn *conns;
};

/* worker.c */
void *worker_run(void *arg);
void conn_log(const struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_wake_at(struct conn *c, int64_t when_ms);
void conn_drop(struct conn *c);

/* proto.c: called by worker.c with the connection's bytes. */
void proto_init(void);
size_t proto_input(struct conn *c, uint8_t *buf, size_t len);
void proto_put_method(struct buf *b, uint16_t channel, const struct sv_method *m);
void proto_put_heartbeat(struct conn *c);
void proto_free(struct conn *c);

/* batch.c: what a read batch owes at its end. */
void batch_end(struct conn *c);
void batch_settle_channel(struct conn *c, struct channel *ch);
void batch_flush_counts(struct conn *c);
void batch_flush_key(struct channel *ch);
int64_t batch_release_held(struct conn *c, int64_t now);

/* envelope.c: a message's content header, each body frame of it (last: the message's
 * final frame), and its end, which returns the records it counts for. */
void envelope_header(struct channel *ch, const struct sv_basic_props *props, uint64_t body_size);
void envelope_body(struct channel *ch, const uint8_t *p, uint32_t len, bool last);
uint64_t envelope_done(struct conn *c, struct channel *ch);

/* counts.c */
void counts_add(const uint8_t *key, size_t len, uint64_t n);
uint64_t counts_get(const uint8_t *key, size_t len, bool reset);

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
