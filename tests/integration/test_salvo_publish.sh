#!/usr/bin/env bash
# salvo-publish end to end: test_salvo_publish.sh CASE SALVO_PUBLISH
#
#   count json          --count --size --declare-queue --json; the queue receives them all
#   stdin               one message per line, the last one without a newline
#   missing exchange    a 404 from the broker makes it fail with exit status 1
#   usage errors        bad options exit 2 with a message; --help and --version exit 0
#   connection refused  nothing listening: exit 1 at once
#   confirm async       --confirm async --window: every message acked, counted in the JSON
#   confirm sync        --confirm sync: every message acked
#   confirm returned    --confirm async --mandatory to an unbound key: all returned, exit 1
#
# The broker cases need SALVO_TEST_URI and skip (77) without it (see lib.sh); the other
# cases need no broker.
set -euo pipefail

# --list: the case names, read from the case statement below (tests/list_cases.py).
[[ ${1-} != --list ]] || exec python3 "$(dirname "$0")/../list_cases.py" "$0"
case_name=${1:?usage: $0 CASE SALVO_PUBLISH}
bin=${2:?usage: $0 CASE SALVO_PUBLISH}
prog=salvo-publish
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# json_check FILE EXPR: stdout must be exactly one line, a JSON object j for which the
# Python expression EXPR holds.
json_check() {
	python3 - "$1" "$2" <<-'EOF' || fail "JSON check '$2' on: $(cat "$1")"
		import json, sys
		lines = open(sys.argv[1]).read().splitlines()
		assert len(lines) == 1, "stdout holds %d lines, not 1" % len(lines)
		j = json.loads(lines[-1])
		for k in ("sent", "bytes", "seconds", "msgs_per_s", "mbytes_per_s", "cpu_seconds",
		          "cpu_us_per_msg"):
		    assert isinstance(j[k], (int, float)) and j[k] >= 0, k
		assert eval(sys.argv[2]), sys.argv[2]
	EOF
}

case_count_json() {
	need_broker
	fresh_queue count
	run count --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 10000 \
		--size 100 --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/count.out" \
		'j["sent"] == 10000 and j["bytes"] == 1000000 and j["size"] == 100 and j["seconds"] > 0'
	grep -q '^sent 10000 messages (100 bytes each) in .* msgs/s, .* MB/s$' "$tmp/count.err" ||
		fail "no summary on stderr"
	expect_queue_count "$q" 10000
}

case_stdin() {
	need_broker
	fresh_queue stdin
	rc=0
	printf 'a\nbb\nccc' | "$bin" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue \
		--json >"$tmp/stdin.out" 2>"$tmp/stdin.err" || rc=$?
	cat "$tmp/stdin.err" >&2
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/stdin.out" 'j["sent"] == 3 and j["bytes"] == 6 and j["size"] is None'
	expect_queue_count "$q" 3
}

case_missing_exchange() {
	need_broker
	run missing --uri "$SALVO_TEST_URI" --exchange "salvo.test.no-such-exchange.$$" \
		--routing-key x --count 2000
	((rc == 1)) || fail "exit status $rc, expected 1"
	# The code a user searches for, the broker's text once, the method it refused.
	grep -Fq ": 404 NOT_FOUND - no exchange 'salvo.test.no-such-exchange.$$' in vhost '/' (basic.publish)" \
		"$tmp/missing.err" || fail "stderr does not report the 404 as '404 NOT_FOUND - ... (basic.publish)'"
	[[ ! -s $tmp/missing.out ]] || fail "stdout is not empty"
}

# case_confirm MODE: N messages with confirms, all acked and in the queue.
case_confirm() {
	need_broker
	fresh_queue "confirm-$1"
	run "confirm-$1" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 5000 \
		--confirm "$1" --window 256 --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/confirm-$1.out" \
		"j['sent'] == 5000 and j['confirm'] == '$1' and j['acked'] == 5000 and j['nacked'] == 0 and j['returned'] == 0 and j['failed'] == 0"
	grep -q "^confirms ($1): 5000 acked, 0 nacked, 0 returned, 0 failed" "$tmp/confirm-$1.err" ||
		fail "no confirm summary on stderr"
	expect_queue_count "$q" 5000
}

case_confirm_returned() {
	need_broker
	run returned --uri "$SALVO_TEST_URI" --exchange amq.direct \
		--routing-key "salvo.test.unbound.$$" --mandatory --count 50 --confirm async --json
	((rc == 1)) || fail "exit status $rc, expected 1"
	json_check "$tmp/returned.out" \
		"j['sent'] == 50 and j['acked'] == 0 and j['returned'] == 50 and j['failed'] == 0"
	grep -q '^salvo-publish: 50 of 50 messages were not acked' "$tmp/returned.err" ||
		fail "stderr does not say the messages were not acked"
}

case_usage_errors() {
	local -a bad=(
		"--routing-key x --no-such-option"
		"--routing-key x --count abc"
		"--routing-key x --count 12abc"
		"--routing-key x --count -1"
		"--routing-key x --count 18446744073709551616"
		"--routing-key x --count 1 --size -1"
		"--routing-key x --size 10"
		"--count 1"
		"--routing-key"
		"--routing-key x unexpected"
		"--routing-key x --conf no-equals-sign"
		"--routing-key x --conf no.such.key=1"
		"--routing-key x --conf heartbeat=-5"
		"--routing-key x --uri http://localhost"
		"--routing-key x --confirm maybe"
		"--routing-key x --window 0"
	)
	expect_usage_errors "${bad[@]}"

	expect_help --uri --exchange --routing-key --count --size --persistent --mandatory --json \
		--declare-queue --conf --confirm --window --help --version
	expect_version
}

case_connection_refused() {
	expect_connection_refused --routing-key x --count 1
}

case $case_name in
'count json') case_count_json ;;
stdin) case_stdin ;;
'missing exchange') case_missing_exchange ;;
'usage errors') case_usage_errors ;;
'connection refused') case_connection_refused ;;
'confirm async') case_confirm async ;;
'confirm sync') case_confirm sync ;;
'confirm returned') case_confirm_returned ;;
*) fail "no case named '$case_name'" ;;
esac
echo "$case_name: ok"
