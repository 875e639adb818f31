#!/usr/bin/env bash
# salvo-publish against hostile brokers: test_hostile.sh CASE SALVO_PUBLISH
#
# The broker is hostile_broker.py (next to this script): a fake AMQP 0-9-1 broker on
# 127.0.0.1 that does a real handshake and channel.open, then misbehaves as CASE says (see
# its docstring), and logs on stdout what salvo sent back. No RabbitMQ is needed: these
# cases never skip. Each case prints salvo-publish's exit status, elapsed time and max RSS.
#
#   close-text-escapes        connection.close 506 whose reply text holds ESC, BEL, invalid
#                             UTF-8, a NUL and valid UTF-8: stderr gets escapes, no control
#                             byte, valid UTF-8, nothing cut at the NUL, "été" kept
#   close-echoes-password     connection.close 320 echoing the login's password: the log line
#                             and salvo-publish's error show it masked, nothing shows it
#   frame-2gib                a frame header announcing 2 GiB on channel 0: 501, small RSS
#   bad-frame-end             a method frame ending in 0x00 instead of 0xCE: 501
#   deliver-unopened-channel  basic.deliver on channel 77, never opened: 504
#   unknown-method            method 60.999: 540
#   truncated-open-ok         channel.open-ok without its reserved longstr: 502
#   small-frame-max           frame_max 4096, one 200,000-byte message: every frame within
#                             4096 bytes, the bodies add up to the header's size; exit 0
set -euo pipefail

# --list: the case names, read from the case statement below (tests/list_cases.py).
[[ ${1-} != --list ]] || exec python3 "$(dirname "$0")/../list_cases.py" "$0"
case_name=${1:?usage: $0 CASE SALVO_PUBLISH}
bin=${2:?usage: $0 CASE SALVO_PUBLISH}
prog=salvo-publish
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
broker="$(cd "$(dirname "$0")" && pwd)/hostile_broker.py"

# A reply well within this is "at once": salvo answers a violation when it reads it, and
# the fake gives up after 10 s. Loaded CI machines get a margin.
max_ms=3000
# salvo-publish's own RSS is a few MiB (rings of 4 MiB, frame buffers of 2 x frame_max);
# buffering the 2 GiB frame would show far above this.
max_rss_kib=$((64 * 1024))

fake_pid=""
stop_fake() {
	if [[ -n $fake_pid ]]; then
		kill "$fake_pid" 2>/dev/null || true
		wait "$fake_pid" 2>/dev/null || true
		fake_pid=""
	fi
}
trap 'stop_fake; cleanup' EXIT

# start_fake CASE: the fake broker in the background; sets port.
start_fake() {
	python3 "$broker" "$1" "$tmp/port" >"$tmp/fake.log" 2>"$tmp/fake.err" &
	fake_pid=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -s $tmp/port ]] && break
		kill -0 "$fake_pid" 2>/dev/null || fail "the fake broker exited: $(cat "$tmp/fake.err")"
		sleep 0.05
	done
	[[ -s $tmp/port ]] || fail "the fake broker wrote no port in 10 s"
	port=$(<"$tmp/port")
}

# wait_fake: its exit status in fake_rc, its log on stderr.
wait_fake() {
	fake_rc=0
	wait "$fake_pid" || fake_rc=$?
	fake_pid=""
	sed 's/^/  fake: /' "$tmp/fake.log" >&2
	[[ ! -s $tmp/fake.err ]] || sed 's/^/  fake stderr: /' "$tmp/fake.err" >&2
}

# publish ARGS...: salvo-publish against the fake (20 s at most), stdout and stderr to
# $tmp/pub.{out,err}; sets rc (or "timeout", "signal N"), ms (elapsed) and rss_kib (max RSS,
# from getrusage of the child: needs no /usr/bin/time).
publish() {
	python3 - "$tmp/pub" "$bin" --uri "amqp://guest:${password:-guest}@127.0.0.1:$port" --routing-key q \
		--conf reconnect=0 "$@" <<-'EOF' || fail "could not run $bin"
		import resource, subprocess, sys, time
		out = sys.argv[1]
		t0 = time.monotonic()
		try:
		    with open(out + ".out", "wb") as o, open(out + ".err", "wb") as e:
		        rc = subprocess.run(sys.argv[2:], stdout=o, stderr=e, timeout=20).returncode
		    rc = rc if rc >= 0 else "signal%d" % -rc
		except subprocess.TimeoutExpired:
		    rc = "timeout"
		ms = (time.monotonic() - t0) * 1000
		rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
		with open(out + ".time", "w") as f:
		    f.write("%s %d %d\n" % (rc, ms, rss))
	EOF
	read -r rc ms rss_kib <"$tmp/pub.time"
	echo "$case_name: salvo-publish exit $rc after $ms ms, max RSS $rss_kib KiB" >&2
	# Shown with control bytes and invalid UTF-8 as \xNN: a hostile text must not reach
	# the terminal of whoever reads the test log either.
	python3 -c '
import re, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8", "backslashreplace").split("\n")
for line in lines[:-1] if lines[-1] == "" else lines:
    line = re.sub(r"[\x00-\x1f\x7f]", lambda m: "\\x%02x" % ord(m.group()), line)
    print("  salvo-publish stderr: " + line, file=sys.stderr)' "$tmp/pub.err"
}

# expect_fake LINE...: the fake exited 0, did not give up, and logged each exact LINE.
expect_fake() {
	local line
	((fake_rc == 0)) || fail "the fake broker exited with $fake_rc"
	! grep -q '^timeout' "$tmp/fake.log" || fail "the fake broker gave up: salvo hung"
	! grep -q '^CHECK FAILED' "$tmp/fake.log" || fail "$(grep '^CHECK FAILED' "$tmp/fake.log")"
	for line in "$@"; do
		grep -qxF -- "$line" "$tmp/fake.log" || fail "the fake broker did not log: $line"
	done
}

# expect_failure CODE TEXT: exit status 1 soon, stderr exactly one line of salvo-publish's
# ending in "CODE - TEXT" (the code with its name, then salvo's reason) besides the
# library's log lines ("salvo: LEVEL [facility] ..."), among which the protocol error
# with the same words; and the fake saw connection.close CODE 'TEXT' from salvo, then the
# end of the connection.
expect_failure() {
	local code=$1 text=$2 own
	[[ $rc != timeout ]] || fail "salvo-publish hung (killed after 20 s)"
	[[ $rc == 1 ]] || fail "exit status $rc, expected 1"
	((ms < max_ms)) || fail "took $ms ms, more than $max_ms"
	own=$(grep -v '^salvo: ' "$tmp/pub.err" || true)
	(($(grep -c '' <<<"$own") == 1)) || fail "stderr holds $(grep -c '' <<<"$own") lines of salvo-publish's, not 1"
	[[ $own == "salvo-publish: "*": $code - $text" ]] ||
		fail "stderr is not 'salvo-publish: ...: $code - $text'"
	grep -qxF "salvo: ERROR [protocol] closing the connection: protocol error: $code - $text" \
		"$tmp/pub.err" || fail "no log line of the protocol error"
	[[ ! -s $tmp/pub.out ]] || fail "stdout is not empty"
	expect_fake "client connection.close ${code%% *} '$text' class 0 method 0" "client EOF"
}

case_close_text_escapes() {
	start_fake close-text-escapes
	publish --count 10
	wait_fake
	[[ $rc != timeout ]] || fail "salvo-publish hung (killed after 20 s)"
	[[ $rc == 1 ]] || fail "exit status $rc, expected 1"
	((ms < max_ms)) || fail "took $ms ms, more than $max_ms"
	# A broker's close is answered with close-ok, not a close of salvo's own.
	expect_fake "client connection.close-ok" "client EOF"
	# The text is the fake's, so it is checked byte by byte in Python: no control byte but
	# the newline, valid UTF-8, the escapes shown, nothing lost after the NUL, "été" kept.
	python3 - "$tmp/pub.err" <<-'EOF' || fail "stderr is not safe to print: $(od -c "$tmp/pub.err" | head -5)"
		import sys
		raw = open(sys.argv[1], "rb").read()
		bad = sorted({b for b in raw if (b < 0x20 and b != 0x0A) or b == 0x7F})
		problems = []
		if bad:
		    problems.append("control bytes %s" % ", ".join("0x%02x" % b for b in bad))
		try:
		    text = raw.decode("utf-8")
		except UnicodeDecodeError as e:
		    problems.append("not UTF-8 (%s)" % e)
		    text = raw.decode("utf-8", "replace")
		if "506 RESOURCE_ERROR - " not in text:
		    problems.append("no '506 RESOURCE_ERROR - '")
		for want in ("after-nul", "\u00e9t\u00e9", r"\x1b", r"\x07", r"\xff", r"\xfe", r"\x00",
		             " evil "):
		    if want not in text:
		        problems.append("%r missing" % want)
		if problems:
		    print("stderr: %r\n  %s" % (raw, "\n  ".join(problems)), file=sys.stderr)
		    sys.exit(1)
	EOF
}

case_frame_2gib() {
	start_fake frame-2gib
	publish --count 10
	wait_fake
	expect_failure '501 FRAME_ERROR' 'frame of 2147483648 payload bytes exceeds frame_max 131072'
	((rss_kib < max_rss_kib)) || fail "max RSS $rss_kib KiB, more than $max_rss_kib KiB"
}

case_bad_frame_end() {
	start_fake bad-frame-end
	publish --count 10
	wait_fake
	expect_failure '501 FRAME_ERROR' 'frame end octet is 0x00, not 0xce'
}

# A frame on a channel that is not open is a connection exception, and the AMQP 0-9-1
# spec's constant for it is 504 channel-error ("work with a channel that had not been
# correctly opened"); RabbitMQ answers a client doing so the same way.
case_deliver_unopened_channel() {
	start_fake deliver-unopened-channel
	publish --count 10
	wait_fake
	expect_failure '504 CHANNEL_ERROR' 'frame on channel 77, which is not open'
}

# A method the peer does not know: the spec's 540 not-implemented (RabbitMQ answers an
# unknown method id likewise), rather than 503 command-invalid, which is for a known
# method that is not allowed in the state.
case_unknown_method() {
	start_fake unknown-method
	publish --count 10
	wait_fake
	expect_failure '540 NOT_IMPLEMENTED' 'unknown method 60.999'
}

# Arguments that overrun the frame: 502 syntax-error ("a frame that contained illegal
# values for one or more fields"). channel.open-ok's reserved longstr is 'channel-id' in
# RabbitMQ's spec file, which salvo's codec is generated from.
case_truncated_open_ok() {
	start_fake truncated-open-ok
	publish --count 10
	wait_fake
	expect_failure '502 SYNTAX_ERROR' "channel.open-ok: argument 'channel-id' overruns the frame"
}

case_small_frame_max() {
	start_fake small-frame-max
	publish --count 1 --size 200000
	wait_fake
	[[ $rc != timeout ]] || fail "salvo-publish hung (killed after 20 s)"
	[[ $rc == 0 ]] || fail "exit status $rc, expected 0"
	((ms < max_ms)) || fail "took $ms ms, more than $max_ms"
	grep -q '^sent 1 messages (200000 bytes each) in ' "$tmp/pub.err" || fail "no summary on stderr"
	expect_fake "check ok: client tune-ok frame_max 4096 == 4096" \
		"client published 1 messages (first on channel 1)" \
		"client connection.close 200 'closed by the application' class 0 method 0" \
		"client EOF" \
		"check ok: largest client frame 4096 bytes <= 4096" \
		"check ok: 1 message(s) received" \
		"client message: body size 200000 in 49 body frames" \
		"check ok: content header body size 200000 == 200000" \
		"check ok: body frames add up to 200000 == 200000"
}

# Best effort's loss bound when the loss comes as the publisher closes: every message was
# handed over (flushed), none proven handled (checkpoints unanswered), and the connection
# is reset at the channel.close. The close fails, and possibly_lost must cover all 1,000
# (it read 0: a publisher detached from the I/O thread was no longer counted at a loss).
case_drop_at_channel_close() {
	start_fake drop-at-channel-close
	publish --count 1000 --json
	wait_fake
	[[ $rc == 1 ]] || fail "exit status $rc, expected 1"
	python3 - "$tmp/pub.out" <<-'EOF' || fail "possibly_lost does not cover the 1,000 messages"
		import json, sys
		j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
		print("salvo-publish: sent %d, possibly_lost %d" % (j["sent"], j["possibly_lost"]))
		assert j["sent"] == 1000 and j["possibly_lost"] == 1000
	EOF
	expect_fake "client published 1000 messages (first on channel 1)" "resetting the connection"
}

case_close_echoes_password() {
	password=Echo-S3cret-77
	start_fake close-echoes-password
	publish --count 10
	wait_fake
	[[ $rc != timeout ]] || fail "salvo-publish hung (killed after 20 s)"
	[[ $rc == 1 ]] || fail "exit status $rc, expected 1"
	expect_fake "client connection.close-ok"
	# The library's log line and salvo-publish's error both carry the broker's text, the
	# password masked: the 320 and the rest of the text are there, the password is not.
	grep -q "^salvo: WARNING \[connection\] connection lost: 320 CONNECTION_FORCED - session of guest:\*\{14\} ended (\*\{14\})" "$tmp/pub.err" ||
		fail "no masked log line: $(cat "$tmp/pub.err")"
	grep -q "^salvo-publish: .*320 CONNECTION_FORCED - session of guest:\*\{14\}" "$tmp/pub.err" ||
		fail "no masked error: $(cat "$tmp/pub.err")"
	! grep -q "S3cret" "$tmp/pub.err" "$tmp/pub.out" || fail "the password reached the output: $(cat "$tmp/pub.err")"
}

case $case_name in
close-text-escapes) case_close_text_escapes ;;
close-echoes-password) case_close_echoes_password ;;
frame-2gib) case_frame_2gib ;;
bad-frame-end) case_bad_frame_end ;;
deliver-unopened-channel) case_deliver_unopened_channel ;;
unknown-method) case_unknown_method ;;
truncated-open-ok) case_truncated_open_ok ;;
small-frame-max) case_small_frame_max ;;
drop-at-channel-close) case_drop_at_channel_close ;;
*) fail "no case named '$case_name'" ;;
esac
echo "$case_name: ok ($ms ms)"
