/* SPDX-License-Identifier: MIT */
/*
 * The AMQP URI parser: RabbitMQ's URI spec on RFC 3986 syntax,
 *
 *	amqp[s]://[user[:password]@]host[:port][/vhost][?key=value&...]
 *
 * Pure, in the manner of picohttpparser: (buf, len) in, components out; no allocation,
 * no I/O, hard limits (SV_URI_MAX bytes, SV_URI_PARAMS_MAX query pairs). It returns
 * components, never meanings: which query keys exist, what their values may be, how long
 * a user name may be, which port is the default and what a port number must be are the
 * caller's (conf.c, sv_conf_read_uri). Any thread; it touches only its arguments.
 */
#ifndef SALVO_URI_H
#define SALVO_URI_H

#include <stddef.h>

#define SV_URI_MAX	  4096 /* bytes: longer URIs are refused */
#define SV_URI_PARAMS_MAX 16   /* query pairs in one URI, empty ones not counted */

struct sv_uri_param {
	const char *key;   /* percent-decoded; any text, even "" or a key given twice */
	const char *value; /* percent-decoded; after the pair's first '=' */
};

/*
 * A parsed URI. Strings are NUL-terminated and point into buf (decoded) or at constants;
 * the port points into the input, which must outlive its use. An absent component is
 * NULL, so "amqp://h" and "amqp://:@h/" differ: the first has no user, password or vhost,
 * the second has them empty. An sv_uri must not be copied (its pointers lead into buf);
 * it owns no other memory and needs no freeing.
 */
struct sv_uri {
	const char *scheme;   /* "amqp" or "amqps", in lower case whatever the case written */
	const char *user;     /* NULL: no user info ("user@", "user:password@", ":@") */
	const char *password; /* NULL: no ':' in the user info */
	const char *host;     /* "" when empty; an IPv6 address without its brackets */
	/*
	 * The text after the host's ':' up to the end of the authority, as written: not
	 * NUL-terminated, not decoded and not checked (RFC 3986 allows only digits; what is
	 * a port is the caller's). NULL: no ':'; port_len 0: "host:". A message about it
	 * must give its offset (port - the input), never the text: in "amqp://user:secret"
	 * the host was forgotten and the port is the password.
	 */
	const char *port;
	size_t port_len;
	const char *vhost; /* NULL: no path; "" for "amqp://h/"; one segment, %2F decoded */
	size_t n_params;
	struct sv_uri_param params[SV_URI_PARAMS_MAX]; /* in the order written */
	size_t error_offset; /* after a refusal: the byte of the input where it went wrong */
	/* Each decoded string is no longer than its text, and each text is followed in the
	 * input by a delimiter or the input's end, which pays for the string's NUL. */
	char buf[SV_URI_MAX + 1];
};

/*
 * Parse the len bytes at uri (no NUL needed; a NUL byte inside is refused like any other
 * byte that must be percent-encoded, except in the port's text, which is not looked
 * into). Returns 0 and fills *out, or returns SALVO_ERR_INVALID_ARGUMENT with
 * out->error_offset set and a message in errstr (NULL or size 0: none; a short one gets
 * a truncated message). The message names the component and gives an offset or quotes
 * the text; it never holds the password or a piece of it: user info is given only as
 * offsets, and an '@' after the authority (a password with an unescaped '/', '?' or '#'
 * spilling into the vhost or query, which are quoted) is refused before anything else.
 *
 * Refused as malformed: more than SV_URI_MAX bytes; a scheme other than amqp or amqps or
 * no "://"; an '@' or a '#' (a fragment) after the authority; a byte that must be
 * percent-encoded, a bad escape or %00, in any component; an IPv6 address without its
 * ']', not valid, or followed by anything but ":port"; a '/' in the vhost; a query pair
 * without '='; more than SV_URI_PARAMS_MAX pairs.
 */
int sv_uri_parse(const char *uri, size_t len, struct sv_uri *out, char *errstr, size_t errstr_size);

#endif
