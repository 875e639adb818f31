/* SPDX-License-Identifier: MIT */
/*
 * Parking the I/O thread, and kicking it awake: both sides of the handshake.
 *
 * With nothing in flight to wait for and nothing to send, the I/O thread parks: it sets
 * c->parked (sv_park_begin), fences, and looks once more for work before sleeping in
 * io_uring with a read of c->wake_fd armed (sv_park_arm_wake). A futex cannot end a sleep
 * in io_uring_enter; a completed read of an eventfd can, so waking is an eventfd write.
 *
 * A producer whose commit found its ring idle (sent == its head before the commit)
 * fences and writes wake_fd if it sees parked (sv_kick_after_commit, sv_client_kick): the
 * two fences make sure one side sees the other's store. A producer that finds bytes of its
 * own still unsent skips the fence: the I/O thread has work from it and will come back.
 * The catch is a stale sent: the producer may read an old sent (its load can pass its own
 * unfenced store of head), see "not idle", skip the kick, while the I/O thread marks the
 * bytes sent, misses the new head and parks. So after a send of ring bytes the thread
 * lingers before it sleeps (sv_park_linger): parked and fenced, it looks at the rings
 * again and again for SV_LINGER_NS. A message can be stranded only if the producer's head
 * store stays invisible for the whole linger, 5 µs, while store buffers drain in
 * nanoseconds (a context switch or a virtual CPU's exit drains them at once); and once the
 * thread sleeps, the ring is idle as of a sent written at least a linger ago, so the next
 * producer sees it idle and takes the fenced path. The linger spins rather than sleeps:
 * a sleep of the same length cost a wake-up per send, the largest part of the client's
 * CPU when publishing with confirms to RabbitMQ.
 *
 * A read held back (io_recv.c) must end early when a producer starts to wait for what it
 * brings: a confirm, or ring space confirms free. Parked, the thread is kicked as for any
 * work. Asleep with a send in flight it is not parked (a producer's commit need not wake
 * it: the send's completion will), so it sets hold_sleep instead, fences and looks at the
 * producers once more (sv_recv_hold_cut); a producer that starts to wait stores what it
 * waits for, fences (in sv_client_kick) and writes wake_fd if it sees hold_sleep
 * (sv_waiter_kick). One of the two sees the other's store, as with parked.
 *
 * Requests, the hooks' end and a consumer taking enough to resume reads are rare: they
 * write wake_fd whether the thread is parked or not (sv_client_wake).
 *
 * Settles ride along with a short sleep. A thread that parks with a deadline at most
 * SV_PARK_SOON_NS away (a read held back, a batch closing, a heartbeat due) parks as
 * SV_PARKED_SOON: it will take the settle stack on its own within that time, so an ack
 * does not wake it (sv_settle_kick); a producer's commit still does. A consumer of a
 * stream acks while the thread holds its next read (io_recv.c), and its acks then leave
 * with the hold's end instead of costing a wake-up each batch. The same two fences order
 * the handshake: a settle pusher that read SV_PARKED_SOON pushed before the thread's
 * look at the stack or while the thread's sleep is bounded; the thread that parks for
 * long stores SV_PARKED before its fence and its last look at the stack.
 */
#include <sys/eventfd.h>

#include "io_internal.h"
#include "park.h"

void sv_park_arm_wake(salvo_client *c)
{
	struct io_uring_sqe *sqe;

	if (c->wake_inflight)
		return;
	sqe = io_uring_get_sqe(&c->uring);
	io_uring_prep_read(sqe, c->wake_fd, &c->wake_value, sizeof c->wake_value, 0);
	io_uring_sqe_set_data64(sqe, SV_UD_WAKE);
	c->wake_inflight = true;
}

void sv_park_begin(salvo_client *c, bool soon)
{
	atomic_store_explicit(&c->parked, soon ? SV_PARKED_SOON : SV_PARKED,
			      memory_order_relaxed);
	/* Pairs with the fence in sv_client_kick: either the producer sees parked, or the
	 * look for work that follows sees the producer's work. */
	atomic_thread_fence(memory_order_seq_cst);
}

void sv_park_end(salvo_client *c)
{
	atomic_store_explicit(&c->parked, 0, memory_order_relaxed);
}

/* A flag the I/O thread set before it slept: clear it, and say whether this thread did
 * (only that one writes wake_fd). The load first keeps the line shared while unset. */
static bool claim(_Atomic int *flag)
{
	return atomic_load_explicit(flag, memory_order_relaxed) &&
	       atomic_exchange_explicit(flag, 0, memory_order_relaxed);
}

/* Wake the sleeping I/O thread, counted as a kick. */
static void kick(salvo_client *c)
{
	atomic_fetch_add_explicit(&c->ioctr.kicks, 1, memory_order_relaxed);
	eventfd_write(c->wake_fd, 1);
}

void sv_client_kick(salvo_client *c)
{
	/* Pairs with the fence in sv_park_begin: either it sees our work, or we see
	 * parked == 1. The caller's work (ring head, queue) was stored before this fence. */
	atomic_thread_fence(memory_order_seq_cst);
	if (claim(&c->parked))
		kick(c);
}

bool sv_park_linger(salvo_client *c)
{
	uint64_t until = sv_now_ns() + SV_LINGER_NS;

	do {
		if (!sv_rings_idle(c))
			return true;
		ck_pr_stall();
	} while (sv_now_ns() < until);
	/* A look after the linger's end, however late this thread ran it (preempted
	 * between two looks): the last one is at least SV_LINGER_NS after sent's store. */
	return !sv_rings_idle(c);
}

void sv_settle_kick(salvo_client *c)
{
	int parked = SV_PARKED;

	/* As sv_client_kick, but a thread parked SV_PARKED_SOON is left to come by itself. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->parked, memory_order_relaxed) == SV_PARKED &&
	    atomic_compare_exchange_strong_explicit(&c->parked, &parked, 0, memory_order_relaxed,
						    memory_order_relaxed))
		kick(c);
}

void sv_hold_sleep_begin(salvo_client *c)
{
	atomic_store_explicit(&c->hold_sleep, 1, memory_order_relaxed);
	/* Pairs with the fence in sv_waiter_kick (sv_client_kick's): either the waiter sees
	 * hold_sleep, or the look at the producers that follows (sv_recv_hold_cut) sees its
	 * ev_want or its full ring. */
	atomic_thread_fence(memory_order_seq_cst);
}

void sv_hold_sleep_end(salvo_client *c)
{
	atomic_store_explicit(&c->hold_sleep, 0, memory_order_relaxed);
}

void sv_waiter_kick(salvo_client *c)
{
	sv_client_kick(c); /* its fence orders the caller's ev_want (or ring) before the load */
	if (claim(&c->hold_sleep))
		kick(c);
}

void sv_kick_after_commit(salvo_client *c, bool ring_was_idle)
{
	/* With bytes of ours still unsent it is busy with them and comes back for this
	 * message without a kick, so a stream of publishes pays no fence per message (the
	 * fence cost 41% of the client's CPU at 5M msgs/s). */
	if (ring_was_idle || atomic_load_explicit(&c->parked, memory_order_relaxed))
		sv_client_kick(c);
}

void sv_client_wake(salvo_client *c)
{
	eventfd_write(c->wake_fd, 1);
}
