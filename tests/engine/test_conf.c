/* SPDX-License-Identifier: MIT */
/*
 * The configuration object: defaults, set and get for every key, the edges of every
 * range, URIs and failover endpoints, and that a failed set changes nothing and no output
 * ever shows the password. Run with a test's name ("defaults") to run that test alone.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>

#include "../support.h"

#include "conf_internal.h"
#include "tls.h"

/* Every key with its default as salvo_conf_get renders it: what the header promises. */
static const struct {
	const char *key;
	const char *def;
} all_keys[] = {
	{"uri", "amqp://guest:***@localhost:5672/%2F"},
	{"uri.add", ""},
	{"endpoints.shuffle", "0"},
	{"host", "localhost"},
	{"port", "5672"},
	{"user", "guest"},
	{"password", "***"},
	{"vhost", "/"},
	{"heartbeat", "60"},
	{"connection_timeout", "30000"},
	{"channel_max", "2047"},
	{"frame_max", "131072"},
	{"connection_name", ""},
	{"rpc_timeout", "30000"},
	{"publisher.ring_size", "4194304"},
	{"publisher.window", "16384"},
	{"publisher.batch.records", "0"},
	{"publisher.batch.bytes", "65536"},
	{"publisher.batch.linger_us", "1000"},
	{"publisher.batch.compression", "none"},
	{"publisher.batch.level", "0"},
	{"publisher.returns.max_bytes", "16777216"},
	{"reconnect", "1"},
	{"reconnect.initial_delay", "100"},
	{"reconnect.max_delay", "10000"},
	{"reconnect.max_attempts", "0"},
	{"blocked_timeout", "0"},
	{"read_hold_us", "2000"},
	{"consumer.buffer_bytes", "16777216"},
	{"consumer.batch.max_bytes", "16777216"},
	{"topology_recovery", "1"},
	{"topology_recovery.max_entities", "10000"},
	{"statistics.interval_ms", "0"},
	{"log.level", "notice"},
	{"io_uring.entries", "256"},
	{"cacertfile", ""},
	{"certfile", ""},
	{"keyfile", ""},
	{"verify", "verify_peer"},
	{"server_name_indication", ""},
	{"auth_mechanism", "plain"},
};

#define N_KEYS (sizeof all_keys / sizeof all_keys[0])

static char errstr[512];

static const char *get(const salvo_conf *conf, const char *key)
{
	static char value[8192];
	size_t size = sizeof value;

	if (salvo_conf_get(conf, key, value, &size))
		fail_msg("get %s failed", key);
	assert_int_equal(size, strlen(value) + 1);
	return value;
}

static void set_ok(salvo_conf *conf, const char *key, const char *value)
{
	errstr[0] = '\0';
	if (salvo_conf_set(conf, key, value, errstr, sizeof errstr))
		fail_msg("set %s=%s: %s", key, value, errstr);
}

/* A refused set leaves the conf as it was, byte for byte; returns the message. */
static const char *set_fails(salvo_conf *conf, const char *key, const char *value)
{
	salvo_conf *before = salvo_conf_dup(conf);

	assert_non_null(before);
	errstr[0] = '\0';
	if (salvo_conf_set(conf, key, value, errstr, sizeof errstr) != SALVO_ERR_INVALID_ARGUMENT)
		fail_msg("set %s=%.60s: accepted", key, value);
	if (errstr[0] == '\0')
		fail_msg("set %s=%.60s: refused without a message", key, value);
	if (memcmp(before, conf, sizeof *conf))
		fail_msg("set %s=%.60s: refused but changed the conf", key, value);
	salvo_conf_destroy(before);
	return errstr;
}

static salvo_conf *new_conf(void)
{
	salvo_conf *conf = salvo_conf_new();

	assert_non_null(conf);
	return conf;
}

static void test_defaults(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	for (size_t i = 0; i < N_KEYS; i++)
		assert_string_equal(get(conf, all_keys[i].key), all_keys[i].def);
	/* what the engine reads */
	assert_int_equal(conf->n_endpoints, 1);
	assert_string_equal(conf->endpoints[0].host, "localhost");
	assert_int_equal(conf->endpoints[0].port, 5672);
	assert_false(conf->endpoints[0].tls);
	assert_string_equal(conf->password, "guest");
	assert_int_equal(conf->heartbeat, 60);
	assert_int_equal(conf->ring_size, 4 << 20);
	salvo_conf_destroy(conf);
}

static void test_set_and_get(void **state)
{
	(void)state;
	static const char *const values[][2] = {
		{"host", "rabbit.example"},
		{"port", "5673"},
		{"user", "bob"},
		{"vhost", "prod"},
		{"heartbeat", "0"},
		{"connection_timeout", "1500"},
		{"channel_max", "16"},
		{"frame_max", "65536"},
		{"connection_name", "orders publisher"},
		{"rpc_timeout", "2500"},
		{"publisher.ring_size", "1048576"},
		{"publisher.window", "4096"},
		{"io_uring.entries", "1024"},
	};
	salvo_conf *conf = new_conf();

	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		set_ok(conf, values[i][0], values[i][1]);
		assert_string_equal(get(conf, values[i][0]), values[i][1]);
	}
	assert_string_equal(get(conf, "uri"), "amqp://bob:***@rabbit.example:5673/prod");
	assert_int_equal(conf->frame_max, 65536);
	assert_int_equal(conf->rpc_timeout, 2500);
	assert_int_equal(conf->io_uring_entries, 1024);
	assert_string_equal(conf->connection_name, "orders publisher");
	/* empty strings are values too */
	set_ok(conf, "vhost", "");
	assert_string_equal(get(conf, "vhost"), "");
	assert_string_equal(get(conf, "uri"), "amqp://bob:***@rabbit.example:5673/");
	/* names are not decoded: "%2F" is three characters */
	set_ok(conf, "vhost", "%2F");
	assert_string_equal(conf->vhost, "%2F");
	assert_string_equal(get(conf, "uri"), "amqp://bob:***@rabbit.example:5673/%252F");
	salvo_conf_destroy(conf);
}

static void test_password_masked(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "password", "s3cret");
	assert_string_equal(conf->password, "s3cret");
	assert_string_equal(get(conf, "password"), "***");
	set_ok(conf, "password", "");
	assert_string_equal(get(conf, "password"), "***");
	salvo_conf_destroy(conf);
}

static void test_number_parsing(void **state)
{
	(void)state;
	const char *bad[] = {"",    "abc", "-1", "+1",	  " 1",	 "1 ", "0x10",
			     "1e3", "1.0", "１", "1_000", "\t1", "1\n"};
	salvo_conf *conf = new_conf();

	char msg[64];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(msg, sizeof msg, "heartbeat: \"%s\" is not a number", bad[i]);
		assert_string_equal(set_fails(conf, "heartbeat", bad[i]), msg);
	}
	/* past UINT64_MAX is not an overflow into something small */
	assert_string_equal(set_fails(conf, "heartbeat", "18446744073709551616"),
			    "heartbeat: 18446744073709551616 is above the maximum 65535");
	assert_string_equal(set_fails(conf, "frame_max", "99999999999999999999999999"),
			    "frame_max: 99999999999999999999999999 is above the maximum 2147483647");
	assert_string_equal(set_fails(conf, "frame_max", "4294967296"),
			    "frame_max: 4294967296 is above the maximum 2147483647");
	/* leading zeros are still decimal */
	set_ok(conf, "heartbeat", "007");
	assert_string_equal(get(conf, "heartbeat"), "7");
	set_ok(conf, "heartbeat", "0000000000000000000000000000030");
	assert_string_equal(get(conf, "heartbeat"), "30");
	salvo_conf_destroy(conf);
}

static void test_error_messages(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	assert_string_equal(set_fails(conf, "heartbeat", "abc"),
			    "heartbeat: \"abc\" is not a number");
	assert_string_equal(set_fails(conf, "frame_max", "100"),
			    "frame_max: 100 is below the minimum 4096");
	assert_string_equal(set_fails(conf, "channel_max", "65536"),
			    "channel_max: 65536 is above the maximum 65535");
	assert_string_equal(set_fails(conf, "host", ""),
			    "host: 0 bytes is below the minimum length 1");
	assert_string_equal(set_fails(conf, "nope", "1"), "unknown configuration key \"nope\"");
	assert_string_equal(set_fails(conf, "uri", "http://x"),
			    "URI must start with \"amqp://\" or \"amqps://\"");
	salvo_conf_destroy(conf);
}

static void test_unknown_key(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char value[64];
	size_t size = sizeof value;

	set_fails(conf, "Heartbeat", "5");
	set_fails(conf, "", "5");
	set_fails(conf, "heartbeat ", "5");
	assert_int_equal(salvo_conf_get(conf, "nope", value, &size), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(size, sizeof value);
	salvo_conf_destroy(conf);
}

static void test_null_arguments(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char value[64];
	size_t size = sizeof value;

	assert_int_equal(salvo_conf_set(NULL, "heartbeat", "5", errstr, sizeof errstr),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_string_equal(errstr, "salvo_conf_set: conf, key and value must not be NULL");
	set_fails(conf, "heartbeat", "abc");
	assert_int_equal(salvo_conf_set(conf, NULL, "5", NULL, 0), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_set(conf, "heartbeat", NULL, NULL, 0),
			 SALVO_ERR_INVALID_ARGUMENT);
	/* errstr is optional */
	assert_int_equal(salvo_conf_set(conf, "heartbeat", "abc", NULL, 0),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_set(conf, "heartbeat", "5", NULL, 0), 0);
	assert_int_equal(salvo_conf_get(NULL, "heartbeat", value, &size),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_get(conf, NULL, value, &size), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(salvo_conf_get(conf, "heartbeat", value, NULL),
			 SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(size, sizeof value);
	assert_null(salvo_conf_dup(NULL));
	salvo_conf_destroy(conf);
}

static void test_failure_leaves_conf_unchanged(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	/* a conf with something in every field, so that any stray write shows */
	set_ok(conf, "uri", "amqps://bob:pw@a.example:1000/v?heartbeat=9&connection_name=n");
	set_ok(conf, "uri.add", "amqp://b.example:2000");
	set_ok(conf, "rpc_timeout", "1234");
	/* set_fails compares the whole conf before and after */
	set_fails(conf, "heartbeat", "65536");
	set_fails(conf, "port", "0");
	set_fails(conf, "host", "");
	set_fails(conf, "vhost",
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123"
		  "0123456789012345678901234567890123456789012345678901234567890123");
	/* a URI whose early parts are good and whose last part is not */
	set_fails(conf, "uri", "amqp://u:p@new.example:9/w?heartbeat=5&channel_max=3&frame_max=1");
	set_fails(conf, "uri", "amqp://u:p@new.example:9/w?heartbeat=5&nope=1");
	set_fails(conf, "uri", "amqp://u:p@new.example:9/w/x");
	set_fails(conf, "uri.add", "amqp://c.example:0");
	set_fails(conf, "uri.add", "amqp://u@c.example");
	assert_string_equal(get(conf, "uri"), "amqps://bob:***@a.example:1000/v");
	assert_string_equal(get(conf, "uri.add"), "amqp://b.example:2000");
	assert_string_equal(get(conf, "heartbeat"), "9");
	salvo_conf_destroy(conf);
}

/* Each key's range, or a string key's length: min - 1 fails, min and max pass, max + 1
 * fails, with the message that names the limit. */
struct range {
	const char *key;
	uint64_t min, max;
	bool length;
};

static const struct range ranges[] = {
	{"heartbeat", 0, 65535, false},
	{"connection_timeout", 1, 3600000, false},
	{"channel_max", 1, 65535, false},
	{"frame_max", 4096, 2147483647, false},
	{"rpc_timeout", 1, 3600000, false},
	{"publisher.ring_size", 65536, 1073741824, false},
	{"publisher.window", 64, 16777216, false},
	{"publisher.batch.records", 0, 1048576, false},
	{"publisher.batch.bytes", 0, 2147483647, false},
	{"publisher.batch.linger_us", 1, 60000000, false},
	{"publisher.batch.level", 0, 19, false},
	{"publisher.returns.max_bytes", 0, 2147483648, false},
	{"reconnect", 0, 1, false},
	{"reconnect.initial_delay", 1, 3600000, false},
	{"reconnect.max_delay", 1, 3600000, false},
	{"reconnect.max_attempts", 0, 1000000, false},
	{"blocked_timeout", 0, 3600000, false},
	{"read_hold_us", 0, 100000, false},
	{"io_uring.entries", 8, 32768, false},
	{"port", 1, 65535, false},
	{"host", 1, 255, true},
	{"user", 0, 255, true},
	{"password", 0, 4096, true},
	{"vhost", 0, 255, true},
	{"connection_name", 0, 255, true},
	{"consumer.buffer_bytes", 65536, 2147483648, false},
	{"consumer.batch.max_bytes", 65536, 2147483648, false},
	{"statistics.interval_ms", 0, 86400000, false},
	{"topology_recovery", 0, 1, false},
	{"topology_recovery.max_entities", 1, 1000000, false},
};

/* The value n: the number, or a string n bytes long. The caller frees it. */
static char *value_at(const struct range *r, uint64_t n)
{
	char *text = malloc(r->length ? n + 1 : 32);

	assert_non_null(text);
	if (r->length) {
		memset(text, 'a', n);
		text[n] = '\0';
	} else {
		snprintf(text, 32, "%" PRIu64, n);
	}
	return text;
}

/* The range of the key a test's name ends with ("range heartbeat", "length host"). */
static const struct range *range_named(const char *test_name)
{
	const char *key = strchr(test_name, ' ') + 1;

	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (!strcmp(ranges[i].key, key))
			return &ranges[i];
	fail_msg("no range for %s", test_name);
	return NULL;
}

static void test_range(void **state)
{
	const struct range *r = range_named(*state);
	const uint64_t edges[] = {r->min - 1, r->min, r->max, r->max + 1};
	salvo_conf *conf = new_conf();
	char msg[128];

	for (size_t i = r->min == 0; i < 4; i++) {
		char *value = value_at(r, edges[i]);
		const char *side = i == 0 ? "below the minimum" : "above the maximum";
		uint64_t limit = i == 0 ? r->min : r->max;

		if (i == 1 || i == 2) {
			set_ok(conf, r->key, value);
			if (strcmp(r->key, "password") != 0)
				assert_string_equal(get(conf, r->key), value);
		} else {
			if (r->length)
				snprintf(msg, sizeof msg, "%s: %" PRIu64 " bytes is %s length %" PRIu64,
					 r->key, edges[i], side, limit);
			else
				snprintf(msg, sizeof msg, "%s: %" PRIu64 " is %s %" PRIu64, r->key,
					 edges[i], side, limit);
			assert_string_equal(set_fails(conf, r->key, value), msg);
		}
		free(value);
	}
	salvo_conf_destroy(conf);
}

static void test_ring_size_rounding(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"65536", "65536"},
		{"65537", "131072"},
		{"100000", "131072"},
		{"3000000", "4194304"},
		{"4194304", "4194304"},
		{"4194305", "8388608"},
		{"1073741823", "1073741824"},
		{"1073741824", "1073741824"},
	};
	salvo_conf *conf = new_conf();

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		set_ok(conf, "publisher.ring_size", cases[i][0]);
		assert_string_equal(get(conf, "publisher.ring_size"), cases[i][1]);
	}
	salvo_conf_destroy(conf);
}

static void test_uri_sets_endpoint_and_credentials(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri", "amqps://b%6Fb:pw%21@rabbit.example:5673/prod");
	assert_int_equal(conf->n_endpoints, 1);
	assert_string_equal(conf->endpoints[0].host, "rabbit.example");
	assert_int_equal(conf->endpoints[0].port, 5673);
	assert_true(conf->endpoints[0].tls);
	assert_string_equal(conf->user, "bob");
	assert_string_equal(conf->password, "pw!");
	assert_string_equal(conf->vhost, "prod");
	assert_string_equal(get(conf, "uri"), "amqps://bob:***@rabbit.example:5673/prod");
	assert_string_equal(get(conf, "host"), "rabbit.example");
	assert_string_equal(get(conf, "port"), "5673");
	/* what get renders is escaped, and IPv6 goes in brackets */
	set_ok(conf, "uri", "amqp://a%20b:x@[::1]/v%2Fw%3F");
	assert_string_equal(get(conf, "uri"), "amqp://a%20b:***@[::1]:5672/v%2Fw%3F");
	assert_string_equal(get(conf, "host"), "::1");
	salvo_conf_destroy(conf);
}

static void test_uri_resets_absent_parts(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri", "amqps://bob:pw@a.example:1000/v");
	set_ok(conf, "uri", "amqp://b.example");
	assert_string_equal(conf->user, "guest");
	assert_string_equal(conf->password, "guest");
	assert_string_equal(conf->vhost, "/");
	assert_int_equal(conf->endpoints[0].port, 5672);
	assert_false(conf->endpoints[0].tls);
	set_ok(conf, "uri", "amqps://");
	assert_string_equal(get(conf, "uri"), "amqps://guest:***@localhost:5671/%2F");
	salvo_conf_destroy(conf);
}

static void test_uri_applies_query(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri",
	       "amqp://h?heartbeat=5&connection_timeout=1000&channel_max=10"
	       "&frame_max=8192&connection_name=my%20app");
	assert_string_equal(get(conf, "heartbeat"), "5");
	assert_string_equal(get(conf, "connection_timeout"), "1000");
	assert_string_equal(get(conf, "channel_max"), "10");
	assert_string_equal(get(conf, "frame_max"), "8192");
	assert_string_equal(get(conf, "connection_name"), "my app");
	salvo_conf_destroy(conf);
}

/* The examples of RabbitMQ's URI spec table: absent parts take the defaults, whatever the
 * conf held before. */
static void test_uri_spec_defaults(void **state)
{
	(void)state;
	static const struct {
		const char *uri, *user, *password, *host;
		uint32_t port;
		const char *vhost;
		bool tls;
	} cases[] = {
		{"amqp://user:pass@host:10000/vhost", "user", "pass", "host", 10000, "vhost", false},
		{"amqp://user%61:%61pass@ho%61st:10000/v%2fhost", "usera", "apass", "hoast", 10000,
		 "v/host", false},
		{"amqp://", "guest", "guest", "localhost", 5672, "/", false},
		{"amqp://:@/", "", "", "localhost", 5672, "", false},
		{"amqp://user@", "user", "guest", "localhost", 5672, "/", false},
		{"amqp://user:pass@", "user", "pass", "localhost", 5672, "/", false},
		{"amqp://host", "guest", "guest", "host", 5672, "/", false},
		{"amqp://:10000", "guest", "guest", "localhost", 10000, "/", false},
		{"amqp:///vhost", "guest", "guest", "localhost", 5672, "vhost", false},
		{"amqp://host/", "guest", "guest", "host", 5672, "", false},
		{"amqp://host/%2f", "guest", "guest", "host", 5672, "/", false},
		{"amqp://host/%2F", "guest", "guest", "host", 5672, "/", false},
		{"amqp://[::1]", "guest", "guest", "::1", 5672, "/", false},
		{"amqp://[::1]:5673/%2f", "guest", "guest", "::1", 5673, "/", false},
		{"AMQP://host", "guest", "guest", "host", 5672, "/", false},
		{"amqps://host", "guest", "guest", "host", 5671, "/", true},
		{"amqps://u:p@host:5673/v", "u", "p", "host", 5673, "v", true},
		{"AmQpS://host", "guest", "guest", "host", 5671, "/", true},
		{"amqp://h?heartbeat=0", "guest", "guest", "h", 5672, "/", false},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		salvo_conf *conf = new_conf();

		set_ok(conf, "user", "x");
		set_ok(conf, "password", "y");
		set_ok(conf, "vhost", "z");
		set_ok(conf, "host", "w");
		set_ok(conf, "port", "1");
		set_ok(conf, "uri", cases[i].uri);
		assert_string_equal(conf->user, cases[i].user);
		assert_string_equal(conf->password, cases[i].password);
		assert_string_equal(conf->endpoints[0].host, cases[i].host);
		assert_int_equal(conf->endpoints[0].port, cases[i].port);
		assert_string_equal(conf->vhost, cases[i].vhost);
		assert_int_equal(conf->endpoints[0].tls, cases[i].tls);
		salvo_conf_destroy(conf);
	}
}

/* The parser hands over the port's text; the conf decides what is a port. */
static void test_uri_bad_port(void **state)
{
	(void)state;
	const char *bad[] = {
		"amqp://host:0",     "amqp://host:65536", "amqp://host:abc",
		"amqp://host:-1",    "amqp://host:+1",    "amqp://host:99999999999999999999999",
		"amqp://host:5672x", "amqp://host: 5672", "amqp://[::1]:0",
		"amqp://host:56:72", "amqp://::1",        "amqps://u:p@h:70000/v",
		"amqp://host:%31",
	};
	salvo_conf *conf = new_conf();

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (!strstr(set_fails(conf, "uri", bad[i]), "is not a number in 1..65535"))
			fail_msg("%s: \"%s\"", bad[i], errstr);
	assert_string_equal(set_fails(conf, "uri", "amqp://host:0"),
			    "port: the text at offset 12 is not a number in 1..65535");
	assert_string_equal(set_fails(conf, "uri", "amqp://[::1]:65536/v"),
			    "port: the text at offset 13 is not a number in 1..65535");
	assert_string_equal(set_fails(conf, "uri", "amqp://host:"), "port: empty after ':'");
	assert_string_equal(set_fails(conf, "uri", "amqp://host:/v"), "port: empty after ':'");
	assert_string_equal(set_fails(conf, "uri", "amqp://[::1]:"), "port: empty after ':'");
	assert_string_equal(set_fails(conf, "uri", "amqp://u:p@:?heartbeat=1"),
			    "port: empty after ':'");
	assert_string_equal(set_fails(conf, "uri.add", "amqp://b:"), "port: empty after ':'");
	/* the edges themselves are fine, leading zeros too */
	set_ok(conf, "uri", "amqp://host:1");
	assert_int_equal(conf->endpoints[0].port, 1);
	set_ok(conf, "uri", "amqp://host:65535");
	assert_int_equal(conf->endpoints[0].port, 65535);
	set_ok(conf, "uri", "amqp://host:05672");
	assert_int_equal(conf->endpoints[0].port, 5672);
	salvo_conf_destroy(conf);
}

/* The parser hands over every pair; the conf knows which keys a URI may set, and how. */
static void test_uri_query_checks(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char text[400];
	int n;

	assert_string_equal(set_fails(conf, "uri", "amqp://h?hearbeat=5"),
			    "unknown query parameter \"hearbeat\" (a URI may set heartbeat, "
			    "connection_timeout, channel_max, frame_max, connection_name, "
			    "cacertfile, certfile, keyfile, verify, server_name_indication, "
			    "auth_mechanism)");
	/* RabbitMQ URI spec keys salvo does not take */
	assert_non_null(strstr(set_fails(conf, "uri", "amqps://h?fail_if_no_peer_cert=true"),
			       "unknown query parameter \"fail_if_no_peer_cert\""));
	/* keys a URI has its own syntax for, or that are not per-connection, are refused */
	static const char *const not_query[][2] = {
		{"amqp://h?host=x", "unknown query parameter \"host\""},
		{"amqp://h?password=x", "unknown query parameter \"password\""},
		{"amqp://h?rpc_timeout=5", "unknown query parameter \"rpc_timeout\""},
		{"amqp://h?=5", "unknown query parameter \"\""},
		{"amqp://h?Heartbeat=5", "unknown query parameter \"Heartbeat\""},
	};
	for (size_t i = 0; i < sizeof not_query / sizeof not_query[0]; i++)
		if (!strstr(set_fails(conf, "uri", not_query[i][0]), not_query[i][1]))
			fail_msg("%s: \"%s\"", not_query[i][0], errstr);

	static const char *const bad_value[][2] = {
		{"amqp://h?heartbeat=abc", "heartbeat: \"abc\" is not a number"},
		{"amqp://h?heartbeat=", "heartbeat: \"\" is not a number"},
		{"amqp://h?heartbeat=65536", "heartbeat: 65536 is above the maximum 65535"},
		{"amqp://h?channel_max=0", "channel_max: 0 is below the minimum 1"},
		{"amqp://h?frame_max=100", "frame_max: 100 is below the minimum 4096"},
		{"amqp://h?frame_max=0", "frame_max: 0 is below the minimum 4096"},
		{"amqp://h?connection_timeout=-1", "connection_timeout: \"-1\" is not a number"},
		/* a value that only decodes to something bad is still bad */
		{"amqp://h?heartbeat=%31%20", "heartbeat: \"1 \" is not a number"},
		{"amqps://h?verify=none", "verify: \"none\" is not one of verify_peer, verify_none"},
		{"amqps://h?verify=verify%5Fnone%20",
		 "verify: \"verify_none \" is not one of verify_peer, verify_none"},
		{"amqps://h?auth_mechanism=cram-md5",
		 "auth_mechanism: \"cram-md5\" is not one of plain, external, amqplain"},
		{"amqp://h?heartbeat=1&heartbeat=2", "query parameter \"heartbeat\" is given twice"},
		{"amqp://h?heartbeat=1&heart%62eat=1", "query parameter \"heartbeat\" is given twice"},
		{"amqps://h?verify=verify_peer&verify=verify_none",
		 "query parameter \"verify\" is given twice"},
		/* in the order written: the first bad pair is the one reported */
		{"amqp://h?heartbeat=x&heartbeat=1&foo=1", "heartbeat: \"x\" is not a number"},
		{"amqp://h?foo=1&heartbeat=x", "unknown query parameter \"foo\" (a URI may set "
					       "heartbeat, connection_timeout, channel_max, "
					       "frame_max, connection_name, cacertfile, certfile, "
					       "keyfile, verify, server_name_indication, "
					       "auth_mechanism)"},
	};
	for (size_t i = 0; i < sizeof bad_value / sizeof bad_value[0]; i++)
		assert_string_equal(set_fails(conf, "uri", bad_value[i][0]), bad_value[i][1]);
	/* uri.add reads the query as "uri" does, before refusing it */
	assert_string_equal(set_fails(conf, "uri.add", "amqp://b?heartbeat=abc"),
			    "heartbeat: \"abc\" is not a number");

	n = snprintf(text, sizeof text, "amqp://h?connection_name=");
	memset(text + n, 'n', 256);
	text[n + 256] = '\0';
	assert_string_equal(set_fails(conf, "uri", text),
			    "connection_name: 256 bytes is above the maximum length 255");
	text[n + 255] = '\0';
	set_ok(conf, "uri", text);
	assert_int_equal(strlen(conf->connection_name), 255);
	salvo_conf_destroy(conf);
}

/* Each string the URI gives is held to its key's length. */
static void test_uri_lengths(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char text[1200];
	int n;

	n = snprintf(text, sizeof text, "amqp://h/");
	memset(text + n, 'v', 256);
	text[n + 256] = '\0';
	assert_string_equal(set_fails(conf, "uri", text),
			    "vhost: 256 bytes is above the maximum length 255");
	/* the limit is on the decoded name: 255 escapes of 3 bytes each are fine */
	n = snprintf(text, sizeof text, "amqp://h/");
	for (int i = 0; i < 255; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "%%2F");
	set_ok(conf, "uri", text);
	assert_int_equal(strlen(conf->vhost), 255);

	n = snprintf(text, sizeof text, "amqp://");
	memset(text + n, 'h', 256);
	text[n + 256] = '\0';
	assert_string_equal(set_fails(conf, "uri", text),
			    "host: 256 bytes is above the maximum length 255");
	assert_string_equal(set_fails(conf, "uri.add", text),
			    "host: 256 bytes is above the maximum length 255");

	n = snprintf(text, sizeof text, "amqp://");
	memset(text + n, 'u', 256);
	strcpy(text + n + 256, "@h");
	assert_string_equal(set_fails(conf, "uri", text),
			    "user: 256 bytes is above the maximum length 255");
	salvo_conf_destroy(conf);
}

static void test_tls_keys(void **state)
{
	(void)state;
	static const char *const values[][2] = {
		{"cacertfile", "/etc/salvo/ca.pem"},
		{"certfile", "/etc/salvo/client.pem"},
		{"keyfile", "/etc/salvo/client.key"},
		{"verify", "verify_none"},
		{"server_name_indication", "rabbit.example"},
		{"auth_mechanism", "external"},
	};
	salvo_conf *conf = new_conf();

	assert_int_equal(conf->verify, SV_VERIFY_PEER);
	assert_int_equal(conf->auth_mechanism, SV_AUTH_PLAIN);
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		set_ok(conf, values[i][0], values[i][1]);
		assert_string_equal(get(conf, values[i][0]), values[i][1]);
	}
	assert_string_equal(conf->cacertfile, "/etc/salvo/ca.pem");
	assert_string_equal(conf->certfile, "/etc/salvo/client.pem");
	assert_string_equal(conf->keyfile, "/etc/salvo/client.key");
	assert_int_equal(conf->verify, SV_VERIFY_NONE);
	assert_string_equal(conf->server_name_indication, "rabbit.example");
	assert_int_equal(conf->auth_mechanism, SV_AUTH_EXTERNAL);
	set_ok(conf, "verify", "verify_peer");
	assert_int_equal(conf->verify, SV_VERIFY_PEER);
	set_ok(conf, "auth_mechanism", "amqplain");
	assert_int_equal(conf->auth_mechanism, SV_AUTH_AMQPLAIN);
	assert_string_equal(get(conf, "auth_mechanism"), "amqplain");
	set_ok(conf, "auth_mechanism", "plain");
	assert_int_equal(conf->auth_mechanism, SV_AUTH_PLAIN);
	/* empty: back to the system store, no client certificate */
	set_ok(conf, "cacertfile", "");
	assert_string_equal(conf->cacertfile, "");
	salvo_conf_destroy(conf);
}

static void test_tls_refusals(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char path[SV_PATH_MAX + 2], name[SV_HOST_MAX + 2];

	assert_string_equal(set_fails(conf, "verify", "none"),
			    "verify: \"none\" is not one of verify_peer, verify_none");
	assert_string_equal(set_fails(conf, "verify", "VERIFY_PEER"),
			    "verify: \"VERIFY_PEER\" is not one of verify_peer, verify_none");
	assert_string_equal(set_fails(conf, "verify", ""),
			    "verify: \"\" is not one of verify_peer, verify_none");
	assert_string_equal(set_fails(conf, "auth_mechanism", "AMQPLAIN"),
			    "auth_mechanism: \"AMQPLAIN\" is not one of plain, external, amqplain");
	memset(path, 'p', sizeof path - 1);
	path[sizeof path - 1] = '\0';
	assert_string_equal(set_fails(conf, "cacertfile", path),
			    "cacertfile: 4096 bytes is above the maximum length 4095");
	assert_string_equal(set_fails(conf, "certfile", path),
			    "certfile: 4096 bytes is above the maximum length 4095");
	assert_string_equal(set_fails(conf, "keyfile", path),
			    "keyfile: 4096 bytes is above the maximum length 4095");
	path[SV_PATH_MAX] = '\0';
	set_ok(conf, "keyfile", path);
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_string_equal(set_fails(conf, "server_name_indication", name),
			    "server_name_indication: 256 bytes is above the maximum length 255");
	salvo_conf_destroy(conf);
}

static void test_uri_applies_tls_query(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri",
	       "amqps://h?cacertfile=/tls/ca.pem&certfile=%2Ftls%2Fclient.pem"
	       "&keyfile=/tls/client.key&verify=verify_none&server_name_indication=rabbit.example"
	       "&auth_mechanism=external&heartbeat=5");
	assert_true(conf->endpoints[0].tls);
	assert_int_equal(conf->endpoints[0].port, 5671);
	assert_string_equal(conf->cacertfile, "/tls/ca.pem");
	assert_string_equal(conf->certfile, "/tls/client.pem");
	assert_string_equal(conf->keyfile, "/tls/client.key");
	assert_int_equal(conf->verify, SV_VERIFY_NONE);
	assert_string_equal(conf->server_name_indication, "rabbit.example");
	assert_int_equal(conf->auth_mechanism, SV_AUTH_EXTERNAL);
	assert_int_equal(conf->heartbeat, 5);
	/* a later URI without them keeps them, like every other key */
	set_ok(conf, "uri", "amqps://h2");
	assert_string_equal(conf->cacertfile, "/tls/ca.pem");
	assert_int_equal(conf->verify, SV_VERIFY_NONE);
	/* a bad value refuses the whole URI */
	set_fails(conf, "uri", "amqps://h3?cacertfile=/x&verify=sometimes");
	assert_string_equal(set_fails(conf, "uri", "amqps://h3?auth_mechanism=EXTERNAL"),
			    "auth_mechanism: \"EXTERNAL\" is not one of plain, external, amqplain");
	set_ok(conf, "uri", "amqp://h4?auth_mechanism=amqplain");
	assert_int_equal(conf->auth_mechanism, SV_AUTH_AMQPLAIN);
	salvo_conf_destroy(conf);
}

/* What the connection code takes from a conf: files, verification, SNI. */
static void test_tls_settings_from_conf(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	struct sv_tls_settings t;

	sv_tls_settings_from_conf(conf, &t);
	assert_string_equal(t.cacertfile, "");
	assert_string_equal(t.certfile, "");
	assert_string_equal(t.keyfile, "");
	assert_false(t.verify_none);
	assert_string_equal(t.server_name, "");
	assert_false(t.sni_disabled);
	set_ok(conf, "uri", "amqps://h?cacertfile=/ca&certfile=/c&keyfile=/k&verify=verify_none"
			    "&server_name_indication=rabbit.example");
	sv_tls_settings_from_conf(conf, &t);
	assert_string_equal(t.cacertfile, "/ca");
	assert_string_equal(t.certfile, "/c");
	assert_string_equal(t.keyfile, "/k");
	assert_true(t.verify_none);
	assert_string_equal(t.server_name, "rabbit.example");
	assert_false(t.sni_disabled);
	set_ok(conf, "server_name_indication", "disable");
	sv_tls_settings_from_conf(conf, &t);
	assert_null(t.server_name);
	assert_true(t.sni_disabled);
	salvo_conf_destroy(conf);
}

static void test_uri_keeps_other_keys(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "heartbeat", "7");
	set_ok(conf, "rpc_timeout", "99");
	set_ok(conf, "connection_name", "mine");
	set_ok(conf, "uri", "amqp://h?channel_max=3");
	assert_string_equal(get(conf, "heartbeat"), "7");
	assert_string_equal(get(conf, "rpc_timeout"), "99");
	assert_string_equal(get(conf, "connection_name"), "mine");
	assert_string_equal(get(conf, "channel_max"), "3");
	/* and keys set after the URI override it */
	set_ok(conf, "user", "alice");
	assert_string_equal(get(conf, "uri"), "amqp://alice:***@h:5672/%2F");
	salvo_conf_destroy(conf);
}

static void test_uri_error_leaves_conf_unchanged(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	assert_string_equal(set_fails(conf, "uri", "amqp://u:p@new?heartbeat=5&frame_max=1"),
			    "frame_max: 1 is below the minimum 4096");
	assert_string_equal(get(conf, "heartbeat"), "60");
	assert_string_equal(get(conf, "host"), "localhost");
	assert_string_equal(get(conf, "user"), "guest");
	salvo_conf_destroy(conf);
}

static void test_uri_add_appends(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri", "amqp://u:p@a/v");
	set_ok(conf, "uri.add", "amqps://b:5999");
	set_ok(conf, "uri.add", "amqp://[::1]");
	set_ok(conf, "uri.add", "amqps://c%2Cd");
	assert_int_equal(conf->n_endpoints, 4);
	assert_string_equal(conf->endpoints[1].host, "b");
	assert_int_equal(conf->endpoints[1].port, 5999);
	assert_true(conf->endpoints[1].tls);
	assert_string_equal(conf->endpoints[2].host, "::1");
	assert_int_equal(conf->endpoints[2].port, 5672);
	assert_false(conf->endpoints[2].tls);
	assert_string_equal(conf->endpoints[3].host, "c,d");
	assert_int_equal(conf->endpoints[3].port, 5671);
	/* a ',' in a host is escaped, so the list stays unambiguous */
	assert_string_equal(get(conf, "uri.add"),
			    "amqps://b:5999,amqp://[::1]:5672,amqps://c%2Cd:5671");
	/* the first endpoint and the shared settings are untouched */
	assert_string_equal(get(conf, "uri"), "amqp://u:***@a:5672/v");
	assert_string_equal(conf->password, "p");
	salvo_conf_destroy(conf);
}

static void test_uri_add_refusals(void **state)
{
	(void)state;
	/* the conf holds user "guest", password "guest", vhost "/" */
	const char *refused[][2] = {
		{"amqp://u@b", "user"},
		{"amqp://:@b", "user"},
		{"amqp://u:p@b", "user"},
		{"amqp://guest@b", NULL}, /* a user without a password: "guest" */
		{"amqp://guest:@b", "password"},
		{"amqp://guest:other@b", "password"},
		{"amqp://guest:guest@b/", "vhost"}, /* the empty vhost */
		{"amqp://b/v", "vhost"},
		{"amqp://guest:guest@b/%2f%2f", "vhost"},
	};
	salvo_conf *conf = new_conf();
	char want[256];

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		if (!refused[i][1]) {
			set_ok(conf, "uri.add", refused[i][0]);
			continue;
		}
		snprintf(want, sizeof want,
			 "uri.add: its %s differs from the first URI's (every endpoint uses one "
			 "user, password and vhost)",
			 refused[i][1]);
		assert_string_equal(set_fails(conf, "uri.add", refused[i][0]), want);
	}
	/* a query parameter is refused even when the first URI has the same one */
	set_ok(conf, "uri", "amqp://a?heartbeat=1");
	assert_string_equal(set_fails(conf, "uri.add", "amqp://b?heartbeat=1"),
			    "uri.add: query parameters go on the first URI (every endpoint "
			    "shares them)");
	/* a malformed one is refused for what is wrong with it */
	assert_string_equal(set_fails(conf, "uri.add", "amqp://b:0"),
			    "port: the text at offset 9 is not a number in 1..65535");
	/* an empty query carries no parameter, so it is accepted */
	set_ok(conf, "uri.add", "amqp://b?");
	salvo_conf_destroy(conf);
}

/* A whole URI is a failover endpoint when it repeats the shared parts (or leaves them out):
 * what salvo-perf -u URI -u URI gives. Only its endpoint is added. */
static void test_uri_add_full(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri", "amqp://app:s%40cret@one:5781/prod");
	set_ok(conf, "uri.add", "amqp://app:s%40cret@two:5782/prod");
	set_ok(conf, "uri.add", "amqp://app:s%40cret@three:5783");
	set_ok(conf, "uri.add", "amqp://four/prod");
	assert_int_equal(conf->n_endpoints, 4);
	assert_string_equal(get(conf, "uri.add"),
			    "amqp://two:5782,amqp://three:5783,amqp://four:5672");
	assert_string_equal(get(conf, "uri"), "amqp://app:***@one:5781/prod");
	/* the parts differ from the first URI's one at a time; the first differing one is
	 * named, and no message holds either password */
	assert_string_equal(set_fails(conf, "uri.add", "amqp://bob:s%40cret@two/prod"),
			    "uri.add: its user differs from the first URI's (every endpoint "
			    "uses one user, password and vhost)");
	assert_null(strstr(set_fails(conf, "uri.add", "amqp://app:wrong@two/prod"), "wrong"));
	assert_null(strstr(set_fails(conf, "uri.add", "amqp://app:wrong@two/prod"), "cret"));
	assert_string_equal(set_fails(conf, "uri.add", "amqp://app:s%40cret@two/test"),
			    "uri.add: its vhost differs from the first URI's (every endpoint "
			    "uses one user, password and vhost)");
	/* the rule holds against what the conf holds: "user" set since "uri" moves it */
	set_ok(conf, "user", "carol");
	assert_string_equal(set_fails(conf, "uri.add", "amqp://app:s%40cret@five/prod"),
			    "uri.add: its user differs from the first URI's (every endpoint "
			    "uses one user, password and vhost)");
	set_ok(conf, "uri.add", "amqp://carol:s%40cret@five/prod");
	assert_int_equal(conf->n_endpoints, 5);
	salvo_conf_destroy(conf);
}

static void test_uri_add_limit(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	for (int i = 1; i < SV_ENDPOINTS_MAX; i++)
		set_ok(conf, "uri.add", "amqp://b");
	assert_int_equal(conf->n_endpoints, SV_ENDPOINTS_MAX);
	assert_string_equal(set_fails(conf, "uri.add", "amqp://b"),
			    "uri.add: a conf holds at most 16 endpoints");
	salvo_conf_destroy(conf);
}

static void test_uri_replaces_list(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri.add", "amqp://b");
	set_ok(conf, "uri.add", "amqp://c");
	assert_string_equal(get(conf, "uri.add"), "amqp://b:5672,amqp://c:5672");
	set_ok(conf, "uri", "amqp://d");
	assert_int_equal(conf->n_endpoints, 1);
	assert_string_equal(get(conf, "uri.add"), "");
	assert_string_equal(conf->endpoints[0].host, "d");
	salvo_conf_destroy(conf);
}

static void test_host_and_port_edit_first_endpoint(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();

	set_ok(conf, "uri", "amqps://a:1000");
	set_ok(conf, "uri.add", "amqp://b:2000");
	set_ok(conf, "host", "c");
	set_ok(conf, "port", "3000");
	assert_string_equal(conf->endpoints[0].host, "c");
	assert_int_equal(conf->endpoints[0].port, 3000);
	assert_true(conf->endpoints[0].tls);
	assert_string_equal(conf->endpoints[1].host, "b");
	assert_int_equal(conf->endpoints[1].port, 2000);
	assert_int_equal(conf->n_endpoints, 2);
	set_ok(conf, "host", "::1");
	assert_string_equal(get(conf, "uri"), "amqps://guest:***@[::1]:3000/%2F");
	salvo_conf_destroy(conf);
}

static void test_get_buffer_sizing(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf();
	char value[16];
	size_t size = 0;

	set_ok(conf, "vhost", "abcdef");
	/* no buffer: learn the size */
	assert_int_equal(salvo_conf_get(conf, "vhost", NULL, &size), 0);
	assert_int_equal(size, 7);
	/* exactly enough */
	memset(value, 'X', sizeof value);
	size = 7;
	assert_int_equal(salvo_conf_get(conf, "vhost", value, &size), 0);
	assert_string_equal(value, "abcdef");
	assert_int_equal(size, 7);
	assert_int_equal(value[7], 'X');
	/* one short: refused, emptied, told the size */
	memset(value, 'X', sizeof value);
	size = 6;
	assert_int_equal(salvo_conf_get(conf, "vhost", value, &size), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(size, 7);
	assert_string_equal(value, "");
	assert_int_equal(value[6], 'X');
	/* a zero-sized buffer is not written at all */
	memset(value, 'X', sizeof value);
	size = 0;
	assert_int_equal(salvo_conf_get(conf, "vhost", value, &size), SALVO_ERR_INVALID_ARGUMENT);
	assert_int_equal(size, 7);
	assert_int_equal(value[0], 'X');
	salvo_conf_destroy(conf);
}

static void test_dup(void **state)
{
	(void)state;
	salvo_conf *conf = new_conf(), *copy;
	char value[64];

	set_ok(conf, "uri", "amqps://bob:pw@a:1/v?heartbeat=3&connection_name=x");
	set_ok(conf, "uri.add", "amqp://b:2");
	copy = salvo_conf_dup(conf);
	assert_non_null(copy);
	assert_memory_equal(copy, conf, sizeof *conf);
	for (size_t i = 0; i < N_KEYS; i++) {
		snprintf(value, sizeof value, "%s", get(conf, all_keys[i].key));
		assert_string_equal(get(copy, all_keys[i].key), value);
	}
	/* independent from then on */
	set_ok(conf, "heartbeat", "4");
	set_ok(conf, "uri.add", "amqp://c:3");
	assert_string_equal(get(copy, "heartbeat"), "3");
	assert_string_equal(get(copy, "uri.add"), "amqp://b:2");
	salvo_conf_destroy(conf);
	assert_string_equal(copy->password, "pw");
	salvo_conf_destroy(copy);
}

static void test_destroy_null(void **state)
{
	(void)state;
	salvo_conf_destroy(NULL);
}

static void test_print_help(void **state)
{
	(void)state;
	char *text = NULL, *p, needle[128];
	size_t size = 0, headings = 0;
	FILE *out = open_memstream(&text, &size);

	assert_non_null(out);
	salvo_conf_print_help(out);
	assert_int_equal(fclose(out), 0);
	/* every key, with the default a new conf reads back */
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *quote = isdigit((unsigned char)all_keys[i].def[0]) ? "" : "\"";

		snprintf(needle, sizeof needle,
			 "\n%s\n  default: %s%s%s\n  range:   ", all_keys[i].key, quote,
			 all_keys[i].def, quote);
		if (!strstr(text, needle))
			fail_msg("help lacks \"%s\"", needle);
	}
	/* and no key the test does not know: a heading is a line that is not indented */
	for (p = strchr(text, '\n'); p; p = strchr(p + 1, '\n'))
		if (p[1] && p[1] != ' ' && p[1] != '\n')
			headings++;
	assert_int_equal(headings, N_KEYS);
	/* ranges and units, and help from the table */
	assert_non_null(strstr(text, "\nheartbeat\n  default: 60\n  range:   0..65535 seconds\n"));
	assert_non_null(strstr(text, "range:   4096..2147483647 bytes\n"));
	assert_non_null(strstr(text, "range:   0..4096 bytes\n"));
	assert_non_null(strstr(text, "range:   8..32768\n"));
	assert_non_null(strstr(text, "an amqp:// or amqps:// URI of at most 4096 bytes"));
	assert_non_null(strstr(text, "rounded up to a power of two"));
	assert_non_null(strstr(text, "\"no limit\""));
	assert_non_null(strstr(text, "\nverify\n  default: \"verify_peer\"\n"
				     "  range:   verify_peer | verify_none\n"));
	assert_non_null(strstr(text, "range:   plain | external | amqplain\n"));
	assert_non_null(strstr(text, "range:   none | lz4 | zstd\n"));
	assert_non_null(strstr(text, "range:   0..4095 bytes\n"));
	assert_non_null(strstr(text, "a warning is\n  logged (facility tls), once per process on stderr"));
	assert_non_null(strstr(text, "\nlog.level\n  default: \"notice\"\n"
				     "  range:   error | warning | notice | info | debug\n"));
	free(text);
}

static void test_password_never_leaked(void **state)
{
	(void)state;
	/* Refused for what the values mean; test_uri.c has the malformed ones. */
	const char *bad[] = {
		"amqp://user:s3cret@host:abc",
		"amqp://user:s3cret@host:0",
		"amqp://user:s3cret@host:",
		"amqp://user:s3cret",	    /* the host forgotten: the password is the "port" */
		"amqp://user:s3cret/vhost", /* likewise */
		"amqp://user:s3cret@host?foo=1",
		"amqp://user:s3cret@host?heartbeat=abc",
		"amqp://user:s3cret@host?heartbeat=1&heartbeat=2",
		/* and two malformed ones, through the conf */
		"amqp://user:s3/cret@host",
		"amqp://user:s3cret%zz@host",
	};
	salvo_conf *conf = new_conf();
	char *help = NULL, *long_password = malloc(SV_PASSWORD_MAX + 2);
	size_t size = 0;
	FILE *out;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *msg = set_fails(conf, "uri", bad[i]);

		if (strstr(msg, "s3") || strstr(msg, "cret"))
			fail_msg("%s: \"%s\" shows the password", bad[i], msg);
		msg = set_fails(conf, "uri.add", bad[i]);
		if (strstr(msg, "s3") || strstr(msg, "cret"))
			fail_msg("uri.add %s: \"%s\" shows the password", bad[i], msg);
	}
	assert_null(strstr(set_fails(conf, "uri.add", "amqp://user:s3cret@b"), "s3"));
	/* nor when the whole URI is too long */
	char *text = malloc(SV_URI_MAX + 64);
	assert_non_null(text);
	int n = snprintf(text, SV_URI_MAX + 64, "amqp://user:s3cret@host/");
	memset(text + n, 'v', SV_URI_MAX);
	text[n + SV_URI_MAX] = '\0';
	assert_string_equal(set_fails(conf, "uri", text), "URI is longer than 4096 bytes");
	free(text);
	assert_non_null(long_password);
	memset(long_password, 'z', SV_PASSWORD_MAX + 1);
	memcpy(long_password, "s3cret", 6);
	long_password[SV_PASSWORD_MAX + 1] = '\0';
	assert_string_equal(set_fails(conf, "password", long_password),
			    "password: 4097 bytes is above the maximum length 4096");
	free(long_password);

	/* no key reads it back, nor does the help */
	set_ok(conf, "uri", "amqp://user:s3cret@host/v");
	assert_string_equal(conf->password, "s3cret");
	for (size_t i = 0; i < N_KEYS; i++)
		assert_null(strstr(get(conf, all_keys[i].key), "s3"));
	set_ok(conf, "password", "s3cret");
	for (size_t i = 0; i < N_KEYS; i++)
		assert_null(strstr(get(conf, all_keys[i].key), "s3"));
	out = open_memstream(&help, &size);
	assert_non_null(out);
	salvo_conf_print_help(out);
	assert_int_equal(fclose(out), 0);
	assert_null(strstr(help, "s3"));
	free(help);
	salvo_conf_destroy(conf);
}

#define RANGE_TEST(name) {name, test_range, NULL, NULL, (void *)(name)}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("defaults", test_defaults),
		NAMED_TEST("set and get", test_set_and_get),
		NAMED_TEST("password masked", test_password_masked),
		NAMED_TEST("number parsing", test_number_parsing),
		NAMED_TEST("error messages", test_error_messages),
		NAMED_TEST("unknown key", test_unknown_key),
		NAMED_TEST("null arguments", test_null_arguments),
		NAMED_TEST("failure leaves conf unchanged", test_failure_leaves_conf_unchanged),
		RANGE_TEST("range heartbeat"),
		RANGE_TEST("range connection_timeout"),
		RANGE_TEST("range channel_max"),
		RANGE_TEST("range frame_max"),
		RANGE_TEST("range rpc_timeout"),
		RANGE_TEST("range publisher.ring_size"),
		RANGE_TEST("range io_uring.entries"),
		RANGE_TEST("range port"),
		RANGE_TEST("length host"),
		RANGE_TEST("length user"),
		RANGE_TEST("length password"),
		RANGE_TEST("length vhost"),
		RANGE_TEST("length connection_name"),
		RANGE_TEST("range consumer.buffer_bytes"),
		RANGE_TEST("range consumer.batch.max_bytes"),
		RANGE_TEST("range statistics.interval_ms"),
		RANGE_TEST("range topology_recovery"),
		RANGE_TEST("range topology_recovery.max_entities"),
		RANGE_TEST("range publisher.window"),
		RANGE_TEST("range publisher.batch.records"),
		RANGE_TEST("range publisher.batch.bytes"),
		RANGE_TEST("range publisher.batch.linger_us"),
		RANGE_TEST("range publisher.batch.level"),
		RANGE_TEST("range publisher.returns.max_bytes"),
		RANGE_TEST("range reconnect"),
		RANGE_TEST("range reconnect.initial_delay"),
		RANGE_TEST("range reconnect.max_delay"),
		RANGE_TEST("range reconnect.max_attempts"),
		RANGE_TEST("range blocked_timeout"),
		RANGE_TEST("range read_hold_us"),
		NAMED_TEST("ring size rounding", test_ring_size_rounding),
		NAMED_TEST("uri sets endpoint and credentials", test_uri_sets_endpoint_and_credentials),
		NAMED_TEST("uri resets absent parts", test_uri_resets_absent_parts),
		NAMED_TEST("uri applies query", test_uri_applies_query),
		NAMED_TEST("uri spec defaults", test_uri_spec_defaults),
		NAMED_TEST("uri bad port", test_uri_bad_port),
		NAMED_TEST("uri query checks", test_uri_query_checks),
		NAMED_TEST("uri lengths", test_uri_lengths),
		NAMED_TEST("uri keeps other keys", test_uri_keeps_other_keys),
		NAMED_TEST("uri error leaves conf unchanged", test_uri_error_leaves_conf_unchanged),
		NAMED_TEST("uri.add appends", test_uri_add_appends),
		NAMED_TEST("uri.add refusals", test_uri_add_refusals),
		NAMED_TEST("uri.add full URIs", test_uri_add_full),
		NAMED_TEST("uri.add limit", test_uri_add_limit),
		NAMED_TEST("uri replaces list", test_uri_replaces_list),
		NAMED_TEST("host and port edit first endpoint", test_host_and_port_edit_first_endpoint),
		NAMED_TEST("get buffer sizing", test_get_buffer_sizing),
		NAMED_TEST("dup", test_dup),
		NAMED_TEST("destroy null", test_destroy_null),
		NAMED_TEST("print help", test_print_help),
		NAMED_TEST("password never leaked", test_password_never_leaked),
		NAMED_TEST("tls keys", test_tls_keys),
		NAMED_TEST("tls refusals", test_tls_refusals),
		NAMED_TEST("uri applies tls query", test_uri_applies_tls_query),
		NAMED_TEST("tls settings from conf", test_tls_settings_from_conf),
	};

	return sv_test_main(argc, argv, "conf", tests, sizeof tests / sizeof tests[0]);
}
