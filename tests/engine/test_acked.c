/* SPDX-License-Identifier: MIT */
/*
 * struct sv_acked (acked.c): the settled delivery tags of a consuming channel, from which the
 * I/O thread decides when a multiple ack is exact. Fixed cases, then random deliveries,
 * settles and advances checked against a per-tag model: the floor is never above a tag
 * that is not settled (a multiple ack would ack what the application did not), and after
 * an advance it is exactly the top of the settled prefix.
 */
#include <stdlib.h>
#include <string.h>

#include "../support.h"

#include "acked.h"

static void test_in_order(void **state)
{
	struct sv_acked a;

	(void)state;
	sv_acked_init(&a);
	for (uint64_t t = 1; t <= 5; t++)
		sv_acked_delivered(&a, t, false);
	assert_true(sv_acked_settle(&a, 1, false));
	assert_true(sv_acked_settle(&a, 2, false));
	assert_int_equal(sv_acked_advance(&a), 2);
	/* A gap holds the floor. */
	assert_true(sv_acked_settle(&a, 4, false));
	assert_int_equal(sv_acked_advance(&a), 2);
	assert_true(sv_acked_settle(&a, 3, false));
	assert_int_equal(sv_acked_advance(&a), 4);
	assert_int_equal(a.delivered, 5);
	sv_acked_free(&a);
}

static void test_refusals(void **state)
{
	struct sv_acked a;

	(void)state;
	sv_acked_init(&a);
	sv_acked_delivered(&a, 1, false);
	assert_true(sv_acked_settle(&a, 1, false));
	assert_int_equal(sv_acked_advance(&a), 1);
	/* Settled twice: not recordable, sent on its own (the broker says 406). */
	assert_false(sv_acked_settle(&a, 1, false));
	/* Beyond the span above the floor. */
	assert_false(sv_acked_settle(&a, 1 + SV_ACKED_SPAN + 1, false));
	assert_true(sv_acked_settle(&a, 1 + SV_ACKED_SPAN, false));
	/* A multiple ack at or below the floor changes nothing. */
	assert_true(sv_acked_settle(&a, 1, true));
	assert_int_equal(a.floor, 1);
	sv_acked_free(&a);
}

static void test_no_ack(void **state)
{
	struct sv_acked a;

	(void)state;
	sv_acked_init(&a);
	/* In order, settled at delivery: the floor follows without bits. */
	for (uint64_t t = 1; t <= 1000; t++)
		sv_acked_delivered(&a, t, true);
	assert_int_equal(a.floor, 1000);
	assert_null(a.bits);
	sv_acked_free(&a);
}

static void test_multiple_across_words(void **state)
{
	struct sv_acked a;

	(void)state;
	sv_acked_init(&a);
	for (uint64_t t = 1; t <= 300; t++)
		sv_acked_delivered(&a, t, false);
	for (uint64_t t = 150; t <= 300; t += 2)
		assert_true(sv_acked_settle(&a, t, false));
	assert_true(sv_acked_settle(&a, 200, true));
	assert_int_equal(a.floor, 200);
	/* 202, 204... set; 201 not: the floor stays. */
	assert_int_equal(sv_acked_advance(&a), 200);
	assert_true(sv_acked_settle(&a, 201, false));
	assert_int_equal(sv_acked_advance(&a), 202);
	/* A multiple ack far ahead clears everything passed. */
	assert_true(sv_acked_settle(&a, 200 + 3 * SV_ACKED_SPAN, true));
	assert_int_equal(sv_acked_advance(&a), 200 + 3 * SV_ACKED_SPAN);
	sv_acked_free(&a);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The model: settled[t] for every tag delivered, and the prefix top it implies. */
static void test_random_against_model(void **state)
{
	enum { TAGS = 200000 };
	bool *settled = calloc(TAGS + 2, 1);
	uint64_t x = 0x2545f4914f6cdd1du, delivered = 0, model_floor = 0;
	struct sv_acked a;

	(void)state;
	assert_non_null(settled);
	sv_acked_init(&a);
	for (int step = 0; step < 2000000 && delivered < TAGS; step++) {
		uint64_t r = rnd(&x) % 100;

		if (r < 40) {
			bool no_ack = rnd(&x) % 8 == 0 && delivered == model_floor;
			delivered++;
			sv_acked_delivered(&a, delivered, no_ack);
			if (no_ack)
				settled[delivered] = true;
		} else if (r < 85 && delivered > model_floor) {
			/* A single settle of a delivered tag, often near the floor (the usual case),
			 * sometimes anywhere. */
			uint64_t span = delivered - model_floor;
			uint64_t t = model_floor + 1 + rnd(&x) % (r < 75 ? (span < 64 ? span : 64) : span);
			bool ok = sv_acked_settle(&a, t, false);
			bool want = !(t <= a.floor) && t - a.floor <= SV_ACKED_SPAN;
			assert_int_equal(ok, want);
			if (ok)
				settled[t] = true;
		} else if (r < 90 && delivered > model_floor) {
			uint64_t t = model_floor + 1 + rnd(&x) % (delivered - model_floor);
			assert_true(sv_acked_settle(&a, t, true));
			for (uint64_t u = 1; u <= t; u++)
				settled[u] = true;
		} else {
			sv_acked_advance(&a);
			while (model_floor < delivered && settled[model_floor + 1])
				model_floor++;
			/* Exactly the settled prefix. */
			assert_int_equal(a.floor, model_floor);
		}
		/* Never above an unsettled tag. */
		for (uint64_t t = a.floor; t > 0 && t + 64 > a.floor; t--)
			assert_true(settled[t]);
		assert_int_equal(a.delivered, delivered);
	}
	assert_true(delivered > 1000);
	sv_acked_free(&a);
	free(settled);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		NAMED_TEST("in order", test_in_order),
		NAMED_TEST("refusals", test_refusals),
		NAMED_TEST("no ack", test_no_ack),
		NAMED_TEST("multiple across words", test_multiple_across_words),
		NAMED_TEST("random against model", test_random_against_model),
	};
	return sv_test_main(argc, argv, "acked", tests, sizeof tests / sizeof tests[0]);
}
