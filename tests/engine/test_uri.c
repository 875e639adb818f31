/* SPDX-License-Identifier: MIT */
/*
 * The AMQP URI parser, which returns components and no meanings: every example of
 * RabbitMQ's URI spec as components (absent ones NULL), IPv6, amqps, percent-decoding,
 * each place a URI is split, query pairs passed through unchecked, every limit, then
 * every way a URI is refused as malformed, where, and that no refusal quotes the password.
 * Every prefix of some URIs is parsed against a guard page. What the components mean
 * (defaults, ranges, known query keys) is test_conf.c's. Run with a test's name
 * ("spec full") to run that test alone.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../support.h"

#include "salvo.h"
#include "uri.h"

static struct sv_uri uri;
static char errstr[512];

static void parse_ok(const char *text)
{
	errstr[0] = '\0';
	if (sv_uri_parse(text, strlen(text), &uri, errstr, sizeof errstr))
		fail_msg("%s: %s", text, errstr);
}

/* Returns the message so that callers can look into it. */
static const char *parse_fails_len(const char *text, size_t len)
{
	errstr[0] = '\0';
	if (sv_uri_parse(text, len, &uri, errstr, sizeof errstr) != SALVO_ERR_INVALID_ARGUMENT)
		fail_msg("%.*s: accepted", (int)len, text);
	if (errstr[0] == '\0')
		fail_msg("%.*s: refused without a message", (int)len, text);
	if (uri.error_offset > len)
		fail_msg("%.*s: error offset %zu is past the end", (int)len, text,
			 uri.error_offset);
	return errstr;
}

static const char *parse_fails(const char *text)
{
	return parse_fails_len(text, strlen(text));
}

/* The refusal's message holds `part`. */
#define assert_refused(text, part)                                                                 \
	do {                                                                                       \
		const char *msg_ = parse_fails(text);                                              \
		if (!strstr(msg_, (part)))                                                         \
			fail_msg("%s: \"%s\" does not hold \"%s\"", (text), msg_, (part));         \
	} while (0)

/* A component: NULL for absent. */
static void assert_part(const char *what, const char *got, const char *want)
{
	if (!want && got)
		fail_msg("%s: \"%s\" where none was expected", what, got);
	if (want && !got)
		fail_msg("%s: absent where \"%s\" was expected", what, want);
	if (want)
		assert_string_equal(got, want);
}

/* The port's text, which points into the input and is not terminated. */
static void assert_port(const char *input, const char *want, size_t offset)
{
	if (!want) {
		assert_null(uri.port);
		assert_int_equal(uri.port_len, 0);
		return;
	}
	assert_non_null(uri.port);
	assert_int_equal(uri.port - input, offset);
	assert_int_equal(uri.port_len, strlen(want));
	assert_memory_equal(uri.port, want, uri.port_len);
}

static void assert_uri(const char *text, const char *user, const char *password, const char *host,
		       const char *port, const char *vhost)
{
	parse_ok(text);
	assert_string_equal(uri.scheme, "amqp");
	assert_part("user", uri.user, user);
	assert_part("password", uri.password, password);
	assert_part("host", uri.host, host);
	if (port) {
		/* the text after the host's ':', inside the input (offsets: "port text") */
		assert_non_null(uri.port);
		assert_int_equal(uri.port[-1], ':');
		assert_true(uri.port > text && uri.port + uri.port_len <= text + strlen(text));
		assert_int_equal(uri.port_len, strlen(port));
		assert_memory_equal(uri.port, port, uri.port_len);
	} else {
		assert_null(uri.port);
	}
	assert_part("vhost", uri.vhost, vhost);
	assert_int_equal(uri.n_params, 0);
}

/* The examples of the spec's table, in its order, as components. */

static void test_spec_full(void **state)
{
	(void)state;
	assert_uri("amqp://user:pass@host:10000/vhost", "user", "pass", "host", "10000", "vhost");
}

static void test_spec_escapes(void **state)
{
	(void)state;
	assert_uri("amqp://user%61:%61pass@ho%61st:10000/v%2fhost", "usera", "apass", "hoast",
		   "10000", "v/host");
}

static void test_spec_empty(void **state)
{
	(void)state;
	assert_uri("amqp://", NULL, NULL, "", NULL, NULL);
}

static void test_spec_empty_userinfo_and_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://:@/", "", "", "", NULL, "");
}

static void test_spec_user_only(void **state)
{
	(void)state;
	assert_uri("amqp://user@", "user", NULL, "", NULL, NULL);
}

static void test_spec_user_and_password(void **state)
{
	(void)state;
	assert_uri("amqp://user:pass@", "user", "pass", "", NULL, NULL);
}

static void test_spec_host(void **state)
{
	(void)state;
	assert_uri("amqp://host", NULL, NULL, "host", NULL, NULL);
}

static void test_spec_port_only(void **state)
{
	(void)state;
	assert_uri("amqp://:10000", NULL, NULL, "", "10000", NULL);
}

static void test_spec_vhost_only(void **state)
{
	(void)state;
	assert_uri("amqp:///vhost", NULL, NULL, "", NULL, "vhost");
}

static void test_spec_empty_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://host/", NULL, NULL, "host", NULL, "");
}

static void test_spec_slash_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://host/%2f", NULL, NULL, "host", NULL, "/");
	assert_uri("amqp://host/%2F", NULL, NULL, "host", NULL, "/");
}

static void test_spec_ipv6(void **state)
{
	(void)state;
	assert_uri("amqp://[::1]", NULL, NULL, "::1", NULL, NULL);
}

static void test_ipv6_with_port(void **state)
{
	(void)state;
	assert_uri("amqp://[::1]:5673/%2f", NULL, NULL, "::1", "5673", "/");
	assert_uri("amqp://u:p@[2001:db8::42]:1/v", "u", "p", "2001:db8::42", "1", "v");
	assert_uri("amqp://[::ffff:192.0.2.1]/", NULL, NULL, "::ffff:192.0.2.1", NULL, "");
	/* the address may be escaped; it is checked decoded */
	assert_uri("amqp://[%3A%3A1]", NULL, NULL, "::1", NULL, NULL);
}

static void test_amqps(void **state)
{
	(void)state;
	parse_ok("amqps://host");
	assert_string_equal(uri.scheme, "amqps");
	assert_null(uri.port);
	parse_ok("amqps://u:p@host:5673/v");
	assert_string_equal(uri.scheme, "amqps");
	assert_port("amqps://u:p@host:5673/v", "5673", 17);
	assert_string_equal(uri.vhost, "v");
}

static void test_scheme_case(void **state)
{
	(void)state;
	assert_uri("AMQP://host", NULL, NULL, "host", NULL, NULL);
	parse_ok("AmQpS://host");
	assert_string_equal(uri.scheme, "amqps");
}

static void test_password_with_colon(void **state)
{
	(void)state;
	assert_uri("amqp://u:a:b@h", "u", "a:b", "h", NULL, NULL);
	assert_uri("amqp://u:p%40s%2Fs%3F%23@h", "u", "p@s/s?#", "h", NULL, NULL);
	assert_uri("amqp://u%3Ax:p@h", "u:x", "p", "h", NULL, NULL);
}

/* Where each delimiter splits, when the same byte shows up again further on. */
static void test_split_points(void **state)
{
	(void)state;
	/* the host ends at its first ':'; the rest of the authority is the port's text */
	assert_uri("amqp://h:1:2/v", NULL, NULL, "h", "1:2", "v");
	assert_uri("amqp://::1", NULL, NULL, "", ":1", NULL);
	/* the authority ends at the first '/', '?' (or '#', refused below) */
	parse_ok("amqp://h?x=/a/b");
	assert_null(uri.vhost);
	assert_string_equal(uri.params[0].value, "/a/b");
	parse_ok("amqp://u:p@h:5?x=1");
	assert_port("amqp://u:p@h:5?x=1", "5", 13);
	/* the vhost ends at the first '?', a pair at '&', a key at its first '=' */
	parse_ok("amqp://h/v?x=1?y&k==v&e=");
	assert_string_equal(uri.vhost, "v");
	assert_int_equal(uri.n_params, 3);
	assert_string_equal(uri.params[0].key, "x");
	assert_string_equal(uri.params[0].value, "1?y");
	assert_string_equal(uri.params[1].key, "k");
	assert_string_equal(uri.params[1].value, "=v");
	assert_string_equal(uri.params[2].key, "e");
	assert_string_equal(uri.params[2].value, "");
	/* the user info ends at the authority's last '@' (so here the user name holds one) */
	assert_refused("amqp://u@v@h", "user name: the character at offset 8");
}

static void test_query_parameters(void **state)
{
	(void)state;
	parse_ok("amqp://h/v?heartbeat=10&connection_timeout=5000&channel_max=100"
		 "&frame_max=8192&connection_name=app");
	assert_string_equal(uri.vhost, "v");
	assert_int_equal(uri.n_params, 5);
	assert_string_equal(uri.params[0].key, "heartbeat");
	assert_string_equal(uri.params[0].value, "10");
	assert_string_equal(uri.params[1].key, "connection_timeout");
	assert_string_equal(uri.params[1].value, "5000");
	assert_string_equal(uri.params[2].key, "channel_max");
	assert_string_equal(uri.params[2].value, "100");
	assert_string_equal(uri.params[3].key, "frame_max");
	assert_string_equal(uri.params[3].value, "8192");
	assert_string_equal(uri.params[4].key, "connection_name");
	assert_string_equal(uri.params[4].value, "app");
	/* the query may follow the authority directly */
	parse_ok("amqp://h?heartbeat=0");
	assert_null(uri.vhost);
	assert_int_equal(uri.n_params, 1);
}

/* RabbitMQ's URI spec TLS keys, all at once with the others (11 parameters). */
static void test_tls_query_parameters(void **state)
{
	(void)state;
	parse_ok("amqps://h?cacertfile=/etc/tls/ca.pem&certfile=%2Fetc%2Ftls%2Fc.pem"
		 "&keyfile=/etc/tls/c.key&verify=verify_peer&server_name_indication=disable"
		 "&auth_mechanism=external&heartbeat=1&connection_timeout=2&channel_max=3"
		 "&frame_max=4096&connection_name=n");
	assert_string_equal(uri.scheme, "amqps");
	assert_null(uri.port);
	assert_int_equal(uri.n_params, 11);
	assert_string_equal(uri.params[0].key, "cacertfile");
	assert_string_equal(uri.params[0].value, "/etc/tls/ca.pem");
	assert_string_equal(uri.params[1].value, "/etc/tls/c.pem");
	assert_string_equal(uri.params[2].key, "keyfile");
	assert_string_equal(uri.params[3].key, "verify");
	assert_string_equal(uri.params[3].value, "verify_peer");
	assert_string_equal(uri.params[4].key, "server_name_indication");
	assert_string_equal(uri.params[4].value, "disable");
	assert_string_equal(uri.params[5].key, "auth_mechanism");
	assert_string_equal(uri.params[5].value, "external");
	/* plain amqp:// may carry them too */
	parse_ok("amqp://h?verify=verify_none");
	assert_string_equal(uri.scheme, "amqp");
}

static void test_query_decoding(void **state)
{
	(void)state;
	parse_ok("amqp://h?connection_name=my%20app%2Fone&heart%62eat=5");
	assert_string_equal(uri.params[0].value, "my app/one");
	assert_string_equal(uri.params[1].key, "heartbeat");
	/* after the first '=', '=' is data; '/', '?' and ':' need no escaping in a query */
	parse_ok("amqp://h?connection_name=a=b/c?d:e");
	assert_string_equal(uri.params[0].value, "a=b/c?d:e");
	/* '+' is not a space: RFC 3986, not HTML forms */
	parse_ok("amqp://h?connection_name=a+b");
	assert_string_equal(uri.params[0].value, "a+b");
}

static void test_query_empty_pairs(void **state)
{
	(void)state;
	parse_ok("amqp://h?");
	assert_int_equal(uri.n_params, 0);
	parse_ok("amqp://h/?&heartbeat=5&&");
	assert_int_equal(uri.n_params, 1);
	assert_string_equal(uri.params[0].value, "5");
}

/* Keys and values are components: unknown keys, repeats and any value come back as given. */
static void test_query_values_unchecked(void **state)
{
	(void)state;
	parse_ok("amqp://h?hearbeat=5&heartbeat=abc&heartbeat=65536&verify=none&=5&Host=x");
	assert_int_equal(uri.n_params, 6);
	assert_string_equal(uri.params[0].key, "hearbeat");
	assert_string_equal(uri.params[1].value, "abc");
	assert_string_equal(uri.params[2].key, "heartbeat");
	assert_string_equal(uri.params[2].value, "65536");
	assert_string_equal(uri.params[3].value, "none");
	assert_string_equal(uri.params[4].key, "");
	assert_string_equal(uri.params[5].key, "Host");
	parse_ok("amqp://h?heartbeat=%31%20&heartbeat=");
	assert_string_equal(uri.params[0].value, "1 ");
	assert_string_equal(uri.params[1].value, "");
}

/* The port is delimited, not read: what is a port is the caller's. */
static void test_port_text(void **state)
{
	(void)state;
	static const struct {
		const char *text, *port;
		size_t offset;
	} cases[] = {
	    {"amqp://host:0", "0", 12},
	    {"amqp://host:65536", "65536", 12},
	    {"amqp://host:abc", "abc", 12},
	    {"amqp://host:-1", "-1", 12},
	    {"amqp://host:99999999999999999999999", "99999999999999999999999", 12},
	    {"amqp://host: 5672", " 5672", 12},
	    {"amqp://[::1]:0", "0", 13},
	    {"amqp://user:s3cret", "s3cret", 12},
	    {"amqp://host:", "", 12},
	    {"amqp://host:/v", "", 12},
	    {"amqp://[::1]:", "", 13},
	    {"amqp://u:p@:?heartbeat=1", "", 12},
	    {"amqp://host:%31", "%31", 12},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		parse_ok(cases[i].text);
		assert_port(cases[i].text, cases[i].port, cases[i].offset);
	}
	/* the text ends with the input, not at a NUL */
	parse_fails_len("amqp://h\0:1", 11);
	assert_int_equal(sv_uri_parse("amqp://h:1\0002", 12, &uri, errstr, sizeof errstr), 0);
	assert_int_equal(uri.port_len, 3);
	assert_memory_equal(uri.port, "1\0002", 3);
}

static void test_longest_uri(void **state)
{
	(void)state;
	/* 4096 bytes exactly: the limit is inclusive; the password may be that long */
	char text[SV_URI_MAX + 1];
	size_t head = strlen("amqp://u:"), tail = strlen("@h");

	memcpy(text, "amqp://u:", head);
	memset(text + head, 'p', SV_URI_MAX - head - tail);
	memcpy(text + SV_URI_MAX - tail, "@h", tail + 1);
	assert_int_equal(strlen(text), SV_URI_MAX);
	parse_ok(text);
	assert_int_equal(strlen(uri.password), SV_URI_MAX - head - tail);
	assert_string_equal(uri.host, "h");
}

/* No length limit of its own on a component: those are the caller's. */
static void test_long_components(void **state)
{
	(void)state;
	char text[SV_URI_MAX + 1];
	int n = snprintf(text, sizeof text, "amqp://");

	memset(text + n, 'u', 1000);
	n += 1000;
	text[n++] = '@';
	memset(text + n, 'h', 1000);
	n += 1000;
	text[n++] = '/';
	memset(text + n, 'v', 1000);
	n += 1000;
	text[n] = '\0';
	parse_ok(text);
	assert_int_equal(strlen(uri.user), 1000);
	assert_int_equal(strlen(uri.host), 1000);
	assert_int_equal(strlen(uri.vhost), 1000);
}

static bool in_buf(const char *s)
{
	return s >= uri.buf && s + strlen(s) < uri.buf + sizeof uri.buf;
}

/* Every component at once in a URI of the longest length, most of them as long as
 * possible: each decoded string lies inside the buffer. */
static void test_buffer_bound(void **state)
{
	(void)state;
	char text[SV_URI_MAX + 1];
	int n = snprintf(text, sizeof text, "amqps://u:p@h:1/v?");

	for (int i = 0; i < SV_URI_PARAMS_MAX; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "%sk%d=", i ? "&" : "", i);
	memset(text + n, 'x', SV_URI_MAX - (size_t)n);
	text[SV_URI_MAX] = '\0';
	parse_ok(text);
	assert_int_equal(uri.n_params, SV_URI_PARAMS_MAX);
	assert_int_equal(strlen(uri.params[SV_URI_PARAMS_MAX - 1].value), SV_URI_MAX - (size_t)n);
	assert_true(in_buf(uri.user) && in_buf(uri.password) && in_buf(uri.host));
	assert_true(in_buf(uri.vhost));
	for (size_t i = 0; i < uri.n_params; i++)
		assert_true(in_buf(uri.params[i].key) && in_buf(uri.params[i].value));
}

static void test_query_pair_limit(void **state)
{
	(void)state;
	char text[512];
	int n = snprintf(text, sizeof text, "amqp://h?&");

	/* empty pairs do not count */
	for (int i = 0; i < SV_URI_PARAMS_MAX; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "k%d=%d&&", i, i);
	parse_ok(text);
	assert_int_equal(uri.n_params, SV_URI_PARAMS_MAX);
	assert_string_equal(uri.params[SV_URI_PARAMS_MAX - 1].key, "k15");
	snprintf(text + n, sizeof text - (size_t)n, "k16=16");
	assert_string_equal(parse_fails(text), "more than 16 query parameters");
	assert_int_equal(uri.error_offset, (size_t)n);
}

/* Refusals. */

static void test_bad_scheme(void **state)
{
	(void)state;
	const char *bad[] = {"",	   "host",	 "amqp:",	 "amqp:/host",
			     "amqp:host",  "amqp//host", "amqpx://host", "http://host",
			     "amq://host", " amqp://h"};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_string_equal(parse_fails(bad[i]),
				    "URI must start with \"amqp://\" or \"amqps://\"");
		assert_int_equal(uri.error_offset, 0);
	}
	/* a scheme cut short by the input's end, though a NUL-terminated string goes on */
	parse_fails_len("amqps://h", 7);
	parse_fails_len("amqp://h", 6);
}

static void test_bad_escape(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://%zz@h"),
			    "user name: invalid percent-escape at offset 7");
	assert_string_equal(parse_fails("amqp://u:%4@h"),
			    "password: invalid percent-escape at offset 9");
	assert_string_equal(parse_fails("amqp://ho%4"), "host: invalid percent-escape at offset 9");
	assert_string_equal(parse_fails("amqp://h/v%"),
			    "vhost: invalid percent-escape at offset 10");
	assert_string_equal(parse_fails("amqp://h/v%g1"),
			    "vhost: invalid percent-escape at offset 10");
	assert_string_equal(parse_fails("amqp://h?heart%zzbeat=1"),
			    "query parameter: invalid percent-escape at offset 14");
	assert_string_equal(parse_fails("amqp://h?connection_name=%4"),
			    "connection_name: invalid percent-escape at offset 25");
	/* an escape cut short by the end of its component, not just of the URI */
	assert_refused("amqp://u%4:p@h", "user name: invalid percent-escape");
	assert_refused("amqp://h/v%2?heartbeat=1", "vhost: invalid percent-escape");
	/* ... or by the end of the input, with more bytes behind it */
	assert_string_equal(parse_fails_len("amqp://h/v%41", 12),
			    "vhost: invalid percent-escape at offset 10");
}

static void test_nul_escape(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://u%00@h"),
			    "user name: %00 at offset 8: NUL is not allowed");
	assert_refused("amqp://u:p%00@h", "password: %00 at offset 10");
	assert_refused("amqp://h%00", "host: %00");
	assert_refused("amqp://h/%00", "vhost: %00");
	assert_refused("amqp://h?connection_name=a%00", "connection_name: %00");
}

static void test_bad_character(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://ho st"),
			    "host: the character at offset 9 must be percent-encoded");
	assert_refused("amqp://us er@h", "user name: the character at offset 9");
	assert_refused("amqp://u:p^w@h", "password: the character at offset 10");
	assert_refused("amqp://u@v@h", "user name: the character at offset 8");
	assert_refused("amqp://u:p@ho\"st", "host: the character");
	assert_refused("amqp://h/v h", "vhost: the character at offset 10");
	assert_refused("amqp://h?connection_name=a b", "connection_name: the character");
	assert_refused("amqp://h?connection_name=\x7f", "connection_name: the character");
	assert_refused("amqp://h/\xc3\xa9", "vhost: the character");
}

/* A NUL byte inside the input is a byte like any other that must be percent-encoded. */
static void test_embedded_nul(void **state)
{
	(void)state;
	assert_string_equal(parse_fails_len("amqp://h\0x", 10),
			    "host: the character at offset 8 must be percent-encoded");
	assert_string_equal(parse_fails_len("amqp://u\0@h", 11),
			    "user name: the character at offset 8 must be percent-encoded");
	assert_string_equal(parse_fails_len("amqp://h/v\0", 11),
			    "vhost: the character at offset 10 must be percent-encoded");
	assert_string_equal(parse_fails_len("amqp://h?a=\0", 12),
			    "a: the character at offset 11 must be percent-encoded");
	assert_string_equal(parse_fails_len("amqp\0//h", 8),
			    "URI must start with \"amqp://\" or \"amqps://\"");
}

static void test_bad_ipv6(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://[::1"),
			    "host: an IPv6 address without its closing ']'");
	assert_string_equal(parse_fails("amqp://[xyz]"), "host: \"xyz\" is not an IPv6 address");
	assert_refused("amqp://[]", "is not an IPv6 address");
	assert_refused("amqp://[192.0.2.1]", "is not an IPv6 address");
	assert_refused("amqp://[fe80::1%25eth0]", "is not an IPv6 address");
	assert_refused("amqp://[::1/v]", "without its closing ']'");
	assert_string_equal(parse_fails("amqp://[::1]x"),
			    "host: text after the IPv6 address's ']'");
	assert_refused("amqp://[::1]]:5672", "text after the IPv6 address");
	assert_refused("amqp://[::g]", "host: \"::g\" is not an IPv6 address");
	assert_refused("amqp://[::1 ]", "host: the character at offset 11");
}

static void test_query_without_value(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://h?heartbeat"),
			    "query parameter \"heartbeat\" has no '=value'");
	assert_refused("amqp://h?heartbeat=5&channel_max", "\"channel_max\" has no '=value'");
}

static void test_unescaped_slash_in_vhost(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://host/a/b"),
			    "vhost: \"a/b\" has an unescaped '/'; write it as %2F");
	assert_refused("amqp://host//", "vhost: \"/\" has an unescaped '/'");
	assert_refused("amqp://host/a/?heartbeat=1", "vhost: \"a/\" has an unescaped '/'");
}

static void test_at_after_host(void **state)
{
	(void)state;
	const char *msg = "'@' after the host: in the user name and password, write '@' '/' '?' "
			  "'#' as %40 %2F %3F %23";

	assert_string_equal(parse_fails("amqp://user:pa/ss@host"), msg);
	assert_string_equal(parse_fails("amqp://user:pa?ss@host"), msg);
	assert_string_equal(parse_fails("amqp://user:pa#ss@host"), msg);
	/* RFC 3986 would allow these; here '@' must be escaped after the authority */
	assert_string_equal(parse_fails("amqp://host/v@h"), msg);
	assert_string_equal(parse_fails("amqp://host?connection_name=a@b"), msg);
	parse_ok("amqp://host/v%40h?connection_name=a%40b");
	assert_string_equal(uri.vhost, "v@h");
	assert_string_equal(uri.params[0].value, "a@b");
}

static void test_fragment(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://host#x"),
			    "a fragment ('#') has no meaning in an AMQP URI");
	assert_refused("amqp://host/vh#", "a fragment");
	assert_refused("amqp://host?heartbeat=1#x", "a fragment");
}

static void test_too_long(void **state)
{
	(void)state;
	char text[SV_URI_MAX + 2];

	memcpy(text, "amqp://", 7);
	memset(text + 7, 'h', SV_URI_MAX + 1 - 7);
	text[SV_URI_MAX + 1] = '\0';
	assert_string_equal(parse_fails(text), "URI is longer than 4096 bytes");
	assert_int_equal(uri.error_offset, SV_URI_MAX);
}

/* Every refusal says where: the offset of the byte where the URI went wrong. */
static void test_error_offset(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		size_t offset;
	} cases[] = {
	    {"http://h", 0},
	    {"amqp://u:p/s@h", 12},	      /* the '@' after the authority */
	    {"amqp://h/v#f", 10},	      /* the '#' */
	    {"amqp://%zz@h", 7},	      /* the bad escape */
	    {"amqp://u:p%00@h", 10},	      /* the %00 */
	    {"amqp://ho st", 9},	      /* the byte to escape */
	    {"amqp://u:p@[::1", 11},	      /* the '[' without its ']' */
	    {"amqp://[xyz]:1", 8},	      /* the address */
	    {"amqp://[::1]x", 12},	      /* what follows the ']' */
	    {"amqp://h/a/b?x=1", 10},	      /* the second '/' */
	    {"amqp://h/v?a=1&heartbeat", 15}, /* the pair without '=' */
	    {"amqp://h?a=%4", 11},	      /* the escape cut short */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		parse_fails(cases[i].text);
		if (uri.error_offset != cases[i].offset)
			fail_msg("%s: error at %zu, not %zu", cases[i].text, uri.error_offset,
				 cases[i].offset);
	}
}

/* Refusals for malformed syntax never show the password (what a bad port or an unknown
 * query key look like is test_conf.c's, since the parser does not refuse them). */
static void test_password_never_leaked(void **state)
{
	(void)state;
	const char *bad[] = {
	    "amqp://user:s3cret%zz@host",
	    "amqp://user:s3cret%4@host",
	    "amqp://user:s3cret%00@host",
	    "amqp://user:s3cret^@host",
	    "amqp://user:s3cret@@host",
	    "amqp://user:s3cret/vhost/x", /* the host forgotten: the password is the "port" */
	    "amqp://user:s3/cret@host",	  /* an unescaped '/', '?' or '#' in the password */
	    "amqp://user:s3?cret@host",
	    "amqp://user:s3#cret@host",
	    /* ... and where the text before it passes for a port, so only the '@' rule
	     * keeps the rest from being quoted as a vhost or query */
	    "amqp://user:5672/s3/cret@host",
	    "amqp://user:5672?s3cret@host",
	    "amqp://user:5672?connection_name=s3cret@host",
	    "amqp://user:5672#s3cret@host",
	    "amqp://user:s3cret@[::1",
	    "amqp://user:s3cret@[zz]",
	    "amqp://user:s3cret@[::1]x",
	    "amqpx://user:s3cret@host",
	    "amqp://user:s3cret@host#frag",
	    "amqp://user:s3cret@ho st",
	    "amqp://user:s3cret@host/v h",
	    "amqp://user:s3cret@host/a/b",
	    "amqp://user:s3cret@host?heartbeat",
	    "amqp://user:s3cret\x01@host",
	};
	char text[SV_URI_MAX + 64];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *msg = parse_fails(bad[i]);

		if (strstr(msg, "s3") || strstr(msg, "cret"))
			fail_msg("%s: \"%s\" shows the password", bad[i], msg);
	}
	/* nor when the whole URI is too long */
	int n = snprintf(text, sizeof text, "amqp://user:s3cret@host/");
	memset(text + n, 'v', SV_URI_MAX);
	text[n + SV_URI_MAX] = '\0';
	assert_null(strstr(parse_fails(text), "s3cret"));
}

static void test_errstr_size(void **state)
{
	(void)state;
	char small[8];

	/* no buffer at all */
	assert_int_equal(sv_uri_parse("http://h", 8, &uri, NULL, 0), SALVO_ERR_INVALID_ARGUMENT);
	/* a short buffer gets a truncated, terminated message and nothing past its end */
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("http://h", 8, &uri, small, 4), SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(small, "URI");
	assert_int_equal(small[4], 'X');
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("http://h", 8, &uri, small, 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'X');
	/* success leaves errstr alone */
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("amqp://h", 8, &uri, small, sizeof small), 0);
	assert_int_equal(small[0], 'X');
}

static const char *const samples[] = {
    "amqps://us%65r:pa:ss@[2001:db8::1]:5671/v%2Fh?heartbeat=5&&connection_name=a%20b",
    "amqp://h:1/v?x=1&y",
    "amqp://user:s3/cret@host",
    "amqp://[::1]x",
    "amqp://h/a/b#f",
};

/* Parse every prefix of each sample placed right before an unmapped page: a read past the
 * end faults. Each must give what the same prefix gives as a NUL-terminated copy. */
static void test_prefixes_guard_page(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static struct sv_uri copy_uri;
	char copy[256], copy_err[sizeof errstr];

	(void)state;
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
		size_t len = strlen(samples[s]);

		for (size_t cut = 0; cut <= len; cut++) {
			char *p = map + page - cut;
			int rc, copy_rc;

			memcpy(p, samples[s], cut);
			memcpy(copy, samples[s], cut);
			copy[cut] = '\0';
			errstr[0] = copy_err[0] = '\0';
			rc = sv_uri_parse(p, cut, &uri, errstr, sizeof errstr);
			copy_rc = sv_uri_parse(copy, cut, &copy_uri, copy_err, sizeof copy_err);
			assert_int_equal(rc, copy_rc);
			assert_string_equal(errstr, copy_err);
			if (rc) {
				assert_int_equal(uri.error_offset, copy_uri.error_offset);
				continue;
			}
			assert_string_equal(uri.scheme, copy_uri.scheme);
			assert_string_equal(uri.host, copy_uri.host);
			assert_int_equal(uri.port ? uri.port - p : -1,
					 copy_uri.port ? copy_uri.port - copy : -1);
			assert_int_equal(uri.n_params, copy_uri.n_params);
		}
	}
	munmap(map, (size_t)page * 2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    NAMED_TEST("spec full", test_spec_full),
	    NAMED_TEST("spec escapes", test_spec_escapes),
	    NAMED_TEST("spec empty", test_spec_empty),
	    NAMED_TEST("spec empty userinfo and vhost", test_spec_empty_userinfo_and_vhost),
	    NAMED_TEST("spec user only", test_spec_user_only),
	    NAMED_TEST("spec user and password", test_spec_user_and_password),
	    NAMED_TEST("spec host", test_spec_host),
	    NAMED_TEST("spec port only", test_spec_port_only),
	    NAMED_TEST("spec vhost only", test_spec_vhost_only),
	    NAMED_TEST("spec empty vhost", test_spec_empty_vhost),
	    NAMED_TEST("spec slash vhost", test_spec_slash_vhost),
	    NAMED_TEST("spec ipv6", test_spec_ipv6),
	    NAMED_TEST("ipv6 with port", test_ipv6_with_port),
	    NAMED_TEST("amqps", test_amqps),
	    NAMED_TEST("scheme case", test_scheme_case),
	    NAMED_TEST("password with colon", test_password_with_colon),
	    NAMED_TEST("split points", test_split_points),
	    NAMED_TEST("query parameters", test_query_parameters),
	    NAMED_TEST("query decoding", test_query_decoding),
	    NAMED_TEST("query empty pairs", test_query_empty_pairs),
	    NAMED_TEST("query values unchecked", test_query_values_unchecked),
	    NAMED_TEST("port text", test_port_text),
	    NAMED_TEST("longest uri", test_longest_uri),
	    NAMED_TEST("long components", test_long_components),
	    NAMED_TEST("buffer bound", test_buffer_bound),
	    NAMED_TEST("query pair limit", test_query_pair_limit),
	    NAMED_TEST("bad scheme", test_bad_scheme),
	    NAMED_TEST("bad escape", test_bad_escape),
	    NAMED_TEST("nul escape", test_nul_escape),
	    NAMED_TEST("bad character", test_bad_character),
	    NAMED_TEST("embedded nul", test_embedded_nul),
	    NAMED_TEST("bad ipv6", test_bad_ipv6),
	    NAMED_TEST("tls query parameters", test_tls_query_parameters),
	    NAMED_TEST("query without value", test_query_without_value),
	    NAMED_TEST("unescaped slash in vhost", test_unescaped_slash_in_vhost),
	    NAMED_TEST("at after host", test_at_after_host),
	    NAMED_TEST("fragment", test_fragment),
	    NAMED_TEST("too long", test_too_long),
	    NAMED_TEST("error offset", test_error_offset),
	    NAMED_TEST("password never leaked", test_password_never_leaked),
	    NAMED_TEST("errstr size", test_errstr_size),
	    NAMED_TEST("prefixes against a guard page", test_prefixes_guard_page),
	};

	return sv_test_main(argc, argv, "uri", tests, sizeof tests / sizeof tests[0]);
}
