/* SPDX-License-Identifier: MIT */
/* CHECK for the integration tests: plain programs that stop at the first failed check,
 * and the table of named cases their main runs. */
#ifndef SALVO_TEST_CHECK_H
#define SALVO_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

/* A named case: meson runs each as its own test (the program's argument names it). */
struct test_case {
	const char *name;
	void (*run)(void);
};

/*
 * Run the case called name, or every case when name is NULL, each followed by after
 * (NULL: nothing), printing "NAME: ok" for each. Returns main's exit status: 0, or 1 with
 * a message for a name no case has.
 */
static inline int run_cases(const struct test_case *cases, size_t n, const char *name,
			    void (*after)(void))
{
	for (size_t i = 0; i < n; i++) {
		if (name && strcmp(name, cases[i].name) != 0)
			continue;
		cases[i].run();
		if (after)
			after();
		printf("%s: ok\n", cases[i].name);
		if (name)
			return 0;
	}
	if (name) {
		fprintf(stderr, "no case named '%s'\n", name);
		return 1;
	}
	return 0;
}
#endif
