// Command summary reads the output of the bench package's benchmarks (go
// test -bench, any -count) and prints, as a Markdown table, every figure of
// BENCHMARKS.md next to its goal, taking the median over repeated runs.
//
//	go run ./bench/summary bench/out/*.txt
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// results maps a benchmark name (without the -GOMAXPROCS suffix) and a unit
// to the values of every run.
type results map[string]map[string][]float64

var procSuffix = regexp.MustCompile(`-\d+$`)

func (r results) parse(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(fields[0], "")
		if r[name] == nil {
			r[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			r[name][fields[i+1]] = append(r[name][fields[i+1]], v)
		}
	}
	return s.Err()
}

// get is the median of a figure, and whether it was measured.
func (r results) get(name, unit string) (float64, bool) {
	vs := append([]float64(nil), r[name][unit]...)
	if len(vs) == 0 {
		return 0, false
	}
	sort.Float64s(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

type row struct {
	figure, name, unit string
	scale              float64 // multiply the value by this for display
	format             string
	goal               string
	pass               func(v float64) bool // nil: for reference, no goal
}

func main() {
	r := results{}
	for _, p := range os.Args[1:] {
		if err := r.parse(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	var rows []row
	add := func(x row) {
		if x.scale == 0 {
			x.scale = 1
		}
		if x.format == "" {
			x.format = "%.2f"
		}
		rows = append(rows, x)
	}
	collectRows(add)
	scrapeRows(r, add)
	scaleRows(add)
	printTable(r, rows)
}

func atMost(limit float64) func(float64) bool { return func(v float64) bool { return v <= limit } }

var sizes = []string{"1000", "10000", "50000"}

// collectRows adds the figures of the collector, decoding and encoding
// benchmarks.
func collectRows(add func(row)) {
	for _, k := range sizes {
		x := row{figure: "CPU per 1k keys, exporter, " + k + " keys", name: "BenchmarkCollect/exporter/keys=" + k, unit: "cpu-ms/1k-keys", format: "%.2f ms", goal: "reference"}
		if k != "1000" { // a small target's cost is mostly per scrape, not per key
			x.goal, x.pass = "<= 4 ms", atMost(4)
		}
		add(x)
	}
	for _, k := range sizes {
		add(row{figure: "Allocated per 1k keys, exporter, " + k + " keys", name: "BenchmarkCollect/exporter/keys=" + k, unit: "MiB/1k-keys", format: "%.2f MiB", goal: "<= 1.5 MiB", pass: atMost(1.5)})
	}
	for _, k := range sizes {
		add(row{figure: "CPU per scrape, exporter, " + k + " keys", name: "BenchmarkCollect/exporter/keys=" + k, unit: "cpu-ms/op", format: "%.1f ms", goal: "linear in keys"})
		add(row{figure: "Wall time per scrape, exporter, " + k + " keys", name: "BenchmarkCollect/exporter/keys=" + k, unit: "ns/op", scale: 1e-6, format: "%.1f ms", goal: "linear in keys"})
		add(row{figure: "Allocs per scrape, exporter, " + k + " keys", name: "BenchmarkCollect/exporter/keys=" + k, unit: "allocs/op", format: "%.0f", goal: "linear in keys"})
	}
	for _, k := range sizes {
		add(row{figure: "CPU per 1k keys, with fake, " + k + " keys", name: "BenchmarkCollect/with-fake/keys=" + k, unit: "cpu-ms/1k-keys", format: "%.2f ms", goal: "reference"})
		add(row{figure: "Allocated per 1k keys, with fake, " + k + " keys", name: "BenchmarkCollect/with-fake/keys=" + k, unit: "MiB/1k-keys", format: "%.2f MiB", goal: "reference"})
	}
	for _, n := range []string{"1", "10", "50"} {
		add(row{figure: "CPU per scrape, exporter, " + n + " targets x 1k keys", name: "BenchmarkCollectTargets/exporter/targets=" + n, unit: "cpu-ms/op", format: "%.1f ms", goal: "linear in targets"})
		add(row{figure: "Allocated per scrape, exporter, " + n + " targets x 1k keys", name: "BenchmarkCollectTargets/exporter/targets=" + n, unit: "B/op", scale: 1.0 / (1 << 20), format: "%.1f MiB", goal: "linear in targets"})
	}
	for _, d := range []struct{ figure, name string }{
		{"synthetic", "BenchmarkDecodeKeyPage1000"}, {"realistic", "BenchmarkDecodeRealisticKeyPage1000"},
	} {
		add(row{figure: "Decode one " + d.figure + " 1000-key page (kmsapi)", name: d.name, unit: "ns/op", scale: 1e-6, format: "%.2f ms", goal: "reference"})
		add(row{figure: "Decode one " + d.figure + " 1000-key page, allocated", name: d.name, unit: "B/op", scale: 1.0 / 1000, format: "%.0f KB", goal: "reference"})
	}
	for _, f := range []string{"text", "openmetrics", "protobuf"} {
		add(row{figure: "Encode exposition of a 50k-key target, " + f, name: "BenchmarkEncode/" + f + "/keys=50000", unit: "ns/op", scale: 1e-6, format: "%.2f ms", goal: "reference"})
	}
	add(row{figure: "Series of a 50k-key target", name: "BenchmarkEncode/text/keys=50000", unit: "series", format: "%.0f", goal: "reference"})
	for _, k := range sizes {
		x := row{figure: "Peak heap of one scrape, " + k + " keys", name: "BenchmarkPeakHeap/keys=" + k, unit: "peak-heap-MiB", format: "%.1f MiB", goal: "linear in keys"}
		if k == "50000" {
			x.goal, x.pass = "< 64 MiB", func(v float64) bool { return v < 64 }
		}
		add(x)
	}
}

// scrapeRows adds the figures of whole scrapes against the fake, and of the
// exporter's resident memory.
func scrapeRows(r results, add func(row)) {
	for _, c := range []string{"a_1x10000keys", "b_20x1000keys_4creds", "c_20x1000keys_4creds_rps5"} {
		name := "BenchmarkScrapeLatency/" + c
		add(row{figure: "Scrape " + c + ": median", name: name, unit: "median-ms", format: "%.0f ms", goal: "reference"})
		add(row{figure: "Scrape " + c + ": p95", name: name, unit: "p95-ms", format: "%.0f ms", goal: "reference"})
		add(row{figure: "Scrape " + c + ": minimal client, median", name: name, unit: "minimal-median-ms", format: "%.0f ms", goal: "reference"})
		add(row{figure: "Scrape " + c + ": median / minimal client", name: name, unit: "ratio-to-minimal", format: "%.3f", goal: "<= 1.1", pass: atMost(1.1)})
		add(row{figure: "Scrape " + c + ": lower bound", name: name, unit: "bound-ms", format: "%.0f ms", goal: "reference"})
		add(row{figure: "Scrape " + c + ": median / bound", name: name, unit: "ratio", format: "%.3f", goal: "reference"})
		minCalls, ok := r.get(name, "min-calls/scrape")
		calls := row{figure: "Scrape " + c + ": API calls per scrape", name: name, unit: "calls/scrape", format: "%.1f", goal: "= minimum"}
		if ok {
			calls.goal = fmt.Sprintf("= %.0f", minCalls)
			calls.pass = func(v float64) bool { return v == minCalls }
		}
		add(calls)
		add(row{figure: "Scrape " + c + ": API calls, hourly regions refresh", name: name, unit: "calls/refresh-scrape", format: "%.0f", goal: "minimum + 2 per target"})
	}
	add(row{figure: "Exporter RSS, 20 targets, ready", name: "BenchmarkIdleRSS", unit: "rss-start-MiB", format: "%.1f MiB", goal: "reference"})
	add(row{figure: "Exporter RSS, 20 targets, idle after a scrape", name: "BenchmarkIdleRSS", unit: "rss-idle-MiB", format: "%.1f MiB", goal: "reference"})
}

// printTable prints rows with their medians from r and a verdict for those
// with a goal, then how many goals were missed.
func printTable(r results, rows []row) {
	fmt.Println("| figure | value | goal | |")
	fmt.Println("|---|---|---|---|")
	missed := 0
	for _, x := range rows {
		v, ok := r.get(x.name, x.unit)
		val, verdict := "not measured", ""
		if ok {
			val = fmt.Sprintf(x.format, v*x.scale)
			if x.pass != nil {
				verdict = "pass"
				if !x.pass(v * x.scale) {
					verdict = "**miss**"
					missed++
				}
			}
		} else if x.pass != nil {
			verdict = "**miss**"
			missed++
		}
		fmt.Printf("| %s | %s | %s | %s |\n", x.figure, val, x.goal, verdict)
	}
	fmt.Printf("\n%d goal(s) missed.\n", missed)
}
