package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

const hostile = `<script>alert(1)</script>`

// renderLanding renders the page of v as the handler serves it.
func renderLanding(t *testing.T, v landingView) string {
	t.Helper()
	p, err := newLandingPage(web.LandingConfig{Name: "KMS Exporter", Links: []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}}}, v.data)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=UTF-8" {
		t.Fatalf("landing page: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	return rec.Body.String()
}

func record(t *testing.T, target string, start time.Time, failures []collector.Failure, metrics ...prometheus.Metric) *scrapeRecord {
	t.Helper()
	r := &scrapeRecord{target: target, start: start, duration: 120 * time.Millisecond, via: "/metrics", metrics: metrics, failures: failures}
	if _, err := r.families(); err != nil {
		t.Fatal(err)
	}
	return r
}

// rowRE finds the attributes of a target row.
var rowRE = regexp.MustCompile(`<tr class="kms-target" data-target="([^"]*)" data-up="([^"]*)" data-quota-level="([^"]*)" data-pending="([^"]*)">`)

func TestLandingTable(t *testing.T) {
	now := t0.Add(time.Hour)
	h := newHistory(10)
	quota := func(used, limit float64) []prometheus.Metric {
		return []prometheus.Metric{gauge("kms_up", 1), gauge("kms_quota_used", used, "resource", "CMK"), gauge("kms_quota_limit", limit, "resource", "CMK")}
	}
	h.add(record(t, "full", now.Add(-time.Minute), nil, append(quota(46, 50),
		gauge("kms_keys", 3, "state", "pending_deletion"),
		gauge("kms_key_scheduled_deletion_timestamp_seconds", float64(now.Add(53*time.Hour).Unix()), "key_id", "k1"))...))
	h.add(record(t, "high", now.Add(-time.Minute), nil, quota(41, 50)...))
	h.add(record(t, "fine", now.Add(-time.Minute), nil, append(quota(5, 20), gauge("kms_keys", 0, "state", "pending_deletion"))...))
	denied := &kmsapi.Error{Endpoint: kmsapi.EndpointResourceInstances, StatusCode: 403, Code: "KMS.0306", Message: "No permission to perform the operation.", RequestID: "req-403"}
	h.add(record(t, "failing", now.Add(-time.Minute), []collector.Failure{{Collector: "keys", Err: denied}}, gauge("kms_up", 0)))
	v := landingView{now: now, metricsPath: "/metrics", history: h, historyLimit: 10, targets: []targetInfo{
		{Name: "full", Region: "cn-north-4", ProjectID: "p-full", Credential: "prod"},
		{Name: "high", Region: "cn-north-4", ProjectID: "p-high", Credential: "prod"},
		{Name: "fine", Region: "eu-west-101", ProjectID: "p-fine", Credential: "prod"},
		{Name: "failing", Region: "cn-east-3", ProjectID: "p-failing", Credential: "ro"},
		{Name: "new", Region: "cn-east-3", Credential: "ro", Discovered: true},
	}}
	page := renderLanding(t, v)

	var rows []string
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		rows = append(rows, strings.Join(m[1:], " "))
	}
	want := []string{"full 1 critical 3", "high 1 high ", "fine 1 ok 0", "failing 0 unknown ", "new  unknown "}
	if strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("rows (target up quota pending):\n got %q\nwant %q", rows, want)
	}
	for _, s := range []string{
		`<a href="/probe?target=full">full</a>`,
		`46 / 50 (92%)`, `<span class="kms-flag kms-critical">≥ 90%</span>`,
		`41 / 50 (82%)`, `<span class="kms-flag kms-high">≥ 80%</span>`,
		`<div style="width: 92.0%">`,
		`next 2026-03-03 (in 2d)`,
		`<b>keys</b>: HTTP 403 <code>KMS.0306</code> No permission to perform the operation. <span class="kms-small">request ID <code>req-403</code></span>`,
		`<a href="/probe/debug?id=4"`, `60s ago`,
		`<span class="kms-tag">discovered</span>`,
		`<span class="kms-muted">not yet</span>`,
		`<td><a href="/probe/debug?id=1">1</a></td>`,
		`failed: keys`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %s", s)
		}
	}
	if n := strings.Count(page, `class="kms-scrape"`); n != 4 {
		t.Errorf("%d recent scrapes listed, want 4", n)
	}
}

// A target name and an API error message holding HTML are shown as text.
func TestLandingEscapesHostileText(t *testing.T) {
	h := newHistory(10)
	err := &kmsapi.Error{Endpoint: kmsapi.EndpointQuotas, StatusCode: 500, Code: hostile, Message: hostile, RequestID: hostile}
	h.add(record(t, hostile, t0, []collector.Failure{{Collector: "quotas", Err: err}, {Collector: "regions", Err: errors.New(hostile)}}, gauge("kms_up", 1)))
	page := renderLanding(t, landingView{now: t0, history: h, historyLimit: 10, targets: []targetInfo{
		{Name: hostile, Region: hostile, ProjectID: hostile, Credential: hostile},
	}})
	if strings.Contains(page, "<script>") {
		t.Errorf("page holds a live <script>:\n%s", page)
	}
	if n := strings.Count(page, "&lt;script&gt;alert(1)&lt;/script&gt;"); n < 8 {
		t.Errorf("escaped text shown %d times, want every field:\n%s", n, page)
	}
	if !strings.Contains(page, `href="/probe?target=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"`) {
		t.Errorf("the probe link does not carry the name escaped:\n%s", page)
	}
}

func TestLandingPageOnlyAtRoot(t *testing.T) {
	p, err := newLandingPage(web.LandingConfig{Name: "x"}, landingView{history: newHistory(1)}.data)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", rec.Code)
	}
}

func TestQuotaCell(t *testing.T) {
	for _, c := range []struct {
		used, limit float64
		level, pct  string
		width       string
	}{
		{0, 50, "ok", "0%", "0.0%"},
		{39, 50, "ok", "78%", "78.0%"},
		{40, 50, "high", "80%", "80.0%"},
		{44, 50, "high", "88%", "88.0%"},
		{45, 50, "critical", "90%", "90.0%"},
		{60, 50, "critical", "120%", "100.0%"},
		{1, 0, "critical", "100%", "100.0%"},
		{0, 0, "ok", "0%", "0.0%"},
	} {
		q := newQuotaCell(c.used, c.limit)
		if !q.Known || q.Level != c.level || q.Percent != c.pct || q.Width != c.width {
			t.Errorf("%v/%v: %+v, want %s %s %s", c.used, c.limit, q, c.level, c.pct, c.width)
		}
	}
}

func TestDurationTexts(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3100 * time.Microsecond:            "3.1ms",
		401300 * time.Microsecond:          "401.3ms",
		time.Second + 859*time.Millisecond: "1.86s",
		2 * time.Second:                    "2s",
	} {
		if got := formatSeconds(d); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		-5 * time.Second: "5s ago", 45 * time.Second: "in 45s", 12 * time.Minute: "in 12m",
		5 * time.Hour: "in 5h", 53 * time.Hour: "in 2d", -36 * time.Hour: "36h ago",
	} {
		if got := relative(t0, t0.Add(d)); got != want {
			t.Errorf("relative(%v) = %q, want %q", d, got, want)
		}
	}
}
