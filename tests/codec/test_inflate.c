/* SPDX-License-Identifier: MIT */
/*
 * Compressed envelope bodies: sv_batch_zip_* writes one frame, sv_batch_inflate reads it
 * back under a cap, and refuses every frame that is not exactly one whole, intact frame
 * within the cap: truncated at every length, followed by anything, with any byte changed,
 * of the wrong format, or a decompression bomb (100 MB of zeros under a 1 MB cap, with and
 * without a declared size, memory measured). Frames come from salvo's compressor and from
 * the libraries' own with other settings (no content size, no checksum, big blocks), as
 * other writers make them. Every input sits against an unmapped page, and every output
 * buffer ends at one, so a read past the input or a write past the cap faults.
 */
#include <stdlib.h>
#include <sys/resource.h>

#include <lz4frame.h>
#include <zstd.h>

#include "../guard.h"
#include "../support.h"

#include "batch.h"

#define MiB ((size_t)1 << 20)

static struct sv_codec_error poisoned(void)
{
	struct sv_codec_error e;

	memset(&e, 0, sizeof e);
	e.reply_code = 0xFFFF;
	return e;
}

/* Telemetry-like text: JSON lines that differ in their numbers. */
static void fill_json(uint8_t *buf, size_t n, uint32_t seed)
{
	char line[128];
	size_t at = 0;

	while (at < n) {
		int k = snprintf(line, sizeof line,
				 "{\"host\":\"node-%u\",\"seq\":%zu,\"cpu\":%u.%02u,\"ok\":true}\n",
				 seed % 7, at, (seed * 31u + (unsigned)at) % 100,
				 (unsigned)(at * 7 % 100));
		size_t m = (size_t)k < n - at ? (size_t)k : n - at;

		memcpy(buf + at, line, m);
		at += m;
	}
}

/* Bytes no compressor can shrink (xorshift32). */
static void fill_random(uint8_t *buf, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

/* A frame made by salvo's compressor; *len its size. */
static uint8_t *zip(enum sv_batch_codec codec, int level, const uint8_t *in, size_t n,
		    size_t *len)
{
	struct sv_codec_error err;
	struct sv_batch_zip z;
	uint8_t *out;
	size_t bound;

	assert_int_equal(sv_batch_zip_init(&z, codec, level, &err), 0);
	bound = sv_batch_zip_bound(&z, n);
	out = xmalloc(bound);
	*len = sv_batch_zip_run(&z, in, n, out, bound);
	assert_int_not_equal(*len, 0);
	sv_batch_zip_free(&z);
	return out;
}

/* Frames as other writers make them. */
struct frame_kind {
	const char *name;
	enum sv_batch_codec codec;
	/* lz4 */
	LZ4F_blockSizeID_t block_size;
	LZ4F_blockMode_t block_mode;
	bool block_checksum;
	/* both */
	bool content_size, checksum;
};

static const struct frame_kind kinds[] = {
    {"lz4 salvo's", SV_BATCH_LZ4, LZ4F_default, LZ4F_blockLinked, false, true, true},
    {"lz4 no size, no checksum", SV_BATCH_LZ4, LZ4F_default, LZ4F_blockLinked, false, false,
     false},
    {"lz4 4 MiB independent blocks, block checksums", SV_BATCH_LZ4, LZ4F_max4MB,
     LZ4F_blockIndependent, true, false, true},
    {"lz4 256 KiB blocks, size", SV_BATCH_LZ4, LZ4F_max256KB, LZ4F_blockLinked, false, true,
     false},
    {"zstd salvo's", SV_BATCH_ZSTD, 0, 0, false, true, true},
    {"zstd no size, no checksum", SV_BATCH_ZSTD, 0, 0, false, false, false},
    {"zstd no size, checksum", SV_BATCH_ZSTD, 0, 0, false, false, true},
};

static uint8_t *frame_of(const struct frame_kind *k, const uint8_t *in, size_t n, size_t *len)
{
	uint8_t *out;
	size_t bound, r;

	if (k->codec == SV_BATCH_LZ4) {
		LZ4F_preferences_t p;

		memset(&p, 0, sizeof p);
		p.frameInfo.blockSizeID = k->block_size;
		p.frameInfo.blockMode = k->block_mode;
		p.frameInfo.blockChecksumFlag =
		    k->block_checksum ? LZ4F_blockChecksumEnabled : LZ4F_noBlockChecksum;
		p.frameInfo.contentChecksumFlag =
		    k->checksum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
		p.frameInfo.contentSize = k->content_size ? n : 0;
		bound = LZ4F_compressFrameBound(n, &p);
		out = xmalloc(bound);
		r = LZ4F_compressFrame(out, bound, in, n, &p);
		assert_false(LZ4F_isError(r));
	} else {
		ZSTD_CCtx *c = ZSTD_createCCtx();

		assert_non_null(c);
		assert_false(ZSTD_isError(
		    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, k->content_size)));
		assert_false(
		    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, k->checksum)));
		bound = ZSTD_compressBound(n);
		out = xmalloc(bound);
		r = ZSTD_compress2(c, out, bound, in, n);
		assert_false(ZSTD_isError(r));
		ZSTD_freeCCtx(c);
	}
	*len = r;
	return out;
}

/* Inflate frame (against the guard page) into a buffer of exactly cap bytes ending at
 * another: 0 with the body, or -1 with a reason. */
static int inflate_guarded(enum sv_batch_codec codec, const uint8_t *frame, size_t flen,
			   size_t cap, uint8_t *copy_out, size_t *len, struct sv_codec_error *err)
{
	struct guard gin, gout;
	const uint8_t *in, *body = NULL;
	uint8_t *out;
	int rc;

	guard_init(&gin, flen);
	guard_init(&gout, cap);
	in = guard_place(&gin, frame, flen);
	out = guard_room(&gout, cap);
	*err = poisoned();
	*len = 0;
	rc = sv_batch_inflate(codec, in, flen, out, cap, &body, len, err);
	if (rc == 0) {
		assert_ptr_equal(body, out);
		assert_true(*len <= cap);
		if (copy_out)
			memcpy(copy_out, body, *len);
	} else {
		assert_int_equal(rc, -1);
		assert_int_equal(err->reply_code, 0);
		assert_int_not_equal(err->reason[0], '\0');
	}
	guard_free(&gin);
	guard_free(&gout);
	return rc;
}

/* frame decodes to want (n bytes) with the cap exactly n, and with room to spare; one
 * byte less is refused. */
static void assert_inflates(enum sv_batch_codec codec, const uint8_t *frame, size_t flen,
			    const uint8_t *want, size_t n)
{
	uint8_t *got = xmalloc(n + 100);
	struct sv_codec_error err;
	size_t len;

	assert_int_equal(inflate_guarded(codec, frame, flen, n, got, &len, &err), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, n);
	assert_int_equal(inflate_guarded(codec, frame, flen, n + 100, got, &len, &err), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, want, n);
	if (n > 0) {
		assert_int_equal(inflate_guarded(codec, frame, flen, n - 1, NULL, &len, &err), -1);
		printf("cap %zu: %s\n", n - 1, err.reason);
	}
	free(got);
}

static void assert_refused(enum sv_batch_codec codec, const uint8_t *frame, size_t flen,
			   size_t cap)
{
	struct sv_codec_error err;
	size_t len;

	assert_int_equal(inflate_guarded(codec, frame, flen, cap, NULL, &len, &err), -1);
}

static const size_t sizes[] = {1,     2,      100,	      4095,	      4096,
			       65535, 65536,  65537,	      3 * 65536 + 17, 300000,
			       MiB,   MiB + 3, 4 * MiB + 1};

/* salvo's compressor at several levels and sizes, compressible and not, back intact. */
static void roundtrip(enum sv_batch_codec codec, const int *levels, size_t nlevels)
{
	uint8_t *body = xmalloc(4 * MiB + 1);

	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		for (size_t l = 0; l < nlevels; l++) {
			size_t n = sizes[s], flen;
			uint8_t *frame;

			/* The slowest levels on the largest bodies add time, not coverage. */
			if (n > 300000 && l > 1)
				continue;
			for (int random = 0; random < 2; random++) {
				(random ? fill_random : fill_json)(body, n, (uint32_t)(s + l));
				frame = zip(codec, levels[l], body, n, &flen);
				assert_inflates(codec, frame, flen, body, n);
				free(frame);
			}
		}
	}
	free(body);
}

static void test_roundtrip_lz4(void **state)
{
	(void)state;
	static const int levels[] = {0, 1, 9, 12};

	roundtrip(SV_BATCH_LZ4, levels, sizeof levels / sizeof levels[0]);
}

static void test_roundtrip_zstd(void **state)
{
	(void)state;
	static const int levels[] = {0, 1, 3, 19};

	roundtrip(SV_BATCH_ZSTD, levels, sizeof levels / sizeof levels[0]);
}

/* Other writers' frames: without a content size the cap is found while decoding. */
static void test_frame_kinds(void **state)
{
	(void)state;
	uint8_t *body = xmalloc(5 * MiB);

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		static const size_t kind_sizes[] = {1, 65536, 65537, 5 * MiB};

		for (size_t s = 0; s < sizeof kind_sizes / sizeof kind_sizes[0]; s++) {
			size_t n = kind_sizes[s], flen;
			uint8_t *frame;

			fill_json(body, n, (uint32_t)s);
			frame = frame_of(&kinds[k], body, n, &flen);
			printf("%s, %zu bytes: ", kinds[k].name, n);
			assert_inflates(kinds[k].codec, frame, flen, body, n);
			free(frame);
		}
	}
	free(body);
}

/* A frame of the empty body decodes to nothing (sv_batch_check then refuses it). */
static void test_empty_body(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		struct sv_codec_error err;
		size_t flen, len;
		uint8_t *frame = frame_of(&kinds[k], (const uint8_t *)"", 0, &flen);

		assert_int_equal(inflate_guarded(kinds[k].codec, frame, flen, 0, NULL, &len, &err),
				 0);
		assert_int_equal(len, 0);
		free(frame);
	}
}

static void test_plain(void **state)
{
	(void)state;
	static const uint8_t in[] = "\0\0\0\3abc";
	struct sv_codec_error err;
	const uint8_t *body = NULL;
	size_t len = 0;

	/* Nothing is copied and no cap applies: out may be NULL. */
	assert_int_equal(sv_batch_inflate(SV_BATCH_PLAIN, in, 7, NULL, 0, &body, &len, &err), 0);
	assert_ptr_equal(body, in);
	assert_int_equal(len, 7);
}

static void test_unknown_codec(void **state)
{
	(void)state;
	static const uint8_t in[] = "\0\0\0\3abc";
	uint8_t out[16];
	struct sv_codec_error err = poisoned();
	const uint8_t *body;
	size_t len;

	assert_int_equal(sv_batch_inflate((enum sv_batch_codec)3, in, 7, out, sizeof out, &body,
					  &len, &err),
			 -1);
	assert_int_equal(err.reply_code, 0);
	assert_int_not_equal(err.reason[0], '\0');
}

/* Every prefix of every kind of frame is refused: small frames at every length, large ones
 * at lengths around their block boundaries and at a stride. */
static void test_truncated(void **state)
{
	(void)state;
	uint8_t *body = xmalloc(300000);

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		static const size_t kind_sizes[] = {3000, 300000};

		for (size_t s = 0; s < 2; s++) {
			size_t n = kind_sizes[s], flen, step;
			uint8_t *frame;

			fill_json(body, n / 2, (uint32_t)k);
			fill_random(body + n / 2, n - n / 2, (uint32_t)k);
			frame = frame_of(&kinds[k], body, n, &flen);
			step = flen < 4000 ? 1 : flen / 997;
			for (size_t cut = 0; cut < flen; cut += step)
				assert_refused(kinds[k].codec, frame, cut, n);
			for (size_t cut = flen > 64 ? flen - 64 : 0; cut < flen; cut++)
				assert_refused(kinds[k].codec, frame, cut, n);
			free(frame);
		}
	}
	free(body);
}

/* Anything after the frame: a byte, text, a second frame, a skippable frame. */
static void test_trailing_bytes(void **state)
{
	(void)state;
	/* LZ4 and zstd share the skippable frames' magic numbers, 0x184D2A50 to 5F. */
	static const uint8_t skippable[] = {0x50, 0x2A, 0x4D, 0x18, 2, 0, 0, 0, 'h', 'i'};
	uint8_t body[2000], buf[8192];

	fill_json(body, sizeof body, 1);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		size_t flen;
		uint8_t *frame = frame_of(&kinds[k], body, sizeof body, &flen);
		struct {
			const void *bytes;
			size_t len;
		} tails[] = {
		    {"\0", 1}, {"\x01", 1}, {"trailing", 8}, {frame, flen}, {skippable, sizeof skippable}, {frame, 4},
		};

		assert_true(2 * flen + 16 <= sizeof buf);
		for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
			struct sv_codec_error err;
			size_t len;

			memcpy(buf, frame, flen);
			memcpy(buf + flen, tails[t].bytes, tails[t].len);
			/* A cap with room for two bodies: the refusal is not the cap's. */
			assert_int_equal(inflate_guarded(kinds[k].codec, buf, flen + tails[t].len,
							 2 * sizeof body, NULL, &len, &err),
					 -1);
			printf("%s + %zu bytes: %s\n", kinds[k].name, tails[t].len, err.reason);
		}
		free(frame);
	}
}

/* Any one byte changed, in the header, a block, a checksum, the end mark: when the frame
 * carries a content checksum, it is refused or (a match offset changed to one pointing at
 * the same bytes: compressed forms are not unique) decodes to the very same body. Without
 * one a decoder can only promise not to crash or overrun, which every change checks too. */
static void test_corrupt(void **state)
{
	(void)state;
	uint8_t body[3000], got[3000 + 64];

	fill_json(body, sizeof body, 9);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		static const uint8_t flips[] = {0x01, 0x80, 0xFF};
		size_t flen, accepted = 0;
		uint8_t *frame = frame_of(&kinds[k], body, sizeof body, &flen);

		for (size_t i = 0; i < flen; i++) {
			for (size_t f = 0; f < sizeof flips; f++) {
				struct sv_codec_error err;
				size_t len;
				int rc;

				frame[i] ^= flips[f];
				rc = inflate_guarded(kinds[k].codec, frame, flen, sizeof got, got,
						     &len, &err);
				frame[i] ^= flips[f];
				if (rc == 0 && kinds[k].checksum &&
				    (len != sizeof body || memcmp(got, body, len) != 0))
					fail_msg("%s: byte %zu ^ 0x%02x accepted, other content",
						 kinds[k].name, i, flips[f]);
				accepted += rc == 0;
			}
		}
		printf("%s: %zu bytes x 3 changes, %zu accepted\n", kinds[k].name, flen, accepted);
		free(frame);
	}
}

/* Not a frame of the codec it is read as: the other format, LZ4's legacy frame, a
 * skippable frame alone, too short to hold a magic number. */
static void test_wrong_format(void **state)
{
	(void)state;
	static const uint8_t legacy[] = {0x02, 0x21, 0x4C, 0x18, 1, 0, 0, 0, 0x10};
	static const uint8_t skippable[] = {0x5F, 0x2A, 0x4D, 0x18, 0, 0, 0, 0};
	uint8_t body[500], *lz4, *zstd;
	size_t llen, zlen;

	fill_json(body, sizeof body, 2);
	lz4 = zip(SV_BATCH_LZ4, 0, body, sizeof body, &llen);
	zstd = zip(SV_BATCH_ZSTD, 0, body, sizeof body, &zlen);
	assert_refused(SV_BATCH_ZSTD, lz4, llen, sizeof body);
	assert_refused(SV_BATCH_LZ4, zstd, zlen, sizeof body);
	for (int c = SV_BATCH_LZ4; c <= SV_BATCH_ZSTD; c++) {
		assert_refused((enum sv_batch_codec)c, legacy, sizeof legacy, sizeof body);
		assert_refused((enum sv_batch_codec)c, skippable, sizeof skippable, sizeof body);
		assert_refused((enum sv_batch_codec)c, body, sizeof body, sizeof body);
		for (size_t n = 0; n < 4; n++)
			assert_refused((enum sv_batch_codec)c, c == SV_BATCH_LZ4 ? lz4 : zstd, n,
				       sizeof body);
	}
	free(lz4);
	free(zstd);
}

/* 100 MB of zeros as one frame, compressed a megabyte at a time (the test never holds the
 * 100 MB either). */
#define BOMB_SIZE ((size_t)100 * 1000 * 1000)

static uint8_t *lz4_bomb(bool declared, LZ4F_blockSizeID_t block_size, size_t *len)
{
	static const uint8_t zeros[MiB];
	LZ4F_preferences_t p;
	LZ4F_cctx *c;
	size_t cap, at, r;
	uint8_t *out;

	memset(&p, 0, sizeof p);
	p.frameInfo.contentSize = declared ? BOMB_SIZE : 0;
	p.frameInfo.blockSizeID = block_size;
	assert_false(LZ4F_isError(LZ4F_createCompressionContext(&c, LZ4F_VERSION)));
	cap = BOMB_SIZE / 200 + LZ4F_compressBound(MiB, &p); /* zeros: ~250 to 1 */
	out = xmalloc(cap);
	at = LZ4F_compressBegin(c, out, cap, &p);
	assert_false(LZ4F_isError(at));
	for (size_t done = 0; done < BOMB_SIZE; done += MiB) {
		size_t n = BOMB_SIZE - done < MiB ? BOMB_SIZE - done : MiB;

		r = LZ4F_compressUpdate(c, out + at, cap - at, zeros, n, NULL);
		assert_false(LZ4F_isError(r));
		at += r;
	}
	r = LZ4F_compressEnd(c, out + at, cap - at, NULL);
	assert_false(LZ4F_isError(r));
	LZ4F_freeCompressionContext(c);
	*len = at + r;
	return out;
}

static uint8_t *zstd_bomb(bool declared, size_t *len)
{
	static const uint8_t zeros[MiB];
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer out = {xmalloc(MiB), MiB, 0};

	assert_non_null(c);
	if (declared)
		assert_false(ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, BOMB_SIZE)));
	else
		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
	for (size_t done = 0; done < BOMB_SIZE; done += MiB) {
		size_t n = BOMB_SIZE - done < MiB ? BOMB_SIZE - done : MiB;
		bool last = done + n == BOMB_SIZE;
		ZSTD_inBuffer in = {zeros, n, 0};
		size_t left;

		do {
			left = ZSTD_compressStream2(c, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
			assert_false(ZSTD_isError(left));
			assert_true(out.pos < out.size);
		} while (last ? left != 0 : in.pos < in.size);
	}
	ZSTD_freeCCtx(c);
	*len = out.pos;
	return out.dst;
}

static long max_rss_kib(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

/*
 * The bomb under a 1 MB cap is refused, whether its header declares the 100 MB (refused
 * before decoding) or not (decoded until the cap is full, then refused). The process's peak
 * resident memory may grow by the cap, the decoder's own buffers (LZ4F's: two blocks of the
 * frame's block size; zstd decodes into out), and a megabyte of slack, but not by anything
 * near the 100 MB.
 */
static void bomb(enum sv_batch_codec codec, LZ4F_blockSizeID_t block_size, size_t buffers)
{
	const size_t cap = MiB;

	for (int declared = 1; declared >= 0; declared--) {
		struct sv_codec_error err;
		size_t flen, len;
		uint8_t *frame = codec == SV_BATCH_LZ4 ? lz4_bomb(declared, block_size, &flen)
						       : zstd_bomb(declared, &flen);
		long before = max_rss_kib(), grew;

		assert_int_equal(inflate_guarded(codec, frame, flen, cap, NULL, &len, &err), -1);
		grew = max_rss_kib() - before;
		printf("%zu-byte frame, size %s: %s; peak RSS grew %ld KiB\n", flen,
		       declared ? "declared" : "not declared", err.reason, grew);
		assert_true((size_t)grew * 1024 <= cap + buffers + MiB);
		free(frame);
	}
}

static void test_bomb_lz4(void **state)
{
	(void)state;
	bomb(SV_BATCH_LZ4, LZ4F_default, 256 * 1024);
}

static void test_bomb_lz4_4mib_blocks(void **state)
{
	(void)state;
	bomb(SV_BATCH_LZ4, LZ4F_max4MB, 2 * 4 * MiB + 128 * 1024);
}

static void test_bomb_zstd(void **state)
{
	(void)state;
	bomb(SV_BATCH_ZSTD, LZ4F_default, 256 * 1024);
}

/* Levels each codec takes and refuses; a context freed twice, or used after, is harmless. */
static void test_zip_levels(void **state)
{
	(void)state;
	static const struct {
		enum sv_batch_codec codec;
		int level;
		bool ok;
	} cases[] = {
	    {SV_BATCH_LZ4, -1, false},	{SV_BATCH_LZ4, 0, true},    {SV_BATCH_LZ4, 12, true},
	    {SV_BATCH_LZ4, 13, false},	{SV_BATCH_ZSTD, -1, false}, {SV_BATCH_ZSTD, 0, true},
	    {SV_BATCH_ZSTD, 19, true},	{SV_BATCH_ZSTD, 20, false}, {SV_BATCH_PLAIN, 0, false},
	    {(enum sv_batch_codec)9, 0, false},
	};
	uint8_t body[10000], out[20000], got[10000];

	fill_json(body, sizeof body, 5);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sv_codec_error err = poisoned();
		struct sv_batch_zip z;
		size_t n, len;

		if (!cases[i].ok) {
			assert_int_equal(sv_batch_zip_init(&z, cases[i].codec, cases[i].level, &err),
					 -1);
			assert_int_equal(err.reply_code, 0);
			printf("refused: %s\n", err.reason);
			assert_null(z.ctx);
			sv_batch_zip_free(&z);
			assert_int_equal(sv_batch_zip_run(&z, body, sizeof body, out, sizeof out), 0);
			continue;
		}
		assert_int_equal(sv_batch_zip_init(&z, cases[i].codec, cases[i].level, &err), 0);
		assert_true(sv_batch_zip_bound(&z, sizeof body) <= sizeof out);
		n = sv_batch_zip_run(&z, body, sizeof body, out, sizeof out);
		assert_true(n > 0 && n < sizeof body);
		assert_int_equal(inflate_guarded(cases[i].codec, out, n, sizeof got, got, &len, &err),
				 0);
		assert_int_equal(len, sizeof body);
		assert_memory_equal(got, body, sizeof body);
		sv_batch_zip_free(&z);
		assert_null(z.ctx);
		sv_batch_zip_free(&z);
		assert_int_equal(sv_batch_zip_run(&z, body, sizeof body, out, sizeof out), 0);
	}
}

/* An output too small: 0, nothing written past the cap; a frame that does fit is whole. */
static void test_zip_small_cap(void **state)
{
	(void)state;
	uint8_t body[1000], got[1000];

	fill_random(body, sizeof body, 3);
	for (int c = SV_BATCH_LZ4; c <= SV_BATCH_ZSTD; c++) {
		struct sv_codec_error err;
		struct sv_batch_zip z;
		struct guard g;
		size_t bound, n, len;

		assert_int_equal(sv_batch_zip_init(&z, (enum sv_batch_codec)c, 1, &err), 0);
		bound = sv_batch_zip_bound(&z, sizeof body);
		guard_init(&g, bound);
		for (size_t cap = 0; cap <= bound; cap++) {
			n = sv_batch_zip_run(&z, body, sizeof body, guard_room(&g, cap), cap);
			assert_true(n <= cap);
			if (cap == bound)
				assert_int_not_equal(n, 0);
			if (n == 0)
				continue;
			assert_int_equal(inflate_guarded((enum sv_batch_codec)c, guard_room(&g, cap),
							 n, sizeof got, got, &len, &err),
					 0);
			assert_memory_equal(got, body, sizeof body);
		}
		guard_free(&g);
		sv_batch_zip_free(&z);
	}
}

/* One context, many envelopes of changing sizes and contents: each frame stands alone
 * (nothing carried over from the one before), declares its content size, and decodes. */
static void test_zip_reuse(void **state)
{
	(void)state;
	uint8_t *body = xmalloc(200000), *out = xmalloc(300000), *got = xmalloc(200000);

	for (int c = SV_BATCH_LZ4; c <= SV_BATCH_ZSTD; c++) {
		struct sv_codec_error err;
		struct sv_batch_zip z;

		assert_int_equal(sv_batch_zip_init(&z, (enum sv_batch_codec)c, 1, &err), 0);
		for (uint32_t i = 0; i < 1000; i++) {
			size_t n = (size_t)i * 7919 % 200000 + 1, f, len;

			(i % 3 ? fill_json : fill_random)(body, n, i);
			assert_true(sv_batch_zip_bound(&z, n) <= 300000);
			f = sv_batch_zip_run(&z, body, n, out, 300000);
			assert_int_not_equal(f, 0);
			if (c == SV_BATCH_ZSTD) {
				assert_int_equal(ZSTD_getFrameContentSize(out, f), n);
			} else {
				LZ4F_dctx *d;
				LZ4F_frameInfo_t fi;
				size_t hl = f;

				assert_false(LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
				assert_false(LZ4F_isError(LZ4F_getFrameInfo(d, &fi, out, &hl)));
				assert_int_equal(fi.contentSize, n);
				assert_int_equal(fi.contentChecksumFlag, LZ4F_contentChecksumEnabled);
				LZ4F_freeDecompressionContext(d);
			}
			assert_int_equal(inflate_guarded((enum sv_batch_codec)c, out, f, n, got, &len,
							 &err),
					 0);
			assert_int_equal(len, n);
			assert_memory_equal(got, body, n);
		}
		sv_batch_zip_free(&z);
	}
	free(body);
	free(out);
	free(got);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("roundtrip-lz4", test_roundtrip_lz4),
		NAMED_TEST("roundtrip-zstd", test_roundtrip_zstd),
		NAMED_TEST("frame-kinds", test_frame_kinds),
		NAMED_TEST("empty-body", test_empty_body),
		NAMED_TEST("plain", test_plain),
		NAMED_TEST("unknown-codec", test_unknown_codec),
		NAMED_TEST("truncated", test_truncated),
		NAMED_TEST("trailing-bytes", test_trailing_bytes),
		NAMED_TEST("corrupt", test_corrupt),
		NAMED_TEST("wrong-format", test_wrong_format),
		NAMED_TEST("bomb-lz4", test_bomb_lz4),
		NAMED_TEST("bomb-lz4-4mib-blocks", test_bomb_lz4_4mib_blocks),
		NAMED_TEST("bomb-zstd", test_bomb_zstd),
		NAMED_TEST("zip-levels", test_zip_levels),
		NAMED_TEST("zip-small-cap", test_zip_small_cap),
		NAMED_TEST("zip-reuse", test_zip_reuse),
	};

	return sv_test_main(argc, argv, "inflate", tests, sizeof tests / sizeof tests[0]);
}
