package e2e

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestShortenFor(t *testing.T) {
	in := []byte(`groups:
  - name: a
    rules:
      - alert: Slow
        expr: up == 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.instance }} down for: 15m"
      - alert: Quick
        expr: up == 0
        for: 1s
      - alert: NoFor
        expr: up == 0
  - name: b
    rules:
      - alert: Hours
        expr: vector(1)
        for: 1h
        keep_firing_for: 10m
      - record: job:up:sum
        expr: sum by (job) (up)
`)
	out, err := ShortenFor(in, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out)
	}
	// Expected: the input with exactly the long durations replaced.
	edited := strings.NewReplacer(
		"for: 15m\n", "for: 2s\n",
		"for: 1h\n", "for: 2s\n",
		"keep_firing_for: 10m\n", "keep_firing_for: 2s\n",
	).Replace(string(in))
	if err := yaml.Unmarshal([]byte(edited), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", out, edited)
	}
}

func TestShortenForShippedRules(t *testing.T) {
	in, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := ShortenFor(in, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Alert, Expr, For string
		Labels           map[string]string
		Annotations      map[string]string
	}
	type file struct {
		Groups []struct {
			Name  string
			Rules []rule
		}
	}
	var before, after file
	if err := yaml.Unmarshal(in, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	if len(before.Groups) == 0 || len(before.Groups) != len(after.Groups) {
		t.Fatalf("groups: %d before, %d after", len(before.Groups), len(after.Groups))
	}
	var shortened int
	for i, g := range before.Groups {
		for j, r := range g.Rules {
			a := after.Groups[i].Rules[j]
			if r.For != "" && r.For != "2s" {
				shortened++
				if a.For != "2s" {
					t.Errorf("%s: for %q, want 2s", r.Alert, a.For)
				}
			}
			a.For, r.For = "", ""
			if !reflect.DeepEqual(a, r) {
				t.Errorf("%s changed beyond for:\n%+v\n%+v", r.Alert, r, a)
			}
		}
	}
	if shortened == 0 {
		t.Error("no rule had a for: to shorten; the shipped rules changed shape")
	}
}

func TestShortenForErrors(t *testing.T) {
	for _, in := range []string{
		"groups: [",
		"rules: []",
		"groups:\n  - name: a\n",
		"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        for: soon\n",
	} {
		if _, err := ShortenFor([]byte(in), time.Second); err == nil {
			t.Errorf("ShortenFor(%q) succeeded", in)
		}
	}
}

func TestDashboardQueries(t *testing.T) {
	data := []byte(`{
	  "panels": [
	    {"type": "row", "title": "R", "panels": [
	      {"title": "Nested", "targets": [{"refId": "A", "expr": "kms_up{region=~\"$region\"}"}]}
	    ]},
	    {"title": "Top", "targets": [{"refId": "A", "expr": "a"}, {"refId": "B", "expr": "b"}]}
	  ],
	  "templating": {"list": [
	    {"name": "datasource", "type": "datasource", "query": "prometheus"},
	    {"name": "region", "type": "query", "query": "label_values(kms_up, region)", "allValue": ".*"},
	    {"name": "project_id", "type": "query", "query": {"query": "label_values(kms_up{region=~\"$region\"}, project_id)"}}
	  ]}
	}`)
	qs, vars, err := Dashboard(data)
	if err != nil {
		t.Fatal(err)
	}
	wantQ := []Query{
		{Panel: "Nested", RefID: "A", Expr: `kms_up{region=~"$region"}`},
		{Panel: "Top", RefID: "A", Expr: "a"},
		{Panel: "Top", RefID: "B", Expr: "b"},
	}
	if !reflect.DeepEqual(qs, wantQ) {
		t.Errorf("queries %+v, want %+v", qs, wantQ)
	}
	wantV := []Variable{
		{Name: "datasource", Type: "datasource", Query: "prometheus"},
		{Name: "region", Type: "query", Query: "label_values(kms_up, region)", AllValue: ".*"},
		{Name: "project_id", Type: "query", Query: `label_values(kms_up{region=~"$region"}, project_id)`},
	}
	if !reflect.DeepEqual(vars, wantV) {
		t.Errorf("variables %+v, want %+v", vars, wantV)
	}

	// The shipped dashboard has queries, and every one substitutes cleanly
	// with the values the end-to-end test uses.
	shipped, err := os.ReadFile("../dashboards/kms.json")
	if err != nil {
		t.Fatal(err)
	}
	qs, _, err = Dashboard(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	for _, q := range qs {
		out, err := Substitute(q.Expr, AllValues)
		if err != nil {
			t.Errorf("%s/%s: %v", q.Panel, q.RefID, err)
		}
		if strings.Contains(out, "$") {
			t.Errorf("%s/%s: unsubstituted: %s", q.Panel, q.RefID, out)
		}
	}
}

func TestSubstitute(t *testing.T) {
	vals := map[string]string{"region": ".*", "__rate_interval": "10s"}
	got, err := Substitute(`rate(x{region=~"$region",a=~"${region}"}[$__rate_interval])`, vals)
	if err != nil {
		t.Fatal(err)
	}
	if want := `rate(x{region=~".*",a=~".*"}[10s])`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := Substitute(`x{project_id=~"$project_id"}`, vals); err == nil || !strings.Contains(err.Error(), "project_id") {
		t.Errorf("missing variable: err %v", err)
	}
	// $__range is not $__rate_interval's prefix problem.
	if _, err := Substitute(`increase(x[$__range])`, vals); err == nil {
		t.Error("$__range substituted without a value")
	}
}

func TestLabelValuesQuery(t *testing.T) {
	sel, label, err := LabelValuesQuery(`label_values(kms_up{region=~"$region"}, project_id)`)
	if err != nil || sel != `kms_up{region=~"$region"}` || label != "project_id" {
		t.Errorf("got %q %q %v", sel, label, err)
	}
	if _, _, err := LabelValuesQuery("query_result(up)"); err == nil {
		t.Error("accepted a non-label_values query")
	}
}

// TestForTestShippedConfigs: the configs the end-to-end test runs differ
// from the shipped ones in the addresses, receiver URLs and intervals only.
func TestForTestShippedConfigs(t *testing.T) {
	for _, tc := range []struct {
		file string
		conv func([]byte) ([]byte, error)
		want map[string]string // shipped value -> test value
	}{
		{"../deploy/prometheus/prometheus.yml", func(b []byte) ([]byte, error) { return PrometheusForTest(b, "127.0.0.1:1", "127.0.0.1:2") },
			map[string]string{"kms-exporter:10567": "127.0.0.1:1", "http://kms-exporter:10567/targets": "http://127.0.0.1:1/targets", "alertmanager:9093": "127.0.0.1:2"}},
		{"../deploy/alertmanager/alertmanager.yml", func(b []byte) ([]byte, error) { return AlertmanagerForTest(b, "http://127.0.0.1:3") },
			map[string]string{
				"http://alert-router.example.internal/kms/default": "http://127.0.0.1:3/default",
				"http://alert-router.example.internal/kms/pager":   "http://127.0.0.1:3/pager",
				"http://alert-router.example.internal/kms/tickets": "http://127.0.0.1:3/tickets",
			}},
	} {
		shipped, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tc.conv(shipped)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		var before, after any
		if err := yaml.Unmarshal(shipped, &before); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(out, &after); err != nil {
			t.Fatal(err)
		}
		replaced := map[string]bool{}
		diffConfigs(t, tc.file, "", before, after, func(where string, key string, b, a any) {
			bs, _ := b.(string)
			switch {
			case testTimings[key] != "" && a == testTimings[key]:
			case tc.want[bs] != "" && a == tc.want[bs]:
				replaced[bs] = true
			default:
				t.Errorf("%s: %s changed from %v to %v", tc.file, where, b, a)
			}
		})
		for k := range tc.want {
			if !replaced[k] {
				t.Errorf("%s: %s not replaced", tc.file, k)
			}
		}
	}
	if _, err := ForTest([]byte("a: b\n"), map[string]string{"missing:1": "x"}, nil); err == nil {
		t.Error("an address that is not in the config was accepted")
	}
}

// diffConfigs walks two decoded YAML documents of the same shape and calls
// changed for every leaf that differs.
func diffConfigs(t *testing.T, file, where string, b, a any, changed func(where, key string, b, a any)) {
	t.Helper()
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok || len(av) != len(bv) {
			t.Errorf("%s: %s: keys changed", file, where)
			return
		}
		for k, x := range bv {
			if y, ok := av[k]; !ok {
				t.Errorf("%s: %s.%s removed", file, where, k)
			} else if _, leaf := x.(map[string]any); !leaf && !isList(x) && x != y {
				changed(where+"."+k, k, x, y)
			} else {
				diffConfigs(t, file, where+"."+k, x, y, changed)
			}
		}
	case []any:
		av, ok := a.([]any)
		if !ok || len(av) != len(bv) {
			t.Errorf("%s: %s: list changed", file, where)
			return
		}
		for i := range bv {
			if _, leaf := bv[i].(map[string]any); !leaf && !isList(bv[i]) && bv[i] != av[i] {
				changed(fmt.Sprintf("%s[%d]", where, i), "", bv[i], av[i])
			} else {
				diffConfigs(t, file, fmt.Sprintf("%s[%d]", where, i), bv[i], av[i], changed)
			}
		}
	}
}

func isList(v any) bool { _, ok := v.([]any); return ok }
