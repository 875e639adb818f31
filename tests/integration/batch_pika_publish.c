/* SPDX-License-Identifier: MIT */
/*
 * For test_batch_pika.py: publish records with the sample properties and headers of
 * props_sample.h, batched, where salvo-publish cannot (it sends no properties but the
 * delivery mode, and its records are lines).
 *
 *     batch_pika_publish QUEUE none|lz4|zstd < RECORDS
 *
 * RECORDS is the records back to back, each a 32-bit big-endian length then its bytes
 * (an envelope body's own layout, so any byte may be in a record). They go to QUEUE
 * through the default exchange in envelopes of up to 1000 records and 65536 bytes
 * (linger 100 ms, so envelopes close by their size), with async confirms. The properties
 * are the sample's less content_type and content_encoding, which the envelope format
 * takes. Prints "records R envelopes E" and exits 0 when every record was acked; exits 1
 * on any failure, 77 without SALVO_TEST_URI.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salvo.h"

#include "../check.h"
#include "../props_sample.h"
#include "../rabbit.h"

/* All of standard input; *len its size. */
static uint8_t *read_stdin(size_t *len)
{
	size_t cap = 1 << 16, n = 0, got;
	uint8_t *buf = malloc(cap);

	CHECK(buf);
	while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			CHECK(buf);
		}
	}
	CHECK(!ferror(stdin));
	*len = n;
	return buf;
}

static salvo_compression compression(const char *name)
{
	if (strcmp(name, "lz4") == 0)
		return SALVO_COMPRESSION_LZ4;
	if (strcmp(name, "zstd") == 0)
		return SALVO_COMPRESSION_ZSTD;
	CHECK(strcmp(name, "none") == 0);
	return SALVO_COMPRESSION_NONE;
}

int main(int argc, char **argv)
{
	const char *uri = rabbit_test_uri();
	salvo_publisher_opts opts = {.confirm = SALVO_CONFIRM_ASYNC};
	salvo_table *h = sample_headers();
	salvo_props props = sample_props(h);
	salvo_pub_stats st;
	salvo_publisher *p;
	salvo_client *c;
	salvo_error err;
	uint64_t records = 0;
	size_t len, at = 0;
	uint8_t *in;

	if (argc != 3) {
		fprintf(stderr, "usage: batch_pika_publish QUEUE none|lz4|zstd < RECORDS\n");
		return 1;
	}
	CHECK(h);
	opts.batch = (salvo_batch_opts){
	    .max_records = 1000, .linger_us = 100000, .compression = compression(argv[2])};
	props.content_type = NULL;
	props.content_encoding = NULL;
	in = read_stdin(&len);

	c = rabbit_connect(uri, NULL);
	OK(salvo_publisher_new(c, &opts, &p, &err));
	while (at < len) {
		uint32_t n;

		CHECK(len - at >= 4);
		n = (uint32_t)in[at] << 24 | (uint32_t)in[at + 1] << 16 |
		    (uint32_t)in[at + 2] << 8 | in[at + 3];
		at += 4;
		CHECK(len - at >= n);
		OK(salvo_publish_msg(p, &(salvo_msg){"", argv[1], in + at, n, .props = &props},
				     SALVO_FOREVER, NULL, &err));
		at += n;
		records++;
	}
	OK(salvo_publisher_wait_confirms(p, 30000, &err));
	salvo_publisher_stats(p, &st);
	OK(salvo_publisher_close(p, 5000, &err));
	rabbit_close(c, 10000);
	CHECK(st.published == records && st.acked == records);
	printf("records %" PRIu64 " envelopes %" PRIu64 "\n", records, st.envelopes);
	salvo_table_destroy(h);
	free(in);
	return 0;
}
