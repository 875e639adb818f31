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
dir="" starter_pid="" epmd_pid="" wrapper_pid="" beam_pid=""
tls_uri() { echo "amqps://guest:guest@localhost:$tls_port?cacertfile=$dir/tls/ca.pem"; }

node_env() {
	# A caller's RABBITMQ_* (e.g. NODE_PORT, ENABLED_PLUGINS) would override our config.
	local v
	for v in $(compgen -e); do
		[[ $v == RABBITMQ_* ]] && unset "$v"
	done
	# The marker lets is_ours() tell our processes from a reused PID.
	export SALVO_RABBITMQ_DIR="$dir" HOME="$dir" LC_ALL=C.UTF-8 LANG=C.UTF-8
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

	cat >"$dir/rabbitmq.conf" <<-EOF
		listeners.tcp.1 = 127.0.0.1:$port
		log.file.level = info
		log.console = false
		# Tests must not be blocked by the default 50 MB free-disk alarm on a small /tmp.
		disk_free_limit.absolute = 1MB
	EOF
	# No plugins at all: management, prometheus, etc. would open more ports.
	echo '[].' >"$dir/enabled_plugins"
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
	: >"$dir/rabbitmq-env.conf"
	mkdir -p "$dir/conf.d" "$dir/log" "$dir/mnesia"

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
*) die "usage: $0 start [--tls]|stop|status|crash|restart|ctl ARGS..." ;;
esac
