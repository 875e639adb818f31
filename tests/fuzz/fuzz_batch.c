/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the envelope decoder (batch.h), a consumer's path for a message from anyone: classify
 * its properties, inflate its body under a cap, check its records, walk them. The input's
 * layout (codec, cap, record count, headers, body) is fuzz_batch.h's. Beyond "no crash",
 * no read past the input and no write past the cap (out is allocated at exactly the cap):
 *  - classify answers 0 without the content type and refuses an unknown encoding; when it
 *    accepts, the count is within 1..SV_BATCH_RECORDS_MAX, the codec is the encoding's, and
 *    the headers validate; every refusal has a reason and reply code 0;
 *  - inflate refuses the unknown codec; plain is the input itself; an accepted frame
 *    decodes to at most cap bytes, again to the same bytes with the cap exactly its size,
 *    and is refused one byte below it; re-compressed by salvo's compressor it reads back the
 *    same (the compressor is fuzzed with every body the decoder accepts);
 *  - check agrees with a second, differently written reading of the format (count every
 *    record the body holds; valid when they fit exactly and number the count), and when
 *    it accepts, iteration yields exactly the records, covering the body.
 * The seeds (corpus/batch, written by make_corpus) are envelopes plain, lz4 and zstd, as
 * salvo writes them and as other writers do, and each kind of malformed one.
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fuzz.h"
#include "fuzz_batch.h"
#include "table.h"

static void fuzz_classify(const struct fuzz_batch_input *in)
{
	struct sv_basic_props props;
	struct sv_codec_error err = {0};
	struct sv_batch_info info;
	struct sv_field f;
	int rc, known = in->encoding < 3 || in->encoding == 7;

	memset(&props, 0, sizeof props);
	if (in->content_type) {
		props.flags |= SV_PROP_CONTENT_TYPE;
		props.content_type = SV_BYTES(SV_BATCH_CONTENT_TYPE);
	}
	if (fuzz_batch_encodings[in->encoding].s) {
		props.flags |= SV_PROP_CONTENT_ENCODING;
		props.content_encoding =
		    (struct sv_bytes){(const uint8_t *)fuzz_batch_encodings[in->encoding].s,
				      fuzz_batch_encodings[in->encoding].len};
	}
	props.flags |= SV_PROP_HEADERS;
	props.headers = (struct sv_table){in->headers, in->headers_len};

	rc = sv_batch_classify(&props, &info, &err);
	if (!in->content_type) {
		FUZZ_CHECK(rc == 0);
		return;
	}
	FUZZ_CHECK(rc == 1 || rc == -1);
	if (rc == -1) {
		FUZZ_CHECK(err.reply_code == 0 && err.reason[0] != '\0');
		return;
	}
	FUZZ_CHECK(known);
	FUZZ_CHECK(info.codec == (in->encoding == 7 ? SV_BATCH_PLAIN
						    : (enum sv_batch_codec)in->encoding));
	FUZZ_CHECK(info.records >= 1 && info.records <= SV_BATCH_RECORDS_MAX);
	FUZZ_CHECK(sv_table_validate(in->headers, in->headers_len, &err) == 0);
	FUZZ_CHECK(sv_table_find(props.headers, SV_BATCH_RECORDS_HEADER, &f));
}

/* Compression contexts made once: the publisher's reuse, exercised by every run. */
static struct sv_batch_zip zips[3];

static void fuzz_recompress(enum sv_batch_codec codec, const uint8_t *body, size_t len)
{
	struct sv_batch_zip *z = &zips[codec];
	struct sv_codec_error err;
	const uint8_t *again;
	uint8_t *frame, *out;
	size_t bound, n, got;

	if (!z->ctx)
		FUZZ_CHECK(sv_batch_zip_init(z, codec, 1, &err) == 0);
	bound = sv_batch_zip_bound(z, len);
	frame = malloc(bound);
	out = malloc(len ? len : 1);
	FUZZ_CHECK(frame && out);
	n = sv_batch_zip_run(z, body, len, frame, bound);
	FUZZ_CHECK(n > 0 && n <= bound);
	FUZZ_CHECK(sv_batch_inflate(codec, frame, n, out, len, &again, &got, &err) == 0);
	FUZZ_CHECK(got == len && memcmp(again, body, len) == 0);
	free(frame);
	free(out);
}

/* Inflate; returns the body (in the input, or in *owned to free), or NULL if refused. */
static const uint8_t *fuzz_inflate(const struct fuzz_batch_input *in, size_t *len,
				   uint8_t **owned)
{
	enum sv_batch_codec codec = (enum sv_batch_codec)in->codec;
	struct sv_codec_error err = {0};
	const uint8_t *body = NULL, *again;
	uint8_t *out = malloc(in->cap ? in->cap : 1), *exact;
	size_t got;
	int rc;

	FUZZ_CHECK(out);
	*owned = out;
	rc = sv_batch_inflate(codec, in->body, in->body_len, out, in->cap, &body, len, &err);
	if (rc) {
		FUZZ_CHECK(rc == -1 && err.reply_code == 0 && err.reason[0] != '\0');
		return NULL;
	}
	FUZZ_CHECK(in->codec != 3);
	if (codec == SV_BATCH_PLAIN) {
		FUZZ_CHECK(body == in->body && *len == in->body_len);
		return body;
	}
	FUZZ_CHECK(body == out && *len <= in->cap);

	/* The cap is a boundary, not a hint: exactly the size is enough, one less is not. */
	exact = malloc(*len ? *len : 1);
	FUZZ_CHECK(exact);
	FUZZ_CHECK(sv_batch_inflate(codec, in->body, in->body_len, exact, *len, &again, &got,
				    &err) == 0);
	FUZZ_CHECK(again == exact && got == *len && memcmp(exact, body, got) == 0);
	if (*len > 0)
		FUZZ_CHECK(sv_batch_inflate(codec, in->body, in->body_len, exact, *len - 1, &again,
					    &got, &err) == -1);
	free(exact);
	if (*len <= 65536)
		fuzz_recompress(codec, body, *len);
	return body;
}

/* The format read a second way: records counted while they fit (*count), the body valid
 * when they end exactly at its end. */
static int walk_records(const uint8_t *body, size_t len, uint64_t *count)
{
	size_t at = 0;

	*count = 0;
	while (len - at >= SV_BATCH_RECORD_PREFIX) {
		uint32_t n = (uint32_t)body[at] << 24 | (uint32_t)body[at + 1] << 16 |
			     (uint32_t)body[at + 2] << 8 | body[at + 3];

		if (n > len - at - SV_BATCH_RECORD_PREFIX)
			return 0;
		at += SV_BATCH_RECORD_PREFIX + n;
		++*count;
	}
	return at == len;
}

static void fuzz_check(const uint8_t *body, size_t len, uint64_t records)
{
	struct sv_codec_error err = {0};
	struct sv_batch_iter it;
	const uint8_t *rec, *last_end = body;
	uint32_t rlen;
	uint64_t k = 0, held;
	int rc = sv_batch_check(body, len, records, &err), fits = walk_records(body, len, &held);

	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK((rc == 0) == (fits && held == records));
	if (rc) {
		FUZZ_CHECK(err.reply_code == 0 && err.reason[0] != '\0');
		return;
	}
	sv_batch_iter_init(&it, body, len);
	while (sv_batch_next(&it, &rec, &rlen)) {
		FUZZ_CHECK(rec == last_end + SV_BATCH_RECORD_PREFIX);
		FUZZ_CHECK(rlen <= (size_t)(body + len - rec));
		last_end = rec + rlen;
		k++;
	}
	FUZZ_CHECK(k == records && last_end == body + len && it.p == body + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_batch_input in;
	const uint8_t *body;
	uint8_t *owned;
	size_t len;
	uint64_t held;

	if (!fuzz_batch_read(data, size, &in))
		return 0;
	fuzz_classify(&in);
	body = fuzz_inflate(&in, &len, &owned);
	if (body) {
		/* Count 0: as many as the body holds (1 if none, a count classify accepts). */
		walk_records(body, len, &held);
		fuzz_check(body, len, in.records ? in.records : held ? held : 1);
	}
	free(owned);
	return 0;
}
