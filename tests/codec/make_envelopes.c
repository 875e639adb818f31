/* SPDX-License-Identifier: MIT */
/*
 * Envelopes made by salvo's codec, for decoders in other languages to read
 * (test_batch_decode.py reads them with the README's Python decoder):
 *
 *   make_envelopes DIR
 *
 * writes, for each envelope NAME, DIR/NAME.body (the message body as published),
 * DIR/NAME.props (lines content_type=..., content_encoding=... (empty when absent),
 * x-salvo-records=N: the properties a consumer sees) and DIR/NAME.expect (the records, one
 * per line in hex, an empty line for an empty record). The names starting with "bad-" are
 * envelopes every reader must refuse; their .expect is empty.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "wire.h"

static const char *dir;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_envelopes: %s: %s\n", what, why);
	exit(1);
}

static FILE *open_out(const char *name, const char *ext)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
	f = fopen(path, "wb");
	if (!f)
		die(path, strerror(errno));
	return f;
}

static void close_out(FILE *f, const char *name)
{
	if (ferror(f) | fclose(f))
		die(name, "write failed");
}

/* The records of an envelope: telemetry lines, binary bytes, empty ones, one over 64 KiB. */
struct records {
	uint8_t *body;
	size_t len;
	uint32_t count;
};

static void add(struct records *r, const void *p, uint32_t n)
{
	r->body = realloc(r->body, r->len + SV_BATCH_RECORD_PREFIX + n);
	if (!r->body)
		die("records", "out of memory");
	sv_store32(r->body + r->len, n);
	memcpy(r->body + r->len + SV_BATCH_RECORD_PREFIX, p, n);
	r->len += SV_BATCH_RECORD_PREFIX + n;
	r->count++;
}

static struct records make_records(uint32_t lines, int large)
{
	struct records r = {NULL, 0, 0};
	uint8_t binary[256];
	char line[128];

	for (uint32_t i = 0; i < lines; i++) {
		int n = snprintf(line, sizeof line,
				 "{\"host\":\"node-%u\",\"seq\":%u,\"cpu\":0.%02u,\"ok\":true}",
				 i % 5, i, i * 37 % 100);

		add(&r, line, (uint32_t)n);
		if (i % 50 == 7)
			add(&r, "", 0);
	}
	for (int i = 0; i < 256; i++)
		binary[i] = (uint8_t)i;
	add(&r, binary, sizeof binary);
	if (large) {
		uint8_t *big = malloc(70000);

		if (!big)
			die("records", "out of memory");
		for (uint32_t i = 0; i < 70000; i++)
			big[i] = (uint8_t)(i * 7 / 13);
		add(&r, big, 70000);
		free(big);
	}
	return r;
}

static void write_expect(const char *name, const struct records *r)
{
	FILE *f = open_out(name, "expect");
	struct sv_batch_iter it;
	const uint8_t *rec;
	uint32_t n;

	sv_batch_iter_init(&it, r->body, r->len);
	while (sv_batch_next(&it, &rec, &n)) {
		for (uint32_t i = 0; i < n; i++)
			fprintf(f, "%02x", rec[i]);
		fputc('\n', f);
	}
	close_out(f, name);
}

/* Write one envelope: the body as given (already compressed or not) and its properties. */
static void write_envelope(const char *name, enum sv_batch_codec codec, uint64_t records,
			   const uint8_t *body, size_t len)
{
	const char *enc = sv_batch_codec_name(codec);
	FILE *f = open_out(name, "body");

	fwrite(body, 1, len, f);
	close_out(f, name);
	f = open_out(name, "props");
	fprintf(f, "content_type=%s\ncontent_encoding=%s\n%s=%llu\n", SV_BATCH_CONTENT_TYPE,
		enc ? enc : "", SV_BATCH_RECORDS_HEADER, (unsigned long long)records);
	close_out(f, name);
}

/* The envelope of r with codec at level, checked by salvo's own decoder before it is
 * written; returns the frame (the body for PLAIN), to free, and its size. */
static uint8_t *envelope(const struct records *r, enum sv_batch_codec codec, int level,
			 size_t *len)
{
	struct sv_codec_error err;
	struct sv_batch_zip z;
	const uint8_t *body;
	uint8_t *frame, *out;
	size_t bound, n;

	if (codec == SV_BATCH_PLAIN) {
		frame = malloc(r->len);
		if (!frame)
			die("envelope", "out of memory");
		memcpy(frame, r->body, r->len);
		*len = r->len;
		return frame;
	}
	if (sv_batch_zip_init(&z, codec, level, &err))
		die("compression", err.reason);
	bound = sv_batch_zip_bound(&z, r->len);
	frame = malloc(bound);
	out = malloc(r->len);
	if (!frame || !out)
		die("envelope", "out of memory");
	*len = sv_batch_zip_run(&z, r->body, r->len, frame, bound);
	sv_batch_zip_free(&z);
	if (!*len)
		die("compression", "failed");
	if (sv_batch_inflate(codec, frame, *len, out, r->len, &body, &n, &err) ||
	    sv_batch_check(body, n, r->count, &err))
		die("salvo's own decoder", err.reason);
	free(out);
	return frame;
}

static void good(const char *name, const struct records *r, enum sv_batch_codec codec,
		 int level)
{
	size_t len;
	uint8_t *frame = envelope(r, codec, level, &len);

	write_envelope(name, codec, r->count, frame, len);
	write_expect(name, r);
	free(frame);
}

/* An envelope every reader must refuse: frame (len bytes, made for r) changed by the
 * caller, or a count that disagrees. */
static void bad(const char *name, enum sv_batch_codec codec, uint64_t records,
		const uint8_t *frame, size_t len)
{
	static const struct records none = {NULL, 0, 0};

	write_envelope(name, codec, records, frame, len);
	write_expect(name, &none);
}

int main(int argc, char **argv)
{
	struct records small, large, one = {NULL, 0, 0};
	uint8_t *frame;
	size_t len;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\nWrite envelopes made by salvo's codec (plain, "
				"lz4, zstd, and malformed ones) into DIR.\n",
			argv[0]);
		return 2;
	}
	dir = argv[1];
	small = make_records(100, 0);
	large = make_records(20000, 1);
	add(&one, "", 0);

	good("plain", &small, SV_BATCH_PLAIN, 0);
	good("plain-one-empty-record", &one, SV_BATCH_PLAIN, 0);
	good("lz4", &small, SV_BATCH_LZ4, 0);
	good("lz4-level-9", &small, SV_BATCH_LZ4, 9);
	good("lz4-large", &large, SV_BATCH_LZ4, 1);
	good("zstd", &small, SV_BATCH_ZSTD, 0);
	good("zstd-level-19", &small, SV_BATCH_ZSTD, 19);
	good("zstd-large", &large, SV_BATCH_ZSTD, 3);

	bad("bad-plain-count-high", SV_BATCH_PLAIN, small.count + 1, small.body, small.len);
	bad("bad-plain-count-low", SV_BATCH_PLAIN, small.count - 1, small.body, small.len);
	bad("bad-plain-cut", SV_BATCH_PLAIN, small.count, small.body, small.len - 1);
	for (int c = SV_BATCH_LZ4; c <= SV_BATCH_ZSTD; c++) {
		char name[64];

		frame = envelope(&small, (enum sv_batch_codec)c, 0, &len);
		snprintf(name, sizeof name, "bad-%s-truncated", sv_batch_codec_name(c));
		bad(name, (enum sv_batch_codec)c, small.count, frame, len - 1);
		snprintf(name, sizeof name, "bad-%s-corrupt", sv_batch_codec_name(c));
		frame[len / 2] ^= 0x55;
		bad(name, (enum sv_batch_codec)c, small.count, frame, len);
		frame[len / 2] ^= 0x55;
		snprintf(name, sizeof name, "bad-%s-trailing-bytes", sv_batch_codec_name(c));
		frame = realloc(frame, len + 3);
		if (!frame)
			die("envelope", "out of memory");
		memcpy(frame + len, "xyz", 3);
		bad(name, (enum sv_batch_codec)c, small.count, frame, len + 3);
		free(frame);
	}
	free(small.body);
	free(large.body);
	free(one.body);
	return 0;
}
