/* SPDX-License-Identifier: MIT */
/*
 * A publisher's byte ring: one producer thread appends pre-encoded frames, the I/O thread
 * sends them and later releases the space (at once in best-effort mode, on confirm
 * otherwise). Bytes between released and sent stay readable for retransmission.
 *
 * Positions are 64-bit byte counters that only grow: released <= sent <= head <=
 * released + capacity. The buffer is mapped twice back to back, so any span of up to
 * capacity bytes is contiguous in memory whatever its offset: a message is written with
 * one copy and any range is sent as one iovec. ring.c explains the synchronisation.
 */
#ifndef SALVO_RING_H
#define SALVO_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SV_RING_MAX_CAPACITY ((size_t)1 << 30)

/* The cache line of x86-64 and of most arm64 cores. */
#define SV_CACHE_LINE 64

struct sv_ring {
	/* Fixed by sv_ring_init. */
	uint8_t *base; /* 2 * capacity bytes: the buffer, then the same pages again */
	size_t capacity;

	/* Written by the producer, read by the I/O thread. */
	alignas(SV_CACHE_LINE) _Atomic uint64_t head;

	/* Producer only: a released position it loaded earlier; never ahead of released. */
	alignas(SV_CACHE_LINE) uint64_t released_seen;

	/* Written by the I/O thread; the producer reads released when its copy says full. */
	alignas(SV_CACHE_LINE) _Atomic uint64_t sent;
	_Atomic uint64_t released;

	/*
	 * A blocked producer and the I/O thread meet here; written only around a block.
	 * waiting: 0, or the released position the producer needs: it is, or is about to
	 * be, asleep on the futex word wake_seq, which the I/O thread bumps to wake it once
	 * released gets there (not before: a wake-up per small release would cost a context
	 * switch per few messages).
	 */
	alignas(SV_CACHE_LINE) _Atomic uint64_t waiting;
	_Atomic uint32_t wake_seq;
	_Atomic uint32_t interrupted; /* set once by sv_ring_interrupt: waits return -ECANCELED */
};

/*
 * Map a ring of at least capacity bytes, rounded up to a power of two and to at least a
 * page. Before any other call; not thread-safe. Returns 0, -EINVAL for 0 or more than
 * SV_RING_MAX_CAPACITY, or the -errno of memfd_create, ftruncate or mmap (-ENOMEM,
 * -EMFILE, ...), in which case nothing stays mapped or open.
 */
int sv_ring_init(struct sv_ring *r, size_t capacity);

/* Unmap the ring. After both threads are done with it. */
void sv_ring_destroy(struct sv_ring *r);

/* Any thread. */
static inline size_t sv_ring_capacity(const struct sv_ring *r)
{
	return r->capacity;
}

/*
 * Producer only. A pointer to n contiguous writable bytes at head, or NULL when fewer than
 * n bytes are free (always when n > capacity). Never blocks. The bytes become visible to
 * the I/O thread only at sv_ring_commit; reserving again before that returns the same place.
 */
uint8_t *sv_ring_reserve(struct sv_ring *r, size_t n);

/* Producer only. Publish the first n bytes of the last reservation (n up to its size). */
void sv_ring_commit(struct sv_ring *r, size_t n);

/*
 * Producer only. Block until n bytes are free, or until deadline (CLOCK_MONOTONIC,
 * absolute; NULL waits for ever). Returns 0 with the space free (then sv_ring_reserve(r, n)
 * succeeds), -ETIMEDOUT, -ECANCELED after sv_ring_interrupt, or -EINVAL when n > capacity or
 * deadline is not a valid time.
 * Space is freed only by sv_ring_release, so waiting for ever needs an I/O thread that
 * will release.
 */
int sv_ring_wait_space(struct sv_ring *r, size_t n, const struct timespec *deadline);

/*
 * I/O thread only. Make sv_ring_wait_space return -ECANCELED, now and from then on, without
 * freeing any space: the ring's channel has closed while its bytes may still be in flight,
 * and the producer must learn it without waiting for room that may never come.
 */
void sv_ring_interrupt(struct sv_ring *r);

/*
 * Producer, while the I/O thread has let go of the ring (a publisher reopening its
 * channel): waits block again. The attach that hands the ring back orders it.
 */
void sv_ring_clear_interrupt(struct sv_ring *r);

/*
 * I/O thread only. The committed bytes not yet sent, [sent, head): sets *p to the first and
 * returns how many (0 when there are none; never more than capacity).
 */
size_t sv_ring_pending(struct sv_ring *r, const uint8_t **p);

/* I/O thread only. The kernel took the next n pending bytes (a short write is fine). */
void sv_ring_mark_sent(struct sv_ring *r, size_t n);

/*
 * I/O thread only. Forget that [released, sent) was sent: those bytes go out again (after
 * a reconnection, to the new connection). Only when none of them is in flight.
 */
void sv_ring_rewind(struct sv_ring *r);

/*
 * I/O thread only. Give the bytes before pos back to the producer: released <= pos <= sent.
 * Only once the kernel is done with them (a send that carried them has completed) and
 * no retransmission can need them. Wakes the producer if it is blocked in
 * sv_ring_wait_space and pos reaches the released position it waits for (waiting).
 * Costs a full fence.
 */
void sv_ring_release(struct sv_ring *r, uint64_t pos);

/*
 * I/O thread only. The byte at absolute position pos, for resending [released, sent): with
 * released <= pos <= sent, the sent - pos bytes from there are contiguous.
 */
static inline const uint8_t *sv_ring_at(const struct sv_ring *r, uint64_t pos)
{
	return r->base + (pos & (r->capacity - 1));
}

/*
 * Any thread; a snapshot that may be stale by the time it returns (exact from the thread
 * that writes the position). For tests, stats and the I/O thread's bookkeeping.
 */
static inline uint64_t sv_ring_head(const struct sv_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_relaxed);
}

static inline uint64_t sv_ring_sent(const struct sv_ring *r)
{
	return atomic_load_explicit(&r->sent, memory_order_relaxed);
}

static inline uint64_t sv_ring_released(const struct sv_ring *r)
{
	return atomic_load_explicit(&r->released, memory_order_relaxed);
}

#endif
