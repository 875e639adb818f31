/* SPDX-License-Identifier: MIT */
/*
 * salvo: a C client for AMQP 0-9-1 brokers (RabbitMQ) built for publishing throughput.
 *
 * This header is the whole public API. Every function says who may call it from which
 * thread, whether it blocks, and what it returns on failure. Handles are opaque.
 *
 * Status: the wire codec is in place; the engine (connections, publishers, confirms) is
 * being built, and its API will be added here as it lands.
 */
#ifndef SALVO_H
#define SALVO_H

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
} salvo_status;

/*
 * A short description of a status: "timed out", "NOT_FOUND", ... Any thread; never NULL;
 * unknown codes give "unknown status".
 */
SALVO_API const char *salvo_err2str(int status);

/* The library's version string, e.g. "0.1.0". Any thread. */
SALVO_API const char *salvo_version(void);

#ifdef __cplusplus
}
#endif

#endif
