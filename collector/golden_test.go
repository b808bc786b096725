package collector

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the expected expositions in testdata/ from the current code")

// checkGolden scrapes c once and compares the metrics named (all when none)
// with testdata/NAME.prom; with -update it writes that file instead. The
// scrape also goes through the linter.
func checkGolden(t *testing.T, c prometheus.Collector, name string, metrics ...string) {
	t.Helper()
	mfs := gather(t, c)
	path := filepath.Join("testdata", name+".prom")
	if *update {
		writeGolden(t, path, mfs, metrics)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	once := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })
	if err := testutil.GatherAndCompare(once, bytes.NewReader(want), metrics...); err != nil {
		t.Errorf("%s (go test -update rewrites it): %v", path, err)
	}
	if problems, err := testutil.GatherAndLint(once); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

func writeGolden(t *testing.T, path string, mfs []*dto.MetricFamily, metrics []string) {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if len(metrics) > 0 && !slices.Contains(metrics, mf.GetName()) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cancelAfter passes c's metrics on and calls cancel once n series of the
// metric named name have gone by: a scrape deadline that falls at a known
// point of the scrape, whatever the machine's speed.
func cancelAfter(c prometheus.Collector, name string, n int, cancel func()) prometheus.Collector {
	return &cancelling{Collector: c, name: `"` + name + `"`, n: int32(n), cancel: cancel}
}

type cancelling struct {
	prometheus.Collector
	name   string
	n      int32
	seen   atomic.Int32
	cancel func()
}

func (c *cancelling) Collect(ch chan<- prometheus.Metric) {
	pass := make(chan prometheus.Metric)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range pass {
			ch <- m
			// Desc has no name accessor; its String names it.
			if strings.Contains(m.Desc().String(), "fqName: "+c.name) && c.seen.Add(1) == c.n {
				c.cancel()
			}
		}
	}()
	c.Collector.Collect(pass)
	close(pass)
	<-done
}
