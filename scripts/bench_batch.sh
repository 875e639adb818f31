#!/usr/bin/env bash
# The batching benchmark (issue 15): every figure from one run against one throwaway
# RabbitMQ (scripts/rabbitmq.sh, a port of its own), each run on a queue of its own that is
# deleted after it, so no run pays for another's backlog and the broker's memory stays
# bounded. Bodies are 100 B and confirms async unless said:
#   1. rabbitmq-c (bench/peers/rabbitmq_c_publish, windowed confirms, window 4096) against
#      salvo batched (--batch-records 1000), alternating, 3 times each: records/s, client
#      CPU us per record, the ratio;
#   2. salvo batched into one classic queue, nothing consuming: every record confirmed,
#      peak RSS;
#   3. the same with one salvo consumer taking every record end to end; then the record
#      latency (publish -> consume) at --rate 500000 with the consumer;
#   4. compression of telemetry-like bodies (--body json --size 200): none, lz4, zstd
#      alternating, 3 times each: the bytes the broker stores per record, and the rate;
#   5. records/s (unlimited publishing) and confirm latency (at --rate 100000) against
#      --linger-us 100, 1000, 10000 and --batch-records 10, 100, 1000.
# Prints each run as it ends, then Markdown tables and goal met / NOT MET lines (figures
# only: a goal not met does not fail the script; a failed run does, after printing why),
# and writes bench/results/batch.json and bench/results/batch.png (gnuplot). About three
# minutes on the project's 2-core machine.
#
# scripts/bench_batch.sh --plot-only: no benchmark; redraw bench/results/batch.png from
# bench/results/batch.json (needs python3 and gnuplot only).
#
# Environment: SALVO_BENCH_BUILD_DIR (default build-release), SALVO_BENCH_PORT (the
# RabbitMQ's AMQP port, default 5697), SALVO_BENCH_SCALE (multiplies every count; default
# 1; 0.1 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."

# plot_chart JSON PNG: the chart of a run (its batch.json), for the end of a run and for
# --plot-only.
plot_chart() {
	local tmp rc=0 version
	tmp=$(mktemp -d)
	version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["rabbitmq"].split("-")[0])' "$1")
	python3 - "$1" "$tmp" <<-'EOF' || rc=$?
		import json, statistics, sys
		run = json.load(open(sys.argv[1]))
		tmp = sys.argv[2]
		rows = run["rows"]
		group = lambda g: [r for r in rows if r["group"] == g]
		peers, salvos = group("1")[0::2], group("1")[1::2]
		ratios = [s["records_per_s"] / p["records_per_s"] for p, s in zip(peers, salvos)]
		cell = {}
		for r in group("5"):
		    cell[(r["batch_records"], r["linger_us"], "rate" if r["rate"] else "unlimited")] = r
		batches, lingers = (10, 100, 1000), (100, 1000, 10000)
		comp = run["compression"]
		with open(tmp + "/p1.dat", "w") as f:
		    for i, (p, s) in enumerate(zip(peers, salvos), 1):
		        f.write("%d %.0f %.0f %.3f %.3f\n" % (i, p["records_per_s"], s["records_per_s"],
		                                              p["cpu_us_per_msg"], s["cpu_us_per_msg"]))
		with open(tmp + "/p1.gp", "w") as f:
		    f.write("set xtics (%s)\n" % ", ".join('"run %d\\nsalvo %.0fx rabbitmq-c" %d' % (i, q, i)
		                                           for i, q in enumerate(ratios, 1)))
		with open(tmp + "/p5rate.dat", "w") as f:
		    for l in lingers:
		        for b in batches:
		            f.write("%d %.0f\n" % (b, cell[(b, l, "unlimited")]["records_per_s"]))
		        f.write("\n\n")
		with open(tmp + "/p5lat.dat", "w") as f:
		    for b in batches:
		        for l in lingers:
		            lat = cell[(b, l, "rate")]["latency_us"]
		            f.write("%d %.1f %.1f\n" % (l, lat["p50"] / 1e3, lat["p99"] / 1e3))
		        f.write("\n\n")
		with open(tmp + "/p4.dat", "w") as f:
		    for i, c in enumerate(("none", "lz4", "zstd")):
		        f.write('%d %s %.1f %.0f\n' % (i, c, comp[c]["envelope_bytes_per_record"],
		                                       comp[c]["records_per_s"]))
	EOF
	if ((rc == 0)); then
		gnuplot <<-EOF || rc=$?
		set terminal pngcairo size 1400,1000 font ",10" noenhanced
		set output "$tmp/chart.png"
		set multiplot layout 2,2 title "salvo batching against one RabbitMQ $version, one run of scripts/bench_batch.sh (2-core VM, other work running: noisy)" font ",12"
		set grid ytics
		set style fill solid 0.8
		set format y "%.0s%c"

		set title "1. Confirmed publishing, 100 B records: records/s and client CPU per record (log scale)"
		set logscale y
		set yrange [1000:1e8]
		set ylabel "records/s"
		set xrange [0.4:3.6]
		set boxwidth 0.36
		set key top left
		load "$tmp/p1.gp"
		plot "$tmp/p1.dat" using (\$1-0.19):2 with boxes lc rgb "#ff7f0e" title "rabbitmq-c 0.11, windowed confirms (4096)", \
		     "" using (\$1+0.19):3 with boxes lc rgb "#1f77b4" title "salvo, async confirms, --batch-records 1000", \
		     "" using (\$1-0.19):2:(sprintf("%.0fk/s\n%.2f us", \$2/1e3, \$4)) with labels offset 0,1.6 font ",9" notitle, \
		     "" using (\$1+0.19):3:(sprintf("%.2fM/s\n%.3f us", \$3/1e6, \$5)) with labels offset 0,1.6 font ",9" notitle

		set title "5. Records/s against batch size, unlimited publishing (log-log)"
		set logscale xy
		set xrange [7:1400]
		set yrange [1e5:1e7]
		set xtics (10, 100, 1000)
		set xlabel "--batch-records"
		set key bottom right
		plot "$tmp/p5rate.dat" index 0 using 1:2 with linespoints lw 2 pt 7 title "--linger-us 100", \
		     "" index 1 using 1:2 with linespoints lw 2 pt 5 title "--linger-us 1000", \
		     "" index 2 using 1:2 with linespoints lw 2 pt 9 title "--linger-us 10000", \
		     1e6 with lines dt 2 lc rgb "gray" title "1 M records/s (the goal)"

		set title "5. Confirm latency per record at --rate 100000 (log-log)"
		set xrange [70:14000]
		set yrange [0.1:*]
		set format y "%g"
		set xtics (100, 1000, 10000)
		set xlabel "--linger-us (microseconds)"
		set ylabel "confirm latency (ms)"
		set key bottom right maxrows 3 width -2
		plot "$tmp/p5lat.dat" index 0 using 1:2 with linespoints lw 2 pt 7 lc 1 title "batch 10, p50", \
		     "" index 1 using 1:2 with linespoints lw 2 pt 5 lc 2 title "batch 100, p50", \
		     "" index 2 using 1:2 with linespoints lw 2 pt 9 lc 3 title "batch 1000, p50", \
		     "" index 0 using 1:3 with linespoints lw 1 dt 2 pt 7 lc 1 title "batch 10, p99", \
		     "" index 1 using 1:3 with linespoints lw 1 dt 2 pt 5 lc 2 title "batch 100, p99", \
		     "" index 2 using 1:3 with linespoints lw 1 dt 2 pt 9 lc 3 title "batch 1000, p99"

		set title "4. Compression of 200 B JSON records, --batch-records 1000 (medians of 3 runs)"
		unset logscale
		set xrange [*:*]
		set yrange [*:*]
		stats "$tmp/p4.dat" using 3 name "B" nooutput
		stats "$tmp/p4.dat" using 4 name "R" nooutput
		unset xlabel
		set xrange [-0.6:2.6]
		set yrange [0:B_max*1.5]
		set y2range [0:R_max*1.5/1e6]
		set format y2 "%.1f"
		set xtics ("none" 0, "lz4" 1, "zstd" 2)
		set boxwidth 0.3
		set ylabel "bytes stored per record (envelope body / records)"
		set y2label "million records/s"
		set y2tics
		set key top right
		plot "$tmp/p4.dat" using (\$1-0.16):3 with boxes lc rgb "#2ca02c" title "bytes stored per record (left axis)", \
		     "" using (\$1-0.16):3:(sprintf("%.1f B", \$3)) with labels offset 0,0.8 notitle, \
		     "" using (\$1+0.16):(\$4/1e6) axes x1y2 with boxes lc rgb "#d62728" title "records/s (right axis)", \
		     "" using (\$1+0.16):(\$4/1e6):(sprintf("%.2fM/s", \$4/1e6)) axes x1y2 with labels offset 0,0.8 notitle
		unset multiplot
	EOF
	fi
	((rc == 0)) && mv "$tmp/chart.png" "$2" || rc=1
	rm -rf -- "$tmp"
	return "$rc"
}

if [ "${1-}" = --plot-only ]; then
	plot_chart bench/results/batch.json bench/results/batch.png
	echo "wrote bench/results/batch.png" >&2
	exit 0
fi

# shellcheck source=scripts/bench_build.sh
. scripts/bench_build.sh

perf=$builddir/bench/perf/salvo-perf
peer=$builddir/bench/peers/rabbitmq_c_publish
for exe in "$perf" "$peer"; do
	[ -x "$exe" ] || { echo "bench_batch.sh: $exe was not built" >&2; exit 1; }
done

export SALVO_TEST_PORT=${SALVO_BENCH_PORT:-5697}
tmp=$(mktemp -d)
rabbit_started=""
cleanup() {
	[ -n "$rabbit_started" ] && bash scripts/rabbitmq.sh stop >/dev/null 2>&1
	rm -rf -- "$tmp"
}
trap cleanup EXIT

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
uri=$(bash scripts/rabbitmq.sh start | tail -n 1)
rabbit_started=1

# run GROUP LABEL salvo|peer ARGS...: run salvo-perf or the peer with ARGS on a queue of
# its own (declared by the client, deleted after), and keep its JSON line with the labels
# and the command. A client that exits non-zero with a JSON line (salvo-perf: a record not
# acked or not consumed) is kept, for the goals to judge; without one the script stops.
runs=0
run() {
	local group=$1 label=$2 client=$3 q rc=0
	shift 3
	runs=$((runs + 1))
	q=bench.batch.$runs
	local cmd
	if [ "$client" = salvo ]; then
		cmd=("$perf" --uri "$uri" --routing-key "$q" --declare-queue --quiet --json "$@")
	else
		cmd=("$peer" --uri "$uri" --routing-key "$q" --declare-queue --json "$@")
	fi
	printf '%-5s %-34s ' "$group" "$label" >&2
	"${cmd[@]}" >"$tmp/out" 2>"$tmp/err" || rc=$?
	bash scripts/rabbitmq.sh ctl -q delete_queue "$q" >/dev/null
	if [ "$rc" -ne 0 ]; then
		echo "exit $rc: ${cmd[*]}" >&2
		tail -n 20 "$tmp/err" >&2
		tail -n 1 "$tmp/out" | grep -q '^{' || exit 1
	fi
	tail -n 1 "$tmp/out" | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
group, label, client, rc = sys.argv[1:5]
j.update(group=group, label=label, client=client, exit=int(rc),
         command=" ".join(sys.argv[5:]))
j.setdefault("records_per_s", j["msgs_per_s"])
print(json.dumps(j))
line = "%12.0f rec/s %7.3f us/rec" % (j["records_per_s"], j["cpu_us_per_msg"])
if j.get("latency_us") and j["latency_us"].get("p50") is not None:
    line += "  confirm p50/p99 %.2f/%.2f ms" % (j["latency_us"]["p50"] / 1e3,
                                                j["latency_us"]["p99"] / 1e3)
if j.get("consumers"):
    line += "  consumed %d of %d, e2e p50/p99 %.2f/%.2f ms" % (
        j["consumed"], j["sent"], j["e2e_latency_us"]["p50"] / 1e3,
        j["e2e_latency_us"]["p99"] / 1e3)
if j.get("envelope_bytes_per_record") is not None:
    line += "  %.1f B/rec" % j["envelope_bytes_per_record"]
print(line, file=sys.stderr)
' "$group" "$label" "$client" "$rc" "${cmd[@]}" >>"$tmp/rows.jsonl"
}

batched=(--confirm async --batch-records 1000)

echo "== 1. rabbitmq-c windowed confirms vs salvo batched, alternating" >&2
for i in 1 2 3; do
	run 1 "rabbitmq-c async w4096 #$i" peer --count "$(n 200000)" --confirm async --window 4096
	run 1 "salvo batch 1000 async #$i" salvo --count "$(n 5000000)" "${batched[@]}"
done

echo "== 2. one classic queue, every record confirmed" >&2
run 2 "salvo batch 1000 async" salvo --count "$(n 10000000)" "${batched[@]}"

echo "== 3. with one salvo consumer" >&2
run 3 "salvo batch 1000 async, 1 consumer" salvo --count "$(n 10000000)" "${batched[@]}" --consumers 1
run 3 "the same at --rate 500000" salvo --count "$(n 5000000)" "${batched[@]}" --consumers 1 --rate 500000

echo "== 4. compression, JSON bodies of 200 B, alternating" >&2
for i in 1 2 3; do
	for c in none lz4 zstd; do
		run 4 "json 200B $c #$i" salvo --count "$(n 2000000)" "${batched[@]}" --body json --size 200 \
			--compression "$c"
	done
done

echo "== 5. linger and batch size: unlimited, then at --rate 100000" >&2
for b in 10 100 1000; do
	case $b in
	10) count=$(n 1000000) ;;
	100) count=$(n 3000000) ;;
	*) count=$(n 5000000) ;;
	esac
	for l in 100 1000 10000; do
		run 5 "batch $b linger $l unlimited" salvo --count "$count" --confirm async \
			--batch-records "$b" --linger-us "$l"
		run 5 "batch $b linger $l rate 100k" salvo --count "$(n 300000)" --confirm async \
			--batch-records "$b" --linger-us "$l" --rate 100000
	done
done

bash scripts/rabbitmq.sh stop >/dev/null
rabbit_started=""
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p bench/results
python3 - "$tmp/rows.jsonl" bench/results/batch.json "$tmp" "$scale" "$load_start" "$load_end" <<'EOF'
import json, platform, statistics, subprocess, sys, time

rows = [json.loads(l) for l in open(sys.argv[1])]
out, tmp, scale, load_start, load_end = sys.argv[2:7]
med = statistics.median
group = lambda g: [r for r in rows if r["group"] == g]
fmt = lambda v: format(round(v), ",")
ms = lambda us: "%.2f" % (us / 1e3)

def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""

# A salvo run whose every record was confirmed (and, with consumers, consumed once).
def all_confirmed(r):
    return (r["exit"] == 0 and r["acked"] == r["sent"] and
            r["nacked"] + r["returned"] + r["failed"] == 0)

def all_consumed(r):
    return (all_confirmed(r) and r["consumed"] == r["sent"] and r["not_consumed"] == 0 and
            r["consumed_other"] == 0 and r["redelivered"] == 0 and
            r["duplicates_possible"] == 0 and r.get("sequence_gaps", 0) == 0 and
            r.get("sequence_repeats", 0) == 0)

goals = []
def line(name, have, rest):
    print("  %-64s %18s  %s" % (name, have, rest))

def goal(name, value, want, met, unit):
    goals.append({"name": name.strip(), "value": value, "want": want, "met": bool(met)})
    have = "%.1fx" % value if unit == "x" else format(round(value), ",") + " " + unit
    line(name, have, "(want >= %s%s)  %s" % (format(want, ","), "x" if unit == "x" else "",
                                            "met" if met else "NOT MET"))

print()
print("1. Confirmed publishing, 100 B records, RabbitMQ %s, alternating runs:" %
      cmd(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]))
print()
print("| run | client | records/s | client CPU us/record | salvo / rabbitmq-c |")
print("|---|---|---:|---:|---:|")
peers, salvos = group("1")[0::2], group("1")[1::2]
for i, (p, s) in enumerate(zip(peers, salvos), 1):
    print("| %d | rabbitmq-c, async confirms, window 4096 | %s | %.3f | |" %
          (i, fmt(p["records_per_s"]), p["cpu_us_per_msg"]))
    print("| %d | salvo, --batch-records 1000, async confirms | %s | %.3f | %.1fx |" %
          (i, fmt(s["records_per_s"]), s["cpu_us_per_msg"],
           s["records_per_s"] / p["records_per_s"]))
peer_med = med(p["records_per_s"] for p in peers)
salvo_med = med(s["records_per_s"] for s in salvos)

g2, = group("2")
g3, g3rate = group("3")
print()
print("2, 3. One classic queue, 100 B records, --batch-records 1000, async confirms:")
print()
print("| run | records | records/s | confirmed | consumed | confirm p50 / p99 ms | "
      "record latency p50 / p99 ms | client CPU us/record | peak RSS KiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r, name in ((g2, "no consumer"), (g3, "1 salvo consumer"),
                (g3rate, "1 salvo consumer, --rate 500000")):
    e2e = r["e2e_latency_us"]
    print("| %s | %s | %s | %s | %s | %s / %s | %s | %.3f | %s |" % (
        name, fmt(r["sent"]), fmt(r["records_per_s"]), fmt(r["acked"]),
        fmt(r["consumed"]) if r["consumers"] else "-",
        ms(r["latency_us"]["p50"]), ms(r["latency_us"]["p99"]),
        "%s / %s" % (ms(e2e["p50"]), ms(e2e["p99"])) if r["consumers"] else "-",
        r["cpu_us_per_msg"], fmt(r["max_rss_kb"])))

print()
print("4. Compression, --body json --size 200 (telemetry-like JSON), --batch-records 1000, "
      "async confirms, median of 3 alternating runs:")
print()
print("| compression | bytes stored per record | records per envelope | records/s | "
      "client CPU us/record |")
print("|---|---:|---:|---:|---:|")
comp = {}
for c in ("none", "lz4", "zstd"):
    rs = [r for r in group("4") if r["compression"] == c]
    comp[c] = {"envelope_bytes_per_record": med(r["envelope_bytes_per_record"] for r in rs),
               "records_per_envelope": med(r["records_per_envelope"] for r in rs),
               "records_per_s": med(r["records_per_s"] for r in rs),
               "cpu_us_per_msg": med(r["cpu_us_per_msg"] for r in rs),
               "all_confirmed": all(all_confirmed(r) for r in rs)}
    print("| %s | %.1f | %.1f | %s | %.3f |" % (
        c, comp[c]["envelope_bytes_per_record"], comp[c]["records_per_envelope"],
        fmt(comp[c]["records_per_s"]), comp[c]["cpu_us_per_msg"]))

cell = {}
for r in group("5"):
    cell[(r["batch_records"], r["linger_us"], "rate" if r["rate"] else "unlimited")] = r
batches, lingers = (10, 100, 1000), (100, 1000, 10000)
print()
print("5. Records/s (unlimited publishing) against --batch-records and --linger-us, 100 B, "
      "async confirms:")
print()
print("| --batch-records | " + " | ".join("linger %d us" % l for l in lingers) + " |")
print("|---:|" + "---:|" * len(lingers))
for b in batches:
    print("| %d | " % b + " | ".join(fmt(cell[(b, l, "unlimited")]["records_per_s"])
                                       for l in lingers) + " |")
print()
print("Confirm latency p50 / p99 (ms) at --rate 100000, the same grid:")
print()
print("| --batch-records | " + " | ".join("linger %d us" % l for l in lingers) + " |")
print("|---:|" + "---:|" * len(lingers))
for b in batches:
    print("| %d | " % b + " | ".join(
        "%s / %s" % (ms(cell[(b, l, "rate")]["latency_us"]["p50"]),
                     ms(cell[(b, l, "rate")]["latency_us"]["p99"])) for l in lingers) + " |")

salvo_rows = [r for r in rows if r["client"] == "salvo"]
print()
print("Goals (issue 15):")
ratios = [s["records_per_s"] / p["records_per_s"] for p, s in zip(peers, salvos)]
goal("1. salvo batched / rabbitmq-c confirmed, medians", salvo_med / peer_med, 15,
     salvo_med >= 15 * peer_med, "x")
goal("   the lowest of the 3 alternations", min(ratios), 15, min(ratios) >= 15, "x")
goal("2. into one classic queue, every record confirmed", g2["records_per_s"], 1000000,
     g2["records_per_s"] >= 1e6 and all_confirmed(g2), "records/s")
goal("3. with 1 consumer, every record confirmed and consumed once", g3["records_per_s"],
     1000000, g3["records_per_s"] >= 1e6 and all_consumed(g3), "records/s")
goal("   the consumer's rate in that run", g3["consume_msgs_per_s"], 1000000,
     g3["consume_msgs_per_s"] >= 1e6, "records/s")
goal("   at --rate 500000 with 1 consumer, all consumed (95% of it)", g3rate["records_per_s"],
     475000, g3rate["records_per_s"] >= 475e3 and all_consumed(g3rate), "records/s")
line("   record latency p50 / p99 there", "%s / %s ms" % (
    ms(g3rate["e2e_latency_us"]["p50"]), ms(g3rate["e2e_latency_us"]["p99"])), "(figure)")
for c in ("lz4", "zstd"):
    line("4. bytes stored per record, " + c, "%.1f B" % comp[c]["envelope_bytes_per_record"],
         "(figure; none: %.1f B) at %s records/s" % (comp["none"]["envelope_bytes_per_record"],
                                                      fmt(comp[c]["records_per_s"])))
rss = max(salvo_rows, key=lambda r: r["max_rss_kb"])
line("   peak RSS, the largest of every salvo run", fmt(rss["max_rss_kb"]) + " KiB",
     "(figure; " + rss["label"] + ")")
bad = [r["label"] for r in salvo_rows if not all_confirmed(r)]
line("every salvo run: every record confirmed", "yes" if not bad else "NO", ", ".join(bad))
print()
print("Machine load average (1, 5, 15 min) at the start: %s, at the end: %s" %
      (load_start, load_end))

json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
           "machine": {"cpus": cmd(["nproc"]), "kernel": platform.release(),
                       "loadavg_start": load_start, "loadavg_end": load_end},
           "rabbitmq": cmd(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]),
           "scale": float(scale), "rows": rows, "compression": comp, "goals": goals},
          open(out, "w"), indent=1)
EOF

plot_chart bench/results/batch.json bench/results/batch.png
echo "wrote bench/results/batch.json and bench/results/batch.png" >&2
