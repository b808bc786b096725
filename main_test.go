package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

var testAK = kmsfake.AccessKey{AK: "MAINTESTAK0000000000", SK: "main-test-secret-key-0000000000000000"}

func noEnv(string) string { return "" }

func TestParseFlags(t *testing.T) {
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", "envproject")
	t.Setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", "https://iam.example.com")
	s, web, err := parseFlags([]string{"--kms.region=cn-north-4", "--no-collector.regions", "--collector.keys.tag-key=env", "--collector.keys.tag-key=team"})
	if err != nil {
		t.Fatal(err)
	}
	if s.projectID != "envproject" || s.iamEndpoint != "https://iam.example.com" {
		t.Errorf("env not used: project %q iam %q", s.projectID, s.iamEndpoint)
	}
	if got := strings.Join(s.collectors, ","); got != "quotas,instances,keys" {
		t.Errorf("collectors = %s", got)
	}
	if got := strings.Join(s.tagKeys, ","); got != "env,team" {
		t.Errorf("tag keys = %s", got)
	}
	if s.timeout != 30*time.Second || s.timeoutOffset != 500*time.Millisecond || s.rps != 10 || s.concurrency != 8 ||
		s.maxTagSeries != 500 || s.cacheTTL != 0 || s.keysRefresh != 0 || s.telemetryPath != "/metrics" ||
		s.logLevel != "info" || s.logFormat != "logfmt" || s.demo {
		t.Errorf("defaults: %+v", s)
	}
	if got := (*web.WebListenAddresses)[0]; got != ":10567" {
		t.Errorf("listen address %s", got)
	}
	for _, bad := range [][]string{
		{"--demo", "--config.file=x.yml"},
		{"--kms.timeout=0s"},
		{"--log.level=verbose"},
		{"--web.telemetry-path=metrics"},
		{"--kms.sk=secret"}, // no flag for secrets
	} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 30 * time.Second},
		{"10", 9500 * time.Millisecond},
		{"0.25", 250 * time.Millisecond}, // no room for the offset
		{"120", 30 * time.Second},        // never above --kms.timeout
		{"junk", 30 * time.Second},
		{"-1", 30 * time.Second},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := scrapeTimeout(r, 30*time.Second, 500*time.Millisecond); got != tc.want {
			t.Errorf("header %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

type testEnv struct {
	fake   *kmsfake.Server
	sc     kmsfake.Scenario
	app    *app
	srv    *httptest.Server
	logs   *syncbuf.Buffer
	config string // path of the config file
}

// configYAML is a config with n targets on the fake's projects.
func (e *testEnv) configYAML(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "credentials:\n  main:\n    access_key: %s\n    secret_key: %s\n    iam_endpoint: %s\ntargets:\n", testAK.AK, testAK.SK, e.fake.URL())
	for i, p := range e.sc.Projects[:n] {
		fmt.Fprintf(&b, "  - name: t%d\n    region: %s\n    project_id: %s\n    kms_endpoint: %s\n", i, p.Region, p.ID, e.fake.URL())
	}
	return b.String()
}

func (e *testEnv) writeConfig(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(e.config, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newTestEnv starts a fake with three projects and an exporter whose config
// file holds the first n of them.
func newTestEnv(t *testing.T, n int, flags ...string) *testEnv {
	t.Helper()
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 3, KeysPerProject: 30, AccessKey: testAK})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	e := &testEnv{fake: fake, sc: sc, logs: &syncbuf.Buffer{}, config: filepath.Join(t.TempDir(), "kms.yml")}
	e.writeConfig(t, e.configYAML(n))
	s, _, err := parseFlags(append([]string{"--config.file=" + e.config, "--kms.requests-per-second=1000"}, flags...))
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLogger(e.logs, "debug", "logfmt")
	e.app, err = newApp(s, logger, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.reload(); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.app.handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testEnv) get(t *testing.T, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return mfs
}

// value finds the sample of name whose labels include want; ok false when none.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
		return 0, true
	}
	return 0, false
}

func TestMetricsEndpoint(t *testing.T) {
	e := newTestEnv(t, 2)
	code, body := e.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	mfs := parse(t, body)
	for _, p := range e.sc.Projects[:2] {
		labels := map[string]string{"region": p.Region, "project_id": p.ID}
		if v, ok := value(mfs, "kms_up", labels); !ok || v != 1 {
			t.Errorf("kms_up%v = %v (present %v)", labels, v, ok)
		}
		if v, _ := value(mfs, "kms_quota_limit", map[string]string{"project_id": p.ID, "resource": "CMK"}); v != float64(p.Quotas[0].Limit) {
			t.Errorf("kms_quota_limit CMK of %s = %v, want %d", p.ID, v, p.Quotas[0].Limit)
		}
		if v, _ := value(mfs, "kms_cmk_instances", labels); v != float64(p.Instances) {
			t.Errorf("kms_cmk_instances of %s = %v, want %d", p.ID, v, p.Instances)
		}
	}
	if _, ok := value(mfs, "kms_up", map[string]string{"project_id": e.sc.Projects[2].ID}); ok {
		t.Error("project not in the config exported")
	}
	for _, name := range []string{"kms_exporter_build_info", "kms_api_requests_total", "kms_api_request_duration_seconds", "go_goroutines", "process_start_time_seconds"} {
		if mfs[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if v, ok := value(mfs, "kms_exporter_config_last_reload_successful", nil); !ok || v != 1 {
		t.Errorf("reload gauge %v %v", v, ok)
	}
	if v, ok := value(mfs, "kms_api_requests_total", map[string]string{"endpoint": kmsapi.EndpointQuotas, "code": "200", "region": e.sc.Projects[0].Region}); !ok || v < 1 {
		t.Errorf("kms_api_requests_total for user-quotas = %v", v)
	}
	if strings.Contains(body+e.logs.String(), testAK.SK) {
		t.Error("secret key in output or logs")
	}
}

func TestProbe(t *testing.T) {
	e := newTestEnv(t, 2)
	code, body := e.get(t, "/probe?target=t1")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mfs := parse(t, body)
	p := e.sc.Projects[1]
	if v, ok := value(mfs, "kms_up", map[string]string{"region": p.Region, "project_id": p.ID}); !ok || v != 1 {
		t.Errorf("kms_up = %v (present %v)", v, ok)
	}
	if n := len(mfs["kms_up"].GetMetric()); n != 1 {
		t.Errorf("%d kms_up series, want the one target", n)
	}
	for _, own := range []string{"kms_api_requests_total", "kms_exporter_build_info", "go_goroutines"} {
		if mfs[own] != nil {
			t.Errorf("/probe exports %s, which belongs on /metrics only", own)
		}
	}
	if problems, err := promlint.New(strings.NewReader(body)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	code, body = e.get(t, "/probe?target="+url.QueryEscape("no such"))
	if code != 400 || !strings.Contains(body, `unknown target "no such"`) {
		t.Errorf("unknown target: %d %s", code, body)
	}
	code, body = e.get(t, "/probe")
	if code != 400 || !strings.Contains(body, "missing target parameter") || !strings.Contains(body, "t0, t1") {
		t.Errorf("missing target: %d %s", code, body)
	}
}

func TestRoutes(t *testing.T) {
	e := newTestEnv(t, 2)
	for path, want := range map[string]string{
		"/-/healthy": "Healthy",
		"/-/ready":   "Ready",
		"/":          `href="/probe?target=t1"`,
	} {
		code, body := e.get(t, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	if code, _ := e.get(t, "/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
	if code, _ := e.get(t, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d", code)
	}
}

func TestScrapeDeadlineFromHeader(t *testing.T) {
	e := newTestEnv(t, 1, "--kms.timeout=60s", "--kms.timeout-offset=0.5s")
	// Let the credential be accepted once, so the hanging call is not the
	// one kmsapi lets through alone.
	if code, _ := e.get(t, "/probe?target=t0"); code != 200 {
		t.Fatal("warm-up scrape failed")
	}
	e.fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Hang: true})
	// The client gives up after 20s, far before --kms.timeout: an answer at
	// all means the header's deadline was used.
	code, body := e.get(t, "/probe?target=t0", "X-Prometheus-Scrape-Timeout-Seconds", "1.5")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mfs := parse(t, body)
	for c, want := range map[string]float64{"quotas": 0, "instances": 1, "keys": 1, "regions": 1} {
		if v, ok := value(mfs, "kms_scrape_collector_success", map[string]string{"collector": c}); !ok || v != want {
			t.Errorf("success of %s = %v, want %v", c, v, want)
		}
	}
	if v, _ := value(mfs, "kms_up", nil); v != 1 {
		t.Errorf("kms_up = %v", v)
	}
	if !strings.Contains(e.logs.String(), "scrape deadline reached") {
		t.Errorf("deadline not logged:\n%s", e.logs)
	}
}

func TestReload(t *testing.T) {
	e := newTestEnv(t, 1)
	post := func() (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/-/reload", nil)
		return do(t, req)
	}
	reloadOK := func() float64 {
		_, body := e.get(t, "/metrics")
		v, _ := value(parse(t, body), "kms_exporter_config_last_reload_successful", nil)
		return v
	}
	targets := func() int {
		_, body := e.get(t, "/metrics")
		return len(parse(t, body)["kms_up"].GetMetric())
	}
	if n := targets(); n != 1 {
		t.Fatalf("%d targets at start", n)
	}

	e.writeConfig(t, e.configYAML(3))
	if code, body := post(); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if n := targets(); n != 3 {
		t.Errorf("%d targets after reload, want 3", n)
	}
	if v := reloadOK(); v != 1 {
		t.Errorf("reload gauge %v after success", v)
	}
	if code, _ := e.get(t, "/probe?target=t2"); code != 200 {
		t.Errorf("new target not probed: %d", code)
	}

	e.writeConfig(t, e.configYAML(3)+"  - name: t0\n    region: cn-north-4\n")
	code, body := post()
	if code != 500 || !strings.Contains(body, `targets[3].name: duplicate name "t0"`) {
		t.Errorf("bad reload: %d %s", code, body)
	}
	if v := reloadOK(); v != 0 {
		t.Errorf("reload gauge %v after failure", v)
	}
	if n := targets(); n != 3 {
		t.Errorf("%d targets after failed reload, want the old 3", n)
	}
	if !strings.Contains(e.logs.String(), "previous config stays in force") {
		t.Errorf("failed reload not logged:\n%s", e.logs)
	}

	e.writeConfig(t, e.configYAML(2))
	if code, _ := post(); code != 200 || reloadOK() != 1 || targets() != 2 {
		t.Errorf("recovery reload: %d, gauge %v, %d targets", code, reloadOK(), targets())
	}
}

func TestConcurrentScrapesOneSetOfCalls(t *testing.T) {
	e := newTestEnv(t, 1, "--kms.cache-ttl=1m")
	// Slow answers keep the first fetches in flight while the scrapes pile
	// up: without sharing each scrape would call every endpoint.
	e.fake.SetFault("", kmsfake.Fault{Latency: 300 * time.Millisecond})
	e.fake.ResetRequests()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			<-start
			code, body := e.get(t, "/probe?target=t0")
			if code != 200 || !strings.Contains(body, "kms_up{") {
				t.Errorf("scrape: %d", code)
			}
		})
	}
	close(start)
	wg.Wait()
	// The regions list is one page and the empty page that ends it.
	want := map[string]int{kmsapi.EndpointQuotas: 1, kmsapi.EndpointInstances: 1, kmsapi.EndpointResourceInstances: 1, kmsapi.EndpointRegions: 2}
	for ep, w := range want {
		if n := e.fake.Requests(ep); n != w {
			t.Errorf("%s: %d requests for 50 scrapes, want %d", ep, n, w)
		}
	}
}

func TestSingleTargetMode(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 2, Projects: 1, KeysPerProject: 5, AccessKey: testAK})
	fake := kmsfake.Start(sc)
	defer fake.Close()
	env := map[string]string{"HUAWEICLOUD_SDK_AK": testAK.AK, "HUAWEICLOUD_SDK_SK": testAK.SK}
	getenv := func(k string) string { return env[k] }
	region := sc.Projects[0].Region
	// No project ID: looked up in the fake's IAM.
	s, _, err := parseFlags([]string{"--kms.region=" + region, "--kms.endpoint=" + fake.URL(), "--iam.endpoint=" + fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	a, err := newApp(s, log.NewLogfmtLogger(logs), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/probe?target="+region, nil)
	code, body := do(t, req)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if v, ok := value(parse(t, body), "kms_up", map[string]string{"region": region, "project_id": sc.Projects[0].ID}); !ok || v != 1 {
		t.Errorf("kms_up = %v (present %v)\n%s", v, ok, logs)
	}

	env = map[string]string{"HUAWEICLOUD_SDK_AK": testAK.AK}
	if _, err := singleTargetConfig(s, getenv); err == nil || !strings.Contains(err.Error(), "HUAWEICLOUD_SDK_SK") {
		t.Errorf("missing SK: %v", err)
	}
	if _, err := singleTargetConfig(&settings{}, getenv); err == nil || !strings.Contains(err.Error(), "--kms.region") {
		t.Errorf("missing region: %v", err)
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf syncbuf.Buffer
	logger, slogger := newLogger(&buf, "warn", "json")
	level.Info(logger).Log("msg", "dropped")
	slogger.Info("dropped too")
	slogger.Warn("from slog", "k", "v")
	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("slog info not filtered at warn:\n%s", out)
	}
	if !strings.Contains(out, `"msg":"from slog"`) || !strings.Contains(out, `"level":"warn"`) {
		t.Errorf("slog line not JSON through go-kit:\n%s", out)
	}
}

func goBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDemoBinary builds kms_exporter, runs it with --demo, scrapes it over
// HTTP, reloads it with SIGHUP and stops it with SIGTERM.
func TestDemoBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kms_exporter")
	build := exec.Command(goBinary(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freePort(t)
	stderr := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "--demo", "--web.listen-address="+addr)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	code, body := do(t, req)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	mfs := parse(t, body)
	demo := kmsfake.Demo(time.Now())
	for _, p := range demo.Projects {
		labels := map[string]string{"region": p.Region, "project_id": p.ID}
		if v, ok := value(mfs, "kms_up", labels); !ok || v != 1 {
			t.Errorf("kms_up%v = %v (present %v)", labels, v, ok)
		}
		n := 0
		for _, k := range p.Keys {
			if k.State == kmsapi.StateEnabled {
				n++
			}
		}
		if v, _ := value(mfs, "kms_keys", map[string]string{"project_id": p.ID, "state": "enabled"}); v != float64(n) {
			t.Errorf("enabled keys of %s = %v, want %d", p.Region, v, n)
		}
	}
	for _, name := range []string{"kms_quota_limit", "kms_quota_used", "kms_key_scheduled_deletion_timestamp_seconds", "kms_keys_by_tag", "kms_cross_region_info", "kms_exporter_build_info", "kms_api_requests_total"} {
		if mfs[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if problems, err := promlint.New(strings.NewReader(body)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for strings.Count(stderr.String(), `msg="config loaded"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM\n%s", stderr)
	}
	logs := stderr.String()
	if !strings.Contains(logs, "SIMULATED data") {
		t.Errorf("no demo warning in logs:\n%s", logs)
	}
	if strings.Contains(logs, kmsfake.DemoAccessKey.SK) {
		t.Error("demo secret key logged")
	}
}
