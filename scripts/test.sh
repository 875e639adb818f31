#!/usr/bin/env bash
# Set up, build and test salvo from a clean clone:
#   install dependencies (scripts/setup.sh), configure with warnings as errors, build,
#   start a throwaway RabbitMQ on 127.0.0.1 (scripts/rabbitmq.sh, with its TLS listener),
#   run every meson test suite but cluster; run the suites that need no broker again under
#   AddressSanitizer and UBSan (build-asan) and the engine suite (on request also
#   integration) under ThreadSanitizer (build-tsan); stop the broker; start a three-node
#   cluster (scripts/rabbitmq.sh cluster start), run suite cluster, then the chaos soak
#   (scripts/soak.sh, 2 minutes) on it, and stop it (each broker also on failure). Exits
#   non-zero if anything fails.
# SALVO_BUILD_DIR (default build), SALVO_TEST_PORT (default 5679), SALVO_TEST_CLUSTER_PORT
# (default 5781), SALVO_TEST_SOAK_MINUTES and SALVO_TEST_SANITIZE (below) can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh </dev/null

# Configure build directory $1 with warnings as errors and the meson options after it (or
# reconfigure it, if it exists), then build it.
build() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" -Dwerror=true "$@"
	else
		meson setup "$dir" -Dwerror=true "$@"
	fi
	ninja -C "$dir"
}

builddir=${SALVO_BUILD_DIR:-build}
build "$builddir"

export SALVO_TEST_PORT=${SALVO_TEST_PORT:-5679}
stop_broker() { bash scripts/rabbitmq.sh stop </dev/null || true; }
trap stop_broker EXIT
# With a TLS listener on SALVO_TEST_PORT + 1: start prints the amqp URI, the amqps URI
# and the directory of the test certificates (scripts/tls.sh), one per line.
broker=$(bash scripts/rabbitmq.sh start --tls </dev/null)
SALVO_TEST_URI=$(sed -n 1p <<<"$broker")
SALVO_TEST_TLS_URI=$(sed -n 2p <<<"$broker")
SALVO_TEST_TLS_DIR=$(sed -n 3p <<<"$broker")
export SALVO_TEST_TLS_URI SALVO_TEST_TLS_DIR
# The frozen-broker heartbeat test stops and resumes this PID (SIGSTOP / SIGCONT).
SALVO_TEST_BROKER_PID=$(bash scripts/rabbitmq.sh status </dev/null |
	sed -n 's/.*beam_pid=\([0-9]*\).*/\1/p')
export SALVO_TEST_URI SALVO_TEST_BROKER_PID
echo "test broker: $SALVO_TEST_URI (pid $SALVO_TEST_BROKER_PID)"

status=0
# Suite cluster needs a cluster, not this broker: it runs last, below.
meson test -C "$builddir" --print-errorlogs --verbose --no-suite cluster || status=$?

# Sanitizer passes, each in its own build directory, every report fatal.
# SALVO_TEST_SANITIZE chooses them:
#   unset or 1  AddressSanitizer (LeakSanitizer included) and UBSan on the suites that need no
#               RabbitMQ, then ThreadSanitizer on the engine suite (about 4 minutes)
#   thread      ThreadSanitizer alone, on engine and integration (about 10 minutes)
#   all         both, each with integration added (about 22 minutes)
#   0           none
sanitize=${SALVO_TEST_SANITIZE:-1}
sandir="" tsandir=""

# Memory errors, leaks and undefined behaviour.
if [ "$sanitize" != 0 ] && [ "$sanitize" != thread ]; then
	suites=(--suite codec --suite engine --suite sink)
	if [ "$sanitize" = all ]; then
		suites+=(--suite integration --timeout-multiplier 3)
	fi
	sandir=${builddir}-asan
	build "$sandir" -Db_sanitize=address,undefined
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C "$sandir" --print-errorlogs "${suites[@]}" || status=$?
fi

# Data races and lock-order inversions between producers, the I/O thread and the
# application's threads: the engine suite holds the fake-broker fault tests, salvo-sink's
# confirms and the reconnection tests; integration the consumers, pools, listeners and TLS.
# The first report ends its process, failing its test with both stacks in the log. No
# suppressions; docs/tests.md says what TSan cannot see here (the kernel's side of
# io_uring, futex and eventfd; the rings' second mapping), and why integration is not in
# the default.
if [ "$sanitize" != 0 ]; then
	tsuites=(--suite engine)
	if [ "$sanitize" = thread ] || [ "$sanitize" = all ]; then
		tsuites+=(--suite integration)
	fi
	tsandir=${builddir}-tsan
	build "$tsandir" -Db_sanitize=thread
	# gcc 12's TSan runtime dies at start-up ("FATAL: ThreadSanitizer: unexpected memory
	# mapping") where the kernel randomises mmap with more than 30 bits (vm.mmap_rnd_bits
	# is 32 on some newer distributions; LLVM 18's runtime re-executes itself without ASLR,
	# gcc 12's does not). So the tests run with ASLR off, where personality() is allowed.
	norandom=()
	if setarch "$(uname -m)" -R true 2>/dev/null; then
		norandom=(setarch "$(uname -m)" -R)
	fi
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		"${norandom[@]}" meson test -C "$tsandir" --print-errorlogs "${tsuites[@]}" \
		--timeout-multiplier 3 || status=$?
fi

# Suite cluster against a three-node cluster (scripts/rabbitmq.sh cluster start, on
# SALVO_TEST_CLUSTER_PORT, default 5781, and the two ports after it), last, with the single
# broker stopped first (the sanitizer passes above may need it): two cores do not run four
# brokers well. The cluster is stopped by the trap too, also on failure.
stop_broker
export SALVO_TEST_CLUSTER_PORT=${SALVO_TEST_CLUSTER_PORT:-5781}
# Only a cluster this run started is stopped: a start refused because one of someone
# else's runs on the port leaves that one alone (and its URIs unused).
cluster_started=0
stop_cluster() {
	if ((cluster_started)); then
		bash scripts/rabbitmq.sh cluster stop </dev/null || true
		cluster_started=0
	fi
}
trap 'stop_broker; stop_cluster' EXIT
rm -f "$builddir/meson-logs/testlog-cluster.json"
unset SALVO_TEST_CLUSTER_URIS
if cluster=$(bash scripts/rabbitmq.sh cluster start 3 </dev/null); then
	cluster_started=1
	SALVO_TEST_CLUSTER_URIS=$(tr '\n' ' ' <<<"$cluster")
	export SALVO_TEST_CLUSTER_URIS=${SALVO_TEST_CLUSTER_URIS% }
	echo "test cluster: $SALVO_TEST_CLUSTER_URIS"
	# --logbase: meson's record of this run must not replace the one above.
	meson test -C "$builddir" --print-errorlogs --verbose --suite cluster \
		--logbase testlog-cluster || status=$?
else
	echo "the test cluster did not start: suite cluster not run" >&2
	status=1
fi

# The chaos soak (scripts/soak.sh, docs/tests.md): SALVO_TEST_SOAK_MINUTES (default 2; 0
# skips it) of faults against the same cluster, through the soak's proxy
# (SALVO_SOAK_PROXY_PORT, default 5801, and the two ports after it). Should suite cluster
# have left a node down, the cluster is stopped and the soak starts one of its own.
soak_minutes=${SALVO_TEST_SOAK_MINUTES:-2}
soak_line=""
if [ "$soak_minutes" != 0 ]; then
	soak_cluster=""
	if [ -n "${SALVO_TEST_CLUSTER_URIS:-}" ] &&
		bash scripts/rabbitmq.sh cluster status </dev/null >/dev/null 2>&1; then
		soak_cluster=$SALVO_TEST_CLUSTER_URIS
	else
		stop_cluster
	fi
	soak_status=0
	SALVO_BUILD_DIR=$builddir SALVO_SOAK_CLUSTER_URIS=$soak_cluster bash scripts/soak.sh \
		"$soak_minutes" --json "$builddir/soak.json" </dev/null || soak_status=$?
	if [ "$soak_status" = 0 ]; then
		soak_line="salvo soak ($soak_minutes min): passed"
	else
		soak_line="salvo soak ($soak_minutes min): FAILED (exit $soak_status; $builddir/soak.json)"
		status=1
	fi
fi
stop_cluster

# One closing line per build, from meson's own record of the run, after the failed tests
# with the end of their output: a CI log is often read from its tail, and a long run
# pushes meson's own failure reports out of it.
python3 - "$builddir" "$sandir" "$tsandir" <<'PY'
import json, os, sys
lines = []
for name, build, base in (("salvo", sys.argv[1], "testlog"),
                          ("salvo (cluster)", sys.argv[1], "testlog-cluster"),
                          ("salvo (sanitizers)", sys.argv[2], "testlog"),
                          ("salvo (thread sanitizer)", sys.argv[3], "testlog")):
    log = build + "/meson-logs/" + base + ".json"
    if not build or not os.path.exists(log):
        continue
    counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
    for line in open(log):
        t = json.loads(line)
        r = t["result"]
        key = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
        counts[key] += 1
        if key == "FAIL":
            out = (t.get("stdout") or "").rstrip("\n").split("\n")
            print("--- %s: %s %s (%.1f s); its last lines:" % (name, r, t["name"], t["duration"]))
            for l in out[-12:]:
                print("    " + l[:300])
    lines.append("%s: %d passed, %d failed, %d skipped" % (name, counts["OK"], counts["FAIL"], counts["SKIP"]))
print("\n".join(lines))
PY
[ -z "$soak_line" ] || echo "$soak_line"
exit $status
