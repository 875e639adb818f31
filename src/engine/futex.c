/* SPDX-License-Identifier: MIT */
/*
 * The engine's only futex calls: process-private waits and wakes on a 32-bit word. Each
 * waiter and waker pair documents its own handshake (ring.c, pub_done.c, request.c).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"

int sv_futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *deadline)
{
	/* WAIT_BITSET takes an absolute time; without FUTEX_CLOCK_REALTIME it is monotonic. */
	if (syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, deadline, NULL,
		    FUTEX_BITSET_MATCH_ANY) < 0)
		return -errno;
	return 0;
}

void sv_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

void sv_futex_bump(_Atomic uint32_t *word, int n)
{
	/* Relaxed: the caller's fence before its check of the waiter orders what the woken
	 * thread must see; the new value only makes a wait that read the old one fail. */
	atomic_fetch_add_explicit(word, 1, memory_order_relaxed);
	sv_futex_wake(word, n);
}
