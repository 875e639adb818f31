#!/usr/bin/env bash
# Throwaway RabbitMQ node for salvo's integration tests.
#
#   scripts/rabbitmq.sh start      start a node, print its AMQP URI on stdout
#   scripts/rabbitmq.sh start --tls  also listen for TLS (below); print on stdout the AMQP
#                                  URI, the amqps URI, and the certificate directory
#   scripts/rabbitmq.sh status     print URI and PIDs; non-zero unless it accepts AMQP
#   scripts/rabbitmq.sh stop       stop it and delete its files (no-op if not running)
#   scripts/rabbitmq.sh ctl ARGS   run rabbitmqctl against it (e.g. ctl list_queues)
#   scripts/rabbitmq.sh crash      kill -9 the broker by its PID, keeping its files
#   scripts/rabbitmq.sh restart    start a crashed broker again on its files and port
#
# A cluster of N nodes (separate from the single node; both can run at once):
#   scripts/rabbitmq.sh cluster start [N]   start N nodes (default 3, 1..9) and join nodes
#                                  2..N to node 1 (stop_app, join_cluster, start_app); wait
#                                  until every node answers AMQP and node 1's cluster_status
#                                  lists N running nodes; print one URI per node on stdout
#                                  (amqp://guest:guest@127.0.0.1:PORT). On any failure, or
#                                  past SALVO_TEST_CLUSTER_TIMEOUT seconds (default 180),
#                                  it says why, shows the logs' tails and stops everything.
#                                  16 to 42 s for 3 nodes on 2 shared cores.
#   scripts/rabbitmq.sh cluster stop        stop every node and epmd by PID, delete the files
#                                  (no-op if none runs)
#   scripts/rabbitmq.sh cluster status      one line per node: URI, node=I, PIDs, running or
#                                  stopped; then epmd's PID; non-zero unless all run
#   scripts/rabbitmq.sh cluster kill NODE   kill -9 node NODE's beam (1-based) by its PID,
#                                  keeping its files; the others and epmd go on
#   scripts/rabbitmq.sh cluster restart NODE  start a killed node on its files; wait until it
#                                  answers AMQP and its cluster_status lists every node
#                                  running; print its URI
#   scripts/rabbitmq.sh cluster ctl NODE ARGS  rabbitmqctl against node NODE
# Ports from BASE = SALVO_TEST_CLUSTER_PORT (default 5781, 1024..45527): node I's AMQP on
# BASE+I-1 and Erlang distribution on BASE+20000+I-1, one epmd for all on BASE+10000,
# rabbitmqctl's distribution listener in BASE+10001..BASE+10009. Files in one mktemp -d
# directory (ROOT/nodeI per node, one Erlang cookie in ROOT, the nodes' HOME); state in
# ${TMPDIR:-/tmp}/salvo-rabbitmq-cluster-BASE.state.
#
# Everything lives in a mktemp -d directory (config, mnesia, logs, HOME with the
# Erlang cookie), so the packaged broker's /var/lib/rabbitmq and /etc/rabbitmq are
# never touched. All sockets listen on 127.0.0.1, on ports derived from
# SALVO_TEST_PORT (default 5679) so several nodes can run side by side:
#   AMQP = PORT, epmd = PORT + 10000, Erlang distribution = PORT + 20000
# hence 1024 <= PORT <= 45535. The state file ${TMPDIR:-/tmp}/salvo-rabbitmq-PORT.state
# lets stop/status/ctl find the node from another shell.
# SALVO_TEST_START_TIMEOUT (seconds, default 120) bounds the wait in start.
#
# TLS (start --tls, or SALVO_TEST_TLS_PORT set): scripts/tls.sh makes throwaway
# certificates in the node's directory (DIR/tls: ca.pem, server.pem, client.pem, ...), and
# the node gets a TLS listener on 127.0.0.1:SALVO_TEST_TLS_PORT (default PORT + 1) serving
# server.pem (CN and SAN localhost, SAN IP 127.0.0.1), requesting but not requiring a client
# certificate signed by ca.pem. rabbitmq_auth_mechanism_ssl is enabled and EXTERNAL
# offered, logging in as the certificate's CN: user salvo-client (client.pem) is created
# with full permissions on vhost / and a password nobody knows. The amqps URI names
# localhost (so the host name is checked) and ca.pem (cacertfile=...).
set -euo pipefail

port=${SALVO_TEST_PORT:-5679}
tls_port=${SALVO_TEST_TLS_PORT:-}
if [[ ${1:-} == start && ${2:-} == --tls && -z $tls_port ]]; then
	tls_port=$((port + 1))
fi
tmp_root=${TMPDIR:-/tmp}
tmp_root=${tmp_root%/}
state="$tmp_root/salvo-rabbitmq-$port.state"
start_timeout=${SALVO_TEST_START_TIMEOUT:-120}
rmq_bin=/usr/lib/rabbitmq/bin
script_dir=$(cd "$(dirname "$0")" && pwd)

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1024 || port > 45535)); then
	die "SALVO_TEST_PORT must be an integer in 1024..45535, got '$port'"
fi
if [[ -n $tls_port ]] && { ! [[ $tls_port =~ ^[0-9]+$ ]] || ((tls_port < 1024 || tls_port > 65535)); }; then
	die "SALVO_TEST_TLS_PORT must be an integer in 1024..65535, got '$tls_port'"
fi
epmd_port=$((port + 10000))
dist_port=$((port + 20000))
node="salvo-test-$port@localhost"
# No trailing slash: by the RabbitMQ URI spec "amqp://h/" names the empty vhost, "amqp://h" the default.
uri="amqp://guest:guest@127.0.0.1:$port"
dir="" starter_pid="" epmd_pid="" wrapper_pid="" beam_pid="" home="" ctl_port_min="" ctl_port_max=""
tls_uri() { echo "amqps://guest:guest@localhost:$tls_port?cacertfile=$dir/tls/ca.pem"; }

node_env() {
	# A caller's RABBITMQ_* (e.g. NODE_PORT, ENABLED_PLUGINS) would override our config.
	local v
	for v in $(compgen -e); do
		[[ $v == RABBITMQ_* ]] && unset "$v"
	done
	# The marker lets is_ours() tell our processes from a reused PID.
	# A cluster's nodes share one HOME (one Erlang cookie); a single node has its own.
	export SALVO_RABBITMQ_DIR="$dir" HOME="${home:-$dir}" LC_ALL=C.UTF-8 LANG=C.UTF-8
	export ERL_EPMD_PORT=$epmd_port ERL_CRASH_DUMP="$dir/erl_crash.dump"
	# Applies to every erl we spawn (broker, its epmd-starter, rabbitmqctl): never
	# auto-start a system-wide epmd, and keep the distribution listener on loopback.
	export ERL_AFLAGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
	export RABBITMQ_NODENAME="$node" RABBITMQ_DIST_PORT=$dist_port
	# Point every path away from /etc/rabbitmq and /var/lib/rabbitmq.
	export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_CONFIG_FILES="$dir/conf.d"
	export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
	export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_PID_FILE="$dir/beam.pid"
	# rabbitmqctl's own distribution listener (default 35672..35682, shared by every user).
	if [[ -n $ctl_port_min ]]; then
		export RABBITMQ_CTL_DIST_PORT_MIN=$ctl_port_min RABBITMQ_CTL_DIST_PORT_MAX=$ctl_port_max
	fi
}

read_state() {
	local k v
	while IFS='=' read -r k v; do
		case $k in
		dir | starter_pid | epmd_pid | wrapper_pid | beam_pid | tls_port) printf -v "$k" '%s' "$v" ;;
		esac
	done <"$state"
}

write_state() {
	printf 'dir=%s\nstarter_pid=%s\nepmd_pid=%s\nwrapper_pid=%s\nbeam_pid=%s\ntls_port=%s\n' \
		"$dir" "$starter_pid" "$epmd_pid" "$wrapper_pid" "$beam_pid" "$tls_port" >"$state.new"
	mv -f "$state.new" "$state"
}

# PIDs get reused: only trust one whose command line matches $2 and whose
# environment carries our directory marker. Zombies have an empty cmdline.
is_ours() {
	local pid=$1 pattern=$2 cmd
	[[ $pid =~ ^[0-9]+$ && -n $dir ]] || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	# shellcheck disable=SC2053 # $pattern is a glob on purpose
	[[ $cmd == $pattern ]] || return 1
	grep -qzxF "SALVO_RABBITMQ_DIR=$dir" "/proc/$pid/environ" 2>/dev/null
}

# Sends the AMQP 0-9-1 header; a live broker answers with a method frame (connection.start).
amqp_ready() {
	python3 - "$port" 2>/dev/null <<-'EOF'
		import socket, sys
		try:
		    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
		    s.settimeout(5)
		    s.sendall(b"AMQP\x00\x00\x09\x01")
		    ok = s.recv(1) == b"\x01"
		    s.close()
		except OSError:
		    ok = False
		sys.exit(0 if ok else 1)
	EOF
}

# signal_and_wait PID PATTERN SECONDS: SIGTERM, bounded wait, then SIGKILL.
signal_and_wait() {
	local pid=$1 pattern=$2 i
	is_ours "$pid" "$pattern" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < $3 * 10; i++)); do
		is_ours "$pid" "$pattern" || return 0
		sleep 0.1
	done
	log "PID $pid ignored SIGTERM for $3 s, sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

teardown() {
	# Before the pid file exists, the beam is the wrapper script's only child.
	if [[ -z $beam_pid ]] && is_ours "$wrapper_pid" '*rabbitmq-server*'; then
		beam_pid=$(pgrep -o -P "$wrapper_pid" || true)
	fi
	signal_and_wait "$beam_pid" '*beam*' 30
	# The wrapper exits by itself once the beam is gone; this only catches oddities.
	signal_and_wait "$wrapper_pid" '*rabbitmq-server*' 5
	signal_and_wait "$epmd_pid" '*epmd*' 5
	# Refuse to rm -rf anything mktemp did not give us.
	if [[ $dir == "$tmp_root/salvo-rabbitmq-$port."* && -d $dir ]]; then
		rm -rf -- "$dir"
	fi
	rm -f -- "$state" "$state.new"
}

start_failed() {
	trap - EXIT INT TERM
	log "$1"
	if [[ -n $dir ]]; then
		local f
		for f in "$dir/broker.out" "$dir/epmd.log" "$dir"/log/*.log; do
			[[ -s $f ]] && { echo "==> $f <==" && tail -n 40 "$f"; } >&2
		done
	fi
	teardown
	exit 1
}

# The files of a node in $dir: its configuration (AMQP on 127.0.0.1:$port), no plugins.
node_files() {
	cat >"$dir/rabbitmq.conf" <<-EOF
		listeners.tcp.1 = 127.0.0.1:$port
		log.file.level = info
		log.console = false
		# Tests must not be blocked by the default 50 MB free-disk alarm on a small /tmp.
		disk_free_limit.absolute = 1MB
	EOF
	# No plugins at all: management, prometheus, etc. would open more ports.
	echo '[].' >"$dir/enabled_plugins"
	: >"$dir/rabbitmq-env.conf"
	mkdir -p "$dir/conf.d" "$dir/log" "$dir/mnesia"
}

cmd_start() {
	local i
	# noclobber makes creating the state file an atomic claim on the port.
	if ! (set -C && echo "starter_pid=$$" >"$state") 2>/dev/null; then
		[[ -f $state ]] || die "cannot create $state"
		read_state
		local cmd
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/${starter_pid:-0}/cmdline") || cmd=""
		if is_ours "$beam_pid" '*beam*' || is_ours "$epmd_pid" '*epmd*' ||
			is_ours "$wrapper_pid" '*rabbitmq-server*' || [[ $cmd == *rabbitmq.sh*start* ]]; then
			die "already running (or starting) on port $port, see $state; run stop first"
		fi
		log "removing stale state $state"
		teardown
		(set -C && echo "starter_pid=$$" >"$state") 2>/dev/null || die "lost a race for $state"
	fi
	starter_pid=$$
	trap 'start_failed "interrupted"' INT TERM
	# Any unexpected failure (set -e) must not leave epmd or the broker behind.
	trap 'start_failed "start failed (exit $?)"' EXIT
	for i in "$port" "$epmd_port" "$dist_port" $tls_port; do
		[[ -z $(ss -Hltn "sport = :$i") ]] || start_failed "TCP port $i is already in use"
	done
	dir=$(mktemp -d "$tmp_root/salvo-rabbitmq-$port.XXXXXX")
	write_state
	node_env
	cd "$dir"

	# Our own epmd, so the node never registers with (or spawns) the system one on 4369.
	setsid epmd -address 127.0.0.1 -port "$epmd_port" </dev/null >"$dir/epmd.log" 2>&1 &
	epmd_pid=$!
	write_state
	for ((i = 0; ; i++)); do
		epmd -port "$epmd_port" -names >/dev/null 2>&1 && break
		if ((i >= 50)) || ! is_ours "$epmd_pid" '*epmd*'; then
			start_failed "epmd did not come up on port $epmd_port"
		fi
		sleep 0.1
	done

	node_files
	if [[ -n $tls_port ]]; then
		bash "$script_dir/tls.sh" "$dir/tls" 2>/dev/null || start_failed "scripts/tls.sh failed"
		cat >>"$dir/rabbitmq.conf" <<-EOF
			listeners.ssl.1 = 127.0.0.1:$tls_port
			ssl_options.cacertfile = $dir/tls/ca.pem
			ssl_options.certfile = $dir/tls/server.pem
			ssl_options.keyfile = $dir/tls/server.key
			ssl_options.verify = verify_peer
			ssl_options.fail_if_no_peer_cert = false
			auth_mechanisms.1 = PLAIN
			auth_mechanisms.2 = AMQPLAIN
			auth_mechanisms.3 = EXTERNAL
			ssl_cert_login_from = common_name
		EOF
		# Only this plugin, which opens no port; it ships with Debian's rabbitmq-server.
		echo '[rabbitmq_auth_mechanism_ssl].' >"$dir/enabled_plugins"
	fi

	# The /usr/sbin wrapper would su to the rabbitmq user and use /var/lib/rabbitmq,
	# so run the real script. setsid + redirections detach it from the caller's
	# terminal, process group and stdout (so $(... start) does not hang).
	log "starting $node (AMQP $port, epmd $epmd_port, dist $dist_port) in $dir"
	setsid "$rmq_bin/rabbitmq-server" </dev/null >"$dir/broker.out" 2>&1 &
	wrapper_pid=$!
	write_state

	local deadline=$((SECONDS + start_timeout))
	while ! amqp_ready; do
		is_ours "$wrapper_pid" '*rabbitmq-server*' || start_failed "broker exited during startup"
		((SECONDS < deadline)) || start_failed "broker did not accept AMQP within $start_timeout s"
		sleep 0.25
	done
	beam_pid=$(<"$dir/beam.pid")
	is_ours "$beam_pid" '*beam*' || start_failed "pid file $dir/beam.pid does not name our beam"
	write_state
	check_loopback || start_failed "a listener is not bound to 127.0.0.1"
	if [[ -n $tls_port ]]; then
		[[ -n $(ss -Hltn "sport = :$tls_port") ]] || start_failed "no TLS listener on port $tls_port"
		# The EXTERNAL login's user: the client certificate's CN, with an unknowable password.
		"$rmq_bin/rabbitmqctl" -n "$node" add_user salvo-client "$(openssl rand -hex 24)" >/dev/null ||
			start_failed "rabbitmqctl add_user salvo-client failed"
		"$rmq_bin/rabbitmqctl" -n "$node" set_permissions -p / salvo-client '.*' '.*' '.*' >/dev/null ||
			start_failed "rabbitmqctl set_permissions failed"
	fi
	trap - EXIT INT TERM
	log "ready after $SECONDS s (beam $beam_pid, epmd $epmd_pid)"
	echo "$uri"
	if [[ -n $tls_port ]]; then
		tls_uri
		echo "$dir/tls"
	fi
}

# Every listening socket of the beam and epmd must be on loopback. epmd always
# adds [::1] next to the -address list when the kernel has IPv6; that is loopback too.
check_loopback() {
	local bad
	bad=$(ss -Hltnp | grep -E "pid=($beam_pid|$epmd_pid)," |
		awk '$4 !~ /^127\.0\.0\.1:/ && $4 != "[::1]:'"$epmd_port"'"' || true)
	[[ -z $bad ]] || { log "non-loopback listener(s):"$'\n'"$bad"; return 1; }
}

cmd_stop() {
	if [[ ! -e $state ]]; then
		log "no node running on port $port (no $state)"
		return 0
	fi
	read_state
	teardown
	log "stopped node on port $port"
}

cmd_status() {
	[[ -e $state ]] || die "not running (no $state)"
	read_state
	is_ours "$beam_pid" '*beam*' || die "broker process not running (stale $state)"
	is_ours "$epmd_pid" '*epmd*' || die "epmd not running (stale $state)"
	amqp_ready || die "broker $beam_pid is not accepting AMQP on port $port"
	echo "$uri"
	[[ -z $tls_port ]] || tls_uri
	echo "beam_pid=$beam_pid epmd_pid=$epmd_pid dir=$dir"
}

# crash: SIGKILL the broker (kill -9, by its recorded PID), keeping its directory and
# epmd, as a power cut would; restart: start it again in the same directory, with what it
# had written to disk (durable queues, persistent messages).
cmd_crash() {
	[[ -e $state ]] || die "not running (no $state)"
	read_state
	is_ours "$beam_pid" '*beam*' || die "broker process not running (stale $state)"
	kill -KILL "$beam_pid"
	local i
	for ((i = 0; i < 100; i++)); do
		is_ours "$beam_pid" '*beam*' || break
		sleep 0.1
	done
	# The wrapper script exits with its beam.
	for ((i = 0; i < 50; i++)); do
		is_ours "$wrapper_pid" '*rabbitmq-server*' || break
		sleep 0.1
	done
	log "killed beam $beam_pid (SIGKILL); $dir kept"
}

# A restart that fails says why: the tails of the broker's output and logs (its files stay
# for stop, which the caller runs).
restart_failed() {
	local f
	log "$1"
	for f in "$dir/broker.out" "$dir"/log/*.log; do
		[[ -s $f ]] && { echo "==> $f <==" && tail -n 30 "$f"; } >&2
	done
	exit 1
}

cmd_restart() {
	[[ -e $state ]] || die "not running (no $state)"
	read_state
	! is_ours "$beam_pid" '*beam*' || die "broker $beam_pid still running: crash it first"
	is_ours "$epmd_pid" '*epmd*' || die "epmd not running (stale $state)"
	node_env
	cd "$dir"
	rm -f "$dir/beam.pid"
	setsid "$rmq_bin/rabbitmq-server" </dev/null >>"$dir/broker.out" 2>&1 &
	wrapper_pid=$!
	beam_pid=""
	write_state
	local deadline=$((SECONDS + start_timeout))
	while ! amqp_ready; do
		is_ours "$wrapper_pid" '*rabbitmq-server*' || restart_failed "broker exited during restart"
		((SECONDS < deadline)) || restart_failed "broker did not accept AMQP within $start_timeout s"
		sleep 0.25
	done
	beam_pid=$(<"$dir/beam.pid")
	is_ours "$beam_pid" '*beam*' || die "pid file $dir/beam.pid does not name our beam"
	write_state
	check_loopback || die "a listener is not bound to 127.0.0.1"
	log "restarted after $SECONDS s (beam $beam_pid)"
	echo "$uri"
}

cmd_ctl() {
	[[ -e $state ]] || die "not running (no $state)"
	read_state
	node_env
	exec "$rmq_bin/rabbitmqctl" -n "$node" "$@"
}

# ---------------------------------------------------------------------------------------
# A cluster (scripts/rabbitmq.sh cluster ...): N nodes of one cluster on 127.0.0.1, in one
# mktemp -d directory ROOT (ROOT/.erlang.cookie shared through HOME=ROOT, ROOT/nodeI for
# node I). From BASE = SALVO_TEST_CLUSTER_PORT (default 5781): node I's AMQP port is
# BASE+I-1, its distribution port BASE+20000+I-1; one epmd on BASE+10000 for all of them;
# rabbitmqctl's own distribution listener takes one of BASE+10001..BASE+10009. The state
# file ${TMPDIR:-/tmp}/salvo-rabbitmq-cluster-BASE.state names ROOT and every PID.
cbase=${SALVO_TEST_CLUSTER_PORT:-5781}
cstate="$tmp_root/salvo-rabbitmq-cluster-$cbase.state"
cluster_timeout=${SALVO_TEST_CLUSTER_TIMEOUT:-180}
croot="" cnodes=0
declare -a cl_wrapper=() cl_beam=()

cluster_check_base() {
	if ! [[ $cbase =~ ^[0-9]+$ ]] || ((cbase < 1024 || cbase > 45527)); then
		die "SALVO_TEST_CLUSTER_PORT must be an integer in 1024..45527, got '$cbase'"
	fi
}

# Node I's settings into the single-node variables the functions above use.
cl_node() {
	local i=$1
	port=$((cbase + i - 1))
	dist_port=$((cbase + 20000 + i - 1))
	epmd_port=$((cbase + 10000))
	ctl_port_min=$((cbase + 10001)) ctl_port_max=$((cbase + 10009))
	node="salvo-cluster-$cbase-$i@localhost"
	dir="$croot/node$i" home="$croot"
	uri="amqp://guest:guest@127.0.0.1:$port"
	wrapper_pid=${cl_wrapper[i]:-} beam_pid=${cl_beam[i]:-}
}

cl_read_state() {
	local k v
	while IFS='=' read -r k v; do
		case $k in
		croot | cnodes | starter_pid | epmd_pid) printf -v "$k" '%s' "$v" ;;
		wrapper_[1-9]) cl_wrapper[${k#wrapper_}]=$v ;;
		beam_[1-9]) cl_beam[${k#beam_}]=$v ;;
		esac
	done <"$cstate"
}

cl_write_state() {
	local i
	{
		printf 'croot=%s\ncnodes=%s\nstarter_pid=%s\nepmd_pid=%s\n' \
			"$croot" "$cnodes" "$starter_pid" "$epmd_pid"
		for ((i = 1; i <= cnodes; i++)); do
			printf 'wrapper_%d=%s\nbeam_%d=%s\n' "$i" "${cl_wrapper[i]:-}" "$i" "${cl_beam[i]:-}"
		done
	} >"$cstate.new"
	mv -f "$cstate.new" "$cstate"
}

cl_epmd_ours() { dir=$croot is_ours "$epmd_pid" '*epmd*'; }

# Node I's beam, once its pid file names it (the wrapper's child before that).
cl_beam_running() {
	cl_node "$1"
	if [[ -z $beam_pid ]] && is_ours "$wrapper_pid" '*rabbitmq-server*'; then
		beam_pid=$(pgrep -o -P "$wrapper_pid" || true)
		cl_beam[$1]=$beam_pid
	fi
	is_ours "$beam_pid" '*beam*'
}

# rabbitmqctl -n NODE-I ARGS, bounded by SECONDS (the first argument), in a subshell so
# that node_env stays there.
cl_ctl_timed() {
	local secs=$1 i=$2
	shift 2
	(
		cl_node "$i"
		node_env
		timeout -k 5 "$secs" "$rmq_bin/rabbitmqctl" -n "$node" "$@"
	)
}

# How many nodes rabbitmqctl cluster_status, asked of node I, lists as running.
cl_running_count() {
	cl_ctl_timed 30 "$1" cluster_status --formatter json 2>/dev/null |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null ||
		echo 0
}

# Stops every process of the cluster by PID: SIGTERM to every beam at once (they stop in
# parallel), a bounded wait each, SIGKILL for any left, then the wrappers and epmd; deletes
# ROOT and the state file.
cl_teardown() {
	local i
	for ((i = 1; i <= cnodes; i++)); do
		if cl_beam_running "$i"; then
			kill -TERM "$beam_pid" 2>/dev/null || true
		fi
	done
	for ((i = 1; i <= cnodes; i++)); do
		cl_node "$i"
		signal_and_wait "$beam_pid" '*beam*' 30
		signal_and_wait "$wrapper_pid" '*rabbitmq-server*' 5
	done
	dir=$croot signal_and_wait "$epmd_pid" '*epmd*' 5
	if [[ $croot == "$tmp_root/salvo-rabbitmq-cluster-$cbase."* && -d $croot ]]; then
		rm -rf -- "$croot"
	fi
	rm -f -- "$cstate" "$cstate.new"
}

cl_dump_logs() {
	local f
	[[ -n $croot ]] || return 0
	# if, not &&: an empty or missing last file would make the function return 1, which
	# set -e turns into an exit before the teardown.
	for f in "$croot/epmd.log" "$croot"/node*/broker.out "$croot"/node*/log/*.log; do
		if [[ -s $f ]]; then { echo "==> $f <==" && tail -n 30 "$f"; } >&2; fi
	done
}

cl_start_failed() {
	trap - EXIT INT TERM
	log "cluster start: $1"
	cl_dump_logs
	cl_teardown
	exit 1
}

# Starts node I's rabbitmq-server on its directory (new or kept), recording the wrapper.
cl_launch() {
	cl_node "$1"
	(
		node_env
		cd "$dir"
		rm -f "$dir/beam.pid"
		exec setsid "$rmq_bin/rabbitmq-server" </dev/null >>"$dir/broker.out" 2>&1
	) &
	cl_wrapper[$1]=$!
	cl_beam[$1]=""
	cl_write_state
}

# Waits until node I answers AMQP and its pid file names our beam; $2 is the failure
# function, $3 the deadline (in $SECONDS).
cl_wait_amqp() {
	local i=$1 fail=$2 deadline=$3
	cl_node "$i"
	while ! amqp_ready; do
		is_ours "$wrapper_pid" '*rabbitmq-server*' || "$fail" "node $i exited during startup"
		((SECONDS < deadline)) || "$fail" "node $i did not accept AMQP on port $port in time"
		sleep 0.25
	done
	beam_pid=$(<"$dir/beam.pid")
	is_ours "$beam_pid" '*beam*' || "$fail" "pid file $dir/beam.pid does not name node $i's beam"
	cl_beam[i]=$beam_pid
	cl_write_state
	check_loopback || "$fail" "a listener of node $i is not bound to 127.0.0.1"
}

# Waits until node I's cluster_status lists every node running.
cl_wait_members() {
	local i=$1 fail=$2 deadline=$3 got
	while :; do
		got=$(cl_running_count "$i")
		((got == cnodes)) && return 0
		((SECONDS < deadline)) || "$fail" "node $i lists $got of $cnodes nodes running"
		sleep 0.5
	done
}

cmd_cluster_start() {
	local i p t0=$SECONDS
	cnodes=${1:-3}
	[[ $cnodes =~ ^[1-9]$ ]] || die "usage: $0 cluster start [N], N in 1..9 (got '$cnodes')"
	if ! (set -C && echo "starter_pid=$$" >"$cstate") 2>/dev/null; then
		[[ -f $cstate ]] || die "cannot create $cstate"
		local want=$cnodes cmd alive=0
		cl_read_state
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/${starter_pid:-0}/cmdline") || cmd=""
		for ((i = 1; i <= cnodes; i++)); do
			cl_beam_running "$i" && alive=1
		done
		if ((alive)) || cl_epmd_ours || [[ $cmd == *rabbitmq.sh*cluster*start* ]]; then
			die "a cluster is already running (or starting) on port $cbase, see $cstate; run cluster stop first"
		fi
		log "removing stale state $cstate"
		cl_teardown
		cnodes=$want
		(set -C && echo "starter_pid=$$" >"$cstate") 2>/dev/null || die "lost a race for $cstate"
	fi
	starter_pid=$$
	local deadline=$((SECONDS + cluster_timeout))
	trap 'cl_start_failed "interrupted"' INT TERM
	trap 'cl_start_failed "failed (exit $?)"' EXIT
	for ((p = cbase + 10000; p <= cbase + 10009; p++)); do
		[[ -z $(ss -Hltn "sport = :$p") ]] || cl_start_failed "TCP port $p is already in use"
	done
	for ((i = 0; i < cnodes; i++)); do
		for p in $((cbase + i)) $((cbase + 20000 + i)); do
			[[ -z $(ss -Hltn "sport = :$p") ]] || cl_start_failed "TCP port $p is already in use"
		done
	done
	croot=$(mktemp -d "$tmp_root/salvo-rabbitmq-cluster-$cbase.XXXXXX")
	cl_write_state
	# One cookie for every node and rabbitmqctl (HOME=ROOT); Erlang insists on mode 0400.
	(umask 077 && openssl rand -hex 20 | tr -d '\n' >"$croot/.erlang.cookie")
	chmod 400 "$croot/.erlang.cookie"

	cl_node 1
	(
		# shellcheck disable=SC2030 # epmd's marker is ROOT, in this subshell only
		dir=$croot
		node_env
		exec setsid epmd -address 127.0.0.1 -port "$epmd_port" </dev/null >"$croot/epmd.log" 2>&1
	) &
	epmd_pid=$!
	cl_write_state
	for ((i = 0; ; i++)); do
		epmd -port "$epmd_port" -names >/dev/null 2>&1 && break
		if ((i >= 50)) || ! cl_epmd_ours; then
			cl_start_failed "epmd did not come up on port $epmd_port"
		fi
		sleep 0.1
	done

	log "starting $cnodes nodes (AMQP $cbase..$((cbase + cnodes - 1)), epmd $epmd_port) in $croot"
	for ((i = 1; i <= cnodes; i++)); do
		cl_node "$i"
		mkdir -p "$dir"
		node_files
		cl_launch "$i"
	done
	for ((i = 1; i <= cnodes; i++)); do
		cl_wait_amqp "$i" cl_start_failed "$deadline"
	done
	log "every node answers AMQP after $((SECONDS - t0)) s; joining them to node 1"
	for ((i = 2; i <= cnodes; i++)); do
		local left=$((deadline - SECONDS))
		((left > 0)) || cl_start_failed "out of time before joining node $i"
		cl_ctl_timed "$left" "$i" stop_app >/dev/null ||
			cl_start_failed "rabbitmqctl stop_app on node $i failed"
		cl_node 1
		cl_ctl_timed "$left" "$i" join_cluster "$node" >/dev/null ||
			cl_start_failed "rabbitmqctl join_cluster $node on node $i failed"
		cl_ctl_timed "$left" "$i" start_app >/dev/null ||
			cl_start_failed "rabbitmqctl start_app on node $i failed"
	done
	for ((i = 1; i <= cnodes; i++)); do
		cl_wait_amqp "$i" cl_start_failed "$deadline"
	done
	cl_wait_members 1 cl_start_failed "$deadline"
	trap - EXIT INT TERM
	log "cluster of $cnodes ready after $((SECONDS - t0)) s (epmd $epmd_pid)"
	for ((i = 1; i <= cnodes; i++)); do
		cl_node "$i"
		echo "$uri"
	done
}

cl_need_state() {
	[[ -e $cstate ]] || die "no cluster running on port $cbase (no $cstate)"
	cl_read_state
}

# NODE argument: 1..cnodes.
cl_need_node() {
	if ! [[ ${1:-} =~ ^[1-9]$ ]] || (($1 > cnodes)); then
		die "NODE must be 1..$cnodes, got '${1:-}'"
	fi
}

cmd_cluster_stop() {
	if [[ ! -e $cstate ]]; then
		log "no cluster running on port $cbase (no $cstate)"
		return 0
	fi
	cl_read_state
	cl_teardown
	log "stopped the cluster on port $cbase"
}

cmd_cluster_status() {
	local i bad=0 state
	cl_need_state
	for ((i = 1; i <= cnodes; i++)); do
		state=running
		if ! cl_beam_running "$i"; then
			state=stopped bad=1
		elif ! amqp_ready; then
			state="running, not accepting AMQP" bad=1
		fi
		echo "$uri node=$i beam_pid=${beam_pid:-none} wrapper_pid=${wrapper_pid:-none} $state"
	done
	if cl_epmd_ours; then
		echo "epmd_pid=$epmd_pid root=$croot"
	else
		echo "epmd_pid=$epmd_pid not running root=$croot"
		bad=1
	fi
	return $bad
}

# kill NODE: SIGKILL node NODE's beam by its recorded PID, keeping its files, as a power cut
# would; the other nodes and epmd go on.
cmd_cluster_kill() {
	local i
	cl_need_state
	cl_need_node "${1:-}"
	cl_beam_running "$1" || die "node $1 is not running"
	kill -KILL "$beam_pid"
	for ((i = 0; i < 100; i++)); do
		is_ours "$beam_pid" '*beam*' || break
		sleep 0.1
	done
	is_ours "$beam_pid" '*beam*' && die "node $1's beam $beam_pid survived SIGKILL"
	for ((i = 0; i < 50; i++)); do
		is_ours "$wrapper_pid" '*rabbitmq-server*' || break
		sleep 0.1
	done
	log "killed node $1 (beam $beam_pid, SIGKILL); $dir kept"
}

cl_restart_failed() {
	log "cluster restart: $1"
	cl_dump_logs
	# Not stopped here: the state file records it, so cluster kill or stop still finds it.
	log "cluster restart: the node is left as it is; 'cluster kill' or 'cluster stop' ends it"
	exit 1
}

# restart NODE: start a killed node again on its files; wait until it answers AMQP and its
# cluster_status lists every node running (it rejoins by itself: it is a member).
cmd_cluster_restart() {
	local t0=$SECONDS deadline=$((SECONDS + cluster_timeout))
	cl_need_state
	cl_need_node "${1:-}"
	! cl_beam_running "$1" || die "node $1 (beam $beam_pid) still running: kill it first"
	cl_epmd_ours || die "the cluster's epmd is not running (stale $cstate)"
	cl_launch "$1"
	cl_wait_amqp "$1" cl_restart_failed "$deadline"
	cl_wait_members "$1" cl_restart_failed "$deadline"
	log "node $1 back in the cluster after $((SECONDS - t0)) s (beam $beam_pid)"
	cl_node "$1"
	echo "$uri"
}

cmd_cluster_ctl() {
	cl_need_state
	cl_need_node "${1:-}"
	cl_node "$1"
	shift
	node_env
	exec "$rmq_bin/rabbitmqctl" -n "$node" "$@"
}

cmd_cluster() {
	cluster_check_base
	local usage="usage: $0 cluster start [N]|stop|status|kill NODE|restart NODE|ctl NODE ARGS..."
	case ${1:-} in
	start)
		(($# <= 2)) || die "$usage"
		cmd_cluster_start "${2:-3}"
		;;
	stop) cmd_cluster_stop ;;
	status) cmd_cluster_status ;;
	kill) cmd_cluster_kill "${2:-}" ;;
	restart) cmd_cluster_restart "${2:-}" ;;
	ctl) shift && cmd_cluster_ctl "$@" ;;
	*) die "$usage" ;;
	esac
}


case ${1:-} in
start)
	[[ ${2:-} == "" || ${2:-} == --tls ]] || die "usage: $0 start [--tls]"
	cmd_start
	;;
stop) cmd_stop ;;
status) cmd_status ;;
crash) cmd_crash ;;
restart) cmd_restart ;;
ctl) shift && cmd_ctl "$@" ;;
cluster) shift && cmd_cluster "$@" ;;
*) die "usage: $0 start [--tls]|stop|status|crash|restart|ctl ARGS...|cluster ..." ;;
esac
