/* SPDX-License-Identifier: MIT */
/*
 * futex_pingpong: what one thread wake-up costs on this machine. Two threads hand a turn
 * back and forth through two futex words (wake the other, sleep until woken), N times;
 * prints microseconds per round trip (two wake-ups). A sync-confirm publish costs at
 * least one wake-up of its thread, so this bounds what sync publishing can reach. Pin
 * both threads to one core with `taskset -c 0` to see the cost without a cross-core IPI.
 *
 * usage: futex_pingpong [ROUND_TRIPS]   (default 200000)
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint32_t ping, pong;
static uint32_t rounds = 200000;

static void wait_past(_Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void bump(_Atomic uint32_t *w)
{
	atomic_fetch_add(w, 1);
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *other(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < rounds; i++) {
		wait_past(&ping, i);
		bump(&pong);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec a, b;
	pthread_t t;
	double s;

	if (argc > 1)
		rounds = (uint32_t)strtoul(argv[1], NULL, 10);
	if (!rounds || pthread_create(&t, NULL, other, NULL)) {
		fprintf(stderr, "usage: futex_pingpong [ROUND_TRIPS]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint32_t i = 0; i < rounds; i++) {
		bump(&ping);
		wait_past(&pong, i);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("{\"round_trips\": %u, \"us_per_round_trip\": %.2f}\n", rounds, s / rounds * 1e6);
	return 0;
}
