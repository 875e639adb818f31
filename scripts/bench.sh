#!/usr/bin/env bash
# One benchmark run, every figure from the same machine state:
#   1. the physical limit: raw TCP loopback bytes/s (bench/probe/tcp_loopback);
#   2. salvo -> salvo-sink, 100 B and 4 KiB bodies: best effort, async confirms (window
#      4096), sync confirms with 1 and 64 producer threads (bench/perf/salvo-perf);
#   3. the peer, rabbitmq-c (bench/peers/rabbitmq_c_publish), against the same sink:
#      best effort, windowed confirms, a confirm wait per message (1 and 64 threads);
#   4. salvo and the peer against a real RabbitMQ (scripts/rabbitmq.sh), none and async
#      (window 4096); then consuming a backlog of 200,000 100-byte messages, prefetch 1000,
#      an ack per message: salvo-perf --count 0 --consumers 1 beside
#      bench/peers/rabbitmq_c_consume, each on a queue filled for it, then salvo with a
#      callback consumer (--consume-callback) and with 4 consumer threads;
#   5. the micro-benchmarks (Google Benchmark), unless SALVO_BENCH_MICRO=0;
#   and the sync-confirm pattern's limit (bench/probe/sync_waiters: 64 threads post a
#   request and sleep, one waker answers them in batches), of which salvo's 64-thread sync
#   figure against the sink is given as a share.
# Prints a table (msgs/s, MB/s of bodies, % of the loopback limit, client CPU us/msg),
# salvo/rabbitmq-c ratios against RabbitMQ, the speed targets met or not, and writes
# bench/results/latest.json (the consume rows under "consume", apart from the publishing
# "rows" the chart draws) and bench/results/latest.png (gnuplot).
#
# scripts/bench.sh --plot-only: no benchmark; redraw bench/results/latest.png from
# bench/results/latest.json (needs python3 and gnuplot only).
#
# Environment: SALVO_BENCH_BUILD_DIR (default build-release), SALVO_BENCH_PORT (the
# RabbitMQ's AMQP port, default 5699), SALVO_BENCH_SCALE (multiplies every count;
# default 1; 0.1 for a quick look), SALVO_BENCH_MICRO (0 skips the micro-benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."

# plot_chart JSON PNG: the chart of a run's rows. Against salvo-sink (the client's own
# cost) and against RabbitMQ side by side, each scenario salvo's bar next to the peer's:
# messages/s above, client CPU per message below, each bar with its figure; log scales
# where salvo and the peer are orders of magnitude apart.
plot_chart() {
	local dir rc=0
	dir=$(mktemp -d)
	python3 - "$1" "$dir" <<-'EOF' || rc=$?
		import json, math, sys
		run = json.load(open(sys.argv[1]))
		out = sys.argv[2]
		rows = {(r["group"], r["label"]): r for r in run["rows"]}
		mode = {"none": "no confirms", "async w4096": "async, window 4096",
		        "sync x1": "sync, 1 thread", "sync x64": "sync, 64 threads"}

		def human(v):
		    for div, unit in ((1e6, "M"), (1e3, "k")):
		        if v >= div:
		            return "%.3g%s" % (v / div, unit)
		    return "%.3g" % v

		def scenarios(group):
		    # "salvo 100B sync x64" and "rabbitmq-c 100B sync x64": the scenario "100B sync x64"
		    seen = []
		    for r in run["rows"]:
		        sc = r["label"].split(" ", 1)[1]
		        if r["group"] == group and sc not in seen:
		            seen.append(sc)
		    return seen

		# The data of a panel into f (x, salvo's figure, the peer's, both as text for the bars),
		# and its x tics: body size and mode, with messages/s how many times the peer's salvo is.
		def panel(group, f, key):
		    xtics = []
		    for i, sc in enumerate(scenarios(group)):
		        s, p = rows.get((group, "salvo " + sc)), rows.get((group, "rabbitmq-c " + sc))
		        size, m = sc.split(" ", 1)
		        tic = "%s bodies\\n%s" % (size.replace("KiB", " KiB").replace("0B", "0 B"),
		                                  mode.get(m, m))
		        if key == "msgs_per_s":
		            tic += "\\n" + ("salvo/peer: %.3gx" % (s[key] / p[key]) if s and p
		                            else "(no peer run)")
		        xtics.append('"%s" %d' % (tic, i))
		        f.write("%d %s %s %s %s\n" % (
		            i, s[key] if s else "NaN", p[key] if p else "NaN",
		            human(s[key]) if s else '""', human(p[key]) if p else '""'))
		    return "set xtics (%s)\n" % ", ".join(xtics)

		# A log scale where the figures are orders of magnitude apart, else linear from 0; room
		# above the highest bar for its figure and the key.
		def yaxis(group, key):
		    vs = [r[key] for r in run["rows"] if r["group"] == group and r[key] > 0]
		    if max(vs) / min(vs) < 20:
		        return "unset logscale y\nset yrange [0:%g]\n" % (max(vs) * 1.35), ""
		    return "set logscale y\nset yrange [%g:%g]\n" % (
		        10 ** math.floor(math.log10(min(vs))),
		        10 ** (math.ceil(math.log10(max(vs))) + 0.4)), ", log scale"

		gp = open(out + "/chart.gp", "w")
		gp.write('set terminal pngcairo size 1600,1100 font ",10" noenhanced\n')
		gp.write('set output "%s/chart.png"\n' % out)
		gp.write('set multiplot title "salvo and rabbitmq-c publishing, one run of scripts/bench.sh: '
		         '%s, commit %s, %s CPUs; TCP loopback limit %.2f GB/s" font ",13"\n' % (
		             run["when"], run["commit"], run["machine"]["cpus"],
		             run["loopback"]["bytes_per_s"] / 1e9))
		gp.write("set style fill solid 0.85 border -1\nset boxwidth 0.38\nset grid ytics\n"
		         "set key top right\nset xtics nomirror scale 0 font ',9'\n"
		         "set bmargin 5\nset lmargin 11\n")
		for key, bottom in (("msgs_per_s", 0.48), ("cpu_us_per_msg", 0.0)):
		    for group, left, width in (("sink", 0.0, 0.72), ("rabbitmq", 0.72, 0.28)):
		        dat = "%s/%s_%s.dat" % (out, group, key)
		        with open(dat, "w") as f:
		            gp.write(panel(group, f, key))
		        gp.write("set origin %g,%g\nset size %g,0.46\n" % (left, bottom, width))
		        gp.write("set xrange [-0.6:%g]\n" % (len(scenarios(group)) - 0.4))
		        axis, scale = yaxis(group, key)
		        gp.write(axis)
		        where = ("Against salvo-sink (a mock broker in another process: the client's own cost)"
		                 if group == "sink" else "Against RabbitMQ (same machine)")
		        if key == "msgs_per_s":
		            gp.write('set title "%s:\\nmessages/s, higher is better"\n' % where)
		            gp.write('set ylabel "messages/s%s"\n' % scale)
		            gp.write("set format y '%.0s%c'\n")
		        else:
		            gp.write('set title "%s:\\nclient CPU per message, lower is better"\n' % where)
		            gp.write('set ylabel "client CPU, us/message%s"\n' % scale)
		            gp.write("set format y '%g'\n")
		        gp.write('plot "%s" using ($1-0.2):2 with boxes lc rgb "#1f77b4" title "salvo", \\\n'
		                 '     "" using ($1+0.2):3 with boxes lc rgb "#ff7f0e" title "rabbitmq-c", \\\n'
		                 '     "" using ($1-0.2):2:4 with labels offset 0,0.7 font ",9" notitle, \\\n'
		                 '     "" using ($1+0.2):3:5 with labels offset 0,0.7 font ",9" notitle\n' % dat)
		gp.write("unset multiplot\n")
	EOF
	if ((rc == 0)); then
		gnuplot "$dir/chart.gp" && mv "$dir/chart.png" "$2" || rc=$?
	fi
	rm -rf -- "$dir"
	return "$rc"
}

if [ "${1-}" = --plot-only ]; then
	plot_chart bench/results/latest.json bench/results/latest.png
	echo "wrote bench/results/latest.png" >&2
	exit 0
fi

# shellcheck source=scripts/bench_build.sh
. scripts/bench_build.sh

perf=$builddir/bench/perf/salvo-perf
sink=$builddir/bench/sink/salvo-sink
peer=$builddir/bench/peers/rabbitmq_c_publish
peer_consume=$builddir/bench/peers/rabbitmq_c_consume
probe=$builddir/bench/probe/tcp_loopback
waiters=$builddir/bench/probe/sync_waiters
for exe in "$perf" "$sink" "$peer" "$peer_consume" "$probe" "$waiters"; do
	[ -x "$exe" ] || { echo "bench.sh: $exe was not built" >&2; exit 1; }
done

export SALVO_TEST_PORT=${SALVO_BENCH_PORT:-5699}
tmp=$(mktemp -d)
sink_pid=""
rabbit_started=""
cleanup() {
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
	fi
	[ -n "$rabbit_started" ] && bash scripts/rabbitmq.sh stop >/dev/null 2>&1
	rm -rf -- "$tmp"
}
trap cleanup EXIT

# row GROUP LABEL COMMAND...: run it, keep the last stdout line (its JSON) with labels.
row() {
	local group=$1 label=$2
	shift 2
	printf '%-10s %-34s ' "$group" "$label" >&2
	if ! "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "FAILED: $*" >&2
		cat "$tmp/err" >&2
		exit 1
	fi
	tail -n 1 "$tmp/out" | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
j["group"], j["label"] = sys.argv[1], sys.argv[2]
print(json.dumps(j))
print("%12.0f msgs/s  %8.3f us/msg" % (j["msgs_per_s"], j["cpu_us_per_msg"]), file=sys.stderr)
' "$group" "$label" >>"$tmp/rows.jsonl"
}

echo "== loopback limit" >&2
"$probe" --seconds 3 --chunk 1048576 --json | tail -n 1 >"$tmp/probe.json"
cat "$tmp/probe.json" >&2
echo "== sync-confirm pattern limit (64 threads post and sleep, one waker)" >&2
"$waiters" --threads 64 --seconds 3 --json | tail -n 1 >"$tmp/waiters.json"
cat "$tmp/waiters.json" >&2

echo "== salvo-sink" >&2
"$sink" --listen 127.0.0.1:0 --port-file "$tmp/port" --quiet &
sink_pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
sink_uri=amqp://guest:guest@127.0.0.1:$(cat "$tmp/port")
sp() { "$perf" --uri "$sink_uri" --routing-key bench --quiet --json "$@"; }
pp() { "$peer" --uri "$sink_uri" --routing-key bench --json "$@"; }

row sink "salvo 100B none" sp --count "$(n 20000000)"
row sink "salvo 100B async w4096" sp --count "$(n 20000000)" --confirm async --window 4096
row sink "salvo 100B sync x1" sp --count "$(n 50000)" --confirm sync
row sink "salvo 100B sync x64" sp --count "$(n 640000)" --confirm sync --producers 64
row sink "salvo 4KiB none" sp --size 4096 --count "$(n 2000000)"
row sink "salvo 4KiB async w4096" sp --size 4096 --count "$(n 2000000)" --confirm async --window 4096
row sink "salvo 4KiB sync x1" sp --size 4096 --count "$(n 20000)" --confirm sync
row sink "salvo 4KiB sync x64" sp --size 4096 --count "$(n 256000)" --confirm sync --producers 64
row sink "rabbitmq-c 100B none" pp --count "$(n 1000000)"
row sink "rabbitmq-c 100B async w4096" pp --count "$(n 1000000)" --confirm async --window 4096
row sink "rabbitmq-c 100B sync x1" pp --count "$(n 20000)" --confirm sync
row sink "rabbitmq-c 100B sync x64" pp --count "$(n 64000)" --confirm sync --threads 64
row sink "rabbitmq-c 4KiB none" pp --size 4096 --count "$(n 200000)"
row sink "rabbitmq-c 4KiB async w4096" pp --size 4096 --count "$(n 200000)" --confirm async --window 4096
kill "$sink_pid"
wait "$sink_pid" 2>/dev/null || true
sink_pid=""

echo "== RabbitMQ" >&2
rabbit_uri=$(bash scripts/rabbitmq.sh start | tail -n 1)
rabbit_started=1
# A queue per row, deleted after it, so that no row pays for the backlog of another.
rq() {
	local q=$1
	shift
	"$@" --routing-key "$q" --declare-queue
	bash scripts/rabbitmq.sh ctl -q delete_queue "$q" >/dev/null
}
row rabbitmq "salvo 100B none" rq bench.salvo.none "$perf" --uri "$rabbit_uri" --quiet --json --count "$(n 200000)"
row rabbitmq "rabbitmq-c 100B none" rq bench.peer.none "$peer" --uri "$rabbit_uri" --json --count "$(n 200000)"
row rabbitmq "salvo 100B async w4096" rq bench.salvo.async "$perf" --uri "$rabbit_uri" --quiet --json --count "$(n 200000)" --confirm async --window 4096
row rabbitmq "rabbitmq-c 100B async w4096" rq bench.peer.async "$peer" --uri "$rabbit_uri" --json --count "$(n 200000)" --confirm async --window 4096

# consume_row LABEL QUEUE COMMAND...: fill QUEUE with the backlog (async confirms: all of
# it is queued when salvo-perf returns), run COMMAND to drain it, delete QUEUE, and keep
# the drain's figures: salvo-perf's consume rate and process CPU per message consumed,
# rabbitmq_c_consume's own (also process CPU), in one shape.
consume_row() {
	local label=$1 q=$2
	shift 2
	printf '%-10s %-34s ' rabbitmq "$label" >&2
	if ! "$perf" --uri "$rabbit_uri" --routing-key "$q" --declare-queue --quiet \
		--count "$(n 200000)" --confirm async >/dev/null 2>"$tmp/err" ||
		! "$@" >"$tmp/out" 2>>"$tmp/err"; then
		echo "FAILED: $*" >&2
		cat "$tmp/err" >&2
		exit 1
	fi
	bash scripts/rabbitmq.sh ctl -q delete_queue "$q" >/dev/null
	tail -n 1 "$tmp/out" | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
if "consumed_total" in j:  # salvo-perf
    n = j["consumed_total"]
    r = {"client": "salvo", "consumed": n, "seconds": j["consume_seconds"],
         "msgs_per_s": j["consume_msgs_per_s"], "cpu_seconds": j["cpu_seconds"],
         "cpu_us_per_msg": j["cpu_seconds"] * 1e6 / n if n else 0,
         "voluntary_ctx_switches": j["voluntary_ctx_switches"],
         "involuntary_ctx_switches": j["involuntary_ctx_switches"]}
else:
    r = {k: j[k] for k in ("client", "consumed", "seconds", "msgs_per_s", "cpu_seconds",
                           "cpu_us_per_msg", "voluntary_ctx_switches",
                           "involuntary_ctx_switches")}
r["label"], r["raw"] = sys.argv[1], j
print(json.dumps(r))
print("%12.0f msgs/s  %8.3f us/msg" % (r["msgs_per_s"], r["cpu_us_per_msg"]), file=sys.stderr)
' "$label" >>"$tmp/consume.jsonl"
}
consume_row "salvo 100B backlog p1000" bench.salvo.consume "$perf" --uri "$rabbit_uri" \
	--routing-key bench.salvo.consume --quiet --json --count 0 --consumers 1 --prefetch 1000 \
	--drain-timeout 2
consume_row "rabbitmq-c 100B backlog p1000" bench.peer.consume "$peer_consume" \
	--uri "$rabbit_uri" --queue bench.peer.consume --json --prefetch 1000 --drain-timeout 2
consume_row "salvo 100B backlog p1000 callback" bench.salvo.consume "$perf" --uri "$rabbit_uri" \
	--routing-key bench.salvo.consume --quiet --json --count 0 --consumers 1 --prefetch 1000 \
	--consume-callback --drain-timeout 2
consume_row "salvo 100B backlog p1000 4 threads" bench.salvo.consume "$perf" --uri "$rabbit_uri" \
	--routing-key bench.salvo.consume --quiet --json --count 0 --consumers 4 --prefetch 1000 \
	--drain-timeout 2
bash scripts/rabbitmq.sh stop >/dev/null
rabbit_started=""

mkdir -p bench/results
python3 - "$tmp/probe.json" "$tmp/rows.jsonl" bench/results/latest.json "$tmp/consume.jsonl" \
	"$tmp/waiters.json" <<'EOF'
import json, platform, subprocess, sys, time

probe = json.load(open(sys.argv[1]))
waiters = json.load(open(sys.argv[5]))
rows = [json.loads(l) for l in open(sys.argv[2])]
consume = [json.loads(l) for l in open(sys.argv[4])]
limit = probe["bytes_per_s"]
for r in rows:
    r["mbytes_per_s"] = r["msgs_per_s"] * r["size"] / 1e6
    r["pct_of_loopback"] = 100.0 * r["msgs_per_s"] * r["size"] / limit

print()
print("Loopback limit: %.2f GB/s (tcp_loopback, %d-byte writes)" % (limit / 1e9, probe["chunk"]))
print()
print("| target | client, body, mode | msgs/s | MB/s | % of loopback | client CPU us/msg |")
print("|---|---|---:|---:|---:|---:|")
for r in rows:
    print("| %s | %s | %s | %.1f | %.1f | %.3f |" % (
        r["group"], r["label"], format(round(r["msgs_per_s"]), ","), r["mbytes_per_s"],
        r["pct_of_loopback"], r["cpu_us_per_msg"]))

def get(group, label):
    return next(r for r in rows if r["group"] == group and r["label"] == label)

print()
print("Consuming a backlog of %d 100-byte messages from RabbitMQ, prefetch 1000, an ack each:"
      % consume[0]["consumed"])
print()
print("| client | msgs/s | seconds | client CPU us/msg | context switches per 1,000 msgs |")
print("|---|---:|---:|---:|---:|")
for r in consume:
    print("| %s | %s | %.3f | %.3f | %.1f |" % (
        r["label"], format(round(r["msgs_per_s"]), ","), r["seconds"], r["cpu_us_per_msg"],
        1000.0 * (r["voluntary_ctx_switches"] + r["involuntary_ctx_switches"]) / r["consumed"]))

def ratios(name, s, p):
    print("  %-42s %6.2fx msgs/s, %6.2fx client CPU us/msg" % (
        name, s["msgs_per_s"] / p["msgs_per_s"], s["cpu_us_per_msg"] / p["cpu_us_per_msg"]))

print()
print("salvo / rabbitmq-c against RabbitMQ:")
for mode in ("none", "async w4096"):
    ratios("publish 100B " + mode, get("rabbitmq", "salvo 100B " + mode),
           get("rabbitmq", "rabbitmq-c 100B " + mode))
peer_consume = next(r for r in consume if r["client"] != "salvo")
for r in consume:
    if r["client"] == "salvo":
        ratios(r["label"].replace("salvo 100B backlog p1000", "consume backlog, prefetch 1000"),
               r, peer_consume)
lat = get("rabbitmq", "salvo 100B async w4096")["latency_us"]
print("  salvo async w4096 confirm latency: p50 %s us, p99 %s us (the window's queue)"
      % (lat["p50"], lat["p99"]))

x64 = get("sink", "salvo 100B sync x64")["msgs_per_s"]
print()
print("Sync confirms, 64 threads: salvo -> sink %s msgs/s = %.1f%% of the pattern's limit here "
      "(bench/probe/sync_waiters: %s requests/s, %.1f per batch; the sink shares the cores)"
      % (format(round(x64), ","), 100.0 * x64 / waiters["requests_per_s"],
         format(round(waiters["requests_per_s"]), ","), waiters["per_batch"]))

s_none = get("sink", "salvo 100B none")
checks = [
    ("salvo -> sink, 1 producer, none >= 10M msgs/s", s_none["msgs_per_s"], 10e6),
    ("  and >= 5x rabbitmq-c none on the sink", s_none["msgs_per_s"] /
     get("sink", "rabbitmq-c 100B none")["msgs_per_s"], 5),
    ("salvo -> sink, async >= 5M msgs/s", get("sink", "salvo 100B async w4096")["msgs_per_s"], 5e6),
    ("salvo -> sink, 64 sync threads >= 300k msgs/s",
     get("sink", "salvo 100B sync x64")["msgs_per_s"], 300e3),
    ("  and >= 80% of the sync pattern's limit (probe)", 100.0 * x64 / waiters["requests_per_s"],
     80),
    ("  and >= 8x rabbitmq-c sync (64 threads)", get("sink", "salvo 100B sync x64")["msgs_per_s"] /
     get("sink", "rabbitmq-c 100B sync x64")["msgs_per_s"], 8),
    ("salvo -> RabbitMQ none >= 1.2x rabbitmq-c", get("rabbitmq", "salvo 100B none")["msgs_per_s"] /
     get("rabbitmq", "rabbitmq-c 100B none")["msgs_per_s"], 1.2),
    ("salvo sync x1 -> sink >= 1.5x rabbitmq-c sync x1",
     get("sink", "salvo 100B sync x1")["msgs_per_s"] /
     get("sink", "rabbitmq-c 100B sync x1")["msgs_per_s"], 1.5),
    ("salvo async -> RabbitMQ msgs/s >= rabbitmq-c's",
     get("rabbitmq", "salvo 100B async w4096")["msgs_per_s"] /
     get("rabbitmq", "rabbitmq-c 100B async w4096")["msgs_per_s"], 1.0),
    ("salvo consume msgs/s >= rabbitmq-c's", consume[0]["msgs_per_s"] /
     peer_consume["msgs_per_s"], 1.0),
]
# At most: client CPU per message.
ceilings = [
    ("salvo -> RabbitMQ none, client CPU us/msg", get("rabbitmq", "salvo 100B none")["cpu_us_per_msg"],
     0.5),
    ("salvo async -> RabbitMQ, client CPU us/msg",
     get("rabbitmq", "salvo 100B async w4096")["cpu_us_per_msg"], 0.3),
]
for r in consume:
    if r["client"] == "salvo":
        ceilings.append((r["label"].replace("salvo 100B backlog p1000", "consume") +
                         ", CPU us/msg", r["cpu_us_per_msg"], 1.0))
ceilings.append(("  consume CPU / rabbitmq-c's", consume[0]["cpu_us_per_msg"] /
                 peer_consume["cpu_us_per_msg"], 0.25))
print()
print("Speed targets:")
for name, have, want in checks:
    print("  %-48s %14.2f (want %s)  %s" % (name, have, format(want, ",g"),
                                             "met" if have >= want else "NOT MET"))
for name, have, want in ceilings:
    print("  %-48s %14.3f (want <= %g)  %s" % (name, have, want,
                                              "met" if have <= want else "NOT MET"))
print("  %-48s %14d KiB (ring 4 MiB)" % ("peak RSS, salvo 100B none run", s_none["max_rss_kb"]))

def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""

json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
           "machine": {"cpus": cmd(["nproc"]), "kernel": platform.release()},
           "loopback": probe, "rows": rows, "consume": consume, "sync_probe": waiters,
           "targets": [{"name": n.strip(), "value": h, "want": w, "met": h >= w}
                       for n, h, w in checks] +
                      [{"name": n.strip(), "value": h, "at_most": w, "met": h <= w}
                       for n, h, w in ceilings]},
          open(sys.argv[3], "w"), indent=1)
EOF

plot_chart bench/results/latest.json bench/results/latest.png
echo "wrote bench/results/latest.json and bench/results/latest.png" >&2

if [ "${SALVO_BENCH_MICRO:-1}" != 0 ]; then
	echo "== micro-benchmarks" >&2
	"$builddir/bench/micro/bench_codec" --benchmark_min_time=0.5
	"$builddir/bench/micro/bench_engine" --benchmark_min_time=0.5
fi
