package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// TestProbeWithHostileTimeoutHeader: a scrape with a timeout header that
// is not finite or below minScrapeTimeout still succeeds on every collector.
func TestProbeWithHostileTimeoutHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}

// TestReloadRefusesCrossOrigin: a browser's cross-site form post cannot
// reload the config; curl, Prometheus tooling and same-origin pages can.
func TestReloadRefusesCrossOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
		post := func(header ...string) int {
			req, _ := http.NewRequest("POST", e.base+"/-/reload", strings.NewReader("x=1"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			code, _, _ := e.send(t, req)
			return code
		}
		loads := func() int { return strings.Count(e.logs.String(), `msg="config loaded"`) }
		before := loads()
		for _, h := range [][]string{
			{"Origin", "https://evil.example"},
			{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "null"},
		} {
			if code := post(h...); code != http.StatusForbidden {
				t.Errorf("POST /-/reload with %v: %d, want 403", h, code)
			}
		}
		if n := loads() - before; n != 0 {
			t.Errorf("%d reloads done by refused requests", n)
		}
		u, _ := url.Parse(e.base)
		for _, h := range [][]string{
			nil, // curl
			{"Origin", "http://" + u.Host},
			{"Sec-Fetch-Site", "same-origin"},
			{"Sec-Fetch-Site", "none"}, // typed into the address bar, or a bookmark
		} {
			if code := post(h...); code != http.StatusOK {
				t.Errorf("POST /-/reload with %v: %d, want 200", h, code)
			}
		}
		if n := loads() - before; n != 4 {
			t.Errorf("%d reloads, want 4", n)
		}
	})
}

// TestScrapeRoutesGetAndHeadOnly: /metrics and /probe run a scrape for GET
// and HEAD only; other methods get 405 with an Allow header and call no API.
func TestScrapeRoutesGetAndHeadOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
		e.fake.ResetRequests()
		for _, path := range []string{"/metrics", "/probe?target=t0"} {
			for _, m := range []string{"DELETE", "TRACE", "OPTIONS", "POST", "PUT", "PATCH", "PROPFIND"} {
				req, _ := http.NewRequest(m, e.base+path, nil)
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("%s %s: %d, Allow %q; want 405, \"GET, HEAD\"", m, path, resp.StatusCode, resp.Header.Get("Allow"))
				}
			}
		}
		for _, ep := range []string{kmsapi.EndpointQuotas, kmsapi.EndpointInstances, kmsapi.EndpointResourceInstances, kmsapi.EndpointRegions} {
			if n := e.fake.Requests(ep); n != 0 {
				t.Errorf("%s called %d times by refused methods", ep, n)
			}
		}
		for _, path := range []string{"/metrics", "/probe?target=t0"} {
			for _, m := range []string{"GET", "HEAD"} {
				req, _ := http.NewRequest(m, e.base+path, nil)
				if code, _, _ := e.send(t, req); code != 200 {
					t.Errorf("%s %s: %d", m, path, code)
				}
			}
		}
	})
}
