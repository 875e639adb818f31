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
#   batching            --batch-records with lz4 (stdin lines) and zstd (--count): every
#                       record acked and queued as a record (envelopes <= records), the
#                       batching and envelopes in the summary and the JSON
#   uris                --uri repeated: a port that refuses, then the test broker's whole
#                       URI: every message acked there, the refused endpoint named in a
#                       warning; a second URI with another password: exit 2 naming it,
#                       neither password printed
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

# queued_records QUEUE lines|count: the records QUEUE holds, each followed by a newline, or
# their number: a message is a record, an envelope holds x-salvo-records of them (its count
# checked against its body). The queue is emptied.
queued_records() {
	drain_queue "$1" "$tmp/drained"
	"$pika_python" - "$tmp/drained" "$2" <<-'EOF'
		import base64, json, struct, sys
		import lz4.frame
		import zstandard

		records = []
		for m in json.load(open(sys.argv[1])):
		    body = base64.b64decode(m["body"])
		    if m["content_type"] != "application/vnd.salvo.batch+v1":
		        records.append(body)
		        continue
		    if m["content_encoding"] == "lz4":
		        body = lz4.frame.decompress(body)
		    elif m["content_encoding"] == "zstd":
		        body = zstandard.ZstdDecompressor().decompress(body)
		    n, at = m["records"], 0
		    while at < len(body):
		        (size,) = struct.unpack(">I", body[at:at + 4])
		        records.append(body[at + 4:at + 4 + size])
		        at += 4 + size
		        n -= 1
		    assert n == 0 and at == len(body), "an envelope's count or lengths are wrong"
		if sys.argv[2] == "count":
		    print(len(records))
		else:
		    sys.stdout.buffer.write(b"".join(r + b"\n" for r in records))
	EOF
}

case_batching() {
	need_broker
	find_pika
	"$pika_python" -c 'import lz4.frame, zstandard' ||
		{
			echo "$pika_python has no lz4 or zstandard (python3-lz4, python3-zstandard)" >&2
			exit 77
		}
	fresh_queue batch
	rc=0
	seq 1 5000 | sed 's/.*/{"n":&,"msg":"hello"}/' >"$tmp/lines"
	"$bin" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --confirm async \
		--batch-records 500 --linger-us 1000 --compression lz4 --compression-level 9 --json \
		<"$tmp/lines" >"$tmp/lines.out" 2>"$tmp/lines.err" || rc=$?
	cat "$tmp/lines.err" >&2
	((rc == 0)) || fail "stdin: exit status $rc"
	json_check "$tmp/lines.out" \
		"j['sent'] == 5000 and j['acked'] == 5000 and j['batch_records'] == 500 and j['linger_us'] == 1000 and j['compression'] == 'lz4' and j['compression_level'] == 9 and j['envelopes'] <= 5000"
	grep -q '^batching: up to 500 records, linger 1000 us, compression lz4 level 9$' "$tmp/lines.err" ||
		fail "the summary does not describe the batching"
	grep -q '^envelopes: ' "$tmp/lines.err" || fail "the summary does not count envelopes"
	queued_records "$q" lines >"$tmp/lines.back" || fail "could not read the queue back"
	cmp -s "$tmp/lines" "$tmp/lines.back" || fail "the records read back differ from the lines sent"

	run count --uri "$SALVO_TEST_URI" --routing-key "$q" --count 3000 --size 32 \
		--confirm async --batch-records 64 --batch-bytes 4096 --compression zstd --json
	((rc == 0)) || fail "--count: exit status $rc"
	json_check "$tmp/count.out" \
		"j['sent'] == 3000 and j['acked'] == 3000 and j['batch_bytes'] == 4096 and j['compression'] == 'zstd' and j['envelopes'] <= 3000 and (j['envelopes'] == 0) == (j['records_per_envelope'] is None)"
	n=$(queued_records "$q" count) || fail "could not read the queue back"
	((n == 3000)) || fail "$n records queued, expected 3000"
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
		"--routing-key x --batch-records 0"
		"--routing-key x --batch-records 1048577"
		"--routing-key x --batch-records many"
		"--routing-key x --batch-bytes 100"
		"--routing-key x --linger-us 100"
		"--routing-key x --compression zstd"
		"--routing-key x --compression-level 1"
		"--routing-key x --batch-records 8 --batch-bytes 0"
		"--routing-key x --batch-records 8 --linger-us 0"
		"--routing-key x --batch-records 8 --compression snappy"
		"--routing-key x --batch-records 8 --compression-level 1"
		"--routing-key x --batch-records 8 --compression lz4 --compression-level 13"
		"--routing-key x --batch-records 8 --compression zstd --compression-level 20"
	)
	expect_usage_errors "${bad[@]}"
	expect_usage_message "--routing-key x --compression zstd" \
		"^$prog: --compression needs --batch-records$"
	expect_usage_message "--routing-key x --batch-records 8 --compression zstd --compression-level 20" \
		"^$prog: --compression-level: '20' is not a number in 0..19$"

	expect_help --uri --exchange --routing-key --count --size --persistent --mandatory --json \
		--declare-queue --conf --confirm --window --help --version --batch-records \
		--batch-bytes --linger-us --compression --compression-level envelopes_per_s
	expect_version
}

case_connection_refused() {
	expect_connection_refused --routing-key x --count 1
}

case_uris() {
	need_broker
	fresh_queue uris
	# Port 1 refuses (nothing listens on it unprivileged); the broker comes second.
	run uris --uri amqp://guest:guest@127.0.0.1:1 --uri "$SALVO_TEST_URI" --routing-key "$q" \
		--declare-queue --count 500 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/uris.out" "j['sent'] == 500 and j['acked'] == 500"
	grep -q '^salvo: WARNING \[connection\] endpoint 127.0.0.1:1 failed (another was used): .*Connection refused' \
		"$tmp/uris.err" || fail "no warning names the endpoint that failed"
	expect_queue_count "$q" 500
	expect_usage_message "--routing-key x --uri amqp://u:S3cr3t@localhost --uri amqp://u:Oth3r@h2" \
		"^$prog: --uri (#2): uri.add: its password differs from the first URI's"
	! grep -Eq 'S3cr3t|Oth3r' "$tmp/usage-message.err" || fail "a password was printed"
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
batching) case_batching ;;
uris) case_uris ;;
*) fail "no case named '$case_name'" ;;
esac
echo "$case_name: ok"
