/* SPDX-License-Identifier: MIT */
/*
 * The harness of the test programs: CHECK, which stops a plain program at the first failed
 * check, and run_cases, the main of a program made of named cases (the cmocka programs
 * get the same from sv_test_main, support.h). Every test program answers
 *
 *   PROG --list             its case names, one per line
 *   PROG CASE [OPERAND...]  that case, with the program's own operands (a path, ...)
 *   PROG                    every case
 *
 * and exits 0 passed, 77 skipped, anything else failed, as meson reads it. meson runs one
 * test per case; tests/list_cases.py reads the names from the case table of the source at
 * configure time and checks them against --list at build time.
 */
#ifndef SALVO_TEST_CHECK_H
#define SALVO_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

/* AddressSanitizer's quarantine and ThreadSanitizer's shadow keep memory the program has
 * freed: under them the peak RSS says nothing about what salvo holds. */
static inline bool rss_checked(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return false;
#else
	return true;
#endif
}

/* The process's peak resident set so far, in KiB. */
static inline long peak_rss_kib(void)
{
	struct rusage ru;

	CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
	return ru.ru_maxrss;
}

/* A named case: meson runs each as its own test (the program's argument names it). */
struct test_case {
	const char *name; /* first, as pick_case reads it */
	/* One of the two: run passes by returning (CHECK exits on a failure); run_status
	 * returns the exit status itself (0, 77 skipped, anything else failed). */
	void (*run)(void);
	int (*run_status)(void);
};

enum { CASES_ALL = -1, CASES_LISTED = -2, CASES_UNKNOWN = -3 };

/*
 * What a program's argument arg (NULL: none) asks of its table of n cases, entries of
 * stride bytes whose first member is the case's name (struct test_case, cmocka's struct
 * CMUnitTest): "--list" prints the names, one per line, and returns CASES_LISTED; NULL
 * returns CASES_ALL; a name returns the index of its case, or CASES_UNKNOWN after a
 * message when no case has it.
 */
static inline long pick_case(const char *arg, const void *table, size_t n, size_t stride)
{
	int list = arg && strcmp(arg, "--list") == 0;

	if (!arg)
		return CASES_ALL;
	for (size_t i = 0; i < n; i++) {
		/* A pointer to a struct, converted, points to its first member: the name. */
		const char *name =
		    *(const char *const *)(const void *)((const char *)table + i * stride);

		if (list)
			puts(name);
		else if (strcmp(arg, name) == 0)
			return (long)i;
	}
	if (list)
		return CASES_LISTED;
	fprintf(stderr, "no case named '%s'\n", arg);
	return CASES_UNKNOWN;
}

/*
 * main for a program made of the n cases: argv[1] picks what runs (pick_case). Around each
 * case run, before and after (either NULL: nothing): before sets the program up for a case
 * and returns 0, or the status to exit with instead of running it (77 without the peer the
 * cases need, 2 for a missing operand); after undoes what a case leaves behind. Prints
 * "NAME: ok" (or skipped, failed) for each case run. Returns main's exit status: 0 when
 * every case run passed or the names were listed; the first non-zero status of before or
 * of a case, which ends the run; 1 for a name no case has.
 */
static inline int run_cases(int argc, char **argv, const struct test_case *cases, size_t n,
			    int (*before)(void), void (*after)(void))
{
	long pick = pick_case(argc > 1 ? argv[1] : NULL, cases, n, sizeof cases[0]);

	if (pick == CASES_LISTED)
		return 0;
	if (pick == CASES_UNKNOWN)
		return 1;
	for (size_t i = pick == CASES_ALL ? 0 : (size_t)pick; i < n; i++) {
		int status = before ? before() : 0;

		if (status)
			return status;
		if (cases[i].run)
			cases[i].run();
		else
			status = cases[i].run_status();
		if (after)
			after();
		printf("%s: %s\n", cases[i].name,
		       status == 0 ? "ok" : status == 77 ? "skipped" : "failed");
		if (status || pick != CASES_ALL)
			return status;
	}
	return 0;
}
#endif
