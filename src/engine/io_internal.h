/* SPDX-License-Identifier: MIT */
/*
 * The I/O thread's files and the one order their calls run in (docs/design.md draws it):
 *
 *   io.c          the loop: take work, send, arm reads, park, reap, timers; at one safe
 *                 point per turn it hands a recorded end to recover.c
 *   recover.c     teardown and reconnection: close everything, or reconnect with backoff,
 *                 run the on-connect hooks, reopen the publishers' channels
 *   io_send.c     gather control frames and publisher rings into one send; account it
 *   io_recv.c     decode what a read brought; connection methods; route channel frames
 *   io_channel.c  requests from application threads, and channel frames by method
 *   io_pub.c      the publisher's I/O half: tags, confirms, release, checkpoints (its
 *                 returns are returns.c's, which holds both halves)
 *   io_consume.c  the consumer's I/O half: deliveries, basic.get, settles
 *   io_core.c     what every part may do: queue a control frame, record the connection's
 *                 end, end a channel
 *   transport.c   the byte stream under the frames, plain TCP or TLS
 *
 * A file calls only files below it in this list (and the engine's shared pieces: rings,
 * confirm windows, requests, consumers' queues, the codec). Nothing below io.c tears the
 * connection down: sv_conn_fail records why, and the loop acts on it between two turns,
 * so no handler ever returns into a connection freed under it.
 *
 * Everything declared here runs on the I/O thread only.
 */
#ifndef SALVO_IO_INTERNAL_H
#define SALVO_IO_INTERNAL_H

#include <string.h>

#include "engine.h"
#include "park.h"

/* A short string of the broker's (at most 255 bytes) into a 256-byte field. */
static inline void sv_copy_str(char *dst, struct sv_bytes s)
{
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
}

/* recover.c */
/* The loop's safe point, once no operation on the socket is in flight: the end
 * sv_conn_fail recorded becomes teardown or recovery. */
void sv_teardown(salvo_client *c);
/* Between connections: one reconnection attempt when due. Returns the time of the next
 * one (0: none, the state has changed). */
uint64_t sv_recover_step(salvo_client *c, uint64_t now);
/* After a reconnection with on-connect hooks: resume once their thread has finished. */
void sv_recover_hooks_done(salvo_client *c);

/* io_send.c */
void sv_start_send(salvo_client *c);
void sv_on_send(salvo_client *c, int res);

/* io_recv.c */
void sv_decode_input(salvo_client *c, size_t fresh);
void sv_on_recv(salvo_client *c, int res);

/* io_channel.c */
void sv_take_requests(salvo_client *c);
void sv_channel_frame(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d);

/* io_pub.c */
void sv_pub_drain(struct salvo_publisher *pub);
bool sv_pub_closed(const struct salvo_publisher *pub);
/* How long a small read of acks, or a stream of deliveries, may hold the next read back
 * (io_recv.c): the configuration key read_hold_us (0: never); acks up to SV_ACK_HOLD_CAP
 * times that (and SV_ACK_HOLD_MAX_NS) while every waiting producer needs longer. */
#define SV_ACK_HOLD_CAP 8u
#define SV_ACK_HOLD_MAX_NS (100u * 1000u * 1000u)
static inline uint64_t sv_recv_hold_ns(const salvo_client *c)
{
	return (uint64_t)c->set.conf.read_hold_us * 1000u;
}
/* The ack rate (io_recv.c measures, io_pub.c uses): a read more than SV_ACK_GAP_MAX_NS
 * after the one before measures a pause, not the broker's pace, and is not a sample; the
 * rate is trusted after SV_ACK_SAMPLES samples on the connection, and while the last is
 * at most SV_ACK_RATE_AGE_NS old (then one read is not held, and measures again). */
#define SV_ACK_GAP_MAX_NS (10u * 1000u * 1000u)
#define SV_ACK_SAMPLES 4u
#define SV_ACK_RATE_AGE_NS (50u * 1000u * 1000u)
/* End a hold of the next read before its time (the read it arms measures no broker). */
void sv_recv_unhold(salvo_client *c);
/* io_consume.c: a channel near its prefetch (c->channels_near), and its end. */
void sv_note_prefetch(salvo_client *c, salvo_channel *ch);
void sv_prefetch_clear(salvo_client *c, salvo_channel *ch);
/* How long from the last read the producers let the next one wait (io_pub.c): 0 when one
 * needs the broker's word now, read_hold_us when none waits, else up to when the first
 * has its confirms at the measured rate. */
uint64_t sv_pubs_hold_ns(salvo_client *c);
/* A producer needs a read sooner than read_hold_us from the last one (no stream is held
 * then). */
bool sv_pubs_waiting(salvo_client *c);
/* A hold in force that a producer now needs ended sooner (it began to wait, or to wait
 * for less): end it there, and say so. */
bool sv_recv_hold_cut(salvo_client *c);
/* The sum of the publishers' done, before and after a read: the confirms it brought. */
uint64_t sv_pubs_done_sum(salvo_client *c);
bool sv_rings_idle(salvo_client *c);
/* What of a publisher's ring the next send may carry: sv_pub_span finds it (0: nothing),
 * sv_pub_in_send records that it is in the send. */
struct sv_span {
	size_t n;
	uint64_t lo; /* best effort: messages surely below the span's end */
	bool to_head;
};
size_t sv_pub_span(salvo_client *c, struct salvo_publisher *pub, const uint8_t **p,
		   struct sv_span *sp);
void sv_pub_in_send(struct salvo_publisher *pub, const struct sv_span *sp);
void sv_pub_sent(salvo_client *c, struct salvo_publisher *pub, size_t take, size_t len);
void sv_pub_checkpoints(salvo_client *c);
void sv_count_possibly_lost(salvo_client *c);
bool sv_pub_attach(salvo_client *c, struct salvo_publisher *pub);
void sv_pub_detach(salvo_client *c, struct sv_request *req);
void sv_detach_done(salvo_client *c, struct sv_request *req, struct salvo_publisher *pub,
		    bool listed);
void sv_settle_pubs(salvo_client *c);
void sv_pub_confirmed(salvo_client *c, salvo_channel *ch, uint64_t tag, bool multiple,
		       bool nack);
enum sv_reply_next sv_pub_reopened(salvo_client *c, salvo_channel *ch, struct sv_request *req,
				   const struct sv_method *m);

/* io_consume.c */
void sv_start_delivery(salvo_client *c, salvo_channel *ch, const struct sv_basic_deliver *a);
void sv_get_content(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d,
		    int event);
void sv_cancel_consumer(salvo_client *c, salvo_channel *ch, struct sv_bytes tag, bool server);
void sv_take_settles(salvo_client *c);

/* io_core.c */
/* The socket is ours to read and write: open or closing, and no end recorded. */
bool sv_live(salvo_client *c);
int sv_out_append(salvo_client *c, const uint8_t *p, size_t n);
void sv_send_method(salvo_client *c, uint16_t channel, const struct sv_method *m);
void sv_send_now(salvo_client *c, const struct sv_method *m);
/* Record that the connection has ended (the first end recorded wins); the loop tears it
 * down or reconnects at its safe point. sv_conn_fail: a failure, retried if worth it;
 * sv_conn_fail_final: never retried; sv_conn_closed: the close the application asked
 * for is complete. */
void sv_conn_fail(salvo_client *c, const salvo_error *why);
void sv_conn_fail_final(salvo_client *c, const salvo_error *why);
void sv_conn_closed(salvo_client *c);
void sv_protocol_error(salvo_client *c, uint16_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The broker's close of a connection or channel as c's error: its text escaped, and the
 * password masked should the broker echo it. */
void sv_broker_error(const salvo_client *c, salvo_error *e, salvo_error_kind kind, uint16_t code,
		     struct sv_bytes text, uint16_t class_id, uint16_t method_id);
salvo_error sv_lost_error(const salvo_client *c);
/* Mask in text (a broker's, escaped) the configured password and the current login's,
 * which update-secret or the credentials callback may have changed. */
void sv_redact_secrets(const salvo_client *c, char *text);
/* The requests awaiting a reply on channel 0 (update-secret) fail with why. */
void sv_conn_fail_awaiting(salvo_client *c, const salvo_error *why);
void sv_channel_await(salvo_channel *ch, struct sv_request *req);
/* A method of the I/O thread's own on ch (a reopening's, a checkpoint, a cancel): its
 * frame queued and a request nobody waits for awaiting reply_id, on_reply (may be NULL)
 * handling it, pub the request's publisher (may be NULL). Returns the request, or NULL
 * with nothing queued when out of memory. */
struct sv_request *sv_channel_own_request(salvo_client *c, salvo_channel *ch,
					  const struct sv_method *m, uint32_t reply_id,
					  sv_reply_fn on_reply, struct salvo_publisher *pub);
void sv_drop_incoming(salvo_channel *ch, const salvo_error *why);
void sv_fail_awaiting(salvo_channel *ch, const salvo_error *why);
void sv_end_consumers(salvo_channel *ch, const salvo_error *why);
void sv_channel_mark_closed(salvo_channel *ch, const salvo_error *why);
void sv_channel_forget(salvo_client *c, salvo_channel *ch);

/* transport.c: plain TCP or TLS, the only place that knows which. Failures are returned
 * (-1, err filled), for the caller to record. */
/* Prepare the next receive. */
void sv_transport_prep_recv(salvo_client *c, struct io_uring_sqe *sqe);
/* A receive brought n > 0 bytes: into rbuf (plain), or into the TLS object. */
int sv_transport_received(salvo_client *c, size_t n, salvo_error *err);
/* TLS: decrypt what the TLS object holds into rbuf's free room, *got bytes (0: nothing
 * more now; plain TCP always 0). */
int sv_transport_more(salvo_client *c, size_t *got, salvo_error *err);
/* Turn the gathered iovecs into what the next send carries. Plain TCP: the iovecs
 * themselves, accounted when the send completes (*now false). TLS: records; *now true,
 * and *taken bytes of the iovecs are inside them, to be accounted at once (even 0: the
 * iovecs are no longer in flight). Returns 1 if there is anything to send, 0 if not. */
int sv_transport_stage(salvo_client *c, size_t *taken, bool *now, salvo_error *err);
/* TLS records of an earlier stage are still unsent (a short write). */
bool sv_transport_staged(const salvo_client *c);
void sv_transport_prep_send(salvo_client *c, struct io_uring_sqe *sqe);
/* A send completed with res: returns true, with *took the bytes of the gathered iovecs it
 * carried, when those are to be accounted now (plain TCP). */
bool sv_transport_sent(salvo_client *c, int res, size_t *took);
/* One small frame sent at once, outside the ring (best effort). */
void sv_transport_send_now(salvo_client *c, const uint8_t *p, size_t n);
/* The session is gone: drop what it had buffered. */
void sv_transport_reset(salvo_client *c);

#endif
