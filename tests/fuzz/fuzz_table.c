/* SPDX-License-Identifier: MIT */
/*
 * Fuzz field tables; the input is a table's contents (no length prefix). Validation must
 * agree with iteration: a table is valid exactly when a recursive walk with sv_table_next
 * and sv_array_next meets no malformed entry and no nesting past SV_TABLE_MAX_DEPTH.
 *
 * A valid table is written back entry by entry through sv_table_writer. The result must
 * validate and equal the input byte for byte, with one exception: a boolean is read as
 * "nonzero" and written as 1, so the expected bytes are the input with every boolean octet
 * canonicalised. (That makes a second round trip redundant: the canonical form is what
 * the writer produces, and it writes it back unchanged.) The writer takes keys as C
 * strings, so a table with a NUL inside a key cannot be written back; such tables are only
 * validated and walked.
 *
 * A valid table is also what a broker's server properties are (connection.start): the
 * application gets a copy (sv_table_from_wire, salvo_client_server_properties), which must
 * hold the same bytes, count the same depth, and walk to its end through the public
 * iterator, nested tables and arrays included.
 */
#include <string.h>

#include "fuzz.h"
#include "props.h"
#include "table.h"

struct copy {
	const uint8_t *base;		/* the input: value pointers point into it */
	uint8_t *canon;			/* the expected output, or NULL */
	struct sv_table_writer *w;	/* where entries are written back, or NULL */
	bool nul_key;
};

static int copy_table(struct copy *c, struct sv_table t, int depth);
static int copy_array(struct copy *c, struct sv_array a, int depth);

/* Copy one value, which the iterator read up to end; returns as copy_table does. */
static int copy_value(struct copy *c, const char *key, const struct sv_field *f,
		      const uint8_t *end, int depth)
{
	size_t at;
	int got;

	switch (f->type) {
	case SV_FIELD_TABLE:
		if (c->w)
			sv_tw_table_begin(c->w, key);
		got = copy_table(c, f->v.table, depth + 1);
		if (c->w)
			sv_tw_table_end(c->w);
		return got;
	case SV_FIELD_ARRAY:
		if (c->w)
			sv_tw_array_begin(c->w, key);
		got = copy_array(c, f->v.array, depth + 1);
		if (c->w)
			sv_tw_array_end(c->w);
		return got;
	case SV_FIELD_BOOL:
		/* The octet just read; derived from the input, not from the decoded value, so a
		 * decoder that misreads booleans does not move the expectation with it. */
		at = (size_t)(end - 1 - c->base);
		if (c->canon)
			c->canon[at] = c->base[at] != 0;
		break;
	}
	if (c->w)
		sv_tw_field(c->w, key, f);
	return depth;
}

/*
 * Walk t, at nesting level depth (the top table is 1), copying each entry. Returns the
 * deepest level reached, or -1 at a malformed entry. Past SV_TABLE_MAX_DEPTH the walk stops
 * descending: the table is invalid whatever lies deeper, and the recursion stays bounded.
 */
static int copy_table(struct copy *c, struct sv_table t, int depth)
{
	char key[SV_SHORTSTR_MAX + 1];
	struct sv_table_iter it;
	struct sv_codec_error err;
	struct sv_bytes k;
	struct sv_field f;
	int max = depth, got, rc;

	if (depth > SV_TABLE_MAX_DEPTH)
		return depth;
	sv_table_iter_init(&it, t);
	while ((rc = sv_table_next(&it, &k, &f, &err)) == 1) {
		FUZZ_CHECK(k.len <= SV_SHORTSTR_MAX);
		memcpy(key, k.ptr, k.len);
		key[k.len] = '\0';
		if (memchr(key, '\0', k.len))
			c->nul_key = true;
		got = copy_value(c, key, &f, it.p, depth);
		if (got < 0 || got > SV_TABLE_MAX_DEPTH)
			return got;
		if (got > max)
			max = got;
	}
	if (rc == 0)
		return max;
	FUZZ_CHECK(err.reply_code == SV_REPLY_SYNTAX_ERROR);
	return -1;
}

static int copy_array(struct copy *c, struct sv_array a, int depth)
{
	struct sv_array_iter it;
	struct sv_codec_error err;
	struct sv_field f;
	int max = depth, got, rc;

	if (depth > SV_TABLE_MAX_DEPTH)
		return depth;
	sv_array_iter_init(&it, a);
	while ((rc = sv_array_next(&it, &f, &err)) == 1) {
		got = copy_value(c, NULL, &f, it.p, depth);
		if (got < 0 || got > SV_TABLE_MAX_DEPTH)
			return got;
		if (got > max)
			max = got;
	}
	if (rc == 0)
		return max;
	FUZZ_CHECK(err.reply_code == SV_REPLY_SYNTAX_ERROR);
	return -1;
}

/* Walk it through salvo_table_next to its end, nested ones too; returns the deepest level
 * (it at level depth). */
static int public_walk(salvo_table_iter *it, int depth)
{
	salvo_field f;
	int max = depth, got, rc;

	while ((rc = salvo_table_next(it, &f)) == 1) {
		if (f.type != SALVO_FIELD_TABLE && f.type != SALVO_FIELD_ARRAY)
			continue;
		got = public_walk(&f.v.nested, depth + 1);
		if (got > max)
			max = got;
	}
	FUZZ_CHECK(rc == 0);
	return max;
}

static void check_public_copy(const uint8_t *data, size_t size, int depth)
{
	salvo_table *copy = sv_table_from_wire((struct sv_table){data, (uint32_t)size});
	salvo_table_iter it;

	FUZZ_CHECK(copy && copy->len == size && (int)copy->depth == depth);
	FUZZ_CHECK(!size || memcmp(copy->buf, data, size) == 0);
	salvo_table_iter_init(&it, copy);
	FUZZ_CHECK(public_walk(&it, 1) == depth);
	salvo_table_destroy(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_table t = {data, (uint32_t)size}, written;
	struct sv_table_writer w;
	struct sv_codec_error err;
	struct copy c = {.base = data};
	uint8_t *canon, *out;
	int depth;

	if (size > UINT32_MAX)
		return 0;
	if (sv_table_validate(data, (uint32_t)size, &err)) {
		FUZZ_CHECK(err.reply_code == SV_REPLY_SYNTAX_ERROR);
		depth = copy_table(&c, t, 1);
		FUZZ_CHECK(depth < 0 || depth > SV_TABLE_MAX_DEPTH);
		return 0;
	}

	/* Exactly the input's size: the writer must fit, and a write past it is caught. */
	canon = malloc(size ? size : 1);
	out = malloc(size ? size : 1);
	FUZZ_CHECK(canon && out);
	memcpy(canon, data, size);
	sv_table_writer_init(&w, out, size);
	c.canon = canon;
	c.w = &w;
	depth = copy_table(&c, t, 1);
	FUZZ_CHECK(depth >= 1 && depth <= SV_TABLE_MAX_DEPTH);
	check_public_copy(data, size, depth);
	if (!c.nul_key) {
		FUZZ_CHECK(sv_table_writer_finish(&w, &written, &err) == 0);
		FUZZ_CHECK(written.len == size && memcmp(written.ptr, canon, size) == 0);
		FUZZ_CHECK(sv_table_validate(written.ptr, written.len, &err) == 0);
	}
	free(canon);
	free(out);
	return 0;
}
