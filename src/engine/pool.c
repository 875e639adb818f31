/* SPDX-License-Identifier: MIT */
/*
 * Connection pools: N clients opened eagerly, handed out round-robin by one atomic
 * increment. The clients never change after salvo_pool_new, so readers need no lock.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"
#include "error.h"

struct salvo_pool {
	_Atomic uint64_t next; /* call count of salvo_pool_get */
	size_t size;
	salvo_client *clients[];
};

static int close_all(salvo_pool *pool, size_t n, int timeout_ms, salvo_error *err)
{
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		salvo_error e;
		int rc = salvo_client_close(pool->clients[i], timeout_ms, &e);
		if (rc && !first) {
			first = rc;
			sv_error_copy(err, &e);
		}
		salvo_client_destroy(pool->clients[i]);
	}
	return first;
}

int salvo_pool_new(const salvo_conf *conf, size_t size, salvo_pool **out, salvo_error *err)
{
	salvo_conf *each;
	salvo_pool *pool;
	int rc = 0;

	if (!conf || !out || size < 1 || size > SALVO_POOL_MAX)
		return sv_error_set(
		    err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
		    "salvo_pool_new: conf, out and a size from 1 to %d are required",
		    SALVO_POOL_MAX);
	*out = NULL;
	pool = calloc(1, sizeof *pool + size * sizeof pool->clients[0]);
	each = salvo_conf_dup(conf);
	if (!pool || !each) {
		free(pool);
		salvo_conf_destroy(each);
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	}
	pool->size = size;
	for (size_t i = 0; i < size; i++) {
		if (conf->connection_name[0]) {
			char name[SV_NAME_MAX + 32], errstr[128];
			snprintf(name, sizeof name, "%s#%zu", conf->connection_name, i + 1);
			if (salvo_conf_set(each, "connection_name", name, errstr, sizeof errstr)) {
				rc =
				    sv_error_set(err, SALVO_ERR_INVALID_ARGUMENT, SALVO_ERROR_LOCAL,
						 "pool connection names (connection_name#%zu): %s",
						 i + 1, errstr);
				close_all(pool, i, 5000, NULL);
				break;
			}
		}
		/* Connection i starts at endpoint i mod n of the configuration's order (shuffled
		 * or not, the same for every client), so the pool is spread over them. */
		rc = salvo_client_new_at(each, i, &pool->clients[i], err);
		if (rc) {
			if (err) {
				/* Say which connection, ahead of the reason (cut at the end). */
				char prefix[64];
				size_t k =
				    (size_t)snprintf(prefix, sizeof prefix,
						     "pool connection %zu of %zu: ", i + 1, size);
				memmove(err->text + k, err->text, sizeof err->text - k - 1);
				memcpy(err->text, prefix, k);
				err->text[sizeof err->text - 1] = '\0';
			}
			close_all(pool, i, 5000, NULL);
			break;
		}
	}
	salvo_conf_destroy(each);
	if (rc) {
		free(pool);
		return rc;
	}
	*out = pool;
	return 0;
}

int salvo_pool_new_from_file(const char *path, const char *section, const salvo_conf *base,
			     salvo_pool **out, salvo_error *err)
{
	salvo_conf *conf = base ? salvo_conf_dup(base) : salvo_conf_new();
	size_t size = 1;
	int rc;

	if (!conf)
		return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL, "out of memory");
	rc = salvo_conf_load_file(conf, path, section, &size, err);
	if (!rc)
		rc = salvo_pool_new(conf, size, out, err);
	salvo_conf_destroy(conf);
	return rc;
}

salvo_client *salvo_pool_get(salvo_pool *pool)
{
	if (!pool)
		return NULL;
	/* Relaxed: the count only spreads callers; the clients were published to every
	 * thread that can see the pool (whoever handed it over synchronised with us). */
	return pool
	    ->clients[atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed) % pool->size];
}

salvo_client *salvo_pool_client(salvo_pool *pool, size_t i)
{
	return pool && i < pool->size ? pool->clients[i] : NULL;
}

size_t salvo_pool_size(const salvo_pool *pool)
{
	return pool ? pool->size : 0;
}

int salvo_pool_destroy(salvo_pool *pool, int timeout_ms, salvo_error *err)
{
	int rc;

	if (sv_check_timeout("salvo_pool_destroy", timeout_ms, err))
		return SALVO_ERR_INVALID_ARGUMENT;

	if (!pool)
		return 0;
	rc = close_all(pool, pool->size, timeout_ms, err);
	free(pool);
	return rc;
}
