/* SPDX-License-Identifier: MIT */
#include "template.h"
#include "frame.h"
#include "wire.h"

int sv_publish_template_init(struct sv_publish_template *t, uint8_t *buf, size_t cap,
			     uint16_t channel, struct sv_bytes exchange, struct sv_bytes routing_key,
			     bool mandatory, const struct sv_basic_props *props, uint32_t frame_max,
			     struct sv_codec_error *err)
{
	struct sv_method m = {.id = SV_BASIC_PUBLISH};
	struct sv_content_header h = {.class_id = SV_CLASS_BASIC, .props = *props};
	size_t method_len, header_len;

	if (frame_max < SV_FRAME_MIN_SIZE)
		return sv_fail(err, 0, "frame_max %u is below the protocol minimum %d", frame_max,
			       SV_FRAME_MIN_SIZE);
	m.a.basic_publish.exchange = exchange;
	m.a.basic_publish.routing_key = routing_key;
	m.a.basic_publish.mandatory = mandatory;
	method_len = sv_frame_put_method(buf, cap, channel, &m, err);
	if (!method_len)
		return -1;
	header_len = sv_frame_put_header(buf + method_len, cap - method_len, channel, &h, err);
	if (!header_len)
		return -1;
	/* A content header cannot be split; the method frame (at most 527 bytes) always fits. */
	if (header_len > frame_max)
		return sv_fail(err, 0, "properties make a %zu-byte content header, frame_max is %u",
			       header_len, frame_max);
	t->bytes = buf;
	t->len = (uint32_t)(method_len + header_len);
	/* header frame: 7-byte envelope, class id (2), weight (2), then the body size */
	t->body_size_at = (uint32_t)method_len + SV_FRAME_HEADER_SIZE + 4;
	t->chunk = frame_max - SV_FRAME_OVERHEAD;
	t->channel = channel;
	return 0;
}

void sv_publish_write(const struct sv_publish_template *t, uint8_t *out, const void *body,
		      size_t body_len)
{
	const uint8_t *src = body;
	uint8_t *p = sv_store_bytes(out, t->bytes, t->len);

	sv_store64(out + t->body_size_at, body_len);
	while (body_len) {
		uint32_t n = body_len < t->chunk ? (uint32_t)body_len : t->chunk;
		p = sv_store32(sv_store16(sv_store8(p, SV_FRAME_BODY), t->channel), n);
		p = sv_store_bytes(p, src, n);
		*p++ = SV_FRAME_END;
		src += n;
		body_len -= n;
	}
}
