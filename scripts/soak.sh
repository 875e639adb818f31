#!/usr/bin/env bash
# The chaos soak: MINUTES (default 2) of publishing and consuming through a 3-node RabbitMQ
# cluster while faults are injected, then a check that nothing confirmed was lost.
#
#   scripts/soak.sh [MINUTES] [--json FILE]
#
# Builds tests/soak/soak_client, starts a cluster of 3 (scripts/rabbitmq.sh cluster start,
# base port SALVO_TEST_CLUSTER_PORT, default 5781) unless SALVO_SOAK_CLUSTER_URIS names
# the nodes of one already running (one URI per line or space separated, started by the
# same script on the same base port; the soak kills and restarts its nodes, and leaves it
# running), and runs tests/soak/soak.py: a TCP proxy per node on 127.0.0.1 ports
# SALVO_SOAK_PROXY_PORT.. (default 5801), soak_client's connections through them, and a
# fault every 5-15 s drawn from SOAK_SEED (default 1, printed): kill -9 of a node and its
# restart, rabbitmqctl close_connection, every connection cut by the proxy, every
# connection stalled by it for 8 s (heartbeat 2 s), a memory alarm for 4 s. At the end it
# prints the faults' table and the checks (docs/tests.md, "The chaos soak"); --json FILE
# writes both. Exits non-zero if any check fails. Everything it started (the client, the
# proxy, the cluster) is stopped by PID on exit, also on failure or Ctrl-C.
# SALVO_BUILD_DIR (default build) is the build directory; SOAK_RATE (default 150) caps each
# producer's messages a second.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=2 json=""
while (($#)); do
	case $1 in
	--json)
		[[ $# -ge 2 ]] || { echo "usage: $0 [MINUTES] [--json FILE]" >&2; exit 2; }
		json=$2
		shift 2
		;;
	*)
		[[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "usage: $0 [MINUTES] [--json FILE]" >&2; exit 2; }
		minutes=$1
		shift
		;;
	esac
done
seed=${SOAK_SEED:-1}
[[ $seed =~ ^[0-9]+$ ]] || { echo "soak.sh: SOAK_SEED must be a number, got '$seed'" >&2; exit 2; }
proxy_port=${SALVO_SOAK_PROXY_PORT:-5801}
builddir=${SALVO_BUILD_DIR:-build}

if [ ! -f "$builddir/build.ninja" ]; then
	meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir" tests/soak/soak_client

started_cluster=0 driver_pid=""
cleanup() {
	local status=$?
	if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
		# The driver kills its client and closes its proxy on SIGTERM.
		kill -TERM "$driver_pid" 2>/dev/null || true
		wait "$driver_pid" 2>/dev/null || true
	fi
	if ((started_cluster)); then
		bash scripts/rabbitmq.sh cluster stop </dev/null || true
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${SALVO_SOAK_CLUSTER_URIS:-} ]]; then
	read -r -a nodes <<<"$(tr '\n' ' ' <<<"$SALVO_SOAK_CLUSTER_URIS")"
else
	# A command substitution, not a process substitution: the start runs in the
	# foreground, so a Ctrl-C reaches it (its own trap stops what it started), and a
	# start that fails (a cluster of someone else's already on the port) is not one to
	# stop here.
	out=$(bash scripts/rabbitmq.sh cluster start 3 </dev/null) || exit 1
	started_cluster=1
	mapfile -t nodes <<<"$out"
fi
((${#nodes[@]} >= 1)) || { echo "soak.sh: no cluster nodes" >&2; exit 1; }

args=(--minutes "$minutes" --seed "$seed" --client "$builddir/tests/soak/soak_client"
	--root "$PWD" --proxy-port "$proxy_port" --rate "${SOAK_RATE:-150}")
[[ -n $json ]] && args+=(--json "$json")
# In the background and waited for, so that the traps run at once on a signal.
python3 tests/soak/soak.py "${args[@]}" "${nodes[@]}" </dev/null &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
exit "$status"
