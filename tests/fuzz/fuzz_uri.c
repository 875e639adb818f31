/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the AMQP URI parser; the input is the URI's bytes (no NUL needed). Beyond "no
 * crash" and no read past the input (the standalone driver and libFuzzer both hand over a
 * buffer of exactly the input's size):
 *  - a refusal comes with a message and an error offset inside the input;
 *  - an accepted URI's strings lie in the output buffer (the scheme excepted, a constant),
 *    its port inside the input, at most SV_URI_PARAMS_MAX pairs;
 *  - the components survive a round trip: written back as a URI with every byte but RFC
 *    3986's unreserved ones percent-encoded (an IPv6 address in brackets, the port's text
 *    as it was), they parse to the same components.
 * The seeds in corpus/uri are hand-written URIs, valid and not.
 */
#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"
#include "salvo.h"
#include "uri.h"

/* The encoded URI is at most three bytes per decoded one, and decoded ones are at most
 * SV_URI_MAX; past SV_URI_MAX the round trip is not tried. */
struct out {
	char buf[3 * SV_URI_MAX + 64];
	size_t len;
};

static void put(struct out *o, const char *p, size_t n)
{
	FUZZ_CHECK(n <= sizeof o->buf - o->len);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void put_escaped(struct out *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c)) {
			put(o, s, 1);
		} else {
			char esc[4] = {'%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]};

			put(o, esc, 3);
		}
	}
}

static bool in_buf(const struct sv_uri *u, const char *s)
{
	return s >= u->buf && s + strlen(s) < u->buf + sizeof u->buf;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_parts(const struct sv_uri *u, const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	FUZZ_CHECK(strcmp(u->scheme, "amqp") == 0 || strcmp(u->scheme, "amqps") == 0);
	FUZZ_CHECK(u->host && in_buf(u, u->host));
	FUZZ_CHECK(!u->user || in_buf(u, u->user));
	FUZZ_CHECK(!u->password || (u->user && in_buf(u, u->password)));
	FUZZ_CHECK(!u->vhost || in_buf(u, u->vhost));
	FUZZ_CHECK(u->port ? u->port > in && u->port + u->port_len <= in + size : u->port_len == 0);
	FUZZ_CHECK(u->n_params <= SV_URI_PARAMS_MAX);
	for (size_t i = 0; i < u->n_params; i++)
		FUZZ_CHECK(in_buf(u, u->params[i].key) && in_buf(u, u->params[i].value));
}

/* Write the components back as a URI. */
static void encode(const struct sv_uri *u, struct out *o)
{
	struct in6_addr addr;

	o->len = 0;
	put(o, u->scheme, strlen(u->scheme));
	put(o, "://", 3);
	if (u->user) {
		put_escaped(o, u->user);
		if (u->password) {
			put(o, ":", 1);
			put_escaped(o, u->password);
		}
		put(o, "@", 1);
	}
	if (strchr(u->host, ':') && inet_pton(AF_INET6, u->host, &addr) == 1) {
		put(o, "[", 1);
		put(o, u->host, strlen(u->host));
		put(o, "]", 1);
	} else {
		put_escaped(o, u->host);
	}
	if (u->port) {
		put(o, ":", 1);
		put(o, u->port, u->port_len);
	}
	if (u->vhost) {
		put(o, "/", 1);
		put_escaped(o, u->vhost);
	}
	for (size_t i = 0; i < u->n_params; i++) {
		put(o, i ? "&" : "?", 1);
		put_escaped(o, u->params[i].key);
		put(o, "=", 1);
		put_escaped(o, u->params[i].value);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sv_uri u, again;
	static struct out o;
	char errstr[256] = "";
	int rc = sv_uri_parse((const char *)data, size, &u, errstr, sizeof errstr);

	if (rc) {
		FUZZ_CHECK(rc == SALVO_ERR_INVALID_ARGUMENT);
		FUZZ_CHECK(errstr[0] != '\0' && memchr(errstr, '\0', sizeof errstr));
		FUZZ_CHECK(u.error_offset <= size);
		return 0;
	}
	check_parts(&u, data, size);
	encode(&u, &o);
	if (o.len > SV_URI_MAX)
		return 0;
	rc = sv_uri_parse(o.buf, o.len, &again, errstr, sizeof errstr);
	if (rc)
		fprintf(stderr, "round trip refused: %.*s: %s\n", (int)o.len, o.buf, errstr);
	FUZZ_CHECK(rc == 0);
	check_parts(&again, (const uint8_t *)o.buf, o.len);
	FUZZ_CHECK(strcmp(again.scheme, u.scheme) == 0);
	FUZZ_CHECK(same(again.user, u.user) && same(again.password, u.password));
	FUZZ_CHECK(strcmp(again.host, u.host) == 0 && same(again.vhost, u.vhost));
	FUZZ_CHECK(again.port_len == u.port_len && !again.port == !u.port);
	FUZZ_CHECK(!u.port || memcmp(again.port, u.port, u.port_len) == 0);
	FUZZ_CHECK(again.n_params == u.n_params);
	for (size_t i = 0; i < u.n_params; i++)
		FUZZ_CHECK(strcmp(again.params[i].key, u.params[i].key) == 0 &&
			   strcmp(again.params[i].value, u.params[i].value) == 0);
	return 0;
}
