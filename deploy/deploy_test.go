// Package deploy holds no code: its tests keep the operations files
// (dashboard, alert rules, Kubernetes manifests, systemd unit, Dockerfile)
// consistent with each other and with the metrics the exporter exposes (collector.Metrics).
// The end-to-end test (make e2e) runs the rules and queries against a real
// Prometheus; these tests run in make test and need no tools.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kms-exporter/kms_exporter/collector"
)

// specMetrics are the metric names the exporter can expose, as the
// collector lists them. Dashboard and alert rules may use no other kms_ metric.
// specHistograms may appear with the _bucket, _sum and _count suffixes.
// specLabels are their label names, plus the ones Prometheus adds (job,
// instance) and the histogram's le.
var specMetrics, specHistograms, specLabels = func() (map[string]bool, []string, map[string]bool) {
	names := map[string]bool{}
	var histograms []string
	labels := map[string]bool{"le": true, "job": true, "instance": true}
	for _, m := range collector.Metrics() {
		names[m.Name] = true
		if m.Type == "histogram" {
			histograms = append(histograms, m.Name)
		}
		for _, l := range m.Labels {
			labels[l] = true
		}
	}
	return names, histograms, labels
}()

var (
	metricRE = regexp.MustCompile(`\bkms_[a-z0-9_]+`)
	// A label matcher inside {...}: name, operator, opening quote.
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	// by (...), without (...), on (...), ignoring (...), group_left (...).
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
)

// exprProblems lists the kms_ metric names and label names in expr that
// the exporter does not expose.
func exprProblems(expr string) []string {
	if strings.TrimSpace(expr) == "" {
		return []string{"empty expression"}
	}
	var out []string
	for _, name := range metricRE.FindAllString(expr, -1) {
		base := name
		for _, h := range specHistograms {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if name == h+suffix {
					base = h
				}
			}
		}
		if !specMetrics[base] {
			out = append(out, "metric "+name+" is not exposed by the exporter")
		}
	}
	for _, m := range matcherRE.FindAllStringSubmatch(expr, -1) {
		if m[1] != "__name__" && !specLabels[m[1]] {
			out = append(out, "label "+m[1]+" is not exposed by the exporter")
		}
	}
	for _, m := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !specLabels[l] {
				out = append(out, "grouping label "+l+" is not exposed by the exporter")
			}
		}
	}
	return out
}

func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	for _, p := range exprProblems(expr) {
		t.Errorf("%s: %s: %s", where, p, expr)
	}
}

func TestExprProblems(t *testing.T) {
	// exprProblems guards the other tests here: make sure it can fail.
	for _, expr := range []string{
		`kms_quota_total{type="CMK"}`,
		`sum by (type) (kms_quota_used)`,
		`kms_api_request_duration_seconds_total`,
		`kms_quota_used{kind="CMK"}`,
		` `,
	} {
		if len(exprProblems(expr)) == 0 {
			t.Errorf("exprProblems accepted %q", expr)
		}
	}
	for _, expr := range []string{
		`histogram_quantile(0.9, sum by (le, endpoint) (rate(kms_api_request_duration_seconds_bucket[5m])))`,
		`100 * kms_quota_used{resource="CMK",region=~"$region"} / (kms_quota_limit > 0) > 80`,
		`kms_up == 0`,
	} {
		if p := exprProblems(expr); len(p) != 0 {
			t.Errorf("exprProblems(%q) = %v, want none", expr, p)
		}
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// dig walks a decoded YAML/JSON document along keys (string) and indexes (int).
func dig(doc any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := doc.(map[string]any)
			if !ok {
				return nil
			}
			doc = m[k]
		case int:
			l, ok := doc.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			doc = l[k]
		}
	}
	return doc
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			KeepFiring  string            `yaml:"keep_firing_for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The mixin's defaults: rules select the exporter's jobs, and every alert
// links its section of the runbook.
const (
	jobSelector = `job=~"kms.*"`
	runbookURL  = "https://github.com/kms-exporter/kms_exporter/blob/main/deploy/runbook.md"
)

func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	runbook, err := os.ReadFile("runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := runbookSections(string(runbook))
	got := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert
			if r.Alert == "" {
				t.Errorf("%s: rule without alert name (recording rules belong elsewhere)", g.Name)
				continue
			}
			if _, dup := got[r.Alert]; dup {
				t.Errorf("%s: duplicate alert", where)
			}
			got[r.Alert] = r.Labels["severity"]
			if s := r.Labels["severity"]; s != "info" && s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want info, warning or critical", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations required", where)
			}
			// Without for:, a scrape gap resolves the alert and the next
			// scrape fires it again.
			if r.For == "" {
				t.Errorf("%s: no for:", where)
			}
			if !strings.Contains(r.Expr, jobSelector) {
				t.Errorf("%s: expression does not use the job selector %s: %s", where, jobSelector, r.Expr)
			}
			if want := runbookURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", where, r.Annotations["runbook_url"], want)
			}
			sec, ok := sections[r.Alert]
			if !ok {
				t.Errorf("%s: runbook.md has no section ## %s", where, r.Alert)
			}
			for _, part := range []string{"**Meaning.**", "**How to check.**", "**How to fix.**"} {
				if ok && !strings.Contains(sec, part) {
					t.Errorf("runbook.md section %s lacks %s", r.Alert, part)
				}
			}
			checkExpr(t, where, r.Expr)
		}
	}
	for name := range sections {
		if _, ok := got[name]; !ok {
			t.Errorf("runbook.md has a section %s for no alert", name)
		}
	}
	want := map[string]string{
		"KMSQuotaUsageHigh":             "warning",
		"KMSQuotaUsageCritical":         "critical",
		"KMSQuotaExhaustionPredicted":   "warning",
		"KMSGrantQuotaUsageHigh":        "warning",
		"KMSKeyDeletionScheduled":       "warning",
		"KMSKeyMaterialExpiring":        "warning",
		"KMSKeyRotationDisabled":        "info",
		"KMSExporterDown":               "warning",
		"KMSExporterAbsent":             "warning",
		"KMSExporterTargetDown":         "warning",
		"KMSExporterCollectorFailing":   "warning",
		"KMSExporterThrottled":          "warning",
		"KMSExporterConfigReloadFailed": "warning",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alerts and severities:\n got %v\nwant %v", got, want)
	}

	// Every alert has a promtool unit test.
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if !bytes.Contains(tests, []byte("alertname: "+name+"\n")) {
			t.Errorf("alerts_test.yml has no test for %s", name)
		}
	}
}

// runbookSections maps each "## NAME" heading of the runbook to its text.
func runbookSections(md string) map[string]string {
	out := map[string]string{}
	parts := strings.Split("\n"+md, "\n## ")
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		out[strings.TrimSpace(name)] = body
	}
	return out
}

func TestPrometheusRuleMatchesAlerts(t *testing.T) {
	alerts := readYAML(t, "prometheus/alerts.yml")
	pr := readYAML(t, "kubernetes/base/prometheusrule.yaml")
	if k := dig(pr, "kind"); k != "PrometheusRule" {
		t.Fatalf("kind %v, want PrometheusRule", k)
	}
	want, got := alerts["groups"], dig(pr, "spec", "groups")
	if want == nil {
		t.Fatal("alerts.yml has no groups")
	}
	if !reflect.DeepEqual(got, want) {
		w, _ := yaml.Marshal(want)
		g, _ := yaml.Marshal(got)
		t.Errorf("kubernetes/base/prometheusrule.yaml spec.groups differ from prometheus/alerts.yml groups.\nalerts.yml:\n%s\nprometheusrule.yaml:\n%s", w, g)
	}
}

type dashboard struct {
	// grafana.com import: the data source the import asks for.
	Inputs []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
			AllValue   string         `json:"allValue"`
			Multi      bool           `json:"multi"`
			IncludeAll bool           `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("../dashboards/kms.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("trailing data after the dashboard JSON: %v", err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "kms-exporter-overview" {
		t.Errorf("uid %q: links to the dashboard depend on a stable uid", d.UID)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("datasource variable: type %q query %v, want datasource/prometheus", v.Type, v.Query)
			}
		case "job", "instance", "region", "project_id":
			q, _ := v.Query.(string)
			if v.Type != "query" || !strings.HasPrefix(q, "label_values(") || !strings.Contains(q, ", "+v.Name+")") {
				t.Errorf("%s variable: type %q query %v, want a label_values query", v.Name, v.Type, v.Query)
			}
			if v.Datasource["uid"] != "${datasource}" {
				t.Errorf("%s variable: datasource %v, want ${datasource}", v.Name, v.Datasource)
			}
			if !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("%s variable: want multi-value with All = .*", v.Name)
			}
			checkExpr(t, "variable "+v.Name, q)
		}
	}
	for _, name := range []string{"datasource", "job", "instance", "region", "project_id"} {
		if !vars[name] {
			t.Errorf("missing variable %s", name)
		}
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want the one Prometheus data source DS_PROMETHEUS", d.Inputs)
	}
	if raw, _ := os.ReadFile("../dashboards/kms.json"); !bytes.Contains(raw, []byte(`"value": "${DS_PROMETHEUS}"`)) {
		t.Error("the datasource variable does not default to the imported ${DS_PROMETHEUS}")
	}

	ids := map[int]bool{}
	titles := map[string]bool{}
	var exprs int
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("duplicate panel id %d", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			where := p.Title + "/" + tg.RefID
			if tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("%s: datasource %v, want ${datasource}", where, tg.Datasource)
			}
			checkExpr(t, where, tg.Expr)
			// Every query follows job, instance and region; per-target
			// metrics also follow the project (the API metrics have no
			// project_id).
			follows := []string{`job=~"$job"`, `instance=~"$instance"`, `region=~"$region"`}
			if !strings.Contains(tg.Expr, "kms_api_") {
				follows = append(follows, `project_id=~"$project_id"`)
			}
			for _, f := range follows {
				if strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, f) {
					t.Errorf("%s: a selector lacks %s: %s", where, f, tg.Expr)
				}
			}
		}
	}
	if exprs == 0 {
		t.Fatal("no queries found")
	}
	// The panels issue 4 asks for.
	for _, title := range []string{
		"CMK quota", "CMK quota usage per project", "Quota used vs limit",
		"Days until the CMK quota runs out", "Keys", "Keys by state", "Keys by tag",
		"Keys pending deletion", "Regions", "Regions supported for cross-region keys",
		"Key attributes", "Keys by spec", "Symmetric keys without rotation", "Keys by enterprise project",
		"Imported key material expiring",
		"Exporter health", "Targets up", "Collector success", "Collector duration",
		"API requests by status code", "API latency",
	} {
		if !titles[title] {
			t.Errorf("dashboard has no panel or row %q", title)
		}
	}
}

func TestDashboardLayout(t *testing.T) {
	d := loadDashboard(t)
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range allPanels(d.Panels) {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, g)
			continue
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", p.Title, other, x, y)
					return
				}
				used[cell{x, y}] = p.Title
			}
		}
	}
}

// exampleConfig is the exporter's config file (SPEC section 3), decoded as
// far as the examples need. Unknown fields are errors, as in the exporter.
type exampleConfig struct {
	Credentials map[string]map[string]any `yaml:"credentials"`
	Targets     []struct {
		Name        string   `yaml:"name"`
		Region      string   `yaml:"region"`
		ProjectID   string   `yaml:"project_id"`
		Credentials string   `yaml:"credentials"`
		KMSEndpoint string   `yaml:"kms_endpoint"`
		TagKeys     []string `yaml:"tag_keys"`
	} `yaml:"targets"`
}

var credentialFields = []string{
	"access_key", "access_key_file", "secret_key", "secret_key_file",
	"security_token", "security_token_file", "iam", "ecs_metadata",
	"metadata_endpoint", "iam_endpoint",
}

// checkSecretFiles checks that an example config holds no inline secret,
// names only SPEC fields, and that every *_file it names exists per exists.
func checkSecretFiles(t *testing.T, where, text string, exists func(string) bool) {
	t.Helper()
	var c exampleConfig
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: config: %v", where, err)
	}
	if len(c.Credentials) == 0 || len(c.Targets) == 0 {
		t.Fatalf("%s: config needs credentials and targets", where)
	}
	for name, cred := range c.Credentials {
		for field, v := range cred {
			if !slices.Contains(credentialFields, field) {
				t.Errorf("%s: credential %s: unknown field %s", where, name, field)
			}
			if field == "secret_key" || field == "security_token" {
				t.Errorf("%s: credential %s: inline %s in an example; use %s_file", where, name, field, field)
			}
			if strings.HasSuffix(field, "_file") {
				if p, _ := v.(string); !exists(p) {
					t.Errorf("%s: credential %s: %s %q is not provided", where, name, field, v)
				}
			}
		}
	}
	for _, tg := range c.Targets {
		if tg.Name == "" || tg.Region == "" {
			t.Errorf("%s: target %+v needs name and region", where, tg)
		}
	}
}

// TestKubernetesConfigs: the config files of the kustomize base and of the
// Helm chart's default values name only secret files that the example
// overlay's Secret (or the chart's NOTES) provide. deploy/kubecheck decodes
// the rendered manifests themselves.
func TestKubernetesConfigs(t *testing.T) {
	overlay := readYAML(t, "kubernetes/overlays/example/kustomization.yaml")
	provided := map[string]bool{}
	for _, f := range dig(overlay, "secretGenerator", 0, "files").([]any) {
		key, _, _ := strings.Cut(f.(string), "=")
		provided["/etc/kms_exporter/secrets/"+key] = true
	}
	base, err := os.ReadFile("kubernetes/base/config.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkSecretFiles(t, "kubernetes/base/config.yml", string(base), func(p string) bool { return provided[p] })

	values := readYAML(t, "helm/kms-exporter/values.yaml")
	cfg, err := yaml.Marshal(values["config"])
	if err != nil {
		t.Fatal(err)
	}
	checkSecretFiles(t, "helm values config", string(cfg), func(p string) bool { return provided[p] })
}

// unitDirectives parses a systemd unit into section -> key -> values.
func unitDirectives(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a directive: %q", path, i+1, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := unitDirectives(t, "systemd/kms_exporter.service")
	svc := u["Service"]
	want := map[string]string{
		"DynamicUser":             "yes",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictSUIDSGID":        "yes",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"CapabilityBoundingSet":   "",
		"SystemCallArchitectures": "native",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s=%v, want %q", k, got, v)
		}
	}
	exec := strings.Join(svc["ExecStart"], " ")
	if !strings.Contains(exec, "kms_exporter") || !strings.Contains(exec, "--config.file=") {
		t.Errorf("ExecStart %q should run kms_exporter with --config.file", exec)
	}
	// The state directory systemd keeps for the transient user.
	if got := svc["StateDirectory"]; len(got) != 1 || got[0] != "kms_exporter" || !strings.Contains(exec, "--storage.path=/var/lib/kms_exporter ") {
		t.Errorf("StateDirectory=%v and ExecStart %q: want kms_exporter and --storage.path=/var/lib/kms_exporter", got, exec)
	}
	if len(svc["LoadCredential"]) == 0 {
		t.Error("secrets should come in with LoadCredential=")
	}
	if len(svc["ExecReload"]) == 0 {
		t.Error("ExecReload missing (SIGHUP re-reads the config)")
	}
	for _, env := range svc["Environment"] {
		if strings.Contains(env, "_SK") || strings.Contains(strings.ToLower(env), "secret") {
			t.Errorf("secret in Environment=: %s", env)
		}
	}

	// The env file example sets no secret.
	envFile, err := os.ReadFile("systemd/kms_exporter.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(envFile), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "HUAWEICLOUD_SDK_SK") || strings.Contains(line, "SECURITY_TOKEN") {
			t.Errorf("kms_exporter.env sets a secret: %s", line)
		}
	}

	// The credentials the unit loads are the files the example config names.
	loaded := map[string]bool{}
	for _, lc := range svc["LoadCredential"] {
		name, _, _ := strings.Cut(lc, ":")
		loaded["/run/credentials/kms_exporter.service/"+name] = true
	}
	cfg, err := os.ReadFile("systemd/kms_exporter.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkSecretFiles(t, "systemd/kms_exporter.yml", string(cfg), func(p string) bool { return loaded[p] })
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(makefile)
	// One set of build flags: make build is static and reproducible, and
	// the image's build stage runs make build instead of its own go build.
	for _, want := range []string{"GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'", "\t$(GOBUILD) -o $(BINARY) ."} {
		if !strings.Contains(mk, want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}
	if strings.Contains(df, "go build") || !strings.Contains(df, "RUN make build BINARY=/rootfs/kms_exporter") {
		t.Error("the Dockerfile's build stage should run make build, not a go build of its own")
	}
	var froms []string
	for _, line := range strings.Split(df, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.EqualFold(f[0], "FROM") {
			froms = append(froms, strings.Join(f[1:], " "))
		}
	}
	// make image replaces the stage named build with --build-context.
	if !reflect.DeepEqual(froms, []string{"golang:1.26 AS build", "scratch"}) {
		t.Errorf("stages %q, want a golang build stage named build and a final stage from scratch", froms)
	}
	for _, want := range []string{
		"COPY --from=build /rootfs/ /",
		"org.opencontainers.image.version=\"${VERSION}\"",
		"org.opencontainers.image.revision=\"${REVISION}\"",
		"EXPOSE 10567",
		`ENTRYPOINT ["/kms_exporter"]`,
		"USER 65532:65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kms_exporter\n", ".build\n"} {
		if !bytes.Contains(ignore, []byte(want)) {
			t.Errorf(".dockerignore should exclude %q", want)
		}
	}
}
