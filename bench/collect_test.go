package bench

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// keySizes are the target sizes every per-key figure is shown for.
var keySizes = []int{1000, 10000, 50000}

// unlimited lifts the client-side rate limit, which would otherwise make
// the CPU benchmarks measure the limiter's waits.
const unlimited = 1e6

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// scrapeLoop runs b.N scrapes of e, which holds one target of keys keys,
// and reports per scrape and per 1,000 keys the process's CPU time
// (cpu-ms/op: all goroutines, GC included, unlike ns/op, which is wall
// time) and the bytes allocated.
func scrapeLoop(b *testing.B, e *collector.Exporter, targets, keys int) {
	ctx := context.Background()
	mfs, err := Scrape(ctx, e) // fills the regions cache; regions are fetched once an hour
	if err != nil {
		b.Fatal(err)
	}
	if err := Check(mfs, targets, keys); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	runtime.GC()
	b.ResetTimer()
	cpu0, alloc0 := cpuTime(b), totalAlloc()
	for i := 0; i < b.N; i++ {
		mfs, err := Scrape(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		if err := Check(mfs, targets, -1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := float64(cpuTime(b)-cpu0) / float64(b.N)
	alloc := float64(totalAlloc()-alloc0) / float64(b.N)
	perK := float64(targets*keys) / 1000
	b.ReportMetric(cpu/1e6, "cpu-ms/op")
	b.ReportMetric(cpu/1e6/perK, "cpu-ms/1k-keys")
	b.ReportMetric(alloc/(1<<20)/perK, "MiB/1k-keys")
}

// replayExporter records one scrape of targets projects of keys keys from the
// fake and returns an exporter that replays it.
func replayExporter(b *testing.B, targets, keys int) *collector.Exporter {
	sc := Scenario(targets, keys, 1)
	s := Setup{RequestsPerSecond: unlimited}
	rp, err := Record(sc, s)
	if err != nil {
		b.Fatal(err)
	}
	s.URL = ReplayURL
	s.HTTPClient = &http.Client{Transport: rp}
	e, err := s.Exporter(sc)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkCollect is one full scrape of one target, regions cached as
// between hourly refreshes: exporter is the exporter's own cost (answers
// replayed from memory), with-fake the end-to-end cost including the
// in-process fake serving the answers over loopback HTTP.
func BenchmarkCollect(b *testing.B) {
	for _, keys := range keySizes {
		b.Run("exporter/keys="+strconv.Itoa(keys), func(b *testing.B) {
			scrapeLoop(b, replayExporter(b, 1, keys), 1, keys)
		})
	}
	for _, keys := range keySizes {
		b.Run("with-fake/keys="+strconv.Itoa(keys), func(b *testing.B) {
			sc := Scenario(1, keys, 1)
			srv := kmsfake.Start(sc)
			defer srv.Close()
			e, err := Setup{URL: srv.URL(), RequestsPerSecond: unlimited}.Exporter(sc)
			if err != nil {
				b.Fatal(err)
			}
			scrapeLoop(b, e, 1, keys)
		})
	}
}

// BenchmarkCollectTargets is the exporter's cost of one scrape of 1, 10 and
// 50 targets of 1,000 keys: linear growth in targets.
func BenchmarkCollectTargets(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run("exporter/targets="+strconv.Itoa(n), func(b *testing.B) {
			scrapeLoop(b, replayExporter(b, n, 1000), n, 1000)
		})
	}
}

// BenchmarkEncode is encoding the exposition of one large target (the
// gathered metric families of a 50,000-key target: the tag series at the
// default cap of 500, one deletion series per key pending deletion) in the
// formats Prometheus negotiates.
func BenchmarkEncode(b *testing.B) {
	const keys = 50000
	e := replayExporter(b, 1, keys)
	mfs, err := Scrape(context.Background(), e)
	if err != nil {
		b.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	for _, f := range []struct {
		name string
		fmt  expfmt.Format
	}{
		{"text", expfmt.NewFormat(expfmt.TypeTextPlain)},
		{"openmetrics", expfmt.NewFormat(expfmt.TypeOpenMetrics)},
		{"protobuf", expfmt.NewFormat(expfmt.TypeProtoDelim)},
	} {
		b.Run(f.name+"/keys="+strconv.Itoa(keys), func(b *testing.B) {
			cw := &countWriter{}
			enc := expfmt.NewEncoder(cw, f.fmt)
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					b.Fatal(err)
				}
			}
			size := cw.n
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				enc := expfmt.NewEncoder(io.Discard, f.fmt)
				for _, mf := range mfs {
					if err := enc.Encode(mf); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(series), "series")
		})
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// heapObjects reads the bytes of heap objects, live or not yet swept, without
// stopping the world.
func heapObjects(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkPeakHeap measures how far one scrape of a target raises the
// heap: before the scrape the heap is collected and its size taken as the
// baseline (it holds the recorded answers, which are the replay transport's,
// not the exporter's); during the scrape a goroutine samples the bytes of
// heap objects (live and not yet collected garbage, what the process must
// hold) every 200µs; peak-heap-MiB is the highest sample minus the baseline.
// It depends on GOGC (default 100) as the exporter's heap does.
func BenchmarkPeakHeap(b *testing.B) {
	for _, keys := range keySizes {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			e := replayExporter(b, 1, keys)
			ctx := context.Background()
			if _, err := Scrape(ctx, e); err != nil { // regions cache, connection setup
				b.Fatal(err)
			}
			b.ResetTimer()
			var peak, sum float64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				runtime.GC()
				s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				base := heapObjects(s)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var high uint64
				wg.Go(func() {
					s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
					t := time.NewTicker(200 * time.Microsecond)
					defer t.Stop()
					for {
						high = max(high, heapObjects(s))
						select {
						case <-stop:
							return
						case <-t.C:
						}
					}
				})
				mfs, err := Scrape(ctx, e)
				if err != nil {
					b.Fatal(err)
				}
				last := heapObjects(s)
				close(stop)
				wg.Wait()
				high = max(high, last)
				if err := Check(mfs, 1, keys); err != nil {
					b.Fatal(err)
				}
				d := float64(high-min(base, high)) / (1 << 20)
				peak = max(peak, d)
				sum += d
			}
			b.ReportMetric(peak, "peak-heap-MiB")
			b.ReportMetric(sum/float64(b.N), "mean-peak-heap-MiB")
		})
	}
}
