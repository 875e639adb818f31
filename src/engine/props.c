/* SPDX-License-Identifier: MIT */
/*
 * Field tables and message properties: the public types over the codec's encoded forms.
 * A salvo_table is kept encoded (what a frame carries), so adding an entry encodes it once
 * and publishing copies bytes; reading walks the encoding with the codec's iterators.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../codec/table.h"
#include "error.h"
#include "props.h"

/* Tables. */

static salvo_table *table_new(bool array)
{
	salvo_table *t = calloc(1, sizeof *t);

	if (t) {
		t->depth = 1;
		t->array = array;
	}
	return t;
}

salvo_table *salvo_table_new(void)
{
	return table_new(false);
}

salvo_table *salvo_array_new(void)
{
	return table_new(true);
}

void salvo_table_destroy(salvo_table *t)
{
	if (!t)
		return;
	if (!t->view)
		free(t->buf);
	free(t);
}

struct sv_table sv_table_of(const salvo_table *t)
{
	return t ? (struct sv_table){t->buf, (uint32_t)t->len} : (struct sv_table){NULL, 0};
}

/* Append one entry of at most room value bytes through a table writer over the free tail
 * of t->buf; depth is the levels of nesting the value brings (0 for a scalar). */
static int table_add(salvo_table *t, const char *key, const struct sv_field *f, size_t room,
		     unsigned depth)
{
	struct sv_table_writer w;
	struct sv_codec_error cerr;
	struct sv_table out;
	size_t klen;

	if (!t || t->view || (t->array ? key != NULL : !key))
		return SALVO_ERR_INVALID_ARGUMENT;
	klen = key ? strlen(key) : 0;
	if (klen > SV_SHORTSTR_MAX || depth + 1 > SV_TABLE_MAX_DEPTH)
		return SALVO_ERR_INVALID_ARGUMENT;
	/* key (short string), type octet, value */
	room += (key ? 1 + klen : 0) + 1;
	if (t->len + room > UINT32_MAX)
		return SALVO_ERR_INVALID_ARGUMENT;
	if (t->cap - t->len < room) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap - t->len < room)
			cap *= 2;
		uint8_t *nb = realloc(t->buf, cap);
		if (!nb)
			return SALVO_ERR_NO_MEMORY;
		t->buf = nb;
		t->cap = cap;
	}
	sv_table_writer_init(&w, t->buf + t->len, t->cap - t->len);
	/* An array's values take no key; the writer's outermost level is then an array. */
	w.in_array[0] = t->array;
	sv_tw_field(&w, key, f);
	if (sv_table_writer_finish(&w, &out, &cerr))
		return SALVO_ERR_INVALID_ARGUMENT;
	t->len += out.len;
	if (depth + 1 > t->depth)
		t->depth = depth + 1;
	return 0;
}

static int add_scalar(salvo_table *t, const char *key, struct sv_field f, size_t size)
{
	return table_add(t, key, &f, size, 0);
}

static int add_bytes(salvo_table *t, const char *key, uint8_t type, const void *value, size_t len)
{
	struct sv_field f = {.type = type};

	if ((!value && len) || len > UINT32_MAX)
		return SALVO_ERR_INVALID_ARGUMENT;
	f.v.str = (struct sv_bytes){value, (uint32_t)len};
	return table_add(t, key, &f, 4 + len, 0);
}

int salvo_table_add_string(salvo_table *t, const char *key, const char *value)
{
	if (!value)
		return SALVO_ERR_INVALID_ARGUMENT;
	return add_bytes(t, key, SV_FIELD_LONGSTR, value, strlen(value));
}

int salvo_table_add_bytes(salvo_table *t, const char *key, const void *value, size_t len)
{
	return add_bytes(t, key, SV_FIELD_BYTES, value, len);
}

int salvo_table_add_int(salvo_table *t, const char *key, int64_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_I64, .v.i64 = value}, 8);
}

int salvo_table_add_bool(salvo_table *t, const char *key, bool value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_BOOL, .v.b = value}, 1);
}

int salvo_table_add_i8(salvo_table *t, const char *key, int8_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_I8, .v.i8 = value}, 1);
}

int salvo_table_add_u8(salvo_table *t, const char *key, uint8_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_U8, .v.u8 = value}, 1);
}

int salvo_table_add_i16(salvo_table *t, const char *key, int16_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_I16, .v.i16 = value}, 2);
}

int salvo_table_add_u16(salvo_table *t, const char *key, uint16_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_U16, .v.u16 = value}, 2);
}

int salvo_table_add_i32(salvo_table *t, const char *key, int32_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_I32, .v.i32 = value}, 4);
}

int salvo_table_add_u32(salvo_table *t, const char *key, uint32_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_U32, .v.u32 = value}, 4);
}

int salvo_table_add_u64(salvo_table *t, const char *key, uint64_t value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_U64, .v.u64 = value}, 8);
}

int salvo_table_add_float(salvo_table *t, const char *key, float value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_FLOAT, .v.f = value}, 4);
}

int salvo_table_add_double(salvo_table *t, const char *key, double value)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_DOUBLE, .v.d = value}, 8);
}

int salvo_table_add_decimal(salvo_table *t, const char *key, uint8_t scale, uint32_t value)
{
	struct sv_field f = {.type = SV_FIELD_DECIMAL, .v.decimal = {scale, value}};
	return add_scalar(t, key, f, 5);
}

int salvo_table_add_timestamp(salvo_table *t, const char *key, uint64_t value)
{
	struct sv_field f = {.type = SV_FIELD_TIMESTAMP, .v.timestamp = value};
	return add_scalar(t, key, f, 8);
}

int salvo_table_add_void(salvo_table *t, const char *key)
{
	return add_scalar(t, key, (struct sv_field){.type = SV_FIELD_VOID}, 0);
}

int salvo_table_add_table(salvo_table *t, const char *key, const salvo_table *value)
{
	struct sv_field f;

	if (!value || value == t)
		return SALVO_ERR_INVALID_ARGUMENT;
	f.type = value->array ? SV_FIELD_ARRAY : SV_FIELD_TABLE;
	if (value->array)
		f.v.array = (struct sv_array){value->buf, (uint32_t)value->len};
	else
		f.v.table = sv_table_of(value);
	return table_add(t, key, &f, 4 + value->len, value->depth);
}

salvo_table *sv_table_copy_without(const salvo_table *t, const char *key)
{
	size_t klen = key ? strlen(key) : 0;
	salvo_table *out = table_new(false);
	struct sv_table_iter it;
	struct sv_codec_error cerr;
	struct sv_bytes k;
	struct sv_field v;

	if (!out || !t || !t->len)
		return out;
	out->buf = malloc(t->len);
	if (!out->buf) {
		free(out);
		return NULL;
	}
	out->cap = t->len;
	out->depth = t->depth;
	/* Entries are copied as encoded, from where one starts to where the next does. */
	sv_table_iter_init(&it, sv_table_of(t));
	for (const uint8_t *start = it.p; sv_table_next(&it, &k, &v, &cerr) == 1; start = it.p) {
		if (key && k.len == klen && memcmp(k.ptr, key, klen) == 0)
			continue;
		memcpy(out->buf + out->len, start, (size_t)(it.p - start));
		out->len += (size_t)(it.p - start);
	}
	return out;
}

/* Levels of nesting of the contents at [p, end), this one included (1 for scalars only);
 * the input is validated, so the recursion is at most SV_TABLE_MAX_DEPTH deep. */
static unsigned wire_depth(const uint8_t *p, const uint8_t *end, bool array)
{
	struct sv_codec_error cerr;
	struct sv_bytes k;
	struct sv_field v;
	unsigned depth = 1;

	for (;;) {
		int rc;

		if (array) {
			struct sv_array_iter ai = {p, end};
			rc = sv_array_next(&ai, &v, &cerr);
			p = ai.p;
		} else {
			struct sv_table_iter ti = {p, end};
			rc = sv_table_next(&ti, &k, &v, &cerr);
			p = ti.p;
		}
		if (rc != 1)
			return depth;
		if (v.type == SV_FIELD_TABLE || v.type == SV_FIELD_ARRAY) {
			/* struct sv_table and sv_array have the same layout */
			unsigned d = 1 + wire_depth(v.v.table.ptr, v.v.table.ptr + v.v.table.len,
						    v.type == SV_FIELD_ARRAY);
			if (d > depth)
				depth = d;
		}
	}
}

salvo_table *sv_table_from_wire(struct sv_table t)
{
	salvo_table *out = table_new(false);

	if (!out || !t.len)
		return out;
	out->buf = malloc(t.len);
	if (!out->buf) {
		free(out);
		return NULL;
	}
	memcpy(out->buf, t.ptr, t.len);
	out->len = out->cap = t.len;
	out->depth = wire_depth(out->buf, out->buf + out->len, false);
	return out;
}

void salvo_table_iter_init(salvo_table_iter *it, const salvo_table *t)
{
	*it = (salvo_table_iter){0};
	if (t && t->len) {
		it->p_ = t->buf;
		it->end_ = t->buf + t->len;
		it->array_ = t->array;
	}
}

int salvo_table_next(salvo_table_iter *it, salvo_field *f)
{
	struct sv_codec_error cerr;
	struct sv_bytes key = {0};
	struct sv_field v;
	int rc;

	if (!it || !f || !it->p_)
		return 0;
	if (it->array_) {
		struct sv_array_iter ai = {it->p_, it->end_};
		rc = sv_array_next(&ai, &v, &cerr);
		it->p_ = ai.p;
	} else {
		struct sv_table_iter ti = {it->p_, it->end_};
		rc = sv_table_next(&ti, &key, &v, &cerr);
		it->p_ = ti.p;
	}
	if (rc != 1)
		return rc < 0 ? SALVO_ERR_PROTOCOL : 0;
	if (key.len) /* an array's fields have no key (and memcpy no NULL source) */
		memcpy(f->key, key.ptr, key.len);
	f->key[key.len] = '\0';
	f->key_len = key.len;
	f->type = (salvo_field_type)v.type;
	switch (v.type) {
	case SV_FIELD_LONGSTR:
	case SV_FIELD_BYTES:
		f->v.bytes.ptr = v.v.str.ptr;
		f->v.bytes.len = v.v.str.len;
		break;
	case SV_FIELD_TABLE:
	case SV_FIELD_ARRAY:
		/* struct sv_table and sv_array have the same layout */
		f->v.nested = (salvo_table_iter){v.v.table.ptr, v.v.table.ptr + v.v.table.len,
						 v.type == SV_FIELD_ARRAY};
		break;
	case SV_FIELD_DECIMAL:
		f->v.decimal.scale = v.v.decimal.scale;
		f->v.decimal.value = v.v.decimal.value;
		break;
	case SV_FIELD_BOOL:
		f->v.b = v.v.b;
		break;
	case SV_FIELD_I8:
	case SV_FIELD_U8:
		f->v.u8 = v.v.u8;
		break;
	case SV_FIELD_I16:
	case SV_FIELD_U16:
		f->v.u16 = v.v.u16;
		break;
	case SV_FIELD_I32:
	case SV_FIELD_U32:
		f->v.u32 = v.v.u32;
		break;
	case SV_FIELD_FLOAT:
		f->v.f = v.v.f;
		break;
	case SV_FIELD_DOUBLE:
		f->v.d = v.v.d;
		break;
	case SV_FIELD_VOID:
		break;
	default: /* I64, U64, TIMESTAMP */
		f->v.u64 = v.v.u64;
		break;
	}
	return 1;
}

/* Properties. */

/* The short-string properties: where each is in both structs. */
static const struct str_prop {
	const char *name;
	uint16_t bit; /* SV_PROP_* */
	uint16_t pub; /* offset of the const char * in salvo_props */
	uint16_t sv;  /* offset of the struct sv_bytes in struct sv_basic_props */
} str_props[] = {
#define STR_PROP(n, bit)                                                                           \
	{                                                                                          \
#n, bit, offsetof(salvo_props, n), offsetof(struct sv_basic_props, n)              \
	}
    STR_PROP(content_type, SV_PROP_CONTENT_TYPE),
    STR_PROP(content_encoding, SV_PROP_CONTENT_ENCODING),
    STR_PROP(correlation_id, SV_PROP_CORRELATION_ID),
    STR_PROP(reply_to, SV_PROP_REPLY_TO),
    STR_PROP(expiration, SV_PROP_EXPIRATION),
    STR_PROP(message_id, SV_PROP_MESSAGE_ID),
    STR_PROP(type, SV_PROP_TYPE),
    STR_PROP(user_id, SV_PROP_USER_ID),
    STR_PROP(app_id, SV_PROP_APP_ID),
    STR_PROP(cluster_id, SV_PROP_CLUSTER_ID),
#undef STR_PROP
};
#define N_STR_PROPS (sizeof str_props / sizeof str_props[0])

static const char **pub_str(const salvo_props *p, const struct str_prop *d)
{
	return (const char **)((const char *)p + d->pub);
}

static struct sv_bytes *sv_str(const struct sv_basic_props *p, const struct str_prop *d)
{
	return (struct sv_bytes *)((const char *)p + d->sv);
}

int sv_props_from_public(const salvo_props *in, bool persistent, struct sv_basic_props *out,
			 salvo_error *err)
{
	memset(out, 0, sizeof *out);
	if (persistent) {
		out->flags |= SV_PROP_DELIVERY_MODE;
		out->delivery_mode = 2;
	}
	if (!in)
		return 0;
	if (in->flags & ~(SALVO_PROP_DELIVERY_MODE | SALVO_PROP_PRIORITY | SALVO_PROP_TIMESTAMP)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_props.flags has unknown bits 0x%x", in->flags);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < N_STR_PROPS; i++) {
		const char *s = *pub_str(in, &str_props[i]);
		size_t n;

		if (!s)
			continue;
		n = strlen(s);
		if (n > SV_SHORTSTR_MAX) {
			sv_error_set(
			    err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			    "property %s is %zu bytes; AMQP short strings hold at most 255",
			    str_props[i].name, n);
			return SALVO_ERR_INVALID_ARGUMENT;
		}
		out->flags |= str_props[i].bit;
		*sv_str(out, &str_props[i]) = (struct sv_bytes){(const uint8_t *)s, (uint32_t)n};
	}
	if (in->headers) {
		if (in->headers->array) {
			sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				     "property headers is a field array; it must be a table");
			return SALVO_ERR_INVALID_ARGUMENT;
		}
		out->flags |= SV_PROP_HEADERS;
		out->headers = sv_table_of(in->headers);
	}
	if (in->flags & SALVO_PROP_DELIVERY_MODE) {
		out->flags |= SV_PROP_DELIVERY_MODE;
		out->delivery_mode = in->delivery_mode;
	}
	if (in->flags & SALVO_PROP_PRIORITY) {
		out->flags |= SV_PROP_PRIORITY;
		out->priority = in->priority;
	}
	if (in->flags & SALVO_PROP_TIMESTAMP) {
		out->flags |= SV_PROP_TIMESTAMP;
		out->timestamp = in->timestamp;
	}
	return 0;
}

size_t sv_props_encoded_size(const struct sv_basic_props *p)
{
	size_t n = 2;

	for (size_t i = 0; i < N_STR_PROPS; i++)
		if (p->flags & str_props[i].bit)
			n += 1 + sv_str(p, &str_props[i])->len;
	if (p->flags & SV_PROP_HEADERS)
		n += 4 + (size_t)p->headers.len;
	n += !!(p->flags & SV_PROP_DELIVERY_MODE) + !!(p->flags & SV_PROP_PRIORITY);
	if (p->flags & SV_PROP_TIMESTAMP)
		n += 8;
	return n;
}

int sv_props_copy(const struct sv_basic_props *in, salvo_props *out, void **mem)
{
	size_t cap = 0;

	*mem = NULL;
	return sv_props_copy_reuse(in, out, mem, &cap);
}

int sv_props_copy_reuse(const struct sv_basic_props *in, salvo_props *out, void **mem,
			size_t *cap)
{
	size_t size = 0;
	uint8_t *m;

	memset(out, 0, sizeof *out);
	if (in->flags & SV_PROP_DELIVERY_MODE) {
		out->flags |= SALVO_PROP_DELIVERY_MODE;
		out->delivery_mode = in->delivery_mode;
	}
	if (in->flags & SV_PROP_PRIORITY) {
		out->flags |= SALVO_PROP_PRIORITY;
		out->priority = in->priority;
	}
	if (in->flags & SV_PROP_TIMESTAMP) {
		out->flags |= SALVO_PROP_TIMESTAMP;
		out->timestamp = in->timestamp;
	}
	/* One allocation: the headers' salvo_table, their bytes, then the strings. */
	if (in->flags & SV_PROP_HEADERS)
		size += sizeof(salvo_table) + in->headers.len;
	for (size_t i = 0; i < N_STR_PROPS; i++)
		if (in->flags & str_props[i].bit)
			size += sv_str(in, &str_props[i])->len + 1;
	if (!size)
		return 0;
	if (sv_buffer_refit(*cap, size)) {
		free(*mem);
		*cap = 0;
		*mem = malloc(size);
		if (!*mem)
			return -1;
		*cap = size;
	}
	m = *mem;
	if (in->flags & SV_PROP_HEADERS) {
		salvo_table *t = (salvo_table *)m;

		m += sizeof *t;
		memcpy(m, in->headers.ptr, in->headers.len);
		/* Validated when the frame was decoded; depth is never used for a view. */
		*t = (salvo_table){.buf = m, .len = in->headers.len, .depth = 1, .view = true};
		m += in->headers.len;
		out->headers = t;
	}
	for (size_t i = 0; i < N_STR_PROPS; i++) {
		const struct sv_bytes *s = sv_str(in, &str_props[i]);

		if (!(in->flags & str_props[i].bit))
			continue;
		memcpy(m, s->ptr, s->len);
		m[s->len] = '\0';
		*pub_str(out, &str_props[i]) = (const char *)m;
		m += s->len + 1;
	}
	return 0;
}

bool sv_table_has(const salvo_table *t, const char *key, const char *value)
{
	size_t key_len = strlen(key);
	salvo_table_iter it;
	salvo_field f;

	salvo_table_iter_init(&it, t);
	while (salvo_table_next(&it, &f) == 1) {
		if (f.key_len != key_len || memcmp(f.key, key, key_len) != 0)
			continue;
		return !value || (f.type == SALVO_FIELD_STRING &&
				  f.v.bytes.len == strlen(value) &&
				  memcmp(f.v.bytes.ptr, value, f.v.bytes.len) == 0);
	}
	return false;
}
