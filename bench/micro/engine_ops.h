/* SPDX-License-Identifier: MIT */
/* C side of bench_engine.cc: the engine's headers use C11 atomics, which C++ cannot
 * include, so each benchmark round is a C function over an opaque handle. */
#ifndef SALVO_BENCH_ENGINE_OPS_H
#define SALVO_BENCH_ENGINE_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void *bench_ring_new(size_t capacity);
/* batch messages of size bytes in (reserve, copy, commit), then all sent and released. */
void bench_ring_round(void *ring, const uint8_t *msg, size_t size, int batch);
void bench_ring_free(void *ring);

void *bench_confirm_new(size_t window);
/* n tags added, settled by single acks (per == 0) or a multiple ack every per tags, then
 * drained; returns the release position. */
uint64_t bench_confirm_round(void *window, uint64_t n, uint64_t per);
void bench_confirm_free(void *window);

#ifdef __cplusplus
}
#endif

#endif
