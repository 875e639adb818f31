/* SPDX-License-Identifier: MIT */
/*
 * sync_waiters: the bare limit of the sync-confirm pattern on this machine, with no
 * network and no broker. N threads each post a request and sleep until it is answered;
 * one waker thread takes every request posted so far in one go (as salvo's I/O thread
 * takes what its producers committed), answers them and wakes each poster. The requests
 * per second it reaches are what any client whose publishing threads sleep for their
 * confirms can reach here at best; salvo's sync figure against salvo-sink is compared
 * with it (scripts/bench.sh, docs/benchmarks.md).
 *
 * Each poster: read its word, push its request on a lock-free stack (wake the waker if
 * the stack was empty), futex-wait until its word moves. The waker: take the whole
 * stack with one exchange, bump and futex-wake each poster's word; with nothing posted,
 * futex-wait on its own word, which posters bump before waking it.
 *
 * usage: sync_waiters [--threads N] [--seconds S] [--json]   (defaults 64, 3)
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct poster {
	_Alignas(64) _Atomic uint32_t word; /* bumped by the waker: the request is answered */
	struct poster *next;		    /* in the stack while posted */
	pthread_t thread;
};

static _Atomic(struct poster *) posted;	  /* requests not yet taken */
static _Alignas(64) _Atomic uint32_t waker_word; /* bumped by a poster that found it empty */
static _Atomic bool waker_sleeping, stop;
static uint64_t batches, taken;

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *post_main(void *arg)
{
	struct poster *p = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint32_t v = atomic_load(&p->word);
		struct poster *head = atomic_load(&posted);

		do
			p->next = head;
		while (!atomic_compare_exchange_weak(&posted, &head, p));
		/* The first request since the waker emptied the stack wakes it, if it sleeps
		 * (seq_cst: either it sees the request, or we see it sleeping). */
		if (!head && atomic_load(&waker_sleeping)) {
			atomic_fetch_add(&waker_word, 1);
			futex_wake(&waker_word);
		}
		while (atomic_load(&p->word) == v)
			futex_wait(&p->word, v);
	}
	return NULL;
}

static void *waker_main(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint32_t v = atomic_load(&waker_word);
		struct poster *p = atomic_exchange(&posted, NULL);

		if (!p) {
			atomic_store(&waker_sleeping, true);
			/* Look again after saying so: a poster that pushed before it could see
			 * the flag is found here. */
			if (!atomic_load(&posted)) {
				struct timespec ms = {0, 1000000};
				syscall(SYS_futex, &waker_word, FUTEX_WAIT_PRIVATE, v, &ms, NULL, 0);
			}
			atomic_store(&waker_sleeping, false);
			continue;
		}
		batches++;
		while (p) {
			struct poster *next = p->next;

			taken++;
			atomic_fetch_add(&p->word, 1);
			futex_wake(&p->word);
			p = next;
		}
	}
	return NULL;
}

static double now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned threads = 64;
	double seconds = 3, t0, cpu0, wall, cpu;
	bool json = false;
	struct poster *ps;
	pthread_t waker;
	uint64_t total = 0;
	struct rusage ru;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else
			threads = 0;
	}
	if (!threads || threads > 4096 || !(seconds > 0) || seconds > 3600) {
		fprintf(stderr, "usage: sync_waiters [--threads 1..4096] [--seconds S] [--json]\n");
		return 2;
	}
	ps = aligned_alloc(64, threads * sizeof *ps);
	if (!ps)
		return 1;
	memset(ps, 0, threads * sizeof *ps);
	t0 = now_s(CLOCK_MONOTONIC);
	cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	if (pthread_create(&waker, NULL, waker_main, NULL))
		return 1;
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&ps[i].thread, NULL, post_main, &ps[i]))
			return 1;
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	pthread_join(waker, NULL);
	/* Posters whose last request came after the waker's last pass: released here, not
	 * counted (the figure is the waker's: requests answered). */
	for (unsigned i = 0; i < threads; i++)
		while (pthread_tryjoin_np(ps[i].thread, NULL)) {
			atomic_fetch_add(&ps[i].word, 1);
			futex_wake(&ps[i].word);
			usleep(1000);
		}
	total = taken;
	wall = now_s(CLOCK_MONOTONIC) - t0;
	cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	getrusage(RUSAGE_SELF, &ru);
	if (json)
		printf("{\"threads\": %u, \"seconds\": %.3f, \"requests\": %llu, "
		       "\"requests_per_s\": %.1f, \"per_batch\": %.2f, \"cpu_us_per_request\": %.3f, "
		       "\"voluntary_switches\": %ld, \"involuntary_switches\": %ld}\n",
		       threads, wall, (unsigned long long)total, (double)total / wall,
		       batches ? (double)taken / (double)batches : 0.0,
		       total ? cpu * 1e6 / (double)total : 0.0, ru.ru_nvcsw, ru.ru_nivcsw);
	else
		printf("%u threads: %llu requests in %.3f s: %.0f requests/s, %.2f per batch, "
		       "%.2f us CPU per request\n",
		       threads, (unsigned long long)total, wall, (double)total / wall,
		       batches ? (double)taken / (double)batches : 0.0,
		       total ? cpu * 1e6 / (double)total : 0.0);
	free(ps);
	return 0;
}
