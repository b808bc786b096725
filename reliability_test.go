package main

// Reliability tests (issue 6): the fault matrix against the real HTTP
// handlers and kmsfake, goroutine leaks, bounded memory, the scrape storm,
// graceful shutdown and reloads during scrapes.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// relAK is the credential of the reliability tests' fakes.
var relAK = kmsfake.AccessKey{AK: "RELIABILITYAK0000000", SK: "reliability-secret-key-000000000000000"}

// relExporter is an exporter under test, served by httptest.
type relExporter struct {
	app  *app
	srv  *httptest.Server
	logs *syncbuf.Buffer
	api  *http.Client // the exporter's client to the API, so the test can close its idle connections
}

// startExporter runs the app with configYAML as its config file. Cleanup
// stops the server and closes the API client's idle connections, so that
// goleak sees no keep-alive goroutines.
func startExporter(t testing.TB, configYAML string, flags ...string) *relExporter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kms.yml")
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config.file=" + path, "--kms.requests-per-second=1000"}
	if !strings.Contains(strings.Join(flags, " "), "--log.level") {
		args = append(args, "--log.level=debug")
	}
	s, _, err := parseFlags(append(args, flags...))
	if err != nil {
		t.Fatal(err)
	}
	e := &relExporter{logs: &syncbuf.Buffer{}, api: kmsapi.NewHTTPClient()}
	logger, _ := newLogger(e.logs, s.logLevel, s.logFormat)
	e.app, err = newApp(s, logger, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	e.app.httpClient = e.api
	t.Cleanup(e.api.CloseIdleConnections)
	if err := e.app.reload(); err != nil {
		t.Fatalf("config: %v\n%s", err, e.logs)
	}
	e.srv = httptest.NewServer(e.app.handler())
	t.Cleanup(e.srv.Close)
	return e
}

// akskConfig is a config with one AK/SK credential and one target per
// project, named t0, t1, ..., all on kmsURL.
func akskConfig(ak kmsfake.AccessKey, iamURL, kmsURL string, projects []kmsfake.Project) string {
	var b strings.Builder
	fmt.Fprintf(&b, "credentials:\n  main:\n    access_key: %s\n    secret_key: %s\n    iam_endpoint: %s\ntargets:\n", ak.AK, ak.SK, iamURL)
	writeTargets(&b, kmsURL, projects)
	return b.String()
}

func writeTargets(b *strings.Builder, kmsURL string, projects []kmsfake.Project) {
	for i, p := range projects {
		fmt.Fprintf(b, "  - name: t%d\n    region: %s\n    project_id: %s\n    kms_endpoint: %s\n", i, p.Region, p.ID, kmsURL)
	}
}

// scrape GETs path with Prometheus' timeout header and returns status, body
// and how long it took.
func (e *relExporter) scrape(t *testing.T, path, timeout string) (int, string, time.Duration) {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if timeout != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	}
	start := time.Now()
	code, body := do(t, req)
	return code, body, time.Since(start)
}

// apiCounts reads kms_api_requests_total from the exporter's own registry,
// without a scrape, keyed "endpoint code".
func (e *relExporter) apiCounts(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := e.app.own.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kms_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelOf(m, "endpoint")+" "+labelOf(m, "code")] += m.GetCounter().GetValue()
		}
	}
	return out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// countsSince is what after adds to before, for one endpoint, by code.
func countsSince(before, after map[string]float64, endpoint string) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		ep, code, _ := strings.Cut(k, " ")
		if ep != endpoint {
			continue
		}
		if d := int(v - before[k]); d != 0 {
			out[code] = d
		}
	}
	return out
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// collectorOf maps a KMS endpoint to the collector that calls it.
var collectorOf = map[string]string{
	kmsapi.EndpointQuotas:            collector.Quotas,
	kmsapi.EndpointInstances:         collector.Instances,
	kmsapi.EndpointResourceInstances: collector.Keys,
	kmsapi.EndpointRegions:           collector.Regions,
}

var kmsEndpoints = []string{kmsapi.EndpointQuotas, kmsapi.EndpointInstances, kmsapi.EndpointResourceInstances, kmsapi.EndpointRegions}

// checkValues asserts that every collector in ok exported the values of p.
func checkValues(t *testing.T, body string, p kmsfake.Project, crossRegions []string, ok map[string]bool) {
	t.Helper()
	mfs := parse(t, body)
	labels := map[string]string{"region": p.Region, "project_id": p.ID}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range labels {
			m[a] = b
		}
		return m
	}
	for _, c := range collector.All {
		want := 0.0
		if ok[c] {
			want = 1
		}
		if v, found := value(mfs, "kms_scrape_collector_success", with("collector", c)); !found || v != want {
			t.Errorf("kms_scrape_collector_success{collector=%q} = %v (present %v), want %v", c, v, found, want)
		}
	}
	if ok[collector.Quotas] {
		for _, q := range p.Quotas {
			if v, _ := value(mfs, "kms_quota_limit", with("resource", q.Resource)); v != float64(q.Limit) {
				t.Errorf("kms_quota_limit{resource=%q} = %v, want %d", q.Resource, v, q.Limit)
			}
		}
	}
	if ok[collector.Instances] {
		if v, _ := value(mfs, "kms_cmk_instances", labels); v != float64(p.Instances) {
			t.Errorf("kms_cmk_instances = %v, want %d", v, p.Instances)
		}
	}
	if ok[collector.Keys] {
		enabled := 0
		for _, k := range p.Keys {
			if k.State == kmsapi.StateEnabled {
				enabled++
			}
		}
		if v, _ := value(mfs, "kms_keys", with("state", "enabled")); v != float64(enabled) {
			t.Errorf("kms_keys{state=enabled} = %v, want %d", v, enabled)
		}
	}
	if ok[collector.Regions] {
		if n := len(mfs["kms_cross_region_info"].GetMetric()); n != len(crossRegions) {
			t.Errorf("%d kms_cross_region_info series, want %d", n, len(crossRegions))
		}
	}
}

// failureLine returns the log line of the failed collector c of target, or "".
func failureLine(logs, target, c string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `msg="collector failed"`) && strings.Contains(l, " target="+target+" ") && strings.Contains(l, " collector="+c+" ") {
			return l
		}
	}
	return ""
}

// eventually polls cond for up to 5s: for what happens just after a scrape
// answered (e.g. a cancelled request being counted).
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

var requestIDField = regexp.MustCompile(` request_id=[0-9a-f]{8,}`)

// faultCase is one row of the fault matrix, applied to one endpoint.
type faultCase struct {
	name   string
	fault  kmsfake.Fault
	before bool // install before the warm-up scrape (throttle sequences start there)
	ok     bool // the endpoint's collector still succeeds
	codes  map[string]int
	// Logged with the failure: status=, error_code=, and text in the line.
	status, errCode, text string
	paused                bool // a 401: the next scrape sends nothing
}

var faultCases = []faultCase{
	{name: "429-sometimes", fault: kmsfake.Fault{ThrottleRate: 0.5}, before: true, ok: true, codes: map[string]int{"429": 1, "200": 1}},
	{name: "429-always", fault: kmsfake.Fault{ThrottleRate: 1}, codes: map[string]int{"429": 3}, status: "429", errCode: "APIGW.0308"},
	{name: "500", fault: kmsfake.Fault{Status: 500}, codes: map[string]int{"500": 3}, status: "500", errCode: "KMS.0101"},
	{name: "502", fault: kmsfake.Fault{Status: 502}, codes: map[string]int{"502": 3}, status: "502", errCode: "APIGW.0202"},
	{name: "504", fault: kmsfake.Fault{Status: 504}, codes: map[string]int{"504": 3}, status: "504", errCode: "APIGW.0203"},
	{name: "malformed", fault: kmsfake.Fault{Malformed: true}, codes: map[string]int{"200": 1}, status: "200", text: "invalid character"},
	{name: "truncated", fault: kmsfake.Fault{Truncated: true}, codes: map[string]int{"200": 1}, status: "200", text: "unexpected end of JSON input"},
	{name: "huge-body", fault: kmsfake.Fault{HugeBody: 4 * 32 << 20}, codes: map[string]int{"200": 1}, status: "200", text: "response body exceeds 33554432 bytes"},
	{name: "hang", fault: kmsfake.Fault{Hang: true}, codes: map[string]int{"error": 1}, text: "scrape deadline reached"},
	// The latency lets the other collectors enter before the 401 pauses the credential.
	{name: "401-wrong-secret", fault: kmsfake.Fault{Status: 401, Latency: 500 * time.Millisecond}, codes: map[string]int{"401": 1}, status: "401", errCode: "APIGW.0301", paused: true},
	{name: "403", fault: kmsfake.Fault{Status: 403}, codes: map[string]int{"403": 1}, status: "403", errCode: "KMS.0306"},
}

// Scrapes in the matrix send a 5s timeout; with --kms.timeout-offset=1s the
// exporter gives itself 4s, which leaves room for 1+2 retries of a fast
// error (a retry needs its backoff plus 1s left) even on a loaded machine.
const (
	matrixTimeout  = "5"
	matrixDeadline = 5 * time.Second
)

// TestFaultMatrix drives /probe through every fault on every KMS endpoint,
// and the whole-endpoint faults (connection refused, untrusted certificate,
// expired IAM token), each case with its own fake and exporter, all at once.
// At the end no goroutine is left behind.
func TestFaultMatrix(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Run("cases", func(t *testing.T) {
		// Run the cases concurrently without t.Parallel, whose limit is
		// GOMAXPROCS: they mostly wait on deadlines, not on the CPU.
		var wg sync.WaitGroup
		for _, ep := range kmsEndpoints {
			for _, fc := range faultCases {
				wg.Go(func() { t.Run(ep+"/"+fc.name, func(t *testing.T) { runFaultCase(t, ep, fc) }) })
			}
		}
		wg.Go(func() { t.Run("connection-refused", testConnectionRefused) })
		wg.Go(func() { t.Run("untrusted-certificate", testUntrustedCertificate) })
		wg.Go(func() { t.Run("expired-iam-token", testExpiredIAMToken) })
		wg.Wait()
	})
	goleak.VerifyNone(t, ignore)
}

func runFaultCase(t *testing.T, ep string, fc faultCase) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 2, KeysPerProject: 30, AccessKey: relAK})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	e := startExporter(t, akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects), "--kms.timeout-offset=1s")
	c := collectorOf[ep]

	if fc.before {
		fake.SetFault(ep, fc.fault)
	}
	// Warm up on t1: the credential is then proven, so the faulty call is
	// not the single probe the others wait for; t0 has nothing cached.
	if code, body, _ := e.scrape(t, "/probe?target=t1", matrixTimeout); code != 200 || !strings.Contains(body, "kms_up{") {
		t.Fatalf("warm-up: %d\n%s", code, e.logs)
	}
	if !fc.before {
		fake.SetFault(ep, fc.fault)
	}
	before := e.apiCounts(t)

	code, body, took := e.scrape(t, "/probe?target=t0", matrixTimeout)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if took > matrixDeadline {
		t.Errorf("answered after %v, Prometheus gave up at %v", took, matrixDeadline)
	}
	ok := map[string]bool{collector.Quotas: true, collector.Instances: true, collector.Keys: true, collector.Regions: true}
	ok[c] = fc.ok
	checkValues(t, body, sc.Projects[0], sc.CrossRegions, ok)
	if v, _ := value(parse(t, body), "kms_up", nil); v != 1 {
		t.Errorf("kms_up = %v, want 1: the other collectors succeeded", v)
	}

	// Requests of a cancelled call are counted when the call returns, just
	// after the scrape answered.
	var got map[string]int
	if !eventually(func() bool {
		got = countsSince(before, e.apiCounts(t), ep)
		return fmtCounts(got) == fmtCounts(fc.codes)
	}) {
		t.Errorf("kms_api_requests_total{endpoint=%q} added %s, want %s", ep, fmtCounts(got), fmtCounts(fc.codes))
	}
	for _, other := range kmsEndpoints {
		if other == ep {
			continue
		}
		if got := countsSince(before, e.apiCounts(t), other); fmtCounts(got) != "{200:1}" {
			t.Errorf("healthy %s: requests %s, want {200:1}", other, fmtCounts(got))
		}
	}

	logs := e.logs.String()
	line := failureLine(logs, "t0", c)
	switch {
	case fc.ok && line != "":
		t.Errorf("collector recovered by retry logged a failure: %s", line)
	case !fc.ok && line == "":
		t.Errorf("no failure line for target t0 collector %s:\n%s", c, logs)
	case !fc.ok:
		want := []string{" endpoint=" + ep}
		if fc.status != "" {
			want = append(want, " status="+fc.status)
		}
		if fc.errCode != "" {
			want = append(want, " error_code="+fc.errCode)
		}
		if fc.text != "" {
			want = append(want, fc.text)
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("failure line lacks %q: %s", w, line)
			}
		}
		// Every answer from the API carries a request ID worth logging.
		if fc.status != "" && !requestIDField.MatchString(line) {
			t.Errorf("failure line lacks the request ID: %s", line)
		}
	}

	if fc.paused {
		fake.ResetRequests()
		code, body, _ := e.scrape(t, "/probe?target=t0", matrixTimeout)
		if code != 200 {
			t.Fatalf("scrape during the pause: %d", code)
		}
		if n := fake.Requests(""); n != 0 {
			t.Errorf("%d requests during the auth pause, want none", n)
		}
		mfs := parse(t, body)
		for _, c := range []string{collector.Quotas, collector.Instances, collector.Keys} {
			if v, _ := value(mfs, "kms_scrape_collector_success", map[string]string{"collector": c}); v != 0 {
				t.Errorf("collector %s succeeded during the auth pause", c)
			}
		}
		if !strings.Contains(e.logs.String(), "credential paused") {
			t.Errorf("pause not logged:\n%s", e.logs)
		}
	}
}

// wholeTargetDown checks a scrape of a target none of whose calls can succeed.
func wholeTargetDown(t *testing.T, e *relExporter, p kmsfake.Project) {
	t.Helper()
	code, body, took := e.scrape(t, "/probe?target=t0", matrixTimeout)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if took > matrixDeadline {
		t.Errorf("answered after %v", took)
	}
	checkValues(t, body, p, nil, map[string]bool{})
	if v, ok := value(parse(t, body), "kms_up", nil); !ok || v != 0 {
		t.Errorf("kms_up = %v (present %v), want 0", v, ok)
	}
}

func testConnectionRefused(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1, KeysPerProject: 5, AccessKey: relAK})
	closed := "http://" + freePort(t) // nothing listens there any more
	e := startExporter(t, akskConfig(relAK, closed, closed, sc.Projects), "--kms.timeout-offset=1s")
	wholeTargetDown(t, e, sc.Projects[0])
	total := 0
	for _, ep := range kmsEndpoints {
		got := countsSince(nil, e.apiCounts(t), ep)
		// Retried (a refused connection is transient), never beyond 1+2.
		if got["error"] > 3 || len(got) > 1 && got["error"] == 0 {
			t.Errorf("%s: %s, want up to 3 errors", ep, fmtCounts(got))
		}
		total += got["error"]
	}
	if total == 0 {
		t.Error(`no request counted with code "error"`)
	}
	if line := failureLine(e.logs.String(), "t0", collector.Quotas); !strings.Contains(line, "connection refused") && !strings.Contains(line, "scrape deadline") {
		t.Errorf("failure line: %q", line)
	}
}

func testUntrustedCertificate(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1, KeysPerProject: 5, AccessKey: relAK})
	fake := kmsfake.StartTLS(sc)
	t.Cleanup(fake.Close)
	e := startExporter(t, akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects), "--kms.timeout-offset=1s")
	wholeTargetDown(t, e, sc.Projects[0])
	total := 0
	for _, ep := range kmsEndpoints {
		// A certificate the client rejects is not retried. (On a loaded
		// machine a later call may still wait for the first one, the single
		// probe of an unproven credential, when the deadline comes.)
		got := countsSince(nil, e.apiCounts(t), ep)
		if got["error"] > 1 || len(got) > 1 || len(got) == 1 && got["error"] == 0 {
			t.Errorf("%s: %s, want {error:1} or nothing", ep, fmtCounts(got))
		}
		total += got["error"]
	}
	if total == 0 {
		t.Error(`no request counted with code "error"`)
	}
	if n := fake.Requests(""); n != 0 {
		t.Errorf("the fake answered %d requests over a rejected certificate", n)
	}
	if !strings.Contains(e.logs.String(), "certificate") {
		t.Errorf("no failure names the certificate:\n%s", e.logs)
	}
}

func testExpiredIAMToken(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1, KeysPerProject: 5, AccessKey: relAK})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	u := sc.Users[0]
	var b strings.Builder
	fmt.Fprintf(&b, "credentials:\n  user:\n    iam:\n      domain_name: %s\n      user_name: %s\n      password: %s\n    iam_endpoint: %s\ntargets:\n", u.Domain, u.Name, u.Password, fake.URL())
	writeTargets(&b, fake.URL(), sc.Projects)
	e := startExporter(t, b.String(), "--kms.timeout-offset=1s")
	if code, _, _ := e.scrape(t, "/probe?target=t0", matrixTimeout); code != 200 {
		t.Fatalf("warm-up: %d", code)
	}
	fake.ExpireTokens()
	before := e.apiCounts(t)
	code, body, _ := e.scrape(t, "/probe?target=t0", matrixTimeout)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	// Regions are reused from the warm-up (an hour's TTL); the rest call again.
	checkValues(t, body, sc.Projects[0], sc.CrossRegions, map[string]bool{collector.Quotas: true, collector.Instances: true, collector.Keys: true, collector.Regions: true})
	after := e.apiCounts(t)
	if got := countsSince(nil, after, kmsapi.EndpointIAMToken); fmtCounts(got) != "{201:2}" {
		t.Errorf("iam-token requests %s, want one login and one refresh: {201:2}", fmtCounts(got))
	}
	for _, ep := range kmsEndpoints[:3] {
		got := countsSince(before, after, ep)
		if got["200"] != 1 || got["401"] < 1 || len(got) != 2 {
			t.Errorf("%s after expiry: %s, want the 401 then a 200", ep, fmtCounts(got))
		}
	}
	if line := failureLine(e.logs.String(), "t0", collector.Quotas); line != "" {
		t.Errorf("refreshed token logged as a failure: %s", line)
	}
}

// TestHugeBodyMemoryBounded streams an endless answer without a
// Content-Length (a broken proxy, say) and checks the client stops at its
// 32 MiB cap: the collector fails, and the heap never grows by more than a
// small multiple of the cap. (With a Content-Length above the cap the answer
// is refused before reading; the fault matrix covers that.)
func TestHugeBodyMemoryBounded(t *testing.T) {
	const bodyCap = 32 << 20
	var sent atomic.Int64
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"padding":"`))
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent.Load() < 16*bodyCap && r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
		}
	}))
	t.Cleanup(endless.Close)
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1, AccessKey: relAK})
	e := startExporter(t, akskConfig(relAK, endless.URL, endless.URL, sc.Projects),
		"--no-collector.instances", "--no-collector.keys", "--no-collector.regions")

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	code, body, _ := e.scrape(t, "/probe?target=t0", "")
	close(stop)
	<-sampled
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if v, _ := value(parse(t, body), "kms_scrape_collector_success", map[string]string{"collector": "quotas"}); v != 0 {
		t.Error("quotas succeeded on an endless body")
	}
	if line := failureLine(e.logs.String(), "t0", "quotas"); !strings.Contains(line, "response body exceeds 33554432 bytes") {
		t.Errorf("failure line: %q", line)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap grew by at most %d MiB reading an endless body (cap %d MiB; server sent %d MiB)", grew>>20, bodyCap>>20, sent.Load()>>20)
	if grew > 2*bodyCap {
		t.Errorf("heap grew by %d MiB, more than twice the %d MiB cap", grew>>20, bodyCap>>20)
	}
	if sent.Load() >= 16*bodyCap {
		t.Error("the client read the whole endless body instead of stopping at the cap")
	}
}

// TestBinaryGracefulShutdown sends SIGTERM to the built binary while a
// scrape waits on a slow API: the scrape finishes with its metrics, new
// connections are refused, and the process exits 0.
func TestBinaryGracefulShutdown(t *testing.T) {
	bin := buildBinary(t)
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 8, Projects: 1, KeysPerProject: 10, AccessKey: relAK})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	cfg := filepath.Join(t.TempDir(), "kms.yml")
	if err := os.WriteFile(cfg, []byte(akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects)), 0o600); err != nil {
		t.Fatal(err)
	}
	fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Latency: 2 * time.Second})
	addr := freePort(t)
	r := startBinary(t, bin, "--config.file="+cfg, "--web.listen-address="+addr, "--kms.requests-per-second=1000")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	r.waitReady(t, client, func() *http.Request { req, _ := http.NewRequest("GET", "http://"+addr+"/-/ready", nil); return req })

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	if !eventually(func() bool { return fake.Requests(kmsapi.EndpointQuotas) > 0 }) {
		t.Fatalf("the scrape never reached the API\n%s", r.stderr)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown closes the listener first: new scrapes are refused while the
	// one in flight goes on.
	refused := eventually(func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if !refused {
		t.Error("new connections still accepted after SIGTERM")
	}
	res := <-done
	if res.err != nil || res.code != 200 {
		t.Fatalf("scrape in flight at SIGTERM: %d %v\n%s", res.code, res.err, r.stderr)
	}
	mfs := parse(t, res.body)
	if v, _ := value(mfs, "kms_scrape_collector_success", map[string]string{"collector": "quotas"}); v != 1 {
		t.Errorf("the slow collector did not finish: success %v", v)
	}
	if _, ok := value(mfs, "kms_quota_limit", map[string]string{"resource": "CMK"}); !ok {
		t.Error("kms_quota_limit missing from the scrape that was in flight")
	}
	if err := r.wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "shutting down") {
		t.Errorf("shutdown not logged:\n%s", r.stderr)
	}
}

// TestReloadDuringScrapes reloads over HTTP and directly while scrapes of
// /metrics and /probe run, alternating between two configs; under -race
// this proves the config swap is race-free, and every request must succeed.
func TestReloadDuringScrapes(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 9, Projects: 3, KeysPerProject: 10, AccessKey: relAK})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	fake.SetFault("", kmsfake.Fault{Latency: 5 * time.Millisecond})
	configs := []string{
		akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects[:2]),
		akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects),
	}
	e := startExporter(t, configs[0])
	path := e.app.s.configFile
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	stop := make(chan struct{})
	var scrapes, reloads atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// t0 and t1 are in both configs.
				url := e.srv.URL + "/metrics"
				if (i+n)%2 == 1 {
					url = e.srv.URL + fmt.Sprintf("/probe?target=t%d", n%2)
				}
				resp, err := client.Get(url)
				if err != nil {
					t.Errorf("scrape: %v", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "kms_up{") {
					t.Errorf("scrape %s: %d", url, resp.StatusCode)
					return
				}
				scrapes.Add(1)
			}
		})
	}
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.WriteFile(path, []byte(configs[n%2]), 0o600); err != nil {
				t.Error(err)
				return
			}
			if n%2 == 0 {
				resp, err := client.Post(e.srv.URL+"/-/reload", "", nil)
				if err != nil {
					t.Errorf("reload: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("reload: %d", resp.StatusCode)
				}
			} else if err := e.app.reload(); err != nil {
				t.Errorf("reload: %v", err)
			}
			reloads.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d scrapes during %d reloads", scrapes.Load(), reloads.Load())
	if scrapes.Load() == 0 || reloads.Load() < 2 {
		t.Errorf("too little happened: %d scrapes, %d reloads", scrapes.Load(), reloads.Load())
	}
}

// TestScrapeStorm has 200 clients scrape /metrics and /probe without pause
// for 10s against an API that takes 30ms per call. No request may fail; the
// API calls of one target and endpoint stay within what one fetch at a
// time allows (scrapes share fetches in flight) however many scrapes there
// are; goroutines and heap stay bounded; nothing is left running after.
func TestScrapeStorm(t *testing.T) {
	const (
		clients  = 200
		duration = 10 * time.Second
		latency  = 30 * time.Millisecond
	)
	ignore := goleak.IgnoreCurrent()
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 10, Projects: 3, KeysPerProject: 50, AccessKey: relAK})
	fake := kmsfake.Start(sc)
	fake.SetFault("", kmsfake.Fault{Latency: latency})
	e := startExporter(t, akskConfig(relAK, fake.URL(), fake.URL(), sc.Projects), "--log.level=info")
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var (
		metricsScrapes, probes atomic.Int64
		perTarget              [3]atomic.Int64 // scrapes that covered target i
		failed                 atomic.Int64
		maxGoroutines          atomic.Int64
		maxHeap                atomic.Uint64
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			if n := int64(runtime.NumGoroutine()); n > maxGoroutines.Load() {
				maxGoroutines.Store(n)
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxHeap.Load() {
				maxHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for n := 0; time.Since(start) < duration; n++ {
				path, target := "/metrics", -1
				if (i+n)%2 == 1 {
					target = (i + n) % 3
					path = fmt.Sprintf("/probe?target=t%d", target)
				}
				resp, err := client.Get(e.srv.URL + path)
				if err != nil {
					failed.Add(1)
					t.Errorf("%s: %v", path, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `kms_scrape_collector_success{collector="keys"`) {
					failed.Add(1)
					t.Errorf("%s: %d %v", path, resp.StatusCode, err)
					return
				}
				if target < 0 {
					metricsScrapes.Add(1)
					for i := range perTarget {
						perTarget[i].Add(1)
					}
				} else {
					probes.Add(1)
					perTarget[target].Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled

	// API calls by target (its region) and endpoint, from the exporter's counters.
	mfs, err := e.app.own.Gather()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "kms_api_requests_total" {
			for _, m := range mf.GetMetric() {
				calls[labelOf(m, "region")+" "+labelOf(m, "endpoint")] += m.GetCounter().GetValue()
			}
		}
	}
	t.Logf("%d clients for %v: %d /metrics and %d /probe scrapes, %d failed; API requests %d; max %d goroutines, max heap in use %d MiB",
		clients, elapsed.Round(time.Millisecond), metricsScrapes.Load(), probes.Load(), failed.Load(), fake.Requests(""), maxGoroutines.Load(), maxHeap.Load()>>20)
	// One fetch at a time per target and endpoint, each at least latency long.
	bound := float64(elapsed/latency) + 5
	for i, p := range sc.Projects {
		for _, ep := range kmsEndpoints {
			n := calls[p.Region+" "+ep]
			t.Logf("target t%d (%d scrapes) %s: %.0f calls", i, perTarget[i].Load(), ep, n)
			if n > bound {
				t.Errorf("target t%d %s: %.0f API calls in %v, more than one fetch at a time allows (%.0f)", i, ep, n, elapsed, bound)
			}
			// With 200 clients waiting, every fetch serves many scrapes.
			if scrapes := float64(perTarget[i].Load()); n > scrapes/10 {
				t.Errorf("target t%d %s: %.0f API calls for %.0f scrapes: fetches not shared", i, ep, n, scrapes)
			}
			if n < 1 {
				t.Errorf("target t%d %s: never called", i, ep)
			}
		}
	}
	if failed.Load() > 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	// Each request in flight holds a handful of goroutines (client,
	// connection, handler, one per target and collector, the gatherer's):
	// bounded by the clients, not growing with the scrapes made.
	if g := maxGoroutines.Load(); g > clients*25 {
		t.Errorf("%d goroutines at the peak, want under %d", g, clients*25)
	}
	if h := maxHeap.Load(); h > 256<<20 {
		t.Errorf("heap in use peaked at %d MiB, want under 256", h>>20)
	}

	tr.CloseIdleConnections()
	e.srv.Close()
	e.api.CloseIdleConnections()
	fake.Close()
	goleak.VerifyNone(t, ignore)
}
