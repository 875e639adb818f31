/* SPDX-License-Identifier: MIT */
/*
 * Internals of the configuration object (salvo_conf), and what its URIs mean. The engine
 * reads struct salvo_conf directly; applications only see the opaque handle.
 *
 * Every string lives in a fixed buffer sized by its limit, so a conf is one allocation,
 * setting a value never allocates (hence never fails for memory), and dup is a copy.
 */
#ifndef SALVO_CONF_INTERNAL_H
#define SALVO_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "salvo.h"
#include "uri.h"

#define SV_HOST_MAX	  255  /* a DNS name is at most 253 */
#define SV_NAME_MAX	  255  /* user, vhost, connection_name: AMQP short strings */
#define SV_PASSWORD_MAX	  4096 /* room for an OAuth 2 token sent as the password */
#define SV_ENDPOINTS_MAX  16   /* "uri" plus up to 15 "uri.add" failover endpoints */
#define SV_HOOKS_MAX      8    /* on-connect hooks per configuration */
#define SV_PATH_MAX	  4095 /* cacertfile, certfile, keyfile */
#define SV_PORT_AMQP	  5672
#define SV_PORT_AMQPS	  5671

struct sv_endpoint {
	char host[SV_HOST_MAX + 1]; /* a name or address; IPv6 without brackets */
	uint32_t port;		    /* 1..65535 */
	bool tls;		    /* amqps: TLS from the first byte */
};

/* The values of the "verify" and "auth_mechanism" keys, in the order of their names in
 * conf.c's table. */
enum sv_verify { SV_VERIFY_PEER, SV_VERIFY_NONE };
/* "log.level": the index of its value; the level is SALVO_LOG_ERR + index. */
#define SV_LOG_LEVEL_BASE SALVO_LOG_ERR
enum sv_auth { SV_AUTH_PLAIN, SV_AUTH_EXTERNAL, SV_AUTH_AMQPLAIN };

struct salvo_conf {
	/* endpoints[0] is the primary ("uri", "host", "port"); the rest come from "uri.add"
	 * and are tried in order on failover. There is always at least one. */
	struct sv_endpoint endpoints[SV_ENDPOINTS_MAX];
	size_t n_endpoints;
	char user[SV_NAME_MAX + 1];
	char password[SV_PASSWORD_MAX + 1]; /* wiped on destroy */
	char vhost[SV_NAME_MAX + 1];
	char connection_name[SV_NAME_MAX + 1]; /* empty: none sent */
	uint32_t heartbeat;		       /* seconds; 0 disables */
	uint32_t connection_timeout;	       /* milliseconds */
	uint32_t channel_max;
	uint32_t frame_max;	   /* bytes, never 0 ("no limit" is refused) */
	uint32_t rpc_timeout;	   /* milliseconds */
	uint32_t ring_size;	   /* bytes, a power of two */
	uint32_t window;	   /* messages, a power of two */
	uint32_t io_uring_entries; /* the kernel rounds it up to a power of two */
	uint32_t batch_records;	   /* publisher.batch.*: 0 no batching */
	uint32_t batch_bytes, batch_linger_us, batch_compression, batch_level;
	uint32_t returns_max_bytes; /* publisher.returns.max_bytes */
	/* TLS, used by amqps:// endpoints. Empty strings: not set. */
	char cacertfile[SV_PATH_MAX + 1]; /* empty: the system CA store */
	char certfile[SV_PATH_MAX + 1];
	char keyfile[SV_PATH_MAX + 1];		      /* empty: the key is in certfile */
	uint32_t verify;			      /* enum sv_verify */
	char server_name_indication[SV_HOST_MAX + 1]; /* empty: the host; "disable": no SNI */
	uint32_t auth_mechanism;		      /* enum sv_auth */
	uint32_t endpoints_shuffle; /* 0 or 1 */
	/* The order endpoints.shuffle gives is drawn from this: set by salvo_conf_new, kept by
	 * salvo_conf_dup, so every client and pool made from one configuration shares it. */
	uint64_t shuffle_seed;
	uint32_t reconnect;	   /* 0 or 1 */
	uint32_t reconnect_initial_delay, reconnect_max_delay; /* milliseconds */
	uint32_t reconnect_max_attempts;		       /* 0: for ever */
	uint32_t blocked_timeout;			       /* milliseconds; 0: none */
	uint32_t consumer_buffer_bytes; /* deliveries queued before reads are held */
	uint32_t read_hold_us; /* longest a read is held back to batch wake-ups; 0: never */
	uint32_t consumer_batch_max_bytes; /* memory one split envelope may take */
	uint32_t statistics_interval_ms;   /* 0: no statistics documents */
	uint32_t topology_recovery;	   /* 0 or 1 */
	uint32_t topology_max_entities;	   /* topology_recovery.max_entities */
	salvo_topology_filter_fn topology_filter; /* salvo_conf_set_topology_filter */
	void *topology_filter_arg;
	salvo_stats_fn stats_fn;	   /* salvo_conf_set_stats_cb */
	void *stats_arg;
	uint32_t log_level; /* "log.level": SALVO_LOG_* less SV_LOG_LEVEL_BASE */
	salvo_log_fn log_fn; /* salvo_conf_set_log_cb; NULL: stderr */
	void *log_arg;
	salvo_credentials_fn creds_fn; /* salvo_conf_set_credentials_cb; NULL: none */
	void *creds_arg;
	/* On-connect hooks (salvo_conf_add_on_connect), in order. */
	struct {
		salvo_on_connect_fn fn;
		void *arg;
	} hooks[SV_HOOKS_MAX];
	size_t n_hooks;
};

/*
 * An AMQP URI as a configuration reads it: the components (uri.h) and what they mean.
 * Absent parts take the URI spec's defaults (user and password "guest", host "localhost",
 * port 5672 for amqp and 5671 for amqps, vhost "/"). The strings point into parsed.buf or
 * at constants, so an sv_conf_uri must not be copied; it needs no freeing.
 */
struct sv_conf_uri {
	struct sv_uri parsed; /* as written: NULL where absent */
	bool tls;	      /* amqps */
	const char *host;
	uint32_t port;
	const char *user;
	const char *password;
	const char *vhost;
};

/*
 * Parse the NUL-terminated text as an AMQP URI and check every value against the key
 * table: the port (1..65535), each query parameter (a key a URI may set, given once, with
 * a value in that key's range) and the lengths of user, password, host and vhost. Stores
 * nothing, so the caller can apply the result all at once or not at all. Pure (no I/O, no
 * allocation); any thread. Returns 0, or SALVO_ERR_INVALID_ARGUMENT with a message in
 * errstr (which may be NULL). No message ever contains the password or a piece of it.
 */
int sv_conf_read_uri(const char *text, struct sv_conf_uri *out, char *errstr,
		     size_t errstr_size);

/*
 * The rule for a failover endpoint's URI (uri.add, a configuration file's repeated uri):
 * the user and password it gives (both, when it gives a user) and the vhost it gives must
 * be those conf holds, and it has no query parameters. Returns 0, or
 * SALVO_ERR_INVALID_ARGUMENT with a message that starts with prefix and names the part
 * that differs (never showing a password).
 */
int sv_conf_check_failover(const salvo_conf *conf, const struct sv_conf_uri *u,
			   const char *prefix, char *errstr, size_t errstr_size);

/* Put ep[0..n) in an order drawn from seed (the same seed, the same order). Pure. */
void sv_endpoints_shuffle(struct sv_endpoint *ep, size_t n, uint64_t seed);
/* A seed that differs between processes and between calls (getrandom, else the clock). */
uint64_t sv_random_seed(void);

/* Parse [s, s + len) as a decimal number: digits only, no sign, no blanks; a value past
 * UINT64_MAX saturates there. Returns 0, or -1 if the text is not a number. */
int sv_parse_uint(const char *s, size_t len, uint64_t *out);

/*
 * salvo_conf_load_file on text already read: [text, text + len) is the file's contents and
 * path only names it in messages. Pure (no I/O): salvo_conf_load_file reads the file and
 * calls it; the tests call it directly.
 */
int sv_conf_load_text(salvo_conf *conf, const char *text, size_t len, const char *path,
		      const char *section, size_t *pool_size, salvo_error *err);

/* Format a message into errstr (NULL or size 0: none) and return SALVO_ERR_INVALID_ARGUMENT. */
int sv_conf_error(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
