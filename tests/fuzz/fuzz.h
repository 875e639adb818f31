/* SPDX-License-Identifier: MIT */
/*
 * Shared by the fuzz targets and their standalone driver. A target's oracle failure aborts
 * with the failed condition on stderr: libFuzzer and the sanitizers report an abort as a
 * crash and save the input, and the standalone driver dies with it like any test.
 */
#ifndef SALVO_FUZZ_H
#define SALVO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void sv_fuzz_fail(const char *file, int line, const char *cond)
{
	fprintf(stderr, "%s:%d: oracle failed: %s\n", file, line, cond);
	abort();
}

#define FUZZ_CHECK(cond)                                               \
	do {                                                           \
		if (!(cond))                                           \
			sv_fuzz_fail(__FILE__, __LINE__, #cond);       \
	} while (0)

#endif
