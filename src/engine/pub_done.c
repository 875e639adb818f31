/* SPDX-License-Identifier: MIT */
/*
 * A confirm-mode publisher waiting for outcomes: both sides of the handshake.
 *
 * The I/O thread publishes done, the highest sequence number below which every message
 * has an outcome (written into the slots before). A producer that needs done to reach seq
 * (a sync publish, a full window, wait_confirms) stores seq in ev_want, fences and looks
 * at done before sleeping on ev_seq; the I/O thread stores done, fences and bumps ev_seq
 * only if done has reached ev_want. It is the ring's Dekker handshake again (ring.c): one
 * of the two sees the other's store. A producer that is not asleep costs the I/O thread a
 * fence and a load, a burst of acks for many sync publishers wakes each sleeping one
 * exactly once, and an async producer waiting for a quarter of its window is not woken
 * per confirm (an event count that wakes on every increment would do that: ck_ec).
 *
 * When the I/O thread exits it lets go of each publisher (orphaned) and wakes it: from
 * then on the producer fails what it commits itself.
 */
#include <errno.h>
#include <limits.h>

#include "park.h"
#include "pub_done.h"

void sv_done_publish(struct salvo_publisher *p, uint64_t done)
{
	/* Release: the outcomes written before are visible to whoever loads done. */
	atomic_store_explicit(&p->done, done, memory_order_release);
	/* Dekker with the fence in sv_done_wait: done or ev_want is seen. */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t want = atomic_load_explicit(&p->ev_want, memory_order_relaxed);
	if (want && done >= want) {
		sv_futex_bump(&p->ev_seq, 1);
	}
}

void sv_done_orphan(struct salvo_publisher *p)
{
	atomic_store_explicit(&p->orphaned, 1, memory_order_release);
	/* Dekker with sv_done_wait's fence: it sees orphaned, or this sees it sleeping. */
	atomic_thread_fence(memory_order_seq_cst);
	sv_futex_bump(&p->ev_seq, INT_MAX);
}

uint64_t sv_done_load(struct salvo_publisher *p)
{
	/* Acquire: pairs with the I/O thread's release; the slots' outcomes are visible. */
	return atomic_load_explicit(&p->done, memory_order_acquire);
}

int sv_done_wait(struct salvo_publisher *p, uint64_t seq, const struct timespec *deadline)
{
	int rc = 0;

	if (sv_done_load(p) >= seq)
		return 0;
	for (;;) {
		uint32_t ev = atomic_load_explicit(&p->ev_seq, memory_order_acquire);

		atomic_store_explicit(&p->ev_want, seq, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		if (sv_done_load(p) >= seq)
			break;
		/* After ev_want is visible: an I/O thread holding back its next read for longer
		 * than this wait allows (io_pub.c, sv_pubs_hold_ns) sees it when this wakes
		 * it, or before it sleeps (park.c). */
		sv_waiter_kick(p->client);
		if (atomic_load_explicit(&p->orphaned, memory_order_acquire)) {
			rc = -EOWNERDEAD;
			break;
		}
		rc = sv_futex_wait(&p->ev_seq, ev, deadline);
		if (rc == -ETIMEDOUT) {
			rc = sv_done_load(p) >= seq ? 0 : -ETIMEDOUT;
			break;
		}
		rc = 0;
	}
	atomic_store_explicit(&p->ev_want, 0, memory_order_relaxed);
	return rc;
}
