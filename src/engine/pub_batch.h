/* SPDX-License-Identifier: MIT */
/*
 * A batching publisher's open envelope (salvo_batch_opts): records appended in place in
 * the publisher's ring, the envelope closed by its producer (full, other properties, a
 * flush, a wait) or by the I/O thread once it has lingered. Both sides of the envelope's
 * lock are in pub_batch.c.
 */
#ifndef SALVO_PUB_BATCH_H
#define SALVO_PUB_BATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../codec/batch.h"
#include "../codec/template.h"

struct salvo_publisher;
struct salvo_client;

struct sv_batch {
	/* Fixed at setup. */
	bool on;
	uint32_t max_records;
	size_t max_bytes; /* of records, lengths included, before compression */
	size_t area;	  /* ring bytes kept for the body: max_bytes, or the codec's bound */
	uint64_t linger_ns;
	struct sv_batch_zip zip; /* codec PLAIN: none */
	uint8_t *scratch;	 /* compression's output, area bytes */

	/*
	 * The lock: the producer holds it while it opens, fills or closes the envelope;
	 * the I/O thread takes it (trylock, never waiting) to close one that has lingered.
	 * Whoever closes acts as the ring's producer for that commit: the lock orders it
	 * with the producer's reservations before and after. Below, until open_ns, under it.
	 */
	pthread_mutex_t lock;
	/* The envelope's frames before its body: basic.publish, its content header (body
	 * size, x-salvo-records and x-salvo-seq patched at close). With compression, two:
	 * env[0] says content_encoding, env[1] is sent instead when compressing did not make
	 * the body smaller. */
	struct sv_env_tpl {
		struct sv_publish_template tpl;
		uint8_t *buf;
		size_t cap;
		uint32_t count_at; /* offset of x-salvo-records' 32-bit value */
		uint32_t seq_at;   /* of x-salvo-seq's 64-bit value; 0: none */
	} env[2];
	/* The record template (the publisher's own, p->tpl) this envelope was opened for:
	 * its generation and a copy, so records with equal frames share an envelope. */
	uint64_t rec_gen;
	uint8_t *rec_tpl;
	size_t rec_tpl_len, rec_tpl_cap;
	bool tpl_valid;
	/* The open envelope: NULL when none. */
	uint8_t *dst;
	size_t used; /* record bytes in it */
	uint32_t records;
	uint64_t first_seq;

	/* When the open envelope got its first record (sv_now_ns); 0: none open. Written
	 * under the lock, read without it by the I/O thread to decide when to try it. */
	_Atomic uint64_t open_ns;
	/* Counted at close: envelopes, body bytes as sent, record bytes before compression. */
	_Atomic uint64_t envelopes, bytes, raw_bytes;
};

/*
 * At salvo_publisher_new, after the ring and window: o is the caller's options with the
 * configuration's keys filled in. Returns 0 (batching off when o->max_records is 0) or an
 * error with err filled (values out of range, an envelope that would not fit frame_max,
 * the ring or the window, no memory).
 */
int sv_batch_setup(struct salvo_publisher *p, const salvo_batch_opts *o, salvo_error *err);
void sv_batch_free(struct sv_batch *b);

/*
 * Producer: add record seq (the next sequence number, not yet assigned) with body m,
 * whose frames are p->tpl (the caller chose it). Returns 0 when added; a positive count of
 * ring bytes to wait for when a new envelope must be opened and the ring has no room (the
 * caller waits, then calls again); or a negative SALVO_ERR_* with err filled (the caller's
 * properties hold a content type or encoding, which the envelope's format takes).
 */
int64_t sv_batch_add(struct salvo_publisher *p, const salvo_msg *m, unsigned flags, uint64_t seq,
		     salvo_error *err);

/* Producer: close the open envelope, if any, and send it. Before any wait for outcomes
 * or room, and on flush and close. */
void sv_batch_close(struct salvo_publisher *p);

/*
 * I/O thread, once per turn with the connection up: close the envelopes of attached
 * publishers that have lingered (those whose lock is free; a held lock means the producer
 * is at it). Returns the earliest time another will be due, 0 for none.
 */
uint64_t sv_batch_linger(struct salvo_client *c, uint64_t now);

#endif
