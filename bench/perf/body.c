/* SPDX-License-Identifier: MIT */
/*
 * salvo-perf's message bodies (--body) and the stamp each carries: the sequence number
 * and the send time that consumers read back.
 *
 *   pattern  bytes 0..7 the sequence number, 8..15 the send time (both big-endian
 *            binary), then abc...z repeated; under 16 bytes, the pattern alone
 *   json     one JSON object of exactly --size bytes, like a line of a telemetry feed:
 *              {"seq":"0001000000000007","ts":1712345678901234567,"host":"web-07",
 *               "dc":"eu-west-1","metric":"cpu.user","value":37.25,"unit":"pct",
 *               "msg":"GET /api/v1/orders 200 ..."}
 *            seq is 16 lowercase hex digits, ts 19 decimal digits (both zero-padded, at
 *            fixed offsets); the fields after ts are dropped from the end when the size is
 *            too small for them, "msg" pads the rest, and blanks before the closing brace
 *            make up the last few bytes
 *
 * JSON bodies differ from one another the way telemetry does (hosts, metrics, values,
 * words), so compression meets realistic input: each producer formats a pool of
 * JSON_POOL of them once, from a generator seeded by its index, and message n takes pool
 * entry n % JSON_POOL, patching its stamp only. Nothing is formatted per message but the
 * stamp, and the send time's digits only when the clock is read.
 */
#include <stdlib.h>
#include <string.h>

#include "perf.h"

#define JSON_POOL 256
/* A producer's pool holds at most this much (a thousand producers may have one each), so
 * large JSON bodies repeat sooner. */
#define JSON_POOL_BYTES (1u << 20)
#define JSON_SEQ_AT	8  /* {"seq":" */
#define JSON_TS_AT	31 /* {"seq":"0123456789abcdef","ts": */
#define JSON_PREFIX	51 /* ... 19 digits and the comma */

static const char json_prefix[JSON_PREFIX + 1] =
    "{\"seq\":\"0000000000000000\",\"ts\":0000000000000000000,";

static const char *const dcs[] = {"eu-west-1", "eu-central-1", "us-east-1", "us-west-2"};
static const struct {
	const char *name, *unit;
} metrics[] = {
    {"cpu.user", "pct"},	  {"cpu.system", "pct"},     {"mem.used", "bytes"},
    {"disk.read_bytes", "bytes"}, {"net.rx_bytes", "bytes"}, {"http.requests", "count"},
    {"http.latency_ms", "ms"},	  {"gc.pause_ms", "ms"},
};
static const char *const words[] = {
    "GET",   "POST",	"/api/v1/orders", "/api/v1/cart", "/health",  "200",	 "404",
    "503",   "served",	"from",		  "cache",	  "upstream", "timeout", "retry",
    "after", "session", "user",		  "checkout",	  "login",    "ok",
};

const char *const body_names[2] = {"pattern", "json"};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* xorshift64*: cheap, and the same bodies for the same producer in every run. */
static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Append s to out at *at if it fits before end (the closing brace's place). */
static bool put(char *out, size_t *at, size_t end, const char *s)
{
	size_t n = strlen(s);

	if (n > end - *at)
		return false;
	memcpy(out + *at, s, n);
	*at += n;
	return true;
}

/* One JSON body of exactly size (>= BODY_JSON_MIN) bytes into out. */
static void json_format(char *out, size_t size, uint64_t *rng)
{
	char field[64];
	size_t at, end = size - 1; /* the closing brace */
	unsigned metric = (unsigned)(next(rng) % COUNT(metrics));
	uint64_t value = next(rng) % 100000;
	bool fits = true;

	memcpy(out, json_prefix, JSON_PREFIX);
	at = JSON_PREFIX - 1; /* the comma goes with the first field */
	for (int f = 0; f < 5 && fits; f++) {
		switch (f) {
		case 0:
			snprintf(field, sizeof field, ",\"host\":\"web-%02u\"",
				 (unsigned)(next(rng) % 32));
			break;
		case 1:
			snprintf(field, sizeof field, ",\"dc\":\"%s\"",
				 dcs[next(rng) % COUNT(dcs)]);
			break;
		case 2:
			snprintf(field, sizeof field, ",\"metric\":\"%s\"", metrics[metric].name);
			break;
		case 3:
			snprintf(field, sizeof field, ",\"value\":%u.%02u", (unsigned)(value / 100),
				 (unsigned)(value % 100));
			break;
		default:
			snprintf(field, sizeof field, ",\"unit\":\"%s\"", metrics[metric].unit);
		}
		fits = put(out, &at, end, field);
	}
	/* ,"msg":"" and at least one letter, or blanks (over the prefix's comma too, when
	 * nothing follows it). */
	if (end - at > 10) {
		put(out, &at, end, ",\"msg\":\"");
		while (end - at > 1) {
			const char *w = words[next(rng) % COUNT(words)];
			size_t n = strlen(w), room = end - at - 1; /* the closing quote */

			if (n + 1 > room)
				n = room;
			memcpy(out + at, w, n);
			at += n;
			if (end - at > 1)
				out[at++] = ' ';
		}
		out[at++] = '"';
	}
	memset(out + at, ' ', end - at);
	out[end] = '}';
}

static void pattern_format(uint8_t *out, size_t size)
{
	size_t from = size >= HEADER_SIZE ? HEADER_SIZE : 0;

	for (size_t i = from; i < size; i++)
		out[i] = (uint8_t)('a' + (i - from) % 26);
}

int bodies_new(struct bodies *b, enum body_kind kind, size_t size, unsigned producer)
{
	uint64_t rng = (producer + 1) * 0x9e3779b97f4a7c15ull;
	size_t slot = size ? size : 1;

	b->kind = kind;
	b->size = size;
	b->n = 1;
	if (kind == BODY_JSON)
		while (b->n < JSON_POOL && (b->n * 2) * slot <= JSON_POOL_BYTES)
			b->n *= 2;
	b->mem = malloc(b->n * slot);
	if (!b->mem)
		return -1;
	for (unsigned i = 0; i < b->n; i++) {
		if (kind == BODY_JSON)
			json_format((char *)b->mem + i * slot, size, &rng);
		else
			pattern_format(b->mem + i * slot, size);
	}
	return 0;
}

void bodies_free(struct bodies *b)
{
	free(b->mem);
	b->mem = NULL;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void stamp_time(struct stamp *st, enum body_kind kind, uint64_t ns)
{
	st->ns = ns;
	if (kind != BODY_JSON)
		return;
	for (int i = 18; i >= 0; i--, ns /= 10)
		st->text[i] = (char)('0' + ns % 10);
}

uint8_t *body_stamp(struct bodies *b, uint64_t n, uint64_t seq, const struct stamp *st)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t *body = b->mem + (size_t)(n & (b->n - 1)) * (b->size ? b->size : 1);

	if (b->kind == BODY_JSON) {
		for (int i = 15; i >= 0; i--, seq >>= 4)
			body[JSON_SEQ_AT + i] = (uint8_t)hex[seq & 15];
		memcpy(body + JSON_TS_AT, st->text, sizeof st->text);
	} else if (b->size >= HEADER_SIZE) {
		put_be64(body, seq);
		put_be64(body + 8, st->ns);
	}
	return body;
}

/* Digits of a base at most 16 (lowercase), exactly n of them. */
static bool digits(const uint8_t *p, int n, unsigned base, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++) {
		unsigned d;

		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			d = p[i] - 'a' + 10u;
		else
			return false;
		if (d >= base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

bool body_read(enum body_kind kind, const uint8_t *body, size_t len, uint64_t *seq,
	       uint64_t *sent_ns)
{
	if (kind == BODY_PATTERN) {
		if (len < HEADER_SIZE)
			return false;
		*seq = get_be64(body);
		*sent_ns = get_be64(body + 8);
		return true;
	}
	return len >= JSON_PREFIX && !memcmp(body, json_prefix, JSON_SEQ_AT) &&
	       !memcmp(body + JSON_SEQ_AT + 16, json_prefix + JSON_SEQ_AT + 16,
		       JSON_TS_AT - JSON_SEQ_AT - 16) &&
	       digits(body + JSON_SEQ_AT, 16, 16, seq) &&
	       digits(body + JSON_TS_AT, 19, 10, sent_ns);
}
