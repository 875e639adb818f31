# shellcheck shell=bash
# What the end-to-end tests of the command-line programs share (test_salvo_publish.sh,
# test_salvo_perf.sh). The sourcing script sets bin (the program under test) and prog (its
# name, which starts its messages) first, then defines its own json_check and cases.
#
# The broker cases need SALVO_TEST_URI (scripts/test.sh exports it) and skip (77) without
# it; they count queued messages with scripts/rabbitmq.sh ctl, which finds the broker by
# SALVO_TEST_PORT (taken from the URI when unset).

: "${bin:?lib.sh needs bin set}" "${prog:?lib.sh needs prog set}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
queues=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

need_broker() {
	if [[ -z ${SALVO_TEST_URI:-} ]]; then
		echo "SALVO_TEST_URI not set: no broker to test against" >&2
		exit 77
	fi
	if [[ -z ${SALVO_TEST_PORT:-} ]]; then
		[[ $SALVO_TEST_URI =~ :([0-9]+)(/|$) ]] || fail "no port in $SALVO_TEST_URI"
		export SALVO_TEST_PORT=${BASH_REMATCH[1]}
	fi
}

ctl() {
	bash "$root/scripts/rabbitmq.sh" ctl "$@"
}

cleanup() {
	local q
	for q in "${queues[@]}"; do
		ctl -q delete_queue "$q" >/dev/null 2>&1 || echo "could not delete queue $q" >&2
	done
	rm -rf -- "$tmp"
}
trap cleanup EXIT

# Sets q to a queue name no other run (or concurrent test) uses; deleted on exit.
fresh_queue() {
	q="salvo.test.${prog#salvo-}.$1.$$.$RANDOM"
	queues+=("$q")
}

# expect_queue_count QUEUE N: the broker enqueues asynchronously, so poll (10 s at most).
expect_queue_count() {
	local q=$1 want=$2 have="" deadline=$((SECONDS + 10))
	while :; do
		have=$(ctl -q list_queues --no-table-headers name messages |
			awk -v q="$q" '$1 == q { print $2 }')
		[[ $have == "$want" ]] && return 0
		((SECONDS < deadline)) || fail "queue $q holds '${have}' messages, expected $want"
		sleep 0.5
	done
}

# find_pika: sets pika_python to a python3 that has pika (Debian's python3-pika is for the
# system python3), or skips (77).
find_pika() {
	local py
	for py in python3 /usr/bin/python3; do
		if "$py" -c 'import pika' 2>/dev/null; then
			pika_python=$py
			return 0
		fi
	done
	echo "no python3 with pika (python3-pika)" >&2
	exit 77
}

# drain_queue QUEUE FILE: take every message of QUEUE with pika (basic.get, auto-ack) and
# write them to FILE as a JSON list of {"body": base64, "content_type", "content_encoding",
# "records": the x-salvo-records header or null}, in queue order. Needs find_pika first.
drain_queue() {
	"$pika_python" - "$SALVO_TEST_URI" "$1" "$2" <<-'EOF' || fail "could not read queue $1"
		import base64, json, sys
		import pika

		conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
		ch = conn.channel()
		out = []
		while True:
		    method, props, body = ch.basic_get(sys.argv[2], auto_ack=True)
		    if method is None:
		        break
		    out.append({"body": base64.b64encode(body).decode(),
		                "content_type": props.content_type,
		                "content_encoding": props.content_encoding,
		                "records": (props.headers or {}).get("x-salvo-records")})
		conn.close()
		with open(sys.argv[3], "w") as f:
		    json.dump(out, f)
	EOF
}

# run OUT_PREFIX ARGS...: runs the program, stdout and stderr to files; sets $rc.
run() {
	local out=$1
	shift
	rc=0
	"$bin" "$@" >"$tmp/$out.out" 2>"$tmp/$out.err" || rc=$?
	sed "s/^/  $out stderr: /" "$tmp/$out.err" >&2
}

# expect_usage_errors ARGS...: each ARGS, an argument list split at blanks, makes the
# program exit 2 with a message on stderr.
expect_usage_errors() {
	local args i=0
	for args in "$@"; do
		i=$((i + 1))
		# Word splitting of $args is intended: each entry is an argument list.
		# shellcheck disable=SC2086
		run "bad$i" $args
		((rc == 2)) || fail "'$args': exit status $rc, expected 2"
		grep -q "^$prog: " "$tmp/bad$i.err" || fail "'$args': no message on stderr"
	done
}

# expect_usage_message ARGS REGEX: ARGS (split at blanks) exit 2 with a first line on stderr
# matching the basic regular expression REGEX.
expect_usage_message() {
	# Word splitting of $1 is intended, as in expect_usage_errors.
	# shellcheck disable=SC2086
	run usage-message $1
	((rc == 2)) || fail "'$1': exit status $rc, expected 2"
	head -1 "$tmp/usage-message.err" | grep -q -- "$2" ||
		fail "'$1': the message is '$(head -1 "$tmp/usage-message.err")', expected /$2/"
}

# expect_help OPTION...: --help exits 0 and describes every OPTION.
expect_help() {
	local opt
	run help --help
	((rc == 0)) || fail "--help: exit status $rc"
	for opt in "$@"; do
		grep -q -- "$opt" "$tmp/help.out" || fail "--help does not describe $opt"
	done
}

# --version exits 0 and prints the program's name and salvo's version.
expect_version() {
	run version --version
	((rc == 0)) || fail "--version: exit status $rc"
	grep -Eq "^$prog [0-9]+\.[0-9]+\.[0-9]+" "$tmp/version.out" ||
		fail "--version printed '$(cat "$tmp/version.out")'"
}

# expect_connection_refused ARGS...: run with ARGS against a port where nothing listens:
# exit 1 at once, the failed connect reported, no password printed.
expect_connection_refused() {
	local start=$SECONDS
	run refused --uri amqp://guest:guest@127.0.0.1:1 "$@"
	((rc == 1)) || fail "exit status $rc, expected 1"
	((SECONDS - start < 10)) || fail "took $((SECONDS - start)) s"
	grep -q "^$prog: connect to .*: " "$tmp/refused.err" ||
		fail "stderr does not say the connect failed"
	! grep -q 'guest:guest@' "$tmp/refused.err" || fail "the password was printed"
}
