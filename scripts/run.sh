#!/usr/bin/env bash
# The main job, from a fresh machine: install dependencies, build, start a throwaway
# RabbitMQ on 127.0.0.1, publish to it with live progress and a summary, stop it.
#
# Until salvo-perf exists (benchmark issue) the job is salvo-publish: SALVO_RUN_COUNT
# messages (default 500000) of SALVO_RUN_SIZE bytes (default 100) from one producer,
# best effort, into a queue it declares; the queue's count is checked afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${SALVO_RUN_COUNT:-500000}
size=${SALVO_RUN_SIZE:-100}

bash scripts/setup.sh </dev/null
builddir=${SALVO_BUILD_DIR:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir"
ninja -C "$builddir"

export SALVO_TEST_PORT=${SALVO_TEST_PORT:-5679}
stop_broker() { bash scripts/rabbitmq.sh stop </dev/null || true; }
trap stop_broker EXIT
uri=$(bash scripts/rabbitmq.sh start </dev/null)

echo "== salvo-publish: $count messages of $size bytes to $uri"
"$builddir/tools/salvo-publish" --uri "$uri" --routing-key salvo.run --declare-queue \
	--count "$count" --size "$size" --progress --json
# The broker counts asynchronously: give it a moment, then show what arrived.
for _ in $(seq 50); do
	n=$(bash scripts/rabbitmq.sh ctl -q list_queues name messages </dev/null |
		awk '$1 == "salvo.run" { print $2 }')
	[ "${n:-0}" -ge "$count" ] && break
	sleep 0.2
done
echo "== queue salvo.run holds ${n:-0} messages"
