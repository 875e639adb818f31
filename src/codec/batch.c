/* SPDX-License-Identifier: MIT */
/*
 * Envelopes (batch.h): telling one from its properties, inflating its body under a cap,
 * checking its records, and compressing bodies for a publisher.
 *
 * Inflating trusts nothing in the frame. Both decoders write only into out[0, cap) and stop
 * there; what a frame declares about itself (LZ4's and zstd's optional content size) is used
 * to refuse a bomb before any work, never to size anything. zstd is decoded in one shot
 * straight into out, so its window is out itself and a frame's window size costs no memory;
 * LZ4 goes through LZ4F_decompress, whose own buffers are bounded by the largest block the
 * format allows (4 MiB), whatever the frame claims.
 */
#include <stdio.h>
#include <string.h>

#include <lz4frame.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "batch.h"
#include "table.h"
#include "wire.h"

/* A malformed envelope is the message's fault, not the connection's: reply code 0. */
#define BAD(err, ...) sv_fail((err), 0, __VA_ARGS__)

/* Both formats' magic numbers are little-endian. */
static uint32_t load32le(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static bool bytes_are(struct sv_bytes b, const char *s)
{
	size_t n = strlen(s);

	return b.len == n && memcmp(b.ptr, s, n) == 0;
}

/* b for a message: printable ASCII as it is, other bytes as \xNN, cut to fit out. */
static const char *printable(struct sv_bytes b, char *out, size_t cap)
{
	size_t o = 0;

	for (uint32_t i = 0; i < b.len && o + 5 <= cap; i++) {
		uint8_t c = b.ptr[i];

		if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

/* An integer field of any width and signedness as a sign and a magnitude (no one integer
 * type holds both INT64_MIN and UINT64_MAX). Returns false for a field that is not an
 * integer. */
static bool field_integer(const struct sv_field *f, bool *neg, uint64_t *mag)
{
	int64_t s;

	switch (f->type) {
	case SV_FIELD_U8:
		*neg = false, *mag = f->v.u8;
		return true;
	case SV_FIELD_U16:
		*neg = false, *mag = f->v.u16;
		return true;
	case SV_FIELD_U32:
		*neg = false, *mag = f->v.u32;
		return true;
	case SV_FIELD_U64:
		*neg = false, *mag = f->v.u64;
		return true;
	case SV_FIELD_I8:
		s = f->v.i8;
		break;
	case SV_FIELD_I16:
		s = f->v.i16;
		break;
	case SV_FIELD_I32:
		s = f->v.i32;
		break;
	case SV_FIELD_I64:
		s = f->v.i64;
		break;
	default:
		return false;
	}
	*neg = s < 0;
	/* -(INT64_MIN) overflows; its magnitude in uint64_t arithmetic does not. */
	*mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
	return true;
}

int sv_batch_classify(const struct sv_basic_props *props, struct sv_batch_info *info,
		      struct sv_codec_error *err)
{
	struct sv_field f;
	char shown[64];
	bool neg;
	uint64_t n;

	if (!(props->flags & SV_PROP_CONTENT_TYPE) ||
	    !bytes_are(props->content_type, SV_BATCH_CONTENT_TYPE))
		return 0;
	if (!(props->flags & SV_PROP_CONTENT_ENCODING))
		info->codec = SV_BATCH_PLAIN;
	else if (bytes_are(props->content_encoding, "lz4"))
		info->codec = SV_BATCH_LZ4;
	else if (bytes_are(props->content_encoding, "zstd"))
		info->codec = SV_BATCH_ZSTD;
	else
		return BAD(err, "envelope: content_encoding \"%s\" is none of absent, lz4, zstd",
			   printable(props->content_encoding, shown, sizeof shown));
	if (!(props->flags & SV_PROP_HEADERS))
		return BAD(err, "envelope: no headers, so no " SV_BATCH_RECORDS_HEADER);
	/* The headers of a decoded message were validated with it; properties built some other
	 * way may not have been, and sv_table_find cannot tell malformed from absent. */
	if (sv_table_validate(props->headers.ptr, props->headers.len, err)) {
		char why[sizeof err->reason];

		memcpy(why, err->reason, sizeof why);
		return BAD(err, "envelope: headers do not decode: %.100s", why);
	}
	if (!sv_table_find(props->headers, SV_BATCH_RECORDS_HEADER, &f))
		return BAD(err, "envelope: header " SV_BATCH_RECORDS_HEADER " missing");
	if (!field_integer(&f, &neg, &n))
		return BAD(err, "envelope: header " SV_BATCH_RECORDS_HEADER
				" has field type '%c', not an integer",
			   f.type >= 0x20 && f.type < 0x7F ? f.type : '?');
	if (neg)
		return BAD(err, "envelope: header " SV_BATCH_RECORDS_HEADER " is negative (-%llu)",
			   (unsigned long long)n);
	if (n == 0)
		return BAD(err, "envelope: header " SV_BATCH_RECORDS_HEADER " is 0");
	if (n > SV_BATCH_RECORDS_MAX)
		return BAD(err, "envelope: header " SV_BATCH_RECORDS_HEADER " is %llu, over %llu",
			   (unsigned long long)n, (unsigned long long)SV_BATCH_RECORDS_MAX);
	info->records = n;
	return 1;
}

static int lz4_inflate(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *len,
		       struct sv_codec_error *err)
{
	LZ4F_dctx *dctx;
	LZ4F_frameInfo_t fi;
	size_t i = in_len, o = 0, ret;
	int rc = -1;

	if (in_len < 4 || load32le(in) != LZ4F_MAGICNUMBER)
		return BAD(err, "lz4 envelope: the body does not start with an LZ4 frame's magic "
				"number");
	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return BAD(err, "lz4 envelope: out of memory for a decompression context");
	ret = LZ4F_getFrameInfo(dctx, &fi, in, &i);
	if (LZ4F_isError(ret)) {
		BAD(err, "lz4 envelope: frame header: %s", LZ4F_getErrorName(ret));
		goto out;
	}
	if (fi.contentSize > cap) {
		BAD(err, "lz4 envelope: the frame declares %llu bytes, over the limit of %zu",
		    (unsigned long long)fi.contentSize, cap);
		goto out;
	}
	/* ret is LZ4F's hint of the input it wants next; 0 once the frame has ended. */
	while (ret != 0) {
		/* Once out is full, a spare byte asks whether the frame has more to give: output
		 * there means over the cap, while the end mark and checksum still decode. */
		uint8_t spare;
		uint8_t *dst = o < cap ? out + o : &spare;
		size_t dn = o < cap ? cap - o : 1, sn = in_len - i;

		ret = LZ4F_decompress(dctx, dst, &dn, in + i, &sn, NULL);
		if (LZ4F_isError(ret)) {
			BAD(err, "lz4 envelope: corrupt frame: %s", LZ4F_getErrorName(ret));
			goto out;
		}
		if (dst == &spare && dn) {
			BAD(err, "lz4 envelope: decompresses to more than the limit of %zu bytes",
			    cap);
			goto out;
		}
		o += dn;
		i += sn;
		if (ret != 0 && dn == 0 && sn == 0) {
			BAD(err, "lz4 envelope: the frame is truncated (%zu bytes, %zu decoded)",
			    in_len, o);
			goto out;
		}
	}
	if (i != in_len) {
		BAD(err, "lz4 envelope: %zu bytes follow the frame", in_len - i);
		goto out;
	}
	*len = o;
	rc = 0;
out:
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}

static int zstd_inflate(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *len,
			struct sv_codec_error *err)
{
	ZSTD_DCtx *dctx;
	unsigned long long declared;
	size_t frame, n;

	/* The magic number excludes skippable frames, which a one-frame envelope cannot be, and
	 * the legacy formats a library built with them would otherwise accept. */
	if (in_len < 4 || load32le(in) != ZSTD_MAGICNUMBER)
		return BAD(err, "zstd envelope: the body does not start with a zstd frame's magic "
				"number");
	frame = ZSTD_findFrameCompressedSize(in, in_len);
	if (ZSTD_isError(frame))
		return BAD(err, "zstd envelope: not one complete frame: %s",
			   ZSTD_getErrorName(frame));
	if (frame != in_len)
		return BAD(err, "zstd envelope: %zu bytes follow the frame", in_len - frame);
	declared = ZSTD_getFrameContentSize(in, in_len);
	if (declared == ZSTD_CONTENTSIZE_ERROR)
		return BAD(err, "zstd envelope: the frame header does not decode");
	if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap)
		return BAD(err, "zstd envelope: the frame declares %llu bytes, over the limit of %zu",
			   declared, cap);
	dctx = ZSTD_createDCtx();
	if (!dctx)
		return BAD(err, "zstd envelope: out of memory for a decompression context");
	/* One shot: zstd writes only into out[0, cap) and fails rather than go past it. */
	n = ZSTD_decompressDCtx(dctx, out, cap, in, in_len);
	ZSTD_freeDCtx(dctx);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			return BAD(err, "zstd envelope: decompresses to more than the limit of %zu "
					"bytes",
				   cap);
		return BAD(err, "zstd envelope: corrupt frame: %s", ZSTD_getErrorName(n));
	}
	*len = n;
	return 0;
}

int sv_batch_inflate(enum sv_batch_codec codec, const uint8_t *in, size_t in_len, uint8_t *out,
		     size_t cap, const uint8_t **body, size_t *len, struct sv_codec_error *err)
{
	switch (codec) {
	case SV_BATCH_PLAIN:
		*body = in;
		*len = in_len;
		return 0;
	case SV_BATCH_LZ4:
		if (lz4_inflate(in, in_len, out, cap, len, err))
			return -1;
		*body = out;
		return 0;
	case SV_BATCH_ZSTD:
		if (zstd_inflate(in, in_len, out, cap, len, err))
			return -1;
		*body = out;
		return 0;
	}
	return BAD(err, "envelope: unknown codec %d", (int)codec);
}

int sv_batch_check(const uint8_t *body, size_t len, uint64_t records, struct sv_codec_error *err)
{
	size_t at = 0;
	uint64_t k;

	for (k = 0; k < records; k++) {
		uint32_t n;

		if (len - at < SV_BATCH_RECORD_PREFIX) {
			if (at == len)
				return BAD(err, "envelope: the body holds %llu records, "
						SV_BATCH_RECORDS_HEADER " says %llu",
					   (unsigned long long)k, (unsigned long long)records);
			return BAD(err, "envelope: record %llu's length is cut off (%zu of 4 bytes)",
				   (unsigned long long)k, len - at);
		}
		n = sv_load32(body + at);
		at += SV_BATCH_RECORD_PREFIX;
		if (n > len - at)
			return BAD(err, "envelope: record %llu claims %lu bytes, %zu remain",
				   (unsigned long long)k, (unsigned long)n, len - at);
		at += n;
	}
	if (at != len)
		return BAD(err, "envelope: %zu bytes follow the %llu records " SV_BATCH_RECORDS_HEADER
				" says the body holds",
			   len - at, (unsigned long long)records);
	return 0;
}

/* lz4 frames salvo writes: the content size in the header (readers can size a buffer, and
 * sv_batch_inflate refuses a bomb at once) and a content checksum (corruption is caught). */
static LZ4F_preferences_t lz4_prefs(int level, size_t in_len)
{
	LZ4F_preferences_t p;

	memset(&p, 0, sizeof p);
	p.frameInfo.contentSize = in_len;
	p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	p.compressionLevel = level;
	/* One update takes the whole body; autoFlush lets it write every block at once, so
	 * LZ4F_compressFrameBound's room is enough and nothing stays buffered in the context. */
	p.autoFlush = 1;
	return p;
}

#define LZ4_LEVEL_MAX 12  /* LZ4HC_CLEVEL_MAX */
#define ZSTD_LEVEL_MAX 19 /* 20-22 are zstd's "ultra" levels, with windows of 32 MiB and more */

int sv_batch_zip_init(struct sv_batch_zip *z, enum sv_batch_codec codec, int level,
		      struct sv_codec_error *err)
{
	z->codec = codec;
	z->level = level;
	z->ctx = NULL;
	switch (codec) {
	case SV_BATCH_LZ4: {
		LZ4F_cctx *c;

		if (level < 0 || level > LZ4_LEVEL_MAX)
			return sv_fail(err, 0, "lz4 level %d is outside 0..%d", level, LZ4_LEVEL_MAX);
		if (LZ4F_isError(LZ4F_createCompressionContext(&c, LZ4F_VERSION)))
			return sv_fail(err, 0, "lz4: out of memory for a compression context");
		z->ctx = c;
		return 0;
	}
	case SV_BATCH_ZSTD: {
		ZSTD_CCtx *c;

		if (level < 0 || level > ZSTD_LEVEL_MAX)
			return sv_fail(err, 0, "zstd level %d is outside 0..%d", level,
				       ZSTD_LEVEL_MAX);
		c = ZSTD_createCCtx();
		if (!c)
			return sv_fail(err, 0, "zstd: out of memory for a compression context");
		if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1))) {
			ZSTD_freeCCtx(c);
			return sv_fail(err, 0, "zstd: the library refused level %d", level);
		}
		z->ctx = c;
		return 0;
	}
	case SV_BATCH_PLAIN:
		return sv_fail(err, 0, "compression context for the plain codec: nothing to compress");
	}
	return sv_fail(err, 0, "compression context for unknown codec %d", (int)codec);
}

void sv_batch_zip_free(struct sv_batch_zip *z)
{
	if (!z->ctx)
		return;
	if (z->codec == SV_BATCH_LZ4)
		LZ4F_freeCompressionContext(z->ctx);
	else if (z->codec == SV_BATCH_ZSTD)
		ZSTD_freeCCtx(z->ctx);
	z->ctx = NULL;
}

size_t sv_batch_zip_bound(const struct sv_batch_zip *z, size_t in_len)
{
	LZ4F_preferences_t p;

	switch (z->codec) {
	case SV_BATCH_LZ4:
		p = lz4_prefs(z->level, in_len);
		return LZ4F_compressFrameBound(in_len, &p);
	case SV_BATCH_ZSTD:
		return ZSTD_compressBound(in_len);
	case SV_BATCH_PLAIN:
		break;
	}
	return in_len;
}

size_t sv_batch_zip_run(struct sv_batch_zip *z, const uint8_t *in, size_t in_len, uint8_t *out,
			size_t cap)
{
	LZ4F_preferences_t p;
	size_t n, at;

	if (!z->ctx)
		return 0;
	switch (z->codec) {
	case SV_BATCH_LZ4:
		/* Begin, one update, end: the stable API's equivalent of LZ4F_compressFrame with
		 * a reused context (LZ4F_compressFrame_usingCDict is in the static-only part). */
		p = lz4_prefs(z->level, in_len);
		n = LZ4F_compressBegin(z->ctx, out, cap, &p);
		if (LZ4F_isError(n))
			return 0;
		at = n;
		n = LZ4F_compressUpdate(z->ctx, out + at, cap - at, in, in_len, NULL);
		if (LZ4F_isError(n))
			return 0;
		at += n;
		n = LZ4F_compressEnd(z->ctx, out + at, cap - at, NULL);
		return LZ4F_isError(n) ? 0 : at + n;
	case SV_BATCH_ZSTD:
		/* One shot: the content size is known, so zstd writes it into the header. */
		n = ZSTD_compress2(z->ctx, out, cap, in, in_len);
		return ZSTD_isError(n) ? 0 : n;
	case SV_BATCH_PLAIN:
		break;
	}
	return 0;
}

const char *sv_batch_codec_name(enum sv_batch_codec codec)
{
	switch (codec) {
	case SV_BATCH_LZ4:
		return "lz4";
	case SV_BATCH_ZSTD:
		return "zstd";
	case SV_BATCH_PLAIN:
		break;
	}
	return NULL;
}
