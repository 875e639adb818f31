/* SPDX-License-Identifier: MIT */
/* CHECK for the integration tests: plain programs that stop at the first failed check. */
#ifndef SALVO_TEST_CHECK_H
#define SALVO_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

#endif
