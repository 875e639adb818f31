/* SPDX-License-Identifier: MIT */
/*
 * AMQP field tables and arrays, with RabbitMQ's field types (the 0-9-1 errata: 's' is a
 * signed 16-bit integer, 'l' a signed 64-bit one, 'L' unsigned 64-bit, no short-string
 * type). Decoding validates a whole table once (types, lengths, nesting depth); afterwards
 * iterators walk it. Encoding goes through sv_table_writer, which builds into a caller's
 * buffer and never allocates.
 */
#ifndef SALVO_TABLE_H
#define SALVO_TABLE_H

#include "codec.h"
#include "wire.h"

enum sv_field_type {
	SV_FIELD_BOOL = 't',
	SV_FIELD_I8 = 'b',
	SV_FIELD_U8 = 'B',
	SV_FIELD_I16 = 's',
	SV_FIELD_U16 = 'u',
	SV_FIELD_I32 = 'I',
	SV_FIELD_U32 = 'i',
	SV_FIELD_I64 = 'l',
	SV_FIELD_U64 = 'L',
	SV_FIELD_FLOAT = 'f',
	SV_FIELD_DOUBLE = 'd',
	SV_FIELD_DECIMAL = 'D',
	SV_FIELD_LONGSTR = 'S',
	SV_FIELD_BYTES = 'x',
	SV_FIELD_ARRAY = 'A',
	SV_FIELD_TIMESTAMP = 'T',
	SV_FIELD_TABLE = 'F',
	SV_FIELD_VOID = 'V',
};

struct sv_decimal {
	uint8_t scale; /* number of decimal digits after the point */
	uint32_t value; /* unscaled value, as RabbitMQ reads it */
};

struct sv_field {
	uint8_t type; /* enum sv_field_type */
	union {
		bool b;
		int8_t i8;
		uint8_t u8;
		int16_t i16;
		uint16_t u16;
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64;
		float f;
		double d;
		struct sv_decimal decimal;
		struct sv_bytes str; /* S and x */
		struct sv_array array;
		uint64_t timestamp;
		struct sv_table table;
	} v;
};

/*
 * Read a table (4-byte length, then contents) at the cursor and validate all of it,
 * nested tables and arrays included. On failure: 502 with the reason, -1.
 */
int sv_rd_table(struct sv_rd *r, struct sv_table *t, struct sv_codec_error *err);

/* Validate encoded table contents (no length prefix). */
int sv_table_validate(const uint8_t *p, uint32_t len, struct sv_codec_error *err);

/*
 * Iterate a table: sv_table_next returns 1 with the next key and value, 0 at the end, -1 on
 * malformed input (possible only for tables that were not validated). Nested tables and
 * arrays come back as struct sv_table / sv_array to iterate in turn.
 */
struct sv_table_iter {
	const uint8_t *p;
	const uint8_t *end;
};

void sv_table_iter_init(struct sv_table_iter *it, struct sv_table t);
int sv_table_next(struct sv_table_iter *it, struct sv_bytes *key, struct sv_field *val,
		  struct sv_codec_error *err);

struct sv_array_iter {
	const uint8_t *p;
	const uint8_t *end;
};

void sv_array_iter_init(struct sv_array_iter *it, struct sv_array a);
int sv_array_next(struct sv_array_iter *it, struct sv_field *val, struct sv_codec_error *err);

/* Find the first entry named key; false if absent (or the table is malformed). */
bool sv_table_find(struct sv_table t, const char *key, struct sv_field *val);

/*
 * Building a table. Values are added to the innermost open table or array: in a table each
 * needs a key (at most 255 bytes), in an array the key must be NULL. The first failure (no
 * room, bad key, nesting past SV_TABLE_MAX_DEPTH, unbalanced begin/end) is sticky and is
 * reported by sv_table_writer_finish. The result is the table's contents, ready to be passed
 * wherever a struct sv_table goes.
 */
struct sv_table_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	unsigned depth;
	/* Offset of each open nested container's length field; the outermost table is level
	 * 1, so at most SV_TABLE_MAX_DEPTH - 1 containers can be open inside it. */
	size_t open[SV_TABLE_MAX_DEPTH - 1];
	bool in_array[SV_TABLE_MAX_DEPTH]; /* indexed by depth; [0] is the outermost table */
	const char *failed; /* first failure, or NULL */
};

void sv_table_writer_init(struct sv_table_writer *w, uint8_t *buf, size_t cap);
int sv_table_writer_finish(struct sv_table_writer *w, struct sv_table *out,
			   struct sv_codec_error *err);

/* Add any value; nested F and A values are copied as their encoded bytes. */
void sv_tw_field(struct sv_table_writer *w, const char *key, const struct sv_field *f);
void sv_tw_bool(struct sv_table_writer *w, const char *key, bool v);
void sv_tw_i64(struct sv_table_writer *w, const char *key, int64_t v);
void sv_tw_str(struct sv_table_writer *w, const char *key, const char *s);
void sv_tw_table_begin(struct sv_table_writer *w, const char *key);
void sv_tw_table_end(struct sv_table_writer *w);
void sv_tw_array_begin(struct sv_table_writer *w, const char *key);
void sv_tw_array_end(struct sv_table_writer *w);

#endif
