#!/usr/bin/env bash
# Build salvo optimised and print the micro-benchmark figures (Google Benchmark).
# Extra arguments go to the benchmark binary, e.g. --benchmark_filter=PublishWrite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh </dev/null
builddir=${SALVO_BENCH_BUILD_DIR:-build-release}
if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" --buildtype=release -Dbench=enabled
fi
ninja -C "$builddir"
"$builddir/bench/micro/bench_codec" --benchmark_min_time=0.5 "$@"
"$builddir/bench/micro/bench_engine" --benchmark_min_time=0.5 "$@"
