#!/bin/sh
# make bench: every figure of BENCHMARKS.md, raw outputs in bench/out/,
# a summary table (figures next to goals) in bench/out/summary.md.
# Needs only Go. Takes about 6 minutes on 2 cores.
#   BENCH_COUNT=n      repeat the CPU and memory benchmarks n times (default 3; medians are shown)
#   BENCH_PROFILE=1    also write CPU and memory profiles of a 50,000-key scrape
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=bench/out
count=${BENCH_COUNT:-3}
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/summary.md
start=$(date +%s)

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "go: $($GO version)"
	echo "kernel: $(uname -srm)"
	echo "nproc: $(nproc)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory: $(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt"

echo "== building the benchmark binary"
$GO test -c -o "$out/bench.test" ./bench
bt=$(pwd)/$out/bench.test

echo "== CPU and allocations per scrape, exposition encoding, peak heap (count $count)"
(cd bench && "$bt" -test.run '^$' -test.bench '^Benchmark(Collect|CollectTargets|Encode|PeakHeap)$' \
	-test.benchmem -test.count "$count" -test.benchtime 1s) | tee "$out/cpu.txt"

echo "== decoding one 1000-key page, synthetic and realistic (kmsapi)"
$GO test -run '^$' -bench '^BenchmarkDecode(Realistic)?KeyPage1000$' -benchmem -count "$count" ./kmsapi/ | tee "$out/decode.txt" ||
	echo "kmsapi benchmark failed; its figures are left out" >&2

echo "== scrape latency against the fake with 50 ms per request, and a minimal client's"
(cd bench && "$bt" -test.run '^$' -test.bench '^BenchmarkScrapeLatency$' -test.benchtime 1x -test.v) |
	grep -v '^=== ' | tee "$out/latency.txt"

echo "== resident memory of the exporter, 20 targets"
(cd bench && "$bt" -test.run '^$' -test.bench '^BenchmarkIdleRSS$' -test.benchtime 1x -test.v) |
	grep -v '^=== ' | tee "$out/rss.txt"

echo "== scaling: 200 projects of 2,500 keys behind one credential at 50/s; 20 credentials x 10 projects at 5/s each"
# Each case in its own process, so that its peak RSS is its own.
for c in a_200projects_1cred b_20creds_x_10projects; do
	(cd bench && "$bt" -test.run '^$' -test.bench "^BenchmarkScale\$/^$c\$" -test.benchtime 1x -test.v) | grep -v '^=== '
done | tee "$out/scale.txt"

echo "== one discovery refresh of 1,000 projects (count $count)"
(cd bench && "$bt" -test.run '^$' -test.bench '^BenchmarkDiscoveryRefresh$' -test.benchmem -test.count "$count") |
	tee "$out/discovery.txt"

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	echo "== profiles of a 50,000-key scrape"
	(cd bench && "$bt" -test.run '^$' -test.bench '^BenchmarkCollect$/exporter/keys=50000' -test.benchtime 10x \
		-test.cpuprofile ../$out/cpu.prof -test.memprofile ../$out/mem.prof >/dev/null)
	$GO tool pprof -top -nodecount 40 "$bt" "$out/cpu.prof" >"$out/cpu-top.txt" 2>/dev/null
	$GO tool pprof -sample_index alloc_space -top -nodecount 40 "$bt" "$out/mem.prof" >"$out/mem-top.txt" 2>/dev/null
	echo "wrote $out/cpu-top.txt $out/mem-top.txt"
fi

$GO run ./bench/summary "$out"/cpu.txt "$out"/decode.txt "$out"/latency.txt "$out"/rss.txt "$out"/scale.txt "$out"/discovery.txt >"$out/summary.md"
echo
cat "$out/summary.md"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
echo "make bench took $(( $(date +%s) - start )) s; raw outputs in $out/"
