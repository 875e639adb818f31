/* SPDX-License-Identifier: MIT */
/*
 * Establishing a connection: TCP connect, for amqps:// the TLS handshake, and the AMQP
 * 0-9-1 handshake (protocol header, start / start-ok, tune / tune-ok, open / open-ok), run
 * on the calling thread before the socket is handed to the I/O thread.
 *
 * Internal to libsalvo.
 */
#ifndef SALVO_ENGINE_CONNECT_H
#define SALVO_ENGINE_CONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include "conf_internal.h"
#include "salvo.h"
#include "tls.h"

/* The largest server properties a handshake can bring: connection.start must fit the
 * frame-min-size every peer accepts before tuning (connect.c reads no larger frame). */
#define SV_SERVER_PROPS_MAX 4096

struct sv_connect_params {
	const char *host; /* name or numeric address, IPv6 without brackets ("::1") */
	uint16_t port;
	const char *user;
	const char *password;
	const char *vhost; /* at most 255 bytes; "/" is RabbitMQ's default */
	/* What the client asks for in tune-ok; 0 means "no preference, take the server's". */
	uint16_t channel_max;
	uint32_t frame_max;
	uint16_t heartbeat;	     /* seconds */
	const char *connection_name; /* shown in the management UI; NULL or "" for none */
	int timeout_ms; /* > 0: one budget for name lookup, connecting and the handshake */
	bool tls;	/* amqps: TLS from the first byte, configured by tls_settings */
	struct sv_tls_settings tls_settings;
	/* The SASL mechanism: PLAIN, EXTERNAL (the client certificate) or AMQPLAIN. */
	enum sv_auth auth;
	/* With cancellable, the attempt ends with SALVO_ERR_CLOSED as soon as cancel_fd is
	 * readable (an eventfd written by a closing client); it is not read. */
	bool cancellable;
	int cancel_fd;
};

/* The connected socket and what the handshake settled. */
struct sv_session {
	int fd;			 /* non-blocking, close-on-exec, TCP_NODELAY; -1 after a failure */
	/* amqps: the established TLS connection, NULL for TCP. Whoever drives the socket next
	 * must move every byte through it, and first read the plaintext it may already hold:
	 * records can arrive together with the one carrying connection.open-ok. */
	struct sv_tls *tls;
	uint16_t channel_max;	 /* negotiated; 65535 when neither side set a limit */
	uint32_t frame_max;	 /* negotiated, envelope included; >= 4096, 131072 if unlimited */
	uint16_t heartbeat;	 /* negotiated seconds; 0 = heartbeats off */
	char server_product[64]; /* server properties, truncated, "" when absent */
	char server_version[32];
	/* The server's capabilities table; false when absent. */
	bool cap_publisher_confirms;
	bool cap_basic_nack;
	bool cap_connection_blocked;
	bool cap_authentication_failure_close;
	bool cap_consumer_cancel_notify;
	bool cap_exchange_exchange_bindings;
	/* connection.start's server-properties as received (a validated table's contents),
	 * for salvo_client_server_properties. */
	uint8_t server_props[SV_SERVER_PROPS_MAX];
	uint32_t server_props_len;
};

/*
 * Resolve p->host, connect to each address in turn, with p->tls run the TLS handshake
 * (nothing else is sent before the peer is verified), and perform the AMQP handshake with
 * SASL PLAIN (or EXTERNAL, or AMQPLAIN, as p->auth says), negotiating each tune value as
 * the lower of the two non-zero offers (or the one offer when the other is 0). Any thread;
 * blocks for at most p->timeout_ms, name lookup included: a host name is resolved by
 * getaddrinfo on a thread of its own, which the caller stops waiting for at the deadline
 * or, with p->cancellable, when cancel_fd becomes readable (the thread then finishes and
 * frees itself). An address literal resolves inline (no lookup); so does a name for
 * which no thread could be started, without a bound then.
 *
 * On success returns 0, fills s and clears err (which may be NULL); nothing past
 * connection.open-ok has been read from s->fd, since frames are read exactly (header, then
 * payload), so whatever the broker sends next is still in the socket for the I/O thread
 * (with TLS: in the socket or in s->tls, see above). On failure the socket is closed,
 * s->fd is -1, s->tls NULL, err is filled and the return value is:
 *   SALVO_ERR_INVALID_ARGUMENT  missing host, user, password or vhost; vhost over 255
 *                               bytes; timeout_ms <= 0; EXTERNAL without tls and a
 *                               certfile; keyfile without certfile
 *   SALVO_ERR_NO_MEMORY
 *   SALVO_ERR_TLS               (kind LOCAL) a CA, certificate or key file did not load;
 *                               the handshake failed: "TLS handshake with HOST:PORT
 *                               failed: " and OpenSSL's reason, e.g. "certificate verify
 *                               failed: unable to get local issuer certificate" (unknown
 *                               CA), "... hostname mismatch", "... certificate has
 *                               expired", "unsupported protocol" (a server below TLS 1.2),
 *                               "tlsv1 alert ..." (the server refused us); the server
 *                               closed the socket during the TLS handshake or answered in
 *                               plain AMQP; or a TLS error on the established connection
 *   SALVO_ERR_IO                resolution failed or every address refused (kind LOCAL;
 *                               the text names the last error), or the socket failed or
 *                               the server closed it mid-handshake (kind CONNECTION)
 *   SALVO_ERR_TIMEOUT           the deadline passed (during the lookup: "resolve HOST: no
 *                               answer within N ms")
 *   SALVO_ERR_CLOSED            p->cancel_fd became readable (kind LOCAL)
 *   SALVO_ERR_PROTOCOL          the server answered with another protocol version, or sent
 *                               a malformed or unexpected frame (salvo then sends
 *                               connection.close with 501/502/505/540, kept in reply_code)
 *   SALVO_ERR_UNSUPPORTED       the server does not offer the mechanism p->auth names
 *   a reply code                the broker sent connection.close (kind CONNECTION): 403
 *                               ACCESS_REFUSED for bad credentials, 530 NOT_ALLOWED for an
 *                               unknown vhost, ...; also 403 when the server drops the
 *                               socket right after start-ok, which is how brokers without
 *                               authentication_failure_close refuse a login
 * err->text never holds the password: if the server's reply text echoes it, each
 * occurrence is masked with '*'.
 */
int sv_connect(const struct sv_connect_params *p, struct sv_session *s, salvo_error *err);

/*
 * Close a session sv_connect established, on the calling thread, instead of handing it to
 * an I/O thread: send connection.close (reply_code, text), wait for close-ok (heartbeats
 * and other frames are skipped; a connection.close from the broker is answered), send
 * TLS close_notify, then close the socket and free the TLS connection (s->fd -1, s->tls
 * NULL) whatever happened. Blocks for at most timeout_ms. Returns 0 once close-ok (or the
 * broker's own close) arrived, or as sv_connect: SALVO_ERR_TIMEOUT, SALVO_ERR_IO,
 * SALVO_ERR_TLS, SALVO_ERR_PROTOCOL, with err filled.
 */
int sv_session_close(struct sv_session *s, uint16_t reply_code, const char *text, int timeout_ms,
		     salvo_error *err);

#endif
