#!/usr/bin/env bash
# salvo-perf end to end: test_salvo_perf.sh CASE SALVO_PERF SALVO_PUBLISH [RABBITMQ_C_CONSUME]
#
#   count json          2 producers, --confirm async --json: all acked, latency ordered, queued
#   sync                4 producers on 2 connections, --confirm sync: all acked and queued
#   duration            --duration 2 --rate 2000: about 4000 sent in about 2 s; progress lines
#   csv                 --csv: the header, a row per second and a last one, confirm
#                       latency per row; --quiet
#   body layout         --size 32: read back with pika, sequence numbers per producer, the
#                       send time, the pattern
#   returned            --confirm sync --mandatory, unroutable: every message counted as
#                       returned, none stops the run; exit 1
#   missing exchange    a 404 during the run: reported, summary and JSON still printed, exit 1
#   connection refused  nothing listening: exit 1 at once, no password printed
#   usage errors        bad options exit 2 with a message; --help describes every option
#   consumers           --consumers 1 --count 20000 --rate 10000 --prefetch 500 (on a
#                       connection of its own, the default): every message consumed,
#                       end-to-end latency ordered, progress and summary, queue left empty
#   consumers acks      2 consumers on 2 connections of their own, a multiple ack per 50 with
#                       prefetch 100, --csv: all consumed and acked; then --auto-ack; then
#                       --consume-callback (2 consumers, a multiple ack per 50)
#   consumers prefetch  --prefetch 7 with a slow consumer: the broker shows prefetch_count 7
#                       and never more than 7 unacked; SIGTERM ends the run: exit 1, summary
#   consumers other     messages already in the queue are counted apart, not as the run's
#                       (the consumer on the producer's connection: --consumer-connections 0);
#                       consuming 100,000 of them outlasts --drain-timeout 2 without a give-up
#   consumers backlog   5000 messages queued by a run without consumers, drained by
#                       --count 0 --consumers 1: all counted (as older ones), the rate is
#                       their count over consume_seconds, the queue left empty
#   consumers future    salvo-publish's bodies (bytes 8..15 "abcdefgh", a send time in the
#                       year 2192) ahead of the run's own: not the run's, so they neither
#                       end the drain early nor count as consumed
#   peer consume        bench/peers/rabbitmq_c_consume (skips without it): --count stops
#                       it, then --drain-timeout drains the rest; each message acked once
#   not consumed        acked by the broker but routed to no queue: exit 1, reported
#   body json           --body json --size 120: read back with pika, each body one JSON
#                       object of 120 bytes with seq and ts as documented, bodies varied
#   batching            --batch-records 100 --compression zstd --body json with a consumer:
#                       every record acked and consumed end to end (latency per record),
#                       envelopes <= records, batching and envelopes in the summary, the
#                       JSON and the CSV
#   plot                --plot and --csv with confirms and a consumer: a PNG (signature,
#                       size, dimensions), latency columns with numbers, and no temporary
#                       files left in TMPDIR
#   plot no gnuplot     --plot with no gnuplot in PATH: a usage error before connecting
#   metrics             --metrics-port 0 during a run with two connections: scraped with
#                       curl twice, each parsed by check_stats.py (HELP and TYPE, series,
#                       cumulative buckets), counters that grow, both connections labelled
#   queues              --queues 3: 4 producers without consumers fill KEY-1..KEY-3 as
#                       producer j -> KEY-(j % 3 + 1) says (2000, 1000, 1000); then 3
#                       producers and 3 consumers, one per queue: all consumed in each
#                       producer's order, the queues left empty
#   queue type quorum   --queue-type quorum --queues 2 with 2 consumers: durable quorum
#                       queues, persistent messages, all acked and consumed
#   queue type stream   --queue-type stream --queues 2 with 2 consumers: durable streams,
#                       read from "next" with the default prefetch 1000, all consumed
#   uris                the test broker's whole URI twice (-u URI -u URI): accepted, the run
#                       goes through; a second URI with another user or password: exit 2
#                       naming the part, no password printed
#
# The broker cases need SALVO_TEST_URI and skip (77) without it (see lib.sh); 'plot'
# needs gnuplot too; the other cases need no broker.
set -euo pipefail

# --list: the case names, read from the case statement below (tests/list_cases.py).
[[ ${1-} != --list ]] || exec python3 "$(dirname "$0")/../list_cases.py" "$0"
case_name=${1:?usage: $0 CASE SALVO_PERF SALVO_PUBLISH [RABBITMQ_C_CONSUME]}
bin=${2:?usage: $0 CASE SALVO_PERF SALVO_PUBLISH [RABBITMQ_C_CONSUME]}
salvo_publish=${3:?usage: $0 CASE SALVO_PERF SALVO_PUBLISH [RABBITMQ_C_CONSUME]}
peer_consume=${4-}
prog=salvo-perf
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# json_check FILE EXPR: the last line of stdout is a JSON object j with every field of
# --json, for which the Python expression EXPR holds.
json_check() {
	python3 - "$1" "$2" <<-'EOF' || fail "JSON check '$2' on: $(cat "$1")"
		import json, sys
		lines = open(sys.argv[1]).read().splitlines()
		assert lines, "stdout is empty"
		j = json.loads(lines[-1])
		for k in ("sent", "acked", "nacked", "returned", "failed", "bytes", "seconds",
		          "msgs_per_s", "mbytes_per_s", "cpu_seconds", "cpu_us_per_msg",
		          "reconnects", "producers", "connections", "size", "consumers",
		          "consumer_connections", "prefetch", "multi_ack_every", "consumed",
		          "not_consumed", "consumed_other", "consumed_total", "redelivered",
		          "consume_seconds",
		          "consume_msgs_per_s", "consumer_cpu_seconds", "consumer_cpu_us_per_msg",
		          "records", "records_per_s", "batch_records", "batch_bytes", "linger_us",
		          "compression_level", "envelopes", "envelopes_per_s", "envelope_bytes",
		          "envelope_raw_bytes"):
		    assert isinstance(j[k], (int, float)) and j[k] >= 0, k
		assert j["consumed_total"] == j["consumed"] + j["consumed_other"], "consumed_total"
		assert j["records"] == j["sent"], "records"
		assert j["body"] in ("pattern", "json"), "body"
		assert j["compression"] in ("none", "lz4", "zstd"), "compression"
		assert j["envelopes"] <= j["records"], "more envelopes than records"
		for k in ("records_per_envelope", "envelope_bytes_per_record"):
		    assert (j[k] is None) == (j["envelopes"] == 0), k
		if j["batch_records"] == 0:
		    assert j["envelopes"] == 0, "envelopes without batching"
		assert j["reconnects"] == 0, "reconnects"
		assert j["confirm"] in ("none", "async", "sync"), "confirm"
		assert isinstance(j["auto_ack"], bool), "auto_ack"
		for name in ("latency_us", "e2e_latency_us"):
		    lat = j[name]
		    assert set(lat) == {"p50", "p99", "p999", "max"}, name + " keys"
		if j["confirm"] == "none":
		    assert all(v is None for v in j["latency_us"].values()), "latency with confirm none"
		if j["consumers"] == 0:
		    assert all(v is None for v in j["e2e_latency_us"].values()), "e2e without consumers"
		    assert j["consumed"] == 0 and j["not_consumed"] == 0, "consumed without consumers"
		assert eval(sys.argv[2]), sys.argv[2]
	EOF
}

# Confirm latency (or NAME's), present and ordered.
ordered() {
	echo "all(isinstance(j['$1'][k], float) for k in ('p50', 'p99', 'p999', 'max')) and 0 < j['$1']['p50'] <= j['$1']['p99'] <= j['$1']['p999'] <= j['$1']['max']"
}
latency_ordered=$(ordered latency_us)
e2e_ordered=$(ordered e2e_latency_us)

case_count_json() {
	need_broker
	fresh_queue count
	run count --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --producers 2 \
		--count 20000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/count.out" \
		"j['sent'] == 20000 and j['acked'] == 20000 and j['nacked'] == 0 and j['returned'] == 0 and j['failed'] == 0 and j['bytes'] == 2000000 and j['producers'] == 2 and j['connections'] == 1 and j['size'] == 100 and j['confirm'] == 'async' and j['seconds'] > 0 and j['cpu_seconds'] > 0 and $latency_ordered"
	grep -q '^sent 20000 messages in .* s: .* msgs/s, .* MB/s$' "$tmp/count.err" ||
		fail "no rate in the summary on stderr"
	grep -q '^cpu .* s: .* us/msg$' "$tmp/count.err" || fail "no CPU in the summary"
	grep -q '^outcomes: 20000 acked, 0 nacked, 0 returned, 0 failed$' "$tmp/count.err" ||
		fail "no outcomes in the summary"
	grep -q '^confirm latency: p50 .* us, p99 .* us, p99.9 .* us, max .* us' "$tmp/count.err" ||
		fail "no latency in the summary"
	expect_queue_count "$q" 20000
}

case_sync() {
	need_broker
	fresh_queue sync
	run sync --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --producers 4 \
		--connections 2 --confirm sync --count 4000 --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/sync.out" \
		"j['sent'] == 4000 and j['acked'] == 4000 and j['failed'] == 0 and j['producers'] == 4 and j['connections'] == 2 and j['confirm'] == 'sync' and $latency_ordered"
	expect_queue_count "$q" 4000
}

case_duration() {
	need_broker
	fresh_queue duration
	run duration --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --producers 2 \
		--duration 2 --rate 2000 --json
	((rc == 0)) || fail "exit status $rc"
	# The rate is a cap: sent can only fall short of 4000 if the broker is slow.
	json_check "$tmp/duration.out" \
		"3000 <= j['sent'] <= 5000 and 1.9 <= j['seconds'] <= 5 and j['rate'] == 2000"
	grep -Eq '^t=1s sent [0-9]+ \([0-9]+ msg/s\)$' "$tmp/duration.err" ||
		fail "no progress line for t=1s on stderr"
	sent=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["sent"])' \
		"$tmp/duration.out")
	expect_queue_count "$q" "$sent"
}

case_csv() {
	need_broker
	fresh_queue csv
	# 3000 messages at 1500/s: at least 2 s, so at least one per-second row.
	run csv --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 3000 \
		--rate 1500 --confirm async --csv "$tmp/rows.csv" --quiet
	((rc == 0)) || fail "exit status $rc"
	! grep -q '^t=' "$tmp/csv.err" || fail "--quiet printed progress lines"
	[[ -s $tmp/rows.csv ]] || fail "no CSV file"
	python3 - "$tmp/rows.csv" <<-'EOF' || fail "CSV check on: $(cat "$tmp/rows.csv")"
		import sys
		lines = open(sys.argv[1]).read().splitlines()
		assert lines[0] == "t,sent,acked,nacked,in_flight,msgs_per_s,confirm_p50_us,confirm_p99_us,confirm_max_us", lines[0]
		# A latency field is empty when no confirm was sampled in that row's interval.
		rows = [[float(x) if x else None for x in line.split(",")] for line in lines[1:]]
		assert len(rows) >= 2, "%d rows, expected a per-second one and a last one" % len(rows)
		assert all(len(r) == 9 for r in rows), "a row without 9 fields"
		assert all(None not in r[:6] for r in rows), "an empty count"
		ts = [r[0] for r in rows]
		assert ts == sorted(ts) and ts[0] > 0, "t not increasing"
		last = rows[-1]
		assert last[1] == 3000 and last[2] == 3000 and last[3] == 0 and last[4] == 0, last
		# 1500 messages/s, one in 16 timed: every full second has about 90 latencies.
		for r in rows[:-1]:
		    assert None not in r[6:] and 0 < r[6] <= r[7] <= r[8], r
	EOF
	expect_queue_count "$q" 3000
}

case_body_layout() {
	need_broker
	find_pika
	fresh_queue body
	run body --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --size 32 --count 10 \
		--producers 2 --confirm async
	((rc == 0)) || fail "exit status $rc"
	expect_queue_count "$q" 10
	drain_queue "$q" "$tmp/body.msgs"
	python3 - "$tmp/body.msgs" <<-'EOF' || fail "the bodies are not as documented"
		import base64, json, struct, sys, time
		bodies = [base64.b64decode(m["body"]) for m in json.load(open(sys.argv[1]))]
		assert len(bodies) == 10, "%d messages read back" % len(bodies)
		now = time.time_ns()
		seqs = {0: [], 1: []}
		for b in bodies:
		    assert len(b) == 32, "a body of %d bytes" % len(b)
		    seq, sent_ns = struct.unpack(">QQ", b[:16])
		    producer, n = seq >> 48, seq & (2**48 - 1)
		    assert producer in seqs, "producer index %d" % producer
		    # CLOCK_REALTIME: within an hour of this machine's clock.
		    assert sent_ns > 0 and abs(now - sent_ns) < 3600 * 10**9, "send time %d" % sent_ns
		    assert b[16:] == b"abcdefghijklmnop", b[16:]
		    seqs[producer].append((n, sent_ns))
		for producer, got in seqs.items():
		    # One publisher's messages reach the queue in order.
		    assert [n for n, _ in got] == list(range(5)), (producer, got)
		    times = [t for _, t in got]
		    assert times == sorted(times), (producer, "send times go back", times)
	EOF
}

case_returned() {
	need_broker
	run returned --uri "$SALVO_TEST_URI" --exchange amq.direct \
		--routing-key "salvo.test.unbound.$$" --mandatory --count 40 --producers 2 \
		--confirm sync --json
	((rc == 1)) || fail "exit status $rc, expected 1"
	json_check "$tmp/returned.out" \
		"j['sent'] == 40 and j['acked'] == 0 and j['returned'] == 40 and j['failed'] == 0"
	grep -q '^salvo-perf: 40 of 40 messages were not acked$' "$tmp/returned.err" ||
		fail "stderr does not say the messages were not acked"
	grep -q '^first message not acked (returned): .*312' "$tmp/returned.err" ||
		fail "the summary does not show the first return"
}

case_missing_exchange() {
	local n
	need_broker
	run missing --uri "$SALVO_TEST_URI" --exchange "salvo.test.no-such-exchange.$$" \
		--routing-key x --count 2000 --confirm async --json
	((rc == 1)) || fail "exit status $rc, expected 1"
	grep -Eq "^salvo-perf: producer 0: .*: 404 NOT_FOUND - no exchange '[^']*' in vhost '/' \\(basic.publish\\)$" "$tmp/missing.err" ||
		fail "stderr does not report the 404"
	n=$(grep -c '^salvo-perf: producer' "$tmp/missing.err" || true)
	((n == 1)) || fail "the error is reported $n times, not once"
	grep -q '(stopped by an error)$' "$tmp/missing.err" || fail "no summary on stderr"
	json_check "$tmp/missing.out" "j['acked'] == 0 and j['sent'] <= 2000"
}

case_consumers() {
	need_broker
	fresh_queue consumers
	run consumers --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --consumers 1 \
		--count 20000 --rate 10000 --prefetch 500 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/consumers.out" \
		"j['sent'] == 20000 and j['acked'] == 20000 and j['consumers'] == 1 and j['consumed'] == 20000 and j['not_consumed'] == 0 and j['consumed_other'] == 0 and j['prefetch'] == 500 and j['multi_ack_every'] == 1 and j['auto_ack'] is False and j['consumer_connections'] == 1 and j['consume_seconds'] > 0 and j['consume_msgs_per_s'] > 0 and $e2e_ordered and $latency_ordered"
	grep -q '^consumed 20000 messages in .* s: .* msgs/s (20000 of the 20000 of this run, 0 older)$' \
		"$tmp/consumers.err" || fail "no consume rate in the summary"
	grep -q '^end-to-end latency: p50 .* us, p99 .* us, p99.9 .* us, max .* us (20000 samples)$' \
		"$tmp/consumers.err" || fail "no end-to-end latency in the summary"
	grep -q '^1 consumer on 1 own connection, prefetch 500, manual acks$' "$tmp/consumers.err" ||
		fail "the summary does not describe the consumers"
	# 2 s at --rate 10000: at least one progress line.
	grep -Eq '^t=1s sent [0-9]+ \([0-9]+ msg/s\) acked .* consumed [0-9]+ \([0-9]+ msg/s\)$' \
		"$tmp/consumers.err" || fail "no consume rate in the progress line"
	# Every message acked: nothing ready, nothing requeued when the channel closed.
	expect_queue_count "$q" 0
}

case_consumers_acks() {
	need_broker
	fresh_queue acks
	run acks --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --producers 2 \
		--consumers 2 --consumer-connections 2 --prefetch 100 --multi-ack-every 50 \
		--count 10001 --csv "$tmp/acks.csv" --quiet --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/acks.out" \
		"j['sent'] == 10001 and j['consumed'] == 10001 and j['not_consumed'] == 0 and j['consumers'] == 2 and j['consumer_connections'] == 2 and j['multi_ack_every'] == 50 and $e2e_ordered"
	grep -q '^2 consumers on 2 own connections, prefetch 100, a multiple ack per 50 messages$' \
		"$tmp/acks.err" || fail "the summary does not describe the consumers"
	# 10001 is not a multiple of 50: the last acks go out when the queue runs dry.
	expect_queue_count "$q" 0
	python3 - "$tmp/acks.csv" <<-'EOF' || fail "CSV check on: $(cat "$tmp/acks.csv")"
		import sys
		lines = open(sys.argv[1]).read().splitlines()
		assert lines[0] == "t,sent,acked,nacked,in_flight,msgs_per_s,consumed,consume_msgs_per_s,e2e_p50_us,e2e_p99_us,e2e_max_us", lines[0]
		last = [float(x) if x else None for x in lines[-1].split(",")]
		assert len(last) == 11 and last[1] == 10001 and last[6] == 10001, last
	EOF

	run auto --uri "$SALVO_TEST_URI" --routing-key "$q" --consumers 1 --auto-ack \
		--count 5000 --confirm async --json
	((rc == 0)) || fail "--auto-ack: exit status $rc"
	json_check "$tmp/auto.out" \
		"j['consumed'] == 5000 and j['auto_ack'] is True and j['prefetch'] == 0 and $e2e_ordered"
	expect_queue_count "$q" 0

	# The same through callbacks (salvo_consumer_dispatch), a multiple ack per 50.
	run callback --uri "$SALVO_TEST_URI" --routing-key "$q" --producers 2 --consumers 2 \
		--prefetch 100 --multi-ack-every 50 --consume-callback --count 10001 --json
	((rc == 0)) || fail "--consume-callback: exit status $rc"
	json_check "$tmp/callback.out" \
		"j['sent'] == 10001 and j['consumed'] == 10001 and j['not_consumed'] == 0 and j['consume_callback'] is True and isinstance(j['voluntary_ctx_switches'], int) and isinstance(j['involuntary_ctx_switches'], int) and set(j['io']) == {'turns', 'waits', 'sends', 'recvs', 'wakeups', 'kicks', 'ack_holds', 'stream_holds'} and j['io']['sends'] > 0 and j['io']['recvs'] > 0 and j['io']['turns'] >= j['io']['recvs'] and $e2e_ordered"
	grep -q '^2 consumers on 1 own connection, prefetch 100, a multiple ack per 50 messages, callbacks$' \
		"$tmp/callback.err" || fail "the summary does not say callbacks"
	expect_queue_count "$q" 0
}

case_consumers_prefetch() {
	local pid have unacked samples=0 looks=0 max_unacked=0 seen=false deadline
	need_broker
	fresh_queue prefetch
	# A consumer at 40 msgs/s with 100,000 messages waiting: it outlasts any number of looks
	# at the broker, and the test stops it (SIGTERM) once it has looked. A run sized to end
	# by itself raced the looks: each rabbitmqctl call takes a second here and far longer on
	# a loaded machine, and a look after the last message sees nothing unacked (seen in CI).
	"$bin" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 100000 \
		--consumers 1 --prefetch 7 --consumer-rate 40 --quiet --json \
		>"$tmp/prefetch.out" 2>"$tmp/prefetch.err" &
	pid=$!
	# Three looks at the queue after the broker listed the consumer, none started after
	# 40 s (each call took 25 s with the cores oversubscribed 3 times); rabbitmqctl can
	# fail on a loaded machine: such a look is skipped, not fatal.
	deadline=$((SECONDS + 40))
	while kill -0 "$pid" 2>/dev/null && ((looks < 3 && SECONDS < deadline)); do
		if $seen; then
			:
		elif have=$(ctl -q list_consumers --no-table-headers queue_name prefetch_count |
			awk -v q="$q" '$1 == q { print $2 }'); then
			if [[ -n $have ]]; then
				[[ $have == 7 ]] || fail "prefetch_count $have, expected 7"
				seen=true
			fi
		else
			echo "rabbitmqctl list_consumers failed" >&2
		fi
		if unacked=$(ctl -q list_queues --no-table-headers name messages_unacknowledged |
			awk -v q="$q" '$1 == q { print $2 }'); then
			((${unacked:-0} <= max_unacked)) || max_unacked=$unacked
			! $seen || looks=$((looks + 1))
		else
			echo "rabbitmqctl list_queues failed" >&2
		fi
		samples=$((samples + 1))
		echo "look $samples at ${SECONDS}s: prefetch_count ${have:-none}, unacked ${unacked:-none}" >&2
	done
	# Stopped by a signal: a summary, and exit status 1 (documented: the run did not end).
	kill -TERM "$pid" 2>/dev/null || true
	rc=0
	wait "$pid" || rc=$?
	sed "s/^/  prefetch stderr: /" "$tmp/prefetch.err" >&2
	((rc == 1)) || fail "exit status $rc after SIGTERM, expected 1"
	grep -q 'stopping$' "$tmp/prefetch.err" || fail "the run did not say it was stopping"
	$seen || fail "the broker never listed the consumer"
	((looks > 0)) || fail "no look at the queue succeeded while the consumer ran"
	((max_unacked <= 7)) || fail "$max_unacked messages unacked at once, prefetch 7"
	((max_unacked > 0)) || fail "never a message unacked: the slow consumer was not seen"
	json_check "$tmp/prefetch.out" "0 < j['consumed'] < 100000 and j['prefetch'] == 7"
}

case_consumers_other() {
	need_broker
	fresh_queue other
	# 100 messages of an earlier run wait in the queue.
	run before --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 100 \
		--confirm async
	((rc == 0)) || fail "the first run: exit status $rc"
	expect_queue_count "$q" 100
	run other --uri "$SALVO_TEST_URI" --routing-key "$q" --count 1000 --consumers 1 \
		--consumer-connections 0 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/other.out" \
		"j['consumed'] == 1000 and j['consumed_other'] == 100 and j['not_consumed'] == 0 and $e2e_ordered"
	grep -q '^consumed 1100 messages in .* msgs/s (1000 of the 1000 of this run, 100 older)$' \
		"$tmp/other.err" || fail "the summary does not count the earlier messages"
	grep -q '^1 consumer on 1 shared connection, ' "$tmp/other.err" ||
		fail "--consumer-connections 0: the consumer is not on the producer's connection"

	# The run's one message waits behind 100,000 older ones, which take several seconds
	# to consume: they are arrivals, so a 2 s --drain-timeout does not give up on them.
	run backlog --uri "$SALVO_TEST_URI" --routing-key "$q" --count 100000 --confirm async \
		--quiet
	((rc == 0)) || fail "the backlog run: exit status $rc"
	expect_queue_count "$q" 100000
	run behind --uri "$SALVO_TEST_URI" --routing-key "$q" --count 1 --consumers 1 \
		--prefetch 1000 --drain-timeout 2 --quiet --json
	((rc == 0)) || fail "behind a backlog: exit status $rc"
	json_check "$tmp/behind.out" \
		"j['consumed'] == 1 and j['consumed_other'] == 100000 and j['not_consumed'] == 0"
}

case_consumers_backlog() {
	need_broker
	fresh_queue backlog
	run fill --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 5000 \
		--confirm async --quiet
	((rc == 0)) || fail "the run that queues the backlog: exit status $rc"
	expect_queue_count "$q" 5000
	run drain --uri "$SALVO_TEST_URI" --routing-key "$q" --count 0 --consumers 1 \
		--prefetch 1000 --drain-timeout 1 --quiet --json
	((rc == 0)) || fail "draining the backlog: exit status $rc"
	# The rate is every message over the span to the last: thousands a second, where
	# counting the run's messages only read 0.
	json_check "$tmp/drain.out" \
		"j['sent'] == 0 and j['consumed'] == 0 and j['consumed_other'] == 5000 and j['consumed_total'] == 5000 and j['not_consumed'] == 0 and 0 < j['consume_seconds'] < 30 and abs(j['consume_msgs_per_s'] * j['consume_seconds'] - 5000) < 1 and j['consume_msgs_per_s'] > 100 and j['consumer_cpu_us_per_msg'] > 0"
	grep -q '^consumed 5000 messages in .* msgs/s (0 of the 0 of this run, 5000 older)$' \
		"$tmp/drain.err" || fail "the summary does not count the backlog"
	expect_queue_count "$q" 0
	# Nothing queued: the drain gives up after --drain-timeout, with nothing consumed.
	run empty --uri "$SALVO_TEST_URI" --routing-key "$q" --count 0 --consumers 1 \
		--drain-timeout 1 --quiet --json
	((rc == 0)) || fail "draining an empty queue: exit status $rc"
	json_check "$tmp/empty.out" "j['consumed_total'] == 0 and j['consume_msgs_per_s'] == 0"
}

case_consumers_future() {
	need_broker
	fresh_queue future
	"$salvo_publish" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue \
		--count 5000 --confirm async >/dev/null 2>"$tmp/publish.err" ||
		fail "salvo-publish: $(cat "$tmp/publish.err")"
	expect_queue_count "$q" 5000
	run future --uri "$SALVO_TEST_URI" --routing-key "$q" --count 10 --consumers 1 \
		--prefetch 1000 --confirm async --drain-timeout 5 --quiet --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/future.out" \
		"j['consumed'] == 10 and j['consumed_other'] == 5000 and j['not_consumed'] == 0 and j['sequence_gaps'] == 0 and j['sequence_repeats'] == 0"
	expect_queue_count "$q" 0
}

case_peer_consume() {
	need_broker
	if [[ -z $peer_consume ]]; then
		echo "rabbitmq_c_consume was not built (no librabbitmq-dev)" >&2
		exit 77
	fi
	fresh_queue peer
	run fill --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 3000 \
		--confirm async --quiet
	((rc == 0)) || fail "the run that fills the queue: exit status $rc"
	expect_queue_count "$q" 3000
	"$peer_consume" --uri "$SALVO_TEST_URI" --queue "$q" --count 2000 --prefetch 100 \
		--multi-ack-every 10 --json >"$tmp/peer.out" 2>"$tmp/peer.err" ||
		fail "rabbitmq_c_consume --count 2000: $(cat "$tmp/peer.err")"
	expect_queue_count "$q" 1000
	"$peer_consume" --uri "$SALVO_TEST_URI" --queue "$q" --drain-timeout 1 --json \
		>"$tmp/peer2.out" 2>"$tmp/peer2.err" ||
		fail "rabbitmq_c_consume: $(cat "$tmp/peer2.err")"
	expect_queue_count "$q" 0
	python3 - "$tmp/peer.out" "$tmp/peer2.out" <<-'EOF' || fail "rabbitmq_c_consume's JSON"
		import json, sys
		a, b = (json.loads(open(f).read().splitlines()[-1]) for f in sys.argv[1:])
		assert a["consumed"] == 2000 and a["prefetch"] == 100 and a["multi_ack_every"] == 10, a
		assert a["ack_frames"] == 200, a
		assert b["consumed"] == 1000 and b["prefetch"] == 1000 and b["ack_frames"] == 1000, b
		# Delivered to the first past its count (at most its prefetch), requeued at its close.
		assert a["redelivered"] == 0 and b["redelivered"] <= 100, (a, b)
		for j in (a, b):
		    assert j["client"] == "rabbitmq-c", j
		    assert j["seconds"] > 0 and abs(j["msgs_per_s"] * j["seconds"] - j["consumed"]) < 1, j
		    assert j["cpu_seconds"] > 0 and j["cpu_us_per_msg"] > 0, j
		    assert j["voluntary_ctx_switches"] >= 0 and j["involuntary_ctx_switches"] >= 0, j
	EOF
	"$peer_consume" --prefetch 10 --multi-ack-every 11 >/dev/null 2>&1 && rc=0 || rc=$?
	((rc == 2)) || fail "rabbitmq_c_consume --multi-ack-every over --prefetch: exit $rc, expected 2"
}

case_not_consumed() {
	need_broker
	fresh_queue lost
	# The queue exists but is not bound to amq.direct: the broker acks and drops.
	run lost --uri "$SALVO_TEST_URI" --exchange amq.direct --routing-key "$q" \
		--declare-queue --count 1000 --confirm async --consumers 1 --drain-timeout 1 --json
	((rc == 1)) || fail "exit status $rc, expected 1"
	json_check "$tmp/lost.out" \
		"j['acked'] == 1000 and j['consumed'] == 0 and j['not_consumed'] == 1000"
	grep -q '^salvo-perf: 1000 of 1000 messages acked by the broker were not consumed$' \
		"$tmp/lost.err" || fail "stderr does not say the messages were not consumed"
	grep -q '^NOT CONSUMED: 1000 messages' "$tmp/lost.err" || fail "the summary does not say so"
}

case_body_json() {
	need_broker
	find_pika
	fresh_queue json
	run json --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --body json \
		--size 120 --count 300 --producers 2 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/json.out" "j['body'] == 'json' and j['sent'] == 300 and j['bytes'] == 36000"
	grep -q '^2 producers on 1 connection, 120-byte JSON bodies, confirm async$' "$tmp/json.err" ||
		fail "the summary does not say the bodies are JSON"
	expect_queue_count "$q" 300
	drain_queue "$q" "$tmp/json.msgs"
	python3 - "$tmp/json.msgs" <<-'EOF' || fail "the JSON bodies are not as documented"
		import base64, json, sys, time
		bodies = [base64.b64decode(m["body"]) for m in json.load(open(sys.argv[1]))]
		assert len(bodies) == 300, "%d messages read back" % len(bodies)
		now = time.time_ns()
		seqs = {0: [], 1: []}
		for b in bodies:
		    assert len(b) == 120, "a body of %d bytes" % len(b)
		    assert b.startswith(b'{"seq":"') and b[24:31] == b'","ts":', b
		    o = json.loads(b)
		    seq, ts = int(o["seq"], 16), o["ts"]
		    assert o["seq"] == b[8:24].decode() and str(ts).zfill(19) == b[31:50].decode(), b
		    assert abs(now - ts) < 3600 * 10**9, "send time %d" % ts
		    # At 120 bytes the fields up to metric fit; value and unit are dropped.
		    for k in ("host", "dc", "metric"):
		        assert k in o, (k, b)
		    seqs[seq >> 48].append(seq & (2**48 - 1))
		for producer, got in seqs.items():
		    assert got == list(range(150)), (producer, got)
		# Telemetry varies: many distinct bodies once the stamps are taken out.
		distinct = {b[51:] for b in bodies}
		assert len(distinct) > 100, "only %d distinct bodies" % len(distinct)
	EOF
}

case_batching() {
	need_broker
	fresh_queue batch
	run batch --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 20000 \
		--confirm async --batch-records 100 --batch-bytes 32768 --linger-us 2000 \
		--compression zstd --compression-level 3 --body json --size 100 --consumers 1 \
		--prefetch 1000 --csv "$tmp/batch.csv" --json
	((rc == 0)) || fail "exit status $rc"
	# Records are what was published, acked and consumed (each producer's sequence numbers
	# once and in order), each timed end to end, in envelopes of up to 100 records.
	json_check "$tmp/batch.out" \
		"j['envelopes'] >= 200 and j['envelopes'] < 20000 and j['records_per_envelope'] > 1"
	json_check "$tmp/batch.out" \
		"j['sent'] == 20000 and j['records'] == 20000 and j['acked'] == 20000 and j['consumed'] == 20000 and j['not_consumed'] == 0 and j['consumed_other'] == 0 and j['sequence_gaps'] == 0 and j['sequence_repeats'] == 0 and j['batch_records'] == 100 and j['batch_bytes'] == 32768 and j['linger_us'] == 2000 and j['compression'] == 'zstd' and j['compression_level'] == 3 and j['body'] == 'json' and j['e2e_latency_us']['max'] is not None and $e2e_ordered"
	grep -q '^batching: up to 100 records or 32768 bytes, linger 2000 us, compression zstd level 3$' \
		"$tmp/batch.err" || fail "the summary does not describe the batching"
	grep -q '^envelopes: ' "$tmp/batch.err" || fail "the summary does not count envelopes"
	grep -q '^end-to-end latency: .* (20000 samples)$' "$tmp/batch.err" ||
		fail "not every record was timed end to end"
	head -1 "$tmp/batch.csv" |
		grep -qx 't,sent,acked,nacked,in_flight,msgs_per_s,envelopes,envelopes_per_s,consumed,consume_msgs_per_s,confirm_p50_us,confirm_p99_us,confirm_max_us,e2e_p50_us,e2e_p99_us,e2e_max_us' ||
		fail "CSV header: $(head -1 "$tmp/batch.csv")"
	expect_queue_count "$q" 0
}

case_plot() {
	need_broker
	command -v gnuplot >/dev/null || {
		echo "no gnuplot in PATH" >&2
		exit 77
	}
	fresh_queue plot
	# Its private directory goes in TMPDIR: nothing may be left there.
	mkdir "$tmp/tmpdir"
	# 5000 messages at 2000/s, 2.5 s: two per-second rows and a last one.
	rc=0
	TMPDIR=$tmp/tmpdir "$bin" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue \
		--count 5000 --rate 2000 --confirm async --consumers 1 --csv "$tmp/plot.csv" \
		--plot "$tmp/run.png" --quiet >"$tmp/plot.out" 2>"$tmp/plot.err" || rc=$?
	sed 's/^/  plot stderr: /' "$tmp/plot.err" >&2
	((rc == 0)) || fail "exit status $rc"
	[[ -z $(ls -A "$tmp/tmpdir") ]] || fail "left in TMPDIR: $(ls -A "$tmp/tmpdir")"
	python3 - "$tmp/run.png" <<-'EOF' || fail "the PNG is not one"
		import struct, sys
		png = open(sys.argv[1], "rb").read()
		assert png[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature: %r" % png[:8]
		assert 10000 < len(png) < 5000000, "%d bytes" % len(png)
		assert png[12:16] == b"IHDR", "no IHDR chunk first"
		width, height = struct.unpack(">II", png[16:24])
		# Three panels: rates, messages waiting, latencies.
		assert width == 1200 and height == 1020, (width, height)
	EOF
	python3 - "$tmp/plot.csv" <<-'EOF' || fail "CSV check on: $(cat "$tmp/plot.csv")"
		import sys
		lines = open(sys.argv[1]).read().splitlines()
		head = lines[0].split(",")
		lat = ["confirm_p50_us", "confirm_p99_us", "confirm_max_us",
		       "e2e_p50_us", "e2e_p99_us", "e2e_max_us"]
		assert head[-6:] == lat, head
		rows = [dict(zip(head, line.split(","))) for line in lines[1:]]
		assert len(rows) >= 3, "%d rows" % len(rows)
		assert float(rows[-1]["acked"]) == 5000 and float(rows[-1]["consumed"]) == 5000
		# Every full second timed about 125 confirms and 2000 messages end to end (each
		# consumer hands over every 256, or when idle).
		for r in rows[:-1]:
		    for side in ("confirm", "e2e"):
		        p50, p99, mx = (float(r[side + k]) for k in ("_p50_us", "_p99_us", "_max_us"))
		        assert 0 < p50 <= p99 <= mx < 60e6, (side, r)
	EOF
	expect_queue_count "$q" 0
}

case_plot_no_gnuplot() {
	# A PATH of one empty directory: no gnuplot (nor anything else) in it. The URI has
	# nothing listening: exit 2, not 1, shows that no connection was tried.
	mkdir "$tmp/empty"
	rc=0
	PATH=$tmp/empty "$bin" --uri amqp://guest:guest@127.0.0.1:1 --count 10 \
		--plot "$tmp/never.png" >"$tmp/nognuplot.out" 2>"$tmp/nognuplot.err" || rc=$?
	sed 's/^/  nognuplot stderr: /' "$tmp/nognuplot.err" >&2
	((rc == 2)) || fail "exit status $rc, expected 2"
	head -1 "$tmp/nognuplot.err" |
		grep -qx "$prog: --plot needs gnuplot (the Debian package gnuplot-nox), and there is none in PATH" ||
		fail "the message does not say gnuplot is missing"
	! grep -q "connect" "$tmp/nognuplot.err" || fail "it tried to connect"
	[[ ! -e $tmp/never.png ]] || fail "the PNG was created"
}

case_metrics() {
	need_broker
	command -v curl >/dev/null || fail "no curl in PATH (scripts/setup.sh installs it)"
	fresh_queue metrics
	# 12000 messages at 3000/s over two connections: 4 s to scrape in.
	"$bin" --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --count 12000 \
		--rate 3000 --producers 2 --connections 2 --confirm async --metrics-port 0 \
		--quiet >"$tmp/metrics.out" 2>"$tmp/metrics.err" &
	local pid=$! url="" n
	for ((n = 0; n < 100; n++)); do
		url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$tmp/metrics.err" || true)
		[[ -z $url ]] || break
		sleep 0.1
	done
	[[ -n $url ]] || { kill "$pid"; fail "no metrics address on stderr: $(cat "$tmp/metrics.err")"; }
	sleep 1
	curl -sS --max-time 5 -o "$tmp/scrape1.txt" -D "$tmp/scrape1.head" "$url" ||
		{ kill "$pid"; fail "the first scrape failed"; }
	sleep 1
	curl -sS --max-time 5 -o "$tmp/scrape2.txt" "$url" || { kill "$pid"; fail "the second scrape failed"; }
	wait "$pid" || fail "salvo-perf exit status $?: $(cat "$tmp/metrics.err")"
	grep -qi '^content-type: text/plain; version=0.0.4' "$tmp/scrape1.head" ||
		fail "content type: $(cat "$tmp/scrape1.head")"
	python3 "$root/tests/integration/check_stats.py" prom "$tmp/scrape1.txt" \
		salvo_connection_up=2 || fail "the first scrape does not parse"
	python3 "$root/tests/integration/check_stats.py" prom "$tmp/scrape2.txt" \
		salvo_connection_up=2 || fail "the second scrape does not parse"
	python3 - "$tmp/scrape1.txt" "$tmp/scrape2.txt" <<-'EOF' || fail "scrapes: $(grep published_total "$tmp"/scrape*.txt)"
		import re, sys
		def published(path):
		    got = {}
		    for line in open(path):
		        m = re.match(r'salvo_publisher_published_total\{connection="([^"]*)",channel="(\d+)"\} (\d+)', line)
		        if m:
		            got[m.group(1)] = got.get(m.group(1), 0) + int(m.group(3))
		    return got
		a, b = published(sys.argv[1]), published(sys.argv[2])
		# Both connections, named by salvo-perf, publishing during the run.
		assert set(a) == {"perf-1", "perf-2"} == set(b), (a, b)
		assert all(0 < a[k] < b[k] <= 6000 for k in a), (a, b)
	EOF
	expect_queue_count "$q" 12000
}

case_queues() {
	need_broker
	fresh_queue queues
	queues+=("$q-1" "$q-2" "$q-3")
	run fill --uri "$SALVO_TEST_URI" --routing-key "$q" --declare-queue --queues 3 \
		--producers 4 --count 4000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/fill.out" \
		"j['sent'] == 4000 and j['acked'] == 4000 and j['queues'] == 3 and j['queue_type'] is None and j['persistent'] is False"
	grep -q "^queues: 3 ($q-1 .. $q-3)\$" "$tmp/fill.err" || fail "the summary does not name the queues"
	# Producer j publishes to queue j % 3 + 1: producers 0 and 3 to the first.
	expect_queue_count "$q-1" 2000
	expect_queue_count "$q-2" 1000
	expect_queue_count "$q-3" 1000
	ctl -q purge_queue "$q-1" >/dev/null
	ctl -q purge_queue "$q-2" >/dev/null
	ctl -q purge_queue "$q-3" >/dev/null

	# One consumer per queue, as many producers: each consumer gets all of one producer's
	# messages, in order.
	run spread --uri "$SALVO_TEST_URI" --routing-key "$q" --queues 3 --producers 3 \
		--consumers 3 --count 9000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/spread.out" \
		"j['sent'] == 9000 and j['consumed'] == 9000 and j['not_consumed'] == 0 and j['consumed_other'] == 0 and j['sequence_gaps'] == 0 and j['sequence_repeats'] == 0 and j['queues'] == 3 and $e2e_ordered"
	expect_queue_count "$q-1" 0
	expect_queue_count "$q-2" 0
	expect_queue_count "$q-3" 0
}

# expect_queue_kind QUEUE TYPE: the broker has QUEUE as a durable queue of TYPE.
expect_queue_kind() {
	local have
	have=$(ctl -q list_queues --no-table-headers name type durable |
		awk -v q="$1" '$1 == q { print $2, $3 }')
	[[ $have == "$2 true" ]] || fail "queue $1 is '$have', expected '$2 true'"
}

case_queue_type_quorum() {
	need_broker
	fresh_queue quorum
	queues+=("$q-1" "$q-2")
	run quorum --uri "$SALVO_TEST_URI" --routing-key "$q" --queue-type quorum --queues 2 \
		--producers 2 --consumers 2 --prefetch 200 --count 4000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/quorum.out" \
		"j['acked'] == 4000 and j['consumed'] == 4000 and j['not_consumed'] == 0 and j['queues'] == 2 and j['queue_type'] == 'quorum' and j['persistent'] is True"
	grep -q "^queues: 2 quorum ($q-1 .. $q-2)\$" "$tmp/quorum.err" ||
		fail "the summary does not name the queues"
	expect_queue_kind "$q-1" quorum
	expect_queue_kind "$q-2" quorum
	expect_queue_count "$q-1" 0
	expect_queue_count "$q-2" 0
}

case_queue_type_stream() {
	need_broker
	fresh_queue stream
	queues+=("$q-1" "$q-2")
	run stream --uri "$SALVO_TEST_URI" --routing-key "$q" --queue-type stream --queues 2 \
		--producers 2 --consumers 2 --count 4000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/stream.out" \
		"j['acked'] == 4000 and j['consumed'] == 4000 and j['not_consumed'] == 0 and j['consumed_other'] == 0 and j['prefetch'] == 1000 and j['queue_type'] == 'stream' and j['persistent'] is True"
	expect_queue_kind "$q-1" stream
	expect_queue_kind "$q-2" stream
	# A stream keeps what was read; a second run's consumers start at "next", after it.
	run again --uri "$SALVO_TEST_URI" --routing-key "$q" --queue-type stream --queues 2 \
		--producers 2 --consumers 2 --count 1000 --confirm async --json
	((rc == 0)) || fail "second run: exit status $rc"
	json_check "$tmp/again.out" \
		"j['consumed'] == 1000 and j['consumed_other'] == 0 and j['not_consumed'] == 0"
}

case_uris() {
	need_broker
	fresh_queue uris
	run uris --uri "$SALVO_TEST_URI" --uri "$SALVO_TEST_URI" --routing-key "$q" \
		--declare-queue --connections 2 --producers 2 --count 2000 --confirm async --json
	((rc == 0)) || fail "exit status $rc"
	json_check "$tmp/uris.out" "j['acked'] == 2000 and j['connections'] == 2"
	expect_queue_count "$q" 2000
	expect_usage_message "--uri amqp://app:S3cr3t@localhost --uri amqp://bob:S3cr3t@h2" \
		"^$prog: --uri (#2): uri.add: its user differs from the first URI's"
	expect_usage_message "--uri amqp://app:S3cr3t@localhost --uri amqp://app:Oth3r@h2" \
		"^$prog: --uri (#2): uri.add: its password differs from the first URI's"
	! grep -Eq 'S3cr3t|Oth3r' "$tmp/usage-message.err" || fail "a password was printed"
	expect_usage_message "--uri amqp://localhost/v --uri amqp://h2/w" \
		"^$prog: --uri (#2): uri.add: its vhost differs from the first URI's"
}

case_connection_refused() {
	expect_connection_refused --count 1 --json
	[[ ! -s $tmp/refused.out ]] || fail "stdout is not empty"
}

case_usage_errors() {
	local -a bad=(
		"--no-such-option"
		"--count abc"
		"--count 12abc"
		"--count -1"
		"--count 18446744073709551616"
		"--count 10 --duration 1"
		"--duration 0"
		"--duration 1s"
		"--rate x"
		"--rate -5"
		"--producers 0"
		"--producers 4097"
		"--connections 0"
		"--producers 2 --connections 3"
		"--size -1"
		"--size 1073741825"
		"--confirm maybe"
		"--window 64"
		"--confirm async --window 0"
		"--json=yes"
		"-z"
		"unexpected"
		"--conf no-equals-sign"
		"--conf no.such.key=1"
		"--conf heartbeat=-5"
		"--uri http://localhost"
		"--uri amqp://localhost --uri ftp://x"
		"--uri"
		"--csv"
		"--plot"
		"--consumers x"
		"--consumers 1025"
		"--prefetch 10"
		"--auto-ack"
		"--multi-ack-every 5"
		"--consumer-rate 10"
		"--drain-timeout 5"
		"--consumer-connections 1"
		"--consumers 1 --size 15"
		"--consumers 1 --prefetch 65536"
		"--consumers 1 --prefetch -1"
		"--consumers 1 --auto-ack --prefetch 10"
		"--consumers 1 --auto-ack --multi-ack-every 10"
		"--consumers 1 --prefetch 10 --multi-ack-every 11"
		"--consumers 1 --multi-ack-every 0"
		"--consumers 2 --consumer-connections 3"
		"--consumers 1 --drain-timeout 0"
		"--consumers 1 --drain-timeout 3601"
		"--body"
		"--body xml"
		"--body json --size 63"
		"--body json --consumers 1 --size 63"
		"--batch-records 0"
		"--batch-records 1048577"
		"--batch-records x"
		"--batch-records -1"
		"--batch-bytes 1000"
		"--linger-us 10"
		"--compression lz4"
		"--compression-level 1"
		"--batch-records 10 --batch-bytes 0"
		"--batch-records 10 --batch-bytes 2147483648"
		"--batch-records 10 --linger-us 0"
		"--batch-records 10 --linger-us 60000001"
		"--batch-records 10 --compression gzip"
		"--batch-records 10 --compression LZ4"
		"--batch-records 10 --compression-level 3"
		"--batch-records 10 --compression none --compression-level 3"
		"--batch-records 10 --compression lz4 --compression-level 13"
		"--batch-records 10 --compression zstd --compression-level 20"
		"--batch-records 10 --compression zstd --compression-level -1"
		"--queues 0"
		"--queues 1025"
		"--queues x"
		"--queue-type lazy"
		"--queue-type"
		"--queues 3 --consumers 2"
		"--queue-type stream --consumers 1 --auto-ack"
		"--queue-type stream --consumers 1 --prefetch 0"
	)
	expect_usage_errors "${bad[@]}"
	# Empty values, which a word-split list cannot hold.
	run empty-key --routing-key "" --declare-queue
	((rc == 2)) || fail "--declare-queue with an empty key: exit status $rc, expected 2"
	run empty-csv --csv ""
	((rc == 2)) || fail "--csv '': exit status $rc, expected 2"
	run empty-plot --plot ""
	((rc == 2)) || fail "--plot '': exit status $rc, expected 2"
	run empty-queue --consumers 1 --routing-key ""
	((rc == 2)) || fail "--consumers with an empty key: exit status $rc, expected 2"
	run small --consumers 1 --size 15
	((rc == 2)) || fail "--consumers with --size 15: exit status $rc, expected 2"
	grep -q '^salvo-perf: --consumers needs --size of at least 16: ' "$tmp/small.err" ||
		fail "--size 15 with consumers: the message does not say why"

	# The messages say what is wrong, naming the option and what it needs.
	expect_usage_message "--batch-records 0" "^$prog: --batch-records: '0' is not a number in 1..1048576$"
	expect_usage_message "--linger-us 10" "^$prog: --linger-us needs --batch-records$"
	expect_usage_message "--batch-records 5 --compression-level 3" \
		"^$prog: --compression-level needs --compression lz4 or zstd$"
	expect_usage_message "--batch-records 5 --compression lz4 --compression-level 13" \
		"^$prog: --compression-level: 13 is not an lz4 level (0..12)$"
	expect_usage_message "--batch-records 5 --compression brotli" \
		"^$prog: --compression: 'brotli' is not none, lz4 or zstd$"
	expect_usage_message "--body json --size 63" \
		"^$prog: --body json needs --size of at least 64 (--size is 63)$"
	expect_usage_message "--queues 3 --consumers 2" \
		"^$prog: --consumers 2 is fewer than --queues 3: a queue would have no consumer$"
	run empty-queues --queues 2 --routing-key ""
	((rc == 2)) || fail "--queues with an empty key: exit status $rc, expected 2"

	expect_help --uri --connections --producers --size --confirm --window --count --duration \
		--rate --exchange --routing-key --declare-queue --persistent --mandatory --json \
		--csv --plot --conf --progress --quiet --help --version --consumers --consumer-connections \
		--prefetch --auto-ack --multi-ack-every --consumer-rate --drain-timeout \
		e2e_latency_us consume_msgs_per_s consumed --body --batch-records --batch-bytes \
		--linger-us --compression --compression-level records_per_s envelopes_per_s \
		envelope_bytes_per_record confirm_p50_us e2e_max_us --queues --queue-type \
		x-stream-offset
	grep -q CLOCK_REALTIME "$tmp/help.out" || fail "--help does not name the timestamp's clock"
	grep -q publisher.ring_size "$tmp/help.out" || fail "--help lacks the configuration keys"
	expect_version
}

case $case_name in
'count json') case_count_json ;;
sync) case_sync ;;
duration) case_duration ;;
csv) case_csv ;;
'body layout') case_body_layout ;;
returned) case_returned ;;
'missing exchange') case_missing_exchange ;;
'connection refused') case_connection_refused ;;
'usage errors') case_usage_errors ;;
consumers) case_consumers ;;
'consumers acks') case_consumers_acks ;;
'consumers prefetch') case_consumers_prefetch ;;
'consumers other') case_consumers_other ;;
'consumers backlog') case_consumers_backlog ;;
'consumers future') case_consumers_future ;;
'peer consume') case_peer_consume ;;
'not consumed') case_not_consumed ;;
'body json') case_body_json ;;
batching) case_batching ;;
plot) case_plot ;;
'plot no gnuplot') case_plot_no_gnuplot ;;
metrics) case_metrics ;;
queues) case_queues ;;
'queue type quorum') case_queue_type_quorum ;;
'queue type stream') case_queue_type_stream ;;
uris) case_uris ;;
*) fail "no case named '$case_name'" ;;
esac
echo "$case_name: ok"
