/* SPDX-License-Identifier: MIT */
/*
 * The publisher's SPSC byte ring.
 *
 * Three 64-bit positions count bytes since the ring was made and never wrap (at 100 GB/s
 * that takes five years): head, written only by the producer; sent and released, written
 * only by the I/O thread. Free space is capacity - (head - released); what is pending is
 * head - sent; a position's place in the buffer is pos & (capacity - 1).
 *
 * The mirror. The memfd holding the buffer is mapped twice, back to back, into one
 * reservation of 2 * capacity bytes. Byte base[i + capacity] is byte base[i], so the
 * capacity bytes starting at any offset are contiguous: the producer writes a message
 * with one copy, the I/O thread sends any range with one iovec, and nobody splits at the
 * end of the buffer. The price is that capacity is a power of two and whole pages.
 *
 * Publishing bytes (producer -> I/O thread). The producer writes the bytes, then stores
 * head with release; the I/O thread loads head with acquire before it reads them. The I/O
 * thread does not cache head: it wants the largest batch, and one load per loop iteration
 * is nothing next to the send it prepares.
 *
 * Returning space (I/O thread -> producer). The I/O thread is done with a byte once the
 * kernel has copied it and no retransmission can need it; it then stores released with
 * release, and the producer loads released with acquire before overwriting, so the
 * overwrite cannot be seen by reads made before the release. The producer keeps the last
 * value it loaded in released_seen and loads again only when that value says the ring is
 * too full: a stale value only underestimates free space, and the line holding released
 * is touched once per fill of the ring instead of once per message.
 *
 * Blocking. A producer that finds no room sleeps on the futex word wake_seq. The lost
 * wake-up to avoid is: the producer sees the ring full, the I/O thread releases and sees
 * nobody waiting, the producer sleeps for ever. Both sides do a store, a full fence, then a
 * load of what the other stored (Dekker):
 *
 *	producer                              I/O thread
 *	seq = wake_seq (acquire)              released = pos (release)
 *	waiting = needed released             full fence
 *	full fence                            if (waiting && pos >= waiting)
 *	if (room in released) return 0            wake_seq++, FUTEX_WAKE
 *	FUTEX_WAIT(wake_seq, seq)
 *
 * The fences order each store before the following load, so at least one side sees the
 * other's store: either the producer finds room, or the I/O thread sees waiting and bumps
 * wake_seq (when its release gives the room; a smaller one leaves that to a later release). A bump made before FUTEX_WAIT makes the kernel's compare with seq fail and the
 * producer checks again; a bump made after wakes it. The producer reads seq before its
 * check, and with acquire: had it read an already bumped value, that acquire makes the
 * release (which the I/O thread's fence precedes) visible, so its check finds the room.
 * The I/O thread pays one full fence per release and a syscall only when a producer
 * really sleeps.
 */
#include "ring.h"
#include "futex.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t round_up_pow2(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

int sv_ring_init(struct sv_ring *r, size_t capacity)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *base;
	int fd, err;

	if (capacity == 0 || capacity > SV_RING_MAX_CAPACITY)
		return -EINVAL;
	/* A power of two at least a page long is a whole number of pages. */
	capacity = round_up_pow2(capacity < page ? page : capacity);

	fd = memfd_create("salvo-ring", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)capacity) < 0) {
		err = -errno;
		goto close_fd;
	}
	/* Reserve both halves at once so that nothing else can land between them. */
	base =
	    mmap(NULL, 2 * capacity, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		goto close_fd;
	}
	for (size_t half = 0; half < 2; half++) {
		if (mmap(base + half * capacity, capacity, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
			err = -errno;
			munmap(base, 2 * capacity);
			goto close_fd;
		}
	}
	/* The mappings hold the memory; the descriptor is no longer needed. */
	close(fd);

	r->base = base;
	r->capacity = capacity;
	atomic_init(&r->head, 0);
	r->released_seen = 0;
	atomic_init(&r->sent, 0);
	atomic_init(&r->released, 0);
	atomic_init(&r->waiting, 0);
	atomic_init(&r->wake_seq, 0);
	atomic_init(&r->interrupted, 0);
	return 0;

close_fd:
	close(fd);
	return err;
}

void sv_ring_destroy(struct sv_ring *r)
{
	munmap(r->base, 2 * r->capacity);
	r->base = NULL;
}

/* Producer only: whether n bytes at head are free, as far as the last loaded released says. */
static bool has_room(const struct sv_ring *r, uint64_t head, size_t n)
{
	return head + n - r->released_seen <= r->capacity;
}

/* Producer only: load released again. */
static void reload_released(struct sv_ring *r)
{
	/*
	 * Pairs with the store-release in sv_ring_release: the I/O thread's last use of the
	 * bytes before the new released happens before the producer overwrites them.
	 */
	r->released_seen = atomic_load_explicit(&r->released, memory_order_acquire);
}

uint8_t *sv_ring_reserve(struct sv_ring *r, size_t n)
{
	/* The producer is head's only writer, so it reads its own value. */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	if (n > r->capacity)
		return NULL;
	if (!has_room(r, head, n)) {
		reload_released(r);
		if (!has_room(r, head, n))
			return NULL;
	}
	return r->base + (head & (r->capacity - 1));
}

void sv_ring_commit(struct sv_ring *r, size_t n)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);

	assert(has_room(r, head, n));
	/*
	 * Pairs with the load-acquire of head in sv_ring_pending: the I/O thread that sees the
	 * new head sees the bytes written before it.
	 */
	atomic_store_explicit(&r->head, head + n, memory_order_release);
}

int sv_ring_wait_space(struct sv_ring *r, size_t n, const struct timespec *deadline)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t seq;
	int err;

	if (n > r->capacity)
		return -EINVAL;
	reload_released(r);
	if (has_room(r, head, n))
		return 0;
	for (;;) {
		/*
		 * Read before the check below, so that a bump after the check makes it stale
		 * and the kernel refuses to sleep. The acquire pairs with the I/O thread's full
		 * fence before its bump: having read a bumped value, the check below sees the
		 * release that came with it.
		 */
		seq = atomic_load_explicit(&r->wake_seq, memory_order_acquire);
		/* Room means released >= head + n - capacity, which is above released now. */
		atomic_store_explicit(&r->waiting, head + n - r->capacity, memory_order_relaxed);
		/*
		 * Dekker with the fence in sv_ring_release: the store of waiting is ordered
		 * before the load of released, as the I/O thread orders its store of released
		 * before its load of waiting; one of us sees the other's store.
		 */
		atomic_thread_fence(memory_order_seq_cst);
		reload_released(r);
		if (has_room(r, head, n)) {
			err = 0;
			break;
		}
		/* Ordered by the same fence: sv_ring_interrupt stores, fences, then reads waiting. */
		if (atomic_load_explicit(&r->interrupted, memory_order_relaxed)) {
			err = -ECANCELED;
			break;
		}
		/* 0: woken; -EAGAIN: a bump came first; -EINTR: a signal. All mean look again. */
		err = sv_futex_wait(&r->wake_seq, seq, deadline);
		if (err != 0 && err != -EAGAIN && err != -EINTR)
			break;
	}
	/* Seen late, a stale flag costs the I/O thread one needless wake-up. */
	atomic_store_explicit(&r->waiting, 0, memory_order_relaxed);
	if (err == -ETIMEDOUT) {
		/* Room that came with the deadline still counts. */
		reload_released(r);
		if (has_room(r, head, n))
			return 0;
	}
	return err;
}

void sv_ring_clear_interrupt(struct sv_ring *r)
{
	atomic_store_explicit(&r->interrupted, 0, memory_order_relaxed);
}

void sv_ring_interrupt(struct sv_ring *r)
{
	atomic_store_explicit(&r->interrupted, 1, memory_order_relaxed);
	/* Dekker with the producer's fence in sv_ring_wait_space, as in sv_ring_release. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->waiting, memory_order_relaxed)) {
		sv_futex_bump(&r->wake_seq, 1);
	}
}

size_t sv_ring_pending(struct sv_ring *r, const uint8_t **p)
{
	uint64_t sent = atomic_load_explicit(&r->sent, memory_order_relaxed);
	/*
	 * Pairs with the store-release in sv_ring_commit: the bytes before head are written.
	 */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

	*p = sv_ring_at(r, sent);
	return (size_t)(head - sent);
}

void sv_ring_mark_sent(struct sv_ring *r, size_t n)
{
	/* Only this thread writes sent; others read it only as a statistic. */
	uint64_t sent = atomic_load_explicit(&r->sent, memory_order_relaxed);

	assert(n <= atomic_load_explicit(&r->head, memory_order_relaxed) - sent);
	atomic_store_explicit(&r->sent, sent + n, memory_order_relaxed);
}

void sv_ring_rewind(struct sv_ring *r)
{
	/* Only this thread writes sent; the bytes from released on are still committed. */
	atomic_store_explicit(&r->sent, atomic_load_explicit(&r->released, memory_order_relaxed),
			      memory_order_relaxed);
}

void sv_ring_release(struct sv_ring *r, uint64_t pos)
{
	assert(pos >= atomic_load_explicit(&r->released, memory_order_relaxed));
	assert(pos <= atomic_load_explicit(&r->sent, memory_order_relaxed));
	/*
	 * Pairs with the load-acquire in reload_released: whatever this thread (and, through
	 * the send that completed, the kernel) read of the bytes before pos happens before the
	 * producer overwrites them.
	 */
	atomic_store_explicit(&r->released, pos, memory_order_release);
	/*
	 * Dekker with the fence in sv_ring_wait_space: the store of released is ordered before
	 * the load of waiting, so either the producer's recheck sees this release or this load
	 * sees waiting set. As a release fence it also pairs with the producer's acquire load
	 * of wake_seq, for the bump below.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t want = atomic_load_explicit(&r->waiting, memory_order_relaxed);
	if (want && pos >= want) {
		/* One producer per ring, so at most one sleeper. */
		sv_futex_bump(&r->wake_seq, 1);
	}
}
