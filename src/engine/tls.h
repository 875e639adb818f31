/* SPDX-License-Identifier: MIT */
/*
 * TLS over OpenSSL 3 memory BIOs: the caller moves ciphertext between the socket and the
 * TLS object, so the socket stays with whoever owns it (the handshake code in connect.c,
 * then the io_uring I/O thread, through transport.c). See tls.c for the design.
 *
 * Every TLS failure is SALVO_ERR_TLS with kind SALVO_ERROR_LOCAL (the caller may report a
 * data path failure as the connection's end) and OpenSSL's reason in the text.
 *
 * A struct sv_tls is used by one thread at a time (OpenSSL's SSL objects are not
 * thread-safe); it may move between threads with proper hand-over (e.g. pthread_create).
 *
 * Internal to libsalvo.
 */
#ifndef SALVO_ENGINE_TLS_H
#define SALVO_ENGINE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "salvo.h"

struct salvo_conf;
struct sv_log;

/* What a TLS context is built from. Strings are borrowed for the calls that take them. */
struct sv_tls_settings {
	const char *cacertfile;	 /* PEM CA bundle; NULL or "": the system store */
	const char *certfile;	 /* PEM client certificate chain; NULL or "": none */
	const char *keyfile;	 /* PEM private key; NULL or "": taken from certfile */
	bool verify_none;	 /* skip certificate and host name checks (warned once) */
	const char *server_name; /* SNI and name to verify; NULL or "": the host */
	bool sni_disabled;	 /* send no SNI ("server_name_indication=disable") */
	struct sv_log *log;	 /* where the verify_none warning goes; NULL: stderr */
};

/* The TLS part of a configuration; the strings point into conf. */
void sv_tls_settings_from_conf(const struct salvo_conf *conf, struct sv_tls_settings *out);

struct sv_tls;

/*
 * A client-side TLS connection to host (a name, or an IPv4/IPv6 literal without brackets;
 * peer, "host:port", only names it in messages) with a context built from s: TLS 1.2
 * minimum; unless s->verify_none, the peer's chain is checked against the CA file or the
 * system store and its name against s->server_name or host (an IP literal against the
 * certificate's IP addresses); SNI is sent for names unless disabled. With verify_none a
 * warning is logged to s->log (sv_log_verify_none: once per process on stderr, once per
 * logger with a callback). Any thread.
 *
 * Returns 0 with *out set, or with err filled: SALVO_ERR_INVALID_ARGUMENT (keyfile without
 * certfile), SALVO_ERR_TLS (a file that does not load, a key that does not match the
 * certificate: the text names the file and OpenSSL's reason), SALVO_ERR_NO_MEMORY.
 */
int sv_tls_new(const struct sv_tls_settings *s, const char *host, const char *peer,
	       struct sv_tls **out, salvo_error *err);

/* NULL is ignored. Sends nothing: see sv_tls_close_notify. */
void sv_tls_free(struct sv_tls *t);

/* Ciphertext received from the socket, to be decrypted. 0 or SALVO_ERR_NO_MEMORY. */
int sv_tls_feed(struct sv_tls *t, const void *buf, size_t len);

/* Ciphertext bytes waiting to be sent (handshake messages, records, alerts). */
size_t sv_tls_pending(const struct sv_tls *t);

/* Move up to cap bytes of waiting ciphertext into buf; returns how many. The bytes are
 * copied, so the caller's buffer is what the kernel reads (it does not move). */
size_t sv_tls_take(struct sv_tls *t, void *buf, size_t cap);

#define SV_TLS_WANT_READ 1 /* feed more ciphertext (after sending what is pending) */

/*
 * Advance the handshake with the ciphertext fed so far. Returns 0 when it is complete and
 * the peer verified, SV_TLS_WANT_READ, or SALVO_ERR_TLS with OpenSSL's reason
 * in err->text ("certificate verify failed: hostname mismatch", "unsupported protocol",
 * "tlsv1 alert unknown ca", ...), prefixed by "TLS handshake with <peer> failed: ". After
 * a failure the pending ciphertext may hold an alert worth sending. No plaintext can be
 * written before this returns 0.
 */
int sv_tls_handshake(struct sv_tls *t, salvo_error *err);

/*
 * Decrypt into buf; *got is the plaintext produced (0: feed more ciphertext). Returns 0,
 * SALVO_ERR_CLOSED when the peer sent close_notify (err untouched), or SALVO_ERR_TLS. An
 * error behind decrypted plaintext is returned by the next call, and then by every call
 * (sticky). Reading may queue ciphertext to send (a TLS 1.3 key update answer): check
 * sv_tls_pending afterwards.
 */
int sv_tls_read(struct sv_tls *t, void *buf, size_t cap, size_t *got, salvo_error *err);

/*
 * Encrypt up to max bytes of plaintext gathered from iov[0..iovcnt), in as few records as
 * possible: small pieces are packed together into full 16 KiB records, and whole records'
 * worth of a large piece are encrypted in place. *taken is the number of plaintext bytes
 * consumed (all of them unless max is smaller than their sum); the records wait in the
 * pending ciphertext. Returns 0 or the sticky error, as for sv_tls_read: SALVO_ERR_TLS
 * (an OpenSSL failure, out of memory included), or SALVO_ERR_CLOSED once a read has met
 * the peer's close_notify. Only after the handshake.
 */
int sv_tls_write(struct sv_tls *t, const struct iovec *iov, int iovcnt, size_t max, size_t *taken,
		 salvo_error *err);

/* Queue a close_notify alert (sent by the caller with the other pending ciphertext). */
void sv_tls_close_notify(struct sv_tls *t);

#endif
