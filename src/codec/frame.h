/* SPDX-License-Identifier: MIT */
/*
 * Frames: the envelope (type, channel, size, payload, frame-end 0xCE), content headers,
 * body frames and heartbeats; a sticky-error stream reader; and the per-channel check that
 * content arrives in order (method, header, bodies).
 *
 * Parsers follow picohttpparser: given (buf, len) they return the bytes consumed (> 0),
 * 0 when buf holds no complete frame yet, or -1 with err filled.
 */
#ifndef SALVO_FRAME_H
#define SALVO_FRAME_H

#include "codec.h"
#include "methods.h"

struct sv_frame {
	uint8_t type;
	uint16_t channel;
	uint32_t size;		/* payload bytes */
	const uint8_t *payload; /* points into the parsed buffer */
};

struct sv_content_header {
	uint16_t class_id;
	uint16_t weight;
	uint64_t body_size;
	struct sv_basic_props props;
};

/* A frame with its payload decoded according to its type. */
struct sv_decoded_frame {
	struct sv_frame frame;
	union {
		struct sv_method method;	   /* SV_FRAME_METHOD */
		struct sv_content_header header; /* SV_FRAME_HEADER */
	} u;
};

/*
 * Parse one frame's envelope. frame_max is the negotiated maximum frame size, envelope
 * included (SV_FRAME_MIN_SIZE before tuning). A negotiated 0 means "no limit" in AMQP;
 * callers must turn it into the real bound they are prepared to buffer. Errors, all 501 FRAME_ERROR: a size over
 * frame_max, a frame-end octet other than 0xCE, an unknown frame type, a payload too short
 * for its type, a heartbeat with a payload or on a channel other than 0. The size is
 * checked before waiting for the payload, so a hostile size never makes the caller buffer
 * more than frame_max.
 */
ssize_t sv_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max, struct sv_frame *f,
		       struct sv_codec_error *err);

/* sv_frame_parse, then decode a method or content header payload (sv_method_decode,
 * sv_content_header_decode and their errors). */
ssize_t sv_frame_decode(const uint8_t *buf, size_t len, uint32_t frame_max,
			struct sv_decoded_frame *d, struct sv_codec_error *err);

/*
 * Content header payload: class id, weight, body size, basic properties. 540 for a class
 * other than basic, 502 for a body size with the high bit set (the spec's sizes are
 * 63-bit) or malformed properties, 502 for bytes after the last property.
 */
int sv_content_header_decode(const uint8_t *p, size_t len, struct sv_content_header *h,
			     struct sv_codec_error *err);

/*
 * Writers of whole frames (envelope included) into buf. They return the bytes written,
 * or 0 with err filled when cap is too small or the payload cannot be encoded.
 */
size_t sv_frame_put_method(uint8_t *buf, size_t cap, uint16_t channel, const struct sv_method *m,
			   struct sv_codec_error *err);
size_t sv_frame_put_header(uint8_t *buf, size_t cap, uint16_t channel,
			   const struct sv_content_header *h, struct sv_codec_error *err);
/* One body frame; the caller splits bodies at frame_max - SV_FRAME_OVERHEAD. */
size_t sv_frame_put_body(uint8_t *buf, size_t cap, uint16_t channel, const void *body,
			 uint32_t len, struct sv_codec_error *err);
#define SV_HEARTBEAT_FRAME_SIZE 8
void sv_frame_put_heartbeat(uint8_t buf[SV_HEARTBEAT_FRAME_SIZE]);

/* The 8 bytes a client sends first, and a server sends back when it refuses the version. */
extern const uint8_t sv_protocol_header[8];

/*
 * A stream reader: sv_frame_decode with sticky errors. After the first error every call
 * returns -1 with that same error until sv_reader_init, so a connection cannot go on
 * reading past a frame it could not understand.
 */
struct sv_reader {
	uint32_t frame_max;
	bool failed;
	struct sv_codec_error err;
};

void sv_reader_init(struct sv_reader *r, uint32_t frame_max);
ssize_t sv_reader_next(struct sv_reader *r, const uint8_t *buf, size_t len,
		       struct sv_decoded_frame *d);

/*
 * Per-channel content order: a method that carries content (basic.publish, deliver,
 * return, get-ok) is followed by one content header of the same class and then body frames
 * adding up to exactly the header's body size. Anything else is 505 UNEXPECTED_FRAME: a
 * header or body out of turn, a method before the content is complete, a body past the
 * declared size. Feed it the frames of one channel other than 0; heartbeats (channel 0)
 * are not content and are refused.
 */
enum sv_content_event {
	SV_CONTENT_METHOD = 1,	/* a method without content: deliver it */
	SV_CONTENT_PENDING,	/* part of a content-bearing message; more to come */
	SV_CONTENT_COMPLETE,	/* the last frame of a message (method, header, bodies) */
};

struct sv_content_state {
	uint8_t expect; /* internal: what the next frame on this channel must be */
	uint16_t class_id;
	uint64_t remaining; /* body bytes still due */
};

void sv_content_init(struct sv_content_state *s);
int sv_content_feed(struct sv_content_state *s, const struct sv_decoded_frame *d,
		    struct sv_codec_error *err);

#endif
