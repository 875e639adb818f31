#!/usr/bin/env bash
# One benchmark run, every figure from the same machine state:
#   1. the physical limit: raw TCP loopback bytes/s (bench/probe/tcp_loopback);
#   2. salvo -> salvo-sink, 100 B and 4 KiB bodies: best effort, async confirms (window
#      4096), sync confirms with 1 and 64 producer threads (bench/perf/salvo-perf);
#   3. the peer, rabbitmq-c (bench/peers/rabbitmq_c_publish), against the same sink:
#      best effort, windowed confirms, a confirm wait per message (1 and 64 threads);
#   4. salvo and the peer against a real RabbitMQ (scripts/rabbitmq.sh), none and async;
#   5. the micro-benchmarks (Google Benchmark), unless SALVO_BENCH_MICRO=0.
# Prints a table (msgs/s, MB/s of bodies, % of the loopback limit, client CPU us/msg),
# the speed targets met or not, and writes bench/results/latest.json and
# bench/results/latest.png (gnuplot).
#
# Environment: SALVO_BENCH_BUILD_DIR (default build-release), SALVO_BENCH_PORT (the
# RabbitMQ's AMQP port, default 5699), SALVO_BENCH_SCALE (multiplies every count;
# default 1; 0.1 for a quick look), SALVO_BENCH_MICRO (0 skips the micro-benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=scripts/bench_build.sh
. scripts/bench_build.sh

perf=$builddir/bench/perf/salvo-perf
sink=$builddir/bench/sink/salvo-sink
peer=$builddir/bench/peers/rabbitmq_c_publish
probe=$builddir/bench/probe/tcp_loopback
for exe in "$perf" "$sink" "$peer" "$probe"; do
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
bash scripts/rabbitmq.sh stop >/dev/null
rabbit_started=""

mkdir -p bench/results
python3 - "$tmp/probe.json" "$tmp/rows.jsonl" bench/results/latest.json "$builddir" <<'EOF'
import json, platform, subprocess, sys, time

probe = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2])]
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

s_none = get("sink", "salvo 100B none")
checks = [
    ("salvo -> sink, 1 producer, none >= 10M msgs/s", s_none["msgs_per_s"], 10e6),
    ("  and >= 5x rabbitmq-c none on the sink", s_none["msgs_per_s"] /
     get("sink", "rabbitmq-c 100B none")["msgs_per_s"], 5),
    ("salvo -> sink, async >= 5M msgs/s", get("sink", "salvo 100B async w4096")["msgs_per_s"], 5e6),
    ("salvo -> sink, 64 sync threads >= 300k msgs/s",
     get("sink", "salvo 100B sync x64")["msgs_per_s"], 300e3),
    ("  and >= 8x rabbitmq-c sync (64 threads)", get("sink", "salvo 100B sync x64")["msgs_per_s"] /
     get("sink", "rabbitmq-c 100B sync x64")["msgs_per_s"], 8),
    ("salvo -> RabbitMQ none >= 1.2x rabbitmq-c", get("rabbitmq", "salvo 100B none")["msgs_per_s"] /
     get("rabbitmq", "rabbitmq-c 100B none")["msgs_per_s"], 1.2),
]
print()
print("Speed targets:")
for name, have, want in checks:
    print("  %-48s %14.2f (want %s)  %s" % (name, have, format(want, ",g"),
                                             "met" if have >= want else "NOT MET"))
cpu = get("rabbitmq", "salvo 100B none")["cpu_us_per_msg"]
print("  %-48s %14.3f (want <= 0.5)  %s" % ("salvo -> RabbitMQ client CPU us/msg", cpu,
                                            "met" if cpu <= 0.5 else "NOT MET"))
print("  %-48s %14d KiB (ring 4 MiB)" % ("peak RSS, salvo 100B none run", s_none["max_rss_kb"]))

def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""

json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
           "machine": {"cpus": cmd(["nproc"]), "kernel": platform.release()},
           "loopback": probe, "rows": rows,
           "targets": [{"name": n.strip(), "value": h, "want": w, "met": h >= w}
                       for n, h, w in checks]},
          open(sys.argv[3], "w"), indent=1)
with open(sys.argv[3] + ".dat", "w") as f:
    for i, r in enumerate(rows):
        f.write('%d "%s: %s" %.0f %d\n' % (i, r["group"], r["label"], r["msgs_per_s"],
                                         1 if r["label"].startswith("salvo") else 2))
EOF

gnuplot <<EOF
set terminal pngcairo size 1400,700 font ",10"
set output "bench/results/latest.png"
set title "salvo: messages/s, one run of scripts/bench.sh (log scale; loopback limit $(python3 -c "import json;print('%.2f' % (json.load(open('$tmp/probe.json'))['bytes_per_s']/1e9))") GB/s)"
set style fill solid 0.8
set boxwidth 0.7
set logscale y
set yrange [1000:*]
set ylabel "messages/s"
set xtics rotate by -40 left
set grid ytics
set bmargin 12
set rmargin 18
set key top right
plot "bench/results/latest.json.dat" using 1:(\$4 == 1 ? \$3 : 1/0):xtic(2) with boxes lc rgb "#1f77b4" title "salvo", \
     "" using 1:(\$4 == 2 ? \$3 : 1/0) with boxes lc rgb "#ff7f0e" title "rabbitmq-c"
EOF
rm -f bench/results/latest.json.dat
echo "wrote bench/results/latest.json and bench/results/latest.png" >&2

if [ "${SALVO_BENCH_MICRO:-1}" != 0 ]; then
	echo "== micro-benchmarks" >&2
	"$builddir/bench/micro/bench_codec" --benchmark_min_time=0.5
	"$builddir/bench/micro/bench_engine" --benchmark_min_time=0.5
fi
