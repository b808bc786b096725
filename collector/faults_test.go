package collector

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// gauges gathers reg (one scrape) and returns the value of every sample of name, keyed
// by its collector label ("" when it has none).
func gauges(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			c := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "collector" {
					c = l.GetValue()
				}
			}
			out[c] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestFaultsLeaveNothingRunning scrapes through faults that outlast the
// scrape's deadline or fail at once, on every endpoint, the IAM project
// lookup included: every collector reports failure, the target is down,
// the next scrape after the fault works, and once the fake is gone no
// goroutine of the exporter is left (fetches in flight are cancelled when
// their last scrape gives up).
func TestFaultsLeaveNothingRunning(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	for _, tc := range []struct {
		name    string
		fault   kmsfake.Fault
		lookup  bool // no project ID: looked up in IAM first
		recover bool // the next scrape without the fault succeeds
	}{
		{"hang", kmsfake.Fault{Hang: true}, false, true},
		{"slower than the deadline", kmsfake.Fault{Latency: 10 * time.Second}, false, true},
		{"500", kmsfake.Fault{Status: 500}, false, true},
		{"throttled", kmsfake.Fault{ThrottleRate: 1}, false, true},
		{"huge body", kmsfake.Fault{HugeBody: 64 << 20}, false, true},
		{"401", kmsfake.Fault{Status: 401}, false, false}, // the credential rests after it
		{"hang in the project lookup", kmsfake.Fault{Hang: true}, true, true},
		{"500 in the project lookup", kmsfake.Fault{Status: 500}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tg := f.target(f.aksk(t))
			if tc.lookup {
				tg.ProjectID = ""
			}
			e := f.exporter(t, []Target{tg}, Options{})
			f.fake.SetFault("", tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			reg := prometheus.NewRegistry()
			reg.MustRegister(e.Collector(ctx))
			began := time.Now()
			success := gauges(t, reg, "kms_scrape_collector_success")
			up := gauges(t, reg, "kms_up")
			cancel()
			// Two gathers, each bounded by the 500ms deadline.
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("scrapes took %v with a 500ms deadline", took)
			}
			if len(success) != len(All) {
				t.Errorf("collector success for %d collectors, want %d", len(success), len(All))
			}
			for c, v := range success {
				if v != 0 {
					t.Errorf("collector %s succeeded through the fault", c)
				}
			}
			if up[""] != 0 {
				t.Errorf("kms_up = %v, want 0", up[""])
			}
			if tc.recover {
				f.fake.ClearFaults()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				reg := prometheus.NewRegistry()
				reg.MustRegister(e.Collector(ctx))
				if up := gauges(t, reg, "kms_up"); up[""] != 1 {
					t.Errorf("kms_up = %v after the fault cleared\n%s", up[""], f.logs)
				}
				cancel()
			}
		})
	}
	goleak.VerifyNone(t, ignore)
}
