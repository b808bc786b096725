package collector

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

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
			// The deadline ends the hanging and slow faults; the others fail
			// before it or by it, with the same outcome either way.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			samples := collect(t, e.Collector(ctx))
			cancel()
			success, up := byCollector(samples, "kms_scrape_collector_success"), byCollector(samples, "kms_up")
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
				// No deadline: a recovery that never comes fails the test
				// by its timeout, not by how fast the machine is.
				if up := byCollector(collect(t, e.Collector(context.Background())), "kms_up"); up[""] != 1 {
					t.Errorf("kms_up = %v after the fault cleared\n%s", up[""], f.logs)
				}
			}
		})
	}
	goleak.VerifyNone(t, ignore)
}
