/* SPDX-License-Identifier: MIT */
/*
 * Messages received per routing key, over all connections: what queue.declare reports as
 * message_count for a queue of that name, and what purge and delete report and reset.
 *
 * An open-addressing table under one mutex. Connections add once per read batch (see
 * struct channel's key cache), so the lock is not on the per-message path. The table
 * stops growing at MAX_KEYS: a publisher spraying random routing keys must not make the
 * sink's memory grow without bound, and keys past the limit are simply not counted.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink.h"

#define MAX_KEYS (1u << 16)

struct entry {
	uint64_t count;
	uint8_t len;
	uint8_t key[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **slots;
static size_t nslots; /* a power of two, kept at least twice the number of keys */
static size_t nkeys;
static bool warned;

/* FNV-1a: keys are short and this runs once per batch, not per message. */
static uint64_t hash(const uint8_t *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 0x100000001b3u;
	return h;
}

static struct entry **find(struct entry **tab, size_t n, const uint8_t *key, size_t len)
{
	size_t i = hash(key, len) & (n - 1);

	while (tab[i] && (tab[i]->len != len || memcmp(tab[i]->key, key, len)))
		i = (i + 1) & (n - 1);
	return &tab[i];
}

static bool grow(void)
{
	size_t n = nslots ? nslots * 2 : 64;
	struct entry **tab = calloc(n, sizeof *tab);

	if (!tab)
		return false;
	for (size_t i = 0; i < nslots; i++)
		if (slots[i])
			*find(tab, n, slots[i]->key, slots[i]->len) = slots[i];
	free(slots);
	slots = tab;
	nslots = n;
	return true;
}

void counts_add(const uint8_t *key, size_t len, uint64_t n)
{
	struct entry **e;

	pthread_mutex_lock(&lock);
	if (nkeys * 2 >= nslots && (nkeys >= MAX_KEYS || !grow())) {
		/* Full: existing keys still count, new ones do not. */
		e = nslots ? find(slots, nslots, key, len) : NULL;
		if (e && *e)
			(*e)->count += n;
		else if (!warned && !sink_opts.quiet)
			fprintf(stderr,
				"salvo-sink: more than %u routing keys; not counting new ones\n",
				MAX_KEYS);
		warned = true;
		pthread_mutex_unlock(&lock);
		return;
	}
	e = find(slots, nslots, key, len);
	if (!*e) {
		*e = malloc(sizeof **e + len);
		if (!*e)
			die("out of memory");
		(*e)->count = 0;
		(*e)->len = (uint8_t)len;
		memcpy((*e)->key, key, len);
		nkeys++;
	}
	(*e)->count += n;
	pthread_mutex_unlock(&lock);
}

uint64_t counts_get(const uint8_t *key, size_t len, bool reset)
{
	uint64_t n = 0;
	struct entry **e;

	pthread_mutex_lock(&lock);
	e = nslots ? find(slots, nslots, key, len) : NULL;
	if (e && *e) {
		n = (*e)->count;
		if (reset)
			(*e)->count = 0;
	}
	pthread_mutex_unlock(&lock);
	return n;
}
