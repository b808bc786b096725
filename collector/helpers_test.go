package collector

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// sample is one series of a scrape.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// gather runs one scrape of cs through a pedantic registry, which checks
// every series against Describe.
func gather(t *testing.T, cs ...prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// collect runs one scrape of c through a pedantic registry (which checks
// every series against Describe) and returns its gauges.
func collect(t *testing.T, c prometheus.Collector) []sample {
	t.Helper()
	mfs := gather(t, c)
	var out []sample
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := sample{name: mf.GetName(), labels: map[string]string{}, value: m.GetGauge().GetValue()}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}

// byCollector returns the values of name from samples, keyed by their
// collector label ("" when they have none).
func byCollector(samples []sample, name string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		if s.name == name {
			out[s.labels["collector"]] = s.value
		}
	}
	return out
}

// newFakeClock is a clock that moves only when told.
func newFakeClock() *fakeclock.Clock { return fakeclock.New(time.Unix(1_750_000_000, 0)) }

// summarizeKeys is the summary of keys listed in one page.
func summarizeKeys(keys []kmsapi.Key, allowed []string, maxTags int) *keySummary {
	t := newKeyTally(allowed)
	t.add(keys)
	return t.summary(maxTags)
}
