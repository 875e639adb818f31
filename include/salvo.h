/* SPDX-License-Identifier: MIT */
/*
 * salvo: a C client for AMQP 0-9-1 brokers (RabbitMQ) built for publishing throughput.
 *
 * This header is the whole public API. Every function says who may call it from which
 * thread, whether it blocks, and what it returns on failure. Handles are opaque.
 *
 * Contents: status codes and error details; configuration (salvo_conf_*); the client
 * (one connection and its I/O thread); field tables; channels and their synchronous
 * methods; message properties; basic.get, consumers and acks; publishers with confirms;
 * reconnection; transactions; connection pools (from code or an INI file) and listeners;
 * RPC over direct reply-to.
 *
 * Compatibility (0.x): structures the application fills (salvo_*_opts) and reads
 * (salvo_*_stats) grow only at their ends, and a zeroed new field means what the
 * structure meant without it; but they carry no size, so a program is rebuilt against the
 * salvo.h of the library it runs with.
 */
#ifndef SALVO_H
#define SALVO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SALVO_BUILDING) && defined(__GNUC__)
#define SALVO_API __attribute__((visibility("default")))
#else
#define SALVO_API
#endif

#define SALVO_VERSION_MAJOR 0
#define SALVO_VERSION_MINOR 1
#define SALVO_VERSION_PATCH 0
#define SALVO_VERSION_STRING "0.1.0"

/*
 * Status codes. 0 is success; negative values are local errors; positive values are AMQP
 * reply codes sent by the broker (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...) or by salvo
 * when it closes a connection over a peer's protocol violation (501, 502, 505, 540).
 */
typedef enum salvo_status {
	SALVO_OK = 0,
	SALVO_ERR_INVALID_ARGUMENT = -1, /* the caller passed a value salvo cannot use */
	SALVO_ERR_NO_MEMORY = -2,
	SALVO_ERR_TIMEOUT = -3,	    /* a blocking call's deadline passed */
	SALVO_ERR_WOULD_BLOCK = -4, /* a non-blocking call found no room */
	SALVO_ERR_CLOSED = -5,	    /* the connection or channel is closed */
	SALVO_ERR_IO = -6,	    /* a socket error; the detail names it */
	SALVO_ERR_TLS = -7,
	SALVO_ERR_PROTOCOL = -8, /* the peer broke the protocol */
	SALVO_ERR_UNSUPPORTED = -9,
	SALVO_ERR_LIMIT = -10, /* a negotiated or configured limit was reached */
	SALVO_ERR_NACKED = -11,	  /* the broker nacked a confirmed publish */
	SALVO_ERR_RETURNED = -12, /* a mandatory publish came back (reply_code 312 or 313) */
	SALVO_ERR_CANCELLED = -13, /* the consumer was cancelled (by the application or broker) */
	/* The call is not allowed now: a publisher in use by another thread, a call from
	 * inside a callback that may not make it. Nothing was done; err says why. */
	SALVO_ERR_INVALID_STATE = -14,
} salvo_status;

/* Which side ended what: decides what is still usable after an error. */
typedef enum salvo_error_kind {
	SALVO_ERROR_NONE = 0,
	SALVO_ERROR_LOCAL,	/* detected by salvo (timeout, I/O, invalid argument, ...) */
	SALVO_ERROR_CHANNEL,	/* the broker closed the channel (channel.close); connection lives */
	SALVO_ERROR_CONNECTION, /* the connection is gone (connection.close, EOF, dead peer) */
} salvo_error_kind;

/*
 * Details of a failure, filled by every call that takes a salvo_error * (which may be
 * NULL when the caller wants only the status). Classification follows the frame that
 * carried the error (channel.close vs connection.close), not the reply code.
 */
typedef struct salvo_error {
	int status;		/* what the call returned: negative local status or reply code */
	salvo_error_kind kind;
	unsigned reply_code;	/* AMQP reply code (404, 406, 320, ...), 0 for local errors */
	unsigned class_id;	/* the method the broker refused, when it says (50 = queue) */
	unsigned method_id;	/* (10 = declare) */
	char text[256];		/* reply text or local description; never holds a password */
	char method[48];	/* "queue.declare" for class_id/method_id, or "" */
} salvo_error;

/*
 * A short description of a status: "timed out", "404 NOT_FOUND", ... (a reply code with its
 * name, as the spec gives it). Any thread; never NULL; unknown codes give "unknown status".
 */
SALVO_API const char *salvo_err2str(int status);

/*
 * One line for a log or a terminal that says everything err holds, always with the reply
 * code a user would search for:
 *   "404 NOT_FOUND - no exchange 'x' in vhost '/' (basic.publish)"   the broker's error
 *   "320 CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
 *   "returned by the broker: 312 NO_ROUTE (basic.return)"            local status + reply
 *   "timed out: no confirm within 5000 ms"                           local errors
 * The broker's text appears once: RabbitMQ's begin with the code's name, which is not
 * repeated. Writes at most len bytes including the terminating NUL (cutting the text if
 * need be; 512 bytes always hold it all) and returns buf. err NULL or with status 0 gives
 * "success". Any thread; err is only read.
 */
SALVO_API const char *salvo_error_format(const salvo_error *err, char *buf, size_t len);

/* The library's version string, e.g. "0.1.0". Any thread. */
SALVO_API const char *salvo_version(void);

/* Configuration */

/*
 * A configuration: every setting of a client, set by key as a string, in the manner of
 * librdkafka. salvo_conf_print_help lists the keys with their defaults, ranges and meaning;
 * "uri" sets the broker in one string (amqp://user:password@host:port/vhost?heartbeat=30).
 *
 * A conf is not thread-safe: a thread that sets may share it with no other thread. Calls
 * that only read (get, dup) may run concurrently with each other. A conf holds no
 * resources besides its memory and is independent of any client made from it.
 */
typedef struct salvo_conf salvo_conf;

/* A conf holding every default, or NULL when out of memory. Any thread. The caller owns it
 * and frees it with salvo_conf_destroy. */
SALVO_API salvo_conf *salvo_conf_new(void);

/* Free a conf, wiping the password from memory first. NULL is ignored. */
SALVO_API void salvo_conf_destroy(salvo_conf *conf);

/* A copy of conf that the caller owns (its log callback and on-connect hooks included), or
 * NULL when out of memory or conf is NULL. */
SALVO_API salvo_conf *salvo_conf_dup(const salvo_conf *conf);

/*
 * Set key to value, given as text: numbers in decimal digits only (no sign, blanks, hex or
 * suffix). Never allocates, so never fails for memory.
 *
 * "uri" replaces the endpoint list with the URI's endpoint and sets user, password and
 * vhost to the URI's values, or their defaults where it has none (guest, guest, "/"); its
 * query parameters (heartbeat, connection_timeout, channel_max, frame_max, connection_name,
 * the TLS keys cacertfile, certfile, keyfile, verify, server_name_indication, and
 * auth_mechanism: plain, external or amqplain) set those keys, and keys it does not
 * mention keep their values.
 * "uri.add" appends a failover endpoint (at most 16 endpoints in all): a whole URI or only
 * amqp[s]://host:port. Every endpoint uses one user, password and vhost, so the user and
 * password it gives (a user without a password means password "guest") and the vhost it
 * gives must be those conf holds (the first URI's unless set since), and it may have no
 * query parameters; otherwise it is refused with a message naming the part that differs
 * ("uri.add: its password differs from the first URI's ..."), never the password. Only its
 * scheme, host and port are kept. "host" and "port" change the first endpoint.
 * "endpoints.shuffle" 1 makes clients try the endpoints in an order drawn once per
 * configuration (salvo_conf_new; salvo_conf_dup keeps it), so processes given one list
 * start on different nodes while the clients and pools of one configuration share it.
 *
 * Returns 0, or SALVO_ERR_INVALID_ARGUMENT with a message in errstr when conf, key or value
 * is NULL, the key is unknown, or the value is malformed or out of range (a number that is
 * not one, below the minimum or above the maximum; a string too long; a URI that breaks
 * the spec, with the reason). On failure conf is unchanged. errstr may be NULL; a message
 * longer than errstr_size is truncated, and it never contains the password. errstr is
 * written only on failure.
 */
SALVO_API int salvo_conf_set(salvo_conf *conf, const char *key, const char *value, char *errstr,
			     size_t errstr_size);

/*
 * Read a setting back as text into dest, which holds *dest_size bytes. On return
 * *dest_size is the size the text needs, its NUL included. The password always reads as
 * "***", and "uri" as the first endpoint's URI with the password as "***"; "uri.add"
 * reads as the failover endpoints' URIs separated by commas ("" when there are none).
 *
 * Returns 0 with the text in dest; 0 with only *dest_size set when dest is NULL (to learn
 * the size); SALVO_ERR_INVALID_ARGUMENT with *dest_size set to the size needed and dest
 * emptied ("" if *dest_size was at least 1) when dest is too small; and
 * SALVO_ERR_INVALID_ARGUMENT with *dest_size untouched when conf, key or dest_size is NULL
 * or the key is unknown. Reads conf only.
 */
SALVO_API int salvo_conf_get(const salvo_conf *conf, const char *key, char *dest,
			     size_t *dest_size);

/* Write every key to out (not NULL): name, default, range and help. Any thread. Write errors
 * are not reported; check ferror(out). */
SALVO_API void salvo_conf_print_help(FILE *out);

/*
 * Logging. What salvo has to say on its own, outside any call's return value, is a log
 * line with a level and a facility, in the manner of librdkafka's log_cb: the connection
 * lost, each reconnection attempt, reconnected, giving up, blocked and unblocked by the
 * broker (facility "connection"); a consumer cancelled by the broker, a malformed envelope
 * rejected ("consumer"); a channel's content stopped and resumed by the broker
 * (channel.flow), the first returned message dropped for publisher.returns.max_bytes
 * ("publisher"); topology recovery's renames, refusals and end ("topology"); a
 * protocol violation salvo found in the peer's frames, or the broker's connection.close
 * over one ("protocol"); TLS peer verification disabled ("tls": once per process on
 * stderr, once per client to a callback). The events of salvo_client_poll_event are
 * logged as well as queued, so an application that never polls still has them in its
 * log.
 *
 * Levels are syslog's; the key "log.level" (default notice) says the least severe that is
 * logged, and nothing below it is even formatted. Without a callback, lines go to stderr
 * as "salvo: WARNING [tls] TLS peer verification is disabled ..." (one write each).
 *
 * No line ever holds a password or other secret: endpoints appear as host:port, URIs with
 * the password as "***", and errors as salvo_error_format gives them (whose texts never
 * hold the password: a broker echoing it is masked).
 */
#define SALVO_LOG_ERR 3	    /* the client gave up, a protocol violation */
#define SALVO_LOG_WARNING 4 /* the connection lost, blocked, a consumer cancelled, ... */
#define SALVO_LOG_NOTICE 5  /* reconnecting, reconnected, unblocked */
#define SALVO_LOG_INFO 6    /* connected */
#define SALVO_LOG_DEBUG 7   /* each endpoint that failed to connect, each attempt */

/*
 * Receives one log line: level (SALVO_LOG_*), facility ("connection", "consumer",
 * "publisher", "protocol", "tls") and message (one line, no newline, safe to print: text
 * from the network is escaped). The strings are valid during the call only.
 *
 * Called on salvo's threads: most lines come from a client's I/O thread, some from the
 * thread in salvo_client_new (or salvo_pool_new) while it connects. Several threads may
 * call it at once (each client has its I/O thread), so it must be thread-safe. It must be
 * quick and must not block: while it runs, its client's I/O thread sends and receives
 * nothing. It must not call salvo functions that wait for the I/O thread (synchronous
 * methods, publishing, closing a client); hand such work to a thread of the
 * application's. It is never called with a lock of salvo's held that application calls
 * take, and never after salvo_client_destroy has returned.
 */
typedef void (*salvo_log_fn)(void *arg, int level, const char *facility, const char *message);

/*
 * Send the log lines of clients made from conf to fn(arg, ...) instead of stderr; fn NULL
 * restores stderr. To drop them all, pass a function that does nothing. salvo_conf_dup
 * copies it; so do pools (every client of the pool logs to it). Returns 0, or
 * SALVO_ERR_INVALID_ARGUMENT when conf is NULL. Any thread (conf as for salvo_conf_set).
 */
SALVO_API int salvo_conf_set_log_cb(salvo_conf *conf, salvo_log_fn fn, void *arg);

/* The name of a level as the stderr lines show it: "ERROR", "WARNING", "NOTICE", "INFO",
 * "DEBUG"; "LOG" for any other value. Any thread. */
SALVO_API const char *salvo_log_level_name(int level);

/*
 * Timeouts. Every blocking call takes timeout_ms: > 0 waits at most that long and then
 * returns SALVO_ERR_TIMEOUT; 0 never waits (SALVO_ERR_WOULD_BLOCK where waiting would be
 * needed); SALVO_FOREVER waits without a deadline. Anything below SALVO_FOREVER is refused
 * with SALVO_ERR_INVALID_ARGUMENT before the call does anything.
 */
#define SALVO_FOREVER (-1)

/*
 * Field tables: arguments of declares and binds (x-queue-type, x-message-ttl, ...) and
 * the headers of messages. A table is built by appending entries, each with a key of at
 * most 255 bytes and a typed value; the types are RabbitMQ's (the AMQP 0-9-1 errata, as
 * RabbitMQ, pika and the Java client read them), named by their type octet.
 */
typedef struct salvo_table salvo_table;

typedef enum salvo_field_type {
	SALVO_FIELD_BOOL = 't',
	SALVO_FIELD_I8 = 'b',
	SALVO_FIELD_U8 = 'B',
	SALVO_FIELD_I16 = 's',
	SALVO_FIELD_U16 = 'u',
	SALVO_FIELD_I32 = 'I',
	SALVO_FIELD_U32 = 'i',
	SALVO_FIELD_I64 = 'l',
	SALVO_FIELD_U64 = 'L', /* RabbitMQ reads it as a signed 64-bit integer */
	SALVO_FIELD_FLOAT = 'f',
	SALVO_FIELD_DOUBLE = 'd',
	SALVO_FIELD_DECIMAL = 'D', /* value / 10^scale */
	SALVO_FIELD_STRING = 'S',  /* long string: bytes, not NUL-terminated */
	SALVO_FIELD_BYTES = 'x',   /* byte array */
	SALVO_FIELD_TIMESTAMP = 'T', /* seconds since the epoch */
	SALVO_FIELD_TABLE = 'F',
	SALVO_FIELD_ARRAY = 'A',
	SALVO_FIELD_VOID = 'V',	   /* no value */
} salvo_field_type;

/* A new empty table, or NULL when out of memory. Any thread; a table is not thread-safe. */
SALVO_API salvo_table *salvo_table_new(void);
/* A new empty field array: a salvo_table whose values are added with key NULL and which
 * goes into a table with salvo_table_add_table. NULL when out of memory. */
SALVO_API salvo_table *salvo_array_new(void);
SALVO_API void salvo_table_destroy(salvo_table *t); /* NULL is ignored */

/*
 * Append an entry. In a table, key is required (at most 255 bytes); in an array (made by
 * salvo_array_new) it must be NULL. Returns 0, SALVO_ERR_INVALID_ARGUMENT (t NULL, a key
 * missing, too long or given to an array, a string or byte array over 4 GiB, a nested
 * value too deep: at most 16 levels in all, the outermost table included), or
 * SALVO_ERR_NO_MEMORY; the table is unchanged on failure.
 *
 * salvo_table_add_string takes a NUL-terminated string ('S'); salvo_table_add_bytes any
 * bytes ('x'; value may be NULL when len is 0); salvo_table_add_int is 'l'.
 * salvo_table_add_table copies value (NULL: SALVO_ERR_INVALID_ARGUMENT) as a nested table
 * ('F'), or as a field array ('A') when value was made by salvo_array_new; later changes to
 * value do not affect t.
 */
SALVO_API int salvo_table_add_string(salvo_table *t, const char *key, const char *value);
SALVO_API int salvo_table_add_int(salvo_table *t, const char *key, int64_t value);
SALVO_API int salvo_table_add_bool(salvo_table *t, const char *key, bool value);
SALVO_API int salvo_table_add_i8(salvo_table *t, const char *key, int8_t value);
SALVO_API int salvo_table_add_u8(salvo_table *t, const char *key, uint8_t value);
SALVO_API int salvo_table_add_i16(salvo_table *t, const char *key, int16_t value);
SALVO_API int salvo_table_add_u16(salvo_table *t, const char *key, uint16_t value);
SALVO_API int salvo_table_add_i32(salvo_table *t, const char *key, int32_t value);
SALVO_API int salvo_table_add_u32(salvo_table *t, const char *key, uint32_t value);
SALVO_API int salvo_table_add_u64(salvo_table *t, const char *key, uint64_t value);
SALVO_API int salvo_table_add_float(salvo_table *t, const char *key, float value);
SALVO_API int salvo_table_add_double(salvo_table *t, const char *key, double value);
SALVO_API int salvo_table_add_decimal(salvo_table *t, const char *key, uint8_t scale,
				      uint32_t value);
SALVO_API int salvo_table_add_bytes(salvo_table *t, const char *key, const void *value,
				    size_t len);
SALVO_API int salvo_table_add_timestamp(salvo_table *t, const char *key, uint64_t value);
SALVO_API int salvo_table_add_void(salvo_table *t, const char *key);
SALVO_API int salvo_table_add_table(salvo_table *t, const char *key, const salvo_table *value);

/*
 * Reading a table: entries come back in order, each as a salvo_field. The iterator and
 * the field point into the table, which must not change or be freed meanwhile; they own
 * nothing and need no cleanup.
 *
 *	salvo_table_iter it;
 *	salvo_field f;
 *	salvo_table_iter_init(&it, headers);
 *	while (salvo_table_next(&it, &f) == 1)
 *		if (f.type == SALVO_FIELD_STRING)
 *			printf("%s = %.*s\n", f.key, (int)f.v.bytes.len, (const char *)f.v.bytes.ptr);
 */
typedef struct salvo_table_iter {
	const uint8_t *p_, *end_; /* private */
	bool array_;		  /* private */
} salvo_table_iter;

typedef struct salvo_field {
	char key[256];	       /* NUL-terminated; "" for the values of an array */
	size_t key_len;	       /* bytes in key, which may contain NULs */
	salvo_field_type type; /* says which member of v holds the value */
	union {
		bool b;
		int8_t i8;
		uint8_t u8;
		int16_t i16;
		uint16_t u16;
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64; /* also SALVO_FIELD_TIMESTAMP */
		float f;
		double d;
		struct {
			uint8_t scale;
			uint32_t value;
		} decimal;
		struct {
			const void *ptr;
			size_t len;
		} bytes; /* SALVO_FIELD_STRING and SALVO_FIELD_BYTES */
		/* SALVO_FIELD_TABLE and SALVO_FIELD_ARRAY: an iterator over the nested entries
		 * (an array's come back with key ""), ready for salvo_table_next. */
		salvo_table_iter nested;
	} v;
} salvo_field;

/* Start iterating t (NULL iterates nothing). Any thread that may read t. */
SALVO_API void salvo_table_iter_init(salvo_table_iter *it, const salvo_table *t);
/* The next entry in *f: returns 1, 0 at the end, SALVO_ERR_PROTOCOL for malformed bytes
 * (not possible for tables salvo built or received: those are validated). */
SALVO_API int salvo_table_next(salvo_table_iter *it, salvo_field *f);

/*
 * The client: one connection to the broker and the I/O thread that owns its socket.
 *
 * salvo_client_new connects and logs in on the calling thread, within the configuration's
 * connection_timeout, then starts the I/O thread. It returns 0, SALVO_ERR_INVALID_ARGUMENT,
 * SALVO_ERR_NO_MEMORY, SALVO_ERR_IO (resolve/connect failed), SALVO_ERR_TIMEOUT,
 * SALVO_ERR_PROTOCOL, SALVO_ERR_TLS (with OpenSSL's reason: "certificate verify failed:
 * ..."), SALVO_ERR_UNSUPPORTED (the broker offers no SASL mechanism salvo speaks), or the
 * broker's refusal as a reply code (403 ACCESS_REFUSED for bad credentials, 530 NOT_ALLOWED
 * for a missing vhost) with err filled. conf is copied; the caller keeps ownership of it.
 * The endpoints ("uri", then each "uri.add"; shuffled first with endpoints.shuffle) are
 * tried in turn until one answers. Each one that failed before one answered is reported
 * by an SALVO_EVENT_ENDPOINT_FAILED event, queued when it returns; when all of two or more
 * fail, the status is the last one's and the error's text names each endpoint and its
 * failure in the order tried ("every endpoint failed: connect to 127.0.0.1:5781:
 * Connection refused; ..."; cut at the end of the text when there are many). A 403 or 530
 * ends the tries at once (every endpoint would refuse alike), with that refusal as the
 * error. They must share one scheme: a list mixing
 * amqp:// and amqps:// is refused with SALVO_ERR_INVALID_ARGUMENT, since a failover could
 * otherwise drop TLS.
 * The on-connect hooks run before it returns; a hook's failure closes the connection and
 * is returned.
 *
 * Automatic reconnection (configuration key reconnect, on by default): when the connection
 * is lost to an I/O error, a missed heartbeat, a TLS error on the established connection, a
 * broker that has read nothing for 2 x heartbeat without blocking the connection, or the
 * broker's connection.close 320 CONNECTION_FORCED or 541 INTERNAL_ERROR, the I/O thread
 * reconnects with exponential backoff and jitter (reconnect.initial_delay,
 * reconnect.max_delay, reconnect.max_attempts), trying the endpoints in turn; the
 * on-connect hooks run again (on a thread of salvo's, never the I/O thread, so they may
 * call synchronous methods); then publishers resume on channels of the same numbers,
 * confirm mode restored, and every message without a confirm is sent again: at-least-once,
 * a confirmed message is never lost, duplicates are possible and counted
 * (salvo_pub_stats.resent). With topology recovery (configuration key topology_recovery,
 * on by default; see salvo_conf_set_topology_filter) the exchanges, queues, bindings and
 * consumers the application declared are made again first, and a channel opened with
 * salvo_channel_open that has recorded consumers is reopened with the same number, its
 * consumers going on; other such channels are closed by a loss (their calls return the
 * error; open new ones). Not retried: 403 ACCESS_REFUSED (but with a credentials
 * callback, below), 530 NOT_ALLOWED, a protocol error, a block longer than
 * blocked_timeout, a close the application asked for.
 */
typedef struct salvo_client salvo_client;

SALVO_API int salvo_client_new(const salvo_conf *conf, salvo_client **out, salvo_error *err);

/*
 * salvo_client_new, but trying the endpoints from the one at index first % n (0 is "uri",
 * 1 the first "uri.add", ...; after endpoints.shuffle's shuffle, when it is on), then on in
 * order, wrapping; reconnections go on from the one after the endpoint connected to.
 * Connection i of a pool is salvo_client_new_at(conf, i, ...): clients made with first =
 * 0, 1, 2, ... from one configuration (or its copies) are spread over its endpoints in
 * turn, since they share its shuffled order. Same returns as salvo_client_new.
 */
SALVO_API int salvo_client_new_at(const salvo_conf *conf, size_t first, salvo_client **out,
				  salvo_error *err);

/*
 * A hook run after every successful connection (the first and each reconnection) and
 * before publishing resumes; typically it declares the exchanges, queues and bindings the
 * application needs. It may call synchronous methods on c (open a channel for them and
 * close it). Returns 0, or a status with err filled: on the first connection
 * salvo_client_new fails with it; on a reconnection the connection is dropped and the
 * next attempt made. Registered on the configuration, at most 8, run in order.
 */
typedef int (*salvo_on_connect_fn)(salvo_client *c, void *arg, salvo_error *err);
SALVO_API int salvo_conf_add_on_connect(salvo_conf *conf, salvo_on_connect_fn fn, void *arg);

/*
 * Credentials that change (an OAuth 2 access token used as the password, a password a
 * vault rotates). A client logs in with the configuration's user and password; two ways
 * replace them for later logins:
 *  - salvo_client_update_secret (below) hands the broker a new secret on the open
 *    connection, and reconnections log in with it from then on;
 *  - a credentials callback, registered on the configuration, is asked for the user and
 *    password before each connection attempt: the first (in salvo_client_new) and each
 *    reconnection. What it gives is kept until the next attempt asks again.
 *
 * The callback fills cred with salvo_credentials_set and returns 0; returning 0 without
 * setting anything logs in as the attempt before did (the configuration's credentials, or
 * the last given). A non-zero return fails the attempt: with that status when it is
 * negative (a salvo_status: SALVO_ERR_IO when the token service did not answer, ...),
 * SALVO_ERR_IO otherwise, err's text (which the callback may fill) saying why, prefixed
 * "credentials callback failed: ". So does a salvo_credentials_set it called that was
 * refused (SALVO_ERR_INVALID_ARGUMENT: a value too long), whatever it returned.
 *
 * It runs on the thread that makes the connection: the caller of salvo_client_new (or
 * salvo_pool_new) for the first, the client's I/O thread for reconnections. There it
 * must return quickly (while it runs the I/O thread serves nothing: requests and a close
 * wait for it) and must call no salvo function on this client or anything that waits for
 * its I/O thread (synchronous methods, publishing, closing), only salvo_credentials_set
 * on cred; fetching a token is the application's work, on its own thread, the callback
 * handing out the latest one it has. Clients of a pool, each with its I/O thread, may
 * call it at once: it must be thread-safe. cred is valid during the call only.
 *
 * With a callback, a reconnection refused with 403 ACCESS_REFUSED is retried with
 * backoff like a network error (the next attempt asks the callback again), since the
 * callback may have fresher credentials by then; so is an attempt the callback failed;
 * reconnect.max_attempts bounds them. Without one, a 403 on a reconnection gives up
 * (SALVO_EVENT_GIVING_UP), as the same credentials would be refused again. salvo_client_new
 * returns a 403 at once either way.
 */
typedef struct salvo_credentials salvo_credentials;
typedef int (*salvo_credentials_fn)(void *arg, salvo_credentials *cred, salvo_error *err);

/* Register fn (NULL: none) on conf; salvo_conf_dup and pools copy it. Returns 0, or
 * SALVO_ERR_INVALID_ARGUMENT when conf is NULL. Any thread (conf as for salvo_conf_set). */
SALVO_API int salvo_conf_set_credentials_cb(salvo_conf *conf, salvo_credentials_fn fn, void *arg);

/*
 * From inside a credentials callback only: log in as user (NULL: keep the user of the
 * attempt before; at most 255 bytes, "" allowed) with password (not NULL; at most 4096
 * bytes, the limit of the configuration key password). Copied before it returns. Returns
 * 0, or SALVO_ERR_INVALID_ARGUMENT (cred or password NULL, a value too long: the message
 * of the failed attempt says which), after which the attempt fails whatever the callback
 * returns; a later successful call in the same callback does not undo that.
 */
SALVO_API int salvo_credentials_set(salvo_credentials *cred, const char *user,
				    const char *password);

/*
 * What happened to the connection, for the application to log or act on. Every end of the
 * connection the application did not ask for (salvo_client_close) is reported: a
 * CONNECTION_LOST with its error, then RECONNECTING and RECONNECTED when it is retried,
 * or GIVING_UP when it is not (a broker's hard error such as 503 COMMAND_INVALID, a
 * protocol violation, 403, reconnect off) or the attempts run out.
 */
typedef enum salvo_event_kind {
	SALVO_EVENT_CONNECTION_LOST = 1, /* error: why */
	/* attempt, delay_ms before it; error: the loss (attempt 1) or why the attempt
	 * before failed */
	SALVO_EVENT_RECONNECTING,
	SALVO_EVENT_RECONNECTED,	 /* attempt, endpoint */
	/* error: the last failure; reason: why it was not retried, when it was not. The
	 * client is closed: every call on it returns that error. */
	SALVO_EVENT_GIVING_UP,
	SALVO_EVENT_BLOCKED,		 /* reason: the broker's (connection.blocked) */
	SALVO_EVENT_UNBLOCKED,
	/* The broker cancelled a consumer (consumer_cancel_notify: its queue was deleted, or
	 * its node went down): consumer_tag names it, error says so. */
	SALVO_EVENT_CONSUMER_CANCELLED,
	/* A consumer that splits envelopes got a malformed one (see "Envelopes" at
	 * salvo_consume): it was rejected without requeue, so a dead-letter exchange gets it
	 * (dropped, if consumed with no_ack), and the consumer went on. consumer_tag and
	 * channel name the consumer; error (SALVO_ERR_PROTOCOL) the delivery and what is
	 * wrong. Counted in salvo_consume_stats.envelopes_rejected. */
	SALVO_EVENT_ENVELOPE_REJECTED,
	/* A connection (the first or a reconnection) reached an endpoint after others
	 * failed: one event for each that failed, in the order tried, before the connection
	 * is used (salvo_client_new's, then, are queued when it returns). endpoint names it
	 * (host:port), error says why. Nothing is retried for it: the connection made is
	 * kept until it is lost. */
	SALVO_EVENT_ENDPOINT_FAILED,
	/* The broker asked salvo to stop sending content on a channel (channel.flow
	 * active=false; RabbitMQ itself uses connection.blocked instead), and salvo did: it
	 * answered channel.flow-ok and sends none of that channel's publisher's messages (its
	 * producer fills the ring, then waits as for a full ring, within its timeouts) until
	 * the broker's channel.flow active=true (FLOW_RESUMED, also answered). channel names
	 * it. A reconnection starts every channel with flow on. */
	SALVO_EVENT_FLOW_STOPPED,
	SALVO_EVENT_FLOW_RESUMED,
	/* Topology recovery (salvo_conf_set_topology_filter) declared a server-named queue
	 * again and the broker named it anew: name is its name before, new_name now. Its
	 * recorded bindings and consumers have followed it already;
	 * salvo_client_queue_name maps any of its names to the current one. */
	SALVO_EVENT_QUEUE_RENAMED,
	/* Topology recovery could not make an entity again: entity says which kind, name
	 * which one (a binding: its destination; reason says all of it), error the broker's
	 * refusal (406 PRECONDITION_FAILED, 404 NOT_FOUND, ...). Recovery went on with the
	 * next entity; the client goes on. */
	SALVO_EVENT_TOPOLOGY_FAILED,
	/* Topology recovery has finished, before the on-connect hooks run and publishing
	 * resumes: attempt is how many entities it made again (failures and those the
	 * filter skipped not counted). time_ns less the RECONNECTED event's is how long
	 * recovery took. */
	SALVO_EVENT_TOPOLOGY_RECOVERED,
} salvo_event_kind;

/* The kinds of entity topology recovery records (salvo_topology_entity). */
typedef enum salvo_topology_kind {
	SALVO_TOPOLOGY_NONE = 0,
	SALVO_TOPOLOGY_EXCHANGE,
	SALVO_TOPOLOGY_QUEUE,
	SALVO_TOPOLOGY_QUEUE_BINDING,	 /* queue.bind */
	SALVO_TOPOLOGY_EXCHANGE_BINDING, /* exchange.bind */
	SALVO_TOPOLOGY_CONSUMER,
} salvo_topology_kind;

typedef struct salvo_event {
	salvo_event_kind kind;
	uint64_t time_ns; /* CLOCK_MONOTONIC when it happened */
	unsigned attempt;
	unsigned delay_ms;
	salvo_error error;
	char endpoint[300]; /* host:port */
	char reason[256];
	char consumer_tag[256]; /* SALVO_EVENT_CONSUMER_CANCELLED, _ENVELOPE_REJECTED */
	uint16_t channel;	/* ... of them: the consumer's channel; FLOW_*: the channel */
	/* Fields added since are appended here (rebuild against this salvo.h: see the top
	 * of this header). */
	salvo_topology_kind entity; /* SALVO_EVENT_TOPOLOGY_FAILED, _QUEUE_RENAMED */
	char name[256];		    /* ... the entity's name (before a rename) */
	char new_name[256];	    /* SALVO_EVENT_QUEUE_RENAMED: the queue's name now */
} salvo_event;

/*
 * Topology recovery. While the configuration key topology_recovery is 1 (the default),
 * a client records what the application declares through it, when the call succeeds:
 * exchanges (name, type, flags, arguments), queues (name, flags, arguments; a
 * server-named one as such), queue and exchange bindings (with their arguments), and
 * consumers (queue, tag, flags, arguments, and their channel's salvo_basic_qos). A
 * passive declare records nothing. It forgets what is deleted: salvo_exchange_delete
 * drops the exchange and every binding it is the source or destination of;
 * salvo_queue_delete the queue, its bindings and its consumers; an unbind the binding;
 * a consumer's cancel (salvo_consumer_cancel, salvo_consumer_destroy, the broker's)
 * the consumer, and with its last recorded consumer an auto-delete queue (the broker
 * deletes it then). Not recorded: consumers made with SALVO_CONSUME_NO_RECOVERY or on
 * a publisher's channel (salvo_publisher_channel), which end with the connection; what
 * a listener declares and consumes (it makes its own again, setup hook included);
 * what the on-connect hooks declare and consume, the first time and after each
 * reconnection (they make it again themselves: recorded, a server-named queue or a
 * consumer of a hook's would be made once more by every reconnection). A nowait
 * declare or bind (SALVO_NOWAIT, *_nowait) is recorded when sent: if the broker
 * refuses it, it stays recorded until deleted, and recovery reports the refusal
 * (SALVO_EVENT_TOPOLOGY_FAILED); a nowait delete forgets at once, even if the broker
 * then refuses it (SALVO_IF_UNUSED, SALVO_IF_EMPTY).
 *
 * After a reconnection, before the on-connect hooks and before publishing resumes, on
 * the hooks' thread (never the I/O thread) and in this order: every recorded exchange,
 * queue, queue and exchange binding is declared again, in the order first declared, on
 * a channel of recovery's own; then each channel with recorded consumers is reopened
 * with its number, its prefetch set again, and its consumers made again with their tag,
 * flags and arguments on the same salvo_consumer, so salvo_consumer_get and the
 * dispatch calls simply go on (messages taken before the loss can no longer be
 * settled: SALVO_ERR_CLOSED, as before). Exclusive and auto-delete queues, which died
 * with the connection, come back. A server-named queue comes back under a name the
 * broker chooses: SALVO_EVENT_QUEUE_RENAMED says so, its bindings and consumers follow
 * it, and salvo_client_queue_name maps its old names to the new one. An entity the
 * broker refuses (a queue declared meanwhile with other arguments: 406) is reported by
 * SALVO_EVENT_TOPOLOGY_FAILED and recovery goes on with the next; a consumer that
 * cannot be made again ends with that error (salvo_consumer_get returns it), as does
 * every consumer of a channel the refusal closed. Refused entities are not retried
 * before the next loss; one to expect is an exclusive queue with a fixed name, refused
 * with 405 RESOURCE_LOCKED while the broker has not yet noticed that the old connection
 * is gone (a server-named one does not meet it). SALVO_EVENT_TOPOLOGY_RECOVERED ends
 * recovery. A loss during recovery starts it again on the next connection.
 *
 * While a channel with recorded consumers waits to be reopened (from the loss until
 * recovery has sent its channel.open), a synchronous call on it returns SALVO_ERR_CLOSED
 * at once, with a text saying the channel is being recovered: nothing is held for the
 * new connection; call again after SALVO_EVENT_TOPOLOGY_RECOVERED. Channels without recorded consumers
 * are closed by a loss, as with topology_recovery 0.
 *
 * Recording is bounded: at most topology_recovery.max_entities entities (exchanges,
 * queues, bindings and consumers together); a declare, bind or consume that would
 * record one more fails before anything is sent, with SALVO_ERR_LIMIT and a text
 * naming the key. Declaring what is recorded already records nothing new.
 */

/*
 * An entity as the topology filter sees it. The strings and the table are valid during
 * the call only; those a kind does not have are NULL.
 *  - EXCHANGE: name, type, flags (SALVO_DURABLE, ...), arguments.
 *  - QUEUE: name (a server-named queue's latest name), flags, arguments, server_named.
 *  - QUEUE_BINDING, EXCHANGE_BINDING: source (the exchange), destination (the queue or
 *    exchange), routing_key, arguments.
 *  - CONSUMER: name (the tag), destination (its queue), flags (SALVO_CONSUME_*),
 *    arguments, channel.
 */
typedef struct salvo_topology_entity {
	salvo_topology_kind kind;
	const char *name;
	const char *type;
	const char *source;
	const char *destination;
	const char *routing_key;
	unsigned flags;
	const salvo_table *arguments;
	bool server_named;
	uint16_t channel;
} salvo_topology_entity;

/*
 * Asked by topology recovery for each recorded entity, before it makes it again: true
 * makes it, false skips it this time (it stays recorded, to be asked about again after
 * the next loss; but a consumer skipped ends, with SALVO_ERR_CLOSED, and is forgotten).
 * Runs on the hooks' thread, never the I/O thread, one call at a time; it must not call
 * salvo functions that wait for the I/O thread.
 */
typedef bool (*salvo_topology_filter_fn)(const salvo_topology_entity *e, void *arg);

/* Set (fn NULL: remove) the filter of the clients made from conf; salvo_conf_dup and
 * pools copy it. Returns 0, or SALVO_ERR_INVALID_ARGUMENT when conf is NULL. */
SALVO_API int salvo_conf_set_topology_filter(salvo_conf *conf, salvo_topology_filter_fn fn,
					     void *arg);

/*
 * The current name of queue name: a recorded server-named queue renamed by recovery
 * answers to its first name and its last 4 names before the current one; any other
 * name (not server-named, not recorded, topology_recovery 0) is its own current name.
 * Writes it NUL-terminated into buf (len bytes; 256 always hold it). Returns 0, or
 * SALVO_ERR_INVALID_ARGUMENT when an argument is NULL or buf is too small. Any thread.
 */
SALVO_API int salvo_client_queue_name(salvo_client *c, const char *name, char *buf,
				      size_t len);

/*
 * Take the oldest event, waiting up to timeout_ms (0: not at all) for one. Returns 0 with
 * *ev filled, or SALVO_ERR_TIMEOUT / SALVO_ERR_WOULD_BLOCK when there is none. The queue
 * keeps the last 64 events; older ones are dropped (counted in salvo_client_events_dropped).
 * Any thread; events are never delivered on the I/O thread. Each event is also logged
 * (salvo_conf_set_log_cb) as it happens, whether or not anyone polls.
 */
SALVO_API int salvo_client_poll_event(salvo_client *c, salvo_event *ev, int timeout_ms);
SALVO_API uint64_t salvo_client_events_dropped(salvo_client *c);
/* Reconnections so far. */
SALVO_API uint64_t salvo_client_reconnects(salvo_client *c);

/*
 * Refresh the secret of the connection's login without reconnecting: RabbitMQ's
 * connection.update-secret (its way to renew an expiring OAuth 2 token), with reason (NULL:
 * "", at most 255 bytes) for the broker's log. secret (not NULL or "", at most 4096 bytes)
 * is also the password every later reconnection logs in with (unless a credentials
 * callback gives another). It is kept as soon as the I/O thread takes the call, whatever
 * the broker answers.
 *
 * Sends the method on channel 0 and waits at most rpc_timeout for update-secret-ok.
 * Returns 0 once the broker has accepted it; also 0 at once while the client is
 * reconnecting (nothing to send: the next attempt logs in with the secret). What the
 * broker does with it is its authentication backend's business: RabbitMQ 3.10's internal
 * user database accepts any secret without checking it (it keeps the login it made; the
 * secret is only checked at the next login), the OAuth 2 backend checks the token and
 * its expiry. A refusal is a connection error in RabbitMQ: connection.close 530
 * NOT_ALLOWED ("New secret was refused by one of the backends"), returned with that
 * reply code and text (err->kind SALVO_ERROR_CONNECTION); it ends the client like any
 * 530 (SALVO_EVENT_GIVING_UP). Other returns: SALVO_ERR_INVALID_ARGUMENT (a NULL c or
 * secret, an empty secret, a value too long, a frame over frame_max: a secret near 4096
 * bytes needs frame_max above 4096), SALVO_ERR_NO_MEMORY, SALVO_ERR_TIMEOUT (the secret
 * is kept all the same), and on a client that has closed (or given up) the error that
 * closed it, or SALVO_ERR_CLOSED; a connection lost while waiting: SALVO_ERR_CLOSED with
 * the loss's text (the secret is kept for the reconnection). Any thread; blocks.
 */
SALVO_API int salvo_client_update_secret(salvo_client *c, const char *secret, const char *reason,
					 salvo_error *err);

/*
 * What the broker said of itself in connection.start: its server properties, a table
 * with (RabbitMQ) product, version, platform, cluster_name, copyright, information and
 * capabilities, a nested table of booleans (publisher_confirms, basic.nack,
 * consumer_cancel_notify, connection.blocked, authentication_failure_close,
 * exchange_exchange_bindings, per_consumer_qos, direct_reply_to, ...). Each connection
 * replaces them (a reconnection may reach another node, or a broker upgraded meanwhile);
 * while the client reconnects they are those of the connection lost.
 *
 * salvo_client_server_properties sets *copy to a new table holding them (read it with
 * salvo_table_iter_init and salvo_table_next) that the caller owns and frees with
 * salvo_table_destroy. Returns 0, SALVO_ERR_INVALID_ARGUMENT (c or copy NULL; *copy is
 * then untouched) or SALVO_ERR_NO_MEMORY (*copy NULL). A closed client still has those
 * of its last connection. Any thread; takes the client's lock briefly.
 */
SALVO_API int salvo_client_server_properties(salvo_client *c, salvo_table **copy,
					     salvo_error *err);

/*
 * Whether the broker's capabilities table (above) has name as a boolean true: false when
 * it is false, absent, of another type, or c or name is NULL. Any thread.
 */
SALVO_API bool salvo_client_server_capability(salvo_client *c, const char *name);

/*
 * Close the connection in order: everything already handed to publishers is sent, then
 * connection.close, then the broker's close-ok is awaited (at most timeout_ms). Returns 0,
 * SALVO_ERR_TIMEOUT, or the error that had already ended the connection. Blocks. Call it
 * once, from one thread, after every publisher and channel is closed; salvo_client_destroy
 * then frees the client.
 */
SALVO_API int salvo_client_close(salvo_client *c, int timeout_ms, salvo_error *err);

/* Free the client, closing it first (5 s timeout) if salvo_client_close was not called.
 * Publishers and channels still open become unusable; their handles must still be closed. */
SALVO_API void salvo_client_destroy(salvo_client *c);

/*
 * Channels: synchronous methods. Each call sends its method through the I/O thread and
 * blocks until the broker answers or the configuration's rpc_timeout passes. A broker
 * error comes back at once as its reply code (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...)
 * with err->kind SALVO_ERROR_CHANNEL: the broker has closed the channel, and every later
 * call on it returns that same error; the connection and its other channels go on. A
 * channel is used by one thread at a time. With topology_recovery on, the declares and
 * binds that succeed are recorded and the deletes and unbinds forget (see "Topology
 * recovery" at salvo_client_queue_name); one that would record more than
 * topology_recovery.max_entities returns SALVO_ERR_LIMIT before anything is sent.
 */
typedef struct salvo_channel salvo_channel;

SALVO_API int salvo_channel_open(salvo_client *c, salvo_channel **out, salvo_error *err);

/* Close the channel (channel.close, await close-ok) and free the handle, whatever the
 * outcome. Returns 0, or the error that had closed the channel (so an asynchronous error
 * is never lost), or SALVO_ERR_TIMEOUT. */
SALVO_API int salvo_channel_close(salvo_channel *ch, salvo_error *err);

/* Flags of declares and deletes; each method takes the ones marked for it (no mark: both
 * declares), and refuses any other bit with SALVO_ERR_INVALID_ARGUMENT. */
#define SALVO_PASSIVE 0x01u
#define SALVO_DURABLE 0x02u
#define SALVO_AUTO_DELETE 0x04u
#define SALVO_EXCLUSIVE 0x08u  /* queue.declare */
#define SALVO_INTERNAL 0x10u   /* exchange.declare */
#define SALVO_IF_UNUSED 0x20u  /* exchange.delete, queue.delete */
#define SALVO_IF_EMPTY 0x40u   /* queue.delete */
/* Both declares and both deletes: send the method with its no-wait bit, and wait for no
 * reply (below, "Nowait"). */
#define SALVO_NOWAIT 0x80u

/*
 * Nowait: bulk topology without a round trip each. A method sent with its no-wait bit
 * (SALVO_NOWAIT, or a *_nowait bind) has no reply from the broker: the call returns 0 once
 * the I/O thread has queued its frame for sending, which is before the broker has seen it.
 * The broker handles a channel's methods in order, so a later synchronous call on the same
 * channel (a passive declare, salvo_basic_qos, ...) returns only after every nowait method
 * sent before it took effect: that is the way to know a bulk is done.
 *
 * A refusal comes later, as the broker's channel.close (404 for a missing exchange, 406
 * for a declare that disagrees with what exists, ...): the channel is closed, and the next
 * call on it returns that error with the broker's code and text (err->kind
 * SALVO_ERROR_CHANNEL), as for a publish. Methods sent after the refused one and before
 * the close reached the client are ignored by the broker; those before it took effect.
 * Which call returns the error depends on timing: some nowait calls after the refused one
 * may still return 0. A call cut by a lost connection is not sent again by itself, any
 * more than a waited one; with topology recovery a nowait declare or bind is recorded
 * when sent (see salvo_conf_set_topology_filter) and made again, waited, after a
 * reconnection.
 *
 * Bounded: a nowait call waits (rpc_timeout at most: SALVO_ERR_TIMEOUT) until the I/O
 * thread takes its frame, and the I/O thread takes no method while more than 256 KiB of
 * control frames wait for a broker that is not reading, so a loop of nowait calls holds
 * no more memory in flight than that and one request per calling thread, whatever its
 * length (besides what topology recovery records, within
 * topology_recovery.max_entities: a declared binding costs its names and arguments). A
 * call that timed out leaves its frame queued: it may still be sent, as a waited call's
 * may. Same returns as the waited call otherwise; same thread rules (a channel is used
 * by one thread at a time).
 *
 * queue.declare with SALVO_NOWAIT refuses queue "" (SALVO_ERR_INVALID_ARGUMENT): the
 * name the broker chooses comes only in declare-ok; and info must be NULL (no declare-ok
 * fills it). queue.delete with SALVO_NOWAIT takes no message_count (NULL). queue.unbind
 * has no no-wait bit in AMQP 0-9-1, so salvo_queue_unbind always waits for unbind-ok.
 */

SALVO_API int salvo_exchange_declare(salvo_channel *ch, const char *exchange, const char *type,
				     unsigned flags, const salvo_table *arguments, salvo_error *err);
SALVO_API int salvo_exchange_delete(salvo_channel *ch, const char *exchange, unsigned flags,
				    salvo_error *err);
SALVO_API int salvo_exchange_bind(salvo_channel *ch, const char *destination, const char *source,
				  const char *routing_key, const salvo_table *arguments,
				  salvo_error *err);
SALVO_API int salvo_exchange_unbind(salvo_channel *ch, const char *destination,
				    const char *source, const char *routing_key,
				    const salvo_table *arguments, salvo_error *err);
/* exchange.bind and exchange.unbind with the no-wait bit: see "Nowait" above. */
SALVO_API int salvo_exchange_bind_nowait(salvo_channel *ch, const char *destination,
					 const char *source, const char *routing_key,
					 const salvo_table *arguments, salvo_error *err);
SALVO_API int salvo_exchange_unbind_nowait(salvo_channel *ch, const char *destination,
					   const char *source, const char *routing_key,
					   const salvo_table *arguments, salvo_error *err);

/* What queue.declare-ok says. name is the queue's name, chosen by the broker when the
 * declare asked for "" (server-named queue). */
typedef struct salvo_queue_info {
	char name[256];
	uint32_t message_count;
	uint32_t consumer_count;
} salvo_queue_info;

/* info may be NULL. */
SALVO_API int salvo_queue_declare(salvo_channel *ch, const char *queue, unsigned flags,
				  const salvo_table *arguments, salvo_queue_info *info,
				  salvo_error *err);
SALVO_API int salvo_queue_bind(salvo_channel *ch, const char *queue, const char *exchange,
			       const char *routing_key, const salvo_table *arguments,
			       salvo_error *err);
/* queue.bind with the no-wait bit: see "Nowait" above. */
SALVO_API int salvo_queue_bind_nowait(salvo_channel *ch, const char *queue, const char *exchange,
				      const char *routing_key, const salvo_table *arguments,
				      salvo_error *err);
SALVO_API int salvo_queue_unbind(salvo_channel *ch, const char *queue, const char *exchange,
				 const char *routing_key, const salvo_table *arguments,
				 salvo_error *err);
/* message_count (may be NULL) receives the number of messages purged / deleted. */
SALVO_API int salvo_queue_purge(salvo_channel *ch, const char *queue, uint32_t *message_count,
				salvo_error *err);
SALVO_API int salvo_queue_delete(salvo_channel *ch, const char *queue, unsigned flags,
				 uint32_t *message_count, salvo_error *err);
SALVO_API int salvo_basic_qos(salvo_channel *ch, uint32_t prefetch_size, uint16_t prefetch_count,
			      bool global, salvo_error *err);

/*
 * Message properties (the basic class's content header). A string property is present
 * when its pointer is not NULL ("" is present and empty); each is a short string of at
 * most 255 bytes. headers is present when not NULL (in confirm modes a mandatory
 * message's headers also carry x-salvo-seq: see SALVO_MSG_MANDATORY). The three numeric
 * properties are
 * present when their SALVO_PROP_* bit is set in flags. Initialise with designated
 * initialisers ({.content_type = "text/plain", .flags = SALVO_PROP_PRIORITY, .priority =
 * 5}): members added later go at the end and start as absent.
 *
 * RabbitMQ refuses (406, closing the channel) a user_id other than the connection's user,
 * and an expiration that is not a non-negative integer in milliseconds.
 */
#define SALVO_PROP_DELIVERY_MODE 0x1u
#define SALVO_PROP_PRIORITY 0x2u
#define SALVO_PROP_TIMESTAMP 0x4u

typedef struct salvo_props {
	unsigned flags; /* SALVO_PROP_*: which numeric properties are present */
	const char *content_type;
	const char *content_encoding;
	const salvo_table *headers;
	uint8_t delivery_mode; /* 1 transient, 2 persistent */
	uint8_t priority;      /* 0..9 in RabbitMQ's priority queues */
	const char *correlation_id;
	const char *reply_to;
	const char *expiration; /* per-message TTL in ms, as text: "60000" */
	const char *message_id;
	uint64_t timestamp; /* seconds since the epoch */
	const char *type;
	const char *user_id;
	const char *app_id;
	const char *cluster_id;
} salvo_props;

/*
 * Receiving: basic.get (one message on request) and consumers (basic.consume: the broker
 * pushes messages). Both hand out salvo_message objects owned by the caller.
 */
typedef struct salvo_message salvo_message;

/*
 * Fetch the next message of queue. Returns 0 with *msg set, or 0 with *msg NULL when the
 * queue is empty (a normal answer, not an error); otherwise like every synchronous method.
 * With no_ack false the message must be acknowledged (salvo_message_ack, or
 * salvo_basic_ack on this channel). Bodies over 512 MiB are refused as a protocol error.
 * An envelope comes as it is, not split (record 0 of 1, its body the wire format's): one
 * basic.get is one message of the queue.
 */
SALVO_API int salvo_basic_get(salvo_channel *ch, const char *queue, bool no_ack,
			      salvo_message **msg, salvo_error *err);

/* Accessors; the strings and body live as long as the message. Any thread. */
SALVO_API const void *salvo_message_body(const salvo_message *m, size_t *len);
SALVO_API const char *salvo_message_exchange(const salvo_message *m);
SALVO_API const char *salvo_message_routing_key(const salvo_message *m);
SALVO_API uint64_t salvo_message_delivery_tag(const salvo_message *m);
SALVO_API bool salvo_message_redelivered(const salvo_message *m);
/* Messages left in the queue after this one, as basic.get-ok says (0 for deliveries). */
SALVO_API uint32_t salvo_message_count(const salvo_message *m);
/* The consumer tag of a delivery; "" for a basic.get message. */
SALVO_API const char *salvo_message_consumer_tag(const salvo_message *m);
/*
 * The message's properties, as the content header carried them: absent strings and
 * headers are NULL, the numeric ones present when their SALVO_PROP_* bit is set. Strings
 * are NUL-terminated copies (a property holding a NUL byte reads as cut short there);
 * headers is read-only, for salvo_table_iter_init. Never NULL; lives as long as m.
 */
SALVO_API const salvo_props *salvo_message_props(const salvo_message *m);
/*
 * A record of an envelope (a batching publisher's message, see salvo_batch_opts), as
 * consumers hand them out: its index (0-based) and the envelope's record count. A message
 * that is not from an envelope, or an envelope delivered raw (SALVO_CONSUME_RAW_ENVELOPES,
 * salvo_basic_get), is record 0 of 1. A record's body is its own bytes, decompressed;
 * everything else (exchange, routing key, delivery tag, redelivered, consumer tag,
 * properties) is its envelope's, shared by all its records, except that content_type and
 * content_encoding read as absent: they describe the envelope, and a batching publisher
 * refuses records that carry their own.
 */
SALVO_API uint32_t salvo_message_record_index(const salvo_message *m);
SALVO_API uint32_t salvo_message_record_count(const salvo_message *m);
/*
 * A stream's offset of m: RabbitMQ puts each stream delivery's offset in the header
 * x-stream-offset (a long). Returns 0 with *offset set; SALVO_ERR_UNSUPPORTED when m has
 * no such header (it did not come from a stream); SALVO_ERR_PROTOCOL when the header's
 * first entry holds something other than a non-negative integer (a string, a negative
 * number, an unsigned 64-bit one over INT64_MAX); SALVO_ERR_INVALID_ARGUMENT for m or
 * offset NULL. *offset is set only on success. Records of an envelope share their
 * envelope's offset (see salvo_message_record_index). Any thread.
 */
SALVO_API int salvo_message_stream_offset(const salvo_message *m, uint64_t *offset);
/* Free the message. An unacknowledged message stays unacknowledged (the broker requeues
 * it when the channel closes). NULL is ignored. Any thread. A record holds its envelope's
 * memory (one block for all its records) until every record of it is destroyed. */
SALVO_API void salvo_message_destroy(salvo_message *m);

/*
 * Settling a received message: ack (done with it), nack (multiple and/or requeue) and
 * reject (one message; requeue or drop / dead-letter). With multiple, every unsettled
 * message of the same channel up to this one's delivery tag is settled too.
 *
 * Any thread, concurrently, without a lock on the caller's side: the call only checks the
 * message and pushes a small record onto a lock-free queue, waking the I/O thread only if
 * it sleeps; it never waits for the broker. The I/O thread sends what accumulated in one
 * batch, and turns consecutive single acks into one multiple ack when that is exact (every
 * earlier delivery tag of the channel is settled already).
 *
 * Refused locally, before the broker could close the channel with 406 PRECONDITION_FAILED
 * (unknown delivery tag): a message whose channel has closed or has been reopened since it
 * came (the delivery tag means nothing on the new one) returns SALVO_ERR_CLOSED with
 * err->text saying so; a message received with no_ack returns SALVO_ERR_INVALID_ARGUMENT.
 * Settling the same message twice is the caller's error: the broker closes the channel
 * (406). The message stays the caller's: destroy it when done.
 *
 * Records of an envelope (salvo_message_record_count > 1) are settled one by one, and
 * their envelope, one message at the broker, is settled once every record of it is:
 * acked if every record was acked; otherwise rejected, with requeue if any record's nack
 * or reject asked for requeue (the whole envelope is delivered again, records already
 * acked included, with redelivered set: at least once per record), without requeue if
 * none did (the whole envelope is dropped or dead-lettered). A record settled twice
 * returns SALVO_ERR_INVALID_STATE and changes nothing. With multiple, a record settles
 * the records of its envelope up to it (lower index) and every message of the channel
 * delivered before its envelope (whole envelopes too, whatever became of their records:
 * their own settles, later, are then dropped instead of sent); the records after it stay
 * unsettled. An envelope whose records are never all settled stays unacknowledged until
 * the channel closes, and is then redelivered.
 */
SALVO_API int salvo_message_ack(salvo_message *m, bool multiple, salvo_error *err);
SALVO_API int salvo_message_nack(salvo_message *m, bool multiple, bool requeue,
				 salvo_error *err);
SALVO_API int salvo_message_reject(salvo_message *m, bool requeue, salvo_error *err);

/* Acknowledge delivery_tag on ch (and every earlier one with multiple), as
 * salvo_message_ack does (any thread, never waits), for a tag of the channel's current
 * opening. Returns 0, or SALVO_ERR_CLOSED when ch has closed. An error the broker raises
 * (406 for an unknown tag) closes the channel and comes back from the next call on it. */
SALVO_API int salvo_basic_ack(salvo_channel *ch, uint64_t delivery_tag, bool multiple,
			      salvo_error *err);

/*
 * basic.recover: the broker requeues every unacknowledged message of the channel, to be
 * delivered again (redelivered set), possibly to another consumer. Synchronous. RabbitMQ
 * does not implement requeue false: it answers 540 NOT_IMPLEMENTED and closes the
 * connection (err->kind SALVO_ERROR_CONNECTION).
 */
SALVO_API int salvo_basic_recover(salvo_channel *ch, bool requeue, salvo_error *err);

/*
 * basic.recover-async (deprecated in AMQP 0-9-1 in favour of basic.recover, and still
 * implemented by RabbitMQ): the same requeueing of the channel's unacknowledged messages,
 * without a reply. Returns 0 once the I/O thread has queued the frame (as a nowait method:
 * see "Nowait"); the messages come again with redelivered set, with new delivery tags.
 * Settle those: an ack of a requeued message's old delivery that reaches the broker after
 * the recover is refused with 406 PRECONDITION_FAILED (unknown delivery tag), closing the
 * channel. A refusal comes back from the next call on the channel. RabbitMQ answers
 * requeue false with 540 NOT_IMPLEMENTED and closes the connection, as for basic.recover.
 */
SALVO_API int salvo_basic_recover_async(salvo_channel *ch, bool requeue, salvo_error *err);

/*
 * Consumers (basic.consume). A consumer belongs to a channel; the I/O thread assembles its
 * deliveries into salvo_message objects and queues them on the consumer. The application
 * takes them on its own threads, never on the I/O thread:
 *  - blocking queue: salvo_consumer_get(cons, timeout, &msg) returns the next message;
 *  - callback: salvo_consumer_dispatch(cons, timeout, max) runs opts.on_message for each
 *    queued message on the calling thread; salvo_client_dispatch does it for every
 *    consumer of a client at once.
 * A callback may run for minutes: the I/O thread keeps sending heartbeats meanwhile.
 *
 * Memory is bounded: when the messages queued on the client's consumers exceed the
 * configuration key consumer.buffer_bytes, the I/O thread stops reading the socket (TCP
 * pushes back on the broker) until the application has taken enough of them. It keeps
 * sending (heartbeats, acks) meanwhile, and does not count the broker's silence against
 * it. While reads are held, replies to synchronous methods on that connection wait too:
 * drain consumers, or consume on a connection of its own. A prefetch (salvo_basic_qos)
 * bounds what the broker sends in the first place, and is what consumers that ack should
 * use.
 *
 * Envelopes (a batching publisher's messages, salvo_batch_opts) are split: consumers hand
 * out their records one at a time, in order, each a salvo_message (see
 * salvo_message_record_index; settling: salvo_message_ack). The I/O thread splits an
 * envelope when its last frame is in: it decompresses it, checks it and makes a handle
 * per record, in one allocation per envelope (48 bytes a record, plus the decompressed
 * body; a plain envelope's records point into the body as received); the records count
 * against consumer.buffer_bytes as they are queued (an envelope's records all go to the
 * queue at once, so the bound holds within one envelope, decompressed). An envelope that
 * is malformed (record lengths overrunning the body or leaving bytes over, a record count
 * that disagrees with x-salvo-records or is missing, not an integer, zero or negative, an
 * unknown content_encoding, a compressed frame that is corrupt, truncated or followed by
 * more bytes) or too large (more memory than consumer.batch.max_bytes, 16 MiB by default,
 * once decompressed: a decompression bomb) is rejected without requeue (a dead-letter
 * exchange gets it), counted (salvo_consume_stats.envelopes_rejected) and reported
 * (SALVO_EVENT_ENVELOPE_REJECTED); the consumer goes on with the next message.
 */
typedef struct salvo_consumer salvo_consumer;

#define SALVO_CONSUME_NO_ACK 0x1u    /* the broker considers messages acked when sent */
#define SALVO_CONSUME_EXCLUSIVE 0x2u /* the only consumer of the queue */
#define SALVO_CONSUME_NO_LOCAL 0x4u  /* not honoured by RabbitMQ */
/* Envelopes of batching publishers are handed out as they came, not split into records
 * (record 0 of 1, the body in the wire format, nothing checked): to forward or store
 * them as they are. */
#define SALVO_CONSUME_RAW_ENVELOPES 0x8u
/* The queue is a stream, which takes acks only (RabbitMQ 3.10 closes the connection with
 * 540 NOT_IMPLEMENTED over a nack or reject of a stream's delivery): every nack and
 * reject of this consumer's deliveries is sent as an ack, whoever asks for it (the
 * application, or salvo giving back what nobody took or refusing a malformed envelope).
 * On a stream an ack is credit only: nothing is removed, nothing is requeued. Also in
 * effect without the flag when arguments give x-stream-offset. */
#define SALVO_CONSUME_STREAM 0x10u
/* Not recorded for topology recovery (configuration key topology_recovery): the consumer
 * ends with the connection, as every consumer did before topology recovery, and whoever
 * made it makes it again (a listener, an RPC client). */
#define SALVO_CONSUME_NO_RECOVERY 0x20u

/* Called with a message the callee owns (it must destroy it, and may hand it to another
 * thread to process and ack). */
typedef void (*salvo_message_fn)(salvo_message *m, void *arg);

typedef struct salvo_consumer_opts {
	const char *tag;	       /* NULL or "": the broker chooses (amq.ctag-...) */
	unsigned flags;		       /* SALVO_CONSUME_* */
	const salvo_table *arguments;  /* x-priority, ...; NULL: none */
	salvo_message_fn on_message;   /* for salvo_{consumer,client}_dispatch; NULL: get only */
	void *on_message_arg;
} salvo_consumer_opts;

/*
 * Start consuming queue on ch (basic.consume, awaiting consume-ok). opts NULL: a
 * broker-named tag, acks required, no callback. With topology_recovery on, the consumer
 * is recorded and made again after a reconnection on the same object (see "Topology
 * recovery" at salvo_client_queue_name), unless flags has SALVO_CONSUME_NO_RECOVERY or ch
 * is a publisher's; SALVO_ERR_LIMIT past topology_recovery.max_entities. Returns 0 with *out set, or like every
 * synchronous method (404 for a missing queue, 403 for an exclusive queue in use, 530 for
 * a tag in use: the broker's error, channel or connection kind). Several consumers may
 * share a channel; their deliveries share its delivery tags. A channel's consumers and
 * the channel itself are used by one application thread at a time, except for the
 * salvo_message_* calls, which any thread may make.
 */
SALVO_API int salvo_consume(salvo_channel *ch, const char *queue,
			    const salvo_consumer_opts *opts, salvo_consumer **out,
			    salvo_error *err);

/* The consumer tag (the broker's choice when none was given). Valid until destroy. */
SALVO_API const char *salvo_consumer_tag(const salvo_consumer *cons);

/*
 * Take the next queued message, waiting up to timeout_ms (0: not at all; SALVO_FOREVER).
 * Returns 0 with *msg set (the caller owns it); SALVO_ERR_TIMEOUT or SALVO_ERR_WOULD_BLOCK
 * (timeout 0) with none queued; once every queued message has been taken:
 * SALVO_ERR_CANCELLED when the consumer was cancelled (salvo_consumer_cancel, or the
 * broker's basic.cancel, e.g. its queue was deleted), or the error that closed the channel
 * or connection. Those end states are sticky. Any one thread at a time per consumer (it
 * may differ from the channel's).
 */
SALVO_API int salvo_consumer_get(salvo_consumer *cons, int timeout_ms, salvo_message **msg,
				 salvo_error *err);

/*
 * Run opts.on_message for queued messages on the calling thread: waits up to timeout_ms
 * for the first, then takes up to max (0: all queued) without waiting. Returns how many
 * ran (>= 0), or, with none queued, SALVO_ERR_TIMEOUT / SALVO_ERR_WOULD_BLOCK, or the end
 * state as salvo_consumer_get does. SALVO_ERR_INVALID_ARGUMENT without a callback.
 */
SALVO_API int salvo_consumer_dispatch(salvo_consumer *cons, int timeout_ms, size_t max,
				      salvo_error *err);

/*
 * salvo_consumer_dispatch over every consumer of c that has a callback, whatever its
 * channel: wait up to timeout_ms (SALVO_FOREVER, or 0: not at all) until one of them has
 * a message, then run callbacks on the calling thread, one message per consumer in turn
 * (none starves another), until nothing is queued or max have run (0: no limit).
 * Returns how many ran (>= 0), or, with none, SALVO_ERR_TIMEOUT / SALVO_ERR_WOULD_BLOCK,
 * or SALVO_ERR_CLOSED once the client is closed (or gave up reconnecting). Consumers that
 * ended are skipped (salvo_consumer_get on one tells why). Any number of threads may
 * dispatch at once; a consumer may be created or destroyed from another thread meanwhile
 * (a callback already running for it finishes). Every dispatching thread must have
 * returned before salvo_client_destroy.
 */
SALVO_API int salvo_client_dispatch(salvo_client *c, int timeout_ms, size_t max,
				    salvo_error *err);

/*
 * basic.cancel: the broker stops delivering to this consumer. Synchronous; messages that
 * arrived before the broker's cancel-ok stay queued and salvo_consumer_get returns them
 * before SALVO_ERR_CANCELLED. Returns 0 (also when already cancelled by the broker), or
 * like every synchronous method. Unacked messages stay unacked until settled or the
 * channel closes.
 */
SALVO_API int salvo_consumer_cancel(salvo_consumer *cons, salvo_error *err);

/*
 * Cancel (if still active; errors ignored), reject with requeue the queued messages the
 * application never took (and any that still arrive), and free the consumer. Messages it
 * took and has not settled stay unacked until settled or the channel closes. From the
 * thread that uses the consumer. NULL is ignored.
 */
SALVO_API void salvo_consumer_destroy(salvo_consumer *cons);

/* Counters of the client's consumers, readable from any thread. */
typedef struct salvo_consume_stats {
	uint64_t delivered;	 /* messages assembled for consumers */
	uint64_t buffered_bytes; /* taken by the I/O thread, not yet by the application */
	uint64_t buffered_peak;
	uint64_t read_holds;	 /* times reads were held for consumer.buffer_bytes */
	uint64_t settles;	 /* acks, nacks and rejects the application asked for */
	uint64_t settle_frames;	 /* basic.ack/nack/reject frames sent for them */
	uint64_t settles_dropped; /* for a channel closed before the I/O thread sent them */
	uint64_t handovers;	 /* batches of deliveries queued at once (one wake-up each) */
	/* Envelopes split into records (counted once in delivered each) and their records;
	 * malformed envelopes rejected (SALVO_EVENT_ENVELOPE_REJECTED). */
	uint64_t envelopes, records, envelopes_rejected;
	/* Reads held back (up to 2 ms) because the last one brought a stream of deliveries:
	 * each then wakes the I/O thread and the consumer once for more messages. */
	uint64_t stream_holds;
} salvo_consume_stats;

SALVO_API void salvo_client_consume_stats(salvo_client *c, salvo_consume_stats *st);

/* Counters of one consumer, readable from any thread while the consumer exists. */
typedef struct salvo_consumer_stats {
	uint64_t delivered;	 /* deliveries queued for it (an envelope split into records: once) */
	uint64_t taken;		 /* messages the application took (a split envelope's records each) */
	uint64_t handovers;	 /* batches queued at once (one wake-up each) */
	uint64_t buffered_bytes; /* queued for it, not yet taken (counted as consumer.buffer_bytes) */
	/* salvo_message_ack, _nack and _reject calls on messages taken from it (a multiple ack
	 * counts once; salvo_basic_ack by tag is not tied to a consumer). */
	uint64_t acks, nacks, rejects;
} salvo_consumer_stats;

SALVO_API void salvo_consumer_get_stats(const salvo_consumer *cons, salvo_consumer_stats *st);

/*
 * Publishers: the fast path. A publisher owns a channel and a ring of pre-encoded frames
 * (configuration key publisher.ring_size). salvo_publish copies the message's frames into
 * the ring and returns; the I/O thread sends them, batched with every other publisher's.
 * A publisher belongs to one thread at a time: many threads publish concurrently, each on
 * its own publisher, with no lock between them.
 *
 * Three confirm modes (salvo_publisher_opts.confirm):
 *  - SALVO_CONFIRM_NONE, best effort: no confirm.select; the ring's space is reused as soon
 *    as the kernel has the bytes. A broker error caused by a publish (404 for a missing
 *    exchange) closes the channel and is returned by the next call on the publisher, with
 *    err->kind SALVO_ERROR_CHANNEL.
 *  - SALVO_CONFIRM_ASYNC: salvo_publish returns at once with the message's sequence number
 *    (1, 2, 3, ... per publisher); each message later gets exactly one outcome, delivered
 *    in sequence order to the on_outcome callback from salvo_publisher_poll,
 *    salvo_publisher_wait_confirms or a salvo_publish whose window is full, all on the
 *    publisher's thread (never on the I/O thread). on_outcome may publish on its own
 *    publisher (republish what came back): the outcome's slot is free when it runs, so
 *    one publish per outcome always finds room; a publish from inside on_outcome that
 *    finds the window full returns SALVO_ERR_WOULD_BLOCK at once instead of waiting (it
 *    would wait for the outcomes it is being given). From inside on_outcome, poll, flush,
 *    wait_confirms and close on that publisher return SALVO_ERR_INVALID_STATE.
 *  - SALVO_CONFIRM_SYNC: salvo_publish waits for the message's outcome and returns it.
 *    Many threads publishing synchronously, each on its own publisher, share the I/O
 *    thread's sends and the broker's multiple acks.
 * In both confirm modes a message's bytes stay in the ring until its outcome is known.
 *
 * One thread at a time: a publisher's calls (publish, poll, flush, wait_confirms, close)
 * may come from any thread, but not from two at once. A call made while another thread is
 * inside one returns SALVO_ERR_INVALID_STATE and does nothing (nothing reaches the ring or
 * the wire); a publisher handed from one thread to another needs no more than that the
 * first thread's call has returned. For publishing from many threads, give each thread
 * its own (salvo_publisher_pool_get) or call salvo_publisher_pool_publish from any thread.
 */
typedef struct salvo_publisher salvo_publisher;

typedef enum salvo_confirm_mode {
	SALVO_CONFIRM_NONE = 0,
	SALVO_CONFIRM_ASYNC,
	SALVO_CONFIRM_SYNC,
} salvo_confirm_mode;

typedef enum salvo_outcome_kind {
	SALVO_OUTCOME_ACKED = 0,
	SALVO_OUTCOME_NACKED,	/* the broker could not take responsibility for it */
	SALVO_OUTCOME_RETURNED, /* mandatory and unroutable: basic.return, then its ack */
	SALVO_OUTCOME_FAILED,	/* the channel or connection ended before its confirm */
} salvo_outcome_kind;

/*
 * A message the broker returned (basic.return: published with SALVO_MSG_MANDATORY, and no
 * queue took it), with its content as the broker sent it back: salvo fills it, the
 * application reads it. Where it comes from, and how long its pointers are valid:
 *  - SALVO_CONFIRM_ASYNC: salvo_outcome.returned, during on_outcome;
 *  - SALVO_CONFIRM_SYNC: salvo_publisher_returned, after a publish that returned
 *    SALVO_ERR_RETURNED, until the next call on the publisher;
 *  - SALVO_CONFIRM_NONE: the on_return callback of salvo_publisher_opts, run by
 *    salvo_publisher_poll, during the callback.
 * Copy what is needed longer (salvo_msg takes these fields as they are: republishing
 * from the callback is one call).
 *
 * Memory is bounded: the returned messages a client holds for its application (bodies,
 * properties, bookkeeping) may take at most the configuration key
 * publisher.returns.max_bytes. The I/O thread checks a return's size as the broker
 * announces it, before it buffers any of the body; one that does not fit is dropped and
 * counted (salvo_pub_stats.returns_dropped; a log line the first time per client): in
 * confirm modes its outcome still says RETURNED, with dropped set and no content; in best
 * effort on_return never hears of it. Space comes back as the application is handed the
 * returns (when the callback returns, or at the next call for sync). Nothing is held for
 * nobody: in async mode without on_outcome and in best effort without on_return, returns
 * are only counted.
 */
typedef struct salvo_returned {
	uint16_t reply_code;	/* 312 NO_ROUTE or 313 NO_CONSUMERS */
	const char *reply_text; /* the broker's: "NO_ROUTE" (escaped: see salvo_error) */
	const char *exchange;	/* as the broker returned them */
	const char *routing_key;
	/* The properties it was published with, headers included (in confirm modes with the
	 * x-salvo-seq header salvo adds, see SALVO_MSG_MANDATORY). NULL when dropped. */
	const salvo_props *props;
	const void *body; /* its len bytes as published; NULL when dropped or empty */
	size_t len;
	bool dropped; /* over publisher.returns.max_bytes: no props, no body */
	/* Batching: a returned envelope returns each of its records (each has its outcome);
	 * this is record record_index (0-based) of record_count, and props and body are the
	 * envelope's as the broker returned it (wire format v1, README "Batching"; compressed
	 * when content_encoding says so), shared by its records. 0 of 1 without batching. */
	uint32_t record_index, record_count;
} salvo_returned;

/* One message's outcome; the pointers are valid during the callback only. */
typedef struct salvo_outcome {
	uint64_t seq;		  /* from salvo_publish_msg */
	void *opaque;		  /* salvo_msg.opaque */
	salvo_outcome_kind kind;
	uint16_t reply_code;	  /* RETURNED: 312 NO_ROUTE or 313 NO_CONSUMERS */
	const char *exchange;	  /* RETURNED: as the broker returned it; else NULL */
	const char *routing_key;  /* RETURNED; else NULL */
	const salvo_error *error; /* FAILED: why the channel ended; RETURNED: reply text */
	/* RETURNED: the returned message with its content (see salvo_returned); NULL for the
	 * other kinds (and for a RETURNED record of an envelope when out of memory). */
	const salvo_returned *returned;
} salvo_outcome;

typedef void (*salvo_outcome_fn)(const salvo_outcome *o, void *arg);

/* Best effort: one returned message, for salvo_publisher_opts.on_return; r is valid during
 * the call only. Runs on the thread in salvo_publisher_poll and may publish on the same
 * publisher (republish what came back). */
typedef void (*salvo_return_fn)(const salvo_returned *r, void *arg);

/*
 * Batching (salvo_publisher_opts.batch): records published with the same exchange, routing
 * key, flags and properties are packed into one AMQP message, an envelope, which the
 * broker stores and routes as one message. The wire format (README "Batching") is stable
 * and versioned: content_type application/vnd.salvo.batch+v1, header x-salvo-records, the
 * body the records back to back (32-bit big-endian length, bytes), compressed whole when
 * content_encoding is lz4 or zstd. salvo consumers hand the records out one by one.
 *
 * An envelope is closed and sent when it holds max_records records or max_bytes bytes of
 * records (each record costs its length plus 4), when linger_us has passed since its
 * first record (the I/O thread closes it: a producer that stops publishing leaves no
 * record waiting longer), when a record with another exchange, routing key, flags or
 * properties comes, and on flush, wait_confirms and close. A sync publish closes its
 * envelope at once: the calling thread could add nothing more to it before its outcome.
 *
 * Sequence numbers, outcomes (async: one per record, with its opaque, when its envelope
 * is settled), the window and the statistics count records; salvo_pub_stats.envelopes
 * counts envelopes. After a reconnection whole unconfirmed envelopes are sent again:
 * their records count in resent.
 */
typedef enum salvo_compression {
	SALVO_COMPRESSION_NONE = 0,
	SALVO_COMPRESSION_LZ4,	/* one LZ4 frame (liblz4) */
	SALVO_COMPRESSION_ZSTD, /* one zstd frame (libzstd) */
} salvo_compression;

typedef struct salvo_batch_opts {
	/* 0: no batching (every other field is ignored). Otherwise the most records of one
	 * envelope, 1 .. 1,048,576, and in confirm modes at most half the window.
	 * Configuration key publisher.batch.records. */
	size_t max_records;
	/* Bytes of records (lengths included) of one envelope, before compression; 0: 65536
	 * (publisher.batch.bytes). At most the negotiated frame_max less the envelope's
	 * frame overhead (and less compression's worst-case growth): an envelope is one
	 * body frame. A publish of a record larger than max_bytes - 4 is refused
	 * (SALVO_ERR_INVALID_ARGUMENT). */
	size_t max_bytes;
	/* Longest a record waits in an open envelope, in microseconds; 0: 1000
	 * (publisher.batch.linger_us). */
	unsigned linger_us;
	salvo_compression compression; /* publisher.batch.compression: none, lz4, zstd */
	/* The codec's own level: lz4 0 (fast) .. 12, zstd 1 .. 19; 0: the codec's default
	 * (publisher.batch.level). */
	int level;
} salvo_batch_opts;

typedef struct salvo_publisher_opts {
	salvo_confirm_mode confirm;
	/* Most messages published and not yet reported (async) or not yet confirmed (sync,
	 * where timed-out messages still count); rounded up to a power of two, at least 64.
	 * 0 takes the configuration key publisher.window. */
	size_t window;
	salvo_outcome_fn on_outcome; /* async only; NULL: outcomes are only counted */
	void *on_outcome_arg;
	unsigned flags; /* SALVO_PUBLISHER_* */
	/* Zeroed: the configuration's publisher.batch.* keys (no batching unless
	 * publisher.batch.records is set). */
	salvo_batch_opts batch;
	/* Best effort only: salvo_publisher_poll runs on_return for each message the broker
	 * returned, in the order returned (see salvo_returned). NULL: returns are only
	 * counted (salvo_pub_stats.returned). Confirm modes give returns with their outcomes,
	 * so on_return there is refused (SALVO_ERR_INVALID_ARGUMENT). */
	salvo_return_fn on_return;
	void *on_return_arg;
} salvo_publisher_opts;

/*
 * Confirm modes: send mandatory messages without the x-salvo-seq header (see
 * SALVO_MSG_MANDATORY). A basic.return carries no delivery tag, so without the header salvo
 * cannot tell which message came back: such a message's outcome is what the broker's
 * confirm says (RabbitMQ acks an unroutable message after returning it, so: acked), and
 * the return is counted in salvo_pub_stats.returns_unmatched.
 */
#define SALVO_PUBLISHER_NO_SEQ_HEADER 0x1u

/*
 * A broker's channel error (a publish to a missing exchange: 404) closes the publisher's
 * channel. The next call on the publisher returns that error once, as it always does;
 * then, unless this flag is set, the next publish, flush or wait opens a new channel
 * (confirm.select again in confirm modes) and goes on, waiting within its timeout until
 * the I/O thread is done with the closed one (SALVO_ERR_TIMEOUT, or WOULD_BLOCK with 0, if
 * it is not yet; the channel.open itself may take up to rpc_timeout, and the broker's
 * refusal of it is returned); salvo_publisher_close instead reports the closed channel's
 * error again, as a close reports the channel's end. What the closed
 * channel cost is counted: in confirm modes each message it held fails (outcome FAILED
 * with the error, counted in failed); in best effort the messages not shown handled go
 * to possibly_lost. A channel put in tx mode (salvo_publisher_channel) is reopened
 * without it. With this flag a closed publisher stays closed: every later call returns
 * the error until salvo_publisher_close.
 */
#define SALVO_PUBLISHER_NO_REOPEN 0x2u

/* A publisher on a new channel of c. opts NULL means best effort (SALVO_CONFIRM_NONE).
 * In confirm modes confirm.select is sent before this returns. */
SALVO_API int salvo_publisher_new(salvo_client *c, const salvo_publisher_opts *opts,
				  salvo_publisher **out, salvo_error *err);

/*
 * SALVO_MSG_MANDATORY: the broker returns the message if no queue takes it. In confirm
 * modes salvo reports it as SALVO_OUTCOME_RETURNED (SALVO_ERR_RETURNED for sync), with
 * the returned message's content (salvo_returned), and to tell which message a
 * basic.return is (it carries no delivery tag) each mandatory message carries a header
 * x-salvo-seq (a 64-bit integer, first in headers): consumers see it.
 * SALVO_PUBLISHER_NO_SEQ_HEADER leaves it out. Best effort sends no header; returns go to
 * salvo_publisher_opts.on_return, or are only counted (salvo_pub_stats.returned).
 */
#define SALVO_MSG_MANDATORY 0x1u
#define SALVO_MSG_PERSISTENT 0x2u /* delivery-mode 2, unless props set delivery_mode */

typedef struct salvo_msg {
	const char *exchange;	 /* "" is the default exchange */
	const char *routing_key;
	const void *body;	 /* copied before salvo_publish_msg returns */
	size_t len;
	unsigned flags;		 /* SALVO_MSG_* */
	void *opaque;		 /* handed back in the message's outcome (async) */
	/* NULL: no properties (but SALVO_MSG_PERSISTENT's delivery mode). Read during the
	 * call only: the properties are encoded before salvo_publish_msg returns. */
	const salvo_props *props;
} salvo_msg;

/*
 * Publish m. Waits up to timeout_ms (SALVO_FOREVER: no limit; 0: never) for room in the
 * ring, for a free slot in the confirm window (async), and for the outcome (sync).
 * In async mode, a full window first delivers the outcomes already known (running the
 * callback), then waits. *seq (may be NULL) gets the message's sequence number once it is
 * in the ring, even when a sync publish then fails or times out.
 *
 * Returns 0 (best effort and async: queued; sync: acked); SALVO_ERR_WOULD_BLOCK or
 * SALVO_ERR_TIMEOUT with nothing queued; in sync mode SALVO_ERR_NACKED,
 * SALVO_ERR_RETURNED (err->reply_code 312/313, err->text names exchange and routing key;
 * salvo_publisher_returned gives the message back),
 * the channel's or connection's error when it ended first, or SALVO_ERR_TIMEOUT with the
 * message queued and its outcome unknown (it stays tracked and counted);
 * SALVO_ERR_INVALID_ARGUMENT (names over 255 bytes, a message larger than the ring);
 * SALVO_ERR_CLOSED / a reply code when the channel or connection has ended.
 * Publisher's thread only.
 */
SALVO_API int salvo_publish_msg(salvo_publisher *p, const salvo_msg *m, int timeout_ms,
				uint64_t *seq, salvo_error *err);

/* salvo_publish_msg without an opaque pointer or sequence number. */
SALVO_API int salvo_publish(salvo_publisher *p, const char *exchange, const char *routing_key,
			    const void *body, size_t len, unsigned flags, int timeout_ms,
			    salvo_error *err);

/*
 * Async mode: deliver up to max known outcomes (0: all) to the callback, in sequence
 * order, without waiting. Best effort: run on_return for up to max returned messages (0:
 * all) that have come, in the order returned, without waiting. Returns how many, or a
 * negative status. Publisher's thread only.
 */
SALVO_API int salvo_publisher_poll(salvo_publisher *p, size_t max, salvo_error *err);

/*
 * Confirm modes: wait until every message published so far has an outcome, delivering
 * them (async), and the messages on_outcome publishes meanwhile too (one round: callbacks
 * that publish for every outcome cannot keep it waiting for ever). Returns 0 when all of
 * those delivered since the previous call were acked; otherwise the worst of them: the
 * channel's error when some failed, else SALVO_ERR_NACKED when some were nacked, else
 * SALVO_ERR_RETURNED when some were returned; SALVO_ERR_TIMEOUT (the rest stay tracked).
 * Best effort: like flush.
 */
SALVO_API int salvo_publisher_wait_confirms(salvo_publisher *p, int timeout_ms,
					    salvo_error *err);

/*
 * Sync mode: the message the broker returned, after the last salvo_publish on p returned
 * SALVO_ERR_RETURNED: valid until the next call on p (publish, poll, flush,
 * wait_confirms, close), which frees it. NULL when the last publish did not return
 * SALVO_ERR_RETURNED, in the other modes, and for p NULL. Publisher's thread only.
 */
SALVO_API const salvo_returned *salvo_publisher_returned(salvo_publisher *p);

/* Wait until every message published so far has been handed to the kernel (best effort)
 * or has an outcome (confirm modes; async outcomes are not delivered by this call). */
SALVO_API int salvo_publisher_flush(salvo_publisher *p, int timeout_ms, salvo_error *err);

/*
 * Flush (at most timeout_ms), close the channel and free the publisher, whatever the
 * outcome. Returns 0 or the first error: a pending asynchronous broker error is reported
 * here rather than lost. Async outcomes not delivered by then are counted, not delivered;
 * messages still unconfirmed count as failed. Bytes already handed to the kernel cannot be
 * taken back: if the broker has stopped reading (a memory or disk alarm) while some of
 * them are still being written, close waits for that write until timeout_ms has passed
 * (at least 100 ms after the flush), then returns SALVO_ERR_TIMEOUT (or the flush's
 * error) and leaves the rest to the I/O thread, which frees the publisher and closes its
 * channel once the broker reads again or the connection ends. SALVO_FOREVER waits for it.
 * The channel.close that follows waits for close-ok for what is left of timeout_ms (at
 * least 100 ms, at most rpc_timeout), or rpc_timeout with SALVO_FOREVER. In best effort a
 * close-ok proves that the broker handled every message; without it (the connection lost
 * during the close: SALVO_ERR_CLOSED with the loss's text, or no answer in time) what was
 * not shown handled is counted in salvo_pub_stats.possibly_lost, which
 * salvo_client_stats keeps after the publisher is freed.
 */
SALVO_API int salvo_publisher_close(salvo_publisher *p, int timeout_ms, salvo_error *err);

/*
 * Counters, readable from any thread at any time (each is exact; together they are a
 * snapshot taken while others may move). The latency histogram counts publish-to-outcome
 * times: every message in sync mode, one in 16 in async mode. Times below 8 ns have a
 * bucket each (bucket i holds i ns); from bucket 8 on, bucket i holds times whose top bit
 * is bit i/8 + 2 with the next three bits i%8 (about 12% wide), and the last bucket also
 * holds every longer time (2^42 ns, 73 minutes, and above); see salvo_stats_latency_ns.
 */
#define SALVO_LATENCY_BUCKETS 320
typedef struct salvo_pub_stats {
	uint64_t published, acked, nacked, returned, failed;
	uint64_t resent; /* sent again after a reconnection: possible duplicates */
	/* Best effort: an upper bound of what losses cost. salvo checks about every
	 * millisecond while publishing that the broker has handled what was sent (a
	 * channel.flow it answers in order); what was published after the last such proof is
	 * counted here when the connection is lost (while publishing, flushing or
	 * reconnecting), when the broker closes the channel (its frames after the error are
	 * ignored, and unsent ones are given up), and when salvo_publisher_close gets no
	 * close-ok (which would have proved everything). 0 in confirm modes, which resend
	 * or report each message instead. */
	uint64_t possibly_lost;
	uint64_t in_flight; /* published, outcome not yet known */
	uint64_t latency_count, latency_max_ns;
	uint64_t latency[SALVO_LATENCY_BUCKETS];
	/* Confirm modes: basic.returns salvo could not tie to a message (published with
	 * SALVO_PUBLISHER_NO_SEQ_HEADER, or whose outcome was already known); not part of
	 * published = acked + nacked + returned + failed + in_flight. */
	uint64_t returns_unmatched;
	/* Batching publishers: envelopes sent (each counted once, not again when resent) and
	 * the bytes of their bodies as sent (after compression) and before compression. */
	uint64_t envelopes, envelope_bytes, envelope_raw_bytes;
	/* The sum of the latencies the histogram counts, in ns (a Prometheus histogram's
	 * _sum). */
	uint64_t latency_sum_ns;
	/* Returned messages whose content was dropped for publisher.returns.max_bytes (see
	 * salvo_returned): counted in returned too (confirm modes: their outcomes say
	 * dropped; best effort: on_return never saw them). */
	uint64_t returns_dropped;
} salvo_pub_stats;

SALVO_API void salvo_publisher_stats(const salvo_publisher *p, salvo_pub_stats *st);
/* The sum over the client's publishers, those closed included. */
SALVO_API void salvo_client_stats(salvo_client *c, salvo_pub_stats *st);
/* Add st into sum (counts and histograms add, the maximum is kept): for totals over
 * several clients. */
SALVO_API void salvo_pub_stats_add(salvo_pub_stats *sum, const salvo_pub_stats *st);
/* The q-quantile (0 < q <= 1) of the histogram's latencies, in ns; 0 when it is empty. */
SALVO_API uint64_t salvo_stats_latency_ns(const salvo_pub_stats *st, double q);
/* Count one latency of ns into st's histogram (count and maximum too): for latencies the
 * application measures itself, e.g. publish to consume, read back the same way. */
SALVO_API void salvo_stats_latency_record(salvo_pub_stats *st, uint64_t ns);

/* What the client's I/O thread did, from its start (every connection); any thread. */
typedef struct salvo_io_stats {
	uint64_t turns;	  /* turns of its loop */
	uint64_t waits;	  /* io_uring_enter calls that waited for a completion */
	uint64_t submits; /* io_uring_enter calls that only submitted */
	uint64_t sends, send_bytes; /* sendmsg completions, and the bytes they took */
	uint64_t recvs, recv_bytes; /* recv completions, and the bytes they brought */
	uint64_t wakeups; /* times it was woken from a wait by the application (eventfd) */
	uint64_t kicks;	  /* eventfd writes of application threads to wake it */
	uint64_t ack_holds; /* small reads of publisher acks after which it held the next
			     * read back (read_hold_us); a stream of deliveries held:
			     * salvo_consume_stats.stream_holds */
} salvo_io_stats;

SALVO_API void salvo_client_io_stats(salvo_client *c, salvo_io_stats *st);

/*
 * Statistics for monitoring, in two forms built from one snapshot of the client: every
 * figure above, plus the connection's state, endpoint, reconnections and time blocked.
 * docs/statistics.md lists each field and metric.
 *
 * A JSON document per interval: with the configuration key statistics.interval_ms set
 * (0, the default, is off) and a callback registered here, salvo_client_poll_event runs
 * fn once per interval on the thread that calls it (a waiting call wakes when a
 * document is due; an application that does not otherwise poll events runs a thread
 * that does), never on salvo's I/O thread. json (len bytes, NUL-terminated) is valid
 * during the call only. One call at a time per client, even with several pollers.
 * Counters are totals since the client was created; latency percentiles are of the
 * outcomes that came during the interval. Returns 0, or SALVO_ERR_INVALID_ARGUMENT
 * without conf (fn NULL removes the callback).
 */
typedef void (*salvo_stats_fn)(salvo_client *c, const char *json, size_t len, void *arg);
SALVO_API int salvo_conf_set_stats_cb(salvo_conf *conf, salvo_stats_fn fn, void *arg);

/*
 * The Prometheus text exposition format (version 0.0.4) of the same figures: counters
 * end in _total, the confirm latency is a histogram in seconds, and every series has a
 * connection label (the configuration key connection_name, else "salvo"), publishers'
 * series a channel label, consumers' a channel and a consumer (tag) label. Writes at most
 * len bytes into buf, NUL-terminated when len > 0, and returns the length of the whole
 * text (as snprintf): when that is len or more, call again with a larger buffer. Any
 * thread; takes the client's statistics lock briefly. salvo_stats_prometheus_clients does
 * the same for n clients in one text (each metric's lines together, as the format
 * requires; give the clients distinct connection_names).
 */
SALVO_API size_t salvo_stats_prometheus(salvo_client *c, char *buf, size_t len);
SALVO_API size_t salvo_stats_prometheus_clients(salvo_client *const *clients, size_t n,
						char *buf, size_t len);

/*
 * A publisher per thread for code that does not own one: salvo_publisher_pool_get returns
 * the calling thread's publisher, creating it (opts as given to the pool) on first use; a
 * publisher left by a thread that exited is reused. Thread-safe. Destroy closes them all;
 * only after every thread has stopped publishing.
 */
typedef struct salvo_publisher_pool salvo_publisher_pool;

SALVO_API int salvo_publisher_pool_new(salvo_client *c, const salvo_publisher_opts *opts,
				       salvo_publisher_pool **out, salvo_error *err);
SALVO_API int salvo_publisher_pool_get(salvo_publisher_pool *pool, salvo_publisher **out,
				       salvo_error *err);
/*
 * Publish m on the calling thread's publisher of the pool (made on first use): a publish
 * any thread may call, lock-free once the thread has its publisher (a thread-specific load
 * and salvo_publish_msg). Returns what salvo_publisher_pool_get or salvo_publish_msg
 * returns; *seq (may be NULL) is the sequence number on that thread's publisher. With
 * async confirms, outcomes are delivered on each thread by its own publishes, polls and
 * waits (salvo_publisher_pool_get gives the publisher to poll).
 */
SALVO_API int salvo_publisher_pool_publish(salvo_publisher_pool *pool, const salvo_msg *m,
					   int timeout_ms, uint64_t *seq, salvo_error *err);
SALVO_API int salvo_publisher_pool_destroy(salvo_publisher_pool *pool, int timeout_ms,
					   salvo_error *err);

/*
 * The channel a publisher sends on, for the channel-mode methods below: a best-effort
 * publisher's channel put in tx mode publishes in transactions. The publisher owns it:
 * do not close it. salvo_tx_commit and salvo_tx_rollback go out ahead of messages still
 * in the publisher's ring: call salvo_publisher_flush first. A reconnection does not
 * restore tx mode. Once this has been called, a channel error closes the publisher for
 * good (as SALVO_PUBLISHER_NO_REOPEN): reopening would free the channel returned here.
 * Publisher's thread (it claims nothing; call it between the publisher's calls).
 */
SALVO_API salvo_channel *salvo_publisher_channel(salvo_publisher *p);

/* Channel modes. confirm.select on a channel in tx mode, or the reverse, is refused by the
 * broker with 406 PRECONDITION_FAILED. */
SALVO_API int salvo_confirm_select(salvo_channel *ch, salvo_error *err);
SALVO_API int salvo_tx_select(salvo_channel *ch, salvo_error *err);
SALVO_API int salvo_tx_commit(salvo_channel *ch, salvo_error *err);
SALVO_API int salvo_tx_rollback(salvo_channel *ch, salvo_error *err);

/*
 * Connection pools: N clients made from one configuration, all connected before
 * salvo_pool_new returns, handed out round-robin (nucleon's "publish" and "listen" pools).
 * A pool owns its clients: use them (channels, publishers, consumers, listeners), but do
 * not close or destroy them; salvo_pool_destroy does.
 */
typedef struct salvo_pool salvo_pool;

#define SALVO_POOL_MAX 64 /* connections in one pool */

/*
 * Open size connections (1..SALVO_POOL_MAX) with conf, one after another, on the calling
 * thread (each as salvo_client_new, on-connect hooks included). Connection i (0-based) is
 * salvo_client_new_at(conf, i): it tries endpoint i mod n first, then the others in order,
 * so the pool is spread over the endpoints in turn (over their shuffled order, with
 * endpoints.shuffle), and an endpoint that is down moves its connections to the next
 * ones. When conf has a
 * connection_name, connection i (1-based) is named "<name>#<i>", so that the broker's
 * connection list tells them apart. conf is copied; the caller keeps it. Returns 0 with
 * *out set; SALVO_ERR_INVALID_ARGUMENT (a NULL argument, size out of range, a name too
 * long for its suffix); or the first failing connection's error (err->text says which),
 * after closing those already open. Any thread; blocks.
 */
SALVO_API int salvo_pool_new(const salvo_conf *conf, size_t size, salvo_pool **out,
			     salvo_error *err);

/*
 * Read section of the INI-style file at path into conf. The format (README.md,
 * "Configuration files"):
 *
 *	# comments start with '#' or ';' on their own line
 *	[publish]
 *	uri = amqp://guest:guest@localhost:5672/
 *	uri = amqp://guest:guest@standby:5672/
 *	pool_size = 4
 *	heartbeat = 30
 *
 * A section holds "key = value" lines: any key of salvo_conf_set, and pool_size
 * (1..SALVO_POOL_MAX, default 1; stored in *pool_size, which may be NULL). Blanks around
 * keys and values are dropped; a value runs to the end of its line (no inline comments,
 * quotes or escapes). The first uri is applied first, then the failover endpoints, then
 * the other keys in the order written, so user, password and vhost lines override the
 * URI's wherever they stand. A repeated uri is a failover endpoint (as uri.add): it may
 * give the first uri's user, password and vhost again or leave them out, but not others,
 * nor query parameters. A key given twice in a section is an error (but uri, uri.add).
 *
 * The whole file is checked, every section, not only the one asked for: a typo in
 * another section is reported now rather than when that section is used. Limits: 256 KiB
 * per file, 8192 bytes per line, 64 sections, 64 keys per section, names of 64 bytes.
 *
 * Returns 0 with conf updated; SALVO_ERR_INVALID_ARGUMENT with conf unchanged and err->text
 * "path:line: why" for a malformed line, an unknown key, a bad value (salvo_conf_set's
 * reason, which never shows a password), a duplicate section or key, a key outside any section,
 * an overlong line, or "path: no section [name]"; SALVO_ERR_IO when the file cannot be
 * read; SALVO_ERR_LIMIT when it is larger than 256 KiB; SALVO_ERR_NO_MEMORY. Any thread
 * (conf as for salvo_conf_set).
 */
SALVO_API int salvo_conf_load_file(salvo_conf *conf, const char *path, const char *section,
				   size_t *pool_size, salvo_error *err);

/*
 * salvo_conf_load_file on a copy of base (NULL: the defaults; its on-connect hooks are
 * kept, the way to give a file's pool its topology hooks), then salvo_pool_new with the
 * section's pool_size. Returns either's error.
 */
SALVO_API int salvo_pool_new_from_file(const char *path, const char *section,
				       const salvo_conf *base, salvo_pool **out,
				       salvo_error *err);

/*
 * The next client, round-robin: call k returns client k mod size. Any thread, lock-free
 * (one atomic increment). NULL when pool is NULL. The client stays the pool's.
 */
SALVO_API salvo_client *salvo_pool_get(salvo_pool *pool);

/* Client i (0-based) of the pool, or NULL when i is out of range. Any thread. */
SALVO_API salvo_client *salvo_pool_client(salvo_pool *pool, size_t i);

/* The number of connections; 0 for NULL. Any thread. */
SALVO_API size_t salvo_pool_size(const salvo_pool *pool);

/*
 * Close every connection (salvo_client_close, at most timeout_ms each), free them and the
 * pool. Call it once, after every channel, publisher, consumer and listener made on the
 * pool's clients is closed. Returns 0 or the first close's error (the others are closed
 * all the same). NULL is ignored (returns 0).
 */
SALVO_API int salvo_pool_destroy(salvo_pool *pool, int timeout_ms, salvo_error *err);

/*
 * Listeners: a queue and a callback, run on a thread of the listener's own (nucleon's
 * register_and_spawn_amqp_listener). The listener opens a channel, sets a prefetch,
 * consumes the queue and runs the callback for each message, then settles it as the
 * callback says. Its consumer is not recorded for topology recovery (nor is what its setup
 * hook and declare make), so it ends with a lost connection; when its consumer ends (the
 * connection lost and recovered, its channel closed by an error, the broker's cancel) the
 * listener waits for the connection and makes a new one: it runs its setup hook again,
 * declares the queue again if asked, and consumes again. It ends by itself only when the
 * client has closed for good (reconnection off, or given up).
 *
 * On a stream (x-queue-type stream: deliveries carry their offset, see
 * salvo_message_stream_offset) the listener resumes where it stopped, when it knows the queue
 * is one: opts.stream is set, or set by itself when consume_arguments give x-stream-offset (a
 * stream consumer should, to say where it starts) or declare_arguments give x-queue-type
 * "stream". A message's own headers never decide it (a message copied from a stream into
 * another queue keeps x-stream-offset), so a listener on any other queue settles as the
 * callback says. It remembers the position of the last delivery it handed to the callback
 * (the offset, and the record when an envelope is split), and every consume after the first
 * starts just past it: with the consume argument x-stream-offset set to that offset + 1 (or
 * to the offset itself when records of that envelope were not handed out yet, skipping those
 * that were: salvo_listener_stats.stream_skipped), in place of the caller's; RabbitMQ starts
 * exactly there. So a reconnection repeats nothing the callback had and loses nothing it had
 * not: deliveries received and not yet handed out when the consumer ended come again. Until a
 * first delivery is handed out, each consume uses the caller's arguments as they are ("next"
 * then starts at the stream's end again). A stream neither requeues nor dead-letters, and
 * takes acks only (RabbitMQ 3.10 closes the connection with 540 NOT_IMPLEMENTED over a nack
 * or reject of a stream's delivery): the listener acks a stream's delivery for REQUEUE and
 * REJECT too (counted as requeued and rejected), the ack being only credit there; it is not
 * delivered again, and the position moves past it. A callback that settles a stream's
 * delivery itself (SETTLED, KEEP) must ack it. Offsets below the stream's retention are gone:
 * the broker starts at its first. The position belongs to the log it came from: a stream
 * deleted and declared again under the same name numbers its messages from 0 again, and a
 * listener resuming on it skips the new log's offsets below its position (make a new listener
 * instead). A stream listener's deliveries without x-stream-offset (none come from RabbitMQ)
 * are handed out without moving the position, and settled with acks like the others.
 */
typedef struct salvo_listener salvo_listener;

/* What the listener does with a message once the callback returns. */
typedef enum salvo_listener_action {
	SALVO_LISTENER_ACK = 0,	 /* ack it */
	SALVO_LISTENER_REQUEUE,	 /* nack with requeue: it is delivered again */
	SALVO_LISTENER_REJECT,	 /* reject without requeue: dropped or dead-lettered */
	SALVO_LISTENER_SETTLED,	 /* the callback acked, nacked or rejected it itself */
	/* The callback keeps the message (hands it to another thread): that code settles it
	 * (salvo_message_ack, ...: any thread) and destroys it. */
	SALVO_LISTENER_KEEP,
} salvo_listener_action;

/* Called on the listener's thread with a message it may read until it returns (or keep:
 * SALVO_LISTENER_KEEP). With SALVO_CONSUME_NO_ACK the action is ignored (but KEEP). */
typedef salvo_listener_action (*salvo_listener_fn)(salvo_message *m, void *arg);

typedef struct salvo_listener_opts {
	uint16_t prefetch;	/* basic.qos prefetch_count; 0: 64 (unused with NO_ACK) */
	unsigned consume_flags; /* SALVO_CONSUME_*: NO_ACK, EXCLUSIVE, RAW_ENVELOPES, STREAM */
	/* queue.declare(queue, declare_flags) before each consume (SALVO_DURABLE, ...). */
	bool declare;
	unsigned declare_flags;
	/* Run before each consume (the first and each after a reconnection), on the thread
	 * making the consumer, with the listener's client: declare exchanges and bindings the
	 * queue needs. An on-connect hook for this listener: it runs before the basic.consume,
	 * which a client's own hooks (on another thread) would race. NULL: none. A failure is
	 * handled as the consume's would be. */
	salvo_on_connect_fn setup;
	void *setup_arg;
	/* queue.declare's arguments when declare is set (x-queue-type, x-delivery-limit,
	 * x-single-active-consumer, ...); NULL: none. */
	const salvo_table *declare_arguments;
	/* basic.consume's arguments (x-stream-offset, x-priority, ...); NULL: none. A
	 * stream listener replaces x-stream-offset when it resumes (above). Both tables are
	 * copied by salvo_listener_new: the caller may change or free them after it returns.
	 * A field array (salvo_array_new) is refused (SALVO_ERR_INVALID_ARGUMENT). */
	const salvo_table *consume_arguments;
	/* true: the queue is a stream (above): resume from the position, and acks only
	 * (its consumer has SALVO_CONSUME_STREAM). Also in effect, whatever this says, when
	 * consume_flags has SALVO_CONSUME_STREAM, consume_arguments give x-stream-offset or
	 * declare_arguments give x-queue-type "stream". */
	bool stream;
} salvo_listener_opts;

/*
 * Start listening to queue (not "") on c: setup hook, declare, qos and basic.consume run
 * on the calling thread, so their errors come back here (a missing queue: 404, with
 * err->kind SALVO_ERROR_CHANNEL); then the listener's thread takes over and on_message
 * runs there. opts NULL: the defaults (prefetch 64, acks, no declare). Returns 0 with *out
 * set, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERR_NO_MEMORY, or the broker's error. Any thread;
 * blocks for the consume's round trips.
 */
SALVO_API int salvo_listener_new(salvo_client *c, const char *queue, salvo_listener_fn on_message,
				 void *arg, const salvo_listener_opts *opts, salvo_listener **out,
				 salvo_error *err);

/*
 * Stop gracefully and wait at most timeout_ms: the listener lets the callback in progress
 * return and settles its message, sends basic.cancel, gives back the messages it had
 * received but not handed to the callback (unacked: the broker requeues them when the
 * channel closes; with NO_ACK they are lost), closes its channel and ends its thread. This
 * takes two round trips to the broker after the callback returns. Returns 0 once stopped;
 * the error that ended the listener, if the client had closed (then at once);
 * SALVO_ERR_TIMEOUT while the listener is still finishing (a long callback, or a
 * synchronous method waiting for a reconnection: call stop again, or destroy, which
 * waits). Any thread but the listener's own (a callback must not stop its listener).
 */
SALVO_API int salvo_listener_stop(salvo_listener *l, int timeout_ms, salvo_error *err);

/* Stop (waiting as long as it takes) and free the listener. Before its client is closed.
 * NULL is ignored. */
SALVO_API void salvo_listener_destroy(salvo_listener *l);

/* Counters, readable from any thread at any time. */
typedef struct salvo_listener_stats {
	uint64_t received;	/* messages handed to the callback */
	uint64_t acked, requeued, rejected, kept; /* settled by the listener, or kept */
	uint64_t settle_errors; /* settles refused (the channel had closed meanwhile) */
	uint64_t restarts;	/* consumers made again after the first */
	salvo_error last_error; /* why the last consumer ended or could not be made */
	/* Fields added since are appended here (source compatibility: see the top of this
	 * header; a program is rebuilt against the salvo.h of the library it runs with). */
	uint64_t stream_skipped; /* a stream's deliveries at the resume position that were
				  * handed out already (records of an envelope), sent again
				  * and acked without the callback */
} salvo_listener_stats;

SALVO_API void salvo_listener_get_stats(salvo_listener *l, salvo_listener_stats *st);

/*
 * RPC over RabbitMQ's direct reply-to (amq.rabbitmq.reply-to): a request is published with
 * reply_to set to that pseudo-queue and a correlation id, and the server's reply comes
 * straight back on the channel that published it, with no reply queue declared. The
 * broker requires the reply consumer (no-ack) and the publishes on one channel: an RPC
 * client owns a publisher (best effort) and a consumer of amq.rabbitmq.reply-to on the
 * publisher's channel, and a thread of its own that hands each reply to the call waiting
 * for it.
 *
 * Many calls may be in flight at once, from any number of threads: each call publishes
 * under a short lock (a publisher is used by one thread at a time) and then waits for its
 * own reply, matched by the correlation id salvo gives it ("salvo-rpc-<pid>-<n>-<seq>",
 * unique per RPC client). A reply with a correlation id this RPC client issued, whose call
 * is no longer waiting (it timed out, failed, or was answered already), is dropped and
 * counted as late; a reply with any other correlation id, or none, is dropped and counted
 * as unknown. Neither reaches the application.
 *
 * The reply consumer ends with the connection (and with its channel: a channel error the
 * broker raises over a request, such as 404 for a missing exchange, closes the channel the
 * calls share). Every call in flight then fails at once with SALVO_ERR_CLOSED (the
 * broker's reply code, if any, in err->reply_code: 320, 404, ...) and a text saying the
 * connection (or channel) was lost and the reply cannot come; the RPC client makes a new
 * publisher and reply consumer once the client is connected again
 * (SALVO_CONSUME_NO_RECOVERY: topology recovery leaves it to the RPC client), and calls
 * made meanwhile wait for it within their timeout. When the client closes for good, calls
 * return its error.
 *
 * A request nobody can receive (no queue bound to its routing key) waits for its timeout:
 * best effort reports no returns to the caller, so SALVO_MSG_MANDATORY only has the broker
 * return it, counted in salvo_client_stats (returned).
 */
typedef struct salvo_rpc salvo_rpc;

typedef struct salvo_rpc_opts {
	/* Most calls in flight at once; a call beyond it waits (within its timeout) for one
	 * to end. 0: 1024. */
	size_t max_calls;
} salvo_rpc_opts;

/*
 * Make an RPC client on c: its publisher, the reply consumer on the publisher's channel
 * (both on the calling thread, so the broker's refusal comes back here) and its thread.
 * opts NULL: the defaults. Returns 0 with *out set, SALVO_ERR_INVALID_ARGUMENT (c or out
 * NULL), SALVO_ERR_NO_MEMORY, or the publisher's or consume's error. Any thread; blocks for
 * the round trips.
 */
SALVO_API int salvo_rpc_new(salvo_client *c, const salvo_rpc_opts *opts, salvo_rpc **out,
			    salvo_error *err);

/*
 * Publish request (its exchange, routing key, body, flags and properties) with reply_to
 * amq.rabbitmq.reply-to and a correlation id of salvo's, and wait for the reply: at most
 * timeout_ms in all (> 0, or SALVO_FOREVER) for a free place among max_calls, for a reply
 * consumer after a reconnection, for room in the publisher's ring and for the reply.
 * request->props may not set correlation_id or reply_to, which are salvo's: refused
 * rather than silently replaced. Any thread, concurrently with other calls.
 *
 * Returns 0 with *reply set (the caller owns it: salvo_message_destroy; it was received
 * no-ack, so it is not settled); SALVO_ERR_TIMEOUT (no reply in time: a reply that comes
 * later is dropped and counted as late); SALVO_ERR_CLOSED when the connection or channel
 * was lost with the call in flight (err->text says the reply cannot come; the next call
 * waits for the RPC client's recovery), or when the RPC client or the client is closed
 * (the client's error when it closed for good); SALVO_ERR_INVALID_ARGUMENT (rpc, request,
 * a routing key or reply NULL; timeout 0 or below SALVO_FOREVER; correlation_id or
 * reply_to given; what salvo_publish_msg refuses, such as a request larger than the
 * ring); or another error salvo_publish_msg returns. *reply is NULL on failure.
 */
SALVO_API int salvo_rpc_call(salvo_rpc *rpc, const salvo_msg *request, int timeout_ms,
			     salvo_message **reply, salvo_error *err);

/*
 * Stop the RPC client: calls in flight and waiting fail with SALVO_ERR_CLOSED ("the RPC
 * client was closed"), and so does every later call; its thread, consumer and publisher
 * end (the publisher's close waits at most timeout_ms). Returns 0, or the publisher
 * close's error. Any thread; a second close returns 0 at once. Before salvo_client_destroy
 * (after salvo_client_close is fine: calls then return the client's error).
 */
SALVO_API int salvo_rpc_close(salvo_rpc *rpc, int timeout_ms, salvo_error *err);

/* salvo_rpc_close (5 s) if not closed yet, then free the RPC client: after every call on
 * it has returned. NULL is ignored. */
SALVO_API void salvo_rpc_destroy(salvo_rpc *rpc);

/* Counters, readable from any thread while the RPC client exists. */
typedef struct salvo_rpc_stats {
	uint64_t calls;	   /* calls that got a correlation id */
	uint64_t replies;  /* calls answered */
	uint64_t timeouts; /* calls that returned SALVO_ERR_TIMEOUT after getting an id */
	uint64_t failed;   /* calls ended otherwise: the loss, a publish refused, a close */
	uint64_t late;	   /* replies dropped: their call was no longer waiting */
	uint64_t unknown;  /* replies dropped: a correlation id this client did not issue */
	uint64_t in_flight; /* calls waiting for their reply now */
	uint64_t restarts;  /* reply consumers made again after the first (recoveries) */
	salvo_error last_error; /* why the last reply consumer ended or could not be made */
} salvo_rpc_stats;

SALVO_API void salvo_rpc_get_stats(salvo_rpc *rpc, salvo_rpc_stats *st);

/*
 * The server's side of an RPC: publish reply on p to the default exchange with the
 * routing key request's reply_to, and with request's correlation_id (absent if it had
 * none), e.g. from a listener's callback, on a publisher that callback owns. reply gives
 * body, flags and properties; its exchange and routing_key must be NULL, and its props
 * may not set correlation_id (they are the request's). Waits as salvo_publish_msg does.
 * Returns 0, SALVO_ERR_INVALID_ARGUMENT (a NULL argument, a request without reply_to,
 * exchange, routing_key or correlation_id given), or what salvo_publish_msg returns.
 * p's thread (a listener's thread for a publisher only its callback uses).
 */
SALVO_API int salvo_message_reply(const salvo_message *request, salvo_publisher *p,
				  const salvo_msg *reply, int timeout_ms, salvo_error *err);

#ifdef __cplusplus
}
#endif

#endif
