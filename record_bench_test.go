//go:build unix

package main

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/kms-exporter/kms_exporter/bench"
	"github.com/kms-exporter/kms_exporter/collector"
)

// recordBenchKeys is the size of the target the recording benchmarks scrape.
const recordBenchKeys = 2500

// replaySetup is an exporter setup over one target of recordBenchKeys keys
// whose answers are replayed from memory, so that a benchmark measures the
// exporter's own work.
func replaySetup(b *testing.B) func(collector.Options) *collector.Exporter {
	sc := bench.Scenario(1, recordBenchKeys, 1)
	s := bench.Setup{RequestsPerSecond: 1e6}
	rp, err := bench.Record(sc, s)
	if err != nil {
		b.Fatal(err)
	}
	s.URL, s.HTTPClient = bench.ReplayURL, &http.Client{Transport: rp}
	return func(o collector.Options) *collector.Exporter {
		s := s
		s.Options = o
		e, err := s.Exporter(sc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bench.Scrape(context.Background(), e); err != nil { // fills the regions cache
			b.Fatal(err)
		}
		return e
	}
}

// BenchmarkRecordScrape is one scrape of a 2,500-key target without
// Options.Record, with one that does nothing (the cost of copying the
// metrics out), and with the landing page's recordScrape.
func BenchmarkRecordScrape(b *testing.B) {
	exporter := replaySetup(b)
	for _, mode := range []string{"without-record", "noop-record", "with-record"} {
		b.Run(mode, func(b *testing.B) {
			a := &app{s: &settings{historyLimit: 100}, logger: log.NewNopLogger(), history: newHistory(100)}
			var o collector.Options
			switch mode {
			case "noop-record":
				o.Record = func(context.Context, collector.Result) {}
			case "with-record":
				o.Record = a.recordScrape
			}
			e := exporter(o)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				mfs, err := bench.Scrape(context.Background(), e)
				if err != nil {
					b.Fatal(err)
				}
				if err := bench.Check(mfs, 1, recordBenchKeys); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// BenchmarkRecordView is what a record costs when a page first shows it:
// its metrics gathered and summarised.
func BenchmarkRecordView(b *testing.B) {
	exporter := replaySetup(b)
	var res collector.Result
	e := exporter(collector.Options{Record: func(_ context.Context, r collector.Result) { res = r }})
	if _, err := bench.Scrape(context.Background(), e); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := &scrapeRecord{metrics: res.Metrics}
		if rec.summary().up != 1 {
			b.Fatal("kms_up is not 1")
		}
	}
}

// cpuTime is the process's user and system CPU time so far: all
// goroutines and the GC, where ns/op is wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
