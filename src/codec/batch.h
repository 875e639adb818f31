/* SPDX-License-Identifier: MIT */
/*
 * Envelopes: many records in one AMQP message (wire format v1, README "Batching").
 *
 *   properties.content_type      application/vnd.salvo.batch+v1
 *   properties.content_encoding  absent (plain), "lz4" (one LZ4 frame) or "zstd" (one
 *                                zstd frame): the whole body is compressed
 *   headers["x-salvo-records"]   the number of records (an integer field; salvo writes a
 *                                32-bit 'I', readers take any integer type)
 *   body (decompressed)          the records back to back: a 32-bit big-endian length,
 *                                then that many bytes
 *
 * Pure functions over caller memory: no I/O, no hidden state, and hard limits (a
 * caller-given cap on the decompressed size, SV_BATCH_RECORDS_MAX records). Allocation:
 * the compression contexts of struct sv_batch_zip, made once; and sv_batch_inflate's
 * decompression context, made and freed in the call (zstd: ~100 KiB, no window: it decodes
 * straight into out; LZ4: LZ4F's buffers, a block and a block plus 128 KiB of history, so
 * at most ~8.2 MiB for a frame declaring 4 MiB blocks, ~260 KiB for 64 KiB ones).
 * Decoding failures return -1 with err filled (reply_code 0: a malformed envelope is the
 * message's fault, not the connection's) and a reason to log.
 *
 * Threads: any thread may call any function; a struct sv_batch_zip is used by one thread
 * at a time (a publisher's own). Nothing blocks.
 */
#ifndef SALVO_BATCH_H
#define SALVO_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "methods.h"

#define SV_BATCH_CONTENT_TYPE	"application/vnd.salvo.batch+v1"
#define SV_BATCH_RECORDS_HEADER "x-salvo-records"
#define SV_BATCH_RECORD_PREFIX	4 /* bytes of a record's length */
/* Records in one envelope, at most: every record costs at least its 4-byte length, and an
 * envelope body is one frame (frame_max <= 2^31), so no honest count is larger. */
#define SV_BATCH_RECORDS_MAX ((uint64_t)1 << 29)

enum sv_batch_codec {
	SV_BATCH_PLAIN = 0,
	SV_BATCH_LZ4,
	SV_BATCH_ZSTD,
};

/* What the properties of a message say about it. */
struct sv_batch_info {
	enum sv_batch_codec codec;
	uint64_t records; /* the x-salvo-records header */
};

/*
 * Is this message an envelope? Returns 0 when it is not (content_type absent or another
 * type, a later version's "+v2" included: compared byte for byte), 1 with *info filled when
 * it is, -1 with err filled when it claims to be one but its properties are wrong:
 * content_encoding other than absent/"lz4"/"zstd" (exactly: "" and "LZ4" are refused),
 * x-salvo-records missing, not an integer, negative, 0 or over SV_BATCH_RECORDS_MAX,
 * headers that do not decode (validated here, for properties not made by the decoder).
 */
int sv_batch_classify(const struct sv_basic_props *props, struct sv_batch_info *info,
		      struct sv_codec_error *err);

/*
 * The body of an envelope, decompressed into out (cap bytes: the caller's limit on the
 * decompressed size, the decompression-bomb bound). PLAIN copies nothing and has no cap
 * (the body is already in memory): *body points into in, out may be NULL. Otherwise the
 * input must be exactly one complete frame of the codec (its magic number first: no
 * skippable or legacy frames), with no trailing bytes, decompressing to at most cap bytes;
 * *body = out. Nothing is written past out + cap; a frame that declares a size over cap is
 * refused before decoding. Checksums in the frame are verified. Returns 0 with *body and
 * *len set, or -1 (corrupt, truncated, trailing bytes, over cap, unknown codec, out of
 * memory for the context).
 */
int sv_batch_inflate(enum sv_batch_codec codec, const uint8_t *in, size_t in_len, uint8_t *out,
		     size_t cap, const uint8_t **body, size_t *len, struct sv_codec_error *err);

/*
 * Check a decompressed body: exactly `records` records, each length within the body, no
 * byte left over. Returns 0 or -1. After it succeeds sv_batch_next walks the records
 * without further checks.
 */
int sv_batch_check(const uint8_t *body, size_t len, uint64_t records, struct sv_codec_error *err);

struct sv_batch_iter {
	const uint8_t *p, *end;
};

static inline void sv_batch_iter_init(struct sv_batch_iter *it, const uint8_t *body, size_t len)
{
	it->p = body;
	it->end = body + len;
}

/* The next record of a checked body: 1 with *rec and *len set, 0 at the end. */
static inline int sv_batch_next(struct sv_batch_iter *it, const uint8_t **rec, uint32_t *len)
{
	uint32_t n;

	if ((size_t)(it->end - it->p) < SV_BATCH_RECORD_PREFIX)
		return 0;
	n = (uint32_t)it->p[0] << 24 | (uint32_t)it->p[1] << 16 | (uint32_t)it->p[2] << 8 |
	    it->p[3];
	*rec = it->p + SV_BATCH_RECORD_PREFIX;
	*len = n;
	it->p += SV_BATCH_RECORD_PREFIX + (size_t)n;
	return 1;
}

/*
 * Compression for a publisher: the context is made once and reused for every envelope
 * (no allocation per envelope). level: the codec's own scale (lz4: 0 fast .. 12, 3 and up
 * being LZ4HC; zstd: 1 .. 19, 0 its default of 3; zstd's 20-22 need windows of 32 MiB and
 * more and are refused). Frames carry the content size and a content checksum; LZ4 uses
 * 64 KiB linked blocks.
 */
struct sv_batch_zip {
	enum sv_batch_codec codec;
	int level;
	void *ctx; /* LZ4F_cctx * or ZSTD_CCtx * */
};

/* Returns 0, or -1 (out of memory, a level out of range, PLAIN) with err filled and
 * z->ctx NULL. */
int sv_batch_zip_init(struct sv_batch_zip *z, enum sv_batch_codec codec, int level,
		      struct sv_codec_error *err);
/* Frees the context; z->ctx becomes NULL, so freeing again does nothing. */
void sv_batch_zip_free(struct sv_batch_zip *z);

/* The most bytes sv_batch_zip_run can write for in_len input bytes (one whole frame). */
size_t sv_batch_zip_bound(const struct sv_batch_zip *z, size_t in_len);

/* Compress in into one frame of the codec in out (cap >= sv_batch_zip_bound). Returns the
 * frame's size, or 0 on failure (cap too small, a context not made or freed); never
 * writes past out + cap. */
size_t sv_batch_zip_run(struct sv_batch_zip *z, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t cap);

/* "lz4", "zstd", or NULL for PLAIN: the content_encoding value. */
const char *sv_batch_codec_name(enum sv_batch_codec codec);

#endif
