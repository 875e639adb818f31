/* SPDX-License-Identifier: MIT */
/*
 * Futex waits and wakes (futex.c, the only place that calls futex).
 */
#ifndef SALVO_FUTEX_H
#define SALVO_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/*
 * Sleep while *word == val, until woken or until deadline (CLOCK_MONOTONIC, absolute; NULL:
 * no limit). Returns 0 when woken, -EAGAIN when *word had already changed, -ETIMEDOUT,
 * -EINTR. Process-private futex.
 */
int sv_futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *deadline);

/* Wake up to n threads sleeping on word. */
void sv_futex_wake(_Atomic uint32_t *word, int n);

/* Change word, so that a waiter about to sleep on its old value does not, and wake up to
 * n threads sleeping on it. */
void sv_futex_bump(_Atomic uint32_t *word, int n);

#endif
