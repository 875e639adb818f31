/* SPDX-License-Identifier: MIT */
/*
 * Publisher pools: a publisher per thread for code that does not own its threads, found by
 * one thread-specific load, and a publish any thread may call through it. Built on the
 * public publisher calls only.
 */
#include <pthread.h>
#include <stdlib.h>

#include "engine.h"

struct salvo_publisher_pool {
	salvo_client *client;
	salvo_publisher_opts opts;
	pthread_key_t key;
	pthread_mutex_t lock;
	struct pool_entry *all;	 /* every publisher made, until destroy */
	struct pool_entry *free; /* left by exited threads, ready for reuse */
};

struct pool_entry {
	struct pool_entry *next_all, *next_free;
	salvo_publisher_pool *pool;
	salvo_publisher *pub;
};

/* A thread with a publisher exits: its publisher goes back to the pool. */
static void pool_thread_exit(void *arg)
{
	struct pool_entry *e = arg;
	salvo_publisher_pool *pool = e->pool;

	pthread_mutex_lock(&pool->lock);
	e->next_free = pool->free;
	pool->free = e;
	pthread_mutex_unlock(&pool->lock);
}

int salvo_publisher_pool_new(salvo_client *c, const salvo_publisher_opts *opts,
			     salvo_publisher_pool **out, salvo_error *err)
{
	salvo_publisher_pool *pool;

	if (!c || !out) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_pool_new: client and out are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	*out = NULL;
	pool = calloc(1, sizeof *pool);
	if (!pool || pthread_key_create(&pool->key, pool_thread_exit)) {
		free(pool);
		sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
			     "cannot make a publisher pool");
		return SALVO_ERR_NO_MEMORY;
	}
	pool->client = c;
	if (opts)
		pool->opts = *opts;
	pthread_mutex_init(&pool->lock, NULL);
	*out = pool;
	return 0;
}

int salvo_publisher_pool_get(salvo_publisher_pool *pool, salvo_publisher **out, salvo_error *err)
{
	struct pool_entry *e;
	int rc;

	if (!pool || !out) {
		sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
			     "salvo_publisher_pool_get: pool and out are required");
		return SALVO_ERR_INVALID_ARGUMENT;
	}
	/* The common case: one thread-specific load, no lock. */
	e = pthread_getspecific(pool->key);
	if (e) {
		*out = e->pub;
		return 0;
	}
	pthread_mutex_lock(&pool->lock);
	e = pool->free;
	if (e)
		pool->free = e->next_free;
	pthread_mutex_unlock(&pool->lock);
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e) {
			sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
			return SALVO_ERR_NO_MEMORY;
		}
		rc = salvo_publisher_new(pool->client, &pool->opts, &e->pub, err);
		if (rc) {
			free(e);
			return rc;
		}
		e->pool = pool;
		pthread_mutex_lock(&pool->lock);
		e->next_all = pool->all;
		pool->all = e;
		pthread_mutex_unlock(&pool->lock);
	}
	pthread_setspecific(pool->key, e);
	*out = e->pub;
	return 0;
}

int salvo_publisher_pool_publish(salvo_publisher_pool *pool, const salvo_msg *m, int timeout_ms,
				 uint64_t *seq, salvo_error *err)
{
	salvo_publisher *p;
	int rc = salvo_publisher_pool_get(pool, &p, err);

	return rc ? rc : salvo_publish_msg(p, m, timeout_ms, seq, err);
}

int salvo_publisher_pool_destroy(salvo_publisher_pool *pool, int timeout_ms, salvo_error *err)
{
	struct pool_entry *e;
	int rc = 0;

	if (sv_check_timeout("salvo_publisher_pool_destroy", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!pool)
		return 0;
	/* Threads still alive keep a pointer to their entry; the key goes first so that their
	 * exit no longer touches the pool. */
	pthread_key_delete(pool->key);
	while ((e = pool->all)) {
		salvo_error one;
		int r = salvo_publisher_close(e->pub, timeout_ms, &one);

		if (r && !rc) {
			rc = r;
			sv_error_copy(err, &one);
		}
		pool->all = e->next_all;
		free(e);
	}
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	return rc;
}
