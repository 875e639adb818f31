/* SPDX-License-Identifier: MIT */
/*
 * A received message's memory, recycled per client (delivery.c), without a broker: a
 * delivery let go of on the I/O thread comes back with its body buffer, one let go of on
 * another thread comes back through the lock-free stack, a body over the kept size is
 * freed, the cache holds at most 1,024, a buffer much larger than a message is replaced,
 * and every field a message had is cleared for the
 * next one. Run with a test's name to run it alone.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../support.h"

#include "engine.h"

/* delivery.c's bounds. */
#define DCACHE_MAX 1024u
#define DELIVERY_KEEP 8192u

struct rig {
	salvo_client *c;
	salvo_channel *ch;
};

/* A client with only what delivery.c touches, and a channel whose references the
 * deliveries take and give back (its own reference keeps it). */
static void rig_init(struct rig *r)
{
	r->c = calloc(1, sizeof *r->c);
	r->ch = calloc(1, sizeof *r->ch);
	assert_non_null(r->c);
	assert_non_null(r->ch);
	r->ch->client = r->c;
	atomic_init(&r->ch->refs, 1);
	atomic_init(&r->c->refs, 1);
}

static void rig_free(struct rig *r)
{
	sv_delivery_cache_free(r->c);
	assert_int_equal(atomic_load(&r->ch->refs), 1);
	free(r->ch);
	free(r->c);
}

/* A delivery as message_done leaves it: with a channel reference. */
static struct sv_delivery *delivered(struct rig *r, size_t body)
{
	struct sv_delivery *d = sv_delivery_new(r->c);

	assert_non_null(d);
	assert_int_equal(sv_delivery_body(d, body), 0);
	memset(d->body, 'x', body);
	atomic_fetch_add(&r->ch->refs, 1);
	d->ch = r->ch;
	return d;
}

static void test_reused_on_io_thread(void **state)
{
	struct rig r;
	struct sv_delivery *d, *e;
	uint8_t *body;

	(void)state;
	rig_init(&r);
	sv_io_client = r.c;
	d = delivered(&r, 100);
	body = d->body;
	d->delivery_tag = 42;
	d->redelivered = true;
	d->no_ack = true;
	strcpy(d->exchange, "ex");
	strcpy(d->routing_key, "rk");
	strcpy(d->consumer_tag, "ctag");
	atomic_store(&d->settle_taken, true);
	sv_delivery_free(d);
	assert_int_equal(r.c->dcache_n, 1);
	assert_int_equal(atomic_load(&r.ch->refs), 1); /* the delivery's reference went */
	e = sv_delivery_new(r.c);
	assert_ptr_equal(e, d);
	assert_int_equal(r.c->dcache_n, 0);
	/* Everything of the last message cleared, the body buffer kept. */
	assert_int_equal(atomic_load(&e->refs), 1);
	assert_false(atomic_load(&e->settle_taken));
	assert_int_equal(e->delivery_tag, 0);
	assert_false(e->redelivered);
	assert_false(e->no_ack);
	assert_null(e->ch);
	assert_ptr_equal(e->whole.d, e);
	assert_string_equal(e->exchange, "");
	assert_string_equal(e->routing_key, "");
	assert_string_equal(e->consumer_tag, "");
	assert_int_equal(sv_delivery_body(e, 80), 0);
	assert_ptr_equal(e->body, body);
	assert_int_equal(e->len, 80);
	/* Never handed out (no channel): freed, not cached. */
	sv_delivery_free(e);
	assert_int_equal(r.c->dcache_n, 0);
	sv_io_client = NULL;
	rig_free(&r);
}

static void test_big_body_not_kept(void **state)
{
	struct rig r;
	struct sv_delivery *d;

	(void)state;
	rig_init(&r);
	sv_io_client = r.c;
	d = delivered(&r, DELIVERY_KEEP + 1);
	sv_delivery_free(d);
	d = sv_delivery_new(r.c);
	assert_null(d->body);
	assert_int_equal(d->body_cap, 0);
	/* At the kept size: kept. */
	assert_int_equal(sv_delivery_body(d, DELIVERY_KEEP), 0);
	atomic_fetch_add(&r.ch->refs, 1);
	d->ch = r.ch;
	sv_delivery_free(d);
	d = sv_delivery_new(r.c);
	assert_non_null(d->body);
	assert_int_equal(d->body_cap, DELIVERY_KEEP);
	sv_delivery_free(d);
	sv_io_client = NULL;
	rig_free(&r);
}

static void test_cache_bound(void **state)
{
	struct rig r;
	struct sv_delivery **all = calloc(DCACHE_MAX + 100, sizeof *all);

	(void)state;
	assert_non_null(all);
	rig_init(&r);
	sv_io_client = r.c;
	for (unsigned i = 0; i < DCACHE_MAX + 100; i++)
		all[i] = delivered(&r, 16);
	for (unsigned i = 0; i < DCACHE_MAX + 100; i++)
		sv_delivery_free(all[i]);
	assert_int_equal(r.c->dcache_n, DCACHE_MAX);
	assert_int_equal(atomic_load(&r.ch->refs), 1);
	sv_io_client = NULL;
	free(all);
	rig_free(&r);
}

struct freer {
	struct sv_delivery **ds;
	unsigned n;
};

static void *free_elsewhere(void *arg)
{
	struct freer *f = arg;

	for (unsigned i = 0; i < f->n; i++)
		sv_delivery_free(f->ds[i]);
	return NULL;
}

/* Let go of by two other threads at once: through the stack, taken whole when the I/O
 * thread's cache is empty; past the bound freed there too. */
static void test_other_threads(void **state)
{
	enum { N = 3000 };
	struct rig r;
	struct sv_delivery **ds = calloc(2 * N, sizeof *ds);
	struct freer f[2] = {{ds, N}, {ds + N, N}};
	pthread_t t[2];

	(void)state;
	assert_non_null(ds);
	rig_init(&r);
	sv_io_client = r.c;
	for (unsigned i = 0; i < 2 * N; i++)
		ds[i] = delivered(&r, 32);
	sv_io_client = NULL;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, free_elsewhere, &f[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.c->dcache_n, 0);
	assert_int_equal(atomic_load(&r.ch->refs), 1);
	/* The first new one takes the stack: DCACHE_MAX kept, one of them handed out. */
	sv_io_client = r.c;
	struct sv_delivery *d = sv_delivery_new(r.c);
	assert_non_null(d);
	assert_int_equal(r.c->dcache_n, DCACHE_MAX - 1);
	assert_non_null(d->body);
	assert_int_equal(d->body_cap, 32);
	sv_delivery_free(d); /* no channel: freed */
	sv_io_client = NULL;
	free(ds);
	rig_free(&r);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("reused on the I/O thread", test_reused_on_io_thread),
		NAMED_TEST("big body not kept", test_big_body_not_kept),
		NAMED_TEST("cache bound", test_cache_bound),
		NAMED_TEST("other threads", test_other_threads),
	};

	return sv_test_main(argc, argv, "delivery", tests, sizeof tests / sizeof tests[0]);
}
