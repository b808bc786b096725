//go:build e2e

// The end-to-end test: kms_exporter --demo scraped by a real Prometheus with
// the shipped alert rules, alerts delivered by a real Alertmanager to a
// webhook this test serves, the dashboard's queries run against that
// Prometheus, and the shipped files checked with promtool and amtool.
//
// Run it with make e2e. It needs Debian's prometheus and
// prometheus-alertmanager packages, which .ci/run installs; without them it
// fails and says what to install. Everything listens on 127.0.0.1 and lives
// in temporary directories; no service of the system is used.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/testbin"
)

// Every for: of the shipped rules is cut to this (see ShortenFor).
const shortFor = 2 * time.Second

// demoRPS is the --kms.requests-per-second of the exporters under test:
// scrapes every second of the demo's six targets need about 18 API calls a
// second, more than the default rate limit of 10; the demo's fake has no
// rate limit of its own.
const demoRPS = "100"

// tools are the absolute paths of the Prometheus and Alertmanager binaries.
type tools struct {
	prometheus, promtool, alertmanager, amtool string
}

func findTools() (tools, []string) {
	var tl tools
	var missing []string
	look := func(dst *string, names ...string) {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				*dst = p
				return
			}
		}
		missing = append(missing, names[0])
	}
	look(&tl.prometheus, "prometheus")
	look(&tl.promtool, "promtool")
	// Debian installs Alertmanager as prometheus-alertmanager.
	look(&tl.alertmanager, "alertmanager", "prometheus-alertmanager")
	look(&tl.amtool, "amtool")
	return tl, missing
}

// needTools finds the Prometheus and Alertmanager binaries, or fails
// naming what to install.
func needTools(t *testing.T) tools {
	tl, missing := findTools()
	if len(missing) > 0 {
		t.Fatalf("missing %v: install Debian's prometheus and prometheus-alertmanager packages (.ci/run does)", missing)
	}
	return tl
}

func TestMain(m *testing.M) { testbin.Main(m) }

// poll calls f every 250ms until it returns nil, the process p (if any)
// exits, or ctx ends; then it fails the test with f's last error. It is for
// what Prometheus and Alertmanager do on their own schedule.
func poll(ctx context.Context, t *testing.T, what string, p *testbin.Proc, f func() error) {
	t.Helper()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.Exited()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: gave up: %v", what, err)
		case <-exited:
			t.Fatalf("%s: %s exited (%v)", what, p.Name, p.Err())
		case <-tick.C:
		}
	}
}

var (
	client      = &http.Client{Timeout: 30 * time.Second} // a backstop; polls retry
	probeLinkRE = regexp.MustCompile(`probe\?target=([^"&<>\s]+)`)
)

func get(u string) ([]byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	return body, nil
}

func waitReady(ctx context.Context, t *testing.T, p *testbin.Proc, u string) {
	t.Helper()
	poll(ctx, t, p.Name+" ready", p, func() error { _, err := get(u); return err })
}

// promSample is one element of an instant vector answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	v, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// query runs an instant query; an error answer is an error.
func query(prom, expr string) ([]promSample, error) {
	body, err := get(prom + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", expr, r.Data.ResultType)
	}
	var out []promSample
	return out, json.Unmarshal(r.Data.Result, &out)
}

// webhookAlert is an alert as Alertmanager's webhook receiver sends it.
type webhookAlert struct {
	Receiver    string            `json:"-"` // the path it was posted to
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type webhook struct {
	mu     sync.Mutex
	alerts []webhookAlert
	errs   []string
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var msg struct {
		Version string         `json:"version"`
		Alerts  []webhookAlert `json:"alerts"`
	}
	err := json.NewDecoder(r.Body).Decode(&msg)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || msg.Version != "4" {
		w.errs = append(w.errs, fmt.Sprintf("bad webhook message (version %q): %v", msg.Version, err))
		http.Error(rw, "bad message", http.StatusBadRequest)
		return
	}
	for _, a := range msg.Alerts {
		a.Receiver = strings.TrimPrefix(r.URL.Path, "/")
		w.alerts = append(w.alerts, a)
	}
}

// all returns every alert received so far.
func (w *webhook) all() []webhookAlert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookAlert(nil), w.alerts...)
}

func readShipped(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// find returns the firing alerts received so far with all labels of want.
func (w *webhook) find(want map[string]string) []webhookAlert {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []webhookAlert
next:
	for _, a := range w.alerts {
		if a.Status != "firing" {
			continue
		}
		for k, v := range want {
			if a.Labels[k] != v {
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

// runTool runs a check command and fails on a non-zero exit or, when
// quiet is set, on any output at all.
func runTool(ctx context.Context, t *testing.T, quiet bool, stdin []byte, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	name := filepath.Base(bin) + " " + strings.Join(args, " ")
	if err != nil {
		t.Errorf("%s: %v\n%s", name, err, out)
	} else if quiet && len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("%s: findings:\n%s", name, out)
	} else if !quiet {
		// promtool and amtool report problems as lines mentioning them
		// even when they exit 0 (lint warnings).
		for _, line := range strings.Split(string(out), "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "warn") || strings.Contains(l, "fail") || strings.Contains(l, "error") {
				t.Errorf("%s: finding: %s", name, line)
			}
		}
	}
	return string(out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEndToEnd(t *testing.T) {
	tl := needTools(t)
	bin := testbin.Binary(t)
	// Polls give up shortly before go test's -timeout, with what they
	// last saw; no step has a budget of its own.
	ctx := testbin.Context(t)
	began := time.Now()
	dir := t.TempDir()

	// Static checks of the shipped files, before anything runs.
	rules, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	short, err := ShortenFor(rules, shortFor)
	if err != nil {
		t.Fatal(err)
	}
	shortRules := filepath.Join(dir, "alerts.yml")
	writeFile(t, shortRules, string(short))
	runTool(ctx, t, false, nil, tl.promtool, "check", "rules", "../deploy/prometheus/alerts.yml")
	runTool(ctx, t, false, nil, tl.promtool, "check", "rules", shortRules)
	runTool(ctx, t, false, nil, tl.promtool, "test", "rules", "../deploy/prometheus/alerts_test.yml")
	runTool(ctx, t, false, nil, tl.promtool, "check", "config", "../deploy/prometheus/prometheus.yml")
	runTool(ctx, t, false, nil, tl.amtool, "check-config", "../deploy/alertmanager/alertmanager.yml")
	// The example routes by severity.
	for sev, receiver := range map[string]string{"critical": "kms-pager", "warning": "kms-tickets", "info": "kms-default"} {
		// stdout only: amtool warns on stderr that --config.file
		// overrides its (unused) --alertmanager.url.
		cmd := exec.CommandContext(ctx, tl.amtool, "config", "routes", "test",
			"--config.file=../deploy/alertmanager/alertmanager.yml", "alertname=KMSQuotaUsageHigh", "severity="+sev)
		out, err := cmd.Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != receiver {
			t.Errorf("alertmanager.yml routes severity=%s to %q (%v), want %s", sev, got, err, receiver)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 1. The exporter, Alertmanager with this test's webhook, Prometheus.
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook) // 127.0.0.1
	t.Cleanup(hookSrv.Close)

	// It listens once its config is loaded: ready.
	exporter := testbin.Start(t, "kms_exporter", bin, "--demo", "--kms.requests-per-second="+demoRPS, "--web.listen-address=127.0.0.1:0")
	expAddr := exporter.ListenAddress(t)
	expURL := "http://" + expAddr

	amAddr := freeAddr(t)
	amConfig := filepath.Join(dir, "alertmanager.yml")
	// The shipped routing, each receiver posting to hook/NAME.
	amYAML, err := AlertmanagerForTest(readShipped(t, "../deploy/alertmanager/alertmanager.yml"), hookSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, amConfig, string(amYAML))
	runTool(ctx, t, false, nil, tl.amtool, "check-config", amConfig)
	am := testbin.Start(t, "alertmanager", tl.alertmanager,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=", // no gossip port
	)
	waitReady(ctx, t, am, "http://"+amAddr+"/-/ready")

	promAddr := freeAddr(t)
	// The shipped jobs: kms_probe from the exporter's /targets, and
	// kms_exporter; its rule_files alerts.yml is the shortened copy beside it.
	promConfig := filepath.Join(dir, "prometheus.yml")
	promYAML, err := PrometheusForTest(readShipped(t, "../deploy/prometheus/prometheus.yml"), expAddr, amAddr)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, promConfig, string(promYAML))
	runTool(ctx, t, false, nil, tl.promtool, "check", "config", promConfig)
	prom := testbin.Start(t, "prometheus", tl.prometheus,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(dir, "prom-data"),
		"--web.listen-address="+promAddr,
	)
	promURL := "http://" + promAddr
	waitReady(ctx, t, prom, promURL+"/-/ready")

	// 4 (exporter part). promtool check metrics on /metrics and on the
	// /probe of each target the landing page links.
	metrics, err := get(expURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	runTool(ctx, t, true, metrics, tl.promtool, "check", "metrics")
	// The landing page links /probe for every configured target.
	landing, err := get(expURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	probes := probeLinkRE.FindAllStringSubmatch(string(landing), -1)
	if len(probes) == 0 {
		t.Errorf("landing page links no /probe?target=: %.500s", landing)
	}
	for _, m := range probes {
		name, err := url.QueryUnescape(m[1])
		if err != nil {
			t.Fatal(err)
		}
		body, err := get(expURL + "/probe?target=" + url.QueryEscape(name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(body, []byte("\nkms_up{")) {
			t.Errorf("/probe?target=%s has no kms_up", name)
		}
		if bytes.Contains(body, []byte("kms_api_requests_total")) {
			t.Errorf("/probe?target=%s has kms_api_requests_total, which belongs to /metrics only", name)
		}
		runTool(ctx, t, true, body, tl.promtool, "check", "metrics")
	}
	if resp, err := client.Get(expURL + "/probe?target=no-such-target"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/probe of an unknown target: %s, want 400", resp.Status)
		}
	}

	// 2. The target is up.
	poll(ctx, t, "exporter target up", prom, func() error {
		body, err := get(promURL + "/api/v1/targets")
		if err != nil {
			return err
		}
		var r struct {
			Data struct {
				ActiveTargets []struct {
					ScrapeURL string `json:"scrapeUrl"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		for _, tg := range r.Data.ActiveTargets {
			if strings.Contains(tg.ScrapeURL, expAddr) {
				if tg.Health == "up" {
					return nil
				}
				return fmt.Errorf("target %s: health %q %s", tg.ScrapeURL, tg.Health, tg.LastError)
			}
		}
		return errors.New("exporter target not listed yet")
	})
	t.Logf("target up after %s", time.Since(began).Round(time.Millisecond))

	// What the alerts should find in the demo data, from Prometheus itself.
	var overQuota, quotaAlertsWant, pendingKeys []promSample
	poll(ctx, t, "demo data scraped", prom, func() error {
		var err error
		if overQuota, err = query(promURL, `100 * kms_quota_used{resource="CMK"} / kms_quota_limit{resource="CMK"} > 90`); err != nil {
			return err
		}
		if quotaAlertsWant, err = query(promURL, `100 * kms_quota_used{resource="CMK"} / (kms_quota_limit{resource="CMK"} > 0) > 80`); err != nil {
			return err
		}
		if pendingKeys, err = query(promURL, `(kms_key_scheduled_deletion_timestamp_seconds - time()) < 7 * 86400`); err != nil {
			return err
		}
		if len(overQuota) == 0 || len(pendingKeys) == 0 {
			return fmt.Errorf("demo data: %d projects above 90%% of the CMK quota, %d keys deleted within 7 days; want at least one each",
				len(overQuota), len(pendingKeys))
		}
		return nil
	})

	// The CMK warning and the deletion alerts reach the webhook through
	// Alertmanager, with their labels and annotations.
	type expect struct {
		what   string
		labels map[string]string
	}
	var expects []expect
	for _, s := range overQuota {
		expects = append(expects, expect{"CMK quota warning for " + s.Metric["project_id"], map[string]string{
			"alertname": "KMSQuotaUsageHigh", "severity": "warning", "resource": "CMK",
			"region": s.Metric["region"], "project_id": s.Metric["project_id"],
			"job": "kms_probe", "instance": s.Metric["instance"],
		}})
	}
	for _, s := range pendingKeys {
		expects = append(expects, expect{"deletion alert for key " + s.Metric["key_id"], map[string]string{
			"alertname": "KMSKeyDeletionScheduled", "severity": "warning",
			"region": s.Metric["region"], "project_id": s.Metric["project_id"],
			"key_id": s.Metric["key_id"], "key_alias": s.Metric["key_alias"],
		}})
	}
	// An info alert: demo keys without rotation, routed to the default
	// receiver.
	expects = append(expects, expect{"rotation info", map[string]string{"alertname": "KMSKeyRotationDisabled", "severity": "info"}})
	poll(ctx, t, "alerts at the webhook", am, func() error {
		hook.mu.Lock()
		errs := hook.errs
		hook.mu.Unlock()
		if len(errs) > 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		var missing []string
		for _, e := range expects {
			got := hook.find(e.labels)
			if len(got) == 0 {
				missing = append(missing, e.what)
				continue
			}
			if got[0].Annotations["summary"] == "" || got[0].Annotations["description"] == "" {
				return fmt.Errorf("%s arrived without summary/description: %v", e.what, got[0].Annotations)
			}
			if strings.Contains(got[0].Annotations["description"], "<no value>") {
				return fmt.Errorf("%s: template left <no value>: %s", e.what, got[0].Annotations["description"])
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not received yet: %s", strings.Join(missing, ", "))
		}
		return nil
	})
	t.Logf("%d expected alerts received after %s", len(expects), time.Since(began).Round(time.Millisecond))
	// The shipped routes: critical to the pager, warning to tickets, the
	// rest to the default receiver.
	for _, a := range hook.all() {
		want := map[string]string{"critical": "pager", "warning": "tickets"}[a.Labels["severity"]]
		if want == "" {
			want = "default"
		}
		if a.Receiver != want {
			t.Errorf("%s (severity %s) went to receiver %s, want %s", a.Labels["alertname"], a.Labels["severity"], a.Receiver, want)
		}
	}

	// The quota warning fires for exactly the resources above 80%: none
	// for the projects below.
	firing, err := query(promURL, `ALERTS{alertname="KMSQuotaUsageHigh",alertstate="firing"}`)
	if err != nil {
		t.Fatal(err)
	}
	key := func(m map[string]string) string { return m["region"] + "/" + m["project_id"] + "/" + m["resource"] }
	var gotKeys, wantKeys []string
	for _, s := range firing {
		gotKeys = append(gotKeys, key(s.Metric))
	}
	for _, s := range quotaAlertsWant {
		wantKeys = append(wantKeys, key(s.Metric))
	}
	sort.Strings(gotKeys)
	sort.Strings(wantKeys)
	if strings.Join(gotKeys, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("KMSQuotaUsageHigh firing for %v, want exactly %v", gotKeys, wantKeys)
	}

	// 3. Every dashboard query returns data, with the variables at All.
	dash, err := os.ReadFile("../dashboards/kms.json")
	if err != nil {
		t.Fatal(err)
	}
	queries, vars, err := Dashboard(dash)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		expr, err := Substitute(q.Expr, AllValues)
		if err != nil {
			t.Fatal(err)
		}
		poll(ctx, t, fmt.Sprintf("dashboard %q query %s returns data", q.Panel, q.RefID), prom, func() error {
			res, err := query(promURL, expr)
			if err != nil {
				return err
			}
			for _, s := range res {
				if !math.IsNaN(s.float()) {
					return nil
				}
			}
			return fmt.Errorf("no data (%d series, all NaN): %s", len(res), expr)
		})
	}
	// The variables' label_values queries find the demo regions and
	// projects; each query also runs with one concrete region and project.
	values := map[string][]string{}
	for _, v := range vars {
		if v.Type != "query" {
			continue
		}
		sel, label, err := LabelValuesQuery(v.Query)
		if err != nil {
			t.Fatal(err)
		}
		if sel, err = Substitute(sel, AllValues); err != nil {
			t.Fatal(err)
		}
		res, err := query(promURL, sel)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, s := range res {
			if l := s.Metric[label]; l != "" && !seen[l] {
				seen[l] = true
				values[v.Name] = append(values[v.Name], l)
			}
		}
		if len(values[v.Name]) == 0 {
			t.Errorf("variable %s (%s) has no values", v.Name, v.Query)
		}
	}
	if len(overQuota) > 0 {
		one := map[string]string{}
		for k, v := range AllValues {
			one[k] = v
		}
		one["region"] = overQuota[0].Metric["region"]
		one["project_id"] = overQuota[0].Metric["project_id"]
		for _, q := range queries {
			expr, err := Substitute(q.Expr, one)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := query(promURL, expr); err != nil {
				t.Errorf("dashboard %q query %s with region %s: %v", q.Panel, q.RefID, one["region"], err)
			}
		}
	}

	// The goal is under 3 minutes on an idle machine; a loaded one may
	// take longer, which is no failure.
	t.Logf("done in %s (%d dashboard queries, variables %v)", time.Since(began).Round(time.Millisecond), len(queries), values)
}
