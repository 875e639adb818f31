/* SPDX-License-Identifier: MIT */
/*
 * Publish templates: basic.publish's method frame and content header frame, encoded once
 * per (channel, exchange, routing key, mandatory, properties). Producing a message's frames
 * is then one copy of the template, an 8-byte patch of the body size, and the body frames.
 * This is what a publisher's hot path does per message; it checks nothing and cannot fail.
 */
#ifndef SALVO_TEMPLATE_H
#define SALVO_TEMPLATE_H

#include "codec.h"
#include "methods.h"

/* The largest basic.publish method frame: envelope (8), class and method ids (4), reserved
 * short (2), exchange and routing key (1 + 255 each), mandatory/immediate octet (1). */
#define SV_PUBLISH_METHOD_MAX 527

struct sv_publish_template {
	const uint8_t *bytes;  /* method frame then content header frame (body size 0) */
	uint32_t len;
	uint32_t body_size_at; /* offset of the header's 64-bit body size in bytes */
	uint32_t chunk;        /* body bytes per body frame: frame_max - 8 */
	uint16_t channel;
};

/*
 * Encode the template into buf (which must outlive t). frame_max is the negotiated frame
 * size (at least SV_FRAME_MIN_SIZE). Returns 0, or -1 with err filled: a short string over
 * 255 bytes, undefined property flags, a content header that does not fit in frame_max, or
 * a buffer too small.
 */
int sv_publish_template_init(struct sv_publish_template *t, uint8_t *buf, size_t cap,
			     uint16_t channel, struct sv_bytes exchange, struct sv_bytes routing_key,
			     bool mandatory, const struct sv_basic_props *props, uint32_t frame_max,
			     struct sv_codec_error *err);

/* Bytes sv_publish_write produces for a body of body_len bytes: template, then one body
 * frame per chunk (none for an empty body). */
static inline size_t sv_publish_size(const struct sv_publish_template *t, size_t body_len)
{
	size_t frames = body_len / t->chunk + (body_len % t->chunk != 0);
	return t->len + body_len + frames * SV_FRAME_OVERHEAD;
}

/* Write a message's frames to out, which holds sv_publish_size(t, body_len) bytes. */
void sv_publish_write(const struct sv_publish_template *t, uint8_t *out, const void *body,
		      size_t body_len);

#endif
