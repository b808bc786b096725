package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

var scrapeHeadRE = regexp.MustCompile(`^Scrape (\d+) of target t0 \(region (\S+), project (\S+), credential main\)\nAsked by /probe at \S+, took \S+, kms_up 1\nFailed collectors: none\n\nAPI calls, in order \(at: time since the scrape began; waits before the attempt\):\n`)

// /probe?target=NAME&debug=true: the scrape's API calls in order, then its
// metrics; the same log stays at /probe/debug?id=N.
func TestProbeDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 2)
		code, h, body := e.getFull(t, "/probe?target=t0&debug=true")
		if code != 200 || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%d %v\n%s", code, h, body)
		}
		m := scrapeHeadRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("head of the log:\n%s", body)
		}
		p := e.sc.Projects[0]
		if m[2] != p.Region || m[3] != p.ID {
			t.Errorf("region %s project %s, want %s %s", m[2], m[3], p.Region, p.ID)
		}
		calls, metrics, ok := strings.Cut(body[len(m[0]):], "\nMetrics:\n")
		if !ok {
			t.Fatalf("no metrics section:\n%s", body)
		}
		var endpoints []string
		for _, line := range strings.Split(strings.TrimSpace(calls), "\n") {
			f := regexp.MustCompile(`^at=\+\S+ endpoint=(\S+) attempt=1 method=(GET|POST) url=` + regexp.QuoteMeta(e.fake.URL()) + `/\S+ status=200 duration=\S+ request_id=[0-9a-f]+ rate_limit_wait=\S+`).FindStringSubmatch(line)
			if f == nil {
				t.Errorf("call line %q", line)
				continue
			}
			endpoints = append(endpoints, f[1])
		}
		// The collectors run at once: every endpoint, in any order; the
		// listings page, the others answer in one call.
		seen := map[string]int{}
		for _, ep := range endpoints {
			seen[ep]++
		}
		for ep, paged := range map[string]bool{kmsapi.EndpointQuotas: false, kmsapi.EndpointInstances: false, kmsapi.EndpointResourceInstances: true, kmsapi.EndpointRegions: true} {
			if seen[ep] == 0 || !paged && seen[ep] != 1 {
				t.Errorf("%s called %d times in the log:\n%s", ep, seen[ep], calls)
			}
		}
		mfs := parse(t, metrics)
		if v, ok := value(mfs, "kms_up", map[string]string{"project_id": p.ID}); !ok || v != 1 {
			t.Errorf("metrics section: kms_up %v %v\n%s", v, ok, metrics)
		}
		if _, ok := value(mfs, "kms_quota_limit", map[string]string{"resource": "CMK"}); !ok {
			t.Errorf("metrics section lacks kms_quota_limit:\n%s", metrics)
		}

		// The landing page lists the scrape, and its log is the same text.
		_, page := e.get(t, "/")
		link := `<a href="/probe/debug?id=` + m[1] + `">` + m[1] + `</a>`
		if !strings.Contains(page, link) {
			t.Errorf("landing page lacks %s", link)
		}
		code, h, again := e.getFull(t, "/probe/debug?id="+m[1])
		if code != 200 || again != body || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("/probe/debug?id=%s: %d\n%s\nwant\n%s", m[1], code, again, body)
		}
		for path, want := range map[string]int{"/probe/debug?id=x": 400, "/probe/debug": 400, "/probe/debug?id=999": 404} {
			if code, _ := e.get(t, path); code != want {
				t.Errorf("%s: %d, want %d", path, code, want)
			}
		}
		// A target that is not configured: 400 as without debug.
		if code, _ := e.get(t, "/probe?target=nope&debug=true"); code != 400 {
			t.Errorf("debug probe of an unknown target: %d", code)
		}
	})
}

func TestHistoryLimitFlag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 2, "--history.limit=2")
		e.get(t, "/metrics") // scrapes 1 and 2, one per target
		e.get(t, "/probe?target=t0")
		e.get(t, "/probe?target=t1")
		// 1 and 2 are neither among the last two nor the last of their target.
		for id, want := range map[string]int{"1": 404, "2": 404, "3": 200, "4": 200} {
			if code, _ := e.get(t, "/probe/debug?id="+id); code != want {
				t.Errorf("scrape %s of 4 with --history.limit=2: %d, want %d", id, code, want)
			}
		}
		_, page := e.get(t, "/")
		if n := strings.Count(page, `class="kms-scrape"`); n != 2 {
			t.Errorf("%d recent scrapes listed, want 2", n)
		}
		if _, _, err := parseFlags([]string{"--history.limit=-1"}); err == nil || !strings.Contains(err.Error(), "--history.limit") {
			t.Errorf("negative --history.limit: %v", err)
		}
		s, _, err := parseFlags(nil)
		if err != nil || s.historyLimit != 100 {
			t.Errorf("default --history.limit: %v %v", s, err)
		}
	})
}

// The landing page shows the last results: asking for it calls no API.
func TestLandingPageCallsNoAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 2)
		e.fake.SetFault(kmsapi.EndpointResourceInstances, kmsfake.Fault{Status: http.StatusForbidden})
		e.get(t, "/metrics")
		before := e.fake.Requests("")
		_, page := e.get(t, "/")
		if after := e.fake.Requests(""); after != before {
			t.Errorf("the landing page made %d API requests", after-before)
		}
		for i, p := range e.sc.Projects[:2] {
			row := fmt.Sprintf(`<tr class="kms-target" data-target="t%d" data-up="1" data-quota-level="`, i)
			if !strings.Contains(page, row) {
				t.Errorf("no row for t%d with kms_up 1", i)
			}
			if !strings.Contains(page, `title="`+p.ID+`"`) {
				t.Errorf("row of t%d lacks its project", i)
			}
		}
		if !regexp.MustCompile(`<b>keys</b>: HTTP 403 <code>KMS.0306</code> No permission to perform the operation. <span class="kms-small">request ID <code>[0-9a-f]+</code></span>`).MatchString(page) {
			t.Errorf("page lacks the failing collector's error:\n%s", page)
		}
	})
}

// A credential paused after a 401 is shown with the time it rests until.
func TestLandingShowsPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
		e.fake.SetFault("", kmsfake.Fault{Status: http.StatusUnauthorized})
		e.get(t, "/metrics")
		_, page := e.get(t, "/")
		if !regexp.MustCompile(`<div class="kms-paused">credential <b>main</b> paused until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in \d+s\)</div>`).MatchString(page) {
			t.Errorf("page does not show the pause:\n%s", page)
		}
		if !strings.Contains(page, `data-target="t0" data-up="0"`) {
			t.Error("row of t0 does not show kms_up 0")
		}
	})
}

// A hostile target name and a hostile error message from the API are
// shown as text.
func TestLandingHostileNameAndMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
		p := e.sc.Projects[0]
		e.writeConfig(t, fmt.Sprintf("credentials:\n  main: {access_key: %s, secret_key: %s, iam_endpoint: %s}\ntargets:\n  - {name: %q, region: %s, project_id: %s, kms_endpoint: %s}\n",
			testAK.AK, testAK.SK, e.fake.URL(), hostile, p.Region, p.ID, e.fake.URL()))
		if err := e.app.reload(); err != nil {
			t.Fatal(err)
		}
		e.fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Status: http.StatusInternalServerError, ErrorMessage: hostile})
		if code, _ := e.get(t, "/probe?target="+url.QueryEscape(hostile)); code != 200 {
			t.Fatalf("probe: %d", code)
		}
		_, page := e.get(t, "/")
		if strings.Contains(page, "<script>") {
			t.Errorf("landing page holds a live <script>:\n%s", page)
		}
		escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
		for _, want := range []string{`data-target="` + escaped + `"`, `>` + escaped + `</a>`, `<b>quotas</b>: HTTP 500 <code>KMS.0101</code> ` + escaped} {
			if !strings.Contains(page, want) {
				t.Errorf("landing page lacks %s", want)
			}
		}
		_, h, log := e.getFull(t, "/probe?target="+url.QueryEscape(hostile)+"&debug=true")
		if !strings.Contains(log, hostile) || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("debug log %v:\n%s", h, log)
		}
	})
}

// A tag value holding HTML reaches only the text/plain debug log and the
// metrics, never the page as markup.
func TestHostileTagValue(t *testing.T) {
	synctest.Test(t, testHostileTagValue)
}

func testHostileTagValue(t *testing.T) {
	e := newTestEnv(t, 1)
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 21, Projects: 1, KeysPerProject: 3, AccessKey: testAK})
	sc.Projects[0].Keys[1].Tags = []kmsapi.Tag{{Key: "team", Value: hostile}}
	fake := serveFake(t, e.net, "tagged.test", sc, nil)
	p := sc.Projects[0]
	e.writeConfig(t, fmt.Sprintf("credentials:\n  main: {access_key: %s, secret_key: %s, iam_endpoint: %s}\ntargets:\n  - {name: tagged, region: %s, project_id: %s, kms_endpoint: %s}\n",
		testAK.AK, testAK.SK, fake.URL(), p.Region, p.ID, fake.URL()))
	if err := e.app.reload(); err != nil {
		t.Fatal(err)
	}
	_, h, log := e.getFull(t, "/probe?target=tagged&debug=true")
	if !strings.Contains(log, `tag_key="team",tag_value="`+hostile+`"`) || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("debug log %v:\n%s", h, log)
	}
	if _, page := e.get(t, "/"); strings.Contains(page, "<script>") {
		t.Errorf("landing page holds a live <script>:\n%s", page)
	}
}
