#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz) with clang, AddressSanitizer and UBSan, and fuzz
# each in turn for a number of executions: scripts/fuzz.sh [RUNS] (default $FUZZ_RUNS, else
# 1000000). Each target starts from a scratch copy of its committed corpus, so new inputs
# never land in the tree; inputs that crash are kept in the scratch directory and named in
# the output. Exits non-zero if any target crashed, leaked, timed out or broke an oracle.
#
# FUZZ_BUILD overrides the build directory (default build-fuzz beside the sources).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-${FUZZ_RUNS:-1000000}}
build=${FUZZ_BUILD:-$root/build-fuzz}
scratch=$build/fuzz-run

case $runs in
'' | *[!0-9]*)
	echo "usage: $0 [RUNS]  (RUNS: executions per target, default 1000000)" >&2
	exit 2
	;;
esac

# -fno-sanitize-recover makes undefined behaviour abort, so it counts as a crash instead of a
# line in the log. (-Dfuzzing=true also instruments libsalvo itself for coverage.)
options=(
	-Dfuzzing=true
	-Db_sanitize=address,undefined
	-Db_lundef=false
	-Dbench=disabled
	"-Dc_args=['-fno-sanitize-recover=all']"
)
if [ -f "$build/build.ninja" ]; then
	meson configure "$build" "${options[@]}" >/dev/null
else
	CC=clang meson setup "$build" "$root" "${options[@]}"
fi
ninja -C "$build" tests/fuzz/fuzz_batch tests/fuzz/fuzz_frame tests/fuzz/fuzz_table tests/fuzz/fuzz_uri

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

# max_len: frame inputs hold a few frames of any size up to frame_max (4096 + their first two
# bytes); tables past a few KiB add bytes but no new structure; a URI is refused past 4096
# bytes, so twice that covers every length the parser treats differently; an envelope's
# body of 64 KiB holds several LZ4 blocks (64 KiB each before compression) and bombs that
# decompress past any cap the input can choose (4 MiB).
declare -A max_len=([batch]=65536 [frame]=65536 [table]=16384 [uri]=8192)
failed=()
summary=()
for t in batch frame table uri; do
	dir=$scratch/$t
	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp "$root/tests/fuzz/corpus/$t/"* "$dir/corpus/"
	echo "fuzz: fuzz_$t, $runs executions, max_len ${max_len[$t]}"
	start=$(date +%s.%N)
	status=0
	"$build/tests/fuzz/fuzz_$t" -runs="$runs" -max_len="${max_len[$t]}" \
		-artifact_prefix="$dir/artifacts/" -print_final_stats=1 "$dir/corpus" \
		>"$dir/log" 2>&1 || status=$?
	end=$(date +%s.%N)
	tail -n 25 "$dir/log"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	line=$(printf 'fuzz_%s: %s executions in %.1f s wall, exit %d, corpus %s -> %s files' \
		"$t" "${execs:-?}" "$(awk "BEGIN { print $end - $start }")" "$status" \
		"$(ls "$root/tests/fuzz/corpus/$t" | wc -l)" "$(ls "$dir/corpus" | wc -l)")
	summary+=("$line")
	if [ "$status" -ne 0 ] || [ -n "$(ls -A "$dir/artifacts")" ]; then
		failed+=("$t")
		summary+=("  artifacts: $(ls -d "$dir/artifacts/"* 2>/dev/null | tr '\n' ' ')")
		summary+=("  log: $dir/log")
	fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz: no crashes"
