/* SPDX-License-Identifier: MIT */
/*
 * The AMQP URI parser: every example of RabbitMQ's URI spec, IPv6, amqps and query
 * parameters, then every way a URI is refused, and that no refusal ever quotes the
 * password. Run with a test's name ("spec full") to run that test alone.
 */
#include <stdlib.h>

#include "../support.h"

#include "conf_internal.h"

static struct sv_uri uri;
static char errstr[512];

static void parse_ok(const char *text)
{
	errstr[0] = '\0';
	if (sv_uri_parse(text, &uri, errstr, sizeof errstr))
		fail_msg("%s: %s", text, errstr);
}

/* Returns the message so that callers can look into it. */
static const char *parse_fails(const char *text)
{
	errstr[0] = '\0';
	if (sv_uri_parse(text, &uri, errstr, sizeof errstr) != SALVO_ERR_INVALID_ARGUMENT)
		fail_msg("%s: accepted", text);
	if (errstr[0] == '\0')
		fail_msg("%s: refused without a message", text);
	return errstr;
}

/* The refusal's message holds `part`. */
#define assert_refused(text, part)                                                                 \
	do {                                                                                       \
		const char *msg_ = parse_fails(text);                                              \
		if (!strstr(msg_, (part)))                                                         \
			fail_msg("%s: \"%s\" does not hold \"%s\"", (text), msg_, (part));         \
	} while (0)

static void assert_uri(const char *text, const char *user, const char *password, const char *host,
		       uint32_t port, const char *vhost)
{
	parse_ok(text);
	assert_string_equal(uri.user, user);
	assert_string_equal(uri.password, password);
	assert_string_equal(uri.host, host);
	assert_int_equal(uri.port, port);
	assert_string_equal(uri.vhost, vhost);
	assert_false(uri.tls);
	assert_int_equal(uri.n_params, 0);
}

/* The examples of the spec's table, in its order; absent parts take the defaults. */

static void test_spec_full(void **state)
{
	(void)state;
	assert_uri("amqp://user:pass@host:10000/vhost", "user", "pass", "host", 10000, "vhost");
	assert_true(uri.has_userinfo);
	assert_true(uri.has_vhost);
}

static void test_spec_escapes(void **state)
{
	(void)state;
	assert_uri("amqp://user%61:%61pass@ho%61st:10000/v%2fhost", "usera", "apass", "hoast",
		   10000, "v/host");
}

static void test_spec_empty(void **state)
{
	(void)state;
	assert_uri("amqp://", "guest", "guest", "localhost", 5672, "/");
	assert_false(uri.has_userinfo);
	assert_false(uri.has_vhost);
}

static void test_spec_empty_userinfo_and_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://:@/", "", "", "localhost", 5672, "");
	assert_true(uri.has_userinfo);
	assert_true(uri.has_vhost);
}

static void test_spec_user_only(void **state)
{
	(void)state;
	assert_uri("amqp://user@", "user", "guest", "localhost", 5672, "/");
	assert_true(uri.has_userinfo);
}

static void test_spec_user_and_password(void **state)
{
	(void)state;
	assert_uri("amqp://user:pass@", "user", "pass", "localhost", 5672, "/");
}

static void test_spec_host(void **state)
{
	(void)state;
	assert_uri("amqp://host", "guest", "guest", "host", 5672, "/");
	assert_false(uri.has_vhost);
}

static void test_spec_port_only(void **state)
{
	(void)state;
	assert_uri("amqp://:10000", "guest", "guest", "localhost", 10000, "/");
}

static void test_spec_vhost_only(void **state)
{
	(void)state;
	assert_uri("amqp:///vhost", "guest", "guest", "localhost", 5672, "vhost");
}

static void test_spec_empty_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://host/", "guest", "guest", "host", 5672, "");
	assert_true(uri.has_vhost);
}

static void test_spec_slash_vhost(void **state)
{
	(void)state;
	assert_uri("amqp://host/%2f", "guest", "guest", "host", 5672, "/");
	assert_uri("amqp://host/%2F", "guest", "guest", "host", 5672, "/");
}

static void test_spec_ipv6(void **state)
{
	(void)state;
	assert_uri("amqp://[::1]", "guest", "guest", "::1", 5672, "/");
}

static void test_ipv6_with_port(void **state)
{
	(void)state;
	assert_uri("amqp://[::1]:5673/%2f", "guest", "guest", "::1", 5673, "/");
	assert_uri("amqp://u:p@[2001:db8::42]:1/v", "u", "p", "2001:db8::42", 1, "v");
	assert_uri("amqp://[::ffff:192.0.2.1]/", "guest", "guest", "::ffff:192.0.2.1", 5672, "");
}

static void test_amqps(void **state)
{
	(void)state;
	parse_ok("amqps://host");
	assert_true(uri.tls);
	assert_int_equal(uri.port, 5671);
	parse_ok("amqps://u:p@host:5673/v");
	assert_true(uri.tls);
	assert_int_equal(uri.port, 5673);
	assert_string_equal(uri.vhost, "v");
}

static void test_scheme_case(void **state)
{
	(void)state;
	assert_uri("AMQP://host", "guest", "guest", "host", 5672, "/");
	parse_ok("AmQpS://host");
	assert_true(uri.tls);
}

static void test_password_with_colon(void **state)
{
	(void)state;
	assert_uri("amqp://u:a:b@h", "u", "a:b", "h", 5672, "/");
	assert_uri("amqp://u:p%40s%2Fs%3F%23@h", "u", "p@s/s?#", "h", 5672, "/");
	assert_uri("amqp://u%3Ax:p@h", "u:x", "p", "h", 5672, "/");
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
	assert_false(uri.has_vhost);
	assert_string_equal(uri.vhost, "/");
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
	assert_true(uri.tls);
	assert_int_equal(uri.port, 5671);
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
	/* plain amqp:// may carry them too (they apply to amqps endpoints) */
	parse_ok("amqp://h?verify=verify_none");
	assert_false(uri.tls);
}

static void test_bad_tls_query_value(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqps://h?verify=none"),
			    "verify: \"none\" is not one of verify_peer, verify_none");
	assert_string_equal(parse_fails("amqps://h?verify=verify%5Fnone%20"),
			    "verify: \"verify_none \" is not one of verify_peer, verify_none");
	assert_string_equal(parse_fails("amqps://h?auth_mechanism=amqplain"),
			    "auth_mechanism: \"amqplain\" is not one of plain, external");
	assert_refused("amqps://h?verify=verify_peer&verify=verify_none",
		       "query parameter \"verify\" is given twice");
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

/* Refusals. */

static void test_bad_scheme(void **state)
{
	(void)state;
	const char *bad[] = {"",	   "host",	 "amqp:",	 "amqp:/host",
			     "amqp:host",  "amqp//host", "amqpx://host", "http://host",
			     "amq://host", " amqp://h"};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_string_equal(parse_fails(bad[i]),
				    "URI must start with \"amqp://\" or \"amqps://\"");
}

static void test_bad_port(void **state)
{
	(void)state;
	const char *bad[] = {
		"amqp://host:0",     "amqp://host:65536", "amqp://host:abc",
		"amqp://host:-1",    "amqp://host:+1",    "amqp://host:99999999999999999999999",
		"amqp://host:5672x", "amqp://host: 5672", "amqp://[::1]:0",
		"amqp://host:56:72", "amqp://::1",        "amqps://u:p@h:70000/v",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_refused(bad[i], "is not a number in 1..65535");
	assert_string_equal(parse_fails("amqp://host:0"),
			    "port: the text at offset 12 is not a number in 1..65535");
	/* the edges themselves are fine, leading zeros too */
	parse_ok("amqp://host:1");
	assert_int_equal(uri.port, 1);
	parse_ok("amqp://host:65535");
	assert_int_equal(uri.port, 65535);
	parse_ok("amqp://host:05672");
	assert_int_equal(uri.port, 5672);
}

static void test_empty_port(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://host:"), "port: empty after ':'");
	assert_string_equal(parse_fails("amqp://host:/v"), "port: empty after ':'");
	assert_string_equal(parse_fails("amqp://[::1]:"), "port: empty after ':'");
	assert_string_equal(parse_fails("amqp://u:p@:?heartbeat=1"), "port: empty after ':'");
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
}

static void test_unknown_query_key(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://h?hearbeat=5"),
			    "unknown query parameter \"hearbeat\" (a URI may set heartbeat, "
			    "connection_timeout, channel_max, frame_max, connection_name, "
			    "cacertfile, certfile, keyfile, verify, server_name_indication, "
			    "auth_mechanism)");
	/* RabbitMQ URI spec keys salvo does not take */
	assert_refused("amqps://h?fail_if_no_peer_cert=true",
		       "unknown query parameter \"fail_if_no_peer_cert\"");
	/* keys a URI has its own syntax for, or that are not per-connection, are refused */
	assert_refused("amqp://h?host=x", "unknown query parameter \"host\"");
	assert_refused("amqp://h?password=x", "unknown query parameter \"password\"");
	assert_refused("amqp://h?rpc_timeout=5", "unknown query parameter \"rpc_timeout\"");
	assert_refused("amqp://h?=5", "unknown query parameter \"\"");
	assert_refused("amqp://h?Heartbeat=5", "unknown query parameter \"Heartbeat\"");
}

static void test_bad_query_value(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://h?heartbeat=abc"),
			    "heartbeat: \"abc\" is not a number");
	assert_string_equal(parse_fails("amqp://h?heartbeat="), "heartbeat: \"\" is not a number");
	assert_string_equal(parse_fails("amqp://h?heartbeat=65536"),
			    "heartbeat: 65536 is above the maximum 65535");
	assert_string_equal(parse_fails("amqp://h?channel_max=0"),
			    "channel_max: 0 is below the minimum 1");
	assert_string_equal(parse_fails("amqp://h?frame_max=100"),
			    "frame_max: 100 is below the minimum 4096");
	assert_string_equal(parse_fails("amqp://h?frame_max=0"),
			    "frame_max: 0 is below the minimum 4096");
	assert_string_equal(parse_fails("amqp://h?connection_timeout=-1"),
			    "connection_timeout: \"-1\" is not a number");
	/* a value that only decodes to something bad is still bad */
	assert_string_equal(parse_fails("amqp://h?heartbeat=%31%20"),
			    "heartbeat: \"1 \" is not a number");

	char text[400];
	int n = snprintf(text, sizeof text, "amqp://h?connection_name=");

	memset(text + n, 'n', 256);
	text[n + 256] = '\0';
	assert_string_equal(parse_fails(text),
			    "connection_name: 256 bytes is above the maximum length 255");
}

static void test_query_without_value(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://h?heartbeat"),
			    "query parameter \"heartbeat\" has no '=value'");
	assert_refused("amqp://h?heartbeat=5&channel_max", "\"channel_max\" has no '=value'");
}

static void test_duplicate_query_key(void **state)
{
	(void)state;
	assert_string_equal(parse_fails("amqp://h?heartbeat=1&heartbeat=2"),
			    "query parameter \"heartbeat\" is given twice");
	assert_refused("amqp://h?heartbeat=1&heart%62eat=1", "\"heartbeat\" is given twice");
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
}

static void test_component_too_long(void **state)
{
	(void)state;
	char text[1200];
	int n;

	n = snprintf(text, sizeof text, "amqp://h/");
	memset(text + n, 'v', 256);
	text[n + 256] = '\0';
	assert_string_equal(parse_fails(text), "vhost: 256 bytes is above the maximum length 255");
	/* the limit is on the decoded name: 255 escapes of 3 bytes each are fine */
	n = snprintf(text, sizeof text, "amqp://h/");
	for (int i = 0; i < 255; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "%%2F");
	parse_ok(text);
	assert_int_equal(strlen(uri.vhost), 255);

	n = snprintf(text, sizeof text, "amqp://");
	memset(text + n, 'h', 256);
	text[n + 256] = '\0';
	assert_string_equal(parse_fails(text), "host: 256 bytes is above the maximum length 255");

	n = snprintf(text, sizeof text, "amqp://");
	memset(text + n, 'u', 256);
	strcpy(text + n + 256, "@h");
	assert_string_equal(parse_fails(text), "user: 256 bytes is above the maximum length 255");
}

static void test_password_never_leaked(void **state)
{
	(void)state;
	const char *bad[] = {
		"amqp://user:s3cret@host:abc",
		"amqp://user:s3cret@host:0",
		"amqp://user:s3cret@host:",
		"amqp://user:s3cret@host/a/b",
		"amqp://user:s3cret@host?foo=1",
		"amqp://user:s3cret@host?heartbeat=abc",
		"amqp://user:s3cret%zz@host",
		"amqp://user:s3cret%4@host",
		"amqp://user:s3cret%00@host",
		"amqp://user:s3cret^@host",
		"amqp://user:s3cret@@host",
		"amqp://user:s3cret",       /* the host forgotten: the password is the "port" */
		"amqp://user:s3cret/vhost", /* likewise */
		"amqp://user:s3/cret@host", /* an unescaped '/', '?' or '#' in the password */
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
		"amqp://user:s3cret@host?heartbeat=1&heartbeat=2",
		"amqp://user:s3cret@host?heartbeat",
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
	assert_int_equal(sv_uri_parse("http://h", &uri, NULL, 0), SALVO_ERR_INVALID_ARGUMENT);
	/* a short buffer gets a truncated, terminated message and nothing past its end */
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("http://h", &uri, small, 4), SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(small, "URI");
	assert_int_equal(small[4], 'X');
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("http://h", &uri, small, 1), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'X');
	/* success leaves errstr alone */
	memset(small, 'X', sizeof small);
	assert_int_equal(sv_uri_parse("amqp://h", &uri, small, sizeof small), 0);
	assert_int_equal(small[0], 'X');
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
		NAMED_TEST("query parameters", test_query_parameters),
		NAMED_TEST("query decoding", test_query_decoding),
		NAMED_TEST("query empty pairs", test_query_empty_pairs),
		NAMED_TEST("longest uri", test_longest_uri),
		NAMED_TEST("bad scheme", test_bad_scheme),
		NAMED_TEST("bad port", test_bad_port),
		NAMED_TEST("empty port", test_empty_port),
		NAMED_TEST("bad escape", test_bad_escape),
		NAMED_TEST("nul escape", test_nul_escape),
		NAMED_TEST("bad character", test_bad_character),
		NAMED_TEST("bad ipv6", test_bad_ipv6),
		NAMED_TEST("unknown query key", test_unknown_query_key),
		NAMED_TEST("bad query value", test_bad_query_value),
		NAMED_TEST("tls query parameters", test_tls_query_parameters),
		NAMED_TEST("bad tls query value", test_bad_tls_query_value),
		NAMED_TEST("query without value", test_query_without_value),
		NAMED_TEST("duplicate query key", test_duplicate_query_key),
		NAMED_TEST("unescaped slash in vhost", test_unescaped_slash_in_vhost),
		NAMED_TEST("at after host", test_at_after_host),
		NAMED_TEST("fragment", test_fragment),
		NAMED_TEST("too long", test_too_long),
		NAMED_TEST("component too long", test_component_too_long),
		NAMED_TEST("password never leaked", test_password_never_leaked),
		NAMED_TEST("errstr size", test_errstr_size),
	};

	return sv_test_main(argc, argv, "uri", tests, sizeof tests / sizeof tests[0]);
}
