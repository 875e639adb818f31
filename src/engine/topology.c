/* SPDX-License-Identifier: MIT */
/*
 * Topology recording and recovery, in the manner of the RabbitMQ Java client's
 * AutorecoveringConnection (docs/design.md, "Topology recovery", compares the two).
 *
 * Recording. The calls that declare, bind and consume reserve a slot of the bound before
 * they send anything and record their entity once the broker has said yes; deletes,
 * unbinds and cancels forget what they removed and what depended on it (the bindings of
 * a deleted exchange or queue, the consumers of a deleted queue, an auto-delete queue
 * whose last recorded consumer is cancelled). Records live in one list per kind, in the
 * order first recorded, under the client's topology lock, which is a leaf: nothing else
 * is locked while it is held, and a consumer's reference is dropped after unlocking.
 * Finding an exchange, queue or binding goes through a hash index (declaring 10,000
 * bindings would otherwise walk the list once per call), appended to as records are and
 * built again after a record is dropped or renamed; deletes walk their kinds' lists.
 *
 * Recovery runs on the hooks' thread after a reconnection, before the hooks, and uses
 * the public synchronous calls on a channel of its own; its thread is marked (a
 * thread-local), so that what it declares is not recorded a second time and its requests
 * carry the connection they are for (a request of an older connection's recovery is
 * refused, never sent on a newer one). The lock is not held across a call: each entity
 * is copied out, made, and its record looked up again by id afterwards (it may have
 * been deleted meanwhile by another thread). A consumer goes back on its own channel,
 * which the I/O thread kept across the loss (recover.c) and recovery reopens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "props.h"
#include "topology.h"

/* Earlier names a renamed server-named queue answers to, besides its first. */
#define SV_TOPO_OLD_NAMES 4

struct sv_topo_rec {
	struct sv_topo_rec *next;
	struct sv_topo_rec *inext; /* in its index bucket (not consumers) */
	uint64_t id;
	salvo_topology_kind kind;
	/* exchange or queue name, consumer tag; bindings: NULL */
	char *name, *type, *source, *dest, *key; /* consumer: dest is its queue */
	unsigned flags;
	salvo_table *args; /* NULL: none */
	bool server_named;
	/* A server-named queue's first name and its latest earlier ones (ring, NULL: none). */
	char *first, *old[SV_TOPO_OLD_NAMES];
	unsigned old_next;
	struct salvo_consumer *cons; /* referenced */
};

/* The thread's part: a listener making its consumer, or recovery itself. */
static _Thread_local struct {
	unsigned quiet;
	uint64_t rec_gen;
} self;

void sv_topo_quiet(bool on)
{
	if (on)
		self.quiet++;
	else
		self.quiet--;
}

uint64_t sv_topo_rec_gen(void)
{
	return self.rec_gen;
}

void sv_topo_init(struct sv_topology *t, const salvo_conf *conf)
{
	pthread_mutex_init(&t->lock, NULL);
	t->on = conf->topology_recovery;
	t->max = conf->topology_max_entities;
	t->filter = conf->topology_filter;
	t->filter_arg = conf->topology_filter_arg;
	for (int k = 0; k <= SALVO_TOPOLOGY_CONSUMER; k++)
		t->tail[k] = &t->head[k];
}

static void rec_free(struct sv_topo_rec *r)
{
	free(r->name);
	free(r->type);
	free(r->source);
	free(r->dest);
	free(r->key);
	free(r->first);
	for (int i = 0; i < SV_TOPO_OLD_NAMES; i++)
		free(r->old[i]);
	salvo_table_destroy(r->args);
	free(r);
}

void sv_topo_free(struct sv_topology *t)
{
	for (int k = 0; k <= SALVO_TOPOLOGY_CONSUMER; k++) {
		struct sv_topo_rec *r = t->head[k], *next;

		/* Consumers' records are gone by now: salvo_consumer_destroy forgets them, and
		 * each holds its client through its channel. */
		for (; r; r = next) {
			next = r->next;
			rec_free(r);
		}
	}
	free(t->index);
	pthread_mutex_destroy(&t->lock);
}

static bool same_args(const salvo_table *a, const salvo_table *b)
{
	struct sv_table x = sv_table_of(a), y = sv_table_of(b);

	return x.len == y.len && (!x.len || !memcmp(x.ptr, y.ptr, x.len));
}

/* FNV-1a of s and its NUL, continuing from h. */
static uint64_t hash_str(uint64_t h, const char *s)
{
	do {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	} while (*s++);
	return h;
}

/* The index's hash of an exchange or queue (its name) or a binding (source, destination,
 * routing key; arguments are compared on a match only). */
static uint64_t hash_of(salvo_topology_kind kind, const char *name, const char *source,
			const char *dest, const char *key)
{
	uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)kind;

	if (kind == SALVO_TOPOLOGY_EXCHANGE || kind == SALVO_TOPOLOGY_QUEUE)
		return hash_str(h, name);
	return hash_str(hash_str(hash_str(h, source), dest), key);
}

static uint64_t rec_hash(const struct sv_topo_rec *r)
{
	return hash_of(r->kind, r->name, r->source, r->dest, r->key);
}

static void index_put(struct sv_topology *t, struct sv_topo_rec *r)
{
	struct sv_topo_rec **b = &t->index[rec_hash(r) & (t->index_cap - 1)];

	r->inext = *b;
	*b = r;
}

/* Build the index again for room for want records (lock held); false when out of memory
 * (the caller then walks the lists). */
static bool index_build(struct sv_topology *t, size_t want)
{
	size_t cap = t->index_cap > 64 ? t->index_cap : 64;
	struct sv_topo_rec **index;

	while (cap < want)
		cap *= 2;
	if (cap != t->index_cap) {
		index = calloc(cap, sizeof *index);
		if (!index)
			return false;
		free(t->index);
		t->index = index;
		t->index_cap = cap;
	} else {
		memset(t->index, 0, cap * sizeof *t->index);
	}
	for (int k = 0; k < SALVO_TOPOLOGY_CONSUMER; k++)
		for (struct sv_topo_rec *r = t->head[k]; r; r = r->next)
			index_put(t, r);
	t->index_stale = false;
	return true;
}

static bool matches(const struct sv_topo_rec *r, const salvo_topology_entity *e)
{
	if (r->kind != e->kind)
		return false;
	if (e->kind == SALVO_TOPOLOGY_EXCHANGE || e->kind == SALVO_TOPOLOGY_QUEUE)
		return !strcmp(r->name, e->name);
	return !strcmp(r->source, e->source) && !strcmp(r->dest, e->destination) &&
	       !strcmp(r->key, e->routing_key) && same_args(r->args, e->arguments);
}

/* The record e names (lock held): exchanges and queues by name, bindings by all of
 * theirs; NULL for a consumer (each is a new one) or a server-named queue asked for. */
static struct sv_topo_rec *find(struct sv_topology *t, const salvo_topology_entity *e)
{
	struct sv_topo_rec *r;

	if (e->kind == SALVO_TOPOLOGY_CONSUMER || (e->kind == SALVO_TOPOLOGY_QUEUE && !e->name[0]))
		return NULL;
	if ((t->index_stale || !t->index_cap) && !index_build(t, t->n)) {
		for (r = t->head[e->kind]; r && !matches(r, e); r = r->next)
			;
		return r;
	}
	r = t->index[hash_of(e->kind, e->name, e->source, e->destination, e->routing_key) &
		     (t->index_cap - 1)];
	while (r && !matches(r, e))
		r = r->inext;
	return r;
}

static bool recording(salvo_channel *ch, const salvo_topology_entity *e)
{
	if (!ch->client->topo.on || self.quiet || self.rec_gen)
		return false;
	if ((e->kind == SALVO_TOPOLOGY_EXCHANGE || e->kind == SALVO_TOPOLOGY_QUEUE) &&
	    (e->flags & SALVO_PASSIVE))
		return false;
	return e->kind != SALVO_TOPOLOGY_CONSUMER ||
	       (!(e->flags & SALVO_CONSUME_NO_RECOVERY) && !ch->pub);
}

int sv_topo_reserve(salvo_channel *ch, const salvo_topology_entity *e, struct sv_topo_ticket *tk,
		    salvo_error *err)
{
	struct sv_topology *t = &ch->client->topo;
	int rc = 0;

	*tk = (struct sv_topo_ticket){.recording = recording(ch, e)};
	if (!tk->recording)
		return 0;
	pthread_mutex_lock(&t->lock);
	if (!find(t, e)) {
		if (t->n + t->reserved >= t->max)
			rc = sv_error_set(err, SALVO_ERR_LIMIT, SALVO_ERROR_LOCAL,
					  "topology_recovery.max_entities (%zu) reached: %zu "
					  "exchanges, queues, bindings and consumers are recorded "
					  "for recovery; nothing was sent (raise the key, or set "
					  "topology_recovery to 0)",
					  t->max, t->n + t->reserved);
		else
			tk->reserved = true, t->reserved++;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* e's fields into r (lock held); false when out of memory. */
static bool fill(struct sv_topo_rec *r, const salvo_topology_entity *e)
{
	char *name = dup_or_null(e->name), *type = dup_or_null(e->type);
	char *source = dup_or_null(e->source), *dest = dup_or_null(e->destination);
	char *key = dup_or_null(e->routing_key);
	salvo_table *args = e->arguments ? sv_table_copy_without(e->arguments, NULL) : NULL;

	if ((e->name && !name) || (e->type && !type) || (e->source && !source) ||
	    (e->destination && !dest) || (e->routing_key && !key) || (e->arguments && !args)) {
		free(name), free(type), free(source), free(dest), free(key);
		salvo_table_destroy(args);
		return false;
	}
	free(r->name), free(r->type), free(r->source), free(r->dest), free(r->key);
	salvo_table_destroy(r->args);
	r->name = name, r->type = type, r->source = source, r->dest = dest, r->key = key;
	r->args = args;
	r->flags = e->flags;
	r->server_named = e->server_named;
	return true;
}

void sv_topo_record(salvo_channel *ch, const salvo_topology_entity *e, struct salvo_consumer *cons,
		    const struct sv_topo_ticket *tk, int status)
{
	salvo_client *c = ch->client;
	struct sv_topology *t = &c->topo;
	struct sv_topo_rec *r;
	bool lost = false;

	if (!tk->recording)
		return;
	pthread_mutex_lock(&t->lock);
	if (tk->reserved)
		t->reserved--;
	if (status)
		goto out;
	r = find(t, e);
	if (r) {
		/* Declared again, maybe otherwise (an exchange's arguments): the latest wins. */
		lost = !fill(r, e);
		goto out;
	}
	if (!tk->reserved) {
		/* Recorded when reserved, deleted since by another thread: within the bound
		 * only if there is room. */
		if (t->n >= t->max)
			goto out;
	}
	r = calloc(1, sizeof *r);
	if (!r || !fill(r, e)) {
		free(r);
		lost = true;
		goto out;
	}
	r->kind = e->kind;
	r->id = ++t->next_id;
	if (cons) {
		atomic_fetch_add_explicit(&cons->refs, 1, memory_order_relaxed);
		atomic_store(&cons->recorded, true);
		r->cons = cons;
	}
	*t->tail[r->kind] = r;
	t->tail[r->kind] = &r->next;
	t->n++;
	if (r->kind != SALVO_TOPOLOGY_CONSUMER && !t->index_stale && t->index_cap) {
		/* Grown (built again, r with the others) past one record per bucket; built
		 * at the next lookup if that fails. */
		if (t->n <= t->index_cap)
			index_put(t, r);
		else if (!index_build(t, t->n * 2))
			t->index_stale = true;
	}
out:
	pthread_mutex_unlock(&t->lock);
	/* After unlocking: the log callback is the application's. */
	if (lost)
		sv_log(&c->set.log, SALVO_LOG_WARNING, "topology",
		       "out of memory: '%s' is not recorded for recovery as declared",
		       e->name ? e->name : e->destination);
}

/* Unlink and free the records for which drop(r, arg) is true (lock held); consumers whose
 * records went are appended to *puts for the caller to put after unlocking. */
struct put_list {
	struct salvo_consumer **v;
	size_t n, cap;
};

static void drop_where(struct sv_topology *t, salvo_topology_kind kind,
		       bool (*drop)(const struct sv_topo_rec *r, const void *arg), const void *arg,
		       struct put_list *puts)
{
	struct sv_topo_rec **p = &t->head[kind];

	while (*p) {
		struct sv_topo_rec *r = *p;

		if (!drop(r, arg)) {
			p = &r->next;
			continue;
		}
		*p = r->next;
		if (t->tail[kind] == &r->next)
			t->tail[kind] = p;
		t->index_stale = true;
		if (r->cons) {
			atomic_store(&r->cons->recorded, false);
			if (puts->n == puts->cap) {
				size_t cap = puts->cap ? puts->cap * 2 : 8;
				struct salvo_consumer **v = realloc(puts->v, cap * sizeof *v);

				if (v)
					puts->v = v, puts->cap = cap;
			}
			/* Without memory for the list the reference stays: a leak, not a crash. */
			if (puts->n < puts->cap)
				puts->v[puts->n++] = r->cons;
		}
		rec_free(r);
		t->n--;
	}
}

static void put_all(struct put_list *puts)
{
	for (size_t i = 0; i < puts->n; i++)
		sv_consumer_put(puts->v[i]);
	free(puts->v);
}

static bool named(const struct sv_topo_rec *r, const void *name)
{
	return !strcmp(r->name, name);
}

static bool from_or_to(const struct sv_topo_rec *r, const void *name)
{
	return !strcmp(r->source, name) || !strcmp(r->dest, name);
}

static bool to(const struct sv_topo_rec *r, const void *name)
{
	return !strcmp(r->dest, name);
}

static bool binding_is(const struct sv_topo_rec *r, const void *arg)
{
	const salvo_topology_entity *e = arg;

	return !strcmp(r->source, e->source) && !strcmp(r->dest, e->destination) &&
	       !strcmp(r->key, e->routing_key) && same_args(r->args, e->arguments);
}

static bool has(struct sv_topology *t, salvo_topology_kind kind,
		bool (*match)(const struct sv_topo_rec *r, const void *arg), const void *arg)
{
	for (struct sv_topo_rec *r = t->head[kind]; r; r = r->next)
		if (match(r, arg))
			return true;
	return false;
}

/* A queue gone: its record, bindings and consumers (lock held). */
static void drop_queue(struct sv_topology *t, const char *name, struct put_list *puts)
{
	drop_where(t, SALVO_TOPOLOGY_QUEUE, named, name, puts);
	drop_where(t, SALVO_TOPOLOGY_QUEUE_BINDING, to, name, puts);
	drop_where(t, SALVO_TOPOLOGY_CONSUMER, to, name, puts);
}

static bool auto_delete_named(const struct sv_topo_rec *r, const void *name)
{
	return (r->flags & SALVO_AUTO_DELETE) && !strcmp(r->name, name);
}

static bool bound_from(const struct sv_topo_rec *r, const void *name)
{
	return !strcmp(r->source, name);
}

/* An unbind took source's last recorded binding: an auto-delete exchange is gone with it
 * (the broker deletes it), and so is what it was bound to as a destination. */
static void maybe_drop_exchange(struct sv_topology *t, const char *source, struct put_list *puts)
{
	if (!has(t, SALVO_TOPOLOGY_EXCHANGE, auto_delete_named, source) ||
	    has(t, SALVO_TOPOLOGY_QUEUE_BINDING, bound_from, source) ||
	    has(t, SALVO_TOPOLOGY_EXCHANGE_BINDING, bound_from, source))
		return;
	drop_where(t, SALVO_TOPOLOGY_EXCHANGE, named, source, puts);
	drop_where(t, SALVO_TOPOLOGY_EXCHANGE_BINDING, from_or_to, source, puts);
}

void sv_topo_forget(salvo_client *c, const salvo_topology_entity *e)
{
	struct sv_topology *t = &c->topo;
	struct put_list puts = {0};
	char *source = NULL;

	if (!t->on || self.rec_gen)
		return;
	pthread_mutex_lock(&t->lock);
	switch (e->kind) {
	case SALVO_TOPOLOGY_EXCHANGE:
		drop_where(t, SALVO_TOPOLOGY_EXCHANGE, named, e->name, &puts);
		drop_where(t, SALVO_TOPOLOGY_EXCHANGE_BINDING, from_or_to, e->name, &puts);
		drop_where(t, SALVO_TOPOLOGY_QUEUE_BINDING, bound_from, e->name, &puts);
		break;
	case SALVO_TOPOLOGY_QUEUE:
		drop_queue(t, e->name, &puts);
		break;
	case SALVO_TOPOLOGY_QUEUE_BINDING:
	case SALVO_TOPOLOGY_EXCHANGE_BINDING:
		drop_where(t, e->kind, binding_is, e, &puts);
		source = strdup(e->source);
		if (source)
			maybe_drop_exchange(t, source, &puts);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&t->lock);
	free(source);
	put_all(&puts);
}

static bool consumer_is(const struct sv_topo_rec *r, const void *cons)
{
	return r->cons == cons;
}

void sv_topo_forget_consumer(struct salvo_consumer *cons)
{
	struct sv_topology *t = &cons->ch->client->topo;
	struct put_list puts = {0};
	char *queue = NULL;

	if (!atomic_load(&cons->recorded))
		return;
	pthread_mutex_lock(&t->lock);
	for (struct sv_topo_rec *r = t->head[SALVO_TOPOLOGY_CONSUMER]; r; r = r->next)
		if (r->cons == cons) {
			queue = strdup(r->dest);
			break;
		}
	drop_where(t, SALVO_TOPOLOGY_CONSUMER, consumer_is, cons, &puts);
	/* As Java's maybeDeleteRecordedAutoDeleteQueue: the broker deletes an auto-delete
	 * queue when its last consumer goes. */
	if (queue && has(t, SALVO_TOPOLOGY_QUEUE, auto_delete_named, queue) &&
	    !has(t, SALVO_TOPOLOGY_CONSUMER, to, queue))
		drop_queue(t, queue, &puts);
	pthread_mutex_unlock(&t->lock);
	free(queue);
	put_all(&puts);
}

void sv_topo_qos(salvo_channel *ch, uint32_t size, uint16_t count, bool global)
{
	struct sv_topology *t = &ch->client->topo;

	if (!t->on || self.quiet || self.rec_gen)
		return;
	pthread_mutex_lock(&t->lock);
	ch->qos_size = size;
	ch->qos_count = count;
	ch->qos_global = global;
	ch->qos_set = true;
	pthread_mutex_unlock(&t->lock);
}

bool sv_topo_pending(salvo_client *c)
{
	bool any;

	pthread_mutex_lock(&c->topo.lock);
	any = c->topo.on && c->topo.n;
	pthread_mutex_unlock(&c->topo.lock);
	return any;
}

/* Recovery. */

/* The entity recovery makes next: a copy of a record, taken under the lock. */
struct snap {
	uint64_t id;
	salvo_topology_entity e;
	char *name, *type, *source, *dest, *key;
	salvo_table *args;
	struct salvo_consumer *cons; /* referenced */
	uint32_t qos_size;
	uint16_t qos_count;
	bool qos_global, qos_set;
};

static void snap_free(struct snap *s)
{
	free(s->name), free(s->type), free(s->source), free(s->dest), free(s->key);
	salvo_table_destroy(s->args);
	if (s->cons)
		sv_consumer_put(s->cons);
	memset(s, 0, sizeof *s);
}

/* The first record of kind after id, copied into *s; false when there is none (or no
 * memory for the copy, which ends this kind's recovery early: said in the log). */
static bool next_snap(salvo_client *c, salvo_topology_kind kind, uint64_t after, struct snap *s)
{
	struct sv_topology *t = &c->topo;
	struct sv_topo_rec *r;
	bool ok = true;

	memset(s, 0, sizeof *s);
	pthread_mutex_lock(&t->lock);
	for (r = t->head[kind]; r && r->id <= after; r = r->next)
		;
	if (r) {
		s->id = r->id;
		s->name = dup_or_null(r->name), s->type = dup_or_null(r->type);
		s->source = dup_or_null(r->source), s->dest = dup_or_null(r->dest);
		s->key = dup_or_null(r->key);
		s->args = r->args ? sv_table_copy_without(r->args, NULL) : NULL;
		ok = (!r->name || s->name) && (!r->type || s->type) && (!r->source || s->source) &&
		     (!r->dest || s->dest) && (!r->key || s->key) && (!r->args || s->args);
		s->e = (salvo_topology_entity){.kind = kind,
					       .name = s->name,
					       .type = s->type,
					       .source = s->source,
					       .destination = s->dest,
					       .routing_key = s->key,
					       .flags = r->flags,
					       .arguments = s->args,
					       .server_named = r->server_named};
		if (r->cons) {
			s->cons = r->cons;
			atomic_fetch_add_explicit(&s->cons->refs, 1, memory_order_relaxed);
			s->e.channel = r->cons->ch->id;
			s->qos_size = r->cons->ch->qos_size;
			s->qos_count = r->cons->ch->qos_count;
			s->qos_global = r->cons->ch->qos_global;
			s->qos_set = r->cons->ch->qos_set;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (r && !ok) {
		sv_log(&c->set.log, SALVO_LOG_ERR, "topology",
		       "out of memory: recovery stops before the rest of this kind");
		snap_free(s);
		return false;
	}
	return r != NULL;
}

struct run {
	salvo_client *c;
	salvo_channel *ch; /* recovery's own, for declares and binds; NULL: open one */
	unsigned made;
	salvo_channel **reopened; /* consumers' channels reopened by this run */
	size_t nreopened, cap;
};

/* Did err end the connection (or the call's time) rather than refuse one entity? Then
 * this run stops: the loop reconnects, or finds the connection and runs again. */
static bool fatal(const salvo_error *err)
{
	return err->kind != SALVO_ERROR_CHANNEL;
}

static const char *const kind_names[] = {
    "", "exchange", "queue", "queue binding", "exchange binding", "consumer"};

/* An entity the broker refused: reported, and recovery goes on. */
static void failed(struct run *run, const struct snap *s, const salvo_error *err)
{
	salvo_event ev = {.kind = SALVO_EVENT_TOPOLOGY_FAILED, .entity = s->e.kind, .error = *err};
	const char *name = s->e.name ? s->e.name : s->e.destination;

	snprintf(ev.name, sizeof ev.name, "%s", name);
	if (s->e.kind == SALVO_TOPOLOGY_QUEUE_BINDING ||
	    s->e.kind == SALVO_TOPOLOGY_EXCHANGE_BINDING)
		snprintf(ev.reason, sizeof ev.reason,
			 "recovering %s '%s' -> '%s' (routing key '%.60s') failed",
			 kind_names[s->e.kind], s->e.source, s->e.destination, s->e.routing_key);
	else
		snprintf(ev.reason, sizeof ev.reason, "recovering %s '%.200s' failed",
			 kind_names[s->e.kind], name);
	ev.channel = s->e.channel;
	sv_event_push(run->c, &ev);
}

/* A queue declared again under a new name: the record, its bindings and consumers
 * follow it, and the application is told. */
static void renamed(struct run *run, const struct snap *s, const char *now)
{
	struct sv_topology *t = &run->c->topo;
	salvo_event ev = {.kind = SALVO_EVENT_QUEUE_RENAMED, .entity = SALVO_TOPOLOGY_QUEUE};
	const char *was = s->name;

	pthread_mutex_lock(&t->lock);
	for (struct sv_topo_rec *r = t->head[SALVO_TOPOLOGY_QUEUE]; r; r = r->next) {
		char *name;

		if (r->id != s->id)
			continue;
		name = strdup(now);
		if (!name)
			break;
		if (!r->first) {
			r->first = r->name;
		} else {
			free(r->old[r->old_next]);
			r->old[r->old_next] = r->name;
			r->old_next = (r->old_next + 1) % SV_TOPO_OLD_NAMES;
		}
		r->name = name;
		t->index_stale = true;
		for (int k = SALVO_TOPOLOGY_QUEUE_BINDING; k <= SALVO_TOPOLOGY_CONSUMER; k++) {
			if (k == SALVO_TOPOLOGY_EXCHANGE_BINDING)
				continue;
			for (struct sv_topo_rec *b = t->head[k]; b; b = b->next) {
				char *dest;

				if (strcmp(b->dest, was) || !(dest = strdup(now)))
					continue;
				free(b->dest);
				b->dest = dest;
			}
		}
		break;
	}
	pthread_mutex_unlock(&t->lock);
	snprintf(ev.name, sizeof ev.name, "%s", was);
	snprintf(ev.new_name, sizeof ev.new_name, "%s", now);
	snprintf(ev.reason, sizeof ev.reason, "server-named queue declared again");
	sv_event_push(run->c, &ev);
}

/* Make one exchange, queue or binding again on recovery's channel. */
static int make(struct run *run, struct snap *s, salvo_error *err)
{
	const salvo_topology_entity *e = &s->e;
	salvo_queue_info info;
	int rc;

	if (!run->ch) {
		rc = salvo_channel_open(run->c, &run->ch, err);
		if (rc) {
			err->kind = SALVO_ERROR_CONNECTION; /* no channel: nothing can be made */
			return rc;
		}
	}
	switch (e->kind) {
	case SALVO_TOPOLOGY_EXCHANGE:
		return salvo_exchange_declare(run->ch, e->name, e->type, e->flags, e->arguments,
					      err);
	case SALVO_TOPOLOGY_QUEUE:
		rc = salvo_queue_declare(run->ch, e->server_named ? "" : e->name, e->flags,
					 e->arguments, &info, err);
		if (!rc && strcmp(info.name, e->name))
			renamed(run, s, info.name);
		return rc;
	case SALVO_TOPOLOGY_QUEUE_BINDING:
		return salvo_queue_bind(run->ch, e->destination, e->source, e->routing_key,
					e->arguments, err);
	default:
		return salvo_exchange_bind(run->ch, e->destination, e->source, e->routing_key,
					   e->arguments, err);
	}
}

static bool reopened(struct run *run, salvo_channel *ch)
{
	for (size_t i = 0; i < run->nreopened; i++)
		if (run->reopened[i] == ch)
			return true;
	return false;
}

/* A consumer again, on its channel: reopened first (with its prefetch) if this run has
 * not yet. */
/* Has cons ended (its end state set: cancelled, or ended with its channel)? */
static bool consumer_ended(struct salvo_consumer *cons)
{
	bool ended;

	pthread_mutex_lock(&cons->lock);
	ended = cons->end_status != 0;
	pthread_mutex_unlock(&cons->lock);
	return ended;
}

static int remake_consumer(struct run *run, struct snap *s, salvo_error *err)
{
	salvo_channel *ch = s->cons->ch;
	int rc;

	if (!reopened(run, ch)) {
		if (run->nreopened == run->cap) {
			size_t cap = run->cap ? run->cap * 2 : 8;
			salvo_channel **v = realloc(run->reopened, cap * sizeof *v);

			if (!v)
				return sv_error_set(err, SALVO_ERR_NO_MEMORY, SALVO_ERROR_LOCAL,
						    "out of memory");
			run->reopened = v, run->cap = cap;
		}
		run->reopened[run->nreopened++] = ch;
		rc = sv_channel_reopen(ch, err);
		if (!rc && s->qos_set)
			rc = salvo_basic_qos(ch, s->qos_size, s->qos_count, s->qos_global, err);
		if (rc)
			return rc;
	}
	return sv_consumer_reissue(s->cons, s->dest, s->e.flags, s->args, err);
}

int sv_topo_recover(salvo_client *c, uint64_t generation, salvo_error *err)
{
	struct run run = {.c = c};
	salvo_event done = {.kind = SALVO_EVENT_TOPOLOGY_RECOVERED};
	int rc = 0;

	if (!c->topo.on)
		return 0;
	self.rec_gen = generation + 1;
	for (int k = SALVO_TOPOLOGY_EXCHANGE; k <= SALVO_TOPOLOGY_CONSUMER && !rc; k++) {
		struct snap s;
		uint64_t after = 0;

		while (!rc && next_snap(c, (salvo_topology_kind)k, after, &s)) {
			after = s.id;
			if (k == SALVO_TOPOLOGY_CONSUMER &&
			    (atomic_load_explicit(&s.cons->ch->state, memory_order_acquire) ==
				 SV_CH_CLOSED ||
			     atomic_load(&s.cons->abandoned) || consumer_ended(s.cons))) {
				/* Its channel was closed (by the application meanwhile, or by a
				 * refusal of this run), it is being destroyed, or it ended (at the
				 * loss, recorded just after): it is not made again. */
				sv_topo_forget_consumer(s.cons);
			} else if (c->topo.filter && !c->topo.filter(&s.e, c->topo.filter_arg)) {
				/* Skipped. A consumer not made again ends (the loop's sweep). */
				if (k == SALVO_TOPOLOGY_CONSUMER)
					sv_topo_forget_consumer(s.cons);
			} else {
				salvo_error e;

				memset(&e, 0, sizeof e);
				rc = k == SALVO_TOPOLOGY_CONSUMER ? remake_consumer(&run, &s, &e)
								  : make(&run, &s, &e);
				if (!rc) {
					run.made++;
				} else if (fatal(&e)) {
					*err = e;
				} else {
					failed(&run, &s, &e);
					if (k == SALVO_TOPOLOGY_CONSUMER) {
						sv_topo_forget_consumer(s.cons);
					} else {
						/* The refusal closed recovery's channel. */
						salvo_channel_close(run.ch, NULL);
						run.ch = NULL;
					}
					rc = 0;
				}
			}
			snap_free(&s);
		}
	}
	if (run.ch)
		salvo_channel_close(run.ch, NULL);
	free(run.reopened);
	self.rec_gen = 0;
	if (rc)
		return rc;
	done.attempt = run.made;
	snprintf(done.reason, sizeof done.reason, "%u entities recovered", run.made);
	sv_event_push(c, &done);
	return 0;
}

int salvo_client_queue_name(salvo_client *c, const char *name, char *buf, size_t len)
{
	struct sv_topology *t;
	const char *now = name;
	int rc = 0;

	if (!c || !name || !buf)
		return SALVO_ERR_INVALID_ARGUMENT;
	t = &c->topo;
	pthread_mutex_lock(&t->lock);
	for (struct sv_topo_rec *r = t->head[SALVO_TOPOLOGY_QUEUE]; r; r = r->next) {
		bool match = r->first && !strcmp(r->first, name);

		for (int i = 0; i < SV_TOPO_OLD_NAMES && !match; i++)
			match = r->old[i] && !strcmp(r->old[i], name);
		if (match) {
			now = r->name;
			break;
		}
	}
	if (strlen(now) >= len)
		rc = SALVO_ERR_INVALID_ARGUMENT;
	else
		memcpy(buf, now, strlen(now) + 1);
	pthread_mutex_unlock(&t->lock);
	return rc;
}
