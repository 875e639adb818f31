/* SPDX-License-Identifier: MIT */
/*
 * TLS over OpenSSL 3 memory BIOs.
 *
 * OpenSSL never sees the socket. Each connection has two memory BIOs: received ciphertext
 * is written into the read BIO (sv_tls_feed), and whatever OpenSSL wants to send
 * (handshake messages, records, alerts) accumulates in the write BIO until the caller
 * takes it (sv_tls_take) and sends it its own way. That is what lets the socket stay
 * owned by the io_uring loop: the loop submits recv/send on it as it does for plain TCP,
 * and only hands bytes to this file, which does no I/O and never blocks. The handshake in
 * connect.c drives the same object over a blocking-with-deadline socket.
 *
 * Batching survives encryption: sv_tls_write takes an iovec array (the I/O thread's
 * gather list of control frames and publisher spans) and packs it into full 16 KiB
 * records, copying small pieces into one staging record and encrypting record-sized runs
 * of large pieces in place, so a million 100-byte messages cost ~6,000 records, not a
 * million.
 *
 * Safe defaults, per the RabbitMQ TLS guide: TLS 1.2 minimum, peer verification against
 * the system store (or the CA file given), host name (or IP address) checked, SNI sent for
 * names. Turning verification off takes an explicit setting and logs a warning once.
 */
#include "tls.h"
#include "conf_internal.h"
#include "error.h"
#include "log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RECORD_MAX 16384 /* TLS's largest record plaintext */

struct sv_tls {
	SSL *ssl;
	BIO *rbio; /* ciphertext in: owned by ssl */
	BIO *wbio; /* ciphertext out: owned by ssl */
	/* The first error of the data path, returned by every later read and write. */
	int err_status;
	char err_text[sizeof((salvo_error *)0)->text];
	char peer[300];
	uint8_t stage[RECORD_MAX]; /* small pieces packed into one record */
};

void sv_tls_settings_from_conf(const struct salvo_conf *conf, struct sv_tls_settings *out)
{
	bool sni_off = strcmp(conf->server_name_indication, "disable") == 0;

	*out = (struct sv_tls_settings){
	    .cacertfile = conf->cacertfile,
	    .certfile = conf->certfile,
	    .keyfile = conf->keyfile,
	    .verify_none = conf->verify == SV_VERIFY_NONE,
	    .server_name = sni_off ? NULL : conf->server_name_indication,
	    .sni_disabled = sni_off,
	};
}

static bool empty(const char *s)
{
	return !s || !*s;
}

static bool ip_literal(const char *host)
{
	uint8_t addr[16];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/*
 * OpenSSL's reason for the failure just seen, e.g. "certificate verify failed: hostname
 * mismatch". The first queued error is the cause; the others, if any, are context. The
 * queue is per thread, so it is emptied here to leave nothing for an unrelated later call.
 */
static void reason(SSL *ssl, char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	ERR_clear_error();
	if (!e) {
		snprintf(buf, cap, "unexpected end of the TLS stream");
		return;
	}
	if (ERR_SYSTEM_ERROR(e))
		r = strerrordesc_np(ERR_GET_REASON(e));
	if (!r)
		r = "unknown OpenSSL error";
	if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
		snprintf(buf, cap, "%s", r);
		return;
	}
	switch (ERR_GET_REASON(e)) {
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		if (v != X509_V_OK) {
			snprintf(buf, cap, "%s: %s", r, X509_verify_cert_error_string(v));
			return;
		}
		break;
	/* We refused the server's version, or it refused all of ours. */
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		snprintf(buf, cap, "%s (salvo speaks TLS 1.2 or later)", r);
		return;
	}
	snprintf(buf, cap, "%s", r);
}

static int file_failed(salvo_error *err, const char *what, const char *path)
{
	char r[200];

	reason(NULL, r, sizeof r);
	return sv_error_set(err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL, "TLS %s %s: %s", what, path, r);
}

static int ctx_new(const struct sv_tls_settings *s, SSL_CTX **out, salvo_error *err)
{
	SSL_CTX *ctx = NULL;
	const char *key = empty(s->keyfile) ? s->certfile : s->keyfile;
	int rc = 0;

	if (empty(s->certfile) && !empty(s->keyfile))
		return sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
				    "keyfile is set but certfile is not");
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				    "out of memory for a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (s->verify_none) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		/* A connection without verification is worth one loud line, not one per
		 * reconnection. */
		sv_log_verify_none(s->log);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (!empty(s->cacertfile)) {
			if (SSL_CTX_load_verify_locations(ctx, s->cacertfile, NULL) != 1)
				rc = file_failed(err, "cacertfile", s->cacertfile);
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			rc = file_failed(err, "system CA store", "(OpenSSL default paths)");
		}
	}
	if (!rc && !empty(s->certfile)) {
		if (SSL_CTX_use_certificate_chain_file(ctx, s->certfile) != 1)
			rc = file_failed(err, "certfile", s->certfile);
		else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			rc = file_failed(err, "keyfile", key);
		else if (SSL_CTX_check_private_key(ctx) != 1)
			rc = file_failed(err, "keyfile", key);
	}
	if (rc) {
		SSL_CTX_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

/* Who the peer must be: a name (SNI, unless disabled or an address) or an address. */
static int set_identity(struct sv_tls *t, const struct sv_tls_settings *s, const char *host)
{
	const char *name = empty(s->server_name) ? host : s->server_name;
	bool ip = ip_literal(name);

	if (!ip && !s->sni_disabled && SSL_set_tlsext_host_name(t->ssl, name) != 1)
		return -1;
	if (s->verify_none)
		return 0;
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1 ? 0 : -1;
	SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(t->ssl, name) == 1 ? 0 : -1;
}

int sv_tls_new(const struct sv_tls_settings *s, const char *host, const char *peer,
	       struct sv_tls **out, salvo_error *err)
{
	SSL_CTX *ctx = NULL;
	struct sv_tls *t;
	char r[200];
	int rc;

	*out = NULL;
	rc = ctx_new(s, &ctx, err);
	if (rc)
		return rc;
	t = calloc(1, sizeof *t);
	if (!t) {
		SSL_CTX_free(ctx);
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				    "out of memory for a TLS connection");
	}
	t->ssl = SSL_new(ctx);
	/* The SSL holds its own reference to the context. */
	SSL_CTX_free(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
				    "out of memory for a TLS connection");
	}
	/* An empty read BIO means "wait for more", never end of stream. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_connect_state(t->ssl);
	snprintf(t->peer, sizeof t->peer, "%s", peer);
	if (set_identity(t, s, host)) {
		reason(NULL, r, sizeof r);
		sv_tls_free(t);
		return sv_error_set(err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL,
				    "TLS: cannot set the server name \"%.255s\": %s",
				    empty(s->server_name) ? host : s->server_name, r);
	}
	*out = t;
	return 0;
}

void sv_tls_free(struct sv_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

int sv_tls_feed(struct sv_tls *t, const void *buf, size_t len)
{
	size_t n;

	if (len && (!BIO_write_ex(t->rbio, buf, len, &n) || n != len)) {
		ERR_clear_error();
		return SALVO_ERR_NO_MEMORY;
	}
	return 0;
}

size_t sv_tls_pending(const struct sv_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t sv_tls_take(struct sv_tls *t, void *buf, size_t cap)
{
	size_t n = 0;

	if (cap && !BIO_read_ex(t->wbio, buf, cap, &n))
		n = 0;
	return n;
}

int sv_tls_handshake(struct sv_tls *t, salvo_error *err)
{
	char r[200];
	int ret = SSL_do_handshake(t->ssl);

	if (ret == 1) {
		/* SSL_VERIFY_PEER already failed the handshake on a bad chain or name; this
		 * only guards against a configuration that would let one through. */
		if (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER &&
		    (SSL_get_verify_result(t->ssl) != X509_V_OK ||
		     !SSL_get0_peer_certificate(t->ssl)))
			return sv_error_set(
			    err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL,
			    "TLS handshake with %s failed: the peer is not verified", t->peer);
		return 0;
	}
	if (SSL_get_error(t->ssl, ret) == SSL_ERROR_WANT_READ)
		return SV_TLS_WANT_READ;
	reason(t->ssl, r, sizeof r);
	return sv_error_set(err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL,
			    "TLS handshake with %s failed: %s", t->peer, r);
}

/* Record the data path's first failure, to return it from every later call. */
static int fail(struct sv_tls *t, int ret)
{
	char r[200];

	if (SSL_get_error(t->ssl, ret) == SSL_ERROR_ZERO_RETURN) {
		t->err_status = SALVO_ERR_CLOSED;
		return t->err_status;
	}
	reason(t->ssl, r, sizeof r);
	snprintf(t->err_text, sizeof t->err_text, "TLS error on the connection to %.100s: %.120s",
		 t->peer, r);
	t->err_status = SALVO_ERR_TLS;
	return t->err_status;
}

static int sticky(const struct sv_tls *t, salvo_error *err)
{
	if (t->err_status == SALVO_ERR_TLS)
		sv_error_set(err, SALVO_ERR_TLS, SALVO_ERROR_LOCAL, "%s", t->err_text);
	return t->err_status;
}

int sv_tls_read(struct sv_tls *t, void *buf, size_t cap, size_t *got, salvo_error *err)
{
	*got = 0;
	if (t->err_status)
		return sticky(t, err);
	while (*got < cap) {
		size_t n;
		int ret = SSL_read_ex(t->ssl, (uint8_t *)buf + *got, cap - *got, &n);

		if (ret == 1) {
			*got += n;
			continue;
		}
		if (SSL_get_error(t->ssl, ret) == SSL_ERROR_WANT_READ)
			break;
		fail(t, ret);
		/* The plaintext already decrypted goes first; the error comes next call. */
		return *got ? 0 : sticky(t, err);
	}
	return 0;
}

static int write_record(struct sv_tls *t, const void *p, size_t len, salvo_error *err)
{
	size_t n;
	int ret = SSL_write_ex(t->ssl, p, len, &n);

	/* A memory BIO grows instead of blocking, so a write is whole or fails. */
	if (ret == 1 && n == len)
		return 0;
	fail(t, ret);
	return sticky(t, err);
}

int sv_tls_write(struct sv_tls *t, const struct iovec *iov, int iovcnt, size_t max, size_t *taken,
		 salvo_error *err)
{
	size_t staged = 0;
	size_t total = 0;
	int rc = 0;

	*taken = 0;
	if (t->err_status)
		return sticky(t, err);
	for (int i = 0; i < iovcnt && total < max && !rc; i++) {
		const uint8_t *base = iov[i].iov_base;
		size_t off = 0;

		while (off < iov[i].iov_len && total < max && !rc) {
			size_t avail = iov[i].iov_len - off;
			size_t n;

			if (avail > max - total)
				avail = max - total;
			if (!staged && avail >= RECORD_MAX) {
				/* Whole records straight from the caller's memory. */
				n = avail - avail % RECORD_MAX;
				rc = write_record(t, base + off, n, err);
			} else {
				n = avail < RECORD_MAX - staged ? avail : RECORD_MAX - staged;
				memcpy(t->stage + staged, base + off, n);
				staged += n;
				if (staged == RECORD_MAX) {
					rc = write_record(t, t->stage, staged, err);
					staged = 0;
				}
			}
			off += n;
			total += n;
		}
	}
	if (!rc && staged)
		rc = write_record(t, t->stage, staged, err);
	if (!rc)
		*taken = total;
	return rc;
}

void sv_tls_close_notify(struct sv_tls *t)
{
	/* Only queues the alert: the peer's answer is not awaited (SSL_shutdown returns 0). */
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}
