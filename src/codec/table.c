/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "table.h"
#include "wire.h"

static int rd_container(struct sv_rd *r, const uint8_t **ptr, uint32_t *len,
			struct sv_codec_error *err, char type)
{
	struct sv_bytes b;
	if (!sv_rd_longstr(r, &b))
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "field %s length overruns its container",
			       type == 'F' ? "table" : type == 'A' ? "array" : "string");
	*ptr = b.ptr;
	*len = b.len;
	return 0;
}

static int validate_table(const uint8_t *p, uint32_t len, unsigned depth,
			  struct sv_codec_error *err);
static int validate_array(const uint8_t *p, uint32_t len, unsigned depth,
			  struct sv_codec_error *err);

/*
 * Read one field value (type octet, then its value) at the cursor. With depth != 0, nested
 * tables and arrays are validated too, depth being the nesting level they would sit at;
 * with depth == 0 they are returned unvisited (iteration of an already validated table).
 */
static int rd_value(struct sv_rd *r, struct sv_field *f, unsigned depth,
		    struct sv_codec_error *err)
{
	/* zeroed only to keep the compiler's flow analysis quiet: read only when ok */
	uint8_t u8 = 0;
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	bool ok;

	if (!sv_rd_u8(r, &f->type))
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "field value has no type octet");
	switch (f->type) {
	case SV_FIELD_BOOL:
		ok = sv_rd_u8(r, &u8);
		f->v.b = u8 != 0;
		break;
	case SV_FIELD_I8:
	case SV_FIELD_U8:
		ok = sv_rd_u8(r, &f->v.u8);
		break;
	case SV_FIELD_I16:
	case SV_FIELD_U16:
		ok = sv_rd_u16(r, &f->v.u16);
		break;
	case SV_FIELD_I32:
	case SV_FIELD_U32:
		ok = sv_rd_u32(r, &f->v.u32);
		break;
	case SV_FIELD_FLOAT:
		ok = sv_rd_u32(r, &u32);
		memcpy(&f->v.f, &u32, sizeof f->v.f);
		break;
	case SV_FIELD_I64:
	case SV_FIELD_U64:
	case SV_FIELD_TIMESTAMP:
		ok = sv_rd_u64(r, &f->v.u64);
		break;
	case SV_FIELD_DOUBLE:
		ok = sv_rd_u64(r, &u64);
		memcpy(&f->v.d, &u64, sizeof f->v.d);
		break;
	case SV_FIELD_DECIMAL:
		ok = sv_rd_u8(r, &f->v.decimal.scale) && sv_rd_u32(r, &f->v.decimal.value);
		break;
	case SV_FIELD_LONGSTR:
	case SV_FIELD_BYTES:
		return rd_container(r, &f->v.str.ptr, &f->v.str.len, err, 'S');
	case SV_FIELD_VOID:
		return 0;
	case SV_FIELD_TABLE:
		if (rd_container(r, &f->v.table.ptr, &f->v.table.len, err, 'F'))
			return -1;
		return depth ? validate_table(f->v.table.ptr, f->v.table.len, depth, err) : 0;
	case SV_FIELD_ARRAY:
		if (rd_container(r, &f->v.array.ptr, &f->v.array.len, err, 'A'))
			return -1;
		return depth ? validate_array(f->v.array.ptr, f->v.array.len, depth, err) : 0;
	default:
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "unknown field type 0x%02x", f->type);
	}
	if (!ok)
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "field value of type '%c' overruns its container",
			       f->type);
	return 0;
}

static int check_depth(unsigned depth, struct sv_codec_error *err)
{
	if (depth > SV_TABLE_MAX_DEPTH)
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "tables and arrays nested deeper than %d",
			       SV_TABLE_MAX_DEPTH);
	return 0;
}

static int validate_table(const uint8_t *p, uint32_t len, unsigned depth,
			  struct sv_codec_error *err)
{
	struct sv_rd r = {p, p + len};
	struct sv_bytes key;
	struct sv_field f;

	if (check_depth(depth, err))
		return -1;
	while (sv_rd_left(&r)) {
		if (!sv_rd_shortstr(&r, &key))
			return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "table key overruns the table");
		if (rd_value(&r, &f, depth + 1, err))
			return -1;
	}
	return 0;
}

static int validate_array(const uint8_t *p, uint32_t len, unsigned depth,
			  struct sv_codec_error *err)
{
	struct sv_rd r = {p, p + len};
	struct sv_field f;

	if (check_depth(depth, err))
		return -1;
	while (sv_rd_left(&r))
		if (rd_value(&r, &f, depth + 1, err))
			return -1;
	return 0;
}

int sv_table_validate(const uint8_t *p, uint32_t len, struct sv_codec_error *err)
{
	return validate_table(p, len, 1, err);
}

int sv_rd_table(struct sv_rd *r, struct sv_table *t, struct sv_codec_error *err)
{
	if (rd_container(r, &t->ptr, &t->len, err, 'F'))
		return -1;
	return sv_table_validate(t->ptr, t->len, err);
}

void sv_table_iter_init(struct sv_table_iter *it, struct sv_table t)
{
	it->p = t.ptr;
	it->end = t.ptr + t.len;
}

int sv_table_next(struct sv_table_iter *it, struct sv_bytes *key, struct sv_field *val,
		  struct sv_codec_error *err)
{
	struct sv_rd r = {it->p, it->end};

	if (!sv_rd_left(&r))
		return 0;
	if (!sv_rd_shortstr(&r, key))
		return sv_fail(err, SV_REPLY_SYNTAX_ERROR, "table key overruns the table");
	if (rd_value(&r, val, 0, err))
		return -1;
	it->p = r.p;
	return 1;
}

void sv_array_iter_init(struct sv_array_iter *it, struct sv_array a)
{
	it->p = a.ptr;
	it->end = a.ptr + a.len;
}

int sv_array_next(struct sv_array_iter *it, struct sv_field *val, struct sv_codec_error *err)
{
	struct sv_rd r = {it->p, it->end};

	if (!sv_rd_left(&r))
		return 0;
	if (rd_value(&r, val, 0, err))
		return -1;
	it->p = r.p;
	return 1;
}

bool sv_table_find(struct sv_table t, const char *key, struct sv_field *val)
{
	struct sv_table_iter it;
	struct sv_codec_error err;
	struct sv_bytes k = {0};
	size_t n = strlen(key);

	sv_table_iter_init(&it, t);
	while (sv_table_next(&it, &k, val, &err) == 1)
		if (k.len == n && memcmp(k.ptr, key, n) == 0)
			return true;
	return false;
}

/* Writer. */

void sv_table_writer_init(struct sv_table_writer *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof *w);
	w->buf = buf;
	w->cap = cap;
}

static void tw_fail(struct sv_table_writer *w, const char *why)
{
	if (!w->failed)
		w->failed = why;
}

static uint8_t *tw_reserve(struct sv_table_writer *w, size_t n)
{
	uint8_t *p;

	if (w->failed)
		return NULL;
	if (w->cap - w->len < n) {
		tw_fail(w, "table does not fit in its buffer");
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

/* Write the key (tables) or check its absence (arrays), then reserve 1 + n value bytes and
 * store the type octet; returns where the value goes. */
static uint8_t *tw_begin_value(struct sv_table_writer *w, const char *key, uint8_t type, size_t n)
{
	uint8_t *p;

	if (w->failed)
		return NULL;
	if (w->in_array[w->depth]) {
		if (key) {
			tw_fail(w, "array values take no key");
			return NULL;
		}
	} else {
		size_t klen = key ? strlen(key) : 0;
		if (!key || klen > SV_SHORTSTR_MAX) {
			tw_fail(w, key ? "table key over 255 bytes" : "table value needs a key");
			return NULL;
		}
		p = tw_reserve(w, 1 + klen);
		if (!p)
			return NULL;
		sv_store_shortstr(p, (struct sv_bytes){(const uint8_t *)key, (uint32_t)klen});
	}
	p = tw_reserve(w, 1 + n);
	if (!p)
		return NULL;
	*p = type;
	return p + 1;
}

static void tw_container_bytes(struct sv_table_writer *w, const char *key, uint8_t type,
			       const uint8_t *ptr, uint32_t len)
{
	uint8_t *p = tw_begin_value(w, key, type, 4 + (size_t)len);
	if (p)
		sv_store_longstr(p, (struct sv_bytes){ptr, len});
}

void sv_tw_field(struct sv_table_writer *w, const char *key, const struct sv_field *f)
{
	static const uint8_t fixed[128] = {
		['t'] = 1, ['b'] = 1, ['B'] = 1, ['s'] = 2, ['u'] = 2, ['I'] = 4, ['i'] = 4,
		['f'] = 4, ['l'] = 8, ['L'] = 8, ['d'] = 8, ['T'] = 8, ['D'] = 5, ['V'] = 0,
	};
	uint8_t *p;

	switch (f->type) {
	case SV_FIELD_LONGSTR:
	case SV_FIELD_BYTES:
		tw_container_bytes(w, key, f->type, f->v.str.ptr, f->v.str.len);
		return;
	case SV_FIELD_TABLE:
		tw_container_bytes(w, key, f->type, f->v.table.ptr, f->v.table.len);
		return;
	case SV_FIELD_ARRAY:
		tw_container_bytes(w, key, f->type, f->v.array.ptr, f->v.array.len);
		return;
	case SV_FIELD_BOOL:
	case SV_FIELD_I8:
	case SV_FIELD_U8:
	case SV_FIELD_I16:
	case SV_FIELD_U16:
	case SV_FIELD_I32:
	case SV_FIELD_U32:
	case SV_FIELD_FLOAT:
	case SV_FIELD_I64:
	case SV_FIELD_U64:
	case SV_FIELD_DOUBLE:
	case SV_FIELD_TIMESTAMP:
	case SV_FIELD_DECIMAL:
	case SV_FIELD_VOID:
		break;
	default:
		tw_fail(w, "unknown field type");
		return;
	}
	p = tw_begin_value(w, key, f->type, fixed[f->type]);
	if (!p)
		return;
	switch (fixed[f->type]) {
	case 1:
		*p = f->type == SV_FIELD_BOOL ? f->v.b : f->v.u8;
		break;
	case 2:
		sv_store16(p, f->v.u16);
		break;
	case 4:
		if (f->type == SV_FIELD_FLOAT) {
			uint32_t bits;
			memcpy(&bits, &f->v.f, 4);
			sv_store32(p, bits);
		} else {
			sv_store32(p, f->v.u32);
		}
		break;
	case 5:
		sv_store32(sv_store8(p, f->v.decimal.scale), f->v.decimal.value);
		break;
	case 8:
		if (f->type == SV_FIELD_DOUBLE) {
			uint64_t bits;
			memcpy(&bits, &f->v.d, 8);
			sv_store64(p, bits);
		} else {
			sv_store64(p, f->v.u64);
		}
		break;
	}
}

void sv_tw_bool(struct sv_table_writer *w, const char *key, bool v)
{
	struct sv_field f = {.type = SV_FIELD_BOOL, .v.b = v};
	sv_tw_field(w, key, &f);
}

void sv_tw_i64(struct sv_table_writer *w, const char *key, int64_t v)
{
	struct sv_field f = {.type = SV_FIELD_I64, .v.i64 = v};
	sv_tw_field(w, key, &f);
}

void sv_tw_str(struct sv_table_writer *w, const char *key, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX) {
		tw_fail(w, "string over 4 GiB");
		return;
	}
	tw_container_bytes(w, key, SV_FIELD_LONGSTR, (const uint8_t *)s, (uint32_t)n);
}

static void tw_open(struct sv_table_writer *w, const char *key, uint8_t type)
{
	/* The outermost table is level 1 and the new container would be level depth + 2,
	 * counted as sv_table_validate counts: never build what the decoder refuses. */
	if (w->depth + 2 > SV_TABLE_MAX_DEPTH) {
		tw_fail(w, "tables and arrays nested too deep");
		return;
	}
	if (!tw_begin_value(w, key, type, 4))
		return;
	w->open[w->depth] = w->len - 4;
	w->depth++;
	w->in_array[w->depth] = type == SV_FIELD_ARRAY;
}

static void tw_close(struct sv_table_writer *w, bool array)
{
	size_t body;

	if (w->failed)
		return;
	if (!w->depth || w->in_array[w->depth] != array) {
		tw_fail(w, "unbalanced table/array end");
		return;
	}
	w->depth--;
	body = w->len - w->open[w->depth] - 4;
	if (body > UINT32_MAX) {
		tw_fail(w, "nested value over 4 GiB");
		return;
	}
	sv_store32(w->buf + w->open[w->depth], (uint32_t)body);
}

void sv_tw_table_begin(struct sv_table_writer *w, const char *key)
{
	tw_open(w, key, SV_FIELD_TABLE);
}

void sv_tw_table_end(struct sv_table_writer *w)
{
	tw_close(w, false);
}

void sv_tw_array_begin(struct sv_table_writer *w, const char *key)
{
	tw_open(w, key, SV_FIELD_ARRAY);
}

void sv_tw_array_end(struct sv_table_writer *w)
{
	tw_close(w, true);
}

int sv_table_writer_finish(struct sv_table_writer *w, struct sv_table *out,
			   struct sv_codec_error *err)
{
	if (!w->failed && w->depth)
		tw_fail(w, "table/array left open");
	if (!w->failed && w->len > UINT32_MAX)
		tw_fail(w, "table over 4 GiB");
	if (w->failed)
		return sv_fail(err, 0, "%s", w->failed);
	out->ptr = w->buf;
	out->len = (uint32_t)w->len;
	return 0;
}
