/* SPDX-License-Identifier: MIT */
/*
 * The confirm window: fixed cases for each rule (order, multiple, tag 0, nack, return,
 * full window, wrap-around, refusals, tags near 2^32, 2^63 and 2^64), then random
 * sequences of adds, acks, nacks, returns and drains checked step by step against a
 * plain per-tag model. Run with a test's name ("reset") to run that test alone.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../support.h"

#include "confirm.h"

#define A SV_CONFIRM_ACKED
#define N SV_CONFIRM_NACKED
#define R SV_CONFIRM_RETURNED

/* xorshift64*: seeded, so that a failure repeats. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* The end position the fixed cases give tag t of a window starting at base. */
static uint64_t end_of(uint64_t base, uint64_t t)
{
	return (t - base + 1) * 100;
}

static void init(struct sv_confirm *c, size_t max_inflight, uint64_t first_tag)
{
	assert_int_equal(sv_confirm_init(c, max_inflight, first_tag), 0);
}

/* Add n messages, checking the tags assigned; returns the first. */
static uint64_t add_n(struct sv_confirm *c, uint64_t base, size_t n)
{
	uint64_t first = sv_confirm_next_tag(c);

	for (size_t i = 0; i < n; i++) {
		uint64_t t = sv_confirm_next_tag(c);

		assert_false(sv_confirm_full(c));
		assert_true(sv_confirm_add(c, end_of(base, t)) == t);
		assert_true(t + 1 == sv_confirm_next_tag(c));
	}
	return first;
}

/*
 * Drain everything that can be drained and expect exactly the tags from..from+n-1 with
 * the given statuses (status == NULL: all acked), and the release position after the last.
 */
static void expect_drain(struct sv_confirm *c, uint64_t base, uint64_t from, size_t n,
			 const unsigned *status)
{
	struct sv_confirm_outcome out[512];
	uint64_t release = 12345;
	size_t got = sv_confirm_drain(c, out, sizeof out / sizeof out[0], &release);

	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		assert_true(out[i].tag == from + i);
		assert_true(out[i].end_pos == end_of(base, from + i));
		assert_int_equal(out[i].status, status ? status[i] : A);
	}
	if (n)
		assert_true(release == end_of(base, from + n - 1));
	else
		assert_true(release == 12345);
}

static void test_init_destroy(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 1, 1);
	assert_int_equal(sv_confirm_window(&c), 64);
	assert_true(sv_confirm_next_tag(&c) == 1);
	assert_true(sv_confirm_outstanding(&c) == 0);
	assert_false(sv_confirm_full(&c));
	expect_drain(&c, 1, 1, 0, NULL);
	sv_confirm_destroy(&c);

	init(&c, 65, 7);
	assert_int_equal(sv_confirm_window(&c), 128);
	sv_confirm_destroy(&c);
	init(&c, SV_CONFIRM_MAX_WINDOW, UINT64_MAX - 1);
	assert_int_equal(sv_confirm_window(&c), SV_CONFIRM_MAX_WINDOW);
	sv_confirm_destroy(&c);

	assert_int_equal(sv_confirm_init(&c, 0, 1), -EINVAL);
	assert_int_equal(sv_confirm_init(&c, SV_CONFIRM_MAX_WINDOW + 1, 1), -EINVAL);
	assert_int_equal(sv_confirm_init(&c, 64, 0), -EINVAL);
	assert_int_equal(sv_confirm_init(&c, 64, UINT64_MAX), -EINVAL);
}

static void test_in_order(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 10);
	assert_true(sv_confirm_outstanding(&c) == 10);
	expect_drain(&c, 1, 1, 0, NULL);
	for (uint64_t t = 1; t <= 10; t++) {
		assert_int_equal(sv_confirm_settle(&c, t, false, false), 0);
		expect_drain(&c, 1, t, 1, NULL);
		assert_true(sv_confirm_outstanding(&c) == 10 - t);
	}
	sv_confirm_destroy(&c);
}

static void test_out_of_order(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 6);
	/* 3, 5, 2 settle first: nothing moves while 1 is unsettled. */
	assert_int_equal(sv_confirm_settle(&c, 3, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 5, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 2, false, false), 0);
	expect_drain(&c, 1, 1, 0, NULL);
	assert_true(sv_confirm_outstanding(&c) == 6);
	/* 1 closes the gap up to 4, which is still unsettled. */
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), 0);
	expect_drain(&c, 1, 1, 3, NULL);
	assert_int_equal(sv_confirm_settle(&c, 6, false, false), 0);
	expect_drain(&c, 1, 4, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, 4, false, false), 0);
	expect_drain(&c, 1, 4, 3, NULL);
	assert_true(sv_confirm_outstanding(&c) == 0);
	sv_confirm_destroy(&c);
}

static void test_multiple_across_words(void **state)
{
	struct sv_confirm c;
	(void)state;

	/* Tags 1..300 in a 256-slot window cover five words, the last two wrapped. */
	init(&c, 256, 1);
	add_n(&c, 1, 200);
	expect_drain(&c, 1, 1, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, 60, true, false), 0);
	expect_drain(&c, 1, 1, 60, NULL);
	add_n(&c, 1, 100);
	/* 61..250 crosses four word boundaries and the end of the bitmap. */
	assert_int_equal(sv_confirm_settle(&c, 250, true, false), 0);
	expect_drain(&c, 1, 61, 190, NULL);
	/* Tags above the range stay unsettled. */
	assert_true(sv_confirm_outstanding(&c) == 50);
	assert_int_equal(sv_confirm_settle(&c, 251, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 300, true, false), 0);
	expect_drain(&c, 1, 251, 50, NULL);
	sv_confirm_destroy(&c);
}

static void test_tag0_multiple(void **state)
{
	struct sv_confirm c;
	unsigned st[130];
	(void)state;

	init(&c, 128, 1);
	/* Nothing outstanding: still accepted. */
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	add_n(&c, 1, 130 - 2);
	assert_int_equal(sv_confirm_settle(&c, 5, false, true), 0);
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	for (size_t i = 0; i < 128; i++)
		st[i] = i == 4 ? N : A;
	expect_drain(&c, 1, 1, 128, st);
	/* A nack of everything. */
	add_n(&c, 1, 70);
	assert_int_equal(sv_confirm_settle(&c, 0, true, true), 0);
	for (size_t i = 0; i < 70; i++)
		st[i] = N;
	expect_drain(&c, 1, 129, 70, st);
	/* A single tag 0 is never assigned. */
	add_n(&c, 1, 1);
	assert_int_equal(sv_confirm_settle(&c, 0, false, false), -EINVAL);
	sv_confirm_destroy(&c);
}

static void test_nacks_mixed(void **state)
{
	struct sv_confirm c;
	const unsigned st[] = {N, N, N, A, N, A, A, N, N, N};
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 10);
	assert_int_equal(sv_confirm_settle(&c, 2, false, true), 0);
	assert_int_equal(sv_confirm_settle(&c, 4, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 3, true, true), 0); /* 1 and 3 */
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 5, false, true), 0);
	assert_int_equal(sv_confirm_settle(&c, 7, true, false), 0); /* 6 and 7 */
	assert_int_equal(sv_confirm_settle(&c, 10, true, true), 0); /* 8, 9, 10 */
	expect_drain(&c, 1, 1, 10, st);
	sv_confirm_destroy(&c);
}

static void test_returned(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 4);
	assert_int_equal(sv_confirm_mark_returned(&c, 2), 0);
	assert_int_equal(sv_confirm_mark_returned(&c, 3), 0);
	/* The return alone settles nothing. */
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), 0);
	expect_drain(&c, 1, 1, 1, NULL);
	expect_drain(&c, 1, 2, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, 2, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 4, true, true), 0);
	expect_drain(&c, 1, 2, 3, (const unsigned[]){A | R, N | R, N});
	/* The flag does not outlive its tag: the same slots again. */
	add_n(&c, 1, 64);
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	expect_drain(&c, 1, 5, 64, NULL);
	sv_confirm_destroy(&c);
}

static void test_full_window(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 64);
	assert_true(sv_confirm_full(&c));
	/* Settled but held behind tag 1: still full. */
	assert_int_equal(sv_confirm_settle(&c, 2, false, false), 0);
	expect_drain(&c, 1, 1, 0, NULL);
	assert_true(sv_confirm_full(&c));
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), 0);
	assert_true(sv_confirm_full(&c)); /* until drained */
	expect_drain(&c, 1, 1, 2, NULL);
	assert_false(sv_confirm_full(&c));
	add_n(&c, 1, 2);
	assert_true(sv_confirm_full(&c));
	assert_int_equal(sv_confirm_settle(&c, 66, true, false), 0);
	expect_drain(&c, 1, 3, 64, NULL);
	sv_confirm_destroy(&c);
}

static void test_drain_limit(void **state)
{
	struct sv_confirm c;
	struct sv_confirm_outcome out[7];
	uint64_t release = 0;
	(void)state;

	init(&c, 128, 1);
	add_n(&c, 1, 100);
	assert_int_equal(sv_confirm_settle(&c, 100, true, false), 0);
	assert_int_equal(sv_confirm_drain(&c, out, 0, &release), 0);
	assert_true(release == 0);
	for (uint64_t t = 1; t <= 98; t += 7) {
		assert_int_equal(sv_confirm_drain(&c, out, 7, &release), 7);
		assert_true(out[0].tag == t && out[6].tag == t + 6);
		assert_true(release == end_of(1, t + 6));
	}
	assert_int_equal(sv_confirm_drain(&c, out, 7, &release), 2);
	assert_true(out[1].tag == 100 && release == end_of(1, 100));
	assert_true(sv_confirm_outstanding(&c) == 0);
	sv_confirm_destroy(&c);
}

static void test_wrap_around(void **state)
{
	struct sv_confirm c;
	uint64_t t = 1;
	(void)state;

	/* 100 laps of a 64-slot window, settled in a different pattern each lap. */
	init(&c, 64, 1);
	add_n(&c, 1, 40);
	for (int lap = 0; lap < 100; lap++) {
		add_n(&c, 1, 64 - sv_confirm_outstanding(&c));
		assert_true(sv_confirm_full(&c));
		/* Settle the upper half backwards, then the rest with one multiple. */
		for (uint64_t u = t + 63; u >= t + 32; u--)
			if ((u + lap) % 3)
				assert_int_equal(sv_confirm_settle(&c, u, false, false), 0);
		expect_drain(&c, 1, t, 0, NULL);
		assert_int_equal(sv_confirm_settle(&c, t + 31 + lap % 20, true, false), 0);
		{
			/* Drained up to the first tag left unsettled above the multiple. */
			uint64_t stop = t + 32 + lap % 20;

			while (stop < t + 64 && (stop + lap) % 3)
				stop++;
			expect_drain(&c, 1, t, (size_t)(stop - t), NULL);
			t = stop;
		}
	}
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	expect_drain(&c, 1, t, (size_t)(sv_confirm_next_tag(&c) - t), NULL);
	assert_true(sv_confirm_next_tag(&c) > 100 * 32);
	sv_confirm_destroy(&c);
}

static void test_invalid_settles(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	/* Nothing assigned yet. */
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 1, true, false), -EINVAL);
	add_n(&c, 1, 10);
	assert_int_equal(sv_confirm_settle(&c, 11, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 11, true, true), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, UINT64_MAX, true, false), -EINVAL);
	/* 1 + 64 shares slot 1 with tag 1: the full tag is what counts. */
	assert_int_equal(sv_confirm_settle(&c, 65, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 3, true, false), 0);
	/* Already settled, held. */
	assert_int_equal(sv_confirm_settle(&c, 2, false, true), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 3, true, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 7, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, 7, false, false), -EINVAL);
	expect_drain(&c, 1, 1, 3, NULL);
	/* Already reported. */
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 3, true, false), -EINVAL);
	/* None of that changed anything: 4..6, 8..10 are unsettled, 7 settled. */
	assert_true(sv_confirm_outstanding(&c) == 7);
	assert_int_equal(sv_confirm_settle(&c, 6, true, true), 0);
	expect_drain(&c, 1, 4, 4, (const unsigned[]){N, N, N, A});
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	expect_drain(&c, 1, 8, 3, NULL);
	sv_confirm_destroy(&c);
}

static void test_invalid_returns(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	assert_int_equal(sv_confirm_mark_returned(&c, 1), -EINVAL);
	add_n(&c, 1, 3);
	assert_int_equal(sv_confirm_mark_returned(&c, 0), -EINVAL);
	assert_int_equal(sv_confirm_mark_returned(&c, 4), -EINVAL);
	assert_int_equal(sv_confirm_mark_returned(&c, 65), -EINVAL);
	assert_int_equal(sv_confirm_mark_returned(&c, 2), 0);
	assert_int_equal(sv_confirm_mark_returned(&c, 2), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), 0);
	assert_int_equal(sv_confirm_mark_returned(&c, 1), -EINVAL); /* settled */
	expect_drain(&c, 1, 1, 1, NULL);
	assert_int_equal(sv_confirm_mark_returned(&c, 1), -EINVAL); /* reported */
	assert_int_equal(sv_confirm_settle(&c, 3, true, false), 0);
	expect_drain(&c, 1, 2, 2, (const unsigned[]){A | R, A});
	sv_confirm_destroy(&c);
}

/*
 * Run a mixed sequence from base: out-of-order singles, a multiple across a word, a
 * nack and a return; every tag reported is compared in full, so a truncated tag shows.
 */
static void check_high_tags(uint64_t base)
{
	struct sv_confirm c;
	unsigned st[100];

	init(&c, 100, base);
	add_n(&c, base, 100);
	assert_int_equal(sv_confirm_mark_returned(&c, base + 7), 0);
	assert_int_equal(sv_confirm_settle(&c, base + 9, false, true), 0);
	assert_int_equal(sv_confirm_settle(&c, base + 3, false, false), 0);
	expect_drain(&c, base, base, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, base + 70, true, false), 0);
	for (size_t i = 0; i < 71; i++)
		st[i] = (i == 9 ? N : A) | (i == 7 ? R : 0);
	expect_drain(&c, base, base, 71, st);
	assert_int_equal(sv_confirm_settle(&c, base + 100, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, base + 99, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, base + 98, true, true), 0);
	for (size_t i = 0; i < 29; i++)
		st[i] = i == 28 ? A : N;
	expect_drain(&c, base, base + 71, 29, st);
	/* And past the window, into the next lap. */
	add_n(&c, base, 128);
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	expect_drain(&c, base, base + 100, 128, NULL);
	sv_confirm_destroy(&c);
}

static void test_near_2_32(void **state)
{
	(void)state;
	check_high_tags(((uint64_t)1 << 32) - 5);
	check_high_tags(((uint64_t)1 << 32) - 64);
}

static void test_near_2_63(void **state)
{
	(void)state;
	check_high_tags(((uint64_t)1 << 63) - 5);
	check_high_tags(((uint64_t)1 << 63) - 100);
}

static void test_exhausted(void **state)
{
	struct sv_confirm c;
	uint64_t base = UINT64_MAX - 69;
	(void)state;

	/* base .. UINT64_MAX - 1 are 69 tags; a 64-slot window fills, then the space ends. */
	init(&c, 64, base);
	add_n(&c, base, 64);
	assert_true(sv_confirm_full(&c));
	assert_int_equal(sv_confirm_settle(&c, base + 10, true, false), 0);
	expect_drain(&c, base, base, 11, NULL);
	add_n(&c, base, 5);
	assert_true(sv_confirm_next_tag(&c) == UINT64_MAX);
	assert_true(sv_confirm_full(&c));
	assert_true(sv_confirm_outstanding(&c) == 58);
	assert_int_equal(sv_confirm_settle(&c, UINT64_MAX, false, false), -EINVAL);
	assert_int_equal(sv_confirm_settle(&c, UINT64_MAX, true, false), -EINVAL);
	assert_int_equal(sv_confirm_mark_returned(&c, UINT64_MAX - 1), 0);
	assert_int_equal(sv_confirm_settle(&c, UINT64_MAX - 1, false, false), 0);
	assert_int_equal(sv_confirm_settle(&c, UINT64_MAX - 2, true, false), 0);
	{
		unsigned st[58];

		for (size_t i = 0; i < 58; i++)
			st[i] = i == 57 ? A | R : A;
		expect_drain(&c, base, base + 11, 58, st);
	}
	assert_true(sv_confirm_outstanding(&c) == 0);
	assert_true(sv_confirm_full(&c)); /* for ever, until a reset */
	assert_int_equal(sv_confirm_reset(&c, 1), 0);
	assert_false(sv_confirm_full(&c));
	sv_confirm_destroy(&c);
}

/* The channel ends: what was settled keeps its outcome, the rest fails, in tag order. */
static void test_fail_all(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 6);
	assert_int_equal(sv_confirm_settle(&c, 2, false, true), 0);
	assert_int_equal(sv_confirm_settle(&c, 4, false, false), 0);
	assert_int_equal(sv_confirm_mark_returned(&c, 5), 0);
	assert_true(sv_confirm_fail_all(&c) == 4);
	assert_true(sv_confirm_fail_all(&c) == 0);
	/* Nothing is left to settle: an ack now settles nothing, so it is refused. */
	assert_int_equal(sv_confirm_settle(&c, 6, false, false), -EINVAL);
	expect_drain(&c, 1, 1, 6,
		     (const unsigned[]){SV_CONFIRM_FAILED, N, SV_CONFIRM_FAILED, A,
					SV_CONFIRM_FAILED | R, SV_CONFIRM_FAILED});
	/* The flag does not outlive its tag. */
	add_n(&c, 1, 64);
	assert_int_equal(sv_confirm_settle(&c, 0, true, false), 0);
	expect_drain(&c, 1, 7, 64, NULL);
	sv_confirm_destroy(&c);
}

static void test_reset(void **state)
{
	struct sv_confirm c;
	(void)state;

	init(&c, 64, 1);
	add_n(&c, 1, 40);
	assert_int_equal(sv_confirm_settle(&c, 5, false, true), 0);
	assert_int_equal(sv_confirm_mark_returned(&c, 6), 0);
	assert_int_equal(sv_confirm_settle(&c, 2, true, false), 0);
	expect_drain(&c, 1, 1, 2, NULL);
	assert_int_equal(sv_confirm_reset(&c, 0), -EINVAL);
	assert_int_equal(sv_confirm_reset(&c, UINT64_MAX), -EINVAL);
	assert_true(sv_confirm_outstanding(&c) == 38);
	/* Nothing held before the reset is reported after it, nor any flag kept. */
	assert_int_equal(sv_confirm_reset(&c, 1), 0);
	assert_true(sv_confirm_outstanding(&c) == 0);
	assert_true(sv_confirm_next_tag(&c) == 1);
	expect_drain(&c, 1, 1, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, 1, false, false), -EINVAL);
	add_n(&c, 1, 64);
	assert_int_equal(sv_confirm_settle(&c, 4, false, false), 0);
	expect_drain(&c, 1, 1, 0, NULL);
	assert_int_equal(sv_confirm_settle(&c, 64, true, false), 0);
	expect_drain(&c, 1, 1, 64, NULL);
	sv_confirm_destroy(&c);
}

/*
 * The reference model: one entry per tag since base, no bitmap, no window arithmetic
 * beyond the definition of full.
 */
enum { M_PENDING = 1, M_ACKED, M_NACKED, M_FAILED, M_REPORTED };

#define MODEL_TAGS 3000

struct model {
	uint64_t base, first, next;
	size_t window;
	unsigned char state[MODEL_TAGS];
	bool returned[MODEL_TAGS];
	uint64_t end[MODEL_TAGS];
};

static bool model_full(const struct model *m)
{
	return m->next - m->first == m->window || m->next == UINT64_MAX;
}

static bool model_pending(const struct model *m, uint64_t t)
{
	return t >= m->first && t < m->next && m->state[t - m->base] == M_PENDING;
}

static int model_settle(struct model *m, uint64_t t, bool multiple, bool nack)
{
	uint64_t lo = t, hi = t;
	bool any = false;

	if (multiple) {
		lo = m->first;
		hi = t == 0 ? m->next - 1 : t;
		if (t != 0 && t >= m->next)
			return -EINVAL;
	}
	for (uint64_t u = lo; u <= hi && u < m->next && m->first < m->next; u++)
		any |= model_pending(m, u);
	if (!any && !(multiple && t == 0))
		return -EINVAL;
	for (uint64_t u = lo; u <= hi && u < m->next && m->first < m->next; u++)
		if (model_pending(m, u))
			m->state[u - m->base] = nack ? M_NACKED : M_ACKED;
	return 0;
}

/* A tag for the step: mostly one in [first, next), sometimes just outside. */
static uint64_t pick_tag(const struct model *m, uint64_t *rng)
{
	uint64_t r = rng_next(rng);
	uint64_t lo = m->first > 3 ? m->first - 3 : 0;
	uint64_t hi = m->next < UINT64_MAX - 3 ? m->next + 3 : UINT64_MAX;

	if (r % 5 && m->next > m->first)
		return m->first + (r >> 8) % (m->next - m->first);
	return lo + (r >> 8) % (hi - lo + 1);
}

static void run_model(uint64_t seed, uint64_t base, size_t max_inflight)
{
	static struct model m;
	struct sv_confirm c;
	struct sv_confirm_outcome out[300];
	uint64_t rng = seed, pos = 0;

	m = (struct model){.base = base, .first = base, .next = base};
	init(&c, max_inflight, base);
	m.window = sv_confirm_window(&c);
	for (int step = 0; step < 6000; step++) {
		uint64_t r = rng_next(&rng) % 100, t = pick_tag(&m, &rng);
		bool nack = rng_next(&rng) % 4 == 0;

		if (r < 35) {
			if (!model_full(&m) && m.next - base < MODEL_TAGS) {
				pos += 1 + rng_next(&rng) % 1000;
				m.state[m.next - base] = M_PENDING;
				m.end[m.next - base] = pos;
				assert_true(sv_confirm_add(&c, pos) == m.next);
				m.next++;
			}
		} else if (r < 60) {
			assert_int_equal(sv_confirm_settle(&c, t, false, nack),
					 model_settle(&m, t, false, nack));
		} else if (r < 70) {
			assert_int_equal(sv_confirm_settle(&c, t, true, nack),
					 model_settle(&m, t, true, nack));
		} else if (r < 72) {
			assert_int_equal(sv_confirm_settle(&c, 0, true, nack),
					 model_settle(&m, 0, true, nack));
		} else if (r < 73 && rng_next(&rng) % 4 == 0) {
			uint64_t failed = 0;

			for (uint64_t u = m.first; u < m.next; u++)
				if (m.state[u - base] == M_PENDING) {
					m.state[u - base] = M_FAILED;
					failed++;
				}
			assert_true(sv_confirm_fail_all(&c) == failed);
		} else if (r < 80) {
			int want = model_pending(&m, t) && !m.returned[t - base] ? 0 : -EINVAL;

			assert_int_equal(sv_confirm_mark_returned(&c, t), want);
			if (want == 0)
				m.returned[t - base] = true;
		} else {
			size_t max = 1 + rng_next(&rng) % (sizeof out / sizeof out[0]);
			uint64_t release = 7, want_release = 7;
			size_t got = sv_confirm_drain(&c, out, max, &release), n = 0;

			while (n < max && m.first < m.next &&
			       m.state[m.first - base] != M_PENDING) {
				size_t i = m.first - base;
				unsigned st =
				    (m.state[i] == M_NACKED   ? N
				     : m.state[i] == M_FAILED ? SV_CONFIRM_FAILED
							      : A) |
				    (m.returned[i] ? R : 0);

				assert_true(n < got);
				assert_true(out[n].tag == m.first);
				assert_true(out[n].end_pos == m.end[i]);
				assert_int_equal(out[n].status, st);
				m.state[i] = M_REPORTED;
				want_release = m.end[i];
				m.first++;
				n++;
			}
			assert_int_equal(got, n);
			assert_true(release == want_release);
		}
		assert_true(sv_confirm_next_tag(&c) == m.next);
		assert_true(sv_confirm_outstanding(&c) == m.next - m.first);
		assert_int_equal(sv_confirm_full(&c), model_full(&m));
	}
	sv_confirm_destroy(&c);
}

static void test_random(void **state)
{
	const uint64_t bases[] = {1, ((uint64_t)1 << 32) - 5, ((uint64_t)1 << 63) - 5,
				  UINT64_MAX - 1000};
	const size_t windows[] = {1, 64, 65, 100, 128, 256};
	(void)state;

	for (uint64_t seed = 1; seed <= 240; seed++)
		run_model(seed * 0x9E3779B97F4A7C15ull, bases[seed % 4], windows[seed % 6]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    NAMED_TEST("init and destroy", test_init_destroy),
	    NAMED_TEST("in-order acks", test_in_order),
	    NAMED_TEST("out-of-order acks", test_out_of_order),
	    NAMED_TEST("multiple ack across words", test_multiple_across_words),
	    NAMED_TEST("tag 0 multiple", test_tag0_multiple),
	    NAMED_TEST("nacks mixed", test_nacks_mixed),
	    NAMED_TEST("returned then acked", test_returned),
	    NAMED_TEST("full window", test_full_window),
	    NAMED_TEST("drain limit", test_drain_limit),
	    NAMED_TEST("wrap-around", test_wrap_around),
	    NAMED_TEST("invalid settles", test_invalid_settles),
	    NAMED_TEST("invalid returns", test_invalid_returns),
	    NAMED_TEST("tags near 2^32", test_near_2_32),
	    NAMED_TEST("tags near 2^63", test_near_2_63),
	    NAMED_TEST("tag space exhausted", test_exhausted),
	    NAMED_TEST("fail all", test_fail_all),
	    NAMED_TEST("reset", test_reset),
	    NAMED_TEST("random against model", test_random),
	};

	return sv_test_main(argc, argv, "confirm", tests, sizeof tests / sizeof tests[0]);
}
