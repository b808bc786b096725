package main

import (
	"net/http/httptest"
	"testing"
	"time"
)

// TestScrapeTimeoutHostileHeader: a timeout header that is not a finite
// number of at least minScrapeTimeout is ignored like an absent one, instead
// of leaving the scrape no time at all.
func TestScrapeTimeoutHostileHeader(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"NaN", 30 * time.Second},
		{"nan", 30 * time.Second},
		{"Inf", 30 * time.Second},
		{"+Inf", 30 * time.Second},
		{"-Inf", 30 * time.Second},
		{"1e-9", 30 * time.Second},
		{"1e-320", 30 * time.Second},
		{"0", 30 * time.Second},
		{"0.001", 30 * time.Second}, // the smallest Prometheus can send: 1ms
		{"0.099", 30 * time.Second},
		{"0.1", 100 * time.Millisecond}, // the minimum itself is a deadline
		{"0x1p-2", 250 * time.Millisecond},
		{"1e309", 30 * time.Second},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		if got := scrapeTimeout(r, 30*time.Second, 500*time.Millisecond); got != tc.want {
			t.Errorf("header %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestProbeWithHostileTimeoutHeader: a scrape with such a header still
// succeeds on every collector.
func TestProbeWithHostileTimeoutHeader(t *testing.T) {
	e := newTestEnv(t, 1)
	for _, h := range []string{"NaN", "1e-9", "1e-320", "Inf"} {
		code, body := e.get(t, "/probe?target=t0", "X-Prometheus-Scrape-Timeout-Seconds", h)
		if code != 200 {
			t.Fatalf("%s: status %d: %s", h, code, body)
		}
		mfs := parse(t, body)
		for _, c := range []string{"quotas", "instances", "keys", "regions"} {
			if v, ok := value(mfs, "kms_scrape_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
				t.Errorf("header %s: success of %s = %v (present %v)", h, c, v, ok)
			}
		}
	}
}
