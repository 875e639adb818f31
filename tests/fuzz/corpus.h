/* SPDX-License-Identifier: MIT */
/* The seed corpus generator's parts (make_corpus.c's main, batch_seeds.c). */
#ifndef SALVO_FUZZ_CORPUS_H
#define SALVO_FUZZ_CORPUS_H

#include <stddef.h>

/* Write DIR/kind/name; exits with a message on failure. */
void write_seed(const char *kind, const char *name, const void *buf, size_t len);

/* Envelopes for fuzz_batch, into DIR/batch. */
void batch_seeds(void);

#endif
