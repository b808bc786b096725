package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// account is a scripted IAM listing: each call answers the current
// projects, or err.
type account struct {
	mu       sync.Mutex
	projects []kmsapi.Project
	err      error
	calls    int
}

func (a *account) set(ps []kmsapi.Project, err error) {
	a.mu.Lock()
	a.projects, a.err = ps, err
	a.mu.Unlock()
}

func (a *account) List(context.Context) ([]kmsapi.Project, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return a.projects, a.err
}

func (a *account) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func metricsText(t *testing.T, d *Discoverer) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(d)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), m.GetLabel()[0].GetValue(), m.GetGauge().GetValue())
		}
	}
	return b.String()
}

// Run lists at once and every interval; a failed refresh keeps the last
// list, says so in a log line and in the metrics (the success timestamp
// stays), and is retried sooner than the interval.
func TestRunRefreshFailureKeepsList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		acct := &account{projects: projects("cn-north-4", "MOS")}
		var changes int
		var mu sync.Mutex
		logs := &syncbuf.Buffer{}
		d := New([]Source{{Rule: Rule{Credential: "prod"}, Interval: time.Hour, List: acct.List}}, Options{
			OnChange: func() { mu.Lock(); changes++; mu.Unlock() },
			Logger:   log.NewLogfmtLogger(logs),
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		synctest.Wait()
		start := time.Now()
		if names(d.Targets()) != "prod/cn-north-4" || acct.Calls() != 1 || changes != 1 {
			t.Fatalf("after start: targets %q, %d calls, %d changes", names(d.Targets()), acct.Calls(), changes)
		}
		want := fmt.Sprintf("kms_discovery_last_success_timestamp_seconds{prod} %g\nkms_discovery_targets{prod} 1\n", float64(start.Unix()))
		if got := metricsText(t, d); got != want {
			t.Fatalf("metrics:\n%s\nwant\n%s", got, want)
		}

		// An unchanged list is no change.
		time.Sleep(time.Hour)
		synctest.Wait()
		if acct.Calls() != 2 || changes != 1 {
			t.Fatalf("after 1h: %d calls, %d changes; want 2 calls, 1 change", acct.Calls(), changes)
		}

		acct.set(nil, &kmsapi.Error{Endpoint: kmsapi.EndpointIAMProjectList, StatusCode: 503})
		time.Sleep(time.Hour)
		synctest.Wait()
		if names(d.Targets()) != "prod/cn-north-4" || changes != 1 {
			t.Fatalf("after a failed refresh: targets %q, %d changes; want the last list kept", names(d.Targets()), changes)
		}
		if got := metricsText(t, d); got != strings.Replace(want, fmt.Sprint(float64(start.Unix())), fmt.Sprint(float64(start.Add(time.Hour).Unix())), 1) {
			t.Errorf("metrics after a failed refresh:\n%s", got)
		}
		if l := logs.String(); !strings.Contains(l, `level=warn msg="discovery refresh failed; keeping the last list of targets" credentials=prod targets_kept=1`) || !strings.Contains(l, "HTTP 503") {
			t.Errorf("log:\n%s", l)
		}

		// Retried after a minute, not an hour.
		acct.set(projects("cn-north-4", "cn-north-4_payments"), nil)
		time.Sleep(DefaultRetryInterval)
		synctest.Wait()
		if names(d.Targets()) != "prod/cn-north-4 prod/cn-north-4_payments" || acct.Calls() != 4 || changes != 2 {
			t.Fatalf("after the retry: targets %q, %d calls, %d changes", names(d.Targets()), acct.Calls(), changes)
		}

		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return after its context ended")
		}
	})
}

// Before the first success the timestamp is 0, so that an alert on its age fires.
func TestMetricsBeforeFirstSuccess(t *testing.T) {
	acct := &account{err: errors.New("IAM unreachable")}
	d := New([]Source{{Rule: Rule{Credential: "prod"}, Interval: time.Hour, List: acct.List}}, Options{})
	if errs := d.Refresh(t.Context()); errs["prod"] == nil {
		t.Fatalf("Refresh: %v, want the error of prod", errs)
	}
	want := "kms_discovery_last_success_timestamp_seconds{prod} 0\nkms_discovery_targets{prod} 0\n"
	if got := metricsText(t, d); got != want {
		t.Errorf("metrics:\n%s\nwant\n%s", got, want)
	}
}

// A refresh that outlives its timeout fails like any other.
func TestRefreshTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := func(ctx context.Context) ([]kmsapi.Project, error) { <-ctx.Done(); return nil, ctx.Err() }
		d := New([]Source{{Rule: Rule{Credential: "prod"}, Interval: time.Hour, List: hang}}, Options{RefreshTimeout: 10 * time.Second})
		start := time.Now()
		errs := d.Refresh(t.Context())
		if !errors.Is(errs["prod"], context.DeadlineExceeded) || time.Since(start) != 10*time.Second {
			t.Errorf("Refresh: %v after %v", errs, time.Since(start))
		}
	})
}

// A reload keeps the last list of an unchanged entry until the new
// Discoverer has listed again, minus what a new static target covers; a
// changed entry starts empty.
func TestKeep(t *testing.T) {
	acct := &account{projects: projects("cn-north-4", "cn-east-3", "ap-southeast-1")}
	old := New([]Source{
		{Rule: Rule{Credential: "prod"}, Interval: time.Hour, List: acct.List},
		{Rule: Rule{Credential: "test"}, Interval: time.Hour, List: acct.List},
	}, Options{})
	if errs := old.Refresh(t.Context()); len(errs) != 0 {
		t.Fatal(errs)
	}
	d := New([]Source{
		{Rule: Rule{Credential: "prod"}, Interval: 2 * time.Hour, List: acct.List},
		{Rule: Rule{Credential: "test", Regions: []string{"cn-east-3"}}, Interval: time.Hour, List: acct.List},
	}, Options{Static: []Static{{Name: "x", Credential: "prod", Region: "cn-east-3"}}})
	d.Keep(old)
	if got := names(d.Targets()); got != "prod/ap-southeast-1 prod/cn-north-4" {
		t.Errorf("kept %q", got)
	}
	if !strings.Contains(metricsText(t, d), "kms_discovery_targets{prod} 2\n") {
		t.Errorf("metrics: %s", metricsText(t, d))
	}
	d.Refresh(t.Context())
	if got := names(d.Targets()); got != "prod/ap-southeast-1 prod/cn-north-4 test/cn-east-3" {
		t.Errorf("after the refresh %q", got)
	}
}

// Initial lists the entries that have no list yet, without OnChange; Run
// then lists those only after their interval, and the kept ones at once.
func TestInitialThenRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fresh := &account{projects: projects("cn-north-4")}
		kept := &account{projects: projects("cn-east-3")}
		old := New([]Source{{Rule: Rule{Credential: "kept"}, Interval: time.Hour, List: kept.List}}, Options{})
		old.Refresh(t.Context())
		changes := 0
		d := New([]Source{
			{Rule: Rule{Credential: "fresh"}, Interval: time.Hour, List: fresh.List},
			{Rule: Rule{Credential: "kept"}, Interval: time.Hour, List: kept.List},
		}, Options{OnChange: func() { changes++ }})
		d.Keep(old)
		d.Initial(t.Context())
		if names(d.Targets()) != "fresh/cn-north-4 kept/cn-east-3" || fresh.Calls() != 1 || kept.Calls() != 1 || changes != 0 {
			t.Fatalf("after Initial: %q, calls %d and %d, %d changes", names(d.Targets()), fresh.Calls(), kept.Calls(), changes)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go d.Run(ctx)
		synctest.Wait()
		if fresh.Calls() != 1 || kept.Calls() != 2 {
			t.Fatalf("Run at once: calls %d and %d; want the kept entry listed again, not the fresh one", fresh.Calls(), kept.Calls())
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if fresh.Calls() != 2 || kept.Calls() != 3 {
			t.Fatalf("after an hour: calls %d and %d", fresh.Calls(), kept.Calls())
		}
	})
}
