/* SPDX-License-Identifier: MIT */
/* Frames: the envelope, content headers, heartbeats, the sticky reader and the order of a
 * message's frames (frame.h). */
#include <stdarg.h>
#include <stdio.h>

#include "frame.h"
#include "wire.h"

const uint8_t sv_protocol_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

/* Smallest payload of each frame type: method ids; class, weight, body size, flags. */
static uint32_t min_payload(uint8_t type)
{
	switch (type) {
	case SV_FRAME_METHOD:
		return 4;
	case SV_FRAME_HEADER:
		return 14;
	default:
		return 0;
	}
}

ssize_t sv_frame_parse(const uint8_t *buf, size_t len, uint32_t frame_max, struct sv_frame *f,
		       struct sv_codec_error *err)
{
	uint8_t type;
	uint16_t channel;
	uint32_t size;

	/* Checks use locals, not *f: a compiler may test adjacent struct fields with one wide
	 * load that covers padding, which memory checkers then report as uninitialised. */
	if (len < SV_FRAME_HEADER_SIZE)
		return 0;
	type = buf[0];
	channel = sv_load16(buf + 1);
	size = sv_load32(buf + 3);
	if (type != SV_FRAME_METHOD && type != SV_FRAME_HEADER && type != SV_FRAME_BODY &&
	    type != SV_FRAME_HEARTBEAT)
		return sv_fail(err, SV_REPLY_FRAME_ERROR, "unknown frame type %u", type);
	/* Compare the payload against the room frame_max leaves, never size + 8 (overflow). */
	if (frame_max < SV_FRAME_OVERHEAD || size > frame_max - SV_FRAME_OVERHEAD)
		return sv_fail(err, SV_REPLY_FRAME_ERROR,
			       "frame of %u payload bytes exceeds frame_max %u", size, frame_max);
	if (size < min_payload(type))
		return sv_fail(err, SV_REPLY_FRAME_ERROR, "%s frame of %u bytes is too short",
			       type == SV_FRAME_METHOD ? "method" : "content header", size);
	if (type == SV_FRAME_HEARTBEAT && (size != 0 || channel != 0))
		return sv_fail(err, SV_REPLY_FRAME_ERROR,
			       "heartbeat frame with %u payload bytes on channel %u", size, channel);
	if (len - SV_FRAME_HEADER_SIZE <= size)
		return 0;
	if (buf[SV_FRAME_HEADER_SIZE + size] != SV_FRAME_END)
		return sv_fail(err, SV_REPLY_FRAME_ERROR, "frame end octet is 0x%02x, not 0xce",
			       buf[SV_FRAME_HEADER_SIZE + size]);
	f->type = type;
	f->channel = channel;
	f->size = size;
	f->payload = buf + SV_FRAME_HEADER_SIZE;
	return (ssize_t)size + SV_FRAME_OVERHEAD;
}

int sv_content_header_decode(const uint8_t *p, size_t len, struct sv_content_header *h,
			     struct sv_codec_error *err)
{
	struct sv_rd r = {p, p + len};

	if (!sv_rd_u16(&r, &h->class_id) || !sv_rd_u16(&r, &h->weight) ||
	    !sv_rd_u64(&r, &h->body_size))
		return sv_fail(err, SV_REPLY_FRAME_ERROR, "content header of %zu bytes is too short",
			       len);
	if (h->class_id != SV_CLASS_BASIC)
		return sv_fail(err, SV_REPLY_NOT_IMPLEMENTED, "content header of unknown class %u",
			       h->class_id);
	if (h->body_size >> 63)
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR,
			       "content body size 0x%016llx has the high bit set",
			       (unsigned long long)h->body_size);
	if (sv_basic_props_decode(&r, &h->props, err))
		return -1;
	if (sv_rd_left(&r))
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "%zu bytes after the last property",
			       sv_rd_left(&r));
	return 0;
}

ssize_t sv_frame_decode(const uint8_t *buf, size_t len, uint32_t frame_max,
			struct sv_decoded_frame *d, struct sv_codec_error *err)
{
	ssize_t n = sv_frame_parse(buf, len, frame_max, &d->frame, err);
	int rc = 0;

	if (n <= 0)
		return n;
	if (d->frame.type == SV_FRAME_METHOD)
		rc = sv_method_decode(d->frame.payload, d->frame.size, &d->u.method, err);
	else if (d->frame.type == SV_FRAME_HEADER)
		rc = sv_content_header_decode(d->frame.payload, d->frame.size, &d->u.header, err);
	return rc ? -1 : n;
}

/* Frame writers: the payload is encoded in place after the 7-byte header, then the header
 * and frame-end are filled in around it. */

static size_t frame_close(uint8_t *buf, uint8_t type, uint16_t channel, size_t payload,
			  struct sv_codec_error *err)
{
	if (!payload)
		return 0; /* the payload encoder failed and said why */
	if (payload > UINT32_MAX) {
		sv_fail(err, 0, "frame payload of %zu bytes exceeds 4 GiB", payload);
		return 0;
	}
	sv_store32(sv_store16(sv_store8(buf, type), channel), (uint32_t)payload);
	buf[SV_FRAME_HEADER_SIZE + payload] = SV_FRAME_END;
	return payload + SV_FRAME_OVERHEAD;
}

static bool frame_room(size_t cap, struct sv_codec_error *err)
{
	if (cap >= SV_FRAME_OVERHEAD)
		return true;
	sv_fail(err, 0, "buffer of %zu bytes cannot hold a frame", cap);
	return false;
}

size_t sv_frame_put_method(uint8_t *buf, size_t cap, uint16_t channel, const struct sv_method *m,
			   struct sv_codec_error *err)
{
	size_t n;

	if (!frame_room(cap, err))
		return 0;
	n = sv_method_encode(buf + SV_FRAME_HEADER_SIZE, cap - SV_FRAME_OVERHEAD, m, err);
	return frame_close(buf, SV_FRAME_METHOD, channel, n, err);
}

size_t sv_frame_put_header(uint8_t *buf, size_t cap, uint16_t channel,
			   const struct sv_content_header *h, struct sv_codec_error *err)
{
	uint8_t *p = buf + SV_FRAME_HEADER_SIZE;
	size_t n;

	if (!frame_room(cap, err))
		return 0;
	if (cap - SV_FRAME_OVERHEAD < 12) {
		sv_fail(err, 0, "buffer of %zu bytes cannot hold a content header", cap);
		return 0;
	}
	if (h->body_size >> 63) {
		sv_fail(err, 0, "body size %llu exceeds 2^63 - 1", (unsigned long long)h->body_size);
		return 0;
	}
	sv_store64(sv_store16(sv_store16(p, h->class_id), h->weight), h->body_size);
	n = sv_basic_props_encode(p + 12, cap - SV_FRAME_OVERHEAD - 12, &h->props, err);
	return frame_close(buf, SV_FRAME_HEADER, channel, n ? n + 12 : 0, err);
}

size_t sv_frame_put_body(uint8_t *buf, size_t cap, uint16_t channel, const void *body,
			 uint32_t len, struct sv_codec_error *err)
{
	if (!frame_room(cap, err))
		return 0;
	if (cap - SV_FRAME_OVERHEAD < len) {
		sv_fail(err, 0, "body frame of %u bytes needs a buffer of %zu, got %zu", len,
			(size_t)len + SV_FRAME_OVERHEAD, cap);
		return 0;
	}
	sv_store_bytes(buf + SV_FRAME_HEADER_SIZE, body, len);
	sv_store32(sv_store16(sv_store8(buf, SV_FRAME_BODY), channel), len);
	buf[SV_FRAME_HEADER_SIZE + len] = SV_FRAME_END;
	return (size_t)len + SV_FRAME_OVERHEAD;
}

void sv_frame_put_heartbeat(uint8_t buf[SV_HEARTBEAT_FRAME_SIZE])
{
	static const uint8_t hb[SV_HEARTBEAT_FRAME_SIZE] = {SV_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0,
							     SV_FRAME_END};
	sv_store_bytes(buf, hb, sizeof hb);
}

/* Stream reader. */

void sv_reader_init(struct sv_reader *r, uint32_t frame_max)
{
	r->frame_max = frame_max;
	r->failed = false;
}

ssize_t sv_reader_next(struct sv_reader *r, const uint8_t *buf, size_t len,
		       struct sv_decoded_frame *d)
{
	ssize_t n;

	if (r->failed)
		return -1;
	n = sv_frame_decode(buf, len, r->frame_max, d, &r->err);
	if (n < 0)
		r->failed = true;
	return n;
}

/* Content order. */

enum { EXPECT_METHOD, EXPECT_HEADER, EXPECT_BODY };

void sv_content_init(struct sv_content_state *s)
{
	s->expect = EXPECT_METHOD;
	s->class_id = 0;
	s->remaining = 0;
}

static const char *frame_kind(uint8_t type)
{
	switch (type) {
	case SV_FRAME_METHOD:
		return "method";
	case SV_FRAME_HEADER:
		return "content header";
	case SV_FRAME_BODY:
		return "content body";
	default:
		return "heartbeat";
	}
}

int sv_content_feed(struct sv_content_state *s, const struct sv_decoded_frame *d,
		    struct sv_codec_error *err)
{
	static const char *const want[] = {"a method", "a content header", "a content body"};
	const struct sv_method_desc *desc;
	uint8_t type = d->frame.type;

	switch (s->expect) {
	case EXPECT_METHOD:
		if (type != SV_FRAME_METHOD)
			break;
		desc = sv_method_desc(d->u.method.id);
		if (!desc || !desc->content)
			return SV_CONTENT_METHOD;
		s->expect = EXPECT_HEADER;
		s->class_id = (uint16_t)(d->u.method.id >> 16);
		return SV_CONTENT_PENDING;
	case EXPECT_HEADER:
		if (type != SV_FRAME_HEADER)
			break;
		if (d->u.header.class_id != s->class_id)
			return sv_fail(err, SV_REPLY_UNEXPECTED_FRAME,
				       "content header of class %u follows a method of class %u",
				       d->u.header.class_id, s->class_id);
		s->remaining = d->u.header.body_size;
		s->expect = s->remaining ? EXPECT_BODY : EXPECT_METHOD;
		return s->remaining ? SV_CONTENT_PENDING : SV_CONTENT_COMPLETE;
	case EXPECT_BODY:
		if (type != SV_FRAME_BODY)
			break;
		if (d->frame.size > s->remaining)
			return sv_fail(err, SV_REPLY_UNEXPECTED_FRAME,
				       "content body frame of %u bytes exceeds the %llu still due",
				       d->frame.size, (unsigned long long)s->remaining);
		s->remaining -= d->frame.size;
		if (s->remaining)
			return SV_CONTENT_PENDING;
		s->expect = EXPECT_METHOD;
		return SV_CONTENT_COMPLETE;
	}
	return sv_fail(err, SV_REPLY_UNEXPECTED_FRAME, "%s frame on channel %u where %s was due",
		       frame_kind(type), d->frame.channel, want[s->expect]);
}
