package main

// Reliability tests: the fault matrix against the real HTTP handlers and
// kmsfake, goroutine leaks, bounded memory, the scrape storm, graceful
// shutdown and reloads during scrapes. All but the binary's run in
// testing/synctest bubbles: deadlines and latencies take fake time.

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
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

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

// healthyCalls is what one scrape of a matrix target asks of each endpoint
// that answers: the regions list ends at an empty second page.
var healthyCalls = map[string]int{kmsapi.EndpointQuotas: 1, kmsapi.EndpointInstances: 1, kmsapi.EndpointResourceInstances: 1, kmsapi.EndpointRegions: 2}

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
	{name: "truncated", fault: kmsfake.Fault{Truncated: true}, codes: map[string]int{"200": 1}, status: "200", text: "unexpected EOF"},
	{name: "huge-body", fault: kmsfake.Fault{HugeBody: 4 * 32 << 20}, codes: map[string]int{"200": 1}, status: "200", text: "response body exceeds 33554432 bytes"},
	{name: "hang", fault: kmsfake.Fault{Hang: true}, codes: map[string]int{"error": 1}, text: "scrape deadline reached"},
	// The latency lets the other collectors enter before the 401 pauses the credential.
	{name: "401-wrong-secret", fault: kmsfake.Fault{Status: 401, Latency: 500 * time.Millisecond}, codes: map[string]int{"401": 1}, status: "401", errCode: "APIGW.0301", paused: true},
	{name: "403", fault: kmsfake.Fault{Status: 403}, codes: map[string]int{"403": 1}, status: "403", errCode: "KMS.0306"},
}

// The matrix's scrapes send Prometheus' 5s timeout; with
// --kms.timeout-offset=1s the exporter keeps 4s, room for 1+2 retries of a
// fast error (a retry needs its backoff plus 1s left). On the bubble's
// clock that holds however loaded the machine is.
const (
	matrixTimeout  = "5"
	matrixDeadline = 4 * time.Second
)

// TestFaultMatrix drives /probe through every fault on every KMS endpoint,
// and the whole-endpoint faults (connection refused, untrusted certificate,
// expired IAM token), each case in its own bubble with its own fake and
// exporter. Each case ends by checking that no goroutine is left.
func TestFaultMatrix(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	for _, ep := range kmsEndpoints {
		for _, fc := range faultCases {
			bubble(ep+"/"+fc.name, func(t *testing.T) { runFaultCase(t, ep, fc) })
		}
	}
	bubble("connection-refused", testConnectionRefused)
	bubble("untrusted-certificate", testUntrustedCertificate)
	bubble("expired-iam-token", testExpiredIAMToken)
	goleak.VerifyNone(t, ignore)
}

// verifyNoLeak stops the exporter and the fakes, lets the bubble settle,
// and fails for any goroutine not in ignore, taken when the case began.
func verifyNoLeak(t *testing.T, ignore goleak.Option, e *exporter, fakes ...*fakeAPI) {
	t.Helper()
	e.close()
	for _, f := range fakes {
		f.Close()
	}
	synctest.Wait()
	goleak.VerifyNone(t, ignore)
}

func matrixScenario(projects, keys int) kmsfake.Scenario {
	return kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: projects, KeysPerProject: keys, AccessKey: testAK})
}

func runFaultCase(t *testing.T, ep string, fc faultCase) {
	ignore := goleak.IgnoreCurrent()
	e := newTestEnvOf(t, matrixScenario(2, 30), 2, "--kms.timeout-offset=1s")
	sc := e.sc
	c := collectorOf[ep]

	if fc.before {
		e.fake.SetFault(ep, fc.fault)
	}
	// Warm up on t1: the credential is then proven, so the faulty call is
	// not the single probe the others wait for; t0 has nothing cached.
	if code, body, _ := e.scrape(t, "/probe?target=t1", matrixTimeout); code != 200 || !strings.Contains(body, "kms_up{") {
		t.Fatalf("warm-up: %d\n%s", code, e.logs)
	}
	if !fc.before {
		e.fake.SetFault(ep, fc.fault)
	}
	before := e.apiCounts(t)

	code, body, took := e.scrape(t, "/probe?target=t0", matrixTimeout)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if took > matrixDeadline {
		t.Errorf("answered after %v, past the exporter's deadline of %v", took, matrixDeadline)
	}
	ok := map[string]bool{collector.Quotas: true, collector.Instances: true, collector.Keys: true, collector.Regions: true}
	ok[c] = fc.ok
	checkValues(t, body, sc.Projects[0], sc.CrossRegions, ok)
	if v, _ := value(parse(t, body), "kms_up", nil); v != 1 {
		t.Errorf("kms_up = %v, want 1: the other collectors succeeded", v)
	}

	// Requests of a cancelled call are counted when the call returns, just
	// after the scrape answered: once the bubble is idle, they are.
	synctest.Wait()
	// A fault the collector survives meets every page of its listing.
	want := map[string]int{}
	for code, n := range fc.codes {
		if fc.ok {
			n *= healthyCalls[ep]
		}
		want[code] = n
	}
	if got := countsSince(before, e.apiCounts(t), ep); fmtCounts(got) != fmtCounts(want) {
		t.Errorf("kms_api_requests_total{endpoint=%q} added %s, want %s", ep, fmtCounts(got), fmtCounts(want))
	}
	for _, other := range kmsEndpoints {
		if other == ep {
			continue
		}
		want := map[string]int{"200": healthyCalls[other]}
		if got := countsSince(before, e.apiCounts(t), other); fmtCounts(got) != fmtCounts(want) {
			t.Errorf("healthy %s: requests %s, want %s", other, fmtCounts(got), fmtCounts(want))
		}
	}
	checkFailureLine(t, e.logs.String(), ep, c, fc)

	if fc.paused {
		e.fake.ResetRequests()
		code, body, _ := e.scrape(t, "/probe?target=t0", matrixTimeout)
		if code != 200 {
			t.Fatalf("scrape during the pause: %d", code)
		}
		if n := e.fake.Requests(""); n != 0 {
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
	verifyNoLeak(t, ignore, e.exporter, e.fake)
}

// checkFailureLine checks the log line of collector c of target t0 failing
// on ep (or its absence when the collector recovered).
func checkFailureLine(t *testing.T, logs, ep, c string, fc faultCase) {
	t.Helper()
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
}

// wholeTargetDown checks a scrape of a target none of whose calls can
// succeed, then lets the bubble settle so that every request is counted.
func wholeTargetDown(t *testing.T, e *exporter, p kmsfake.Project) {
	t.Helper()
	code, body, took := e.scrape(t, "/probe?target=t0", matrixTimeout)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if took > matrixDeadline {
		t.Errorf("answered after %v, past the exporter's deadline of %v", took, matrixDeadline)
	}
	checkValues(t, body, p, nil, map[string]bool{})
	if v, ok := value(parse(t, body), "kms_up", nil); !ok || v != 0 {
		t.Errorf("kms_up = %v (present %v), want 0", v, ok)
	}
	synctest.Wait()
}

func testConnectionRefused(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	sc := matrixScenario(1, 5)
	const nowhere = "http://kms.test" // nothing listens there
	e := startExporter(t, &memnet.Network{}, nil, akskConfig(testAK, nowhere, nowhere, sc.Projects), "--kms.timeout-offset=1s")
	wholeTargetDown(t, e, sc.Projects[0])
	for _, ep := range kmsEndpoints {
		// Retried (a refused connection is transient): 1+2 attempts. The
		// credential is never proven, so the calls go one after the
		// other; all of them fit in the deadline.
		if got := countsSince(nil, e.apiCounts(t), ep); fmtCounts(got) != "{error:3}" {
			t.Errorf("%s: %s, want {error:3}", ep, fmtCounts(got))
		}
	}
	if line := failureLine(e.logs.String(), "t0", collector.Quotas); !strings.Contains(line, "connection refused") {
		t.Errorf("failure line: %q", line)
	}
	verifyNoLeak(t, ignore, e)
}

func testUntrustedCertificate(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	sc := matrixScenario(1, 5)
	n := &memnet.Network{}
	cert, _ := selfSignedCert(t, "kms.test")
	fake := serveFake(t, n, "kms.test", sc, &cert)
	e := startExporter(t, n, nil, akskConfig(testAK, fake.URL(), fake.URL(), sc.Projects), "--kms.timeout-offset=1s")
	wholeTargetDown(t, e, sc.Projects[0])
	for _, ep := range kmsEndpoints {
		// A certificate the client rejects is not retried.
		if got := countsSince(nil, e.apiCounts(t), ep); fmtCounts(got) != "{error:1}" {
			t.Errorf("%s: %s, want {error:1}", ep, fmtCounts(got))
		}
	}
	if n := fake.Requests(""); n != 0 {
		t.Errorf("the fake answered %d requests over a rejected certificate", n)
	}
	if line := failureLine(e.logs.String(), "t0", collector.Quotas); !strings.Contains(line, "certificate") {
		t.Errorf("the failure does not name the certificate: %q\n%s", line, e.logs)
	}
	verifyNoLeak(t, ignore, e, fake)
}

func testExpiredIAMToken(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	sc := matrixScenario(1, 5)
	n := &memnet.Network{}
	fake := serveFake(t, n, "kms.test", sc, nil)
	u := sc.Users[0]
	var b strings.Builder
	fmt.Fprintf(&b, "credentials:\n  user:\n    iam:\n      domain_name: %s\n      user_name: %s\n      password: %s\n    iam_endpoint: %s\ntargets:\n", u.Domain, u.Name, u.Password, fake.URL())
	writeTargets(&b, fake.URL(), sc.Projects)
	e := startExporter(t, n, nil, b.String(), "--kms.timeout-offset=1s")
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
	synctest.Wait()
	after := e.apiCounts(t)
	if got := countsSince(nil, after, kmsapi.EndpointIAMToken); fmtCounts(got) != "{201:2}" {
		t.Errorf("iam-token requests %s, want one login and one refresh: {201:2}", fmtCounts(got))
	}
	// A call signed with the expired token gets a 401 and is sent again
	// with the new one; a call that starts after the refresh gets no 401.
	rejected := 0
	for _, ep := range kmsEndpoints[:3] {
		got := countsSince(before, after, ep)
		if got["200"] != 1 || got["401"] > 1 || len(got) != 1+got["401"] {
			t.Errorf("%s after expiry: %s, want a 200, after at most one 401", ep, fmtCounts(got))
		}
		rejected += got["401"]
	}
	if rejected == 0 {
		t.Error("no call met the expired token")
	}
	if line := failureLine(e.logs.String(), "t0", collector.Quotas); line != "" {
		t.Errorf("refreshed token logged as a failure: %s", line)
	}
	verifyNoLeak(t, ignore, e, fake)
}

// TestHugeBodyMemoryBounded streams an endless answer without a
// Content-Length (a broken proxy, say), one endless string, and checks the
// client stops before its 32 MiB cap, at the 8 MiB one value may take: the
// collector fails, the client reads little past that, and the heap never
// grows by more than twice the cap. (With a Content-Length above the cap
// the answer is refused before reading; the fault matrix covers that.)
func TestHugeBodyMemoryBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bodyCap = 32 << 20
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var sent atomic.Int64
		var peak atomic.Uint64
		endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"padding":"`))
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			var ms runtime.MemStats
			for sent.Load() < 16*bodyCap {
				// A write returns once the client has read all of it but
				// what memnet buffers (256 KiB, as a socket would): the
				// heap is measured at every 64 KiB the client takes.
				if _, err := w.Write(chunk); err != nil {
					return
				}
				sent.Add(int64(len(chunk)))
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		})
		n := &memnet.Network{}
		srv, err := n.Serve("endless.test:80", endless, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1, AccessKey: testAK})
		e := startExporter(t, n, nil, akskConfig(testAK, "http://endless.test", "http://endless.test", sc.Projects),
			"--no-collector.instances", "--no-collector.keys", "--no-collector.regions")

		code, body, _ := e.scrape(t, "/probe?target=t0", "")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		synctest.Wait()
		if v, _ := value(parse(t, body), "kms_scrape_collector_success", map[string]string{"collector": "quotas"}); v != 0 {
			t.Error("quotas succeeded on an endless body")
		}
		if line := failureLine(e.logs.String(), "t0", "quotas"); !strings.Contains(line, "response body holds a value of more than 8388608 bytes") {
			t.Errorf("failure line: %q", line)
		}
		grew := int64(peak.Load()) - int64(base)
		t.Logf("heap grew by at most %d MiB reading an endless body (cap %d MiB; server sent %d MiB)", grew>>20, bodyCap>>20, sent.Load()>>20)
		if grew > 2*bodyCap {
			t.Errorf("heap grew by %d MiB, more than twice the %d MiB cap", grew>>20, bodyCap>>20)
		}
		if s := sent.Load(); s > bodyCap+1<<20 {
			t.Errorf("the client read %d MiB of an endless body, past its %d MiB cap", s>>20, bodyCap>>20)
		}
	})
}

// TestBinaryGracefulShutdown sends SIGTERM to the built binary while a
// scrape waits on an API call the test holds: new connections are then
// refused, the scrape finishes with its metrics once the call is let go,
// and the process exits 0.
func TestBinaryGracefulShutdown(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 8, Projects: 1, KeysPerProject: 10, AccessKey: testAK})
	fake := kmsfake.New(sc)
	arrived, release := make(chan struct{}), make(chan struct{})
	var arriveOnce, releaseOnce sync.Once
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/user-quotas") {
			arriveOnce.Do(func() { close(arrived) })
			<-release
		}
		fake.ServeHTTP(w, r)
	}))
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(func() {
		letGo()
		api.Close()
		fake.Close()
	})
	cfg := filepath.Join(t.TempDir(), "kms.yml")
	if err := os.WriteFile(cfg, []byte(akskConfig(testAK, api.URL, api.URL, sc.Projects)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, base := startBinary(t, "http", "--config.file="+cfg, "--kms.requests-per-second=1000")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case res := <-done:
		t.Fatalf("the scrape ended before it reached the API: %d %v\n%s", res.code, res.err, p.Output())
	}
	p.Signal(t, syscall.SIGTERM)
	p.WaitOutput(t, regexp.MustCompile(`msg="shutting down"`), 1)
	// Shutdown closes the listener first, while the scrape in flight goes
	// on. Nothing tells when the kernel has closed it: ask until it says
	// so, which on an idle machine is the first time.
	addr := strings.TrimPrefix(base, "http://")
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		select {
		case <-p.Exited():
			t.Fatalf("exited before the scrape in flight finished:\n%s", p.Output())
		case <-time.After(time.Millisecond):
		}
	}
	letGo()
	res := <-done
	if res.err != nil || res.code != 200 {
		t.Fatalf("scrape in flight at SIGTERM: %d %v\n%s", res.code, res.err, p.Output())
	}
	mfs := parse(t, res.body)
	if v, _ := value(mfs, "kms_scrape_collector_success", map[string]string{"collector": "quotas"}); v != 1 {
		t.Errorf("the held collector did not finish: success %v", v)
	}
	if _, ok := value(mfs, "kms_quota_limit", map[string]string{"resource": "CMK"}); !ok {
		t.Error("kms_quota_limit missing from the scrape that was in flight")
	}
	if err := p.Wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, p.Output())
	}
}

// TestReloadDuringScrapes reloads over HTTP and directly while scrapes of
// /metrics and /probe run, alternating between two configs; under -race
// this proves the config swap is race-free, and every request must succeed.
func TestReloadDuringScrapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnvOf(t, kmsfake.Generate(kmsfake.GenerateOptions{Seed: 9, Projects: 3, KeysPerProject: 10, AccessKey: testAK}), 2)
		// Every scrape waits 5ms on the API, and so does the reloader
		// between reloads: on the bubble's clock the scrapes and reloads
		// interleave the same way on any machine.
		const pause = 5 * time.Millisecond
		e.fake.SetFault("", kmsfake.Fault{Latency: pause})
		configs := []string{e.configYAML(2), e.configYAML(3)}

		const reloads = 40
		stop := make(chan struct{})
		var scrapes atomic.Int64
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
					path := "/metrics"
					if (i+n)%2 == 1 {
						path = fmt.Sprintf("/probe?target=t%d", n%2)
					}
					if code, body := e.get(t, path); code != 200 || !strings.Contains(body, "kms_up{") {
						t.Errorf("scrape %s: %d", path, code)
						return
					}
					scrapes.Add(1)
				}
			})
		}
		for n := range reloads {
			e.writeConfig(t, configs[n%2])
			if n%2 == 0 {
				if code, body := e.reload(t); code != 200 {
					t.Errorf("reload: %d %s", code, body)
				}
			} else if err := e.app.reload(); err != nil {
				t.Errorf("reload: %v", err)
			}
			time.Sleep(pause)
		}
		close(stop)
		wg.Wait()
		t.Logf("%d scrapes during %d reloads", scrapes.Load(), reloads)
		// Each of the 8 scrapers finishes about one scrape per reload.
		if scrapes.Load() < reloads {
			t.Errorf("too little happened: %d scrapes during %d reloads", scrapes.Load(), reloads)
		}
	})
}

// TestScrapeStorm has 200 clients scrape /metrics and /probe at once,
// twice each, against an API that takes 100ms per call. No request may
// fail; the API calls of one target and endpoint stay within what one
// fetch at a time allows (scrapes share fetches in flight) however many
// scrapes there are; goroutines and heap stay bounded; nothing is left
// running after.
func TestScrapeStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Two scrapes each: under -race a scrape costs about 12ms of CPU,
		// and 400 of them keep make test within seconds.
		const (
			clients = 200
			each    = 2
			latency = 100 * time.Millisecond
		)
		ignore := goleak.IgnoreCurrent()
		e := newTestEnvOf(t, kmsfake.Generate(kmsfake.GenerateOptions{Seed: 10, Projects: 3, KeysPerProject: 50, AccessKey: testAK}), 3, "--log.level=info")
		e.fake.SetFault("", kmsfake.Fault{Latency: latency})
		tr := &http.Transport{DialContext: e.net.DialContext, MaxIdleConnsPerHost: clients}
		client := &http.Client{Transport: tr}

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
				// The clock moves only when every goroutine waits: each
				// sample sees all the scrapes in flight at that moment.
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
				case <-time.After(latency / 2):
				}
			}
		}()
		start := time.Now()
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				for n := range each {
					path, target := "/metrics", -1
					if (i+n)%2 == 1 {
						target = (i + n) % 3
						path = fmt.Sprintf("/probe?target=t%d", target)
					}
					resp, err := client.Get(e.base + path)
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
			clients, elapsed, metricsScrapes.Load(), probes.Load(), failed.Load(), e.fake.Requests(""), maxGoroutines.Load(), maxHeap.Load()>>20)
		// One fetch at a time per target and endpoint, each latency long.
		bound := float64(elapsed/latency) + 1
		for i, p := range e.sc.Projects {
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
		// connection, handler, one per target and collector, the
		// gatherer's): bounded by the clients, not growing with the
		// scrapes made.
		if g := maxGoroutines.Load(); g > clients*25 {
			t.Errorf("%d goroutines at the peak, want under %d", g, clients*25)
		}
		if h := maxHeap.Load(); h > 256<<20 {
			t.Errorf("heap in use peaked at %d MiB, want under 256", h>>20)
		}

		tr.CloseIdleConnections()
		verifyNoLeak(t, ignore, e.exporter, e.fake)
	})
}
