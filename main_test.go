package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

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
	// Silently replaced by the default, or unlimited, these would be a
	// budget nobody asked for.
	for _, bad := range []string{
		"--kms.requests-per-second=0", "--kms.requests-per-second=-5", "--kms.requests-per-second=NaN",
		"--kms.requests-per-second=Inf", "--kms.concurrency=0", "--kms.concurrency=-1",
	} {
		flag, _, _ := strings.Cut(bad, "=")
		if _, _, err := parseFlags([]string{bad}); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: err %v, want an error naming %s", bad, err, flag)
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
		// Not finite, or below minScrapeTimeout: ignored like an absent
		// header, instead of leaving the scrape no time at all.
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
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := scrapeTimeout(r, 30*time.Second, 500*time.Millisecond); got != tc.want {
			t.Errorf("header %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}

func TestProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		// A long name is not echoed whole: the answer stays small.
		code, body = e.get(t, "/probe?target="+strings.Repeat("x", 20000))
		if code != 400 || len(body) > 1000 || !strings.Contains(body, `unknown target "xxxx`) {
			t.Errorf("long unknown target: %d, %d bytes: %.200s", code, len(body), body)
		}
		// A query Go cannot parse loses its pairs: say so, not "missing".
		code, body = e.get(t, "/probe?target=t0;x=1")
		if code != 400 || !strings.Contains(body, "bad query") || !strings.Contains(body, "semicolon") {
			t.Errorf("query with a semicolon: %d %s", code, body)
		}
	})
}

func TestRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}

func TestScrapeDeadlineFromHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1, "--kms.timeout=60s", "--kms.timeout-offset=0.5s")
		// Let the credential be accepted once, so the hanging call is not
		// the one kmsapi lets through alone.
		if code, _ := e.get(t, "/probe?target=t0"); code != 200 {
			t.Fatal("warm-up scrape failed")
		}
		e.fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Hang: true})
		code, body, took := e.scrape(t, "/probe?target=t0", "1.5")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		// The bubble's clock moves only when everything waits: the answer
		// comes exactly at the header's 1.5s minus the 0.5s offset.
		if took != time.Second {
			t.Errorf("answered after %v, want the 1s the header leaves", took)
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
	})
}

func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
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
		if code, body := e.reload(t); code != 200 {
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
		code, body := e.reload(t)
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
		if code, _ := e.reload(t); code != 200 || reloadOK() != 1 || targets() != 2 {
			t.Errorf("recovery reload: %d, gauge %v, %d targets", code, reloadOK(), targets())
		}
	})
}

func TestConcurrentScrapesOneSetOfCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1, "--kms.cache-ttl=1m")
		// Slow answers keep the first fetches in flight while the scrapes
		// pile up: without sharing each scrape would call every endpoint.
		// The clock stands still until all 50 scrapes wait.
		e.fake.SetFault("", kmsfake.Fault{Latency: 300 * time.Millisecond})
		e.fake.ResetRequests()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				code, body := e.get(t, "/probe?target=t0")
				if code != 200 || !strings.Contains(body, "kms_up{") {
					t.Errorf("scrape: %d", code)
				}
			})
		}
		wg.Wait()
		// The regions list is one page and the empty page that ends it.
		want := map[string]int{kmsapi.EndpointQuotas: 1, kmsapi.EndpointInstances: 1, kmsapi.EndpointResourceInstances: 1, kmsapi.EndpointRegions: 2}
		for ep, w := range want {
			if n := e.fake.Requests(ep); n != w {
				t.Errorf("%s: %d requests for 50 scrapes, want %d", ep, n, w)
			}
		}
	})
}

func TestSingleTargetMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memnet.Network
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 2, Projects: 1, KeysPerProject: 5, AccessKey: testAK})
		u := serveFake(t, &n, "kms.test", sc, nil).URL()
		env := map[string]string{"HUAWEICLOUD_SDK_AK": testAK.AK, "HUAWEICLOUD_SDK_SK": testAK.SK}
		getenv := func(k string) string { return env[k] }
		// No project ID: looked up in the fake's IAM.
		e := startSingleTarget(t, &n, getenv, sc.Projects[0], u)

		env = map[string]string{"HUAWEICLOUD_SDK_AK": testAK.AK}
		if _, err := singleTargetConfig(e.app.s, getenv); err == nil || !strings.Contains(err.Error(), "HUAWEICLOUD_SDK_SK") {
			t.Errorf("missing SK: %v", err)
		}
		if _, err := singleTargetConfig(&settings{}, getenv); err == nil || !strings.Contains(err.Error(), "--kms.region") {
			t.Errorf("missing region: %v", err)
		}
	})
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

var configLoaded = regexp.MustCompile(`msg="config loaded"`)

// TestDemoBinary runs the built kms_exporter with --demo, scrapes it over
// HTTP, reloads it with SIGHUP and stops it with SIGTERM.
func TestDemoBinary(t *testing.T) {
	p, base := startBinary(t, "http", "--demo")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := roundTrip(t, client, req)
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

	p.Signal(t, syscall.SIGHUP)
	p.WaitOutput(t, configLoaded, 2)

	p.Signal(t, syscall.SIGTERM)
	if err := p.Wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, p.Output())
	}
	logs := p.Stderr() // stdout holds the try-it config, public demo secret and all
	if !strings.Contains(logs, "SIMULATED data") {
		t.Errorf("no demo warning in logs:\n%s", logs)
	}
	if strings.Contains(logs, kmsfake.DemoAccessKey.SK) {
		t.Error("demo secret key logged")
	}
}
