// SPDX-License-Identifier: MIT
// Micro-benchmarks of the engine's per-message bookkeeping, one thread, no syscalls:
// a message through a publisher ring (reserve, copy, commit, then the I/O thread's
// pending, mark_sent, release), and confirms through the delivery-tag window (add at send
// time, settle by single or multiple acks, drain the outcomes). The rounds are C
// (engine_ops.c): the engine's headers use C11 atomics. Run:
// build-release/bench/micro/bench_engine (or scripts/bench.sh).
#include <benchmark/benchmark.h>

#include <vector>

#include "engine_ops.h"

namespace {

// batch messages of 150 bytes (a 100-byte body's frames) per round.
void BM_RingPublishDrain(benchmark::State &state)
{
	const size_t size = static_cast<size_t>(state.range(0));
	const int batch = static_cast<int>(state.range(1));
	std::vector<uint8_t> msg(size, 0x5a);
	void *r = bench_ring_new(4u << 20);

	if (!r) {
		state.SkipWithError("bench_ring_new failed");
		return;
	}
	for (auto _ : state)
		bench_ring_round(r, msg.data(), size, batch);
	bench_ring_free(r);
	state.SetItemsProcessed(state.iterations() * batch);
	state.SetBytesProcessed(state.iterations() * batch * static_cast<int64_t>(size));
}
BENCHMARK(BM_RingPublishDrain)->Args({150, 1})->Args({150, 64})->Args({150, 1024});

// n tags sent, acked one by one in order, drained.
void BM_ConfirmSingleAck(benchmark::State &state)
{
	const uint64_t n = static_cast<uint64_t>(state.range(0));
	void *c = bench_confirm_new(n);

	if (!c) {
		state.SkipWithError("bench_confirm_new failed");
		return;
	}
	for (auto _ : state)
		benchmark::DoNotOptimize(bench_confirm_round(c, n, 0));
	bench_confirm_free(c);
	state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_ConfirmSingleAck)->Arg(64)->Arg(4096);

// n tags sent, one multiple ack per `per` tags (RabbitMQ acks a stream in batches of
// about ten), drained.
void BM_ConfirmMultipleAck(benchmark::State &state)
{
	const uint64_t n = static_cast<uint64_t>(state.range(0));
	const uint64_t per = static_cast<uint64_t>(state.range(1));
	void *c = bench_confirm_new(n);

	if (!c) {
		state.SkipWithError("bench_confirm_new failed");
		return;
	}
	for (auto _ : state)
		benchmark::DoNotOptimize(bench_confirm_round(c, n, per));
	bench_confirm_free(c);
	state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_ConfirmMultipleAck)->Args({4096, 10})->Args({4096, 4096});

} // namespace

BENCHMARK_MAIN();
