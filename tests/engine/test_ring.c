/* SPDX-License-Identifier: MIT */
/*
 * The publisher ring: positions, the mirrored mapping, backpressure, blocking, and a
 * producer and an I/O thread passing millions of bytes of checksummed records, checking
 * that each arrives once, in order, and that no byte kept for retransmission is
 * overwritten. Run with a test's name ("mirror") to run that test alone.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../support.h"

#include "ring.h"

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: seeded, so that a failure repeats. One state per thread. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* What the single-threaded tests write at absolute position pos; differs from lap to lap. */
static uint8_t byte_at(uint64_t pos)
{
	return (uint8_t)(pos * 7 + (pos >> 12) * 13);
}

static size_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void init_ring(struct sv_ring *r, size_t capacity)
{
	assert_int_equal(sv_ring_init(r, capacity), 0);
}

/* Producer side: append n bytes of byte_at(); the room must be there. */
static void put(struct sv_ring *r, size_t n)
{
	uint64_t head = sv_ring_head(r);
	uint8_t *w = sv_ring_reserve(r, n);

	assert_non_null(w);
	for (size_t i = 0; i < n; i++)
		w[i] = byte_at(head + i);
	sv_ring_commit(r, n);
}

/* I/O side: check every pending byte, then mark the first n of them sent. */
static void send_some(struct sv_ring *r, size_t n)
{
	uint64_t sent = sv_ring_sent(r);
	const uint8_t *p;
	size_t len = sv_ring_pending(r, &p);

	assert_int_equal(len, sv_ring_head(r) - sent);
	assert_ptr_equal(p, sv_ring_at(r, sent));
	assert_true(n <= len);
	for (size_t i = 0; i < len; i++)
		if (p[i] != byte_at(sent + i))
			fail_msg("byte at %llu: %u, want %u", (unsigned long long)(sent + i), p[i],
				 byte_at(sent + i));
	sv_ring_mark_sent(r, n);
	assert_int_equal(sv_ring_sent(r), sent + n);
}

/* I/O side: send everything pending and release everything sent. */
static void drain(struct sv_ring *r)
{
	const uint8_t *p;

	send_some(r, sv_ring_pending(r, &p));
	sv_ring_release(r, sv_ring_sent(r));
}

/* Fill the ring to the last byte. */
static void fill(struct sv_ring *r)
{
	put(r, sv_ring_capacity(r) - (sv_ring_head(r) - sv_ring_released(r)));
	assert_null(sv_ring_reserve(r, 1));
}

static struct timespec deadline_in_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += ms % 1000 * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static void test_init_destroy(void **state)
{
	(void)state;
	size_t cap = 4 * page_size(), fds = count_fds();
	struct sv_ring r;
	const uint8_t *p;

	for (int i = 0; i < 64; i++) {
		init_ring(&r, cap);
		assert_int_equal(sv_ring_capacity(&r), cap);
		assert_int_equal(sv_ring_head(&r), 0);
		assert_int_equal(sv_ring_sent(&r), 0);
		assert_int_equal(sv_ring_released(&r), 0);
		assert_int_equal(sv_ring_pending(&r, &p), 0);
		assert_ptr_equal(p, sv_ring_at(&r, 0));
		/* Both halves of the mapping are writable. */
		memset(r.base, i, 2 * cap);
		/* The memfd is closed once mapped. */
		assert_int_equal(count_fds(), fds);
		sv_ring_destroy(&r);
	}
}

static void test_capacity_rounding(void **state)
{
	(void)state;
	size_t pg = page_size();
	const struct {
		size_t ask, want;
	} cases[] = {
	    {1, pg},
	    {pg - 1, pg},
	    {pg, pg},
	    {pg + 1, 2 * pg},
	    {3 * pg, 4 * pg},
	    {((size_t)1 << 20) + 1, (size_t)2 << 20},
	    {SV_RING_MAX_CAPACITY - 1, SV_RING_MAX_CAPACITY},
	    {SV_RING_MAX_CAPACITY, SV_RING_MAX_CAPACITY},
	};
	struct sv_ring r;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		init_ring(&r, cases[i].ask);
		assert_int_equal(sv_ring_capacity(&r), cases[i].want);
		assert_non_null(sv_ring_reserve(&r, cases[i].want));
		assert_null(sv_ring_reserve(&r, cases[i].want + 1));
		sv_ring_destroy(&r);
	}
}

static void test_invalid_capacities(void **state)
{
	(void)state;
	const size_t bad[] = {0, SV_RING_MAX_CAPACITY + 1, 2 * SV_RING_MAX_CAPACITY, SIZE_MAX};
	size_t fds = count_fds();
	struct sv_ring r;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(sv_ring_init(&r, bad[i]), -EINVAL);
	assert_int_equal(count_fds(), fds);
}

/* The process's address space in bytes, from /proc/self/status. */
static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kib = 0;

	assert_non_null(f);
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
			break;
	fclose(f);
	assert_true(kib > 0);
	return kib * 1024;
}

static void test_init_failure(void **state)
{
	(void)state;
	size_t pg = page_size(), fds = count_fds();
	struct rlimit old, lim;
	struct sv_ring r;
	int rc;

	/* ftruncate past the file size limit fails with EFBIG once SIGXFSZ is ignored. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = pg;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = sv_ring_init(&r, 4 * pg);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -EFBIG);
	assert_int_equal(count_fds(), fds);

	/* The 2 * capacity reservation fails past the address space limit. */
	assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = vm_size() + ((size_t)1 << 20);
	assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
	rc = sv_ring_init(&r, (size_t)64 << 20);
	assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
	assert_int_equal(rc, -ENOMEM);
	assert_int_equal(count_fds(), fds);
}

static void test_basic_flow(void **state)
{
	(void)state;
	size_t cap = page_size();
	struct sv_ring r;
	const uint8_t *p;
	uint8_t *w;

	init_ring(&r, cap);
	w = sv_ring_reserve(&r, 100);
	assert_ptr_equal(w, sv_ring_at(&r, 0));
	/* Reserved is not committed: the I/O thread sees nothing, and reserving again
	 * gives the same place. */
	assert_int_equal(sv_ring_pending(&r, &p), 0);
	assert_ptr_equal(sv_ring_reserve(&r, 10), w);

	put(&r, 100);
	assert_int_equal(sv_ring_head(&r), 100);
	assert_int_equal(sv_ring_pending(&r, &p), 100);
	assert_ptr_equal(p, w);
	send_some(&r, 100);
	assert_int_equal(sv_ring_pending(&r, &p), 0);
	assert_ptr_equal(p, sv_ring_at(&r, 100));

	/* Sent is not released: those bytes are kept for retransmission. */
	assert_int_equal(sv_ring_released(&r), 0);
	assert_non_null(sv_ring_reserve(&r, cap - 100));
	assert_null(sv_ring_reserve(&r, cap - 99));
	sv_ring_release(&r, 100);
	assert_int_equal(sv_ring_released(&r), 100);
	assert_non_null(sv_ring_reserve(&r, cap));
	/* Releasing the same position again is allowed. */
	sv_ring_release(&r, 100);
	put(&r, cap);
	drain(&r);
	assert_int_equal(sv_ring_released(&r), cap + 100);
	sv_ring_destroy(&r);
}

static void test_commit_less(void **state)
{
	(void)state;
	struct sv_ring r;
	const uint8_t *p;
	uint8_t *w;

	init_ring(&r, page_size());
	w = sv_ring_reserve(&r, 200);
	assert_non_null(w);
	for (size_t i = 0; i < 200; i++)
		w[i] = byte_at(i);
	sv_ring_commit(&r, 50);
	assert_int_equal(sv_ring_pending(&r, &p), 50);
	/* The rest of the reservation is still there, at the new head. */
	assert_ptr_equal(sv_ring_reserve(&r, 150), w + 50);
	sv_ring_commit(&r, 150);
	assert_int_equal(sv_ring_pending(&r, &p), 200);
	send_some(&r, 200);
	sv_ring_destroy(&r);
}

static void test_mirror(void **state)
{
	(void)state;
	size_t cap = page_size();
	uint64_t start = cap - 100;
	struct sv_ring r;
	const uint8_t *p;
	uint8_t *w;

	init_ring(&r, cap);
	/* Bring every position to 100 bytes before the end of the buffer. */
	put(&r, start);
	drain(&r);

	w = sv_ring_reserve(&r, 300);
	assert_ptr_equal(w, r.base + start);
	for (size_t i = 0; i < 300; i++)
		w[i] = byte_at(start + i);
	sv_ring_commit(&r, 300);
	/* The bytes written past the end are the bytes at the start of the buffer. */
	for (size_t i = 0; i < 300; i++) {
		assert_int_equal(r.base[(start + i) % cap], byte_at(start + i));
		assert_int_equal(*sv_ring_at(&r, start + i), byte_at(start + i));
	}

	assert_int_equal(sv_ring_pending(&r, &p), 300);
	assert_ptr_equal(p, w);
	send_some(&r, 300);

	/* Retransmission reads [released, sent) as one span across the end as well. */
	assert_int_equal(sv_ring_released(&r), start);
	p = sv_ring_at(&r, sv_ring_released(&r));
	for (size_t i = 0; i < 300; i++)
		assert_int_equal(p[i], byte_at(start + i));

	/* And a store to the first copy shows through the second. */
	r.base[7] = (uint8_t)~r.base[7];
	assert_int_equal(r.base[cap + 7], r.base[7]);
	sv_ring_destroy(&r);
}

static void test_full_ring(void **state)
{
	(void)state;
	size_t cap = 2 * page_size();
	struct timespec past = {0, 0};
	struct sv_ring r;

	init_ring(&r, cap);
	assert_null(sv_ring_reserve(&r, cap + 1));
	put(&r, cap);
	assert_null(sv_ring_reserve(&r, 1));
	assert_int_equal(sv_ring_wait_space(&r, 1, &past), -ETIMEDOUT);
	/* Sending frees nothing: sent bytes wait for their confirm. */
	send_some(&r, cap);
	assert_null(sv_ring_reserve(&r, 1));

	sv_ring_release(&r, 10);
	assert_non_null(sv_ring_reserve(&r, 10));
	assert_null(sv_ring_reserve(&r, 11));
	put(&r, 10);
	assert_null(sv_ring_reserve(&r, 1));

	drain(&r);
	assert_non_null(sv_ring_reserve(&r, cap));
	assert_null(sv_ring_reserve(&r, cap + 1));
	sv_ring_destroy(&r);
}

static void test_wrap_around(void **state)
{
	(void)state;
	size_t cap = 4 * page_size();
	uint64_t seed = 0x5eed;
	struct sv_ring r;
	const uint8_t *p;

	init_ring(&r, cap);
	for (int i = 0; i < 4000; i++) {
		size_t n = rng_next(&seed) % 8 == 0 ? cap : 1 + rng_next(&seed) % cap;

		if (!sv_ring_reserve(&r, n))
			drain(&r);
		put(&r, n);
		/* Now and then send a part and release less than was sent. */
		if (rng_next(&seed) % 3 == 0) {
			size_t len = sv_ring_pending(&r, &p);
			uint64_t released = sv_ring_released(&r);

			send_some(&r, rng_next(&seed) % (len + 1));
			sv_ring_release(&r, released + rng_next(&seed) %
							   (sv_ring_sent(&r) - released + 1));
		}
	}
	drain(&r);
	assert_int_equal(sv_ring_sent(&r), sv_ring_head(&r));
	assert_int_equal(sv_ring_released(&r), sv_ring_head(&r));
	/* Enough laps for the test to mean something. */
	assert_true(sv_ring_head(&r) / cap > 1000);
	sv_ring_destroy(&r);
}

static void test_short_writes(void **state)
{
	(void)state;
	size_t cap = page_size(), k = 1;
	uint64_t start = cap - 500, end = start + 1000;
	struct sv_ring r;
	const uint8_t *p;

	init_ring(&r, cap);
	put(&r, start);
	drain(&r);
	put(&r, 1000);
	/* The kernel takes 1, 2, 3, ... bytes at a time; each send resumes where the last
	 * one stopped, across the end of the buffer. */
	while (sv_ring_sent(&r) < end) {
		uint64_t sent = sv_ring_sent(&r);
		size_t n = k < end - sent ? k : end - sent;

		assert_int_equal(sv_ring_pending(&r, &p), end - sent);
		send_some(&r, n);
		if (k % 4 == 0)
			sv_ring_release(&r, sent);
		k++;
	}
	assert_int_equal(sv_ring_pending(&r, &p), 0);
	sv_ring_release(&r, end);
	assert_non_null(sv_ring_reserve(&r, cap));
	sv_ring_destroy(&r);
}

static void test_wait_space_ready(void **state)
{
	(void)state;
	size_t cap = page_size();
	struct timespec past = {0, 0}, bad = {0, 1000000000};
	struct sv_ring r;

	init_ring(&r, cap);
	/* With the room there it returns at once, even with a deadline long gone. */
	assert_int_equal(sv_ring_wait_space(&r, cap, &past), 0);
	assert_int_equal(sv_ring_wait_space(&r, cap, NULL), 0);
	assert_int_equal(sv_ring_wait_space(&r, cap + 1, NULL), -EINVAL);
	put(&r, cap - 10);
	assert_int_equal(sv_ring_wait_space(&r, 10, &past), 0);
	assert_int_equal(sv_ring_wait_space(&r, 11, &past), -ETIMEDOUT);
	/* A deadline that is no time is refused when it would be used. */
	assert_int_equal(sv_ring_wait_space(&r, 11, &bad), -EINVAL);
	assert_int_equal(atomic_load(&r.waiting), 0);
	sv_ring_destroy(&r);
}

static void test_wait_space_timeout(void **state)
{
	(void)state;
	struct timespec deadline, now;
	struct sv_ring r;

	init_ring(&r, page_size());
	fill(&r);
	deadline = deadline_in_ms(50);
	assert_int_equal(sv_ring_wait_space(&r, 1, &deadline), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_true(now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec));
	assert_int_equal(atomic_load(&r.waiting), 0);
	sv_ring_destroy(&r);
}

static void *interrupt_when_waiting(void *arg)
{
	struct sv_ring *r = arg;

	while (!atomic_load(&r->waiting))
		usleep(1000);
	sv_ring_interrupt(r);
	return NULL;
}

/* A producer blocked on a full ring is woken by an interrupt (its channel closed) with no
 * space freed, and every later wait returns at once. */
static void test_wait_space_interrupt(void **state)
{
	(void)state;
	pthread_t t;
	struct sv_ring r;

	init_ring(&r, page_size());
	fill(&r);
	assert_int_equal(pthread_create(&t, NULL, interrupt_when_waiting, &r), 0);
	assert_int_equal(sv_ring_wait_space(&r, 1, NULL), -ECANCELED);
	pthread_join(t, NULL);
	assert_int_equal(sv_ring_wait_space(&r, 1, NULL), -ECANCELED);
	assert_null(sv_ring_reserve(&r, 1));
	sv_ring_destroy(&r);
}

struct releaser {
	struct sv_ring *r;
	atomic_bool stop;
};

/* The I/O thread: release everything whenever the producer has filled the ring and waits. */
static void *release_when_waited(void *arg)
{
	struct releaser *rel = arg;
	const uint8_t *p;
	size_t len;

	while (!atomic_load(&rel->stop)) {
		/* Pending first: after seeing a new fill, waiting is the new round's flag. */
		len = sv_ring_pending(rel->r, &p);
		if (len == 0 || !atomic_load(&rel->r->waiting)) {
			sched_yield();
			continue;
		}
		sv_ring_mark_sent(rel->r, len);
		sv_ring_release(rel->r, sv_ring_sent(rel->r));
	}
	return NULL;
}

/* A lost wake-up leaves the producer asleep for ever: meson's timeout reports it. */
static void test_wait_space_wakeup(void **state)
{
	(void)state;
	struct sv_ring r;
	struct releaser rel = {.r = &r};
	pthread_t t;

	init_ring(&r, page_size());
	assert_int_equal(pthread_create(&t, NULL, release_when_waited, &rel), 0);
	for (int round = 0; round < 2000; round++) {
		fill(&r);
		assert_int_equal(sv_ring_wait_space(&r, 1 + round % page_size(), NULL), 0);
		assert_non_null(sv_ring_reserve(&r, 1 + round % page_size()));
	}
	atomic_store(&rel.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	sv_ring_destroy(&r);
}

/*
 * The stress run. Records are a header (payload length, checksum, sequence number) and 1 to
 * 4096 bytes of payload, in a ring of four pages so that it is full most of the time. The
 * I/O thread sends random parts of what is pending, keeps its own copy of what it sent,
 * and before each release checks that the ring still holds those bytes.
 */
#define STRESS_RECORDS	   8192
#define STRESS_MAX_PAYLOAD 4096

struct rec_header {
	uint32_t len;
	uint32_t sum;
	uint64_t seq;
};

struct stress {
	struct sv_ring r;
	atomic_bool done; /* the producer committed its last record */
	char producer_error[128];
	char consumer_error[128];
	uint64_t records; /* verified by the consumer */
	uint64_t blocks;  /* the producer's calls of sv_ring_wait_space */
	uint8_t *shadow;  /* capacity bytes: what was sent at pos & (capacity - 1) */
	uint8_t rec[sizeof(struct rec_header) + STRESS_MAX_PAYLOAD]; /* reassembly */
	size_t have;
};

/* FNV-1a over the sequence number, the length and the payload. */
static uint32_t rec_sum(const struct rec_header *h, const uint8_t *payload)
{
	uint32_t sum = 2166136261u;
	uint8_t lead[12];

	memcpy(lead, &h->seq, 8);
	memcpy(lead + 8, &h->len, 4);
	for (size_t i = 0; i < sizeof lead; i++)
		sum = (sum ^ lead[i]) * 16777619u;
	for (size_t i = 0; i < h->len; i++)
		sum = (sum ^ payload[i]) * 16777619u;
	return sum;
}

static void *stress_producer(void *arg)
{
	struct stress *st = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (uint64_t seq = 0; seq < STRESS_RECORDS; seq++) {
		struct rec_header h = {.len = 1 + rng_next(&seed) % STRESS_MAX_PAYLOAD, .seq = seq};
		size_t size = sizeof h + h.len;
		uint8_t *w = sv_ring_reserve(&st->r, size);

		if (!w) {
			/* Half the waits have no deadline, half a distant one. */
			struct timespec deadline = deadline_in_ms(60000);
			int rc = sv_ring_wait_space(&st->r, size, seq % 2 ? NULL : &deadline);

			st->blocks++;
			w = sv_ring_reserve(&st->r, size);
			if (rc != 0 || !w) {
				snprintf(st->producer_error, sizeof st->producer_error,
					 "record %llu: wait_space %d, reserve %p",
					 (unsigned long long)seq, rc, (void *)w);
				break;
			}
		}
		for (size_t i = 0; i < h.len; i += 8) {
			uint64_t x = rng_next(&seed);

			memcpy(w + sizeof h + i, &x, h.len - i < 8 ? h.len - i : 8);
		}
		h.sum = rec_sum(&h, w + sizeof h);
		memcpy(w, &h, sizeof h);
		sv_ring_commit(&st->r, size);
	}
	atomic_store(&st->done, true);
	return NULL;
}

/* Feed sent bytes to the record reassembler; false (with the reason) on a bad record. */
static bool stress_feed(struct stress *st, const uint8_t *p, size_t n)
{
	struct rec_header h;

	while (n > 0) {
		size_t want = sizeof h, take;

		if (st->have >= sizeof h) {
			memcpy(&h, st->rec, sizeof h);
			want += h.len;
		}
		take = want - st->have < n ? want - st->have : n;
		memcpy(st->rec + st->have, p, take);
		st->have += take;
		p += take;
		n -= take;
		if (st->have < want)
			continue;
		memcpy(&h, st->rec, sizeof h);
		if (want == sizeof h) {
			if (h.len == 0 || h.len > STRESS_MAX_PAYLOAD)
				goto bad;
			continue;
		}
		if (h.seq != st->records || h.sum != rec_sum(&h, st->rec + sizeof h))
			goto bad;
		st->records++;
		st->have = 0;
	}
	return true;
bad:
	snprintf(st->consumer_error, sizeof st->consumer_error,
		 "record %llu: seq %llu, len %u, sum %08x", (unsigned long long)st->records,
		 (unsigned long long)h.seq, h.len, h.sum);
	return false;
}

/* Release up to pos after checking that the ring still holds what was sent there. */
static bool stress_release(struct stress *st, uint64_t pos)
{
	size_t mask = sv_ring_capacity(&st->r) - 1;

	for (uint64_t i = sv_ring_released(&st->r); i < pos; i++) {
		if (*sv_ring_at(&st->r, i) != st->shadow[i & mask]) {
			snprintf(st->consumer_error, sizeof st->consumer_error,
				 "byte at %llu overwritten before its release",
				 (unsigned long long)i);
			return false;
		}
	}
	sv_ring_release(&st->r, pos);
	return true;
}

static void *stress_consumer(void *arg)
{
	struct stress *st = arg;
	size_t mask = sv_ring_capacity(&st->r) - 1;
	uint64_t seed = 0xc0ffee;
	bool ok = true;

	for (;;) {
		/* Done is read before pending, so that nothing can be committed after both. */
		bool done = atomic_load(&st->done);
		uint64_t sent = sv_ring_sent(&st->r), released = sv_ring_released(&st->r);
		const uint8_t *p;
		size_t len = sv_ring_pending(&st->r, &p), n;

		if (len == 0) {
			/* Idle: give everything back, or a blocked producer would wait for ever. */
			if (ok)
				ok = stress_release(st, sent);
			else
				sv_ring_release(&st->r, sent);
			if (done)
				break;
			sched_yield();
			continue;
		}
		n = rng_next(&seed) % 4 == 0 ? len : 1 + rng_next(&seed) % len;
		if (ok) {
			for (size_t i = 0; i < n; i++)
				st->shadow[(sent + i) & mask] = p[i];
			ok = stress_feed(st, p, n);
		}
		sv_ring_mark_sent(&st->r, n);
		/* Sometimes release, and then often not all that was sent: confirms lag. */
		if (rng_next(&seed) % 2 == 0) {
			uint64_t pos = released + rng_next(&seed) % (sent + n - released + 1);

			if (ok)
				ok = stress_release(st, pos);
			else
				sv_ring_release(&st->r, pos);
		}
	}
	return NULL;
}

static void test_stress(void **state)
{
	(void)state;
	struct stress *st = calloc(1, sizeof *st);
	pthread_t producer, consumer;

	assert_non_null(st);
	init_ring(&st->r, 4 * page_size());
	st->shadow = malloc(sv_ring_capacity(&st->r));
	assert_non_null(st->shadow);
	assert_int_equal(pthread_create(&consumer, NULL, stress_consumer, st), 0);
	assert_int_equal(pthread_create(&producer, NULL, stress_producer, st), 0);
	assert_int_equal(pthread_join(producer, NULL), 0);
	assert_int_equal(pthread_join(consumer, NULL), 0);

	if (st->producer_error[0])
		fail_msg("producer: %s", st->producer_error);
	if (st->consumer_error[0])
		fail_msg("consumer: %s", st->consumer_error);
	assert_int_equal(st->records, STRESS_RECORDS);
	assert_int_equal(st->have, 0);
	assert_int_equal(sv_ring_sent(&st->r), sv_ring_head(&st->r));
	assert_int_equal(sv_ring_released(&st->r), sv_ring_head(&st->r));
	print_message("%llu bytes in %d records, %llu waits for space\n",
		      (unsigned long long)sv_ring_head(&st->r), STRESS_RECORDS,
		      (unsigned long long)st->blocks);
	sv_ring_destroy(&st->r);
	free(st->shadow);
	free(st);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    NAMED_TEST("init and destroy", test_init_destroy),
	    NAMED_TEST("capacity rounding", test_capacity_rounding),
	    NAMED_TEST("invalid capacities", test_invalid_capacities),
	    NAMED_TEST("init failure cleans up", test_init_failure),
	    NAMED_TEST("basic flow", test_basic_flow),
	    NAMED_TEST("commit less than reserved", test_commit_less),
	    NAMED_TEST("mirror", test_mirror),
	    NAMED_TEST("full ring", test_full_ring),
	    NAMED_TEST("wrap-around", test_wrap_around),
	    NAMED_TEST("short writes", test_short_writes),
	    NAMED_TEST("wait_space without waiting", test_wait_space_ready),
	    NAMED_TEST("wait_space timeout", test_wait_space_timeout),
	    NAMED_TEST("wait_space wake-up", test_wait_space_wakeup),
	    NAMED_TEST("wait_space interrupt", test_wait_space_interrupt),
	    NAMED_TEST("stress", test_stress),
	};

	return sv_test_main(argc, argv, "ring", tests, sizeof tests / sizeof tests[0]);
}
