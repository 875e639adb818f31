/* SPDX-License-Identifier: MIT */
/*
 * A received message's memory, recycled per client. The I/O thread makes a delivery for
 * every basic.deliver and basic.get-ok; malloc and free per message (the delivery, its
 * body, its properties, its settle record) cost more than decoding it. So a delivery let
 * go of goes back to its client with its body and property buffers, and the next message
 * reuses them:
 *
 * - let go of on the I/O thread (the common case: the reference its settle record holds
 *   is the last, dropped when the I/O thread has sent the ack), it goes straight into the
 *   I/O thread's own cache, a plain list;
 * - let go of on any other thread, it is pushed onto the client's free_deliveries, a
 *   lock-free stack (Concurrency Kit's ck_stack, pushed with compare-and-swap as the
 *   settle stack is), which the I/O thread takes whole with one exchange when its cache
 *   is empty. One taker, so no ABA.
 *
 * Bounds: the cache keeps at most SV_DCACHE_MAX deliveries, and a delivery keeps a body
 * or property buffer of at most SV_DELIVERY_KEEP bytes; the rest is freed: at worst about
 * 17 MiB per client, 1.2 MiB for a stream of small messages. A reused buffer more than
 * twice the size a message needs (plus SV_BUFFER_SLACK: sv_buffer_refit, props.h) is
 * replaced, and a queued message counts its buffers' sizes against consumer.buffer_bytes,
 * not its own. The
 * stack holds only deliveries that were in use a moment ago, until the next take. Every
 * delivery holds its channel, which holds the client, so the client outlives every push;
 * client_free empties both.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "envelope.h"
#include "props.h"
#include "tsan.h"

/* Deliveries the I/O thread keeps for reuse, and the largest buffer one keeps. */
#define SV_DCACHE_MAX 1024u
#define SV_DELIVERY_KEEP 8192u

CK_STACK_CONTAINER(struct sv_delivery, free_entry, delivery_of_entry)

/* Under AddressSanitizer a kept delivery is poisoned but for its links, so a message used
 * after salvo_message_destroy is still reported, as it was when deliveries were freed. */
#if defined(__SANITIZE_ADDRESS__)
#define SV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SV_ASAN 1
#endif
#endif
#ifdef SV_ASAN
#include <sanitizer/asan_interface.h>

static void poison(struct sv_delivery *d, bool on)
{
	size_t links = offsetof(struct sv_delivery, body_cap);
	size_t head = offsetof(struct sv_delivery, free_next);

	if (on) {
		if (d->body)
			ASAN_POISON_MEMORY_REGION(d->body, d->body_cap);
		if (d->props_mem)
			ASAN_POISON_MEMORY_REGION(d->props_mem, d->props_cap);
		ASAN_POISON_MEMORY_REGION(d, head);
		ASAN_POISON_MEMORY_REGION((uint8_t *)d + links, sizeof *d - links);
		return;
	}
	ASAN_UNPOISON_MEMORY_REGION(d, sizeof *d);
	if (d->body)
		ASAN_UNPOISON_MEMORY_REGION(d->body, d->body_cap);
	if (d->props_mem)
		ASAN_UNPOISON_MEMORY_REGION(d->props_mem, d->props_cap);
}
#else
static void poison(struct sv_delivery *d, bool on)
{
	(void)d;
	(void)on;
}
#endif

_Thread_local salvo_client *sv_io_client;

/* Everything before free_next back to zero, the kept buffers as they are. */
static void reset(struct sv_delivery *d)
{
	uint8_t *body = d->body;

	memset(d, 0, offsetof(struct sv_delivery, free_next));
	d->body = body; /* of body_cap bytes */
	d->exchange[0] = d->routing_key[0] = d->consumer_tag[0] = '\0';
	atomic_init(&d->refs, 1);
	atomic_init(&d->settle_taken, false);
	d->whole.d = d;
}

static void destroy(struct sv_delivery *d)
{
	poison(d, false);
	free(d->body);
	free(d->props_mem);
	free(d);
}

/* A poisoned delivery into the I/O thread's cache; beyond SV_DCACHE_MAX, freed. */
static void cache_put(salvo_client *c, struct sv_delivery *d)
{
	if (c->dcache_n >= SV_DCACHE_MAX) {
		destroy(d);
		return;
	}
	d->free_next = c->dcache;
	c->dcache = d;
	c->dcache_n++;
}

/* The stack, into the cache. */
static void take_freed(salvo_client *c)
{
	struct ck_stack_entry *e = ck_stack_batch_pop_upmc(&c->free_deliveries);

	sv_tsan_acquire(&c->free_deliveries);
	while (e) {
		struct sv_delivery *d = delivery_of_entry(e);

		e = e->next;
		cache_put(c, d);
	}
}

struct sv_delivery *sv_delivery_new(salvo_client *c)
{
	struct sv_delivery *d;

	if (!c->dcache)
		take_freed(c);
	d = c->dcache;
	if (d) {
		c->dcache = d->free_next;
		c->dcache_n--;
		poison(d, false);
	} else {
		/* Its first line is the application threads' (engine.h): aligned. */
		d = sv_zalloc_lines(sizeof *d);
		if (!d)
			return NULL;
	}
	reset(d);
	return d;
}

int sv_delivery_body(struct sv_delivery *d, size_t len)
{
	size_t want = len ? len : 1;

	if (sv_buffer_refit(d->body_cap, want)) {
		free(d->body);
		d->body_cap = 0;
		d->body = malloc(want);
		if (!d->body)
			return -1;
		d->body_cap = want;
	}
	d->len = len;
	return 0;
}

void sv_delivery_free(struct sv_delivery *d)
{
	salvo_channel *ch;
	salvo_client *c;

	if (!d)
		return;
	if (d->env)
		sv_envelope_free(d->env);
	ch = d->ch;
	if (!ch) {
		/* Never handed out (the I/O thread drops a message whose content did not
		 * come): no client to keep it for. */
		destroy(d);
		return;
	}
	c = ch->client;
	d->ch = NULL;
	if (d->body_cap > SV_DELIVERY_KEEP) {
		free(d->body);
		d->body = NULL;
		d->body_cap = 0;
	}
	if (d->props_cap > SV_DELIVERY_KEEP) {
		free(d->props_mem);
		d->props_mem = NULL;
		d->props_cap = 0;
	}
	poison(d, true);
	if (sv_io_client == c) {
		cache_put(c, d);
	} else {
		/* ck_stack_push_upmc fences its stores before the compare-and-swap. */
		sv_tsan_release(&c->free_deliveries);
		ck_stack_push_upmc(&c->free_deliveries, &d->free_entry);
	}
	/* Last: it may let go of the client. */
	sv_channel_put(ch);
}

void sv_delivery_cache_free(salvo_client *c)
{
	take_freed(c);
	while (c->dcache) {
		struct sv_delivery *d = c->dcache;

		c->dcache = d->free_next;
		destroy(d);
	}
	c->dcache_n = 0;
}
