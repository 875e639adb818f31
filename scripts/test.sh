#!/usr/bin/env bash
# Set up, build and test salvo from a clean clone:
#   install dependencies (scripts/setup.sh), configure with warnings as errors, build,
#   start a throwaway RabbitMQ on 127.0.0.1 (scripts/rabbitmq.sh, with its TLS listener),
#   run every meson test suite, stop the broker (also on failure); then the suites that need
#   no broker again under AddressSanitizer and UBSan (build-asan). Exits non-zero if anything
#   fails.
# SALVO_BUILD_DIR (default build) and SALVO_TEST_PORT (default 5679) can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh </dev/null

builddir=${SALVO_BUILD_DIR:-build}
if [ -f "$builddir/build.ninja" ]; then
	meson setup --reconfigure "$builddir" -Dwerror=true
else
	meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir"

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
meson test -C "$builddir" --print-errorlogs --verbose || status=$?

# The suites that need no RabbitMQ once more, built with AddressSanitizer (LeakSanitizer
# included) and UndefinedBehaviorSanitizer, every report fatal: memory errors, leaks and
# undefined behaviour fail the run (about 2 minutes). SALVO_TEST_SANITIZE=0 skips it;
# SALVO_TEST_SANITIZE=all adds the integration suite (about 10 minutes more).
if [ "${SALVO_TEST_SANITIZE:-1}" != 0 ]; then
	suites=(--suite codec --suite engine --suite sink)
	if [ "${SALVO_TEST_SANITIZE:-1}" = all ]; then
		suites+=(--suite integration --timeout-multiplier 3)
	fi
	sandir=${builddir}-asan
	if [ -f "$sandir/build.ninja" ]; then
		meson setup --reconfigure "$sandir" -Dwerror=true -Db_sanitize=address,undefined
	else
		meson setup "$sandir" -Dwerror=true -Db_sanitize=address,undefined
	fi
	ninja -C "$sandir"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C "$sandir" --print-errorlogs "${suites[@]}" || status=$?
fi

# One closing line per build, from meson's own record of the run.
python3 - "$builddir/meson-logs/testlog.json" "${sandir:-}" <<'PY'
import json, os, sys
for name, log in (("salvo", sys.argv[1]),
                  ("salvo (sanitizers)", sys.argv[2] + "/meson-logs/testlog.json")):
    if not os.path.exists(log) or (name != "salvo" and not sys.argv[2]):
        continue
    counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
    for line in open(log):
        r = json.loads(line)["result"]
        key = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
        counts[key] += 1
    print("%s: %d passed, %d failed, %d skipped" % (name, counts["OK"], counts["FAIL"], counts["SKIP"]))
PY
exit $status
