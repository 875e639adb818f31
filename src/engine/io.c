/* SPDX-License-Identifier: MIT */
/*
 * The I/O thread: one per client, owner of the socket, the io_uring, the channel table and
 * the publisher list.
 *
 * Each loop iteration takes the requests application threads queued, then, unless a send
 * is already in flight, gathers everything ready into ONE sendmsg: control frames first,
 * then the pending span of every publisher ring (contiguous, thanks to the rings' double
 * mapping). While that send is in flight producers keep appending; the next send carries
 * all of it. That is the batching: one system call per loop, not per message.
 *
 * A short write can stop in the middle of a frame. The source it stopped in goes first in
 * the next send, so no other bytes are ever spliced into a frame.
 *
 * Receives are one recv at a time into rbuf (with TLS, into tls_in, whose plaintext lands
 * in rbuf); complete frames are decoded in place and the tail of a partial one is moved to
 * the front.
 *
 * Parking: with nothing in flight to wait for and nothing to send, the thread sets
 * c->parked, fences, and looks once more for work before sleeping in io_uring with a read
 * of c->wake_fd armed. A producer whose commit found its ring idle (sent == its head
 * before the commit) fences and writes wake_fd if it sees parked (sv_client_kick): the
 * two fences make sure one side sees the other's store. A producer that finds bytes of its
 * own still unsent skips the fence: the I/O thread has work from it and will come back.
 * The catch is a stale sent: the producer may read an old sent (its load can pass its own
 * unfenced store of head), see "not idle", skip the kick, while the I/O thread marks the
 * bytes sent, misses the new head and parks. So after a send completes the thread first
 * parks for SV_LINGER_NS only, then looks again (parked, fence, rings) before a long sleep.
 * A message can be stranded only if the producer's head store stays invisible for the
 * whole linger, 100 µs, while store buffers drain in nanoseconds; and once the thread
 * sleeps long, the ring is idle as of a sent written at least a linger ago, so the next
 * producer sees it idle and takes the fenced path.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "../codec/table.h"
#include "engine.h"
#include "props.h"

enum { UD_SEND = 1, UD_RECV, UD_WAKE };

/* How long the I/O thread sleeps after a send before it looks for work once more and
 * sleeps for long (see Parking above). */
#define SV_LINGER_NS (100u * 1000u)

/* How long a read of nothing but acks may wait for more, and how small it must be. */
#define SV_RECV_HOLD_NS (1000u * 1000u)
#define SV_RECV_HOLD_BYTES 4096u

/* Control frames. */

/* Control frames queued while a send is in flight go to out_next, so the kernel never reads
 * a buffer that moves. */
static int out_append(salvo_client *c, const uint8_t *p, size_t n)
{
	uint8_t **buf = c->send_inflight ? &c->out_next : &c->out;
	size_t *len = c->send_inflight ? &c->out_next_len : &c->out_len;
	size_t *cap = c->send_inflight ? &c->out_next_cap : &c->out_cap;

	if (*cap - *len < n) {
		size_t want = *cap ? *cap : 4096;
		while (want - *len < n)
			want *= 2;
		uint8_t *nb = realloc(*buf, want);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static void conn_fail(salvo_client *c, const salvo_error *why);
static void count_possibly_lost(salvo_client *c);

/* The socket is ours to read and write: not closed, not being replaced. */
static bool live(salvo_client *c)
{
	int state = atomic_load(&c->state);

	return state == SV_CONN_OPEN || state == SV_CONN_CLOSING;
}

/*
 * Send a connection-level method right away, bypassing the ring, as the connection is
 * about to be shut. Best effort, and only between frames: never behind a send in flight
 * or into a frame a short write cut.
 */
static void send_now(salvo_client *c, const struct sv_method *m)
{
	uint8_t buf[512];
	struct sv_codec_error cerr;
	size_t n;

	if (c->send_inflight || c->partial_out || c->partial_pub ||
	    c->tls_out_sent != c->tls_out_len)
		return;
	n = sv_frame_put_method(buf, sizeof buf, 0, m, &cerr);
	if (!n)
		return;
	if (c->sess.tls) {
		/* Never in clear on an amqps connection: one record, sent as it comes. */
		struct iovec v = {buf, n};
		uint8_t rec[1024];
		size_t taken, k;

		if (sv_tls_write(c->sess.tls, &v, 1, n, &taken, NULL))
			return;
		while ((k = sv_tls_take(c->sess.tls, rec, sizeof rec)))
			if (send(c->sess.fd, rec, k, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)k)
				return;
		return;
	}
	(void)!send(c->sess.fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void send_method(salvo_client *c, uint16_t channel, const struct sv_method *m)
{
	uint8_t buf[1024];
	struct sv_codec_error cerr;
	size_t n = sv_frame_put_method(buf, sizeof buf, channel, m, &cerr);

	/* Only small fixed-shape methods (close, close-ok, flow-ok) are built here. */
	if (!n || out_append(c, buf, n)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "cannot queue %s: %s", sv_method_name(m->id), n ? "out of memory" : cerr.reason);
		conn_fail(c, &e);
	}
}

/* An error the broker sent in channel.close or connection.close. */
static void broker_error(salvo_error *e, salvo_error_kind kind, uint16_t code,
			 struct sv_bytes text, uint16_t class_id, uint16_t method_id)
{
	char t[sizeof e->text];

	/* A close without a code would read as success. */
	sv_error_set(e, code ? code : SALVO_ERR_PROTOCOL, kind, "%s",
		     sv_text_escape(t, sizeof t, text.ptr, text.len));
	sv_error_set_reply(e, code, class_id, method_id);
}

static void copy_str(char *dst, struct sv_bytes s)
{
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
}

/* Confirms. */

static void stat_add(_Atomic uint64_t *x, uint64_t n)
{
	/* One writer, the I/O thread: no lock prefix needed. */
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/*
 * Tag every message of a confirm-mode publisher whose last byte is now before sent. The
 * producer wrote each message's end into its slot before committing it; a slot not yet
 * rewritten for the next sequence number still holds an older, smaller end, which the
 * comparison with tagged_end rejects (every message has at least one byte).
 */
static void tag_sent(struct salvo_publisher *pub, uint64_t sent)
{
	while (!sv_confirm_full(&pub->win)) {
		uint64_t seq = sv_confirm_next_tag(&pub->win);
		uint64_t end = atomic_load_explicit(&pub->slots[seq & pub->wmask].end,
						    memory_order_relaxed);

		if (end <= pub->tagged_end || end > sent)
			break;
		sv_confirm_add(&pub->win, end);
		pub->tagged_end = end;
	}
}

/*
 * Release what the confirms allow and the kernel is done with. After a reconnection's
 * rewind, messages settled on the old connection may be ahead of sent: they are released
 * once resent, never before (the producer would overwrite bytes still to be sent).
 */
static void pub_release(struct salvo_publisher *pub)
{
	uint64_t sent = sv_ring_sent(&pub->ring);
	uint64_t to = pub->release_to < sent ? pub->release_to : sent;

	if (to > sv_ring_released(&pub->ring))
		sv_ring_release(&pub->ring, to);
}

/*
 * Report what the window has settled: write each outcome into its slot, count it, release
 * the ring up to the last one, publish done, wake the producer if it sleeps.
 */
static void pub_drain(struct salvo_publisher *pub)
{
	struct sv_confirm_outcome out[256];
	uint64_t release = 0, last = 0, now = 0;
	uint64_t n_ack = 0, n_nack = 0, n_ret = 0, n_fail = 0;
	size_t n;

	pub->drain_due = false;
	while ((n = sv_confirm_drain(&pub->win, out, sizeof out / sizeof out[0], &release))) {
		for (size_t i = 0; i < n; i++) {
			struct sv_slot *sl = &pub->slots[out[i].tag & pub->wmask];
			unsigned st = out[i].status;

			sl->outcome = (uint8_t)st;
			if (st & SV_CONFIRM_RETURNED)
				n_ret++;
			else if (st & SV_CONFIRM_FAILED)
				n_fail++;
			else if (st & SV_CONFIRM_NACKED)
				n_nack++;
			else
				n_ack++;
			if (sl->t_ns) {
				if (!now)
					now = sv_now_ns();
				sv_latency_record(&pub->ctr, now > sl->t_ns ? now - sl->t_ns : 0);
			}
		}
		last = out[n - 1].tag;
	}
	if (!last)
		return;
	stat_add(&pub->ctr.acked, n_ack);
	stat_add(&pub->ctr.nacked, n_nack);
	stat_add(&pub->ctr.returned, n_ret);
	stat_add(&pub->ctr.failed, n_fail);
	/* Release: the outcomes written above are visible to whoever loads done. */
	atomic_store_explicit(&pub->done, last, memory_order_release);
	if (release > pub->release_to)
		pub->release_to = release;
	pub_release(pub);
	sv_pub_wake(pub);
}

/*
 * The publisher's channel is gone: give its unsent bytes back, and in confirm modes fail
 * every message without an outcome, sent or not, so that none vanishes. Only when none of
 * its bytes is in flight. The I/O thread calls it, or the producer once the I/O thread has
 * exited (orphaned).
 */
void sv_pub_count_unverified(struct salvo_publisher *pub)
{
	/* Acquire: at least every message committed before the bytes the caller saw. */
	uint64_t published = atomic_load_explicit(&pub->published, memory_order_acquire);

	if (pub->slots || published <= pub->be_verified)
		return;
	stat_add(&pub->ctr.possibly_lost, published - pub->be_verified);
	pub->be_verified = published;
}

void sv_pub_fail(struct salvo_publisher *pub)
{
	const uint8_t *p;
	size_t n = sv_ring_pending(&pub->ring, &p);
	uint64_t sent;

	/* Best effort: the broker ignores a closed channel's frames, so everything after the
	 * last proof may be lost, and what is still unsent (given up on here) is. */
	sv_pub_count_unverified(pub);
	sv_ring_mark_sent(&pub->ring, n);
	sent = sv_ring_sent(&pub->ring);
	pub->must_end = 0;
	if (pub->slots) {
		tag_sent(pub, sent);
		sv_confirm_fail_all(&pub->win);
		pub_drain(pub);
	}
	sv_ring_release(&pub->ring, sent);
}

/* Nothing of this publisher is in the kernel's hands, and no message is half sent. */
static bool pub_quiet(const struct salvo_publisher *pub)
{
	return !pub->in_flight && sv_ring_sent(&pub->ring) >= pub->must_end;
}

static bool pub_closed(const struct salvo_publisher *pub)
{
	return atomic_load_explicit(&pub->ch->state, memory_order_relaxed) == SV_CH_CLOSED;
}

/*
 * Once quiet, a publisher whose channel is closed gives its unsent bytes back, and one
 * being detached leaves the list. Returns true if it left. Never while its bytes are in
 * flight: the kernel may still be reading them, and the producer must not overwrite them.
 */
static void channel_mark_closed(salvo_channel *ch, const salvo_error *why);
static void channel_forget(salvo_client *c, salvo_channel *ch);

/* The connection's loss as a channel or a request sees it: closed, with the cause's text. */
static salvo_error lost_error(const salvo_client *c)
{
	salvo_error e = c->lost;

	e.status = SALVO_ERR_CLOSED;
	e.kind = SALVO_ERROR_CONNECTION;
	return e;
}

/* A publisher's detach is over: answer its waiter; if the waiter stopped waiting (its
 * timeout passed while the broker read nothing), free the publisher (a close), or keep
 * it on the list as it was (a reopening, which tries again at its next call). */
static void detach_done(salvo_client *c, struct sv_request *req, struct salvo_publisher *pub,
			bool listed)
{
	bool abandoned = atomic_exchange(&req->abandoned, 1);
	bool keep = req->keep;

	sv_request_complete(req, 0, NULL);
	if (!abandoned)
		return;
	if (!keep) {
		sv_publisher_release_abandoned(pub);
		return;
	}
	if (!listed) {
		c->pubs[c->npubs++] = pub; /* the slot it left */
		pub->ch->pub = pub;
	}
}

static bool pub_settle(salvo_client *c, size_t i)
{
	struct salvo_publisher *pub = c->pubs[i];
	struct sv_request *req = pub->detach;

	if (!pub_quiet(pub))
		return false;
	if (pub_closed(pub)) {
		sv_pub_fail(pub);
		/* Release: what the fail wrote is the producer's once it sees this. */
		atomic_store_explicit(&pub->closed_quiet, 1, memory_order_release);
	}
	if (!req)
		return false;
	c->pubs[i] = c->pubs[--c->npubs];
	if (c->partial_pub == pub)
		c->partial_pub = NULL;
	pub->ch->pub = NULL;
	pub->detach = NULL;
	/* A checkpoint's reply may come after the publisher is gone. */
	for (struct sv_request *r = pub->ch->await_head; r; r = r->next)
		r->ckpt = NULL;
	if (pub->ch->recovering && !pub->ch->await_head) {
		/* Its channel was waiting to be reopened (the next connection, or the hooks);
		 * nobody needs it now: it ends here, the broker never saw it. */
		salvo_error e = lost_error(c);
		pub->ch->recovering = false;
		channel_mark_closed(pub->ch, &e);
		channel_forget(c, pub->ch);
	} else if (pub->ch->recovering) {
		/* Its reopening is under way: let it finish without the publisher, which may be
		 * freed once this detach completes. */
		for (struct sv_request *r = pub->ch->await_head; r; r = r->next)
			r->resume = NULL;
		pub->ch->recovering = false;
	}
	detach_done(c, req, pub, false);
	return true;
}

static void settle_pubs(salvo_client *c)
{
	/* backwards: pub_settle moves the last entry into the slot it frees */
	for (size_t i = c->npubs; i-- > 0;)
		pub_settle(c, i);
}

static void fail_awaiting(salvo_channel *ch, const salvo_error *why)
{
	struct sv_request *req;

	salvo_message_destroy(ch->incoming);
	ch->incoming = NULL;
	while ((req = ch->await_head)) {
		ch->await_head = req->next;
		sv_request_complete(req, why->status, why);
	}
	ch->await_tail = NULL;
}

/* The channel has ended: so have its consumers, once their queued messages are taken. */
static void end_consumers(salvo_channel *ch, const salvo_error *why)
{
	struct salvo_consumer *cons;

	ch->incoming_to = NULL;
	while ((cons = ch->consumers)) {
		ch->consumers = cons->next;
		sv_consumer_end(cons, why);
		sv_consumer_put(cons);
	}
}

/* Take the consumer tagged tag off the channel's list; NULL if it is not there. */
static struct salvo_consumer *unlink_consumer(salvo_channel *ch, struct sv_bytes tag)
{
	for (struct salvo_consumer **p = &ch->consumers; *p; p = &(*p)->next) {
		struct salvo_consumer *k = *p;

		if (strlen(k->tag) == tag.len && !memcmp(k->tag, tag.ptr, tag.len)) {
			*p = k->next;
			if (ch->incoming_to == k)
				ch->incoming_to = NULL;
			return k;
		}
	}
	return NULL;
}

/* A consumer is cancelled: by the broker (server), or by the application's cancel-ok. */
static void cancel_consumer(salvo_client *c, salvo_channel *ch, struct sv_bytes tag, bool server)
{
	struct salvo_consumer *cons = unlink_consumer(ch, tag);
	salvo_event ev = {.kind = SALVO_EVENT_CONSUMER_CANCELLED, .channel = ch->id};
	salvo_error e;
	char shown[128];

	if (!cons)
		return; /* our cancel crossed the broker's */
	/* The tag may be the broker's choice. */
	sv_text_escape(shown, sizeof shown, (const uint8_t *)cons->tag, strlen(cons->tag));
	if (server)
		sv_error_set(&e, SALVO_ERR_CANCELLED, SALVO_ERROR_CHANNEL,
			     "the broker cancelled consumer '%s' on channel %u (its queue was "
			     "deleted, or the queue's node went down)",
			     shown, ch->id);
	else
		sv_error_set(&e, SALVO_ERR_CANCELLED, SALVO_ERROR_LOCAL,
			     "consumer '%s' was cancelled by the application", shown);
	sv_consumer_end(cons, &e);
	if (server) {
		snprintf(ev.consumer_tag, sizeof ev.consumer_tag, "%s", cons->tag);
		ev.error = e;
		sv_event_push(c, &ev);
	}
	sv_consumer_put(cons);
}

/* consume-ok: the consumer's deliveries may come from now on. The request's reference
 * to it becomes the channel list's. */
static void register_consumer(salvo_channel *ch, struct sv_request *req,
			      const struct sv_basic_consume_ok *a)
{
	struct salvo_consumer *cons = req->consumer;

	req->consumer = NULL;
	copy_str(cons->tag, a->consumer_tag);
	cons->next = ch->consumers;
	ch->consumers = cons;
}

/* The channel is closed for its application handle: record why, publish, fail waiters. */
static void channel_mark_closed(salvo_channel *ch, const salvo_error *why)
{
	if (atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED)
		return;
	ch->error = *why;
	/* Release: a thread that sees CLOSED also sees error. */
	atomic_store_explicit(&ch->state, SV_CH_CLOSED, memory_order_release);
	end_consumers(ch, why);
	/* Its ring is discarded by settle_pubs once nothing of it is in flight; a producer
	 * blocked on a full ring learns of the close now. */
	if (ch->pub)
		sv_ring_interrupt(&ch->pub->ring);
}

/* Both sides are done with the channel number: drop the table's reference. */
static void channel_forget(salvo_client *c, salvo_channel *ch)
{
	c->channels[ch->id] = NULL;
	sv_channel_id_free(c, ch->id);
	sv_channel_put(ch);
}

static void channel_peer_close(salvo_client *c, salvo_channel *ch,
			       const struct sv_channel_close *cl)
{
	struct sv_method ok = {.id = SV_CHANNEL_CLOSE_OK};
	struct sv_request *req, *next, *ours = NULL;
	salvo_error e;

	broker_error(&e, SALVO_ERROR_CHANNEL, cl->reply_code, cl->reply_text, cl->class_id,
		     cl->method_id);
	channel_mark_closed(ch, &e);
	salvo_message_destroy(ch->incoming);
	ch->incoming = NULL;
	send_method(c, ch->id, &ok);
	/* A close of ours crossing the broker's stays awaited: its close-ok ends the channel,
	 * and salvo_channel_close reports the broker's error from ch->error. */
	for (req = ch->await_head; req; req = next) {
		next = req->next;
		if (req->reply_id == SV_CHANNEL_CLOSE_OK && !ours) {
			ours = req;
			req->next = NULL;
			continue;
		}
		sv_request_complete(req, e.status, &e);
	}
	ch->await_head = ch->await_tail = ours;
	if (!ours)
		channel_forget(c, ch);
}

/* Copy what the application asked for out of a reply, which points into rbuf. */
static void take_reply(struct sv_request *req, const struct sv_method *m)
{
	switch (m->id) {
	case SV_QUEUE_DECLARE_OK: {
		const struct sv_queue_declare_ok *a = &m->a.queue_declare_ok;
		memcpy(req->queue.name, a->queue.ptr, a->queue.len);
		req->queue.name[a->queue.len] = '\0';
		req->queue.message_count = a->message_count;
		req->queue.consumer_count = a->consumer_count;
		break;
	}
	case SV_QUEUE_PURGE_OK:
		req->message_count = m->a.queue_purge_ok.message_count;
		break;
	case SV_QUEUE_DELETE_OK:
		req->message_count = m->a.queue_delete_ok.message_count;
		break;
	}
}

static void protocol_error(salvo_client *c, uint16_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void out_of_memory(salvo_client *c, const char *what)
{
	salvo_error e;

	sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION, "out of memory %s", what);
	conn_fail(c, &e);
}

/* A message whose content (header, bodies) follows: basic.get-ok or basic.deliver. */
static struct salvo_message *start_message(salvo_client *c, salvo_channel *ch, uint64_t tag,
					   bool redelivered, struct sv_bytes exchange,
					   struct sv_bytes routing_key)
{
	struct salvo_message *msg = calloc(1, sizeof *msg);

	if (!msg) {
		out_of_memory(c, "receiving a message");
		return NULL;
	}
	msg->delivery_tag = tag;
	msg->redelivered = redelivered;
	copy_str(msg->exchange, exchange);
	copy_str(msg->routing_key, routing_key);
	ch->incoming = msg;
	ch->incoming_len = 0;
	ch->incoming_to = NULL;
	return msg;
}

static void start_get(salvo_client *c, salvo_channel *ch, const struct sv_basic_get_ok *a)
{
	struct salvo_message *msg = start_message(c, ch, a->delivery_tag, a->redelivered,
						  a->exchange, a->routing_key);

	if (msg)
		msg->message_count = a->message_count;
}

static struct salvo_consumer *find_consumer(salvo_channel *ch, struct sv_bytes tag)
{
	for (struct salvo_consumer *k = ch->consumers; k; k = k->next)
		if (strlen(k->tag) == tag.len && !memcmp(k->tag, tag.ptr, tag.len))
			return k;
	return NULL;
}

static void start_delivery(salvo_client *c, salvo_channel *ch, const struct sv_basic_deliver *a)
{
	struct salvo_consumer *cons = find_consumer(ch, a->consumer_tag);
	struct salvo_message *msg;

	if (!cons) {
		char tag[128];
		protocol_error(c, 503, "basic.deliver on channel %u for consumer tag '%s', "
			       "which that channel does not have",
			       ch->id, sv_text_escape(tag, sizeof tag, a->consumer_tag.ptr,
						      a->consumer_tag.len));
		return;
	}
	msg = start_message(c, ch, a->delivery_tag, a->redelivered, a->exchange, a->routing_key);
	if (!msg)
		return;
	copy_str(msg->consumer_tag, a->consumer_tag);
	msg->no_ack = cons->no_ack;
	ch->incoming_to = cons;
}

/* The last frame of a message has come: it leaves the channel for a consumer's queue or
 * the basic.get waiting for it, keeping its channel for salvo_message_ack. */
static void message_done(salvo_client *c, salvo_channel *ch, struct salvo_message *msg)
{
	struct salvo_consumer *cons = ch->incoming_to;
	struct sv_request *req;

	ch->incoming = NULL;
	ch->incoming_to = NULL;
	atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
	msg->ch = ch;
	msg->generation = atomic_load_explicit(&ch->generation, memory_order_relaxed);
	if (cons) {
		sv_acked_delivered(&ch->acked, msg->delivery_tag, msg->no_ack);
		sv_consumer_deliver(c, cons, msg);
		return;
	}
	req = ch->await_head;
	ch->await_head = req->next;
	if (!ch->await_head)
		ch->await_tail = NULL;
	msg->no_ack = req->no_ack;
	sv_acked_delivered(&ch->acked, msg->delivery_tag, msg->no_ack);
	req->msg = msg;
	sv_request_complete(req, 0, NULL);
}

/* Content frames of a basic.get-ok or basic.deliver (a return's are handled apart). */
static void get_content(salvo_client *c, salvo_channel *ch, const struct sv_decoded_frame *d,
			int event)
{
	struct salvo_message *msg = ch->incoming;

	if (!msg)
		return;
	if (d->frame.type == SV_FRAME_HEADER) {
		if (d->u.header.body_size > SV_MAX_BODY) {
			protocol_error(c, 502, "a %llu-byte body exceeds salvo's limit of %llu",
				       (unsigned long long)d->u.header.body_size,
				       (unsigned long long)SV_MAX_BODY);
			return;
		}
		msg->len = (size_t)d->u.header.body_size;
		msg->body = malloc(msg->len ? msg->len : 1);
		/* What it costs while queued: body, properties (at most the header's size) and
		 * the message itself. */
		msg->cost = msg->len + d->frame.size + sizeof *msg;
		/* The properties point into rbuf: the message keeps copies. */
		if (!msg->body || sv_props_copy(&d->u.header.props, &msg->props, &msg->props_mem)) {
			salvo_error e;
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory for a %zu-byte message", msg->len);
			conn_fail(c, &e);
			return;
		}
	} else if (d->frame.type == SV_FRAME_BODY) {
		/* sv_content_feed has checked the body frames add up to the header's size */
		memcpy(msg->body + ch->incoming_len, d->frame.payload, d->frame.size);
		ch->incoming_len += d->frame.size;
	}
	if (event == SV_CONTENT_COMPLETE)
		message_done(c, ch, msg);
}

/*
 * A publisher's channel is open again on the new connection (and in confirm mode again):
 * resume it. Confirm modes send again every message without an outcome, from released;
 * the new channel's delivery tags start at 1, so tag t is now seq t + tag_base. Best
 * effort cannot resend (its ring is released as it is sent); recover() has dropped the
 * rest of a message the loss cut.
 */
static void pub_resume(struct salvo_publisher *pub)
{
	pub->ch->recovering = false;
	if (pub->slots) {
		uint64_t first = pub->win.first, next = sv_confirm_next_tag(&pub->win);

		sv_ring_rewind(&pub->ring);
		pub->tag_base = first - 1;
		pub->resent_until = next - 1;
		stat_add(&pub->ctr.resent, next - first);
	}
}

/* A basic.ack or basic.nack from the broker, for a confirm-mode publisher's channel. */
static void confirm_settle(salvo_client *c, salvo_channel *ch, uint64_t tag, bool multiple,
			   bool nack)
{
	struct salvo_publisher *pub = ch->pub;

	/* A publisher detached while the channel closes no longer tracks its messages; a
	 * channel put in confirm mode with salvo_confirm_select has no publisher at all. */
	if (!pub || !pub->slots)
		return;
	/* After a reconnection the new channel numbers from 1 again: seq = tag + tag_base. */
	if (tag)
		tag += pub->tag_base;
	if (sv_confirm_settle(&pub->win, tag, multiple, nack)) {
		/* A message sent again after a reconnection may have been settled on the old
		 * connection already: its second ack settles nothing, and that is fine. */
		if (tag && tag <= pub->resent_until)
			return;
		protocol_error(c, 503, "basic.%s for delivery tag %llu%s on channel %u, which has "
			       "no such message awaiting its confirm",
			       nack ? "nack" : "ack", (unsigned long long)tag,
			       multiple ? " (multiple)" : "", ch->id);
		return;
	}
	pub->drain_due = true;
}

/* A basic.return: its content header (next) names the message; the body is dropped. */
static void start_return(salvo_client *c, salvo_channel *ch, const struct sv_basic_return *a)
{
	struct sv_return *r;

	ch->returning_seen = true;
	if (!ch->pub)
		return;
	r = calloc(1, sizeof *r);
	if (!r) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "out of memory receiving a basic.return");
		conn_fail(c, &e);
		return;
	}
	char text[80], exchange[80], routing_key[80];
	sv_error_set(&r->err, SALVO_ERR_RETURNED, SALVO_ERROR_CHANNEL,
		     "returned %u %s: exchange '%s', routing key '%s'", a->reply_code,
		     sv_text_escape(text, sizeof text, a->reply_text.ptr, a->reply_text.len),
		     sv_text_escape(exchange, sizeof exchange, a->exchange.ptr, a->exchange.len),
		     sv_text_escape(routing_key, sizeof routing_key, a->routing_key.ptr,
				    a->routing_key.len));
	r->err.reply_code = a->reply_code;
	copy_str(r->exchange, a->exchange);
	copy_str(r->routing_key, a->routing_key);
	ch->returning = r;
}

/* The returned message's content header: find its sequence number, mark it returned. */
static void return_header(salvo_channel *ch, const struct sv_content_header *h)
{
	struct sv_return *r = ch->returning;
	struct salvo_publisher *pub = ch->pub;
	struct sv_field f;

	ch->returning = NULL;
	if (!pub) {
		free(r);
		return;
	}
	if (!pub->slots) {
		/* Best effort: counted, nobody to report it to. */
		stat_add(&pub->ctr.returned, 1);
		free(r);
		return;
	}
	if ((h->props.flags & SV_PROP_HEADERS) && sv_table_find(h->props.headers, SV_SEQ_HEADER, &f) &&
	    (f.type == SV_FIELD_I64 || f.type == SV_FIELD_U64))
		r->seq = f.type == SV_FIELD_I64 ? (uint64_t)f.v.i64 : f.v.u64;
	/* A return salvo cannot match (no stamp, or not awaiting its confirm) changes no
	 * outcome: the message's ack still comes. It is counted, not lost without a trace. */
	if (!r->seq || sv_confirm_mark_returned(&pub->win, r->seq)) {
		stat_add(&pub->ctr.returns_unmatched, 1);
		free(r);
		return;
	}
	pthread_mutex_lock(&pub->ret_lock);
	if (pub->ret_tail)
		pub->ret_tail->next = r;
	else
		pub->ret_head = r;
	pub->ret_tail = r;
	pthread_mutex_unlock(&pub->ret_lock);
}

static void channel_method(salvo_client *c, salvo_channel *ch, const struct sv_method *m)
{
	struct sv_request *req = ch->await_head;

	switch (m->id) {
	case SV_CHANNEL_CLOSE:
		channel_peer_close(c, ch, &m->a.channel_close);
		return;
	case SV_CHANNEL_FLOW: {
		struct sv_method ok = {.id = SV_CHANNEL_FLOW_OK,
				       .a.channel_flow_ok.active = m->a.channel_flow.active};
		send_method(c, ch->id, &ok);
		return;
	}
	case SV_BASIC_ACK:
		confirm_settle(c, ch, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple, false);
		return;
	case SV_BASIC_NACK:
		confirm_settle(c, ch, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple, true);
		return;
	case SV_BASIC_RETURN:
		start_return(c, ch, &m->a.basic_return);
		return;
	case SV_BASIC_DELIVER:
		start_delivery(c, ch, &m->a.basic_deliver);
		return;
	case SV_BASIC_CANCEL: {
		/* consumer_cancel_notify: the broker ended a consumer (its queue is gone). */
		struct sv_method ok = {.id = SV_BASIC_CANCEL_OK};

		cancel_consumer(c, ch, m->a.basic_cancel.consumer_tag, true);
		ok.a.basic_cancel_ok.consumer_tag = m->a.basic_cancel.consumer_tag;
		if (!m->a.basic_cancel.nowait)
			send_method(c, ch->id, &ok);
		return;
	}
	}
	if (m->id == SV_BASIC_GET_EMPTY && req && req->reply_id == SV_BASIC_GET_OK)
		m = NULL; /* the queue is empty: complete with no message */
	else if (!req || req->reply_id != m->id) {
		protocol_error(c, 505, "unexpected %s on channel %u", sv_method_name(m->id),
			       ch->id);
		return;
	}
	if (m && m->id == SV_BASIC_GET_OK) {
		/* Completed when its content has arrived (get_content). */
		start_get(c, ch, &m->a.basic_get_ok);
		return;
	}
	ch->await_head = req->next;
	if (!ch->await_head)
		ch->await_tail = NULL;
	if (m)
		take_reply(req, m);
	if (m && m->id == SV_BASIC_CONSUME_OK && req->consumer)
		register_consumer(ch, req, &m->a.basic_consume_ok);
	if (m && m->id == SV_BASIC_CANCEL_OK)
		cancel_consumer(c, ch, m->a.basic_cancel_ok.consumer_tag, false);
	if (req->resume)
		pub_resume(req->resume);
	if (req->ckpt) {
		if (req->ckpt_count > req->ckpt->be_verified)
			req->ckpt->be_verified = req->ckpt_count;
		req->ckpt->ckpt_inflight = false;
	}
	sv_request_complete(req, 0, NULL);
	if (m && m->id == SV_CHANNEL_CLOSE_OK) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_CLOSED, SALVO_ERROR_CHANNEL, "channel %u is closed",
			     ch->id);
		channel_mark_closed(ch, &e);
		fail_awaiting(ch, &e);
		channel_forget(c, ch);
	}
}

/* Connection. */

static void close_all(salvo_client *c, const salvo_error *why)
{
	struct sv_request *req, *queued;

	if (why)
		count_possibly_lost(c);
	pthread_mutex_lock(&c->lock);
	if (why)
		c->error = *why;
	atomic_store(&c->state, SV_CONN_CLOSED);
	queued = c->queue_head;
	c->queue_head = c->queue_tail = NULL;
	pthread_mutex_unlock(&c->lock);
	/* Requests held for a connection that will not come. */
	if (c->held_head) {
		c->held_tail->next = queued;
		queued = c->held_head;
		c->held_head = c->held_tail = NULL;
	}

	salvo_error closed;
	if (!why) {
		sv_error_set(&closed, SALVO_ERR_CLOSED, SALVO_ERROR_CONNECTION,
			     "the connection is closed");
		why = &closed;
	}
	while ((req = queued)) {
		queued = req->next;
		req->next = NULL;
		/* A detach is answered by the exit path with the others (detach_done): its
		 * publisher may have been handed over by a close that stopped waiting. */
		if (req->kind == SV_REQ_DETACH && !req->pub->detach)
			req->pub->detach = req;
		else
			sv_request_complete(req, why->status, why);
	}
	/* Channels report the connection's end as "closed" (a local timeout or I/O error is
	 * not something to retry on a channel), with the connection's text and kind; a
	 * broker's connection.close keeps its reply code. */
	salvo_error chan_err = *why;
	if (chan_err.status < 0)
		chan_err.status = SALVO_ERR_CLOSED;
	for (unsigned id = 1; id <= c->sess.channel_max; id++) {
		salvo_channel *ch = c->channels[id];
		if (!ch)
			continue;
		channel_mark_closed(ch, &chan_err);
		fail_awaiting(ch, &chan_err);
		c->channels[id] = NULL;
		sv_channel_put(ch);
	}
	if (c->close_req) {
		/* Closing on request ends well only through close-ok (handled by the caller). */
		sv_request_complete(c->close_req, why->status, why);
		c->close_req = NULL;
	}
	shutdown(c->sess.fd, SHUT_RDWR);
}

/*
 * Whether a lost connection is worth another: the network or the broker's restart, yes;
 * the broker refusing us (403, 530), a protocol error, or a close we asked for, no.
 */
static bool recoverable(salvo_client *c, const salvo_error *why)
{
	if (!c->set.conf.reconnect || c->close_req || atomic_load(&c->state) != SV_CONN_OPEN)
		return false;
	return why->status == SALVO_ERR_IO || why->status == SALVO_ERR_TIMEOUT ||
	       why->status == SALVO_ERR_TLS /* a record that does not decrypt: transport */ ||
	       why->status == 320 /* CONNECTION_FORCED */ || why->status == 541 /* INTERNAL_ERROR */;
}

/* A connection that ends for good without the application asking: a supervisor polling
 * events learns it as any loss (lost, then giving up), with the error. */
static void report_end(salvo_client *c, const salvo_error *why)
{
	salvo_event ev = {.kind = SALVO_EVENT_CONNECTION_LOST, .error = *why};

	sv_event_push(c, &ev);
	ev.kind = SALVO_EVENT_GIVING_UP;
	snprintf(ev.reason, sizeof ev.reason, "%s",
		 c->set.conf.reconnect ? "not retried: reconnection is for I/O errors, missed "
					 "heartbeats, 320 and 541"
				       : "not retried: reconnect is off");
	sv_event_push(c, &ev);
}

static void conn_fail(salvo_client *c, const salvo_error *why)
{
	if (!live(c))
		return;
	if (recoverable(c, why)) {
		/* The main loop sees the state and runs recover(). */
		c->lost = *why;
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->state, SV_CONN_RECOVERING);
		pthread_mutex_unlock(&c->lock);
		shutdown(c->sess.fd, SHUT_RDWR);
		return;
	}
	if (!c->close_req && atomic_load(&c->state) == SV_CONN_OPEN)
		report_end(c, why);
	close_all(c, why);
}

/* The broker broke the protocol: tell it why (best effort) and end the connection. */
static void protocol_error(salvo_client *c, uint16_t code, const char *fmt, ...)
{
	struct sv_method m = {.id = SV_CONNECTION_CLOSE};
	salvo_error e;
	va_list ap;

	memset(&e, 0, sizeof e);
	e.status = SALVO_ERR_PROTOCOL;
	e.kind = SALVO_ERROR_CONNECTION;
	e.reply_code = code;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	m.a.connection_close.reply_code = code;
	m.a.connection_close.reply_text =
		(struct sv_bytes){(const uint8_t *)e.text, (uint32_t)strnlen(e.text, 255)};
	send_now(c, &m);
	conn_fail(c, &e);
}

static void connection_method(salvo_client *c, const struct sv_method *m)
{
	switch (m->id) {
	case SV_CONNECTION_CLOSE: {
		struct sv_method ok = {.id = SV_CONNECTION_CLOSE_OK};
		const struct sv_connection_close *cl = &m->a.connection_close;
		salvo_error e;

		broker_error(&e, SALVO_ERROR_CONNECTION, cl->reply_code, cl->reply_text,
			     cl->class_id, cl->method_id);
		send_now(c, &ok);
		conn_fail(c, &e);
		return;
	}
	case SV_CONNECTION_CLOSE_OK:
		if (atomic_load(&c->state) == SV_CONN_CLOSING && c->close_req) {
			sv_request_complete(c->close_req, 0, NULL);
			c->close_req = NULL;
			close_all(c, NULL);
			return;
		}
		break;
	case SV_CONNECTION_BLOCKED: {
		salvo_event ev = {.kind = SALVO_EVENT_BLOCKED};
		struct sv_bytes r = m->a.connection_blocked.reason;

		/* Publishers stop sending (their rings fill and producers feel it); control
		 * frames and heartbeats go on. */
		c->blocked = true;
		c->blocked_since = sv_now_ns();
		sv_text_escape(ev.reason, sizeof ev.reason, r.ptr, r.len);
		sv_text_escape(c->blocked_reason, sizeof c->blocked_reason, r.ptr, r.len);
		sv_event_push(c, &ev);
		return;
	}
	case SV_CONNECTION_UNBLOCKED: {
		salvo_event ev = {.kind = SALVO_EVENT_UNBLOCKED};

		c->blocked = false;
		/* A send stuck through the block starts its stall clock now. */
		c->send_started_ns = sv_now_ns();
		sv_event_push(c, &ev);
		return;
	}
	}
	protocol_error(c, 503, "unexpected %s on channel 0", sv_method_name(m->id));
}

static void handle_frame(salvo_client *c, const struct sv_decoded_frame *d)
{
	struct sv_codec_error cerr;
	salvo_channel *ch;

	if (d->frame.type == SV_FRAME_HEARTBEAT)
		return;
	if (d->frame.type != SV_FRAME_METHOD ||
	    (d->u.method.id != SV_BASIC_ACK && d->u.method.id != SV_BASIC_NACK))
		c->batch_acks_only = false;
	if (d->frame.channel == 0) {
		if (d->frame.type != SV_FRAME_METHOD)
			protocol_error(c, 505, "content frame on channel 0");
		else
			connection_method(c, &d->u.method);
		return;
	}
	ch = d->frame.channel <= c->sess.channel_max ? c->channels[d->frame.channel] : NULL;
	if (!ch) {
		protocol_error(c, 504, "frame on channel %u, which is not open", d->frame.channel);
		return;
	}
	int event = sv_content_feed(&ch->content, d, &cerr);
	if (event < 0) {
		protocol_error(c, cerr.reply_code, "%s", cerr.reason);
		return;
	}
	if (d->frame.type == SV_FRAME_METHOD) {
		channel_method(c, ch, &d->u.method);
	} else if (ch->returning_seen) {
		if (d->frame.type == SV_FRAME_HEADER && ch->returning)
			return_header(ch, &d->u.header);
		if (event == SV_CONTENT_COMPLETE)
			ch->returning_seen = false;
	} else {
		get_content(c, ch, d, event);
	}
}

/*
 * Whether a producer waits for what the broker says: a confirm, or ring space that
 * confirms free. A ring three quarters full counts too: its producer may be about to
 * wait (it kicks this thread before it records that it waits).
 */
static bool pubs_waiting(salvo_client *c)
{
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		uint64_t used = sv_ring_head(&pub->ring) - sv_ring_released(&pub->ring);

		if (atomic_load_explicit(&pub->ev_want, memory_order_relaxed) ||
		    atomic_load_explicit(&pub->ring.waiting, memory_order_relaxed) ||
		    used > sv_ring_capacity(&pub->ring) / 4 * 3)
			return true;
	}
	return false;
}

/*
 * Decode and handle the complete frames in rbuf; keep the tail of a partial one. Decoding
 * stops, leaving the rest in rbuf (input_pending), while the consumers' queued messages
 * exceed consumer.buffer_bytes: the bound then holds within one message, whatever the
 * size of a read.
 */
static void frames(salvo_client *c)
{
	struct sv_decoded_frame d;
	size_t pos = 0;
	ssize_t n = 0;

	c->input_pending = false;
	while (live(c) && !(c->input_pending = sv_consumer_over_bound(c)) &&
	       (n = sv_reader_next(&c->reader, c->rbuf + pos, c->rlen - pos, &d)) > 0) {
		pos += (size_t)n;
		c->batch_framed = true;
		handle_frame(c, &d);
	}
	if (n < 0 && live(c)) {
		protocol_error(c, c->reader.err.reply_code, "%s", c->reader.err.reason);
		return;
	}
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
}

/*
 * amqps: decrypt what the TLS object holds into rbuf and handle it, as much as it holds
 * and the consumers' bound allows (rbuf has room while decoding goes on: a partial frame
 * is smaller than frame_max, rcap is twice that). Also run once per new connection: the
 * records that carried connection.open-ok may have brought the broker's next frames.
 */
static void tls_frames(salvo_client *c)
{
	frames(c); /* what was left undecoded first; and input_pending as of now */
	while (live(c) && !c->input_pending && c->rlen < c->rcap) {
		salvo_error e;
		size_t got = 0;
		int rc = sv_tls_read(c->sess.tls, c->rbuf + c->rlen, c->rcap - c->rlen, &got, &e);

		c->rlen += got;
		if (got)
			frames(c);
		if (rc == SALVO_ERR_CLOSED) {
			sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
				     "the broker ended the TLS session (close_notify)");
			conn_fail(c, &e);
		} else if (rc) {
			e.kind = SALVO_ERROR_CONNECTION;
			conn_fail(c, &e);
		}
		if (rc || !got)
			return;
	}
}

/*
 * Handle what a read brought (fresh bytes of it; 0 when decoding resumes after the
 * consumers drained, or for what a new TLS session already holds).
 */
static void decode_input(salvo_client *c, size_t fresh)
{
	c->batch_acks_only = true;
	c->batch_framed = false;
	if (c->sess.tls)
		tls_frames(c);
	else
		frames(c);
	/* The read's last deliveries to the consumers' queues (one wake-up per batch). */
	sv_consumer_flush(c);
	/* One drain per publisher per read: a burst of acks wakes each producer once. */
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i]->drain_due)
			pub_drain(c->pubs[i]);
	/* A small read of acks that no producer waits for: let the next ones pile up in the
	 * socket for a moment instead of waking for every few (RabbitMQ acks a publishing
	 * stream in batches of about ten, and a wake-up costs more than ten publishes). Not
	 * after a read that completed no frame: the rest of a frame, or of a TLS record, may
	 * be what someone waits for. */
	if (fresh && c->batch_acks_only && c->batch_framed && fresh < SV_RECV_HOLD_BYTES &&
	    !c->close_req && !pubs_waiting(c) && live(c))
		c->recv_hold_until = c->last_recv_ns + SV_RECV_HOLD_NS;
}

static void on_recv(salvo_client *c, int res)
{
	c->recv_inflight = false;
	if (res <= 0) {
		salvo_error e;
		if (!live(c))
			return;
		if (res == 0)
			sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
				     "the broker closed the connection");
		else
			sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION, "recv: %s",
				     strerror(-res));
		conn_fail(c, &e);
		return;
	}
	c->last_recv_ns = sv_now_ns();
	if (c->sess.tls) {
		if (sv_tls_feed(c->sess.tls, c->tls_in, (size_t)res)) {
			salvo_error e;
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory buffering TLS records");
			conn_fail(c, &e);
			return;
		}
	} else
		c->rlen += (size_t)res;
	decode_input(c, (size_t)res);
}

/* Requests. */

static void channel_await(salvo_channel *ch, struct sv_request *req)
{
	req->next = NULL;
	if (ch->await_tail)
		ch->await_tail->next = req;
	else
		ch->await_head = req;
	ch->await_tail = req;
}

static void take_method(salvo_client *c, struct sv_request *req)
{
	salvo_channel *ch = req->ch;


	if (ch && atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED) {
		sv_request_complete(req, ch->error.status, &ch->error);
		return;
	}
	if (out_append(c, req->frame, req->frame_len)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		sv_request_complete(req, e.status, &e);
		return;
	}
	if (req->reply_id == SV_CHANNEL_OPEN_OK) {
		/* The table holds a reference until the channel ends. */
		atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
		c->channels[ch->id] = ch;
		sv_content_init(&ch->content);
	}
	if (req->reply_id == SV_CHANNEL_CLOSE_OK)
		ch->close_sent = true;
	if (!req->reply_id)
		sv_request_complete(req, 0, NULL);
	else
		channel_await(ch, req);
}

static void resume(salvo_client *c, struct sv_request *req);

static void take_settles(salvo_client *c);

static void take_requests(salvo_client *c)
{
	struct sv_request *req, *next;

	pthread_mutex_lock(&c->lock);
	req = c->queue_head;
	c->queue_head = c->queue_tail = NULL;
	pthread_mutex_unlock(&c->lock);
	/* Settles pushed before these requests were queued go out first (a channel.close
	 * must not overtake the acks its caller made before it). The lock taken above makes
	 * every push that happened before a queued request visible to this exchange. */
	if (req)
		take_settles(c);

	for (; req; req = next) {
		next = req->next;
		req->next = NULL;
		/* Between connections, methods and new publishers wait for the next one (their
		 * callers' timeouts still run); closes and detaches are served at once. */
		if (atomic_load(&c->state) == SV_CONN_RECOVERING && req->kind == SV_REQ_ATTACH) {
			/* Its channel was opened on the lost connection, so it is closed: the
			 * publisher could never send. */
			salvo_error e = lost_error(c);
			sv_request_complete(req, e.status, &e);
			continue;
		}
		if (atomic_load(&c->state) == SV_CONN_RECOVERING && req->kind == SV_REQ_METHOD) {
			if (c->held_tail)
				c->held_tail->next = req;
			else
				c->held_head = req;
			c->held_tail = req;
			continue;
		}
		switch (req->kind) {
		case SV_REQ_METHOD:
			take_method(c, req);
			break;
		case SV_REQ_ATTACH:
			if (c->npubs == c->pubs_cap) {
				size_t cap = c->pubs_cap ? 2 * c->pubs_cap : 8;
				void *p = realloc(c->pubs, cap * sizeof *c->pubs);
				if (!p) {
					salvo_error e;
					sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
						     "out of memory");
					sv_request_complete(req, e.status, &e);
					break;
				}
				c->pubs = p;
				c->pubs_cap = cap;
			}
			c->pubs[c->npubs++] = req->pub;
			req->pub->ch->pub = req->pub;
			sv_request_complete(req, 0, NULL);
			break;
		case SV_REQ_DETACH:
			/* Completed by settle_pubs once the ring is quiet: the publisher's memory
			 * may be unmapped as soon as the request completes. One at a time (the
			 * publisher's claim makes a second one a bug): refused, not leaked. */
			if (req->pub->detach) {
				salvo_error e;
				sv_error_set(&e, SALVO_ERR_INVALID_STATE, SALVO_ERROR_LOCAL,
					     "the publisher is being detached already");
				sv_request_complete(req, e.status, &e);
				break;
			}
			req->pub->detach = req;
			settle_pubs(c);
			break;
		case SV_REQ_RESUME:
			resume(c, req);
			break;
		case SV_REQ_CLOSE:
			if (c->close_req) {
				/* A second close (after the first timed out) takes over; the first
				 * one's waiter has gone. */
				salvo_error e;
				sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
					     "superseded by a later close");
				sv_request_complete(c->close_req, e.status, &e);
			}
			c->close_req = req;
			break;
		}
	}
}

/* Acks, nacks and rejects from the application (consumer.c explains the batching). */

static void send_settle(salvo_client *c, uint16_t channel, const struct sv_settle *s,
			uint64_t tag, bool multiple)
{
	struct sv_method m;

	switch (s->kind) {
	case SV_SETTLE_ACK:
		m = (struct sv_method){.id = SV_BASIC_ACK, .a.basic_ack = {tag, multiple}};
		break;
	case SV_SETTLE_NACK:
		m = (struct sv_method){.id = SV_BASIC_NACK,
				       .a.basic_nack = {tag, multiple, s->requeue}};
		break;
	default:
		m = (struct sv_method){.id = SV_BASIC_REJECT, .a.basic_reject = {tag, s->requeue}};
		break;
	}
	send_method(c, channel, &m);
	stat_add(&c->cctr.settle_frames, 1);
}

/* The channel a settle is for, if it is still the opening the message came on. */
static salvo_channel *settle_channel(salvo_client *c, const struct sv_settle *s)
{
	salvo_channel *ch = s->channel <= c->sess.channel_max ? c->channels[s->channel] : NULL;

	if (!live(c) || !ch || ch->close_sent || ch->peer_closed ||
	    atomic_load_explicit(&ch->state, memory_order_relaxed) == SV_CH_CLOSED ||
	    atomic_load_explicit(&ch->generation, memory_order_relaxed) != s->generation)
		return NULL;
	return ch;
}

/*
 * The single acks recorded in [from, to) of a batch, for channel ch (NULL: all): the
 * floor moves over what is settled, and the highest single ack it passed goes out as one
 * multiple ack; those above the floor go out alone. The multiple ack is exact: every tag
 * below it is settled, and that tag itself is still unacked at the broker (RabbitMQ
 * refuses a multiple ack that finds nothing to ack). tag 0 marks a settle dealt with.
 */
static void flush_singles(salvo_client *c, salvo_channel *only, struct sv_settle *from,
			  struct sv_settle *to)
{
	struct sv_settle *s;
	salvo_channel *ch;

	for (s = from; s != to; s = s->next) {
		if (!s->tag || (only && c->channels[s->channel] != only))
			continue;
		ch = c->channels[s->channel];
		if (!ch) {
			/* the connection failed while this batch was sent (no memory) */
			s->tag = 0;
			continue;
		}
		if (ch->acked.due) {
			sv_acked_advance(&ch->acked);
			ch->acked.due = false;
		}
		if (s->tag > ch->acked.floor) {
			send_settle(c, ch->id, s, s->tag, false);
			s->tag = 0;
		} else if (s->tag > ch->acked.batch_max) {
			ch->acked.batch_max = s->tag;
		}
	}
	for (s = from; s != to; s = s->next) {
		if (!s->tag || (only && c->channels[s->channel] != only))
			continue;
		ch = c->channels[s->channel];
		if (ch && ch->acked.batch_max) {
			send_settle(c, ch->id, s, ch->acked.batch_max, true);
			ch->acked.batch_max = 0;
		}
		s->tag = 0;
	}
}

/*
 * Send what the application settled since the last loop, in its order. Single acks are
 * recorded and sent by flush_singles, at the end or before a nack, reject or multiple
 * ack of the same channel (which must come after them, as the application sent them).
 */
static void take_settles(salvo_client *c)
{
	struct sv_settle *list = sv_settle_take(c), *s;
	salvo_channel *ch;

	for (s = list; s; s = s->next) {
		ch = settle_channel(c, s);
		if (!ch) {
			stat_add(&c->cctr.settles_dropped, 1);
			s->tag = 0;
		} else if (s->kind != SV_SETTLE_ACK || s->multiple) {
			flush_singles(c, ch, list, s);
			send_settle(c, ch->id, s, s->tag, s->multiple);
			sv_acked_settle(&ch->acked, s->tag, s->multiple);
			s->tag = 0;
		} else if (!sv_acked_settle(&ch->acked, s->tag, false)) {
			send_settle(c, ch->id, s, s->tag, false);
			s->tag = 0;
		} else {
			ch->acked.due = true;
		}
	}
	flush_singles(c, NULL, list, NULL);
	sv_settle_free_all(list);
}

/* Sending. */

static bool iov_add(salvo_client *c, const uint8_t *p, size_t n, struct salvo_publisher *pub)
{
	if (!n)
		return true;
	if (c->niov == c->iov_cap) {
		size_t cap = c->iov_cap ? 2 * c->iov_cap : 16;
		if (cap > IOV_MAX)
			return false;
		void *iov = realloc(c->iov, cap * sizeof *c->iov);
		if (!iov)
			return false;
		c->iov = iov;
		void *src = realloc(c->iov_pub, cap * sizeof *c->iov_pub);
		if (!src)
			return false;
		c->iov_pub = src;
		c->iov_cap = cap;
	}
	c->iov[c->niov] = (struct iovec){(void *)p, n};
	c->iov_pub[c->niov] = pub;
	c->niov++;
	return true;
}

/* What of a publisher's ring the next send must or may carry: all pending messages while
 * its channel is open and it stays attached; otherwise only the rest of a message a short
 * write cut (the broker would take anything else on the channel for its missing frames). */
static size_t pub_ready(salvo_client *c, struct salvo_publisher *pub, const uint8_t **p,
			bool *to_head)
{
	size_t n = sv_ring_pending(&pub->ring, p);
	uint64_t sent = sv_ring_sent(&pub->ring);

	/* Paused after a reconnection until the hooks ran and the channel is back, and while
	 * the broker says it is blocked. */
	*to_head = !pub_closed(pub) && !pub->detach && !c->paused && !c->blocked &&
		   !pub->ch->recovering;
	if (*to_head)
		return n;
	return pub->must_end > sent ? (size_t)(pub->must_end - sent) : 0;
}

static void add_pub(salvo_client *c, struct salvo_publisher *pub)
{
	const uint8_t *p;
	uint64_t lo = 0;
	bool to_head;
	size_t n;

	/* Best effort counts messages by the producer's count, not by walking frames (a read
	 * of every frame header): the producer counts a message just before it commits it
	 * (both stores released), so read after the head's acquire the count is at least the
	 * number of messages below that head; read (acquire) before, less the one that may
	 * be counted and not yet committed, at most. */
	if (!pub->slots) {
		lo = atomic_load_explicit(&pub->published, memory_order_acquire);
		lo -= lo > 0;
	}
	n = pub_ready(c, pub, &p, &to_head);
	if (!n || !iov_add(c, p, n, pub))
		return;
	pub->in_flight = true;
	if (!pub->slots) {
		pub->snap_lo = lo;
		pub->snap_hi = atomic_load_explicit(&pub->published, memory_order_relaxed);
		/* Only a span that ends at the head lo was read before is described by it. */
		pub->snap_end = to_head ? sv_ring_sent(&pub->ring) + n : 0;
	}
}

/* Everything ready, in an order that never splits a frame: the source a short write
 * stopped in, then control frames, then each publisher's pending messages. */
static void gather(salvo_client *c)
{
	settle_pubs(c);
	c->niov = 0;
	if (c->partial_out)
		iov_add(c, c->out + c->out_sent, c->out_len - c->out_sent, NULL);
	else if (c->partial_pub)
		add_pub(c, c->partial_pub);
	if (!c->partial_out)
		iov_add(c, c->out + c->out_sent, c->out_len - c->out_sent, NULL);
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i] != c->partial_pub)
			add_pub(c, c->pubs[i]);
}

static bool rings_idle(salvo_client *c)
{
	for (size_t i = 0; i < c->npubs; i++) {
		const uint8_t *p;
		bool to_head;
		if (pub_ready(c, c->pubs[i], &p, &to_head))
			return false;
	}
	return true;
}

/*
 * Where the message holding ring position pos ends. from is a message boundary at or
 * before pos, limit one after it (the end of what was sent), and every byte in between is
 * committed, so the frame headers can be read: a publisher's ring holds only whole
 * messages, each a basic.publish method frame followed by its content frames.
 */
static uint64_t message_end(const struct sv_ring *r, uint64_t from, uint64_t pos, uint64_t limit)
{
	while (from < pos)
		from += SV_FRAME_OVERHEAD + sv_load32(sv_ring_at(r, from) + 3);
	while (from < limit && *sv_ring_at(r, from) != SV_FRAME_METHOD)
		from += SV_FRAME_OVERHEAD + sv_load32(sv_ring_at(r, from) + 3);
	return from;
}

/* The kernel took take of the len bytes this publisher had in the send. */
static void pub_sent(salvo_client *c, struct salvo_publisher *pub, size_t take, size_t len)
{
	uint64_t s0 = sv_ring_sent(&pub->ring), s1 = s0 + take;

	pub->in_flight = false;
	/* Best effort: bounds of how many messages are now sent, from the snapshot of the
	 * producer's count taken with this span (add_pub). */
	if (!pub->slots && take) {
		if (s1 == pub->snap_end)
			pub->be_lo = pub->snap_lo;
		if (pub->snap_hi > pub->be_hi)
			pub->be_hi = pub->snap_hi;
	}
	/* Find where a cut message ends before releasing: once released, the producer may
	 * overwrite the frame headers the walk reads. s0 is a message boundary unless an
	 * earlier cut left must_end beyond it. */
	if (take < len && pub->must_end <= s1)
		pub->must_end = message_end(&pub->ring, pub->must_end > s0 ? pub->must_end : s0,
					    s1, s0 + len);
	sv_ring_mark_sent(&pub->ring, take);
	if (pub->slots) {
		/* Confirm modes: the space is released as confirms arrive (pub_drain), or here
		 * when they came before a resend reached them. */
		tag_sent(pub, s1);
		pub_release(pub);
	} else
		/* Best effort: the space is reusable as soon as the kernel is done with it. */
		sv_ring_release(&pub->ring, s1);
	if (take < len && pub->must_end > s1)
		c->partial_pub = pub;
}

/*
 * Best effort has no confirms, so a lost connection would leave no way to say what it
 * cost. About once a millisecond while a best-effort publisher sends, a channel.flow
 * (active=true, which changes nothing) goes on its channel ahead of this send's messages:
 * the broker handles a channel's frames in order, so its flow-ok proves every message
 * sent before it was handled. At a loss, what was sent after the last proof is counted as
 * possibly lost (salvo_pub_stats.possibly_lost). One checkpoint in flight per publisher.
 */
#define SV_CKPT_NS (1000u * 1000u)

static void checkpoints(salvo_client *c)
{
	uint64_t now = 0;

	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		struct sv_method flow = {.id = SV_CHANNEL_FLOW, .a.channel_flow.active = true};
		struct sv_request *req;
		struct sv_codec_error cerr;
		uint8_t buf[32];
		size_t n;

		/* Not while the channel awaits a reply: RabbitMQ refuses any method during a
		 * tx.commit with 504 "unexpected command while processing 'tx.commit'". */
		if (pub->slots || pub->ckpt_inflight || pub->be_lo <= pub->be_verified ||
		    pub_closed(pub) || pub->detach || c->paused || pub->ch->recovering ||
		    pub->ch->close_sent || pub->ch->await_head)
			continue;
		if (!now)
			now = sv_now_ns();
		if (now - pub->ckpt_last_ns < SV_CKPT_NS)
			continue;
		req = sv_request_new(SV_REQ_METHOD);
		n = sv_frame_put_method(buf, sizeof buf, pub->ch->id, &flow, &cerr);
		if (!req || !n || out_append(c, buf, n)) {
			free(req); /* a checkpoint is worth no failure: the next one may do */
			continue;
		}
		atomic_store(&req->refs, 1); /* nobody waits for it */
		atomic_fetch_add_explicit(&pub->ch->refs, 1, memory_order_relaxed);
		req->ch = pub->ch;
		req->reply_id = SV_CHANNEL_FLOW_OK;
		req->ckpt = pub;
		req->ckpt_count = pub->be_lo;
		channel_await(pub->ch, req);
		pub->ckpt_inflight = true;
		pub->ckpt_last_ns = now;
	}
}

/* What a lost connection may have cost best-effort publishers: at most what was sent
 * after the last checkpoint. The next connection starts from what was surely sent. */
static void count_possibly_lost(salvo_client *c)
{
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];

		if (!pub->slots && pub->be_hi > pub->be_verified)
			stat_add(&pub->ctr.possibly_lost, pub->be_hi - pub->be_verified);
		/* Counted once: a message counted here and sent again on the next connection
		 * is not counted again there. */
		if (pub->be_hi > pub->be_verified)
			pub->be_verified = pub->be_hi;
		pub->ckpt_inflight = false;
	}
}

/* gather(), and once everything queued before a close has gone: connection.close. */
static void gather_all(salvo_client *c)
{
	checkpoints(c);
	gather(c);
	if (!c->niov && c->close_req && atomic_load(&c->state) == SV_CONN_OPEN) {
		struct sv_method m = {.id = SV_CONNECTION_CLOSE,
				      .a.connection_close = {200, SV_BYTES("closed by the application"),
							     0, 0}};
		send_method(c, 0, &m);
		pthread_mutex_lock(&c->lock);
		atomic_store(&c->state, SV_CONN_CLOSING);
		pthread_mutex_unlock(&c->lock);
		gather(c);
	}
}

/*
 * The kernel, or for amqps the TLS layer, took the first n bytes of the gathered sources:
 * advance each (a publisher's sent, the control buffer) and let confirms release space.
 */
static void consumed(salvo_client *c, size_t n)
{
	c->partial_pub = NULL;
	c->partial_out = false;
	for (size_t i = 0; i < c->niov; i++) {
		size_t len = c->iov[i].iov_len, take = n < len ? n : len;
		struct salvo_publisher *pub = c->iov_pub[i];

		if (pub) {
			pub_sent(c, pub, take, len);
		} else {
			c->out_sent += take;
			/* possibly mid-frame: the control frames lead the next send */
			c->partial_out = take && take < len;
		}
		n -= take;
	}
	c->niov = 0;
	settle_pubs(c);
	memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
	c->out_len -= c->out_sent;
	c->out_sent = 0;
}

static void submit_send(salvo_client *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);

	if (c->sess.tls)
		io_uring_prep_send(sqe, c->sess.fd, c->tls_out + c->tls_out_sent,
				   c->tls_out_len - c->tls_out_sent, MSG_NOSIGNAL);
	else {
		c->msg = (struct msghdr){.msg_iov = c->iov, .msg_iovlen = c->niov};
		io_uring_prep_sendmsg(sqe, c->sess.fd, &c->msg, MSG_NOSIGNAL);
	}
	io_uring_sqe_set_data64(sqe, UD_SEND);
	c->send_inflight = true;
	c->send_started_ns = sv_now_ns();
}

/*
 * amqps: encrypt up to SV_TLS_BATCH bytes of what is gathered into full records (the
 * sources are advanced at once: their bytes are in the records now), and move every
 * record waiting in the TLS object, ours and its own (a key update), into tls_out.
 * Returns false after a failure (the connection is failed).
 */
static bool tls_encrypt(salvo_client *c)
{
	size_t taken = 0, want;
	salvo_error e;
	int rc = 0;

	/* A sticky close_notify leaves e untouched: say so rather than pass garbage on. */
	sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION,
		     "the broker ended the TLS session (close_notify)");
	gather_all(c);
	if (c->niov)
		rc = sv_tls_write(c->sess.tls, c->iov, (int)c->niov, SV_TLS_BATCH, &taken, &e);
	consumed(c, taken);
	if (rc) {
		e.kind = SALVO_ERROR_CONNECTION;
		conn_fail(c, &e);
		return false;
	}
	want = sv_tls_pending(c->sess.tls);
	if (want > c->tls_out_cap) {
		uint8_t *nb = realloc(c->tls_out, want);
		if (!nb) {
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory for %zu bytes of TLS records", want);
			conn_fail(c, &e);
			return false;
		}
		c->tls_out = nb;
		c->tls_out_cap = want;
	}
	c->tls_out_len = sv_tls_take(c->sess.tls, c->tls_out, c->tls_out_cap);
	c->tls_out_sent = 0;
	return true;
}

static void start_send(salvo_client *c)
{
	if (!c->sess.tls) {
		gather_all(c);
		if (c->niov)
			submit_send(c);
		return;
	}
	/* amqps: the rest of the records a short write left, else new ones. */
	if (c->tls_out_sent == c->tls_out_len && !tls_encrypt(c))
		return;
	if (c->tls_out_sent < c->tls_out_len)
		submit_send(c);
}

static void on_send(salvo_client *c, int res)
{
	c->send_inflight = false;
	if (c->sess.tls) {
		if (res > 0)
			c->tls_out_sent += (size_t)res;
	} else
		consumed(c, res > 0 ? (size_t)res : 0);
	/* Append the control frames queued while the kernel read the buffer. */
	if (c->out_next_len) {
		if (out_append(c, c->out_next, c->out_next_len)) {
			salvo_error e;
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory queueing control frames");
			conn_fail(c, &e);
		}
		c->out_next_len = 0;
	}
	if (res > 0) {
		c->last_send_ns = sv_now_ns();
		c->sent_lately = true;
	}
	if (res < 0 && live(c)) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_IO, SALVO_ERROR_CONNECTION, "send: %s", strerror(-res));
		conn_fail(c, &e);
	}
}

/* Timers. */


static uint64_t heartbeat_ns(const salvo_client *c)
{
	return (uint64_t)c->sess.heartbeat * 1000000000u;
}

/* blocked_timeout: a block that lasts too long ends the connection. Returns the deadline
 * (0: none). */
static uint64_t blocked_deadline(salvo_client *c, uint64_t now)
{
	uint64_t limit = (uint64_t)c->set.conf.blocked_timeout * 1000000u;

	if (!c->blocked || !limit)
		return 0;
	if (now - c->blocked_since >= limit) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "blocked by the broker for %u ms (%s): blocked_timeout",
			     c->set.conf.blocked_timeout, c->blocked_reason);
		/* Not a loss to recover from: the broker is up and refusing. */
		close_all(c, &e);
		return 0;
	}
	return c->blocked_since + limit;
}

static uint64_t heartbeats(salvo_client *c, uint64_t now)
{
	uint64_t hb = heartbeat_ns(c);

	if (!hb)
		return 0;
	/* While we hold reads for the consumers, the broker's frames wait in the socket:
	 * its silence is ours. The count starts again when reading resumes. */
	if (atomic_load_explicit(&c->reads_held, memory_order_relaxed) && !c->recv_inflight)
		c->last_recv_ns = now;
	if (now - c->last_recv_ns > 2 * hb) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "no frame from the broker for %u s (heartbeat %u s): connection dead",
			     2 * c->sess.heartbeat, c->sess.heartbeat);
		conn_fail(c, &e);
		return 0;
	}
	/* A send makes no progress while the socket's buffers are full: the broker reads
	 * nothing. Unless it said it blocks us, that long is a dead broker whatever its
	 * heartbeats say (RabbitMQ's send_timeout treats a silent client the same way). */
	if (c->send_inflight && !c->blocked && now - c->send_started_ns > 2 * hb) {
		salvo_error e;
		sv_error_set(&e, SALVO_ERR_TIMEOUT, SALVO_ERROR_CONNECTION,
			     "the broker has read nothing for %u s (2 x heartbeat) without "
			     "blocking the connection: connection dead",
			     2 * c->sess.heartbeat);
		conn_fail(c, &e);
		return 0;
	}
	if (now - c->last_send_ns >= hb / 2 && !c->send_inflight) {
		uint8_t hbf[SV_HEARTBEAT_FRAME_SIZE];
		sv_frame_put_heartbeat(hbf);
		out_append(c, hbf, sizeof hbf);
		c->last_send_ns = now; /* don't queue another while this one waits */
	}
	uint64_t dead = c->last_recv_ns + 2 * hb + 1;
	/* While a send is in flight no heartbeat is due (it would queue behind the send). */
	if (c->send_inflight) {
		uint64_t stuck = c->send_started_ns + 2 * hb + 1;
		return stuck < dead && !c->blocked ? stuck : dead;
	}
	uint64_t next_send = c->last_send_ns + hb / 2;
	return next_send < dead ? next_send : dead;
}

static bool queue_empty(salvo_client *c)
{
	bool empty;
	pthread_mutex_lock(&c->lock);
	empty = c->queue_head == NULL;
	pthread_mutex_unlock(&c->lock);
	return empty;
}

static void arm(salvo_client *c, uint64_t now)
{
	struct io_uring_sqe *sqe;

	if (c->recv_hold_until && (now >= c->recv_hold_until || pubs_waiting(c)))
		c->recv_hold_until = 0;
	/* The application has taken enough: go on. Until decoding stops at the bound with
	 * the hold recorded (reads_held), which is what makes the application's next take
	 * wake this thread: a decode that refills past the bound must not leave it unset. */
	while (c->input_pending && live(c) && !sv_consumer_reads_should_hold(c))
		decode_input(c, 0);
	if (!c->recv_inflight && !c->recv_hold_until && live(c) && !c->input_pending &&
	    !sv_consumer_reads_should_hold(c)) {
		sqe = io_uring_get_sqe(&c->uring);
		if (c->sess.tls)
			io_uring_prep_recv(sqe, c->sess.fd, c->tls_in, SV_TLS_IN_SIZE, 0);
		else
			io_uring_prep_recv(sqe, c->sess.fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		io_uring_sqe_set_data64(sqe, UD_RECV);
		c->recv_inflight = true;
	}
	if (!c->wake_inflight) {
		sqe = io_uring_get_sqe(&c->uring);
		io_uring_prep_read(sqe, c->wake_fd, &c->wake_value, sizeof c->wake_value, 0);
		io_uring_sqe_set_data64(sqe, UD_WAKE);
		c->wake_inflight = true;
	}
}

static void reap(salvo_client *c)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&c->uring, head, cqe)
	{
		int res = cqe->res;
		switch (io_uring_cqe_get_data64(cqe)) {
		case UD_SEND:
			on_send(c, res);
			break;
		case UD_RECV:
			on_recv(c, res);
			break;
		case UD_WAKE:
			c->wake_inflight = false;
			break;
		}
		n++;
	}
	io_uring_cq_advance(&c->uring, n);
}

/* Recovery. */

/*
 * Reopen a publisher's channel, with the same number (its ring holds frames that name
 * it), and put it back in confirm mode: requests of the I/O thread's own, pipelined; the
 * last one's reply resumes the publisher (pub_resume).
 */
static void reopen(salvo_client *c, struct salvo_publisher *pub)
{
	struct sv_method open = {.id = SV_CHANNEL_OPEN}, select = {.id = SV_CONFIRM_SELECT};
	struct sv_method *steps[2] = {&open, pub->slots ? &select : NULL};
	uint32_t replies[2] = {SV_CHANNEL_OPEN_OK, SV_CONFIRM_SELECT_OK};
	salvo_channel *ch = pub->ch;

	sv_content_init(&ch->content);
	/* A new opening: delivery tags start again. */
	atomic_store_explicit(&ch->generation, atomic_fetch_add(&c->channel_serial, 1) + 1,
			      memory_order_relaxed);
	sv_acked_free(&ch->acked);
	sv_acked_init(&ch->acked);
	for (int i = 0; i < 2 && steps[i]; i++) {
		struct sv_request *req = sv_request_new(SV_REQ_METHOD);
		uint8_t buf[64];
		struct sv_codec_error cerr;
		size_t n = sv_frame_put_method(buf, sizeof buf, ch->id, steps[i], &cerr);

		if (!req || !n || out_append(c, buf, n)) {
			salvo_error e;
			free(req);
			sv_error_set(&e, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
				     "out of memory reopening channel %u", ch->id);
			conn_fail(c, &e);
			return;
		}
		atomic_store(&req->refs, 1); /* nobody waits for it */
		atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
		req->ch = ch;
		req->reply_id = replies[i];
		req->resume = (i == 1 || !pub->slots) ? pub : NULL;
		channel_await(ch, req);
	}
}

/* The hooks ran (or there were none): reopen the publishers' channels. */
static void resume(salvo_client *c, struct sv_request *req)
{
	int status = req ? req->status : 0;

	if (req && req->generation != c->generation) {
		/* The hooks of a connection lost since: the current one has its own. */
		sv_request_complete(req, 0, NULL);
		return;
	}
	if (req) {
		salvo_error e = req->err;
		sv_request_complete(req, 0, NULL);
		if (status && live(c)) {
			/* A hook failed: this connection is not ready; try again. */
			e.status = SALVO_ERR_IO;
			e.kind = SALVO_ERROR_CONNECTION;
			conn_fail(c, &e);
			return;
		}
	}
	if (!live(c))
		return;
	c->paused = false;
	for (size_t i = 0; i < c->npubs; i++)
		if (c->pubs[i]->ch->recovering)
			reopen(c, c->pubs[i]);
}

static void *hook_main(void *arg)
{
	salvo_client *c = arg;
	uint64_t generation = c->hook_generation;
	struct sv_request *req = sv_request_new(SV_REQ_RESUME);
	salvo_error err;

	memset(&err, 0, sizeof err);
	if (req) {
		req->generation = generation;
		req->status = sv_run_hooks(c, &err);
		req->err = err;
		atomic_store(&req->refs, 1); /* the I/O thread's: nobody waits */
		if (sv_request_submit(c, req, NULL))
			free(req); /* closed meanwhile */
	}
	sv_client_put(c);
	return NULL;
}

/* Wait delay_ms while taking requests; false if the application closed the client. */
static bool backoff_wait(salvo_client *c, uint64_t delay_ms)
{
	uint64_t end = sv_now_ns() + delay_ms * 1000000u;

	for (;;) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		uint64_t now;

		take_requests(c);
		take_settles(c);
		settle_pubs(c);
		if (c->close_req)
			return false;
		now = sv_now_ns();
		if (now >= end)
			return true;
		if (!c->wake_inflight) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&c->uring);
			io_uring_prep_read(sqe, c->wake_fd, &c->wake_value, sizeof c->wake_value, 0);
			io_uring_sqe_set_data64(sqe, UD_WAKE);
			c->wake_inflight = true;
		}
		ts.tv_sec = (long long)((end - now) / 1000000000u);
		ts.tv_nsec = (long long)((end - now) % 1000000000u);
		io_uring_submit_and_wait_timeout(&c->uring, &cqe, 1, &ts, NULL);
		reap(c);
	}
}

static void give_up(salvo_client *c, const salvo_error *why)
{
	salvo_event ev = {.kind = SALVO_EVENT_GIVING_UP, .error = *why};

	sv_event_push(c, &ev);
	/* close_all expects a state it may end. */
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->state, SV_CONN_OPEN);
	pthread_mutex_unlock(&c->lock);
	close_all(c, why);
}

/*
 * The connection is lost and worth another (conn_fail): let the old socket's operations
 * finish, close every channel but the publishers', reconnect with backoff, then run the
 * on-connect hooks on a thread of their own and resume the publishers.
 */
static void recover(salvo_client *c)
{
	salvo_event ev = {.kind = SALVO_EVENT_CONNECTION_LOST, .error = c->lost};
	salvo_error chan_err = lost_error(c), err;
	struct sv_session sess;
	uint64_t delay = c->set.conf.reconnect_initial_delay;
	unsigned attempt;

	sv_event_push(c, &ev);
	shutdown(c->sess.fd, SHUT_RDWR);
	while (c->recv_inflight || c->send_inflight) {
		io_uring_submit_and_wait(&c->uring, 1);
		reap(c);
	}
	{
		int fd = c->sess.fd;
		pthread_mutex_lock(&c->lock);
		c->sess.fd = -1; /* stop_io must not shut down a reused number */
		pthread_mutex_unlock(&c->lock);
		close(fd);
		/* Records of the old session, sent or not, mean nothing to the next one. */
		sv_tls_free(c->sess.tls);
		c->sess.tls = NULL;
		c->tls_out_len = c->tls_out_sent = 0;
	}
	/* A message cut by the loss cannot be finished on a new channel: confirm modes
	 * resend it whole from released; best effort drops its rest. */
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		uint64_t sent = sv_ring_sent(&pub->ring);

		if (!pub->slots && pub->must_end > sent) {
			sv_ring_mark_sent(&pub->ring, (size_t)(pub->must_end - sent));
			sv_ring_release(&pub->ring, pub->must_end);
		}
		pub->must_end = 0;
	}
	c->rlen = 0;
	c->input_pending = false;
	c->out_len = c->out_sent = c->out_next_len = 0;
	c->partial_out = false;
	c->partial_pub = NULL;
	c->recv_hold_until = 0;
	c->blocked = false;
	count_possibly_lost(c);

	/* Channels: publishers' wait for the new connection; the application's end here. */
	for (unsigned id = 1; id <= c->sess.channel_max; id++) {
		salvo_channel *ch = c->channels[id];

		if (!ch)
			continue;
		fail_awaiting(ch, &chan_err);
		free(ch->returning);
		ch->returning = NULL;
		ch->returning_seen = false;
		if (ch->pub && !ch->pub->detach && !pub_closed(ch->pub)) {
			/* Consumers on a publisher's channel (salvo_publisher_channel) are gone
			 * with the broker's side of it. */
			end_consumers(ch, &chan_err);
			ch->recovering = true;
			/* Its delivery tags died with the connection: acks of them are refused
			 * from now on, not sent before the channel is reopened (hooks may run
			 * first) or on the reopened channel. */
			atomic_store_explicit(&ch->generation,
					      atomic_fetch_add(&c->channel_serial, 1) + 1,
					      memory_order_relaxed);
			ch->close_sent = ch->peer_closed = false;
			continue;
		}
		channel_mark_closed(ch, &chan_err);
		channel_forget(c, ch);
	}
	settle_pubs(c);

	for (attempt = 1;; attempt++) {
		/* Exponential, with jitter: between half the delay and all of it. */
		uint64_t wait = delay / 2 + (uint64_t)rand() % (delay / 2 + 1);

		ev = (salvo_event){.kind = SALVO_EVENT_RECONNECTING, .attempt = attempt,
				   .delay_ms = (unsigned)wait, .error = c->lost};
		sv_event_push(c, &ev);
		if (!backoff_wait(c, wait)) {
			give_up(c, &c->lost);
			return;
		}
		memset(&err, 0, sizeof err);
		if (sv_connect_any(&c->set, &sess, &c->next_endpoint, &err) == 0)
			break;
		if (err.status == 403 || err.status == 530 ||
		    (c->set.conf.reconnect_max_attempts &&
		     attempt >= c->set.conf.reconnect_max_attempts)) {
			give_up(c, &err);
			return;
		}
		delay = delay * 2 > c->set.conf.reconnect_max_delay ? c->set.conf.reconnect_max_delay
								    : delay * 2;
	}
	/* The rings hold frames cut to the first connection's frame_max, on their channels. */
	if (sess.frame_max < c->session_frame_max || sess.channel_max < c->sess.channel_max) {
		sv_error_set(&err, SALVO_ERR_LIMIT, SALVO_ERROR_CONNECTION,
			     "the broker now allows frame_max %u and channel_max %u, below the "
			     "first connection's %u and %u",
			     sess.frame_max, sess.channel_max, c->session_frame_max,
			     c->sess.channel_max);
		close(sess.fd);
		sv_tls_free(sess.tls);
		give_up(c, &err);
		return;
	}
	sess.channel_max = c->sess.channel_max; /* the tables are sized for it */
	pthread_mutex_lock(&c->lock);
	c->sess = sess;
	pthread_mutex_unlock(&c->lock);
	sv_reader_init(&c->reader, c->sess.frame_max);
	c->last_send_ns = c->last_recv_ns = sv_now_ns();
	atomic_fetch_add(&c->reconnects, 1);
	c->generation++;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->state, SV_CONN_OPEN);
	/* What waited for this connection goes first. */
	if (c->held_head) {
		c->held_tail->next = c->queue_head;
		if (!c->queue_head)
			c->queue_tail = c->held_tail;
		c->queue_head = c->held_head;
		c->held_head = c->held_tail = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	{
		size_t ep = (c->next_endpoint + c->set.conf.n_endpoints - 1) % c->set.conf.n_endpoints;
		ev = (salvo_event){.kind = SALVO_EVENT_RECONNECTED, .attempt = attempt};
		snprintf(ev.endpoint, sizeof ev.endpoint, "%s:%u", c->set.conf.endpoints[ep].host,
			 c->set.conf.endpoints[ep].port);
		sv_event_push(c, &ev);
	}
	if (c->sess.tls) {
		decode_input(c, 0);
		if (!live(c))
			return; /* lost again: the main loop recovers once more */
	}
	if (c->set.conf.n_hooks) {
		pthread_t t;

		c->paused = true;
		c->hook_generation = c->generation; /* read by the new thread before it runs */
		atomic_fetch_add(&c->refs, 1);
		if (pthread_create(&t, NULL, hook_main, c) == 0) {
			pthread_detach(t);
			return;
		}
		atomic_fetch_sub(&c->refs, 1);
		sv_error_set(&err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_CONNECTION,
			     "cannot start a thread for the on-connect hooks");
		give_up(c, &err);
		return;
	}
	resume(c, NULL);
}

void *sv_io_main(void *arg)
{
	salvo_client *c = arg;

	if (c->sess.tls)
		decode_input(c, 0);
	while (atomic_load(&c->state) != SV_CONN_CLOSED) {
		struct __kernel_timespec ts, *tsp = NULL;
		uint64_t now, deadline;
		struct io_uring_cqe *cqe;

		if (atomic_load(&c->state) == SV_CONN_RECOVERING) {
			recover(c);
			continue;
		}
		take_requests(c);
		take_settles(c);
		now = sv_now_ns();
		deadline = heartbeats(c, now);
		if (live(c)) {
			uint64_t bd = blocked_deadline(c, now);
			if (bd && (!deadline || bd < deadline))
				deadline = bd;
		}
		if (!live(c))
			continue;
		if (!c->send_inflight)
			start_send(c);
		arm(c, now);
		if (c->recv_hold_until && (!deadline || c->recv_hold_until < deadline))
			deadline = c->recv_hold_until;
		if (!c->send_inflight) {
			/* Nothing to wait for but new work: park. Pairs with sv_client_kick (and a
			 * producer that starts waiting for a confirm kicks after saying so). */
			atomic_store_explicit(&c->parked, 1, memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			if (!queue_empty(c) || !rings_idle(c) ||
			    atomic_load_explicit(&c->settles, memory_order_relaxed) ||
			    (c->recv_hold_until && pubs_waiting(c))) {
				atomic_store_explicit(&c->parked, 0, memory_order_relaxed);
				io_uring_submit(&c->uring);
				continue;
			}
			if (c->sent_lately) {
				c->sent_lately = false;
				if (!deadline || deadline > now + SV_LINGER_NS)
					deadline = now + SV_LINGER_NS;
			}
		}
		if (deadline) {
			uint64_t left = deadline > now ? deadline - now : 0;
			ts.tv_sec = (long long)(left / 1000000000u);
			ts.tv_nsec = (long long)(left % 1000000000u);
			tsp = &ts;
		}
		io_uring_submit_and_wait_timeout(&c->uring, &cqe, 1, tsp, NULL);
		atomic_store_explicit(&c->parked, 0, memory_order_relaxed);
		reap(c);
	}

	/* Closed: let every operation in flight finish before the ring can go away. */
	shutdown(c->sess.fd, SHUT_RDWR);
	eventfd_write(c->wake_fd, 1);
	while (c->recv_inflight || c->send_inflight || c->wake_inflight) {
		io_uring_submit_and_wait(&c->uring, 1);
		reap(c);
	}
	/* Nothing is in flight any more: give every ring back (waking blocked producers) and
	 * let go of publishers being detached. Requests queued later fail at submission. */
	take_requests(c);
	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		struct sv_request *detach = pub->detach;

		sv_pub_fail(pub);
		pub->detach = NULL;
		/* From here the producer fails what it commits later itself; wake it in case it
		 * sleeps on a confirm. Before the detach completes: then it may be freed. */
		atomic_store_explicit(&pub->orphaned, 1, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		atomic_fetch_add_explicit(&pub->ev_seq, 1, memory_order_relaxed);
		sv_futex_wake_all(&pub->ev_seq);
		if (detach)
			detach_done(c, detach, pub, true);
	}
	c->npubs = 0;
	sv_dispatch_wake(c); /* closed: salvo_client_dispatch stops waiting */
	/* Release: whoever sees io_exited may unmap rings this thread was reading. */
	atomic_store_explicit(&c->io_exited, 1, memory_order_release);
	sv_futex_wake_all(&c->io_exited);
	return NULL;
}
