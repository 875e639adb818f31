/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the frame reader the way a connection drives it. The first two bytes choose
 * frame_max (4096 plus their value, so short inputs reach frames both under and over the
 * limit); the rest is the byte stream from the peer, read frame after frame until the reader
 * wants more bytes or fails. Beyond "no crash", every frame that decodes must:
 *  - not decode from one byte fewer: a connection reads in arbitrary chunks and must see
 *    "need more" for a partial frame, never a frame or an error;
 *  - re-encode: a method to the same length, changing nothing but the unused bits of bit
 *    octets, and to bytes that decode and re-encode to themselves; a content header, which
 *    has a single encoding, to exactly the frame that was read;
 *  - have tables that iterate to their end (decoding validated them).
 * Frames on channels other than 0 then go through the content order check.
 */
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "table.h"

/* Channels share content states modulo this: a collision interleaves two channels'
 * messages, one more order of frames the check must survive. */
#define CHANNELS 8

static void walk_array(struct sv_array a, unsigned depth);

static void walk_table(struct sv_table t, unsigned depth)
{
	struct sv_table_iter it;
	struct sv_codec_error err;
	struct sv_bytes key;
	struct sv_field f;
	int rc;

	FUZZ_CHECK(depth <= SV_TABLE_MAX_DEPTH);
	sv_table_iter_init(&it, t);
	while ((rc = sv_table_next(&it, &key, &f, &err)) == 1) {
		if (f.type == SV_FIELD_TABLE)
			walk_table(f.v.table, depth + 1);
		else if (f.type == SV_FIELD_ARRAY)
			walk_array(f.v.array, depth + 1);
	}
	FUZZ_CHECK(rc == 0);
}

static void walk_array(struct sv_array a, unsigned depth)
{
	struct sv_array_iter it;
	struct sv_codec_error err;
	struct sv_field f;
	int rc;

	FUZZ_CHECK(depth <= SV_TABLE_MAX_DEPTH);
	sv_array_iter_init(&it, a);
	while ((rc = sv_array_next(&it, &f, &err)) == 1) {
		if (f.type == SV_FIELD_TABLE)
			walk_table(f.v.table, depth + 1);
		else if (f.type == SV_FIELD_ARRAY)
			walk_array(f.v.array, depth + 1);
	}
	FUZZ_CHECK(rc == 0);
}

static void walk_method_tables(const struct sv_method *m)
{
	const struct sv_method_desc *desc = sv_method_desc(m->id);

	FUZZ_CHECK(desc != NULL);
	for (unsigned i = 0; i < desc->nargs; i++) {
		const struct sv_arg_desc *a = &desc->args[i];
		if (a->type == SV_ARG_TABLE)
			walk_table(*(const struct sv_table *)((const char *)m + a->offset), 1);
	}
}

static void check_method(const struct sv_method *m, const uint8_t *payload, uint32_t size)
{
	/* Buffers of exactly the expected size: the encoder must not ask for more room than it
	 * uses, and AddressSanitizer catches a write past the end. */
	uint8_t *enc1 = malloc(size), *enc2 = malloc(size);
	struct sv_codec_error err;
	struct sv_method again;
	size_t n;

	FUZZ_CHECK(enc1 && enc2);
	walk_method_tables(m);
	n = sv_method_encode(enc1, size, m, &err);
	FUZZ_CHECK(n == size);
	/* The decoder drops the unused bits of bit octets; everything else comes back. */
	for (uint32_t i = 0; i < size; i++)
		FUZZ_CHECK((enc1[i] & ~payload[i]) == 0);
	FUZZ_CHECK(sv_method_decode(enc1, size, &again, &err) == 0);
	FUZZ_CHECK(again.id == m->id);
	n = sv_method_encode(enc2, size, &again, &err);
	FUZZ_CHECK(n == size && memcmp(enc1, enc2, size) == 0);
	free(enc1);
	free(enc2);
}

static void check_header(const struct sv_decoded_frame *d, const uint8_t *frame, size_t len)
{
	uint8_t *enc = malloc(len);
	struct sv_codec_error err;

	FUZZ_CHECK(enc != NULL);
	if (d->u.header.props.flags & SV_PROP_HEADERS)
		walk_table(d->u.header.props.headers, 1);
	/* Equal to the input, so decoding it again and re-encoding gives it once more. */
	FUZZ_CHECK(sv_frame_put_header(enc, len, d->frame.channel, &d->u.header, &err) == len);
	FUZZ_CHECK(memcmp(enc, frame, len) == 0);
	free(enc);
}

static void feed_content(struct sv_content_state *s, const struct sv_decoded_frame *d)
{
	struct sv_codec_error err;
	int rc = sv_content_feed(s, d, &err);

	if (rc >= 0) {
		FUZZ_CHECK(rc >= SV_CONTENT_METHOD && rc <= SV_CONTENT_COMPLETE);
		return;
	}
	FUZZ_CHECK(err.reply_code == SV_REPLY_UNEXPECTED_FRAME);
	/* A connection would close here; a fresh state lets the rest of the input be checked. */
	sv_content_init(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_content_state content[CHANNELS];
	struct sv_decoded_frame d, partial;
	struct sv_codec_error err;
	struct sv_reader reader;
	uint32_t frame_max;
	ssize_t n;

	if (size < 2)
		return 0;
	frame_max = SV_FRAME_MIN_SIZE + sv_load16(data);
	data += 2;
	size -= 2;
	sv_reader_init(&reader, frame_max);
	for (unsigned i = 0; i < CHANNELS; i++)
		sv_content_init(&content[i]);

	while ((n = sv_reader_next(&reader, data, size, &d)) > 0) {
		FUZZ_CHECK((size_t)n <= size && (size_t)n == d.frame.size + SV_FRAME_OVERHEAD);
		FUZZ_CHECK(d.frame.payload == data + SV_FRAME_HEADER_SIZE);
		FUZZ_CHECK(sv_frame_decode(data, (size_t)n - 1, frame_max, &partial, &err) == 0);
		if (d.frame.type == SV_FRAME_METHOD)
			check_method(&d.u.method, d.frame.payload, d.frame.size);
		else if (d.frame.type == SV_FRAME_HEADER)
			check_header(&d, data, (size_t)n);
		/* Channel 0 (connection methods, heartbeats) carries no content. */
		if (d.frame.channel != 0)
			feed_content(&content[d.frame.channel % CHANNELS], &d);
		data += n;
		size -= (size_t)n;
	}
	if (n < 0) {
		FUZZ_CHECK(reader.err.reply_code == SV_REPLY_FRAME_ERROR ||
			   reader.err.reply_code == SV_REPLY_SYNTAX_ERROR ||
			   reader.err.reply_code == SV_REPLY_NOT_IMPLEMENTED);
		/* The error is sticky: nothing past a frame the reader could not understand. */
		FUZZ_CHECK(sv_reader_next(&reader, data, size, &d) == -1);
	}
	return 0;
}
