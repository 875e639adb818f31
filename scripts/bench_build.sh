# shellcheck shell=bash
# Sourced (from the repository's root) by scripts/bench.sh and scripts/bench_batch.sh: install
# what is missing (scripts/setup.sh), build the release tree with the benchmarks in
# $builddir (SALVO_BENCH_BUILD_DIR, default build-release), and define n COUNT, the count
# times SALVO_BENCH_SCALE (default 1; 0.1 for a quick look), at least 64.
bash scripts/setup.sh </dev/null
builddir=${SALVO_BENCH_BUILD_DIR:-build-release}
if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" --buildtype=release -Dbench=enabled
fi
ninja -C "$builddir"

scale=${SALVO_BENCH_SCALE:-1}
n() { awk -v a="$1" -v s="$scale" 'BEGIN { v = int(a * s); print v < 64 ? 64 : v }'; }
