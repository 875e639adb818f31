/* SPDX-License-Identifier: MIT */
/*
 * Topology recording and recovery (topology.c): what the application declared through a
 * client, recorded when the call succeeds and forgotten when deleted, and made again
 * after a reconnection on the hooks' thread, before the on-connect hooks.
 *
 * The calls that declare (channel.c, consumer.c) use it in two steps around their
 * round trip: sv_topo_reserve before anything is sent (the bound:
 * topology_recovery.max_entities), sv_topo_record after, with the call's status.
 */
#ifndef SALVO_TOPOLOGY_H
#define SALVO_TOPOLOGY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "salvo.h"

struct salvo_consumer;
struct sv_topo_rec;

/* A client's record, under lock (leaves: no other lock is taken while it is held). */
struct sv_topology {
	pthread_mutex_t lock;
	bool on;    /* topology_recovery */
	size_t max; /* topology_recovery.max_entities */
	salvo_topology_filter_fn filter;
	void *filter_arg;
	/* By kind (salvo_topology_kind), in the order first recorded. */
	struct sv_topo_rec *head[SALVO_TOPOLOGY_CONSUMER + 1];
	struct sv_topo_rec **tail[SALVO_TOPOLOGY_CONSUMER + 1];
	size_t n, reserved; /* recorded, and promised to calls in flight */
	uint64_t next_id;
	/* Exchanges, queues and bindings by hash of what names them, for the lookup of
	 * each declare (a bulk of bindings would otherwise walk the list per call); built
	 * again at the next lookup after a record is dropped or renamed (stale). */
	struct sv_topo_rec **index;
	size_t index_cap; /* buckets, a power of two; 0: none yet */
	bool index_stale;
};

/* What sv_topo_reserve decided, for sv_topo_record. */
struct sv_topo_ticket {
	bool recording; /* this call's entity is to be recorded */
	bool reserved;	/* and one more slot of the bound was promised to it */
};

void sv_topo_init(struct sv_topology *t, const salvo_conf *conf);
void sv_topo_free(struct sv_topology *t);

/*
 * Before a declare, bind or consume of e on ch is sent: whether it is to be recorded
 * (topology_recovery on; not passive; not on a listener's or recovery's own thread; a
 * consumer not SALVO_CONSUME_NO_RECOVERY nor on a publisher's channel), and room for it.
 * Returns 0, or SALVO_ERR_LIMIT (err names the key) when it would be one entity too many.
 */
int sv_topo_reserve(salvo_channel *ch, const salvo_topology_entity *e, struct sv_topo_ticket *t,
		    salvo_error *err);
/* After it: status 0 records e (a consumer's cons, referenced by the record), anything
 * else only gives the reservation back. */
void sv_topo_record(salvo_channel *ch, const salvo_topology_entity *e, struct salvo_consumer *cons,
		    const struct sv_topo_ticket *t, int status);
/* A successful exchange.delete, queue.delete, queue.unbind or exchange.unbind of e (kind
 * EXCHANGE, QUEUE, QUEUE_BINDING, EXCHANGE_BINDING): forget it and what depends on it. */
void sv_topo_forget(salvo_client *c, const salvo_topology_entity *e);
/* The consumer has ended by a cancel (either side) or is being destroyed: forget it, and
 * an auto-delete queue it was the last recorded consumer of. Any thread. */
void sv_topo_forget_consumer(struct salvo_consumer *cons);
/* A successful basic.qos on ch: the prefetch its consumers are recovered with. */
void sv_topo_qos(salvo_channel *ch, uint32_t size, uint16_t count, bool global);

/* Recording on this thread is suspended (a listener making its consumer) between on and
 * off; calls nest. */
void sv_topo_quiet(bool on);
/* On topology recovery's thread: the connection it works for, plus one; 0 elsewhere.
 * Requests carry it (sv_request.rec_gen). */
uint64_t sv_topo_rec_gen(void);

/* Is there anything to recover after a reconnection? Any thread. */
bool sv_topo_pending(salvo_client *c);
/*
 * The hooks' thread, after the reconnection that made connection generation: make the
 * recorded topology again (salvo.h, "Topology recovery"). Returns 0, or the error that
 * stopped it (the connection lost again, a timeout) in err: the loop then tries again.
 */
int sv_topo_recover(salvo_client *c, uint64_t generation, salvo_error *err);

#endif
