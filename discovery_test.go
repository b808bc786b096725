package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// accountScenario is an account of two region projects, a sub-project, a
// sandbox sub-project and MOS.
func accountScenario() kmsfake.Scenario {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 4, Projects: 4, KeysPerProject: 3, AccessKey: testAK,
		Regions: []string{"cn-north-4", "ap-southeast-1"}})
	sc.Projects[2].Name = "cn-north-4_payments"
	sc.Projects[3].Name = "ap-southeast-1_sandbox"
	sc.OtherProjects = []kmsfake.IAMProject{{ID: "0123456789abcdef0123456789abcdef", Name: "MOS"}}
	return sc
}

// startAccount serves accountScenario from a fake for the test's length.
func startAccount(t *testing.T) (kmsfake.Scenario, *kmsfake.Server) {
	sc := accountScenario()
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	return sc, fake
}

// accountConfig has a static target on the cn-north-4 project (looked up by
// name) and discovers the rest, sandboxes excluded.
func accountConfig(url, extra string) string {
	return fmt.Sprintf(`credentials:
  prod:
    access_key: %s
    secret_key: %s
    iam_endpoint: %s
targets:
  - name: static-cn
    region: cn-north-4
    kms_endpoint: %s
%sdiscovery:
  - exclude: "_sandbox$"
    kms_endpoint: %s
    refresh_interval: 1h
`, testAK.AK, testAK.SK, url, url, extra, url)
}

// memEnv is an exporter whose API calls go to the fake in memory and whose
// HTTP routes are called in memory: inside a synctest bubble, its
// background discovery runs on the bubble's clock.
type memEnv struct {
	fake   *kmsfake.Server
	app    *app
	logs   *syncbuf.Buffer
	config string
}

func newMemEnv(t *testing.T, fake *kmsfake.Server, config string, flags ...string) *memEnv {
	t.Helper()
	e := &memEnv{fake: fake, logs: &syncbuf.Buffer{}, config: filepath.Join(t.TempDir(), "kms.yml")}
	e.write(t, config)
	s, _, err := parseFlags(append([]string{"--config.file=" + e.config}, flags...))
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLogger(e.logs, "debug", "logfmt")
	if e.app, err = newApp(s, logger, noEnv); err != nil {
		t.Fatal(err)
	}
	e.app.httpClient = fake.InMemoryClient()
	if err := e.app.reload(); err != nil {
		t.Fatalf("%v\n%s", err, e.logs)
	}
	return e
}

func (e *memEnv) write(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (e *memEnv) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.app.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// targets returns /targets as "name discovered project_id" lines.
func (e *memEnv) targets(t *testing.T) string {
	t.Helper()
	code, body := e.get(t, "/targets")
	if code != http.StatusOK {
		t.Fatalf("/targets: %d %s", code, body)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		t.Fatalf("/targets is not HTTP SD JSON: %v\n%s", err, body)
	}
	var lines []string
	for _, g := range groups {
		if len(g.Targets) != 1 {
			t.Fatalf("group %+v: want one target", g)
		}
		lines = append(lines, g.Targets[0]+" "+g.Labels["__meta_kms_discovered"]+" "+g.Labels["__meta_kms_project_id"])
	}
	return strings.Join(lines, "\n")
}

// metric returns the value of the series of name with all the labels; false when absent.
func (e *memEnv) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	code, body := e.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return value(parse(t, body), name, labels)
}

// /targets lists the static target and what discovery found, with their
// labels; every target answers /probe and /metrics, and the landing page
// shows the discovered ones.
func TestDiscoveredTargets(t *testing.T) {
	sc, fake := startAccount(t)
	synctest.Test(t, func(t *testing.T) {
		e := newMemEnv(t, fake, accountConfig(fake.URL(), ""))
		defer e.app.close()
		start := time.Now()

		code, body := e.get(t, "/targets")
		want := fmt.Sprintf(`[{"targets":["static-cn"],"labels":{"__meta_kms_credentials":"prod","__meta_kms_discovered":"false","__meta_kms_project_id":"","__meta_kms_project_name":"cn-north-4","__meta_kms_region":"cn-north-4"}},`+
			`{"targets":["prod/ap-southeast-1"],"labels":{"__meta_kms_credentials":"prod","__meta_kms_discovered":"true","__meta_kms_project_id":"%s","__meta_kms_project_name":"ap-southeast-1","__meta_kms_region":"ap-southeast-1"}},`+
			`{"targets":["prod/cn-north-4_payments"],"labels":{"__meta_kms_credentials":"prod","__meta_kms_discovered":"true","__meta_kms_project_id":"%s","__meta_kms_project_name":"cn-north-4_payments","__meta_kms_region":"cn-north-4"}}]`+"\n",
			sc.Projects[1].ID, sc.Projects[2].ID)
		if code != http.StatusOK || body != want {
			t.Fatalf("/targets: %d\n%s\nwant\n%s", code, body, want)
		}

		rec := httptest.NewRecorder()
		e.app.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/targets", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /targets: %d, want 405", rec.Code)
		}

		code, body = e.get(t, "/probe?target="+"prod/cn-north-4_payments")
		if v, ok := value(parse(t, body), "kms_up", map[string]string{"project_id": sc.Projects[2].ID, "region": "cn-north-4"}); code != 200 || !ok || v != 1 {
			t.Errorf("/probe of a discovered target: %d, kms_up %v %v", code, v, ok)
		}
		for i := range 3 {
			if v, ok := e.metric(t, "kms_up", map[string]string{"project_id": sc.Projects[i].ID}); !ok || v != 1 {
				t.Errorf("/metrics: kms_up of project %d = %v (present %v)", i, v, ok)
			}
		}
		if v, ok := e.metric(t, "kms_up", map[string]string{"project_id": sc.Projects[3].ID}); ok {
			t.Errorf("the excluded sandbox is scraped: kms_up %v", v)
		}
		if v, _ := e.metric(t, "kms_discovery_targets", map[string]string{"credentials": "prod"}); v != 2 {
			t.Errorf("kms_discovery_targets = %v, want 2", v)
		}
		if v, _ := e.metric(t, "kms_discovery_last_success_timestamp_seconds", map[string]string{"credentials": "prod"}); v != float64(start.Unix()) {
			t.Errorf("kms_discovery_last_success_timestamp_seconds = %v, want %d", v, start.Unix())
		}
		if _, ok := e.metric(t, "kms_api_rate_limit_wait_seconds_total", map[string]string{"credentials": "prod"}); !ok {
			t.Error("kms_api_rate_limit_wait_seconds_total missing")
		}
		if _, body := e.get(t, "/"); !strings.Contains(body, "prod/cn-north-4_payments") {
			t.Error("the landing page does not show the discovered target")
		}
	})
}

// In the background: a new project becomes a target at the next refresh;
// a failed refresh keeps the last list and says so in the log and the
// metrics; a reload lists again at once; a static target added by a reload
// wins over the discovered one at once. The bubble's clock moves by whole
// hours for the refreshes, and by a few seconds more for what the
// refreshes themselves wait: the rate limit and the client's retries.
func TestDiscoveryRefreshAndReload(t *testing.T) {
	sc, fake := startAccount(t)
	ap, pay := sc.Projects[1].ID, sc.Projects[2].ID
	synctest.Test(t, func(t *testing.T) {
		fake.HideProjects(pay)
		e := newMemEnv(t, fake, accountConfig(fake.URL(), ""))
		defer e.app.close()
		start := time.Now()
		if got, want := e.targets(t), "static-cn false \nprod/ap-southeast-1 true "+ap; got != want {
			t.Fatalf("at start:\n%s\nwant\n%s", got, want)
		}

		fake.HideProjects()
		time.Sleep(time.Hour + 10*time.Second)
		synctest.Wait()
		if got, want := e.targets(t), "static-cn false \nprod/ap-southeast-1 true "+ap+"\nprod/cn-north-4_payments true "+pay; got != want {
			t.Fatalf("an hour later:\n%s\nwant\n%s", got, want)
		}
		if code, _ := e.get(t, "/probe?target=prod/cn-north-4_payments"); code != http.StatusOK {
			t.Errorf("/probe of the new target: %d", code)
		}

		fake.SetFault(kmsapi.EndpointIAMProjectList, kmsfake.Fault{Status: http.StatusServiceUnavailable})
		time.Sleep(time.Hour + 10*time.Second)
		synctest.Wait()
		if got := e.targets(t); !strings.Contains(got, "prod/cn-north-4_payments") {
			t.Fatalf("after a failed refresh:\n%s", got)
		}
		if v, _ := e.metric(t, "kms_discovery_last_success_timestamp_seconds", map[string]string{"credentials": "prod"}); v != float64(start.Add(time.Hour).Unix()) {
			t.Errorf("last success %v, want the refresh an hour before the failure (%d)", v, start.Add(time.Hour).Unix())
		}
		if v, _ := e.metric(t, "kms_discovery_targets", map[string]string{"credentials": "prod"}); v != 2 {
			t.Errorf("kms_discovery_targets = %v after a failed refresh, want the 2 kept", v)
		}
		if !strings.Contains(e.logs.String(), `msg="discovery refresh failed; keeping the last list of targets" credentials=prod targets_kept=2`) {
			t.Errorf("no log line of the failed refresh:\n%s", e.logs)
		}

		fake.ClearFaults()
		fake.HideProjects(ap)
		listings := fake.Requests(kmsapi.EndpointIAMProjectList)
		if err := e.app.reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := fake.Requests(kmsapi.EndpointIAMProjectList) - listings; n != 1 {
			t.Errorf("the reload listed the projects %d times, want 1", n)
		}
		if got, want := e.targets(t), "static-cn false \nprod/cn-north-4_payments true "+pay; got != want {
			t.Fatalf("after the reload:\n%s\nwant\n%s", got, want)
		}

		fake.SetFault(kmsapi.EndpointIAMProjectList, kmsfake.Fault{Status: http.StatusServiceUnavailable})
		e.write(t, accountConfig(fake.URL(), fmt.Sprintf("  - {name: mine, region: cn-north-4, project_id: %s, kms_endpoint: %s}\n", pay, fake.URL())))
		if err := e.app.reload(); err != nil {
			t.Fatal(err)
		}
		if got, want := e.targets(t), "static-cn false \nmine false "+pay; got != want {
			t.Fatalf("after adding a static target for the discovered project:\n%s\nwant\n%s", got, want)
		}
	})
}

// Discovered targets use their entry's credential object: after a 401 on a
// static target, the credential rests, and a discovered target of the same
// credential makes no call either.
func TestDiscoveredTargetsSharePause(t *testing.T) {
	sc, fake := startAccount(t)
	synctest.Test(t, func(t *testing.T) {
		e := newMemEnv(t, fake, accountConfig(fake.URL(), ""))
		defer e.app.close()
		fake.SetFault("", kmsfake.Fault{Status: http.StatusUnauthorized})
		e.get(t, "/probe?target=static-cn")
		fake.ClearFaults()
		before := fake.Requests("")
		_, body := e.get(t, "/probe?target=prod/ap-southeast-1")
		if v, _ := value(parse(t, body), "kms_up", map[string]string{"project_id": sc.Projects[1].ID}); v != 0 {
			t.Errorf("kms_up %v during the pause, want 0", v)
		}
		if n := fake.Requests("") - before; n != 0 {
			t.Errorf("the discovered target made %d calls while its credential rests", n)
		}
		l := e.app.cur.Load()
		for _, ct := range collectorTargets(l.cfg, l.creds, l.disc.Targets()) {
			if ct.Credential != l.creds.Get("prod") {
				t.Errorf("target %s has a credential object of its own", ct.Name)
			}
		}
	})
}

// A run of 1,000 discovered projects: every one a target in /targets, and
// up in one /metrics scrape.
func TestThousandDiscoveredProjects(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 6, Projects: 1000, KeysPerProject: 1, AccessKey: testAK})
	for i := range sc.Projects {
		sc.Projects[i].Name = fmt.Sprintf("%s_p%04d", sc.Projects[i].Region, i)
	}
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	synctest.Test(t, func(t *testing.T) {
		cfg := fmt.Sprintf("credentials:\n  big: {access_key: %s, secret_key: %s, iam_endpoint: %s}\ndiscovery:\n  - kms_endpoint: %s\n",
			testAK.AK, testAK.SK, fake.URL(), fake.URL())
		e := newMemEnv(t, fake, cfg, "--kms.timeout=10m")
		defer e.app.close()
		if n := strings.Count(e.targets(t), " true "); n != 1000 {
			t.Fatalf("%d discovered targets, want 1000", n)
		}
		code, body := e.get(t, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		mfs := parse(t, body)
		up := 0
		for _, m := range mfs["kms_up"].GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				up++
			}
		}
		if up != 1000 {
			t.Errorf("%d targets up, want 1000", up)
		}
		if v, _ := value(mfs, "kms_discovery_targets", map[string]string{"credentials": "big"}); v != 1000 {
			t.Errorf("kms_discovery_targets = %v", v)
		}
		// 4,000 calls at 10 per second: they queued for the rate limit.
		if v, _ := value(mfs, "kms_api_rate_limit_wait_seconds_total", map[string]string{"credentials": "big"}); v < 300 {
			t.Errorf("kms_api_rate_limit_wait_seconds_total = %v, want the queueing of 4,000 calls at 10/s", v)
		}
	})
}
