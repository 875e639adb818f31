/* SPDX-License-Identifier: MIT */
/*
 * salvo's AMQP 0-9-1 codec: pure functions over (buf, len).
 *
 * Nothing here does I/O, allocates, or keeps hidden state. Decoders never copy: strings and
 * tables they return point into the caller's input, which must outlive them. Every decoder
 * checks every length against the bytes it was given before reading, so a hostile peer can
 * make it fail but never read past the input.
 *
 * Failures fill a struct sv_codec_error: the AMQP reply code the client must send in
 * connection.close (501 FRAME_ERROR, 502 SYNTAX_ERROR, 505 UNEXPECTED_FRAME,
 * 540 NOT_IMPLEMENTED), the method being decoded when known, and a readable reason.
 * Encoders fail (reply code 0) only on a caller mistake: no room, or a value the wire
 * cannot carry (a short string over 255 bytes).
 *
 * Internal to libsalvo: the prefix sv_ marks it; none of it is exported.
 */
#ifndef SALVO_CODEC_H
#define SALVO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SV_FRAME_METHOD 1
#define SV_FRAME_HEADER 2
#define SV_FRAME_BODY 3
#define SV_FRAME_HEARTBEAT 8
#define SV_FRAME_END 0xCE

/* type (1) + channel (2) + size (4) */
#define SV_FRAME_HEADER_SIZE 7
/* header + frame-end octet: what a frame costs beyond its payload */
#define SV_FRAME_OVERHEAD 8
/* Every peer accepts frames this large, negotiated or not (spec: frame-min-size). */
#define SV_FRAME_MIN_SIZE 4096

/* Tables and arrays nest at most this deep; deeper input is a 502, not a stack overflow. */
#define SV_TABLE_MAX_DEPTH 16

#define SV_SHORTSTR_MAX 255

/* Reply codes the decoder reports (the full table is generated: sv_reply_code_name()). */
#define SV_REPLY_FRAME_ERROR 501
#define SV_REPLY_SYNTAX_ERROR 502
#define SV_REPLY_UNEXPECTED_FRAME 505
#define SV_REPLY_NOT_IMPLEMENTED 540

/* A short or long string: bytes, not NUL-terminated, pointing into someone else's buffer. */
struct sv_bytes {
	const uint8_t *ptr;
	uint32_t len;
};

/* The encoded contents of a field table (without its 4-byte length prefix). A decoded table
 * has been validated in full; read it with sv_table_iter / sv_table_find. */
struct sv_table {
	const uint8_t *ptr;
	uint32_t len;
};

/* The encoded contents of a field array (without its 4-byte length prefix). */
struct sv_array {
	const uint8_t *ptr;
	uint32_t len;
};

struct sv_codec_error {
	uint16_t reply_code; /* 501, 502, 505, 540 from decoders; 0 for encoder misuse */
	uint16_t class_id;   /* of the method being decoded, 0 if none */
	uint16_t method_id;
	char reason[160];
};

#define SV_BYTES(s) ((struct sv_bytes){(const uint8_t *)(s), (uint32_t)sizeof(s) - 1})

/* Record a failure; returns -1 so callers can `return sv_fail(...)`. */
int sv_fail(struct sv_codec_error *err, uint16_t reply_code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
