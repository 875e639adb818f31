/* SPDX-License-Identifier: MIT */
/*
 * The engine's shared internals: the client (one connection and its I/O thread), channels,
 * requests (synchronous methods travelling to the I/O thread), publishers, consumers and
 * received messages.
 *
 * Threads. Application threads create channels, publishers and consumers, call
 * synchronous methods, publish, take deliveries and settle them. The I/O thread
 * (io_internal.h lists its files) owns the socket, the io_uring, the channel table and the publisher list; it never runs
 * application code (after a reconnection the on-connect hooks run on a thread of their
 * own). They meet only here:
 *  - the request queue (c->lock): application threads append, the I/O thread drains;
 *    results travel back in the request itself (request.c);
 *  - publisher rings (ring.c): lock-free, one producer each; in confirm modes also the
 *    window's slots and done (pub_done.c), and the returns (ret_lock, returns.c);
 *  - the settle stack (c->settles, consumer.c): acks, nacks and rejects from any thread;
 *  - consumers' queues (each under its own lock) and the dispatch list (disp_lock), with
 *    the bound on what the queues hold (read_hold.c);
 *  - the event queue (c->lock), the counters (atomics) and the channels' and the
 *    connection's state (atomics; the error is valid once the state says CLOSED);
 *  - the topology record (c->topo.lock, topology.c): declaring threads record, the I/O
 *    thread forgets consumers the broker cancelled, the hooks' thread recovers;
 *  - c->parked and the wake-up eventfd (park.c).
 * Each handshake has both of its sides, and its ordering argument, in the file named.
 */
#ifndef SALVO_ENGINE_H
#define SALVO_ENGINE_H

#include <ck_queue.h>
#include <ck_stack.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "salvo.h"

#include "../codec/batch.h"
#include "../codec/frame.h"
#include "../codec/template.h"
#include "acked.h"
#include "conf_internal.h"
#include "confirm.h"
#include "connect.h"
#include "creds.h"
#include "pub_batch.h"
#include "error.h"
#include "futex.h"
#include "log.h"
#include "ring.h"
#include "topology.h"

/* Settings the engine reads, taken from the configuration at salvo_client_new. */
struct sv_settings {
	struct salvo_conf conf; /* a copy: connect's strings point into it */
	struct sv_connect_params connect;
	int rpc_timeout_ms;
	size_t ring_size;
	size_t window; /* publisher.window */
	unsigned uring_entries;
	uint64_t consumer_buffer_bytes; /* consumer.buffer_bytes */
	size_t consumer_batch_max_bytes; /* consumer.batch.max_bytes */
	uint64_t returns_max_bytes; /* publisher.returns.max_bytes */
	struct sv_log log; /* connect.tls_settings.log points here */
};

/* Memory for decompressing envelopes: mapped once at its full size (the configured
 * limit), pages given back after a large one (envelope.c). */
struct sv_scratch {
	uint8_t *p;
	size_t cap;
};

/* amqps: ciphertext received per recv, and plaintext encrypted per send. */
#define SV_TLS_IN_SIZE (256u * 1024u)
#define SV_TLS_BATCH (256u * 1024u)

enum sv_req_kind {
	SV_REQ_METHOD, /* send frame, complete on reply_id (or at once if reply_id is 0) */
	SV_REQ_ATTACH, /* add pub to the I/O thread's publisher list */
	SV_REQ_DETACH, /* remove pub from it */
	SV_REQ_CLOSE,  /* send what is queued, then connection.close; complete on close-ok */
	/* connection.update-secret: keep secret for later logins, then send frame and
	 * complete on reply_id, or complete at once between connections (creds.c) */
	SV_REQ_SECRET,
};

/*
 * What the I/O thread does with a request at two moments, named by whoever builds it (a
 * new synchronous method names its handlers in channel.c; the I/O thread never switches
 * on reply types). Both run on the I/O thread.
 * on_queued: its frame has been queued for sending (channel.open: the channel joins the
 * table, so the broker's first frames find it).
 * on_reply: its reply has come; m points into the read buffer. The request is off its
 * channel's queue and completes after the handler with status 0, unless the handler
 * returns SV_REPLY_LATER: it has kept the request (basic.get-ok: the message's content
 * completes it).
 */
struct sv_request;
/* Requests in order: the client's queue, those held for the next connection, and those
 * awaiting their reply on a channel (a request is on one list at a time). */
CK_STAILQ_HEAD(sv_request_list, sv_request);
enum sv_reply_next { SV_REPLY_DONE, SV_REPLY_LATER };
typedef enum sv_reply_next (*sv_reply_fn)(salvo_client *c, struct salvo_channel *ch,
					  struct sv_request *req, const struct sv_method *m);
typedef void (*sv_queued_fn)(salvo_client *c, struct salvo_channel *ch, struct sv_request *req);

struct sv_request {
	CK_STAILQ_ENTRY(sv_request) link;
	enum sv_req_kind kind;
	struct salvo_channel *ch;	 /* SV_REQ_METHOD on a channel; NULL on channel 0 */
	/* SV_REQ_ATTACH / SV_REQ_DETACH; and the publisher an I/O thread's own request is for
	 * (a checkpoint, a reopening), NULL once that publisher has left. */
	struct salvo_publisher *pub;
	/* A best-effort checkpoint (io_pub.c): its reply proves the broker handled the
	 * ckpt_count messages sent before it. */
	uint64_t ckpt_count;
	uint32_t reply_id;  /* 0: none, complete once queued */
	uint32_t reply_alt; /* another reply that answers it (basic.get-empty), or 0 */
	sv_reply_fn on_reply;
	sv_queued_fn on_queued;
	uint8_t *frame;
	size_t frame_len;
	char *secret; /* SV_REQ_SECRET: the new secret (wiped with frame when freed) */

	/* Filled by the I/O thread before done is set. */
	int status;
	salvo_error err;
	salvo_queue_info queue; /* queue.declare-ok */
	uint32_t message_count; /* queue.purge-ok, queue.delete-ok */
	struct salvo_message *msg; /* basic.get-ok; NULL for get-empty */
	struct salvo_consumer *consumer; /* basic.consume: registered at consume-ok */
	bool no_ack;			  /* basic.get with no_ack */

	_Atomic uint32_t done; /* futex word: 0 pending, 1 complete */
	_Atomic int refs;      /* the waiting thread and the I/O thread */
	/* SV_REQ_DETACH: exchanged to 1 by the waiter that gives up and by the I/O thread
	 * when it completes; if the I/O thread comes second, it frees the publisher
	 * (sv_publisher_release_abandoned), or, for a detach that keeps it (a reopening that
	 * stopped waiting), takes it back on its list as it was. */
	_Atomic int abandoned;
	bool keep; /* SV_REQ_DETACH for a reopening: given up on, the publisher stays */
	/* Sent by topology recovery for connection generation rec_gen - 1 (0: not): it may
	 * use a channel being recovered, and is refused on any other connection. */
	uint64_t rec_gen;
};

/* How the connection ended, as recorded for the loop's safe point (io_core.c). */
enum sv_end_kind {
	SV_END_FAILED, /* a failure: reconnect if it is worth it and allowed */
	SV_END_FINAL,  /* a failure never retried (blocked_timeout) */
	SV_END_CLOSED, /* the close the application asked for is complete */
};

enum sv_conn_state {
	SV_CONN_OPEN,
	SV_CONN_CLOSING, /* connection.close sent, awaiting close-ok */
	SV_CONN_RECOVERING, /* lost; the I/O thread reconnects (publishers wait) */
	SV_CONN_CLOSED,  /* socket done; c->error says why unless closed on request */
};

struct salvo_client {
	struct sv_settings set;
	struct sv_session sess;

	/* The application's reference, one per channel object (a publisher's included; a
	 * channel lives on while messages, consumers or requests hold it), and the hook
	 * thread's while it runs, so a handle closed after salvo_client_destroy still finds
	 * its client. */
	_Atomic int refs;
	pthread_t io_thread;
	bool uring_ready, io_joined;
	_Atomic uint32_t io_exited; /* futex word: the I/O thread touches nothing any more */
	struct io_uring uring;
	int wake_fd; /* eventfd the I/O thread reads while parked */
	int cancel_fd; /* eventfd that abandons a reconnection attempt (set.connect) */

	/* Set by the I/O thread just before it sleeps; sv_client_kick clears it and writes
	 * wake_fd. On its own cache line: producers read it after every publish. */
	alignas(SV_CACHE_LINE) _Atomic int parked;
	/* Set by the I/O thread while it sleeps with a send in flight and a read held (park.c:
	 * a producer that starts to wait for a confirm or for room writes wake_fd). */
	_Atomic int hold_sleep;

	alignas(SV_CACHE_LINE) pthread_mutex_t lock; /* guards the fields down to error */
	struct sv_request_list queue;
	uint64_t *channel_ids; /* bitmap of channel numbers in use; bit 0 (channel 0) always set */
	_Atomic int state;     /* enum sv_conn_state; written under lock by the I/O thread */
	salvo_error error;     /* why the connection ended; valid once state is CLOSED */

	/* I/O thread only. */
	struct salvo_channel **channels; /* by channel number, [0, channel_max] */
	struct salvo_publisher **pubs;
	size_t npubs, pubs_cap;
	struct sv_request *close_req;
	struct sv_request_list await0; /* sent on channel 0, reply pending, in order */
	/* What the next login uses (creds.h): the constructing thread's until the I/O
	 * thread starts, then the I/O thread's alone. */
	struct salvo_credentials creds;
	struct sv_reader reader;
	uint8_t *rbuf; /* plaintext frames: received, or decrypted from tls_in */
	size_t rlen, rcap;
	/* amqps: ciphertext. The send in flight reads tls_out[tls_out_sent, tls_out_len);
	 * received records land in tls_in and go straight into the TLS object. */
	uint8_t *tls_out, *tls_in;
	size_t tls_out_len, tls_out_sent, tls_out_cap;
	bool recv_inflight, wake_inflight, send_inflight;
	bool sent_lately; /* a publisher's bytes were sent since the last long park: linger */
	uint64_t wake_value;
	/* Control frames (methods, heartbeats) waiting to go out, and those in flight. */
	uint8_t *out, *out_next;
	size_t out_len, out_cap, out_next_len, out_next_cap, out_sent;
	/* The send in flight: each iovec's source, NULL for c->out. */
	struct iovec *iov;
	struct salvo_publisher **iov_pub;
	size_t iov_cap, niov;
	struct msghdr msg;
	/* Where the last short write stopped mid-source: that source goes first next time. */
	struct salvo_publisher *partial_pub;
	bool partial_out;
	uint64_t last_send_ns, last_recv_ns, prev_recv_ns;
	/* The rate acks come at, for holding reads (io_pub.c): over the reads that brought
	 * confirms and were armed at once after the one before (not after a hold), decaying
	 * sums of their confirms and of the time since the read before each, and when the
	 * last of them came. */
	uint64_t ack_read_confirms, ack_read_ns, ack_read_at, ack_read_samples;
	bool recv_after_hold; /* the read in flight was armed when a hold ended */
	uint64_t send_started_ns; /* when the send in flight was submitted */
	/* Confirm traffic nobody waits for: the next recv is armed only from here on. */
	uint64_t recv_hold_until;
	bool batch_acks_only; /* the read being handled held only acks, nacks, heartbeats */
	bool batch_acks;      /* ... and at least one ack or nack */
	uint32_t batch_deliveries; /* messages the read being handled delivered to consumers */
	/* Channels with half their prefetch or more unsettled (their ch->near_prefetch): the
	 * broker may soon wait for their acks, so no read is held for a stream. */
	unsigned channels_near;
	size_t recv_room; /* what the read in flight may bring at most */
	/* Deliveries of the last read, with those before it while reads filled their room. */
	uint32_t stream_deliveries;
	bool stream_full;
	bool input_pending;   /* rbuf holds frames not decoded: consumers are over their bound */

	/* The end recorded by sv_conn_fail and friends, acted on by the loop (I/O thread). */
	bool end_pending;
	enum sv_end_kind end_kind;
	salvo_error end_why;

	/* Recovery (I/O thread, except where said). */
	salvo_error lost;     /* why the connection was lost */
	bool paused;	      /* publishers wait: hooks still running after a reconnection */
	bool blocked;	      /* connection.blocked until connection.unblocked */
	char blocked_reason[128];
	uint32_t session_frame_max; /* of the first connection: rings hold frames cut to it */
	size_t next_endpoint;	    /* where the next reconnection attempt starts */
	uint64_t generation;	    /* connections made so far, less one */
	unsigned rec_attempt;	    /* reconnection attempts since the loss */
	uint64_t rec_delay_ms;	    /* backoff before the next one, before jitter */
	uint64_t rec_next_ns;	    /* when the next attempt is due */
	/* The on-connect hooks' thread (after a reconnection), under lock: the last
	 * generation a hooks' thread finished for, plus one (0: none yet), and its result. */
	uint64_t hooks_finished;
	int hook_status;
	salvo_error hook_err;
	struct sv_request_list held; /* requests waiting for the next connection */
	_Atomic uint64_t reconnects;
	struct sv_topology topo; /* what topology recovery makes again (topology.c) */

	/* Events for salvo_client_poll_event, under lock. */
	salvo_event events[64];
	size_t ev_head, ev_count;
	uint64_t ev_dropped;
	pthread_cond_t ev_cond;

	/* Consumers (consumer.c). Acks, nacks and rejects from any thread: a lock-free stack
	 * the I/O thread empties each loop (sv_settle_take). */
	alignas(SV_CACHE_LINE) struct ck_stack settles;
	/* The I/O thread takes no more settles: a pusher frees what it pushed (consumer.c). */
	_Atomic int settles_closed;
	/* Bytes of messages queued on consumers and not yet taken by the application; when
	 * over consumer_buffer_bytes the I/O thread holds its reads. reads_held and
	 * buffered pair as a Dekker: the I/O thread stores held then loads buffered; a taker
	 * subtracts from buffered then loads held, and kicks it. */
	alignas(SV_CACHE_LINE) _Atomic uint64_t buffered;
	_Atomic int reads_held;
	_Atomic uint64_t channel_serial; /* generations handed to channels */
	struct sv_consume_counters {
		_Atomic uint64_t delivered, buffered_peak, read_holds, settle_frames,
			settles_dropped, handovers;
		_Atomic uint64_t envelopes, records, envelopes_rejected, stream_holds;
		/* Written per settle by the application's threads: a line of its own. */
		alignas(SV_CACHE_LINE) _Atomic uint64_t settles;
	} cctr;
	/* Returned messages' content held for the application, against returns_max_bytes
	 * (returns.c): the I/O thread adds, the publishers' threads subtract. warned: the
	 * first drop has been logged (I/O thread). */
	alignas(SV_CACHE_LINE) _Atomic uint64_t ret_bytes;
	bool ret_warned;
	/* I/O thread: where compressed envelopes are decompressed (envelope.c). */
	struct sv_scratch zbuf;
	/* Deliveries let go of, for reuse (delivery.c): any thread pushes onto the stack,
	 * the I/O thread takes it whole into its own cache. */
	alignas(SV_CACHE_LINE) struct ck_stack free_deliveries;
	alignas(SV_CACHE_LINE) struct sv_delivery *dcache; /* I/O thread */
	unsigned dcache_n;
	/* I/O thread: the consumers whose deliveries of this read wait in their pend lists,
	 * to be queued in one go each (sv_consumer_flush; linked by pend_next, referenced
	 * while listed), and the bytes of them all. */
	struct salvo_consumer *pend_cons;
	uint64_t pend_cost;
	/* salvo_client_dispatch: the consumers with a callback (each referenced by the list),
	 * where the next pass starts, and a count of hand-overs to them, which the
	 * dispatchers wait on. Lock order: disp_lock, then a consumer's lock. */
	pthread_mutex_t disp_lock;
	pthread_cond_t disp_cond;
	struct salvo_consumer *disp_head, *disp_cursor;
	size_t disp_count;
	uint64_t disp_seq;

	/* Live publishers and consumers for the statistics, and the totals of closed
	 * publishers (pub_stats.c, stats.c). Under stats_lock too: the histogram of the
	 * client's outcomes at the last statistics document, for its interval's latencies. */
	pthread_mutex_t stats_lock;
	struct salvo_publisher *stats_pubs;
	struct salvo_consumer *stats_cons;
	salvo_pub_stats closed_stats;
	uint64_t *stats_prev;
	/* The statistics callback's schedule, under lock: when the next document is due
	 * (monotonic ns), whether a poller is writing one, and how many were written. */
	uint64_t stats_due_ns, stats_last_ns, stats_docs;
	bool stats_busy;

	/* Figures for the statistics: the I/O thread's own (one writer; kicks excepted),
	 * the endpoint connected to (an index into set.conf.endpoints), and time blocked:
	 * since when (0: not blocked; blocked_timeout's clock too) and in all before. */
	alignas(SV_CACHE_LINE) struct sv_io_counters {
		_Atomic uint64_t turns, waits, submits, sends, send_bytes, recvs, recv_bytes,
			wakeups, ack_holds;
		_Atomic uint64_t kicks; /* any thread: fetch-add */
	} ioctr;
	_Atomic uint32_t endpoint_at;
	_Atomic uint64_t blocked_at, blocked_ns;
};

enum sv_channel_state {
	SV_CH_OPEN,
	SV_CH_CLOSED, /* error says why */
};

struct salvo_channel {
	salvo_client *client;
	uint16_t id;
	/* Unique per opening of the channel (a reopening after a reconnection gets a new
	 * one): messages keep it, so a delivery tag is never settled on another opening. */
	_Atomic uint64_t generation;
	_Atomic int state; /* enum sv_channel_state; error is valid once CLOSED (acquire) */
	salvo_error error;
	/* The application's handle (or its publisher), the I/O thread's table entry, and one
	 * per message received on it, consumer on it and request for it (until freed). On a
	 * line apart from state and generation, which every settle reads. */
	alignas(SV_CACHE_LINE) _Atomic int refs;

	/* I/O thread only. */
	alignas(SV_CACHE_LINE) struct sv_request_list await; /* sent, reply pending, in order */
	bool close_sent;     /* we sent channel.close and await close-ok */
	bool peer_closed;    /* the broker closed it; we answered close-ok */
	struct salvo_publisher *pub;
	struct sv_content_state content;
	struct sv_delivery *incoming; /* basic.get-ok or deliver whose content is arriving */
	struct sv_request *incoming_req; /* the basic.get that incoming completes */
	size_t incoming_len;		 /* body bytes received so far */
	/* What incoming's content header says of it for a consumer that splits envelopes:
	 * sv_batch_classify's result (0 no envelope, 1 one, -1 malformed: the reason). */
	int incoming_env;
	struct sv_batch_info incoming_info;
	struct sv_codec_error incoming_env_err;
	struct salvo_consumer *incoming_to; /* the delivery's consumer; NULL for basic.get */
	struct salvo_consumer *consumers;   /* registered at consume-ok, until they end */
	struct sv_acked acked;		    /* delivery tags settled, for multiple acks */
	struct sv_return *returning;	 /* basic.return awaiting its content header */
	/* A publisher's channel being reopened, or a channel kept for its recorded consumers
	 * until topology recovery reopens it (the application's calls on it are refused). */
	bool recovering;
	bool returning_seen;		 /* a basic.return's content is arriving: ignore it */
	bool flow_stopped; /* the broker's channel.flow active=false: send no content */
	/* Its last basic.qos, for topology recovery (under client->topo.lock). */
	uint32_t qos_size;
	uint16_t qos_count;
	bool qos_global, qos_set;
	/* The prefetch count asked by the application's last basic.qos (0: none), read by
	 * the I/O thread to tell a stream of deliveries from one that nears its limit. */
	_Atomic uint16_t prefetch;
	bool near_prefetch; /* I/O thread: counted in client->channels_near */
};

/* A basic.return, matched to its message by the sequence number salvo stamps in the
 * headers of mandatory publishes in confirm modes (SV_SEQ_HEADER), with its content when
 * the application is to have it (returns.c). */
struct sv_return_content;
struct sv_return {
	CK_STAILQ_ENTRY(sv_return) link;
	uint64_t seq; /* 0: no stamp found (always in best effort) */
	uint64_t last; /* an envelope's: its last record (seq its first); else seq */
	salvo_error err;
	char exchange[256], routing_key[256];
	char reply_text[256];
	bool want;    /* the application is handed its content (a callback, or sync) */
	bool dropped; /* wanted, but over publisher.returns.max_bytes */
	struct sv_return_content *content; /* NULL: none kept */
};

#define SV_SEQ_HEADER "x-salvo-seq"

/* Largest body salvo accepts from the broker (RabbitMQ's own ceiling is 512 MiB). */
#define SV_MAX_BODY ((uint64_t)512 << 20)

CK_STAILQ_HEAD(sv_message_list, salvo_message);

struct sv_delivery;
struct sv_envelope;

/*
 * What the application holds: a message as it came (its delivery's whole handle), or one
 * record of an envelope split by a consumer (envelope.c). Everything but the body and
 * the record's place is its delivery's, shared by every record of the envelope.
 */
struct salvo_message {
	struct sv_delivery *d;
	const uint8_t *body;
	size_t len;
	uint32_t index;		 /* a record's, in d->env; 0 for a whole message */
	_Atomic uint8_t settled; /* a record: acked, nacked or rejected (envelope.c) */
	/* Taken from d->cons, which it references until destroyed (for its counters). */
	bool taken;
	CK_STAILQ_ENTRY(salvo_message) link; /* in a consumer's queue or pend list */
	size_t cost;			     /* bytes counted in client->buffered while queued */
};

/* An ack, nack or reject on its way to the I/O thread. */
enum sv_settle_kind { SV_SETTLE_ACK, SV_SETTLE_NACK, SV_SETTLE_REJECT };
struct sv_settle {
	struct ck_stack_entry entry; /* in c->settles */
	struct sv_settle *next;	     /* in the batch the I/O thread took, oldest first */
	uint64_t generation; /* the channel's when the message came */
	uint64_t tag;
	uint16_t channel;
	uint8_t kind;
	bool multiple, requeue;
	/* An envelope's settle, which the application's acks of its records imply: the
	 * I/O thread drops it when the tags are settled already (a multiple ack of a later
	 * message covered them) instead of earning a 406 for an unknown tag. */
	bool quiet;
	/* The delivery whose record this is (a reference to it); NULL: allocated alone. */
	struct sv_delivery *owner;
};

/*
 * A message as the broker sent it (basic.get-ok or basic.deliver). Its handles (the whole
 * one, or each record of a split envelope) hold a reference each, and so does its settle
 * record while in use; the last one let go of returns it to its client (delivery.c).
 */
struct sv_delivery {
	/* What the application's threads write (settling and taking it), first and
	 * together, so that the I/O thread fetches few lines back from their cores. The
	 * first settle of the whole message travels in settle (it holds a reference until
	 * the I/O thread is done with it); settle_taken: it is in use. */
	alignas(SV_CACHE_LINE) _Atomic uint32_t refs;
	_Atomic bool settle_taken;
	struct sv_settle settle;
	struct salvo_message whole; /* the handle of a message handed out whole */

	/* What a consumer's thread reads of every message, next: the I/O thread writes
	 * each line of it for the next message, and each costs a transfer. */
	uint8_t *body; /* as received; NULL once a compressed envelope is split */
	size_t len;
	uint64_t delivery_tag;
	/* Where it came from, for salvo_message_ack: the channel (referenced) and its
	 * generation then. */
	salvo_channel *ch;
	uint64_t generation;
	/* The consumer it was delivered to (I/O thread, before queueing it; NULL for
	 * basic.get). Not referenced: each handle taken references it (taken). */
	struct salvo_consumer *cons;
	struct sv_envelope *env; /* split into records; NULL: handed out whole */
	uint32_t message_count;
	bool redelivered;
	bool no_ack;
	/* Its consumer's acks_only, copied when it came (I/O thread, before anyone settles
	 * it): every settle of it is sent as an ack. */
	bool acks_only;
	salvo_props props; /* its strings and headers live in props_mem */

	/* Kept when the delivery is recycled (delivery.c), everything above is cleared. */
	struct sv_delivery *free_next; /* in the client's cache */
	struct ck_stack_entry free_entry; /* in the client's stack of deliveries let go */
	size_t body_cap;
	void *props_mem;
	size_t props_cap;
	char exchange[256];
	char routing_key[256];
	char consumer_tag[256];
};

/* A zeroed object of a type with members on cache lines of their own (alignas): calloc
 * aligns to 16 bytes only. Freed with free. */
static inline void *sv_zalloc_lines(size_t size)
{
	size_t rounded = (size + SV_CACHE_LINE - 1) / SV_CACHE_LINE * SV_CACHE_LINE;
	void *p = aligned_alloc(SV_CACHE_LINE, rounded);

	if (p)
		memset(p, 0, rounded);
	return p;
}

/* delivery.c: a delivery with one reference, its whole handle's, from c's cache or new
 * (NULL: out of memory). I/O thread. */
struct sv_delivery *sv_delivery_new(salvo_client *c);
/* Let go of d now, whatever its references (the I/O thread: a message it never handed
 * out; anyone: the last reference), back to its client's cache when it has a channel. */
void sv_delivery_free(struct sv_delivery *d);
/* Room for a len-byte body in d->body (kept from an earlier use when it is big enough). */
int sv_delivery_body(struct sv_delivery *d, size_t len);
/* The client's cached deliveries, freed (the client's end: none is in use). */
void sv_delivery_cache_free(salvo_client *c);
/* Set on the I/O thread for its client: a delivery let go there goes straight back. */
extern _Thread_local salvo_client *sv_io_client;

/*
 * A consumer. The I/O thread collects a read's finished deliveries in its pend list and
 * appends them to its queue in one go, under lock (sv_consumer_flush); the application
 * takes them. References: the application's handle; the basic.consume request's, which
 * the channel's list takes over while registered (consume-ok until cancel-ok, the
 * broker's cancel or the channel's end); the client's dispatch list's, for a consumer
 * with a callback; the I/O thread's while it is on c->pend_cons; and a dispatcher's while
 * it runs the callback.
 */
struct salvo_consumer {
	salvo_channel *ch; /* referenced */
	char tag[256];	   /* the I/O thread writes it at consume-ok, before the caller reads */
	bool no_ack;
	bool raw; /* SALVO_CONSUME_RAW_ENVELOPES: envelopes are handed out whole */
	bool acks_only; /* SALVO_CONSUME_STREAM, or an x-stream-offset argument */
	/* Its deliveries do not make a stream that holds reads (an RPC client's replies:
	 * each is waited for). */
	_Atomic bool no_hold;
	salvo_message_fn on_message;
	void *on_message_arg;
	/* Its basic.consume failed or timed out, or it is being destroyed: nobody will take
	 * deliveries, which are rejected with requeue (dropped if no_ack) as they come. */
	_Atomic int abandoned;
	/* Taken and let go of per message by the application's threads: apart from the
	 * fields above, which the I/O thread reads per delivery. */
	alignas(SV_CACHE_LINE) _Atomic int refs;

	pthread_mutex_t lock; /* guards the queue and the end state */
	pthread_cond_t cond;
	struct sv_message_list queue;
	struct sv_message_list pend; /* I/O thread: not yet queued */
	unsigned pend_n;
	int end_status; /* 0 while active; SALVO_ERR_CANCELLED or the channel's error */
	salvo_error end_err;
	bool cancel_asked;
	_Atomic bool recorded; /* topology recovery holds a record of it (topology.c) */
	uint64_t live_gen;     /* I/O thread: the connection of its last consume-ok */
	bool interrupted; /* sv_consumer_interrupt: the next wait returns at once */

	/* Statistics: the I/O thread writes delivered and handovers; buffered changes under
	 * lock (queued, taken); any thread counts taken and settles (fetch-add). */
	struct sv_consumer_counters {
		_Atomic uint64_t delivered, handovers, buffered;
		/* Written per message by the application's threads: a line of their own. */
		alignas(SV_CACHE_LINE) _Atomic uint64_t taken, acks, nacks, rejects;
	} ctr;
	uint64_t pend_cost; /* I/O thread: the bytes of the pend list */
	uint32_t pend_deliveries; /* I/O thread: deliveries in it (an envelope is one) */
	struct salvo_consumer *pend_next; /* I/O thread: in client->pend_cons */
	bool pend_listed;
	struct salvo_consumer *stats_next; /* in client->stats_cons, under its stats_lock */
	bool stats_linked;

	struct salvo_consumer *next; /* I/O thread: in ch->consumers */
	/* In the client's dispatch list (under client->disp_lock). */
	struct salvo_consumer *disp_next, *disp_prev;
	bool disp_linked;
};

/*
 * A message's place in a confirm-mode publisher's window, slot seq & (window - 1). The
 * producer fills end, t_ns and opaque before it commits the message; the I/O thread reads
 * end and t_ns when it tags the message (once sent), and writes outcome before it
 * publishes done past seq; the producer reads outcome after loading done.
 */
struct sv_slot {
	_Atomic uint64_t end; /* ring position just after the message */
	uint64_t t_ns;	      /* publish time for the latency histogram; 0: not sampled */
	void *opaque;
	uint8_t outcome; /* SV_CONFIRM_* bits */
};

/* Counters written by the I/O thread only, read by anyone. */
struct sv_pub_counters {
	_Atomic uint64_t acked, nacked, returned, failed, resent, possibly_lost;
	_Atomic uint64_t returns_unmatched, returns_dropped;
	_Atomic uint64_t latency_count, latency_max_ns, latency_sum_ns;
	_Atomic uint64_t latency[SALVO_LATENCY_BUCKETS];
};

struct salvo_publisher {
	/* Producer thread. */
	struct sv_ring ring;
	salvo_client *client;
	salvo_channel *ch;
	struct sv_publish_template tpl;
	bool tpl_valid;
	unsigned tpl_flags;
	char tpl_exchange[256], tpl_routing_key[256];
	uint8_t tpl_buf[1024];
	/* Templates of messages with properties, which may not fit in tpl_buf: grown as
	 * needed, kept until the publisher is freed. */
	uint8_t *tpl_heap;
	size_t tpl_heap_cap;
	uint32_t seq_at; /* offset of the SV_SEQ_HEADER value in the template; 0: none */
	uint64_t tpl_gen; /* bumped by every new template */
	struct sv_batch batch; /* batching publishers (pub_batch.c) */
	salvo_confirm_mode mode;
	bool stamp;  /* confirm modes: mandatory messages carry SV_SEQ_HEADER */
	bool reopen; /* a channel the broker closed is replaced (SALVO_PUBLISHER_NO_REOPEN) */
	bool detached; /* let go by the I/O thread for a reopening that has not finished */
	bool reopen_stuck; /* a reopening's detach was given up on: no more attempts */
	bool closed_reported; /* a call has returned the closed channel's error */
	/* The error of the channel replaced last, for the failed outcomes of its messages
	 * (sequence numbers up to replaced_upto) not yet delivered. */
	salvo_error replaced_err;
	uint64_t replaced_upto;
	salvo_outcome_fn on_outcome;
	void *on_outcome_arg;
	salvo_return_fn on_return; /* best effort */
	void *on_return_arg;
	/* Sync: the last publish's return, for salvo_publisher_returned until the next call. */
	struct sv_return *last_ret;
	salvo_returned last_returned;
	struct sv_slot *slots; /* confirm modes: window of them */
	uint64_t wmask;	       /* window - 1 */
	uint64_t seq;	       /* the last sequence number assigned */
	uint64_t reported;     /* outcomes up to here are delivered (or skipped, sync) */
	int wait_status;       /* the worst outcome since the last wait_confirms */
	salvo_error wait_err;
	unsigned in_outcome;   /* > 0 while on_outcome runs */
	/* The thread inside a call on this publisher, 0: none (publisher.c, "One thread at
	 * a time"). */
	_Atomic uintptr_t user;
	_Atomic uint64_t published;
	struct salvo_publisher *stats_next; /* under client->stats_lock */
	uint64_t *stats_prev; /* its histogram at the last statistics document (stats.c) */
	uint16_t stats_channel; /* its first channel's number, the statistics' name for it:
				 * p->ch may be freed while it is still listed (closing) */

	/* I/O thread writes, producer reads. */
	alignas(SV_CACHE_LINE) _Atomic uint64_t done; /* every seq <= done has an outcome */
	_Atomic uint32_t ev_seq;		      /* futex word, bumped after done moves */
	_Atomic uint64_t ev_want; /* 0, or the done the producer sleeps (or is about to) for */
	_Atomic uint32_t orphaned; /* the I/O thread has exited and let go of this publisher */
	/* Its channel closed, the I/O thread has failed or counted what it held and will send
	 * nothing more of it: a detach now completes at once (publisher.c, reopening). */
	_Atomic uint32_t closed_quiet;
	struct sv_pub_counters ctr;
	pthread_mutex_t ret_lock; /* guards returns */
	CK_STAILQ_HEAD(, sv_return) returns;

	/* I/O thread. Invariant: sent is at a message boundary unless must_end > sent. */
	bool in_flight;		   /* some of the send in flight reads this ring */
	uint64_t must_end;	   /* > sent: a message cut by a short write ends here */
	struct sv_request *detach; /* DETACH waiting until nothing of ours is in flight */
	struct sv_confirm win;	   /* confirm modes: its tags are seqs (delivery tag + tag_base) */
	uint64_t tagged_end;	   /* end of the last message tagged */
	uint64_t tag_base;	   /* seq = delivery tag + tag_base (0 until a reconnection) */
	uint64_t resent_until;	   /* seqs up to here were sent again: their acks may repeat */
	uint64_t release_to;	   /* confirms allow releasing up to here (once it is sent) */
	bool drain_due;		   /* acks arrived: drain the window after this read */
	/* Batching in a confirm mode: the records (seqs) each delivery tag of the channel
	 * carries, entry tag + env_base (mod window); env_tags tags are assigned on the
	 * channel, env_lo is the lowest whose envelope is not drained yet (io_pub.c). */
	struct sv_env_range {
		uint64_t first, last;
	} *envs;
	uint64_t env_tags, env_lo, env_base;
	uint64_t env_resent; /* tags up to it were sent again after a reconnection */
	/* Best effort, counted in messages since the publisher began: bounds of how many
	 * are sent (be_lo <= sent <= be_hi), how many a checkpoint proved the broker handled,
	 * whether a checkpoint is in flight (and since when), and the snapshot taken with
	 * the span in the send (snap_end 0: the span did not end at the head). */
	uint64_t be_lo, be_hi, be_verified;
	uint64_t snap_lo, snap_hi, snap_end;
	bool ckpt_inflight;
	uint64_t ckpt_last_ns;
};

/* consumer.c */
void sv_consumer_put(struct salvo_consumer *cons);

/* Counters with one writer at a time (the I/O thread, or whoever holds their lock): no
 * lock prefix needed. */
static inline void sv_stat_add(_Atomic uint64_t *x, uint64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
/* I/O thread: hand cons the n handles m[0..n): a delivery's whole one, or an envelope's
 * records (queued together). */
void sv_consumer_deliver(salvo_client *c, struct salvo_consumer *cons, struct salvo_message *m,
			 uint32_t n);
void sv_consumer_flush(salvo_client *c);
void sv_dispatch_wake(salvo_client *c); /* the client closed: dispatchers look again */
void sv_consumer_end(struct salvo_consumer *cons, const salvo_error *why);
/* Any thread: end the wait of salvo_consumer_get/dispatch in progress, or the next one,
 * with SALVO_ERR_TIMEOUT when no message is queued (a listener being stopped). */
void sv_consumer_interrupt(struct salvo_consumer *cons);
struct sv_settle *sv_settle_take(salvo_client *c);
/* Any thread: may tag, of ch as opened in generation gen, still be settled? 0, or
 * SALVO_ERR_CLOSED with err saying why not (the channel closed or was reopened). */
int sv_settle_check(salvo_channel *ch, uint64_t gen, uint64_t tag, enum sv_settle_kind kind,
		    salvo_error *err);
/* Any thread: queue a settle for the I/O thread (quiet: see struct sv_settle). 0, or
 * SALVO_ERR_NO_MEMORY. */
int sv_settle_push(salvo_channel *ch, uint64_t gen, uint64_t tag, enum sv_settle_kind kind,
		   bool multiple, bool requeue, bool quiet, salvo_error *err);
void sv_settle_free_all(struct sv_settle *s);
/* The I/O thread's end: settles are taken no more, those queued and later ones freed. */
void sv_settle_close(salvo_client *c);

/* pub_stats.c: the client's list of publishers for salvo_client_stats; unlinking adds a
 * closing publisher's figures to the closed totals (what never got an outcome: failed). */
void sv_pub_stats_link(struct salvo_publisher *p);
void sv_pub_stats_unlink(struct salvo_publisher *p);

/* stats.c: the client's list of consumers for the statistics (linked once consuming,
 * unlinked by salvo_consumer_destroy before it lets go); the connection blocked since
 * since_ns, or not (0): I/O thread. With statistics.interval_ms: run the statistics
 * callback if a document is due, and when the next one is (0: never); c->lock held, and
 * released while the callback runs. */
void sv_consumer_stats_link(struct salvo_consumer *cons);
void sv_consumer_stats_unlink(struct salvo_consumer *cons);
void sv_stats_blocked(salvo_client *c, uint64_t since_ns);
uint64_t sv_stats_poll_locked(salvo_client *c, uint64_t now_ns);
void sv_latency_record(struct sv_pub_counters *ctr, uint64_t ns);


/* client.c */
uint64_t sv_now_ns(void);
/* *ts = clock's now + ms (ms >= 0): an absolute deadline for pthread_cond_timedwait. */
void sv_timespec_after(struct timespec *ts, clockid_t clock, int ms);
/* A condition variable whose timed waits take CLOCK_MONOTONIC deadlines. */
void sv_cond_init_monotonic(pthread_cond_t *cond);
struct sv_request *sv_request_new(enum sv_req_kind kind);
void sv_request_put(struct sv_request *req);
int sv_request_submit(salvo_client *c, struct sv_request *req, salvo_error *err);
int sv_request_wait(struct sv_request *req, int timeout_ms, salvo_error *err);
void sv_request_complete(struct sv_request *req, int status, const salvo_error *err);
/* Log ev, then queue it for salvo_client_poll_event (the log is called without c->lock). */
void sv_event_push(salvo_client *c, const salvo_event *ev);
int sv_run_hooks(salvo_client *c, salvo_error *err);
/*
 * For a thread that makes its consumer again after a loss (a listener, an RPC client):
 * wait until c is connected, looking at c's state every SV_STATE_POLL_MS and whenever cond
 * (with lock, its owner's, taken here) is signalled. It does not wait in a synchronous
 * method, which during an outage would hold the thread up to rpc_timeout where a stop
 * could not interrupt it. Returns 0 once connected, 1 when *stopping (read under lock) is
 * set, or the error that closed c for good (in *err).
 */
#define SV_STATE_POLL_MS 20
int sv_client_wait_open(salvo_client *c, pthread_mutex_t *lock, pthread_cond_t *cond,
			const bool *stopping, salvo_error *err);
void sv_io_wait_exit_if_closed(salvo_client *c);
int sv_channel_id_alloc(salvo_client *c);
void sv_channel_id_free(salvo_client *c, uint16_t id);
void sv_channel_put(salvo_channel *ch);
void sv_client_put(salvo_client *c);
int sv_settings_from_conf(const salvo_conf *conf, struct sv_settings *set, salvo_error *err);
int sv_connect_any(const struct sv_settings *set, struct salvo_credentials *creds,
		   struct sv_session *s, size_t *next, salvo_client *report, salvo_error *err);
void sv_settings_free(struct sv_settings *set);

/* io.c: the I/O thread's body. */
void *sv_io_main(void *arg);

/* io_pub.c: the publisher's I/O half, also run by the producer once the I/O thread has let
 * go of it (orphaned): give back what its ring holds, failing what has no outcome. */
void sv_pub_fail(struct salvo_publisher *pub);
/* Best effort: count every message published and not shown handled as possibly lost, and
 * take them as accounted for. Called by whoever writes the publisher's counters: the I/O
 * thread while it is attached, its own thread once detached. */
void sv_pub_count_unverified(struct salvo_publisher *pub);

/* channel.c */
/* How a synchronous method's request is answered: the reply it waits for, another that
 * also answers it, and its handlers (all optional but reply_id). */
struct sv_rpc {
	uint32_t reply_id, reply_alt;
	sv_reply_fn on_reply;
	sv_queued_fn on_queued;
};
int sv_channel_rpc(salvo_channel *ch, struct sv_method *m, const struct sv_rpc *rpc,
		   struct sv_request **out, bool *submitted, salvo_error *err);
int sv_channel_rpc_for(salvo_channel *ch, struct sv_method *m, const struct sv_rpc *rpc,
		       struct salvo_consumer *consumer, bool *submitted, salvo_error *err);

/* Handlers of the I/O thread's (io_channel.c, io_consume.c) that requests name. */
void sv_channel_opening(salvo_client *c, salvo_channel *ch, struct sv_request *req);
void sv_channel_closing(salvo_client *c, salvo_channel *ch, struct sv_request *req);
enum sv_reply_next sv_channel_close_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				       const struct sv_method *m);
enum sv_reply_next sv_get_reply(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				const struct sv_method *m);
enum sv_reply_next sv_consume_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				 const struct sv_method *m);
enum sv_reply_next sv_cancel_ok(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				const struct sv_method *m);
/* Topology recovery's thread: channel.open again on a channel kept across a loss (its
 * number unchanged), and basic.consume again for a recorded consumer (its tag, flags and
 * arguments), registered on the same object. */
int sv_channel_reopen(salvo_channel *ch, salvo_error *err);
int sv_consumer_reissue(struct salvo_consumer *cons, const char *queue, unsigned flags,
			const salvo_table *arguments, salvo_error *err);
void sv_channel_reopening(salvo_client *c, salvo_channel *ch, struct sv_request *req);
/* salvo_channel_close waiting at most timeout_ms for close-ok (0: not at all; the close
 * then finishes in the background). Callable from the I/O thread with 0. */
int sv_channel_close_within(salvo_channel *ch, int timeout_ms, salvo_error *err);

/* publisher.c */
/* I/O thread: free a publisher whose salvo_publisher_close gave up waiting for its
 * detach (closing its channel in the background). */
void sv_publisher_release_abandoned(struct salvo_publisher *p);

#endif
