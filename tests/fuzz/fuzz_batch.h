/* SPDX-License-Identifier: MIT */
/*
 * The input of fuzz_batch, read by the target and written by make_corpus:
 *
 *   [0]      bits 0-1  the codec to inflate with (0 plain, 1 lz4, 2 zstd, 3 none known)
 *            bits 2-3  the cap's shift: cap = [1..2] << (2 * shift), so up to ~4 MiB
 *            bits 4-6  the content_encoding classify sees: absent, lz4, zstd, gzip, "",
 *                      LZ4, zstd\0, absent
 *            bit  7    content_type absent (set) or the envelope's (clear)
 *   [1..2]   the cap, big-endian, before the shift
 *   [3..6]   the record count to check the body against, big-endian; 0 means "as many as
 *            the body holds", so that bodies that are right get explored as often as wrong
 *            counts
 *   [7]      L, the length of the headers table
 *   [8..8+L) the headers table's contents (x-salvo-records, or anything)
 *   the rest the envelope's body, as it came off the wire (compressed or not)
 *
 * An input shorter than the fixed part, or with L past its end, is skipped.
 */
#ifndef SALVO_FUZZ_BATCH_H
#define SALVO_FUZZ_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_BATCH_FIXED 8

struct fuzz_batch_input {
	uint8_t codec;	       /* 0..3 */
	size_t cap;
	uint8_t encoding;      /* index into fuzz_batch_encodings */
	int content_type;      /* 0 absent, 1 the envelope's */
	uint32_t records;      /* 0: whatever the body holds */
	const uint8_t *headers;
	uint8_t headers_len;
	const uint8_t *body;
	size_t body_len;
};

/* content_encoding values: NULL is absent; len is given since one holds a NUL. */
static const struct {
	const char *s;
	uint32_t len;
} fuzz_batch_encodings[8] = {
    {NULL, 0}, {"lz4", 3}, {"zstd", 4}, {"gzip", 4}, {"", 0}, {"LZ4", 3}, {"zstd", 5}, {NULL, 0},
};

static inline int fuzz_batch_read(const uint8_t *data, size_t size, struct fuzz_batch_input *in)
{
	if (size < FUZZ_BATCH_FIXED || size - FUZZ_BATCH_FIXED < data[7])
		return 0;
	in->codec = data[0] & 3;
	in->cap = ((size_t)data[1] << 8 | data[2]) << (2 * ((data[0] >> 2) & 3));
	in->encoding = (data[0] >> 4) & 7;
	in->content_type = !(data[0] >> 7);
	in->records = (uint32_t)data[3] << 24 | (uint32_t)data[4] << 16 | (uint32_t)data[5] << 8 |
		      data[6];
	in->headers_len = data[7];
	in->headers = data + FUZZ_BATCH_FIXED;
	in->body = in->headers + in->headers_len;
	in->body_len = size - FUZZ_BATCH_FIXED - in->headers_len;
	return 1;
}

/* The fixed part and the headers of an input, into out (FUZZ_BATCH_FIXED + headers_len
 * bytes); the body follows. cap must be representable: cap >> (2 * shift) fits 16 bits. */
static inline size_t fuzz_batch_write(uint8_t *out, const struct fuzz_batch_input *in,
				      unsigned shift)
{
	size_t c = in->cap >> (2 * shift);

	out[0] = (uint8_t)(in->codec | shift << 2 | in->encoding << 4 | !in->content_type << 7);
	out[1] = (uint8_t)(c >> 8);
	out[2] = (uint8_t)c;
	out[3] = (uint8_t)(in->records >> 24);
	out[4] = (uint8_t)(in->records >> 16);
	out[5] = (uint8_t)(in->records >> 8);
	out[6] = (uint8_t)in->records;
	out[7] = in->headers_len;
	memcpy(out + FUZZ_BATCH_FIXED, in->headers, in->headers_len);
	return FUZZ_BATCH_FIXED + in->headers_len;
}

#endif
