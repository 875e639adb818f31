/* SPDX-License-Identifier: MIT */
/*
 * The AMQP URI parser (uri.h). The password must never show in an error message. Two
 * rules make that hold. The user info ends at the last '@' of the authority. And an '@'
 * anywhere after the authority is refused before anything else is looked at: it means a
 * password holding an unescaped '/', '?' or '#' has spilled into the path or query, where
 * a later message would quote it. After that the host, vhost and query can be quoted
 * freely, and errors inside the user info give only a byte offset. The port is not looked
 * into at all (it is the password in "amqp://user:password" with the host forgotten).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "salvo.h"
#include "uri.h"

struct parser {
	const char *uri;
	struct sv_uri *out;
	char *next; /* the first free byte of out->buf */
	char *errstr;
	size_t errstr_size;
};

/* Refuse the URI: at is where it went wrong. */
static int fail(struct parser *p, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, const char *at, const char *fmt, ...)
{
	va_list ap;

	p->out->error_offset = (size_t)(at - p->uri);
	if (p->errstr && p->errstr_size) {
		va_start(ap, fmt);
		vsnprintf(p->errstr, p->errstr_size, fmt, ap);
		va_end(ap);
	}
	return SALVO_ERR_INVALID_ARGUMENT;
}

/* The first byte of [s, end) that is in set, or end. */
static const char *find_any(const char *s, const char *end, const char *set)
{
	while (s < end && !(*s && strchr(set, *s)))
		s++;
	return s;
}

static const char *find(const char *s, const char *end, char c)
{
	const char *at = memchr(s, c, (size_t)(end - s));

	return at ? at : end;
}

/* RFC 3986 unreserved and sub-delims characters, plus those in extra. */
static bool allowed(unsigned char c, const char *extra)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && (strchr("-._~!$&'()*+,;=", c) || strchr(extra, c));
}

static int hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Percent-decode the text [s, end) into out->buf as a NUL-terminated string and point *out
 * at it. Messages name the component (what) and give offsets rather than quoting it, since
 * the component may be the password.
 */
static int decode(struct parser *p, const char *s, const char *end, const char *extra,
		  const char *what, const char **out)
{
	char *d = p->next;

	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		size_t at = (size_t)(s - p->uri);

		if (c == '%') {
			int hi = end - s > 2 ? hex((unsigned char)s[1]) : -1;
			int lo = hi >= 0 ? hex((unsigned char)s[2]) : -1;

			if (lo < 0)
				return fail(p, s, "%s: invalid percent-escape at offset %zu", what,
					    at);
			c = (unsigned char)(hi << 4 | lo);
			if (c == '\0')
				return fail(p, s, "%s: %%00 at offset %zu: NUL is not allowed",
					    what, at);
			s += 2;
		} else if (!allowed(c, extra)) {
			return fail(p, s, "%s: the character at offset %zu must be percent-encoded",
				    what, at);
		}
		*d++ = (char)c;
	}
	*d++ = '\0';
	*out = p->next;
	p->next = d;
	return 0;
}

/* user[:password] in [s, end); the password may hold ':' (RFC 3986 user info does). */
static int parse_userinfo(struct parser *p, const char *s, const char *end)
{
	const char *colon = find(s, end, ':');
	int rc = decode(p, s, colon, "", "user name", &p->out->user);

	if (rc == 0 && colon != end)
		rc = decode(p, colon + 1, end, ":", "password", &p->out->password);
	return rc;
}

/* host[:port] in [s, end). */
static int parse_hostport(struct parser *p, const char *s, const char *end)
{
	const char *colon;
	int rc;

	if (s < end && *s == '[') {
		const char *close = find(s, end, ']');
		struct in6_addr addr;

		if (close == end)
			return fail(p, s, "host: an IPv6 address without its closing ']'");
		rc = decode(p, s + 1, close, ":", "host", &p->out->host);
		if (rc)
			return rc;
		if (inet_pton(AF_INET6, p->out->host, &addr) != 1)
			return fail(p, s + 1, "host: \"%s\" is not an IPv6 address", p->out->host);
		colon = close + 1;
		if (colon != end && *colon != ':')
			return fail(p, colon, "host: text after the IPv6 address's ']'");
	} else {
		colon = find(s, end, ':');
		rc = decode(p, s, colon, "", "host", &p->out->host);
		if (rc)
			return rc;
	}
	if (colon != end) {
		p->out->port = colon + 1;
		p->out->port_len = (size_t)(end - colon - 1);
	}
	return 0;
}

/* The query after '?', in [s, end): key=value pairs joined by '&'; empty pairs are skipped. */
static int parse_query(struct parser *p, const char *s, const char *end)
{
	struct sv_uri *out = p->out;

	for (const char *pair_end; s < end; s = pair_end + 1) {
		const char *eq;
		int rc;

		pair_end = find(s, end, '&');
		if (pair_end == s)
			continue;
		eq = find(s, pair_end, '=');
		if (eq == pair_end)
			return fail(p, s, "query parameter \"%.*s\" has no '=value'",
				    (int)(pair_end - s), s);
		if (out->n_params == SV_URI_PARAMS_MAX)
			return fail(p, s, "more than %d query parameters", SV_URI_PARAMS_MAX);
		rc = decode(p, s, eq, ":/?", "query parameter", &out->params[out->n_params].key);
		if (rc == 0)
			rc = decode(p, eq + 1, pair_end, ":/?", out->params[out->n_params].key,
				    &out->params[out->n_params].value);
		if (rc)
			return rc;
		out->n_params++;
		if (pair_end == end)
			break;
	}
	return 0;
}

int sv_uri_parse(const char *uri, size_t len, struct sv_uri *out, char *errstr, size_t errstr_size)
{
	struct parser p = {uri, out, out->buf, errstr, errstr_size};
	const char *end = uri + len, *s, *auth_end, *at;
	int rc;

	memset(out, 0, offsetof(struct sv_uri, buf));
	if (len > SV_URI_MAX)
		return fail(&p, uri + SV_URI_MAX, "URI is longer than %d bytes", SV_URI_MAX);
	if (len >= 7 && strncasecmp(uri, "amqp://", 7) == 0) {
		s = uri + 7;
		out->scheme = "amqp";
	} else if (len >= 8 && strncasecmp(uri, "amqps://", 8) == 0) {
		s = uri + 8;
		out->scheme = "amqps";
	} else {
		return fail(&p, uri, "URI must start with \"amqp://\" or \"amqps://\"");
	}
	auth_end = find_any(s, end, "/?#");
	at = find(auth_end, end, '@');
	if (at != end)
		return fail(&p, at,
			    "'@' after the host: in the user name and password, write "
			    "'@' '/' '?' '#' as %%40 %%2F %%3F %%23");
	at = find(auth_end, end, '#');
	if (at != end)
		return fail(&p, at, "a fragment ('#') has no meaning in an AMQP URI");

	at = memrchr(s, '@', (size_t)(auth_end - s));
	if (at) {
		rc = parse_userinfo(&p, s, at);
		if (rc)
			return rc;
		s = at + 1;
	}
	rc = parse_hostport(&p, s, auth_end);
	if (rc)
		return rc;

	s = auth_end;
	if (s < end && *s == '/') {
		const char *path_end = find(s + 1, end, '?');
		const char *slash = find(s + 1, path_end, '/');

		/* Per the spec a vhost is one path segment: "/" itself must be written %2F. */
		if (slash != path_end)
			return fail(&p, slash,
				    "vhost: \"%.*s\" has an unescaped '/'; write it as %%2F",
				    (int)(path_end - s - 1), s + 1);
		rc = decode(&p, s + 1, path_end, ":", "vhost", &out->vhost);
		if (rc)
			return rc;
		s = path_end;
	}
	if (s < end && *s == '?')
		return parse_query(&p, s + 1, end);
	return 0;
}
