/* SPDX-License-Identifier: MIT */
/*
 * A batching publisher's envelope (pub_batch.h): many records, one AMQP message, written
 * in place in the publisher's ring and closed by whichever side gets there first.
 *
 * Layout, in one ring reservation made when the envelope opens (so records are copied
 * once, into the place they are sent from): the envelope's method and content-header
 * frames (env[0]), a body frame header, room for `area` body bytes and the frame end.
 * Records go in as they come (4-byte big-endian length, bytes). At close the body is
 * compressed in place if that makes it smaller (through scratch), the sizes, the record
 * count and the x-salvo-seq stamp are patched, every record's slot gets the envelope's
 * end, and the reservation is committed to what was used.
 *
 * The lock. A record is appended by the producer with the lock held; closing needs it
 * too. The producer closes when the next record does not fit or differs, and before any
 * wait (for the window, for ring room, for a sync outcome), flush or close, so none of
 * its waits can be for records it holds itself. The I/O thread closes an envelope whose
 * first record came linger_ns ago (sv_batch_linger, each turn): it reads open_ns without
 * the lock and only then tries it, never blocking. A producer that stops publishing thus
 * leaves no record waiting: the I/O thread wakes at the deadline (the producer kicks it
 * when it opens an envelope, park.c's handshake, so a parked thread learns of it).
 *
 * The ring has one producer. Here that is whoever holds the lock: the producer reserves
 * only with it held or with no envelope open (then the I/O thread has nothing to
 * close), and a commit by the I/O thread happens under it, so the mutex's
 * acquire/release orders the two threads' uses of the ring's producer side. What the
 * I/O thread's send path needs is ordered as for any message: slots, the stamp and
 * `published` are stored before the commit's release store of head.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../codec/table.h"
#include "../codec/wire.h"
#include "engine.h"
#include "io_internal.h"
#include "park.h"
#include "props.h"

/* The body frame's header: type, channel, size. */
#define BODY_HEADER	  7
#define MAX_RECORDS_LIMIT (1u << 20)
#define DEFAULT_BYTES	  65536u
#define DEFAULT_LINGER_US 1000u

static const char records_key[] = SV_BATCH_RECORDS_HEADER;

/* Setup. */

static enum sv_batch_codec codec_of(salvo_compression c)
{
	return c == SALVO_COMPRESSION_LZ4    ? SV_BATCH_LZ4
	       : c == SALVO_COMPRESSION_ZSTD ? SV_BATCH_ZSTD
					     : SV_BATCH_PLAIN;
}

/* An option out of range: SALVO_ERR_INVALID_ARGUMENT, the message naming batching. */
#define REFUSE(err, fmt, ...)                                                                      \
	sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "batching: " fmt,         \
		     __VA_ARGS__)

int sv_batch_setup(struct salvo_publisher *p, const salvo_batch_opts *o, salvo_error *err)
{
	struct sv_batch *b = &p->batch;
	uint32_t frame_max = p->client->sess.frame_max;
	/* The content header cannot be split, the body is one frame: the body's room. */
	size_t body_max = frame_max - SV_FRAME_OVERHEAD;
	struct sv_codec_error cerr;

	if (!o->max_records)
		return 0;
	if (o->max_records > MAX_RECORDS_LIMIT)
		return REFUSE(err, "max_records %zu is above the limit of %zu", o->max_records,
			      (size_t)MAX_RECORDS_LIMIT);
	/* At most half the window: the I/O thread tells a record of the envelope it just
	 * tagged from a stale slot because an envelope never spans a whole window (io_pub.c),
	 * and two envelopes can be awaiting their confirms at once. */
	if (p->slots && o->max_records > (p->wmask + 1) / 2)
		return REFUSE(err,
			      "max_records %zu is above half the window of %zu records "
			      "(publisher.window)",
			      o->max_records, (size_t)(p->wmask + 1));
	if (o->compression > SALVO_COMPRESSION_ZSTD)
		return REFUSE(err, "unknown compression %zu (of %zu)", (size_t)o->compression,
			      (size_t)SALVO_COMPRESSION_ZSTD + 1);
	b->max_records = (uint32_t)o->max_records;
	b->max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_BYTES;
	b->linger_ns = (uint64_t)(o->linger_us ? o->linger_us : DEFAULT_LINGER_US) * 1000u;
	if (b->max_bytes < SV_BATCH_RECORD_PREFIX + 1)
		return REFUSE(err, "max_bytes %zu is below %zu", b->max_bytes,
			      (size_t)SV_BATCH_RECORD_PREFIX + 1);
	b->area = b->max_bytes;
	if (codec_of(o->compression) != SV_BATCH_PLAIN) {
		size_t bound;

		if (sv_batch_zip_init(&b->zip, codec_of(o->compression), o->level, &cerr))
			return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
					    "batching: %s", cerr.reason);
		bound = sv_batch_zip_bound(&b->zip, b->max_bytes);
		if (bound > b->area)
			b->area = bound;
		b->scratch = malloc(b->area);
		if (!b->scratch) {
			sv_batch_zip_free(&b->zip);
			return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					    "out of memory for a %zu-byte compression buffer",
					    b->area);
		}
	}
	if (b->area > body_max) {
		int rc = REFUSE(err,
				"envelopes of %zu body bytes do not fit one frame: frame_max "
				"allows %zu (lower max_bytes)",
				b->area, body_max);
		sv_batch_free(b);
		return rc;
	}
	/* Two envelopes at least, or the producer would wait for its own. */
	if (2 * (b->area + frame_max) > sv_ring_capacity(&p->ring)) {
		int rc = REFUSE(err,
				"envelopes of %zu bytes need a larger ring than %zu bytes "
				"(publisher.ring_size)",
				b->area, sv_ring_capacity(&p->ring));
		sv_batch_free(b);
		return rc;
	}
	pthread_mutex_init(&b->lock, NULL);
	b->on = true;
	return 0;
}

void sv_batch_free(struct sv_batch *b)
{
	if (b->on)
		pthread_mutex_destroy(&b->lock);
	sv_batch_zip_free(&b->zip);
	free(b->scratch);
	free(b->env[0].buf);
	free(b->env[1].buf);
	free(b->rec_tpl);
	memset(b, 0, sizeof *b);
}

/* Templates. */

/* Append one table field to w: key, type, value bytes. */
static uint8_t *put_field(uint8_t *w, const char *key, uint8_t type, size_t vlen)
{
	size_t k = strlen(key);

	*w++ = (uint8_t)k;
	memcpy(w, key, k);
	w += k;
	*w++ = type;
	memset(w, 0, vlen);
	return w + vlen;
}

/*
 * Encode the envelope's frames for records like m into e: the caller's properties with
 * the envelope's content type, content_encoding when encoding is not NULL, and headers
 * x-salvo-seq (stamp: mandatory in a confirm mode), x-salvo-records, then the caller's.
 */
static int env_template(struct salvo_publisher *p, struct sv_env_tpl *e, const salvo_msg *m,
			unsigned flags, const char *encoding, salvo_error *err)
{
	bool mandatory = flags & SALVO_MSG_MANDATORY, stamp = p->stamp && mandatory;
	struct sv_basic_props props;
	struct sv_codec_error cerr;
	uint8_t headers[64], *w = headers, *table;
	size_t ours, need, elen = strlen(m->exchange), rlen = strlen(m->routing_key);
	const uint8_t *at;
	int rc = sv_props_from_public(m->props, flags & SALVO_MSG_PERSISTENT, &props, err);

	if (rc)
		return rc;
	if (props.flags & (SV_PROP_CONTENT_TYPE | SV_PROP_CONTENT_ENCODING))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "a batching publisher's envelopes carry content_type %s and "
				    "its content_encoding: records cannot have their own (put "
				    "the records' type in a header)",
				    SV_BATCH_CONTENT_TYPE);
	if (stamp)
		w = put_field(w, SV_SEQ_HEADER, 'l', 8);
	w = put_field(w, records_key, 'I', 4);
	ours = (size_t)(w - headers);
	need = SV_PUBLISH_METHOD_MAX + SV_FRAME_OVERHEAD + 12 + sv_props_encoded_size(&props) +
	       ours + 64;
	/* The table is built after the buffer's template room: [template | table]. */
	if (e->cap < need + ours + props.headers.len) {
		uint8_t *nb = realloc(e->buf, need + ours + props.headers.len);
		if (!nb)
			return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					    "out of memory for an envelope template");
		e->buf = nb;
		e->cap = need + ours + props.headers.len;
	}
	table = e->buf + need;
	memcpy(table, headers, ours);
	if (props.headers.len)
		memcpy(table + ours, props.headers.ptr, props.headers.len);
	props.flags |= SV_PROP_HEADERS | SV_PROP_CONTENT_TYPE;
	props.headers = (struct sv_table){table, (uint32_t)(ours + props.headers.len)};
	props.content_type = (struct sv_bytes){(const uint8_t *)SV_BATCH_CONTENT_TYPE,
					       sizeof SV_BATCH_CONTENT_TYPE - 1};
	if (encoding) {
		props.flags |= SV_PROP_CONTENT_ENCODING;
		props.content_encoding =
		    (struct sv_bytes){(const uint8_t *)encoding, (uint32_t)strlen(encoding)};
	}
	if (sv_publish_template_init(
		&e->tpl, e->buf, need, p->ch->id,
		(struct sv_bytes){(const uint8_t *)m->exchange, (uint32_t)elen},
		(struct sv_bytes){(const uint8_t *)m->routing_key, (uint32_t)rlen}, mandatory,
		&props, p->client->sess.frame_max, &cerr))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s",
				    cerr.reason);
	/* Find our fields, zero values included, in the frames: nothing before them can
	 * hold those zero bytes (names and string properties are C strings). */
	size_t seq_field = stamp ? 1 + sizeof SV_SEQ_HEADER - 1 + 1 + 8 : 0;
	size_t rec_field = 1 + sizeof records_key - 1 + 1 + 4;

	at = memmem(e->tpl.bytes, e->tpl.len, headers + seq_field, rec_field);
	e->count_at = (uint32_t)(at - e->tpl.bytes + rec_field - 4);
	e->seq_at = 0;
	if (stamp) {
		at = memmem(e->tpl.bytes, e->tpl.len, headers, seq_field);
		e->seq_at = (uint32_t)(at - e->tpl.bytes + seq_field - 8);
	}
	return 0;
}

/* Whether the record frames p->tpl are those the envelope templates were made for. */
static bool same_records(struct salvo_publisher *p)
{
	struct sv_batch *b = &p->batch;

	if (!b->tpl_valid)
		return false;
	if (b->rec_gen == p->tpl_gen)
		return true;
	if (p->tpl.len != b->rec_tpl_len || memcmp(p->tpl.bytes, b->rec_tpl, p->tpl.len))
		return false;
	b->rec_gen = p->tpl_gen;
	return true;
}

static int remember_records(struct salvo_publisher *p, salvo_error *err)
{
	struct sv_batch *b = &p->batch;

	if (b->rec_tpl_cap < p->tpl.len) {
		uint8_t *nb = realloc(b->rec_tpl, p->tpl.len);
		if (!nb)
			return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
					    "out of memory for an envelope template");
		b->rec_tpl = nb;
		b->rec_tpl_cap = p->tpl.len;
	}
	memcpy(b->rec_tpl, p->tpl.bytes, p->tpl.len);
	b->rec_tpl_len = p->tpl.len;
	b->rec_gen = p->tpl_gen;
	return 0;
}

/* Closing: either side, with the lock held and an envelope open. */

static void close_locked(struct salvo_publisher *p)
{
	struct sv_batch *b = &p->batch;
	struct sv_env_tpl *e = &b->env[0];
	uint8_t *frame = b->dst + e->tpl.len, *body = frame + BODY_HEADER;
	size_t n = b->used, total;
	uint64_t last = b->first_seq + b->records - 1, end;

	if (b->zip.codec != SV_BATCH_PLAIN) {
		size_t z = sv_batch_zip_run(&b->zip, body, n, b->scratch, b->area);

		if (z && z < n) {
			memcpy(body, b->scratch, z);
			n = z;
		} else {
			/* Compressing did not help (or failed): the plain frames, whose header
			 * is shorter by the content_encoding; the body moves up to follow it. */
			struct sv_env_tpl *plain = &b->env[1];

			memcpy(b->dst, plain->tpl.bytes, plain->tpl.len);
			memmove(b->dst + plain->tpl.len + BODY_HEADER, body, n);
			e = plain;
			frame = b->dst + e->tpl.len;
			body = frame + BODY_HEADER;
		}
	}
	frame[0] = SV_FRAME_BODY;
	sv_store16(frame + 1, e->tpl.channel);
	sv_store32(frame + 3, (uint32_t)n);
	body[n] = SV_FRAME_END;
	sv_store64(b->dst + e->tpl.body_size_at, n);
	sv_store32(b->dst + e->count_at, b->records);
	if (e->seq_at)
		sv_store64(b->dst + e->seq_at, b->first_seq);
	total = e->tpl.len + BODY_HEADER + n + 1;
	end = sv_ring_head(&p->ring) + total;
	if (p->slots)
		for (uint64_t s = b->first_seq; s <= last; s++)
			atomic_store_explicit(&p->slots[s & p->wmask].end, end,
					      memory_order_relaxed);
	atomic_fetch_add_explicit(&b->envelopes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->bytes, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->raw_bytes, b->used, memory_order_relaxed);
	/* As publish_claimed does for a message: counted before the commit (io_pub.c). */
	atomic_store_explicit(&p->published, last, memory_order_release);
	sv_ring_commit(&p->ring, total);
	b->dst = NULL;
	b->used = 0;
	b->records = 0;
	atomic_store_explicit(&b->open_ns, 0, memory_order_relaxed);
}

void sv_batch_close(struct salvo_publisher *p)
{
	struct sv_batch *b = &p->batch;
	uint64_t head_before;
	bool closed = false;

	if (!b->on)
		return;
	pthread_mutex_lock(&b->lock);
	head_before = sv_ring_head(&p->ring);
	if (b->dst) {
		close_locked(p);
		closed = true;
	}
	pthread_mutex_unlock(&b->lock);
	if (closed)
		sv_kick_after_commit(p->client, sv_ring_sent(&p->ring) == head_before);
}

/* The producer's side. */

/*
 * With the lock held and no envelope open: open one for records like m, first record
 * seq, in the ring. Returns 0, the ring bytes to wait for, or a negative SALVO_ERR_*.
 */
static int64_t open_locked(struct salvo_publisher *p, const salvo_msg *m, unsigned flags,
			   uint64_t seq, salvo_error *err)
{
	struct sv_batch *b = &p->batch;
	size_t cap;

	if (!same_records(p)) {
		int rc =
		    env_template(p, &b->env[0], m, flags, sv_batch_codec_name(b->zip.codec), err);
		if (!rc && b->zip.codec != SV_BATCH_PLAIN)
			rc = env_template(p, &b->env[1], m, flags, NULL, err);
		if (!rc)
			rc = remember_records(p, err);
		b->tpl_valid = rc == 0;
		if (rc)
			return rc;
	}
	cap = b->env[0].tpl.len + BODY_HEADER + b->area + 1;
	b->dst = sv_ring_reserve(&p->ring, cap);
	if (!b->dst)
		return (int64_t)cap;
	memcpy(b->dst, b->env[0].tpl.bytes, b->env[0].tpl.len);
	b->first_seq = seq;
	atomic_store_explicit(&b->open_ns, sv_now_ns(), memory_order_relaxed);
	return 0;
}

int64_t sv_batch_add(struct salvo_publisher *p, const salvo_msg *m, unsigned flags, uint64_t seq,
		     salvo_error *err)
{
	struct sv_batch *b = &p->batch;
	size_t need = SV_BATCH_RECORD_PREFIX + m->len;
	uint64_t head_before = 0;
	bool closed = false, opened = false;
	int64_t rc = 0;

	if (need > b->max_bytes)
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "a %zu-byte record does not fit an envelope of %zu bytes "
				    "(batch max_bytes, 4 of them per record's length)",
				    m->len, b->max_bytes);
	pthread_mutex_lock(&b->lock);
	if (b->dst &&
	    (!same_records(p) || b->records == b->max_records || b->used + need > b->max_bytes)) {
		head_before = sv_ring_head(&p->ring);
		close_locked(p);
		closed = true;
	}
	if (!b->dst) {
		rc = open_locked(p, m, flags, seq, err);
		opened = rc == 0;
	}
	if (rc == 0) {
		uint8_t *w = b->dst + b->env[0].tpl.len + BODY_HEADER + b->used;

		sv_store32(w, (uint32_t)m->len);
		if (m->len)
			memcpy(w + SV_BATCH_RECORD_PREFIX, m->body, m->len);
		b->used += need;
		b->records++;
	}
	pthread_mutex_unlock(&b->lock);
	if (closed)
		sv_kick_after_commit(p->client, sv_ring_sent(&p->ring) == head_before);
	else if (opened)
		/* A parked I/O thread must learn the envelope's deadline (park.c). */
		sv_client_kick(p->client);
	return rc;
}

/* The I/O thread's side. */

uint64_t sv_batch_linger(salvo_client *c, uint64_t now)
{
	uint64_t next = 0;

	for (size_t i = 0; i < c->npubs; i++) {
		struct salvo_publisher *pub = c->pubs[i];
		struct sv_batch *b = &pub->batch;
		uint64_t open, due;

		if (!b->on)
			continue;
		open = atomic_load_explicit(&b->open_ns, memory_order_relaxed);
		/* A publisher leaving is its producer's (it closed its envelope before
		 * asking). On a channel the broker closed the envelope is closed all the same:
		 * its records then fail with the rest of what the channel held, and their
		 * outcomes come without another call from the producer. */
		if (!open || pub->detach)
			continue;
		due = open + b->linger_ns;
		if (now >= due) {
			if (pthread_mutex_trylock(&b->lock) != 0) {
				due = now; /* the producer is at it, briefly: look again soon */
			} else {
				/* The producer may have closed it, or opened another, since. */
				open = atomic_load_explicit(&b->open_ns, memory_order_relaxed);
				due = open + b->linger_ns;
				if (b->dst && now >= due)
					close_locked(pub);
				if (!b->dst)
					due = 0;
				pthread_mutex_unlock(&b->lock);
			}
		}
		if (due && (!next || due < next))
			next = due;
	}
	return next;
}
