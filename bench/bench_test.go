package bench

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

func TestBound(t *testing.T) {
	const L = 50 * time.Millisecond
	for _, c := range []struct {
		name        string
		rps         float64
		burst, conc int
		plans       []CallPlan
		want        time.Duration
	}{
		// 12 calls, burst 8 at 10/s: the 12th leaves at 0.4 s, answers at 0.45 s.
		{"a", 10, 8, 8, []CallPlan{{First: 3, Dependent: 9}}, 450 * time.Millisecond},
		// 15 independent calls per credential: the 15th leaves at 0.7 s.
		{"b", 10, 8, 8, []CallPlan{{15, 0}, {15, 0}, {15, 0}, {15, 0}}, 750 * time.Millisecond},
		{"c", 5, 5, 8, []CallPlan{{15, 0}, {15, 0}, {15, 0}, {15, 0}}, 2050 * time.Millisecond},
		// No rate limit to speak of: the chain of two round trips.
		{"chain", 1e6, 8, 8, []CallPlan{{3, 4}}, 2 * L},
		// No rate limit, 40 calls 8 at a time: 5 round trips.
		{"concurrency", 1e6, 8, 8, []CallPlan{{40, 0}}, 5 * L},
		// Fewer calls than the burst: one round trip.
		{"burst", 10, 8, 8, []CallPlan{{3, 0}}, L},
		// The worst credential sets the bound.
		{"worst", 10, 8, 8, []CallPlan{{3, 0}, {3, 17}}, 1250 * time.Millisecond},
	} {
		if got := Bound(L, c.rps, c.burst, c.conc, c.plans); got != c.want {
			t.Errorf("%s: Bound = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBurst(t *testing.T) {
	for _, c := range []struct {
		rps  float64
		conc int
		want int
	}{{10, 8, 8}, {5, 8, 5}, {2.5, 8, 3}, {0.1, 8, 1}, {1e6, 4, 4}} {
		if got := Burst(c.rps, c.conc); got != c.want {
			t.Errorf("Burst(%v, %d) = %d, want %d", c.rps, c.conc, got, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	if got := Quantile(ds, 0.5); got != 10 {
		t.Errorf("median = %v, want 10", got)
	}
	if got := Quantile(ds, 0.95); got != 19 {
		t.Errorf("p95 = %v, want 19", got)
	}
	if ds[0] != 20 {
		t.Error("Quantile reordered its argument")
	}
}

// exposition renders mfs without the collector durations, which differ
// between any two scrapes.
func exposition(t *testing.T, mfs []*dto.MetricFamily) string {
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() == "kms_scrape_collector_duration_seconds" {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestReplayMatchesFake checks that a scrape through the replay transport
// is the scrape through the fake: same series, same values, no call missing.
func TestReplayMatchesFake(t *testing.T) {
	sc := Scenario(2, 2500, 2)
	srv := kmsfake.Start(sc)
	defer srv.Close()
	e, err := Setup{URL: srv.URL(), Credentials: 2, RequestsPerSecond: 1e6}.Exporter(sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want, err := Scrape(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(want, 2, 2500); err != nil {
		t.Fatal(err)
	}

	s := Setup{Credentials: 2, RequestsPerSecond: 1e6}
	rp, err := Record(sc, s)
	if err != nil {
		t.Fatal(err)
	}
	// Per project: quotas, instances, 3 key pages and 2 regions pages (the
	// second, empty, ends the list).
	if n, size := rp.Size(); n != 14 || size < 2*2500*100 {
		t.Errorf("recorded %d answers of %d bytes, want 14 holding the keys", n, size)
	}
	s.URL, s.HTTPClient = ReplayURL, &http.Client{Transport: rp}
	re, err := s.Exporter(sc)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second scrape uses the cached regions
		got, err := Scrape(ctx, re)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := exposition(t, got), exposition(t, want); g != w {
			t.Fatalf("replayed scrape differs from the fake's:\n%s\nwant:\n%s", g, w)
		}
	}
}

func TestReplayUnknownRequest(t *testing.T) {
	rp := (&Recorder{}).Replay()
	req, _ := http.NewRequest(http.MethodGet, ReplayURL+"/v1.0/x/kms/user-quotas", nil)
	if _, err := rp.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no recorded answer") {
		t.Errorf("RoundTrip of an unrecorded request: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	sc := Scenario(3, 1, 2)
	y := configYAML(sc, 2, "http://127.0.0.1:1")
	for _, want := range []string{
		"  bench1:\n    access_key: " + AccessKey(1).AK,
		"credentials: bench0\n", "credentials: bench1\n",
		"project_id: " + sc.Projects[2].ID,
		"kms_endpoint: http://127.0.0.1:1\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
}
