/* SPDX-License-Identifier: MIT */
/*
 * AMQP URIs, as RabbitMQ's URI spec defines them on RFC 3986:
 *
 *	amqp[s]://[user[:password]@]host[:port][/vhost][?key=value&...]
 *
 * The password must never show in an error message. Two rules make that hold. The user
 * info ends at the last '@' of the authority. And an '@' anywhere after the authority is
 * refused before anything else is looked at: it means a password holding an unescaped
 * '/', '?' or '#' has spilled into the path or query, where a later message would quote
 * it. After that the host, vhost and query can be quoted freely, and errors inside the
 * user info (or the port, which is the password in "amqp://user:password" with the host
 * forgotten) give only a byte offset.
 *
 * The decoded strings go into out->buf. Each is no longer than its raw text, and each raw
 * text is followed in the URI by a delimiter or the URI's NUL, which pays for the decoded
 * string's NUL; so they all fit in strlen(uri) + 1 <= sizeof out->buf bytes.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "conf_internal.h"

struct parser {
	const char *uri;
	char *next; /* the first free byte of the output buffer */
	char *errstr;
	size_t errstr_size;
};

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
 * Percent-decode the raw text [s, s + len) into the output buffer as a NUL-terminated
 * string and point *out at it. Messages name the component (what) and give offsets into
 * the URI rather than quoting it, since the component may be the password.
 */
static int decode(struct parser *p, const char *s, size_t len, const char *extra,
		  const char *what, const char **out)
{
	char *d = p->next;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t at = (size_t)(s + i - p->uri);

		if (c == '%') {
			int hi = i + 2 < len ? hex((unsigned char)s[i + 1]) : -1;
			int lo = hi >= 0 ? hex((unsigned char)s[i + 2]) : -1;

			if (lo < 0)
				return sv_conf_error(p->errstr, p->errstr_size,
						     "%s: invalid percent-escape at offset %zu", what,
						     at);
			c = (unsigned char)(hi << 4 | lo);
			if (c == '\0')
				return sv_conf_error(p->errstr, p->errstr_size,
						     "%s: %%00 at offset %zu: NUL is not allowed",
						     what, at);
			i += 2;
		} else if (!allowed(c, extra)) {
			return sv_conf_error(p->errstr, p->errstr_size,
					     "%s: the character at offset %zu must be percent-encoded",
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
static int parse_userinfo(struct parser *p, const char *s, const char *end, struct sv_uri *out)
{
	const char *colon = memchr(s, ':', (size_t)(end - s));
	int rc;

	out->has_userinfo = true;
	rc = decode(p, s, (size_t)((colon ? colon : end) - s), "", "user name", &out->user);
	if (rc == 0 && colon)
		rc = decode(p, colon + 1, (size_t)(end - colon - 1), ":", "password",
			    &out->password);
	return rc;
}

/* host[:port] in [s, end); an empty host or no port leaves the default. */
static int parse_hostport(struct parser *p, const char *s, const char *end, struct sv_uri *out)
{
	const char *colon;
	uint64_t port;
	int rc;

	if (*s == '[') {
		const char *close = memchr(s, ']', (size_t)(end - s));
		struct in6_addr addr;

		if (!close)
			return sv_conf_error(p->errstr, p->errstr_size,
					     "host: an IPv6 address without its closing ']'");
		rc = decode(p, s + 1, (size_t)(close - s - 1), ":", "host", &out->host);
		if (rc)
			return rc;
		if (inet_pton(AF_INET6, out->host, &addr) != 1)
			return sv_conf_error(p->errstr, p->errstr_size,
					     "host: \"%s\" is not an IPv6 address", out->host);
		if (close + 1 != end && close[1] != ':')
			return sv_conf_error(p->errstr, p->errstr_size,
					     "host: text after the IPv6 address's ']'");
		colon = close + 1 != end ? close + 1 : NULL;
	} else {
		colon = memchr(s, ':', (size_t)(end - s));
		if ((colon ? colon : end) != s) {
			rc = decode(p, s, (size_t)((colon ? colon : end) - s), "", "host",
				    &out->host);
			if (rc)
				return rc;
		}
	}
	if (!colon)
		return 0;
	if (colon + 1 == end)
		return sv_conf_error(p->errstr, p->errstr_size, "port: empty after ':'");
	if (sv_parse_uint(colon + 1, (size_t)(end - colon - 1), &port) || port < 1 ||
	    port > UINT16_MAX)
		return sv_conf_error(p->errstr, p->errstr_size,
				     "port: the text at offset %zu is not a number in 1..65535",
				     (size_t)(colon + 1 - p->uri));
	out->port = (uint32_t)port;
	return 0;
}

/* The query after '?': key=value pairs joined by '&'; empty pairs are skipped. */
static int parse_query(struct parser *p, const char *s, struct sv_uri *out)
{
	while (*s) {
		size_t len = strcspn(s, "&");
		const char *eq = memchr(s, '=', len);
		struct sv_uri_param *param = &out->params[out->n_params];
		int rc;

		if (len == 0) {
			s++;
			continue;
		}
		if (!eq)
			return sv_conf_error(p->errstr, p->errstr_size,
					     "query parameter \"%.*s\" has no '=value'", (int)len,
					     s);
		if (out->n_params == SV_URI_PARAMS_MAX)
			return sv_conf_error(p->errstr, p->errstr_size,
					     "more than %d query parameters", SV_URI_PARAMS_MAX);
		rc = decode(p, s, (size_t)(eq - s), ":/?", "query parameter", &param->key);
		if (rc)
			return rc;
		rc = decode(p, eq + 1, (size_t)(s + len - eq - 1), ":/?", param->key,
			    &param->value);
		if (rc)
			return rc;
		for (size_t i = 0; i < out->n_params; i++)
			if (strcmp(out->params[i].key, param->key) == 0)
				return sv_conf_error(p->errstr, p->errstr_size,
						     "query parameter \"%s\" is given twice",
						     param->key);
		rc = sv_conf_check(param->key, param->value, true, p->errstr, p->errstr_size);
		if (rc)
			return rc;
		out->n_params++;
		s += len + (s[len] == '&');
	}
	return 0;
}

int sv_uri_parse(const char *uri, struct sv_uri *out, char *errstr, size_t errstr_size)
{
	struct parser p = {uri, out->buf, errstr, errstr_size};
	const char *s, *auth_end, *at;
	int rc;

	memset(out, 0, offsetof(struct sv_uri, buf));
	if (strnlen(uri, SV_URI_MAX + 1) > SV_URI_MAX)
		return sv_conf_error(errstr, errstr_size, "URI is longer than %d bytes",
				     SV_URI_MAX);
	if (strncasecmp(uri, "amqp://", 7) == 0) {
		s = uri + 7;
		out->port = SV_PORT_AMQP;
	} else if (strncasecmp(uri, "amqps://", 8) == 0) {
		s = uri + 8;
		out->port = SV_PORT_AMQPS;
		out->tls = true;
	} else {
		return sv_conf_error(errstr, errstr_size,
				     "URI must start with \"amqp://\" or \"amqps://\"");
	}
	auth_end = s + strcspn(s, "/?#");
	if (strchr(auth_end, '@'))
		return sv_conf_error(errstr, errstr_size,
				     "'@' after the host: in the user name and password, write "
				     "'@' '/' '?' '#' as %%40 %%2F %%3F %%23");
	if (strchr(auth_end, '#'))
		return sv_conf_error(errstr, errstr_size,
				     "a fragment ('#') has no meaning in an AMQP URI");

	out->user = "guest";
	out->password = "guest";
	out->host = "localhost";
	out->vhost = "/";
	at = memrchr(s, '@', (size_t)(auth_end - s));
	if (at) {
		rc = parse_userinfo(&p, s, at, out);
		if (rc)
			return rc;
		s = at + 1;
	}
	rc = parse_hostport(&p, s, auth_end, out);
	if (rc)
		return rc;

	s = auth_end;
	if (*s == '/') {
		size_t len = strcspn(s + 1, "?");

		/* Per the spec a vhost is one path segment: "/" itself must be written %2F. */
		if (memchr(s + 1, '/', len))
			return sv_conf_error(errstr, errstr_size,
					     "vhost: \"%.*s\" has an unescaped '/'; write it as %%2F",
					     (int)len, s + 1);
		out->has_vhost = true;
		rc = decode(&p, s + 1, len, ":", "vhost", &out->vhost);
		if (rc)
			return rc;
		s += 1 + len;
	}
	if (*s == '?') {
		rc = parse_query(&p, s + 1, out);
		if (rc)
			return rc;
	}

	/* Lengths, by the same table that checks salvo_conf_set. */
	const char *const fields[][2] = {
		{"user", out->user},
		{"password", out->password},
		{"host", out->host},
		{"vhost", out->vhost},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		rc = sv_conf_check(fields[i][0], fields[i][1], false, errstr, errstr_size);
		if (rc)
			return rc;
	}
	return 0;
}
