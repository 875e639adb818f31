/* SPDX-License-Identifier: MIT */
/*
 * fuzz_batch's seeds (layout: fuzz_batch.h): envelopes as salvo writes them, plain, lz4 and
 * zstd; frames as other writers make them (no content size, no checksum, 4 MiB independent
 * blocks); and one of each malformed kind, breaking one rule of a valid envelope: the frame
 * cut or followed by bytes, a bomb, the cap one byte short, the count off both ways, a
 * length that overruns, leftover bytes, and each header classify refuses.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lz4frame.h>
#include <zstd.h>

#include "batch.h"
#include "corpus.h"
#include "fuzz_batch.h"
#include "table.h"

static void die(const char *why)
{
	fprintf(stderr, "make_corpus: batch: %s\n", why);
	exit(1);
}

enum { ENC_ABSENT = 0, ENC_LZ4 = 1, ENC_ZSTD = 2, ENC_GZIP = 3 };

/* A headers table: x-salvo-records as field f, or none if f is NULL. */
static size_t headers_of(uint8_t *buf, size_t cap, const struct sv_field *f)
{
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct sv_table t;

	sv_table_writer_init(&w, buf, cap);
	sv_tw_str(&w, "app", "telemetry");
	if (f)
		sv_tw_field(&w, SV_BATCH_RECORDS_HEADER, f);
	if (sv_table_writer_finish(&w, &t, &err))
		die(err.reason);
	return t.len;
}

static void seed(const char *name, uint8_t codec, size_t cap, uint8_t encoding,
		 uint32_t records, const struct sv_field *header, const void *body, size_t len)
{
	static uint8_t buf[65536];
	uint8_t headers[255];
	struct fuzz_batch_input in = {
	    .codec = codec,
	    .cap = cap,
	    .encoding = encoding,
	    .content_type = 1,
	    .records = records,
	    .headers = headers,
	    .headers_len = (uint8_t)headers_of(headers, sizeof headers, header),
	};
	unsigned shift = 0;
	size_t n;

	while (cap >> (2 * shift) > 0xFFFF || (cap >> (2 * shift) << (2 * shift)) != cap)
		if (++shift > 3)
			die("a cap fuzz_batch.h cannot say");
	n = fuzz_batch_write(buf, &in, shift);
	if (sizeof buf - n < len)
		die("seed too large");
	memcpy(buf + n, body, len);
	write_seed("batch", name, buf, n + len);
}

static struct sv_field records_field(uint32_t n)
{
	return (struct sv_field){.type = SV_FIELD_I32, .v.i32 = (int32_t)n};
}

/* n records of telemetry lines, the 4th (when there is one) empty. */
static size_t make_body(uint8_t *buf, size_t cap, uint32_t n)
{
	size_t at = 0;

	for (uint32_t i = 0; i < n; i++) {
		int k = i == 3 ? 0
			       : snprintf((char *)buf + at + 4, cap - at - 4,
					  "{\"host\":\"node-%u\",\"seq\":%u,\"cpu\":0.%02u}", i % 3,
					  i, i * 7 % 100);

		if (k < 0 || (size_t)k >= cap - at - 4)
			die("body too large");
		buf[at] = 0, buf[at + 1] = 0, buf[at + 2] = (uint8_t)(k >> 8),
		buf[at + 3] = (uint8_t)k;
		at += 4 + (size_t)k;
	}
	return at;
}

static size_t zip(enum sv_batch_codec codec, const uint8_t *in, size_t n, uint8_t *out,
		  size_t cap)
{
	struct sv_codec_error err;
	struct sv_batch_zip z;
	size_t len;

	if (sv_batch_zip_init(&z, codec, 1, &err))
		die(err.reason);
	len = sv_batch_zip_run(&z, in, n, out, cap);
	sv_batch_zip_free(&z);
	if (!len)
		die("compression failed");
	return len;
}

static size_t lz4_other(const uint8_t *in, size_t n, uint8_t *out, size_t cap,
			LZ4F_blockSizeID_t block, LZ4F_blockMode_t mode, int block_checksum)
{
	LZ4F_preferences_t p;
	size_t len;

	memset(&p, 0, sizeof p);
	p.frameInfo.blockSizeID = block;
	p.frameInfo.blockMode = mode;
	p.frameInfo.blockChecksumFlag = block_checksum ? LZ4F_blockChecksumEnabled : 0;
	len = LZ4F_compressFrame(out, cap, in, n, &p);
	if (LZ4F_isError(len))
		die(LZ4F_getErrorName(len));
	return len;
}

/* zstd without the content size or checksum in the frame. */
static size_t zstd_other(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t len;

	if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)))
		die("zstd context");
	len = ZSTD_compress2(c, out, cap, in, n);
	ZSTD_freeCCtx(c);
	if (ZSTD_isError(len))
		die(ZSTD_getErrorName(len));
	return len;
}

void batch_seeds(void)
{
	static uint8_t body[16384], frame[5 << 20], zeros[4 << 20];
	struct sv_field h = records_field(100), f;
	size_t n = make_body(body, sizeof body, 100), b3 = make_body(body + n, sizeof body - n, 3);
	const uint8_t *three = body + n;
	size_t len;

	/* Valid envelopes. */
	seed("plain-100", SV_BATCH_PLAIN, 0, ENC_ABSENT, 100, &h, body, n);
	seed("plain-100-count-from-body", SV_BATCH_PLAIN, 0, ENC_ABSENT, 0, &h, body, n);
	f = records_field(3);
	seed("plain-3", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	seed("plain-one-empty-record", SV_BATCH_PLAIN, 0, ENC_ABSENT, 1, &f, "\0\0\0\0", 4);
	len = zip(SV_BATCH_LZ4, body, n, frame, sizeof frame);
	seed("lz4-100", SV_BATCH_LZ4, 16384, ENC_LZ4, 100, &h, frame, len);
	seed("lz4-100-cap-exact", SV_BATCH_LZ4, n, ENC_LZ4, 100, &h, frame, len);
	seed("lz4-100-cap-short", SV_BATCH_LZ4, n - 1, ENC_LZ4, 100, &h, frame, len);
	seed("lz4-100-cut", SV_BATCH_LZ4, 16384, ENC_LZ4, 100, &h, frame, len - 5);
	frame[len] = 0;
	seed("lz4-100-trailing", SV_BATCH_LZ4, 16384, ENC_LZ4, 100, &h, frame, len + 1);
	seed("lz4-read-as-zstd", SV_BATCH_ZSTD, 16384, ENC_ZSTD, 100, &h, frame, len);
	len = zip(SV_BATCH_LZ4, three, b3, frame, sizeof frame);
	seed("lz4-3", SV_BATCH_LZ4, 4096, ENC_LZ4, 3, &f, frame, len);
	len = zip(SV_BATCH_ZSTD, body, n, frame, sizeof frame);
	seed("zstd-100", SV_BATCH_ZSTD, 16384, ENC_ZSTD, 100, &h, frame, len);
	seed("zstd-100-cap-short", SV_BATCH_ZSTD, n - 1, ENC_ZSTD, 100, &h, frame, len);
	seed("zstd-100-cut", SV_BATCH_ZSTD, 16384, ENC_ZSTD, 100, &h, frame, len - 5);
	memcpy(frame + len, frame, len);
	seed("zstd-100-two-frames", SV_BATCH_ZSTD, 16384, ENC_ZSTD, 100, &h, frame, 2 * len);
	len = zip(SV_BATCH_ZSTD, three, b3, frame, sizeof frame);
	seed("zstd-3", SV_BATCH_ZSTD, 4096, ENC_ZSTD, 3, &f, frame, len);

	/* Other writers' frames. */
	len = lz4_other(body, n, frame, sizeof frame, LZ4F_default, LZ4F_blockLinked, 0);
	seed("lz4-no-size-no-checksum", SV_BATCH_LZ4, 16384, ENC_LZ4, 100, &h, frame, len);
	seed("lz4-no-size-cap-short", SV_BATCH_LZ4, n - 1, ENC_LZ4, 100, &h, frame, len);
	len = lz4_other(body, n, frame, sizeof frame, LZ4F_max4MB, LZ4F_blockIndependent, 1);
	seed("lz4-4mib-independent-block-checksums", SV_BATCH_LZ4, 16384, ENC_LZ4, 100, &h, frame,
	     len);
	len = zstd_other(body, n, frame, sizeof frame);
	seed("zstd-no-size-no-checksum", SV_BATCH_ZSTD, 16384, ENC_ZSTD, 100, &h, frame, len);
	seed("zstd-no-size-cap-short", SV_BATCH_ZSTD, n - 1, ENC_ZSTD, 100, &h, frame, len);

	/* Bombs: 4 MiB of zeros under a 64 KiB cap, the size undeclared. */
	len = lz4_other(zeros, sizeof zeros, frame, sizeof frame, LZ4F_default, LZ4F_blockLinked,
			0);
	seed("lz4-bomb", SV_BATCH_LZ4, 65536, ENC_LZ4, 1, &h, frame, len);
	len = zstd_other(zeros, sizeof zeros, frame, sizeof frame);
	seed("zstd-bomb", SV_BATCH_ZSTD, 65536, ENC_ZSTD, 1, &h, frame, len);

	/* Records that do not add up. */
	seed("count-high", SV_BATCH_PLAIN, 0, ENC_ABSENT, 101, &h, body, n);
	seed("count-low", SV_BATCH_PLAIN, 0, ENC_ABSENT, 99, &h, body, n);
	seed("record-cut", SV_BATCH_PLAIN, 0, ENC_ABSENT, 100, &h, body, n - 1);
	seed("leftover-bytes", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3 + 2);
	memcpy(frame, three, b3);
	frame[0] = 0x7F;
	seed("length-overrun", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, frame, b3);
	seed("unknown-codec", 3, 16384, ENC_ABSENT, 3, &f, three, b3);

	/* Headers classify refuses (the body valid). */
	seed("header-missing", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, NULL, three, b3);
	f = (struct sv_field){.type = SV_FIELD_I64, .v.i64 = 3};
	seed("header-long-long", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = (struct sv_field){.type = SV_FIELD_U8, .v.u8 = 3};
	seed("header-octet", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = (struct sv_field){.type = SV_FIELD_LONGSTR, .v.str = {(const uint8_t *)"3", 1}};
	seed("header-string", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = (struct sv_field){.type = SV_FIELD_I32, .v.i32 = -3};
	seed("header-negative", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = (struct sv_field){.type = SV_FIELD_I32, .v.i32 = 0};
	seed("header-zero", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = (struct sv_field){.type = SV_FIELD_U64, .v.u64 = SV_BATCH_RECORDS_MAX + 1};
	seed("header-over-max", SV_BATCH_PLAIN, 0, ENC_ABSENT, 3, &f, three, b3);
	f = records_field(3);
	seed("encoding-unknown", SV_BATCH_PLAIN, 0, ENC_GZIP, 3, &f, three, b3);
}
