package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// FuzzProbeQuery sends arbitrary raw query strings and scrape timeout
// headers to /probe: it never panics, answers 200 with metrics for a
// configured target and 400 with a plain-text reason otherwise.
func FuzzProbeQuery(f *testing.F) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 11, Projects: 2, KeysPerProject: 5, AccessKey: testAK})
	n := &memnet.Network{}
	fake := serveFake(f, n, "kms.test", sc, nil)
	cfg := akskConfig(testAK, fake.URL(), fake.URL(), sc.Projects[:1])
	// A second target whose name needs escaping everywhere it is echoed.
	cfg += "  - name: \"we\\\"ird <b>&amp; name\"\n    region: " + sc.Projects[1].Region + "\n    project_id: " + sc.Projects[1].ID + "\n    kms_endpoint: " + fake.URL() + "\n"
	// Results are reused, so that fuzzing measures the handler, not the fake.
	e := startExporter(f, n, nil, cfg, "--kms.cache-ttl=1h", "--log.level=error")
	h := e.app.handler()
	for _, seed := range []struct{ query, timeout string }{
		{"target=t0", ""},
		{"target=t0", "0.5"},
		{"target=t0", "-1"},
		{"target=t0", "NaN"},
		{"target=t0", "1e309"},
		{"target=we%22ird+%3Cb%3E%26amp%3B+name", "10"},
		{"", ""},
		{"target=", ""},
		{"target=nope", ""},
		{"target=%zz", ""},
		{"target=t0&target=nope", ""},
		{"target=nope&target=t0", ""},
		{"target=t%00", ""},
		{"target=%ff%fe", ""},
		{";target=t0", ""},
		{"target=t0;x=1", ""},
		{"TARGET=t0", ""},
		{"target=" + strings.Repeat("x", 5000), ""},
		{"target=" + strings.Repeat("x", 20000), ""}, // more than the 400 body may hold
		{"target=<script>alert(1)</script>", ""},
	} {
		f.Add(seed.query, seed.timeout)
	}
	f.Fuzz(func(t *testing.T, query, timeout string) {
		req := httptest.NewRequest("GET", "/probe", nil)
		req.URL.RawQuery = query
		if timeout != "" {
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		switch rec.Code {
		case http.StatusOK:
			if !strings.Contains(body, "kms_up{") {
				t.Fatalf("200 without kms_up for %q:\n%s", query, body)
			}
			if target := req.URL.Query().Get("target"); target != "t0" && target != `we"ird <b>&amp; name` {
				t.Fatalf("200 for target %q, which is not configured", target)
			}
		case http.StatusBadRequest:
			// Plain text a browser will not sniff as HTML, whatever it echoes.
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("400 with Content-Type %q, X-Content-Type-Options %q", ct, rec.Header().Get("X-Content-Type-Options"))
			}
			if !utf8.ValidString(body) {
				t.Fatalf("400 body not UTF-8: %q", body)
			}
			if len(body) > 10000 {
				t.Fatalf("400 body of %d bytes", len(body))
			}
		default:
			t.Fatalf("status %d for %q (timeout %q)", rec.Code, query, timeout)
		}
	})
}
