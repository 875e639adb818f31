/* SPDX-License-Identifier: MIT */
/*
 * The configuration object. One table, keys[], holds every key's type, default, range and
 * help: salvo_conf_new takes the defaults from it, salvo_conf_set checks values against it
 * (a URI's through sv_conf_read_uri, which gives the parser's components their meaning),
 * salvo_conf_get renders from it, salvo_conf_print_help prints it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf_internal.h"

#include "../codec/codec.h"

enum key_type {
	KEY_NUMBER,  /* a uint32_t field; min..max is its range */
	KEY_STRING,  /* a char[] field; min..max is its length in bytes */
	KEY_URI,     /* replaces the endpoint list, sets user, password, vhost */
	KEY_URI_ADD, /* appends a failover endpoint */
	KEY_CHOICE,  /* a uint32_t field: the index of the value in choices */
};

enum key_flags {
	KEY_QUERY = 1 << 0,  /* a URI's query may set it */
	KEY_SECRET = 1 << 1, /* reads back as "***" */
	KEY_POW2 = 1 << 2,   /* rounded up to a power of two */
};

struct conf_key {
	const char *name;
	enum key_type type;
	unsigned flags;
	size_t offset;
	uint64_t min, max;
	uint64_t def;	     /* numbers */
	const char *def_str; /* strings */
	const char *unit;
	const char *help;
	const char *const *choices; /* KEY_CHOICE: the values, NULL-terminated */
};

#define FIELD_SIZE(f) sizeof(((struct salvo_conf *)0)->f)

#define NUMBER(name_, field, flags_, min_, max_, def_, unit_, help_)                               \
	{                                                                                          \
		.name = name_, .type = KEY_NUMBER, .flags = flags_,                                \
		.offset = offsetof(struct salvo_conf, field), .min = min_, .max = max_,            \
		.def = def_, .unit = unit_, .help = help_                                          \
	}

/* A string's longest value is its buffer's size, so the two cannot disagree. */
#define STRING(name_, field, flags_, min_, def_, help_)                                            \
	{                                                                                          \
		.name = name_, .type = KEY_STRING, .flags = flags_,                                \
		.offset = offsetof(struct salvo_conf, field), .min = min_,                         \
		.max = FIELD_SIZE(field) - 1, .def_str = def_, .unit = "bytes", .help = help_      \
	}

/* A choice's default is the index def_ of its values; their order matches enum sv_verify /
 * sv_auth, or the levels from SV_LOG_LEVEL_BASE. */
#define CHOICE(name_, field, flags_, def_, help_, ...)                                             \
	{                                                                                          \
		.name = name_, .type = KEY_CHOICE, .flags = flags_,                                \
		.offset = offsetof(struct salvo_conf, field), .def = def_, .unit = "",             \
		.help = help_, .choices = (const char *const[]){__VA_ARGS__, NULL}                 \
	}

static const struct conf_key keys[] = {
	{
		.name = "uri",
		.type = KEY_URI,
		.max = SV_URI_MAX,
		.help = "The broker: amqp[s]://user:password@host:port/vhost?key=value&...\n"
			"Replaces the endpoint list with this one endpoint and sets user,\n"
			"password and vhost, absent ones to their defaults (\"amqp://host\"\n"
			"means user and password guest, vhost \"/\"; \"amqp://host/\" means\n"
			"the empty vhost). Query parameters heartbeat, connection_timeout,\n"
			"channel_max, frame_max, connection_name and the TLS keys (cacertfile,\n"
			"certfile, keyfile, verify, server_name_indication, auth_mechanism) set\n"
			"those keys; other keys keep their values. amqps:// means TLS from the\n"
			"first byte, port 5671 by default. Reads back as the first endpoint's\n"
			"URI with the password as ***.",
	},
	{
		.name = "uri.add",
		.type = KEY_URI_ADD,
		.max = SV_URI_MAX,
		.help = "Appends a failover endpoint, tried after the ones before it: a\n"
			"whole URI (amqp[s]://user:password@host:port/vhost) or only\n"
			"amqp[s]://host:port. All endpoints share one user, password and vhost:\n"
			"those it gives must be the ones the conf holds (\"uri\"'s, unless set\n"
			"since), and query parameters are refused (they go on \"uri\"). Set\n"
			"\"uri\" first: it clears the list. Reads back as a comma-separated list\n"
			"of amqp[s]://host:port.",
	},
	NUMBER("endpoints.shuffle", endpoints_shuffle, 0, 0, 1, 0, "",
	       "1: clients try the endpoints (\"uri\" and each \"uri.add\") in a shuffled\n"
	       "order, so that many processes given one list do not all start on its first\n"
	       "node. The order is drawn once per configuration (salvo_conf_new; copies\n"
	       "keep it): every client and pool made from it shares it, and a pool spreads\n"
	       "its connections over it in turn. 0 (the default): the order given, so the\n"
	       "first endpoint is the preferred one and where a connection goes is\n"
	       "predictable."),
	STRING("host", endpoints[0].host, 0, 1, "localhost",
	       "Host name or address of the first endpoint; an IPv6 address without brackets."),
	NUMBER("port", endpoints[0].port, 0, 1, UINT16_MAX, SV_PORT_AMQP, "",
	       "Port of the first endpoint."),
	STRING("user", user, 0, 0, "guest",
	       "User name (SASL PLAIN; with auth_mechanism=external the broker takes the\n"
	       "name from the client certificate)."),
	STRING("password", password, KEY_SECRET, 0, "guest",
	       "Password (SASL PLAIN). Never shown: reads back as ***."),
	STRING("vhost", vhost, 0, 0, "/", "Virtual host to open."),
	NUMBER("heartbeat", heartbeat, KEY_QUERY, 0, UINT16_MAX, 60, "seconds",
	       "Heartbeat interval proposed to the broker; 0 disables heartbeats."),
	NUMBER("connection_timeout", connection_timeout, KEY_QUERY, 1, 3600000, 30000,
	       "milliseconds",
	       "Time allowed to open a connection, from the name lookup to "
	       "connection.open-ok."),
	NUMBER("channel_max", channel_max, KEY_QUERY, 1, UINT16_MAX, 2047, "",
	       "Most channels per connection proposed to the broker; the lower wins."),
	NUMBER("frame_max", frame_max, KEY_QUERY, SV_FRAME_MIN_SIZE, INT32_MAX, 131072, "bytes",
	       "Largest frame proposed to the broker; the lower wins. AMQP's 0, \"no limit\",\n"
	       "is refused: frames are buffered whole, so they need a bound."),
	STRING("connection_name", connection_name, KEY_QUERY, 0, "",
	       "Name the broker shows for the connection; empty sends none."),
	NUMBER("rpc_timeout", rpc_timeout, 0, 1, 3600000, 30000, "milliseconds",
	       "Deadline for a synchronous method (declare, bind, confirm.select, ...)."),
	NUMBER("publisher.ring_size", ring_size, KEY_POW2, 64 << 10, 1 << 30, 4 << 20, "bytes",
	       "Size of each publisher's ring buffer, rounded up to a power of two."),
	NUMBER("publisher.window", window, KEY_POW2, 64, 1 << 24, 16384, "messages",
	       "Confirm modes: most messages a publisher has without a known outcome,\n"
	       "rounded up to a power of two (salvo_publisher_opts.window overrides it)."),
	NUMBER("publisher.batch.records", batch_records, 0, 0, 1u << 20, 0, "records",
	       "Batching (salvo_batch_opts): most records packed into one envelope; 0: no\n"
	       "batching. At most half the window in confirm modes."),
	NUMBER("publisher.batch.bytes", batch_bytes, 0, 0, INT32_MAX, 65536, "bytes",
	       "Batching: bytes of records (each its length plus 4) in one envelope, before\n"
	       "compression; the envelope is one body frame, so it must fit frame_max."),
	NUMBER("publisher.batch.linger_us", batch_linger_us, 0, 1, 60000000, 1000, "microseconds",
	       "Batching: longest a record waits in an open envelope; then the I/O thread\n"
	       "closes and sends it."),
	CHOICE("publisher.batch.compression", batch_compression, 0, 0,
	       "Batching: compression of each envelope's body, one LZ4 or zstd frame\n"
	       "(content_encoding lz4 or zstd).",
	       "none", "lz4", "zstd"),
	NUMBER("publisher.batch.level", batch_level, 0, 0, 19, 0, "",
	       "Batching: the compression level, on the codec's own scale (lz4 0..12,\n"
	       "zstd 1..19); 0: the codec's default."),
	NUMBER("publisher.returns.max_bytes", returns_max_bytes, 0, 0, 1u << 31, 16u << 20,
	       "bytes",
	       "Returned messages (mandatory, unroutable) the client holds until the\n"
	       "application is handed them (salvo_returned): bodies, properties and\n"
	       "bookkeeping. A return that does not fit, by the size the broker announces,\n"
	       "is dropped and counted (salvo_pub_stats.returns_dropped); 0 keeps none."),
	NUMBER("reconnect", reconnect, 0, 0, 1, 1, "",
	       "1: when the connection is lost (I/O error, missed heartbeats, 320\n"
	       "CONNECTION_FORCED), reconnect, run the on-connect hooks and resume publishers,\n"
	       "resending what was not confirmed; 0: report the loss and stay closed."),
	NUMBER("reconnect.initial_delay", reconnect_initial_delay, 0, 1, 3600000, 100,
	       "milliseconds",
	       "Wait before the first reconnection attempt; doubled after each failed one,\n"
	       "with random jitter (the wait is between half of it and all of it)."),
	NUMBER("reconnect.max_delay", reconnect_max_delay, 0, 1, 3600000, 10000, "milliseconds",
	       "Longest wait between reconnection attempts."),
	NUMBER("reconnect.max_attempts", reconnect_max_attempts, 0, 0, 1000000, 0, "",
	       "Attempts (each tries every endpoint once) before giving up; 0: for ever."),
	NUMBER("blocked_timeout", blocked_timeout, 0, 0, 3600000, 0, "milliseconds",
	       "When the broker has blocked the connection (connection.blocked: a memory or\n"
	       "disk alarm) for this long, close it with SALVO_ERR_TIMEOUT; 0: wait for ever\n"
	       "(publishers feel the block as full rings)."),
	NUMBER("read_hold_us", read_hold_us, 0, 0, 100000, 2000, "microseconds",
	       "How long the I/O thread may leave the broker's next frames in the socket\n"
	       "after a small read of publisher acks, or after a read that brought a stream\n"
	       "of deliveries, so that one wake-up of it and of the waiting threads serves\n"
	       "many messages. After acks, while producers wait for confirms and no consumer\n"
	       "or reply is awaited on the connection: until the first producer has its\n"
	       "confirms at the rate acks come, up to 8 times this and 100 ms. No hold while\n"
	       "a producer's confirm or ring space is near (a sync publish, the end of\n"
	       "wait_confirms; a wait that starts cuts a hold short), while a channel has\n"
	       "half its prefetch unacked, or, for streams, for RPC replies. A delivery or a\n"
	       "method's reply behind a held read waits up to this long. 0: every read is\n"
	       "armed at once, for the lowest latency at the most CPU per message."),
	NUMBER("consumer.buffer_bytes", consumer_buffer_bytes, 0, 65536, 1u << 31, 16u << 20,
	       "bytes",
	       "Messages delivered to the client's consumers and not yet taken by the\n"
	       "application (salvo_consumer_get / dispatch), body and properties. Past it\n"
	       "the I/O thread stops reading the socket (TCP pushes back on the broker),\n"
	       "still sending heartbeats and acks, and reads again once half is taken."),
	NUMBER("consumer.batch.max_bytes", consumer_batch_max_bytes, 0, 65536, 1u << 31,
	       16u << 20, "bytes",
	       "Most memory one envelope (a batching publisher's message) may take once a\n"
	       "consumer has split it into records: its body decompressed, plus 48 bytes a\n"
	       "record. A larger one (a decompression bomb) is malformed: rejected without\n"
	       "requeue, like an envelope whose lengths or record count are wrong."),
	NUMBER("topology_recovery", topology_recovery, 0, 0, 1, 1, "",
	       "1: record the exchanges, queues, bindings and consumers declared through the\n"
	       "client and make them again after a reconnection, before the on-connect hooks\n"
	       "(server-named queues get new names: SALVO_EVENT_QUEUE_RENAMED); channels\n"
	       "with recorded consumers are reopened and their consumers go on. 0: nothing\n"
	       "is recorded, and every channel opened with salvo_channel_open is closed by\n"
	       "a loss with its consumers."),
	NUMBER("topology_recovery.max_entities", topology_max_entities, 0, 1, 1000000, 10000, "",
	       "Most entities (exchanges, queues, bindings, consumers together) recorded for\n"
	       "topology recovery; a declare, bind or consume that would record one more\n"
	       "fails with SALVO_ERR_LIMIT before anything is sent. Each costs a few hundred\n"
	       "bytes, and a declare looks through the records of its kind."),
	NUMBER("statistics.interval_ms", statistics_interval_ms, 0, 0, 86400000, 0,
	       "milliseconds",
	       "How often the statistics callback (salvo_conf_set_stats_cb) gets a JSON\n"
	       "document of the client's figures (docs/statistics.md), run by\n"
	       "salvo_client_poll_event on the application's thread; 0: never."),
	CHOICE("log.level", log_level, 0, SALVO_LOG_NOTICE - SV_LOG_LEVEL_BASE,
	       "The least severe log line passed to the log callback (salvo_conf_set_log_cb)\n"
	       "or, without one, written to stderr; lines below it are not even formatted.\n"
	       "error: giving up, protocol violations; warning: also the connection lost,\n"
	       "blocked by the broker, consumers cancelled, envelopes rejected, TLS\n"
	       "verification off; notice: also each reconnection attempt, reconnected,\n"
	       "unblocked (the default: a loss is followed by how it ended); info: also\n"
	       "each connection made; debug: also each endpoint that failed to connect.\n"
	       "No line holds a password.",
	       "error", "warning", "notice", "info", "debug"),
	NUMBER("io_uring.entries", io_uring_entries, 0, 8, 32768, 256, "",
	       "Submission queue entries of each I/O thread's io_uring; the kernel rounds\n"
	       "it up to a power of two."),
	STRING("cacertfile", cacertfile, KEY_QUERY, 0, "",
	       "amqps: PEM file of the CA certificates that may sign the broker's\n"
	       "certificate; empty uses the system store (OpenSSL's default paths)."),
	STRING("certfile", certfile, KEY_QUERY, 0, "",
	       "amqps: PEM file of the client certificate (chain) to present; empty\n"
	       "presents none. Needed by auth_mechanism=external."),
	STRING("keyfile", keyfile, KEY_QUERY, 0, "",
	       "amqps: PEM file of the client certificate's private key (unencrypted);\n"
	       "empty takes the key from certfile."),
	CHOICE("verify", verify, KEY_QUERY, 0,
	       "amqps: verify_peer checks the broker's certificate chain and its name\n"
	       "(or IP address) against the host or server_name_indication, and fails\n"
	       "the connection with SALVO_ERR_TLS otherwise. verify_none skips both\n"
	       "checks, so anyone on the path can pose as the broker: a warning is\n"
	       "logged (facility tls), once per process on stderr, once per client to a\n"
	       "log callback.",
	       "verify_peer", "verify_none"),
	STRING("server_name_indication", server_name_indication, KEY_QUERY, 0, "",
	       "amqps: the name sent as SNI and checked against the broker's\n"
	       "certificate, when it differs from the host (e.g. connecting by\n"
	       "address); empty uses the host (no SNI for an IP address, which is then\n"
	       "checked against the certificate's IP addresses); \"disable\" sends no\n"
	       "SNI and still checks the host."),
	CHOICE("auth_mechanism", auth_mechanism, KEY_QUERY, 0,
	       "SASL mechanism for the login: plain sends user and password; external\n"
	       "logs in as the client certificate's identity (amqps with certfile;\n"
	       "RabbitMQ needs the rabbitmq_auth_mechanism_ssl plugin); amqplain sends\n"
	       "user and password as a field table (LOGIN, PASSWORD), for brokers that\n"
	       "offer it instead of PLAIN. A broker that offers not the one asked for is\n"
	       "refused with SALVO_ERR_UNSUPPORTED.",
	       "plain", "external", "amqplain"),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

int sv_conf_error(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	if (errstr && errstr_size) {
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return SALVO_ERR_INVALID_ARGUMENT;
}

int sv_parse_uint(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)((unsigned char)s[i] - '0');

		if (d > 9)
			return -1;
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	return 0;
}

static const struct conf_key *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Output that counts what it could not store, so callers learn the size they need. */
struct sink {
	char *buf;
	size_t cap;
	size_t len;
};

static void put(struct sink *s, const char *p, size_t n)
{
	if (s->len < s->cap)
		memcpy(s->buf + s->len, p, n < s->cap - s->len ? n : s->cap - s->len);
	s->len += n;
}

static void put_str(struct sink *s, const char *p)
{
	put(s, p, strlen(p));
}

/* Check a number, string or choice value; a number comes back in *num, rounded if the key says so.
 * A string is never quoted in a message: it may be the password. */
static int parse(const struct conf_key *k, const char *value, uint32_t *num, char *errstr,
		 size_t errstr_size)
{
	uint64_t v;
	size_t len = strlen(value);

	if (k->type == KEY_CHOICE) {
		char list[128];
		struct sink s = {list, sizeof list - 1, 0};

		for (uint32_t i = 0; k->choices[i]; i++) {
			if (strcmp(value, k->choices[i]) == 0) {
				*num = i;
				return 0;
			}
			if (i)
				put_str(&s, ", ");
			put_str(&s, k->choices[i]);
		}
		list[s.len < s.cap ? s.len : s.cap] = '\0';
		return sv_conf_error(errstr, errstr_size, "%s: \"%s\" is not one of %s", k->name,
				     value, list);
	}
	if (k->type == KEY_STRING) {
		if (len < k->min)
			return sv_conf_error(errstr, errstr_size,
					     "%s: %zu bytes is below the minimum length %" PRIu64,
					     k->name, len, k->min);
		if (len > k->max)
			return sv_conf_error(errstr, errstr_size,
					     "%s: %zu bytes is above the maximum length %" PRIu64,
					     k->name, len, k->max);
		return 0;
	}
	if (sv_parse_uint(value, len, &v))
		return sv_conf_error(errstr, errstr_size, "%s: \"%s\" is not a number", k->name,
				     value);
	if (v < k->min)
		return sv_conf_error(errstr, errstr_size, "%s: %s is below the minimum %" PRIu64,
				     k->name, value, k->min);
	if (v > k->max)
		return sv_conf_error(errstr, errstr_size, "%s: %s is above the maximum %" PRIu64,
				     k->name, value, k->max);
	if (k->flags & KEY_POW2)
		for (uint64_t p = 1;; p <<= 1)
			if (p >= v) {
				v = p;
				break;
			}
	*num = (uint32_t)v;
	return 0;
}

/* Store a value that parse() accepted. */
static void store(struct salvo_conf *conf, const struct conf_key *k, const char *value,
		  uint32_t num)
{
	char *field = (char *)conf + k->offset;

	if (k->type == KEY_NUMBER || k->type == KEY_CHOICE)
		memcpy(field, &num, sizeof num);
	else
		memcpy(field, value, strlen(value) + 1);
}

static void set_defaults(struct salvo_conf *conf)
{
	memset(conf, 0, sizeof *conf);
	conf->n_endpoints = 1;
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].type != KEY_URI && keys[i].type != KEY_URI_ADD)
			store(conf, &keys[i], keys[i].def_str, (uint32_t)keys[i].def);
}

static int unknown_query_key(const char *key, char *errstr, size_t errstr_size)
{
	char known[256];
	struct sink s = {known, sizeof known - 1, 0};

	for (size_t i = 0; i < N_KEYS; i++) {
		if (!(keys[i].flags & KEY_QUERY))
			continue;
		if (s.len)
			put_str(&s, ", ");
		put_str(&s, keys[i].name);
	}
	known[s.len < s.cap ? s.len : s.cap] = '\0';
	return sv_conf_error(errstr, errstr_size,
			     "unknown query parameter \"%s\" (a URI may set %s)", key, known);
}

/* Check a value for a key without storing it. With from_query, only keys a URI query may
 * carry are known, and the message for an unknown key names those. */
static int check(const char *key, const char *value, bool from_query, char *errstr,
		 size_t errstr_size)
{
	const struct conf_key *k = find_key(key);
	uint32_t num;

	if (from_query && (!k || !(k->flags & KEY_QUERY)))
		return unknown_query_key(key, errstr, errstr_size);
	return parse(k, value, &num, errstr, errstr_size);
}

/* The port's text as written: a message gives its offset, never the text (it may be the
 * password, in "amqp://user:password" with the host forgotten). */
static int read_port(const char *text, const struct sv_uri *u, uint32_t *port, char *errstr,
		     size_t errstr_size)
{
	const struct conf_key *k = find_key("port");
	uint64_t v;

	if (u->port_len == 0)
		return sv_conf_error(errstr, errstr_size, "port: empty after ':'");
	if (sv_parse_uint(u->port, u->port_len, &v) || v < k->min || v > k->max)
		return sv_conf_error(errstr, errstr_size,
				     "port: the text at offset %zu is not a number in %" PRIu64
				     "..%" PRIu64,
				     (size_t)(u->port - text), k->min, k->max);
	*port = (uint32_t)v;
	return 0;
}

int sv_conf_read_uri(const char *text, struct sv_conf_uri *out, char *errstr, size_t errstr_size)
{
	const struct sv_uri *u = &out->parsed;
	size_t len = strnlen(text, SV_URI_MAX + 1); /* past the limit is refused: stop there */
	int rc = sv_uri_parse(text, len, &out->parsed, errstr, errstr_size);

	if (rc)
		return rc;
	/* What the URI does not give, the key's default gives: the URI spec's defaults. An
	 * empty host counts as absent, as the spec has it ("amqp://:5673"). */
	const struct {
		const char *key;
		const char *given;
		const char **value;
	} fields[] = {
	    {"user", u->user, &out->user},
	    {"password", u->password, &out->password},
	    {"host", *u->host ? u->host : NULL, &out->host},
	    {"vhost", u->vhost, &out->vhost},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		*fields[i].value =
		    fields[i].given ? fields[i].given : find_key(fields[i].key)->def_str;
	out->tls = strcmp(u->scheme, "amqps") == 0;
	out->port = out->tls ? SV_PORT_AMQPS : SV_PORT_AMQP;
	if (u->port) {
		rc = read_port(text, u, &out->port, errstr, errstr_size);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < u->n_params; i++) {
		const struct sv_uri_param *param = &u->params[i];

		for (size_t j = 0; j < i; j++)
			if (strcmp(u->params[j].key, param->key) == 0)
				return sv_conf_error(errstr, errstr_size,
						     "query parameter \"%s\" is given twice",
						     param->key);
		rc = check(param->key, param->value, true, errstr, errstr_size);
		if (rc)
			return rc;
	}
	/* Lengths, by the same table that checks salvo_conf_set. */
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		rc = check(fields[i].key, *fields[i].value, false, errstr, errstr_size);
		if (rc)
			return rc;
	}
	return 0;
}

static void set_endpoint(struct sv_endpoint *e, const struct sv_conf_uri *u)
{
	/* sv_conf_read_uri checked the host's length against the "host" key */
	strcpy(e->host, u->host);
	e->port = u->port;
	e->tls = u->tls;
}

/* sv_conf_read_uri checks every value against the table, so once it succeeds nothing can
 * fail and the conf changes all at once or not at all. */
static int set_uri(struct salvo_conf *conf, const char *value, char *errstr, size_t errstr_size)
{
	struct sv_conf_uri u;
	int rc = sv_conf_read_uri(value, &u, errstr, errstr_size);

	if (rc == 0) {
		set_endpoint(&conf->endpoints[0], &u);
		conf->n_endpoints = 1;
		strcpy(conf->user, u.user);
		strcpy(conf->password, u.password);
		strcpy(conf->vhost, u.vhost);
		for (size_t i = 0; i < u.parsed.n_params; i++) {
			const struct sv_uri_param *param = &u.parsed.params[i];
			const struct conf_key *k = find_key(param->key);
			uint32_t num = 0;

			parse(k, param->value, &num, NULL, 0);
			store(conf, k, param->value, num);
		}
	}
	/* the decoded password should not outlive the call on the stack */
	explicit_bzero(&u, sizeof u);
	return rc;
}

int sv_conf_check_failover(const salvo_conf *conf, const struct sv_conf_uri *u,
			   const char *prefix, char *errstr, size_t errstr_size)
{
	const char *part = NULL;

	if (u->parsed.user && strcmp(u->user, conf->user))
		part = "user";
	else if (u->parsed.user && strcmp(u->password, conf->password))
		part = "password";
	else if (u->parsed.vhost && strcmp(u->vhost, conf->vhost))
		part = "vhost";
	if (part)
		return sv_conf_error(errstr, errstr_size,
				     "%sits %s differs from the first URI's (every endpoint uses "
				     "one user, password and vhost)",
				     prefix, part);
	if (u->parsed.n_params)
		return sv_conf_error(errstr, errstr_size,
				     "%squery parameters go on the first URI (every endpoint "
				     "shares them)",
				     prefix);
	return 0;
}

static int add_uri(struct salvo_conf *conf, const char *value, char *errstr, size_t errstr_size)
{
	struct sv_conf_uri u;
	int rc;

	if (conf->n_endpoints == SV_ENDPOINTS_MAX)
		return sv_conf_error(errstr, errstr_size,
				     "uri.add: a conf holds at most %d endpoints",
				     SV_ENDPOINTS_MAX);
	rc = sv_conf_read_uri(value, &u, errstr, errstr_size);
	if (rc == 0)
		rc = sv_conf_check_failover(conf, &u, "uri.add: ", errstr, errstr_size);
	if (rc == 0)
		set_endpoint(&conf->endpoints[conf->n_endpoints++], &u);
	explicit_bzero(&u, sizeof u);
	return rc;
}

/* Percent-encode all but RFC 3986's unreserved characters. */
static void put_escaped(struct sink *s, const char *p)
{
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[4];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c)) {
			put(s, p, 1);
		} else {
			snprintf(esc, sizeof esc, "%%%02X", c);
			put(s, esc, 3);
		}
	}
}

static void put_endpoint(struct sink *s, const struct salvo_conf *conf,
			 const struct sv_endpoint *e, bool full)
{
	char port[16];

	put_str(s, e->tls ? "amqps://" : "amqp://");
	if (full) {
		put_escaped(s, conf->user);
		put_str(s, ":***@");
	}
	if (strchr(e->host, ':')) {
		put_str(s, "[");
		put_str(s, e->host);
		put_str(s, "]");
	} else {
		put_escaped(s, e->host);
	}
	snprintf(port, sizeof port, ":%" PRIu32, e->port);
	put_str(s, port);
	if (full) {
		put_str(s, "/");
		put_escaped(s, conf->vhost);
	}
}

static void render(const struct salvo_conf *conf, const struct conf_key *k, struct sink *s)
{
	const char *field = (const char *)conf + k->offset;
	char num[16];
	uint32_t v;

	switch (k->type) {
	case KEY_NUMBER:
		memcpy(&v, field, sizeof v);
		snprintf(num, sizeof num, "%" PRIu32, v);
		put_str(s, num);
		break;
	case KEY_STRING:
		put_str(s, k->flags & KEY_SECRET ? "***" : field);
		break;
	case KEY_CHOICE:
		memcpy(&v, field, sizeof v);
		put_str(s, k->choices[v]);
		break;
	case KEY_URI:
		put_endpoint(s, conf, &conf->endpoints[0], true);
		break;
	case KEY_URI_ADD:
		for (size_t i = 1; i < conf->n_endpoints; i++) {
			if (i > 1)
				put_str(s, ",");
			put_endpoint(s, conf, &conf->endpoints[i], false);
		}
		break;
	}
}

/* A seed for sv_endpoints_shuffle that differs between processes and calls. */
uint64_t sv_random_seed(void)
{
	static _Atomic uint64_t calls;
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
		       ((uint64_t)getpid() << 32);
	}
	return seed + atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
}

/* splitmix64: a full-period generator whose outputs are well mixed even from close seeds. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void sv_endpoints_shuffle(struct sv_endpoint *ep, size_t n, uint64_t seed)
{
	/* Fisher-Yates; the modulo's bias is below 2^-59 for 16 endpoints. */
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(next_random(&seed) % i);
		struct sv_endpoint t = ep[i - 1];

		ep[i - 1] = ep[j];
		ep[j] = t;
	}
}

salvo_conf *salvo_conf_new(void)
{
	salvo_conf *conf = malloc(sizeof *conf);

	if (conf) {
		set_defaults(conf);
		conf->shuffle_seed = sv_random_seed();
	}
	return conf;
}

void salvo_conf_destroy(salvo_conf *conf)
{
	if (!conf)
		return;
	explicit_bzero(conf->password, sizeof conf->password);
	free(conf);
}

salvo_conf *salvo_conf_dup(const salvo_conf *conf)
{
	salvo_conf *copy;

	if (!conf)
		return NULL;
	copy = malloc(sizeof *copy);
	if (copy)
		memcpy(copy, conf, sizeof *copy);
	return copy;
}

int salvo_conf_set_stats_cb(salvo_conf *conf, salvo_stats_fn fn, void *arg)
{
	if (!conf)
		return SALVO_ERR_INVALID_ARGUMENT;
	conf->stats_fn = fn;
	conf->stats_arg = fn ? arg : NULL;
	return 0;
}

int salvo_conf_set_topology_filter(salvo_conf *conf, salvo_topology_filter_fn fn, void *arg)
{
	if (!conf)
		return SALVO_ERR_INVALID_ARGUMENT;
	conf->topology_filter = fn;
	conf->topology_filter_arg = fn ? arg : NULL;
	return 0;
}

int salvo_conf_add_on_connect(salvo_conf *conf, salvo_on_connect_fn fn, void *arg)
{
	if (!conf || !fn || conf->n_hooks == SV_HOOKS_MAX)
		return SALVO_ERR_INVALID_ARGUMENT;
	conf->hooks[conf->n_hooks].fn = fn;
	conf->hooks[conf->n_hooks].arg = arg;
	conf->n_hooks++;
	return 0;
}

int salvo_conf_set_log_cb(salvo_conf *conf, salvo_log_fn fn, void *arg)
{
	if (!conf)
		return SALVO_ERR_INVALID_ARGUMENT;
	conf->log_fn = fn;
	conf->log_arg = fn ? arg : NULL;
	return 0;
}

int salvo_conf_set_credentials_cb(salvo_conf *conf, salvo_credentials_fn fn, void *arg)
{
	if (!conf)
		return SALVO_ERR_INVALID_ARGUMENT;
	conf->creds_fn = fn;
	conf->creds_arg = fn ? arg : NULL;
	return 0;
}

int salvo_conf_set(salvo_conf *conf, const char *key, const char *value, char *errstr,
		   size_t errstr_size)
{
	const struct conf_key *k;
	uint32_t num = 0;
	int rc;

	if (!conf || !key || !value)
		return sv_conf_error(errstr, errstr_size,
				     "salvo_conf_set: conf, key and value must not be NULL");
	k = find_key(key);
	if (!k)
		return sv_conf_error(errstr, errstr_size, "unknown configuration key \"%s\"", key);
	switch (k->type) {
	case KEY_URI:
		return set_uri(conf, value, errstr, errstr_size);
	case KEY_URI_ADD:
		return add_uri(conf, value, errstr, errstr_size);
	case KEY_NUMBER:
	case KEY_STRING:
	case KEY_CHOICE:
		break;
	}
	rc = parse(k, value, &num, errstr, errstr_size);
	if (rc == 0)
		store(conf, k, value, num);
	return rc;
}

int salvo_conf_get(const salvo_conf *conf, const char *key, char *dest, size_t *dest_size)
{
	const struct conf_key *k;
	struct sink s;

	if (!conf || !key || !dest_size)
		return SALVO_ERR_INVALID_ARGUMENT;
	k = find_key(key);
	if (!k)
		return SALVO_ERR_INVALID_ARGUMENT;
	s = (struct sink){dest, dest ? *dest_size : 0, 0};
	render(conf, k, &s);
	if (dest && s.len >= *dest_size) {
		if (*dest_size)
			dest[0] = '\0';
		*dest_size = s.len + 1;
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (dest)
		dest[s.len] = '\0';
	*dest_size = s.len + 1;
	return 0;
}

void salvo_conf_print_help(FILE *out)
{
	struct salvo_conf def;
	char buf[512];

	/* The defaults shown are what salvo_conf_get returns on a new conf. */
	set_defaults(&def);
	fputs("salvo configuration keys (salvo_conf_set):\n", out);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct conf_key *k = &keys[i];
		struct sink s = {buf, sizeof buf, 0};
		const char *quote = k->type == KEY_NUMBER ? "" : "\"";

		render(&def, k, &s);
		fprintf(out, "\n%s\n  default: %s%.*s%s\n  range:   ", k->name, quote,
			(int)(s.len < s.cap ? s.len : s.cap), buf, quote);
		if (k->type == KEY_URI || k->type == KEY_URI_ADD) {
			fprintf(out, "an amqp:// or amqps:// URI of at most %" PRIu64 " bytes\n",
				k->max);
		} else if (k->type == KEY_CHOICE) {
			for (size_t c = 0; k->choices[c]; c++)
				fprintf(out, "%s%s", c ? " | " : "", k->choices[c]);
			fputc('\n', out);
		} else {
			fprintf(out, "%" PRIu64 "..%" PRIu64 "%s%s\n", k->min, k->max,
				*k->unit ? " " : "", k->unit);
		}
		for (const char *line = k->help; *line;) {
			size_t len = strcspn(line, "\n");

			fprintf(out, "  %.*s\n", (int)len, line);
			line += len + (line[len] == '\n');
		}
	}
}
