#!/usr/bin/env bash
# The main job, from a fresh machine: install dependencies, build, then show what salvo is
# for in about 30 seconds of measurements, with live progress once a second, a summary
# table, a CSV and a PNG chart.
#
# Four phases of salvo-perf, one producer on one connection, SALVO_RUN_SIZE-byte bodies:
#   1. salvo-sink, best effort: salvo against a minimal AMQP server that only parses and
#      counts, so the engine's own ceiling (salvo-sink runs here, on 127.0.0.1:0)
#   2. RabbitMQ, best effort: the same against a throwaway RabbitMQ (scripts/rabbitmq.sh)
#   3. RabbitMQ, async publisher confirms, at most SALVO_RUN_WINDOW awaiting confirms
#   4. RabbitMQ, end to end: publish at SALVO_RUN_RATE msgs/s with one consumer (own
#      connection, prefetch SALVO_RUN_PREFETCH, manual acks) on the same queue
# Each RabbitMQ phase has a queue of its own (run.none, run.async, run.e2e); phases 2 and
# 3 leave their messages there, so the queue is deleted right after the phase and no phase
# pays for the backlog of another.
#
# Live progress: salvo-perf's own once-a-second lines (stderr), reformatted into columns
# (msgs/s published, acked, in flight, consumed, latency~). salvo-perf measures latency
# only over the whole run, so the live latency~ is an estimate by Little's law: in flight
# / ack rate (confirms) or (sent - consumed) / consume rate (end to end); the summary's
# p50/p99 are measured (confirm latency sampled by salvo, end to end on every message).
#
# The summary: one row per phase (msgs/s, MB/s, client CPU µs/msg, latency p50/p99) and a
# few sentences. Best effort stops salvo-perf's clock once the last message is written to
# the socket, while RabbitMQ may take seconds more to read what the socket buffers hold;
# the table then shows what the broker took in (messages / time until salvo-perf's close
# finished), marked *, with salvo-perf's own figure below it.
#
# Output in SALVO_RUN_OUT (default BUILD_DIR/run):
#   summary.txt  the summary table printed at the end
#   run.csv      one row per second per phase: t,phase,target,mode,sent,msgs_per_s,acked,
#                nacked,in_flight,consumed,consume_msgs_per_s,latency_est_ms (and each
#                phase's last row, at its end)
#   run.png      messages/s and estimated latency over time, per phase (gnuplot); run.gp
#                is the gnuplot script, run.dat its data
#   phases/      each phase's salvo-perf JSON (.json), CSV (.csv) and stderr (.log)
#
# Variables (each has a default):
#   SALVO_RUN_SECONDS   seconds of publishing per phase (default 5)
#   SALVO_RUN_PHASES    phases to run, in order, from: sink none async e2e (default all four)
#   SALVO_RUN_SIZE      body size in bytes (default 100; at least 16 for e2e)
#   SALVO_RUN_WINDOW    async confirms: most messages awaiting confirms (default 256; salvo
#                       rounds it up to a power of two, at least 64)
#   SALVO_RUN_RATE      e2e: publish rate cap in msgs/s, 0 for none (default 10000)
#   SALVO_RUN_PREFETCH  e2e: consumer prefetch (default 1000)
#   SALVO_RUN_OUT       output directory (default BUILD_DIR/run)
#   SALVO_BUILD_DIR     build directory (default build)
#   SALVO_TEST_PORT     RabbitMQ's AMQP port (default 5679; PORT+10000, PORT+20000 too)
#
# Exit status 0 when every phase ran and the chart was written; non-zero otherwise, after a
# line saying which step failed and why.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SALVO_RUN_SECONDS:-5}
phases=${SALVO_RUN_PHASES:-sink none async e2e}
size=${SALVO_RUN_SIZE:-100}
window=${SALVO_RUN_WINDOW:-256}
rate=${SALVO_RUN_RATE:-10000}
prefetch=${SALVO_RUN_PREFETCH:-1000}
export SALVO_TEST_PORT=${SALVO_TEST_PORT:-5679}

die() {
	echo "run.sh: $*" >&2
	exit 1
}
for v in SECONDS:$secs SIZE:$size WINDOW:$window RATE:$rate PREFETCH:$prefetch; do
	[[ ${v#*:} =~ ^[0-9]{1,9}$ ]] || die "SALVO_RUN_${v%%:*} must be a whole number, got '${v#*:}'"
done
((secs >= 1)) || die "SALVO_RUN_SECONDS must be at least 1"
# shellcheck disable=SC2206 # split on purpose
phase_list=($phases)
((${#phase_list[@]})) || die "SALVO_RUN_PHASES is empty"
seen=" "
for p in "${phase_list[@]}"; do
	[[ $seen != *" $p "* ]] || die "SALVO_RUN_PHASES names '$p' twice"
	seen+="$p "
	case $p in
	sink | none | async) ;;
	e2e)
		((size >= 16)) || die "SALVO_RUN_SIZE must be at least 16 for e2e (the send time is in the body)"
		;;
	*) die "SALVO_RUN_PHASES: unknown phase '$p' (sink, none, async, e2e)" ;;
	esac
done

# What is being done, for the failure message of the EXIT trap.
step="setup (scripts/setup.sh)"
sink_pid=""
broker_started=""
t_start=$(date +%s.%N)

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -n $sink_pid ]]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
	fi
	# Only a broker this script started: rabbitmq.sh start refuses a port in use.
	if [[ -n $broker_started ]]; then
		bash scripts/rabbitmq.sh stop </dev/null >/dev/null 2>&1 || true
	fi
	if ((status != 0)); then
		echo "run.sh: FAILED during $step (exit $status)" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/setup.sh </dev/null
step="build"
builddir=${SALVO_BUILD_DIR:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir"
ninja -C "$builddir"

perf=$builddir/bench/perf/salvo-perf
sink=$builddir/bench/sink/salvo-sink
out=${SALVO_RUN_OUT:-$builddir/run}
step="preparing $out"
for exe in "$perf" "$sink"; do
	[[ -x $exe ]] || die "$exe was not built"
done
mkdir -p "$out/phases"
# Only this script's own files: SALVO_RUN_OUT may name a directory with other things in it.
rm -f -- "$out"/{summary.txt,run.csv,run.png,run.gp,run.dat} "$out"/phases/*.{json,csv,log,tsv,end} \
	"$out/phases/sink.port"

# The live progress filter: salvo-perf's stderr in, its lines as columns out (stdout), every
# line kept in the phase's log; error lines pass through as they are. It also notes how long
# after salvo-perf's clock started (first line's arrival minus its t) salvo-perf exited: best
# effort stops the clock when the last message is handed to the kernel, and the broker may
# still be reading the socket until the connection closes.
progress_py=$(
	cat <<'EOF'
import re, sys, time

log = open(sys.argv[1], "w")
line_re = re.compile(r"t=(\d+)s sent (\d+) \((\d+) msg/s\)"
                     r"(?: acked (\d+) nacked (\d+) in-flight (\d+)(?: returned \d+ failed \d+)?)?"
                     r"(?: consumed (\d+) \((\d+) msg/s\))?$")

def num(x):
    return "-" if x is None else format(int(x), ",")

def ms(x):
    if x >= 1000:
        return "%.1f s" % (x / 1000)
    return ("%.0f ms" if x >= 10 else "%.1f ms" if x >= 0.1 else "%.2f ms") % x

print("%6s %12s %12s %10s %12s %10s" % ("t", "msgs/s", "acked", "in flight", "consumed",
                                         "latency~"), flush=True)
prev_t, prev_acked, clock0 = 0, 0, None
for line in iter(sys.stdin.readline, ""):
    log.write(line)
    log.flush()
    m = line_re.match(line.rstrip("\n"))
    if not m:
        # The end-of-run summary stays in the log; errors and warnings are shown.
        if line.startswith("salvo-perf") or "NOT " in line or "warning" in line.lower():
            print("    " + line.rstrip("\n"), flush=True)
        continue
    t, sent, r, acked, nacked, in_flight, consumed, crate = m.groups()
    if clock0 is None:
        clock0 = time.monotonic() - int(t)
    lat = "-"
    if acked is not None:
        # Little's law: mean time to confirm = messages in flight / acks per second.
        dt = int(t) - prev_t
        ack_rate = (int(acked) - prev_acked) / dt if dt > 0 else 0
        if ack_rate > 0:
            lat = ms(int(in_flight) / ack_rate * 1000)
        prev_t, prev_acked = int(t), int(acked)
    elif consumed is not None and int(crate) > 0:
        # The same for the queue: mean wait = messages not yet consumed / consume rate;
        # none waiting means less than one message's time.
        backlog = int(sent) - int(consumed)
        lat = (ms(backlog / int(crate) * 1000) if backlog > 0
               else "< " + ms(max(1000 / int(crate), 0.1)))
    print("%5ss %12s %12s %10s %12s %10s" % (t, num(r), num(acked), num(in_flight),
                                             num(consumed), lat), flush=True)
with open(sys.argv[2], "w") as f:
    if clock0 is not None:
        f.write("%.6f\n" % (time.monotonic() - clock0))
EOF
)

# run_phase NAME TARGET MODE URI QUEUE [salvo-perf options]: one phase, with live
# progress; its JSON, CSV and log in $out/phases, a line in $out/phases/index.tsv.
phase_no=0
run_phase() {
	local name=$1 target=$2 mode=$3 uri=$4 queue=$5 t0 t1 st
	shift 5
	phase_no=$((phase_no + 1))
	step="phase $phase_no/${#phase_list[@]} ($target, $mode)"
	echo
	echo "== phase $phase_no/${#phase_list[@]}: $target, $mode, $secs s"
	t0=$(date +%s.%N)
	set +e
	"$perf" --uri "$uri" --routing-key "$queue" --size "$size" --duration "$secs" \
		--progress --json --csv "$out/phases/$name.csv" "$@" \
		2>&1 >"$out/phases/$name.json" |
		python3 -u -c "$progress_py" "$out/phases/$name.log" "$out/phases/$name.end"
	st=("${PIPESTATUS[@]}")
	set -e
	t1=$(date +%s.%N)
	if ((st[0] != 0)); then
		echo "run.sh: $step: salvo-perf exited ${st[0]}; its output:" >&2
		sed 's/^/    /' "$out/phases/$name.log" >&2
		exit 1
	fi
	((st[1] == 0)) || die "$step: the progress filter (python3) failed"
	tail -n 1 "$out/phases/$name.json" | python3 -c 'import json, sys; json.load(sys.stdin)' ||
		die "$step: salvo-perf's last stdout line is not JSON"
	printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$target" "$mode" "$t0" "$t1" >>"$out/phases/index.tsv"
}

# delete_queue Q: RabbitMQ frees the backlog a phase left, before the next one.
delete_queue() {
	local what t0
	t0=$(date +%s.%N)
	what=$(bash scripts/rabbitmq.sh ctl -q delete_queue "$1" </dev/null) ||
		die "$step: rabbitmqctl delete_queue $1 failed"
	echo "   queue $1: ${what#Queue was successfully }"
	printf '%s\t%s\t%s\n' "$1" "$t0" "$(date +%s.%N)" >>"$out/phases/deletes.tsv"
}

for p in "${phase_list[@]}"; do
	case $p in
	sink)
		step="starting salvo-sink"
		rm -f "$out/phases/sink.port"
		"$sink" --listen 127.0.0.1:0 --port-file "$out/phases/sink.port" --quiet </dev/null &
		sink_pid=$!
		for _ in $(seq 100); do
			[[ -s $out/phases/sink.port ]] && break
			kill -0 "$sink_pid" 2>/dev/null || die "$step: salvo-sink exited"
			sleep 0.05
		done
		[[ -s $out/phases/sink.port ]] || die "$step: no port file after 5 s"
		run_phase sink salvo-sink "best effort" \
			"amqp://guest:guest@127.0.0.1:$(cat "$out/phases/sink.port")" run.sink
		step="stopping salvo-sink"
		kill "$sink_pid"
		wait "$sink_pid" 2>/dev/null || true
		sink_pid=""
		;;
	*)
		if [[ -z $broker_started ]]; then
			step="starting RabbitMQ (scripts/rabbitmq.sh start, port $SALVO_TEST_PORT)"
			echo
			echo "== starting a throwaway RabbitMQ on port $SALVO_TEST_PORT"
			uri=$(bash scripts/rabbitmq.sh start </dev/null | tail -n 1)
			broker_started=1
		fi
		case $p in
		none)
			run_phase none RabbitMQ "best effort" "$uri" run.none --declare-queue
			delete_queue run.none
			;;
		async)
			run_phase async RabbitMQ "async confirms" "$uri" run.async --declare-queue \
				--confirm async --window "$window"
			delete_queue run.async
			;;
		e2e)
			run_phase e2e RabbitMQ "publish + 1 consumer" "$uri" run.e2e --declare-queue \
				--rate "$rate" --consumers 1 --prefetch "$prefetch"
			;;
		esac
		;;
	esac
done
if [[ -n $broker_started ]]; then
	step="stopping RabbitMQ"
	bash scripts/rabbitmq.sh stop </dev/null
	broker_started=""
fi

# The summary, run.csv, and the chart's data and gnuplot script.
step="summary and chart (python3)"
term=png
gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo && term=pngcairo
python3 - "$out" "$term" "$size" "$window" "$rate" "$secs" <<'EOF'
import csv, json, os, sys, textwrap

out, term = sys.argv[1], sys.argv[2]
size, window, rate, secs = map(int, sys.argv[3:7])

def path(*p):
    return os.path.join(out, *p)

phases = []
for line in open(path("phases", "index.tsv")):
    name, target, mode, t0, t1 = line.rstrip("\n").split("\t")
    j = json.loads(open(path("phases", name + ".json")).read().splitlines()[-1])
    end = open(path("phases", name + ".end")).read().strip()
    phases.append(dict(name=name, target=target, mode=mode, wall=float(t1) - float(t0), j=j,
                       end=float(end) if end else None))
deletes = 0.0
if os.path.exists(path("phases", "deletes.tsv")):
    for line in open(path("phases", "deletes.tsv")):
        q, t0, t1 = line.rstrip("\n").split("\t")
        deletes += float(t1) - float(t0)
by = {p["name"]: p for p in phases}

# Best effort stops salvo-perf's clock once the last message is handed to the kernel, and
# loopback socket buffers hold megabytes: RabbitMQ may read them for seconds more (salvo-perf
# exits after the connection's close, which waits for that). So a best-effort phase's rate is
# the messages over the time until salvo-perf exited (from the progress filter's .end file),
# when that is longer than the clock by 0.2 s or more: what the target really took in.
for p in phases:
    j = p["j"]
    p["mps"], p["after"] = j["msgs_per_s"], 0.0
    if p["name"] == "e2e":
        p["mps"] = j["consume_msgs_per_s"]
    elif j["confirm"] == "none" and p["end"] is not None and p["end"] - j["seconds"] >= 0.2:
        p["after"] = p["end"] - j["seconds"]
        p["mps"] = j["sent"] / p["end"]

def n(x):
    return format(round(x), ",")

def ms(us):
    if us is None:
        return "-"
    x = us / 1000
    if x >= 1000:
        return "%.1f s" % (x / 1000)
    return ("%.0f ms" if x >= 10 else "%.1f ms" if x >= 0.1 else "%.2f ms") % x

# --- run.csv (every row) and run.dat (per phase, one gnuplot block each) -------------------
rows = []
for p in phases:
    src = list(csv.DictReader(open(path("phases", p["name"] + ".csv"))))
    prev_t, prev_acked = 0.0, 0
    for i, r in enumerate(src):
        t = float(r["t"])
        sent, acked, in_flight = int(r["sent"]), int(r["acked"]), int(r["in_flight"])
        has_c = "consumed" in r
        consumed = int(r["consumed"]) if has_c else 0
        crate = float(r["consume_msgs_per_s"]) if has_c else 0.0
        lat = None
        if p["j"]["confirm"] != "none" and t > prev_t and acked > prev_acked:
            # Little's law, as the live lines: in flight / ack rate.
            lat = in_flight / ((acked - prev_acked) / (t - prev_t)) * 1000
        elif has_c and crate > 0:
            lat = (sent - consumed) / crate * 1000
        rows.append(dict(t=t, phase=p["name"], target=p["target"], mode=p["mode"], sent=sent,
                         msgs_per_s=float(r["msgs_per_s"]), acked=acked,
                         nacked=int(r["nacked"]), in_flight=in_flight,
                         consumed=consumed if has_c else "",
                         consume_msgs_per_s=crate if has_c else "",
                         latency_est_ms="" if lat is None else round(lat, 3),
                         _last=i == len(src) - 1))
        prev_t, prev_acked = t, acked
fields = ["t", "phase", "target", "mode", "sent", "msgs_per_s", "acked", "nacked",
          "in_flight", "consumed", "consume_msgs_per_s", "latency_est_ms"]
with open(path("run.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)

# The chart leaves out each phase's last row (salvo-perf's row at the end, whose rate is
# over the last fraction of a second), and zeros (log scale), as NaN: a gap in the line.
def pos(x):
    return "%g" % x if x not in ("", None) and x > 0 else "NaN"

tmax = 1.0
with open(path("run.dat"), "w") as f:
    for p in phases:
        f.write("# %s: t msgs_per_s consume_msgs_per_s latency_est_ms\n" % p["name"])
        for r in rows:
            if r["phase"] == p["name"] and not r["_last"]:
                tmax = max(tmax, r["t"])
                f.write("%.3f %s %s %s\n" % (r["t"], pos(r["msgs_per_s"]),
                                             pos(r["consume_msgs_per_s"]),
                                             pos(r["latency_est_ms"])))
        f.write("\n\n")

# --- the summary ----------------------------------------------------------------------------
def mode_text(p):
    if p["name"] == "async":
        return "async confirms, window %s" % n(window)
    if p["name"] == "e2e":
        return "publish + 1 consumer" + (", capped %s/s" % n(rate) if rate else "")
    return p["mode"]

head = ["target", "mode", "msgs/s", "MB/s", "client CPU", "latency", "p50", "p99"]
sub = ["", "", "", "", "µs/msg", "", "", ""]
table = []
for p in phases:
    j = p["j"]
    kind, lat, mps = "-", {}, p["mps"]
    if p["name"] == "e2e":
        kind, lat = "publish→consume", j["e2e_latency_us"]
    elif j["confirm"] != "none":
        kind, lat = "confirm", j["latency_us"]
    table.append([p["target"], mode_text(p), n(mps) + ("*" if p["after"] else " "),
                  "%.2f" % (mps * j["size"] / 1e6),
                  "%.3f" % j["cpu_us_per_msg"], kind, ms(lat.get("p50")), ms(lat.get("p99"))])
width = [max(len(r[i]) for r in [head, sub] + table) for i in range(len(head))]
right = {2, 3, 4, 6, 7}

def fmt(r):
    return "  ".join(c.rjust(width[i]) if i in right else c.ljust(width[i])
                     for i, c in enumerate(r)).rstrip()

lines = ["", "== Summary: %d-byte bodies, one producer on one connection, %d s per phase, "
         "%d CPUs shared by client and broker" % (size, secs, os.cpu_count()), "",
         fmt(head), fmt(sub), fmt(["-" * x for x in width])] + [fmt(r) for r in table] + [""]

notes, small = [], []
if "sink" in by and "none" in by:
    r = by["none"]
    busy = 100 * r["j"]["cpu_seconds"] / max(r["end"] or r["j"]["seconds"], 1e-9)
    notes.append("RabbitMQ's per-message work, not the client, sets the rate: salvo alone "
                 "(against salvo-sink, which only parses and counts) publishes %.0fx faster, "
                 "while publishing to RabbitMQ keeps salvo %s of one CPU busy."
                 % (by["sink"]["mps"] / max(r["mps"], 1),
                    "under 1%" if busy < 1 else "%.0f%%" % busy))
elif "sink" in by:
    notes.append("salvo alone (against salvo-sink, which only parses and counts) publishes "
                 "%s msgs/s." % n(by["sink"]["mps"]))
if "async" in by:
    a = by["async"]["j"]
    cmp = ""
    if "none" in by:
        loss = 1 - a["msgs_per_s"] / max(by["none"]["mps"], 1)
        cmp = (" cost %.0f%% of the rate;" % (loss * 100) if loss >= 0.05
               else " cost next to nothing in rate;")
    notes.append("Async confirms (the broker acknowledges each message as safe)%s half come "
                 "back within %s, with up to %s messages awaiting confirms."
                 % (cmp or ":", ms(a["latency_us"]["p50"]), n(window)))
if "e2e" in by:
    e = by["e2e"]["j"]
    if rate:
        notes.append("End to end is capped at %s msgs/s, below what the broker sustains, so its "
                     "latency is delivery time; uncapped (SALVO_RUN_RATE=0) the queue grows and "
                     "latency only measures how long the run lasted." % n(rate))
        small.append("at a capped rate salvo wakes for a few messages at a time, hence the "
                     "higher CPU per message;")
    else:
        notes.append("End to end is uncapped (SALVO_RUN_RATE=0): the producer outruns the "
                     "consumer, the queue grows, and latency (p50 %s) is mostly the wait in it."
                     % ms(e["e2e_latency_us"]["p50"]))
stars = []
for p in phases:
    if p["after"]:
        stars.append("%s's own intake: salvo-perf reports %s msgs/s, but best effort stops its "
                     "clock once the last message is written to the socket, and %s, with "
                     "megabytes still in socket buffers and its own queues, took %.1f s more "
                     "(salvo-perf's close waits for that): this is %s messages over %.1f s."
                     % (p["target"], n(p["j"]["msgs_per_s"]), p["target"], p["after"],
                        n(p["j"]["sent"]), p["end"]))
small.append("the live latency~ is an estimate (in flight / ack rate, or backlog / consume "
             "rate); p50 and p99 above are measured.")
for s in stars:
    lines += textwrap.wrap("* " + s, 92, subsequent_indent="  ") + [""]
for s in notes:
    lines += textwrap.wrap(s, 92)
lines.append("")
lines += textwrap.wrap("Notes: " + " ".join(small), 92)
lines.append("")
lines += textwrap.wrap("Wall time: %.1f s of phases (%s; each with connect and close)%s."
                       % (sum(p["wall"] for p in phases),
                          ", ".join("%s %.1f s" % (p["name"], p["wall"]) for p in phases),
                          ", %.1f s deleting queues" % deletes if deletes else ""), 92)
text = "\n".join(lines) + "\n"
open(path("summary.txt"), "w").write(text)
sys.stdout.write(text)

# --- the gnuplot script -------------------------------------------------------------------
color = {"sink": "#2ca02c", "none": "#1f77b4", "async": "#ff7f0e", "e2e": "#d62728"}
label = {"sink": "salvo-sink, best effort", "none": "RabbitMQ, best effort",
         "async": "RabbitMQ, async confirms", "e2e": "RabbitMQ, publish + 1 consumer"}
dat = path("run.dat")
style = "with linespoints lw 2 pt 7 ps 0.7"
rate_plots, lat_plots = [], []
for i, p in enumerate(phases):
    nm, j, c = p["name"], p["j"], color[p["name"]]
    rate_plots.append("'%s' index %d using 1:2 %s lc rgb '%s' title '%s%s'"
                      % (dat, i, style, c, label[nm],
                         ", published" if nm == "e2e" or p["after"] else ""))
    if p["after"]:
        rate_plots.append("%g with lines lw 1.5 dt 2 lc rgb '%s' title '%s, taken in by %s "
                          "over all %.1f s: %s/s'" % (p["mps"], c, label[nm], p["target"],
                                                      p["end"], n(p["mps"])))
    lat = None
    if nm == "e2e":
        rate_plots.append("'%s' index %d using 1:3 with linespoints lw 2 dt 2 pt 6 ps 0.9 "
                          "lc rgb '%s' title '%s, consumed'" % (dat, i, c, label[nm]))
        lat, what = j["e2e_latency_us"], "publish to consume"
        est = "backlog / consume rate"
    elif j["confirm"] != "none":
        lat, what, est = j["latency_us"], "confirm", "in flight / ack rate"
    if lat:
        lat_plots.append("'%s' index %d using 1:4 %s lc rgb '%s' title '%s, estimated mean: %s'"
                         % (dat, i, style, c, what, est))
        for q, dt in (("p50", 2), ("p99", 3)):
            if lat[q]:
                lat_plots.append("%g with lines lw 1.5 dt %d lc rgb '%s' title '%s, measured %s "
                                 "over the run: %s'" % (lat[q] / 1000, dt, c, what, q, ms(lat[q])))
title = ("salvo, scripts/run.sh: %d-byte bodies, one producer, %d s per phase, %d CPUs"
         % (size, secs, os.cpu_count()))
gp = ["set terminal %s size 1100,%d font ',10'" % (term, 1000 if lat_plots else 560),
      "set output '%s'" % path("run.png"),
      "set grid", "set key below left Left reverse maxrows 6 spacing 1.1",
      "set xlabel 'seconds since the phase started'", "set xrange [0:%g]" % (int(tmax) + 1),
      "set logscale y", "set mytics 10", "set samples 2"]
if lat_plots:
    gp.append("set multiplot layout 2,1 title \"%s\" font ',12'" % title)
    gp.append("set title 'messages per second'")
else:
    gp.append("set title \"%s\"" % title)
gp += ["set ylabel 'messages/s (log scale)'", "set format y '%.0s%c'",
       "set yrange [1000:*]", "plot " + ", \\\n     ".join(rate_plots)]
if lat_plots:
    gp += ["set title 'latency: estimated each second (Little''s law), measured over the run'",
           "set ylabel 'ms (log scale)'", "set format y '%g'", "set yrange [*:*]",
           "plot " + ", \\\n     ".join(lat_plots), "unset multiplot"]
open(path("run.gp"), "w").write("\n".join(gp) + "\n")
EOF

step="chart (gnuplot $out/run.gp)"
gnuplot "$out/run.gp"
[[ -s $out/run.png ]] || die "$step: gnuplot wrote no $out/run.png"
echo "Whole run: $(python3 -c "import sys; print('%.0f' % (float(sys.argv[2]) - float(sys.argv[1])))" \
	"$t_start" "$(date +%s.%N)") s with setup, build and broker start."
echo
echo "CSV:   $out/run.csv"
echo "Chart: $out/run.png"
