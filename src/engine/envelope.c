/* SPDX-License-Identifier: MIT */
/*
 * Envelopes for consumers: splitting one into records, and settling it from its records.
 *
 * Splitting (I/O thread, when a delivery for a consumer that splits is complete). The
 * content header said the message is an envelope (sv_batch_classify); its body is
 * decompressed into a scratch mapping the size of consumer.batch.max_bytes, checked
 * (sv_batch_check: lengths, count, nothing left over), and then one allocation holds the
 * envelope's state, a handle (struct salvo_message, 48 bytes) per record and, when it was
 * compressed, the decompressed body, copied out of the scratch (whose size was unknown
 * until it was decompressed). A plain envelope's records point into the body as received.
 * So an envelope costs one allocation whatever its records, each record 48 bytes and the
 * bytes of its body; the records share everything else (exchange, routing key,
 * properties, channel) through the delivery, which they hold a reference on each.
 *
 * Settling. The broker knows the envelope by one delivery tag; the application settles
 * records. Each record's settle marks it (an exchange on its flag, so a record settled
 * twice is refused here rather than counted twice), folds what it asked for into the
 * envelope's verdict, then takes its records off the count of unsettled ones. The settle
 * that takes the count to zero has seen every verdict (its subtraction acquires what each
 * earlier one released) and pushes the envelope's own settle: an ack when every record
 * was acked; otherwise a reject, with requeue if any record asked for it (the whole
 * envelope comes back, its acked records too: at least once, as Pulsar does without
 * batch-index acks), without requeue if none did (a dead-letter exchange gets it).
 *
 * Multiple. salvo_message_ack(record, multiple) settles every record of its envelope up
 * to it, and every delivery of the channel before the envelope: a basic.ack with multiple
 * for the tag before it, marked quiet. An envelope whose records are still out when a
 * multiple ack covers it is settled at the broker already; its own settle, when its last
 * record is settled, is quiet too, and the I/O thread drops a quiet settle whose tags
 * are settled (sv_acked) instead of sending a tag RabbitMQ would answer with 406.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "envelope.h"

/* Scratch pages past this are given back after an envelope that used them. */
#define SCRATCH_KEEP ((size_t)1 << 20)

/* What the records' settles asked for. */
#define VERDICT_DROP	1u
#define VERDICT_REQUEUE 2u

/* The documentation (salvo.h, consumer.batch.max_bytes) says 48 bytes a record. */
_Static_assert(sizeof(struct salvo_message) == 48, "a record's handle is documented as 48 bytes");

struct sv_envelope {
	_Atomic uint32_t unsettled; /* records not yet settled */
	_Atomic uint32_t verdict;   /* VERDICT_* of the settles so far */
	uint32_t count;
	struct salvo_message rec[]; /* count of them; a compressed body's bytes follow */
};

/* The decompressed body of d in scratch, at most cap bytes. */
static int inflate(struct sv_delivery *d, const struct sv_batch_info *info, size_t cap,
		   struct sv_scratch *scratch, const uint8_t **body, size_t *len,
		   struct sv_codec_error *err)
{
	int rc;

	if (!scratch->p) {
		void *p = mmap(NULL, scratch->cap, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED)
			return sv_fail(err, 0, "no memory to decompress an envelope");
		scratch->p = p;
	}
	rc = sv_batch_inflate(info->codec, d->body, d->len, scratch->p, cap, body, len, err);
	/* A failure may have written up to cap. Pages past SCRATCH_KEEP go back to the
	 * kernel, so one large (or hostile) envelope does not stay resident. */
	if (scratch->cap > SCRATCH_KEEP && (rc || *len > SCRATCH_KEEP))
		madvise(scratch->p + SCRATCH_KEEP, scratch->cap - SCRATCH_KEEP, MADV_DONTNEED);
	return rc;
}

int sv_envelope_split(struct sv_delivery *d, const struct sv_batch_info *info, size_t max_bytes,
		      struct sv_scratch *scratch, struct salvo_message **first, uint32_t *count,
		      struct sv_codec_error *err)
{
	size_t handles, len, total, block;
	const uint8_t *body;
	struct sv_envelope *e;
	struct sv_batch_iter it;
	const uint8_t *rec;
	uint32_t rlen, n;
	uint8_t *copy;

	/* classify bounds records by SV_BATCH_RECORDS_MAX (2^29): no overflow here. */
	handles = sizeof *e + (size_t)info->records * sizeof(struct salvo_message);
	if (handles >= max_bytes)
		return sv_fail(err, 0,
			       "%llu records would take %zu bytes, over consumer.batch.max_bytes "
			       "(%zu)",
			       (unsigned long long)info->records, handles, max_bytes);
	if (info->codec == SV_BATCH_PLAIN) {
		if (d->len > max_bytes - handles)
			return sv_fail(err, 0,
				       "a %zu-byte body with %llu records is over "
				       "consumer.batch.max_bytes (%zu)",
				       d->len, (unsigned long long)info->records, max_bytes);
		body = d->body;
		len = d->len;
	} else {
		scratch->cap = max_bytes;
		if (inflate(d, info, max_bytes - handles, scratch, &body, &len, err))
			return -1;
	}
	if (sv_batch_check(body, len, info->records, err))
		return -1;

	block = handles + (info->codec == SV_BATCH_PLAIN ? 0 : len);
	e = malloc(block);
	if (!e)
		return sv_fail(err, 0, "no memory for an envelope of %zu bytes", block);
	if (info->codec != SV_BATCH_PLAIN) {
		copy = (uint8_t *)&e->rec[info->records];
		memcpy(copy, body, len);
		body = copy;
	}
	n = (uint32_t)info->records;
	atomic_init(&e->unsettled, n);
	atomic_init(&e->verdict, 0);
	e->count = n;

	/* What the records cost while queued: the delivery's, less a compressed body (freed
	 * below), plus this block. Each record counts its handle and its bytes; the first
	 * also the rest (delivery, properties), so the sum is exactly the total. */
	total = d->whole.cost - (info->codec == SV_BATCH_PLAIN ? 0 : d->len) + block;
	sv_batch_iter_init(&it, body, len);
	for (uint32_t i = 0; i < n && sv_batch_next(&it, &rec, &rlen); i++) {
		struct salvo_message *m = &e->rec[i];

		*m = (struct salvo_message){.d = d, .body = rec, .len = rlen, .index = i};
		atomic_init(&m->settled, 0);
		if (i) {
			m->cost = sizeof *m + SV_BATCH_RECORD_PREFIX + rlen;
			total -= m->cost;
		}
	}
	e->rec[0].cost = total;

	if (info->codec != SV_BATCH_PLAIN) {
		free(d->body);
		d->body = NULL;
		d->body_cap = 0;
		d->len = 0;
	}
	/* The records were published without a content type or encoding of their own
	 * (a batching publisher takes both for the envelope), and are handed out
	 * decompressed. */
	d->props.content_type = NULL;
	d->props.content_encoding = NULL;
	d->env = e;
	atomic_store_explicit(&d->refs, n, memory_order_relaxed);
	*first = &e->rec[0];
	*count = n;
	return 0;
}

uint32_t sv_envelope_count(const struct sv_envelope *e)
{
	return e->count;
}

void sv_envelope_free(struct sv_envelope *e)
{
	free(e);
}

void sv_scratch_free(struct sv_scratch *s)
{
	if (s->p)
		munmap(s->p, s->cap);
	s->p = NULL;
}

static const char *const verbs[] = {"ack", "nack", "reject"};

int sv_envelope_settle(salvo_message *m, enum sv_settle_kind kind, bool multiple, bool requeue,
		       salvo_error *err)
{
	struct sv_delivery *d = m->d;
	struct sv_envelope *e = d->env;
	uint32_t verdict = kind == SV_SETTLE_ACK ? 0 : requeue ? VERDICT_REQUEUE : VERDICT_DROP;
	uint32_t n = 1;
	int rc = sv_settle_check(d->ch, d->generation, d->delivery_tag, kind, err);

	if (rc)
		return rc;
	if (atomic_exchange_explicit(&m->settled, 1, memory_order_relaxed))
		return sv_error_set(err, SALVO_ERR_INVALID_STATE, SALVO_ERROR_LOCAL,
				    "%s of record %u of %u (delivery tag %llu): the record is "
				    "settled already",
				    verbs[kind], m->index, e->count,
				    (unsigned long long)d->delivery_tag);
	atomic_fetch_add_explicit(&d->ch->client->cctr.settles, 1, memory_order_relaxed);
	if (multiple)
		for (uint32_t i = 0; i < m->index; i++)
			n += !atomic_exchange_explicit(&e->rec[i].settled, 1, memory_order_relaxed);
	if (verdict)
		atomic_fetch_or_explicit(&e->verdict, verdict, memory_order_relaxed);
	/* Every delivery before the envelope, in the order the application asked: before
	 * the envelope's own settle. */
	if (multiple && d->delivery_tag > 1)
		rc = sv_settle_push(d->ch, d->generation, d->delivery_tag - 1, kind, true, requeue,
				    true, err);
	/* Release: this settle's verdict is seen by the one that takes the count to zero;
	 * acquire: that one sees every earlier verdict. */
	if (atomic_fetch_sub_explicit(&e->unsettled, n, memory_order_acq_rel) != n)
		return rc;
	verdict = atomic_load_explicit(&e->verdict, memory_order_relaxed);
	if (!rc)
		rc = sv_settle_push(d->ch, d->generation, d->delivery_tag,
				    verdict ? SV_SETTLE_REJECT : SV_SETTLE_ACK, false,
				    verdict & VERDICT_REQUEUE, true, err);
	return rc;
}
