/* SPDX-License-Identifier: MIT */
/*
 * Publishers: the hot path. salvo_publish encodes nothing per message beyond patching a
 * body size: the method and content header frames come from a template cached for the
 * last (exchange, routing key, flags), and the whole message is written into the
 * publisher's ring with one copy. No lock, no shared counter: the only shared access is
 * sv_client_kick's fence and load of the I/O thread's parked flag.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static int closed_error(salvo_publisher *p, salvo_error *err)
{
	/* Acquire: pairs with the I/O thread's release of state after writing error. */
	if (atomic_load_explicit(&p->ch->state, memory_order_acquire) != SV_CH_CLOSED)
		return 0;
	sv_error_copy(err, &p->ch->error);
	return p->ch->error.status;
}

static int set_template(salvo_publisher *p, const char *exchange, const char *routing_key,
			unsigned flags, salvo_error *err)
{
	struct sv_basic_props props = {0};
	struct sv_codec_error cerr;
	size_t elen = strlen(exchange), rlen = strlen(routing_key);

	if (elen > SV_SHORTSTR_MAX || rlen > SV_SHORTSTR_MAX) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "%s is %zu bytes; AMQP names hold at most 255",
			     elen > SV_SHORTSTR_MAX ? "exchange" : "routing key",
			     elen > SV_SHORTSTR_MAX ? elen : rlen);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	if (flags & SALVO_MSG_PERSISTENT) {
		props.flags |= SV_PROP_DELIVERY_MODE;
		props.delivery_mode = 2;
	}
	p->tpl_valid = false;
	if (sv_publish_template_init(&p->tpl, p->tpl_buf, sizeof p->tpl_buf, p->ch->id,
				     (struct sv_bytes){(const uint8_t *)exchange, (uint32_t)elen},
				     (struct sv_bytes){(const uint8_t *)routing_key, (uint32_t)rlen},
				     flags & SALVO_MSG_MANDATORY, &props,
				     p->client->sess.frame_max, &cerr)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "%s", cerr.reason);
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	memcpy(p->tpl_exchange, exchange, elen + 1);
	memcpy(p->tpl_routing_key, routing_key, rlen + 1);
	p->tpl_flags = flags;
	p->tpl_valid = true;
	return 0;
}

static bool deadline_at(int timeout_ms, struct timespec *ts)
{
	if (timeout_ms < 0)
		return false;
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
	return true;
}

/* Wait until n bytes are free in the ring, the channel closes, or timeout_ms passes. */
static int wait_room(salvo_publisher *p, size_t n, int timeout_ms, salvo_error *err)
{
	struct timespec ts;
	bool bounded = deadline_at(timeout_ms, &ts);

	for (;;) {
		int rc = closed_error(p, err);
		if (rc)
			return rc;
		if (sv_ring_reserve(&p->ring, n))
			return 0;
		if (timeout_ms == 0) {
			sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
				     "the publisher's ring is full");
			return SALVO_ERR_WOULD_BLOCK;
		}
		/* The I/O thread frees space as it sends; make sure it is awake to. A channel
		 * close interrupts the wait (-ECANCELED): the loop then reports it. */
		sv_client_kick(p->client);
		if (sv_ring_wait_space(&p->ring, n, bounded ? &ts : NULL) == -ETIMEDOUT) {
			sv_error_set(err, SALVO_ERR_TIMEOUT, SALVO_ERROR_LOCAL,
				     "no room in the publisher's ring within %d ms", timeout_ms);
			return SALVO_ERR_TIMEOUT;
		}
	}
}

int salvo_publish(salvo_publisher *p, const char *exchange, const char *routing_key,
		  const void *body, size_t len, unsigned flags, int timeout_ms, salvo_error *err)
{
	uint8_t *dst;
	size_t need;
	int rc;

	if (!p || !exchange || !routing_key || (!body && len)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publish: publisher, exchange, routing key and body are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	rc = closed_error(p, err);
	if (rc)
		return rc;
	flags &= SALVO_MSG_MANDATORY | SALVO_MSG_PERSISTENT;
	if (!p->tpl_valid || p->tpl_flags != flags || strcmp(p->tpl_exchange, exchange) != 0 ||
	    strcmp(p->tpl_routing_key, routing_key) != 0) {
		rc = set_template(p, exchange, routing_key, flags, err);
		if (rc)
			return rc;
	}
	need = sv_publish_size(&p->tpl, len);
	if (need > sv_ring_capacity(&p->ring)) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "a %zu-byte message needs %zu ring bytes; the ring holds %zu "
			     "(publisher.ring_size)",
			     len, need, sv_ring_capacity(&p->ring));
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	dst = sv_ring_reserve(&p->ring, need);
	if (!dst) {
		rc = wait_room(p, need, timeout_ms, err);
		if (rc)
			return rc;
		dst = sv_ring_reserve(&p->ring, need);
	}
	sv_publish_write(&p->tpl, dst, body, len);
	sv_ring_commit(&p->ring, need);
	sv_client_kick(p->client);
	return 0;
}

int salvo_publisher_flush(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	int rc;

	if (!p) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no publisher");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	/* Best effort releases what is sent, so an all-free ring means all sent. */
	rc = wait_room(p, sv_ring_capacity(&p->ring), timeout_ms, err);
	if (rc == SALVO_ERR_WOULD_BLOCK)
		sv_error_set(err, SALVO_ERR_WOULD_BLOCK, SALVO_ERROR_LOCAL,
			     "messages are still waiting to be sent");
	return rc;
}

static int attach(salvo_publisher *p, enum sv_req_kind kind, salvo_error *err)
{
	struct sv_request *req = sv_request_new(kind);
	int rc;

	if (!req) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	req->pub = p;
	rc = sv_request_submit(p->client, req, err);
	if (rc) {
		free(req);
		return rc;
	}
	/* No timeout: the publisher must not be freed while the I/O thread may still send from
	 * it. Attach is answered at once; detach once none of its bytes is in flight, which
	 * the end of the connection (EOF, error, missed heartbeats) also brings. */
	rc = sv_request_wait(req, SALVO_FOREVER, err);
	sv_request_put(req);
	return rc;
}

static void publisher_free(salvo_publisher *p)
{
	sv_ring_destroy(&p->ring);
	free(p);
}

int salvo_publisher_new(salvo_client *c, salvo_publisher **out, salvo_error *err)
{
	salvo_publisher *p;
	int rc;

	if (!c || !out) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_new: client and out are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	*out = NULL;
	/* The ring's counters are cache-line aligned: so must the publisher be. */
	p = aligned_alloc(SV_CACHE_LINE, (sizeof *p + SV_CACHE_LINE - 1) & ~(size_t)(SV_CACHE_LINE - 1));
	if (!p) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
		return SALVO_ERR_NO_MEMORY;
	}
	memset(p, 0, sizeof *p);
	p->client = c;
	rc = sv_ring_init(&p->ring, c->set.ring_size);
	if (rc) {
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
			     "cannot map a %zu-byte publisher ring: %s", c->set.ring_size,
			     strerror(-rc));
		free(p);
		return SALVO_ERR_NO_MEMORY;
	}
	rc = salvo_channel_open(c, &p->ch, err);
	if (rc) {
		publisher_free(p);
		return rc;
	}
	rc = attach(p, SV_REQ_ATTACH, err);
	if (rc) {
		salvo_channel_close(p->ch, NULL);
		publisher_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int salvo_publisher_close(salvo_publisher *p, int timeout_ms, salvo_error *err)
{
	salvo_error local;
	int rc, rc2;

	if (!p) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL, "no publisher");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	rc = salvo_publisher_flush(p, timeout_ms, err);
	/* Detach fails only when the connection is gone; then the I/O thread may still be
	 * finishing a send from this ring, so wait for it to stop before unmapping. */
	if (attach(p, SV_REQ_DETACH, NULL))
		sv_io_wait_exit_if_closed(p->client);
	rc2 = salvo_channel_close(p->ch, rc ? &local : err);
	if (!rc)
		rc = rc2;
	publisher_free(p);
	return rc;
}
