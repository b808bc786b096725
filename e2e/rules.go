// Package e2e is the end-to-end test of kms_exporter with a real Prometheus
// and Alertmanager (e2e_test.go, build tag e2e, run by make e2e). This file
// holds the transformations the test applies to the shipped files; they are
// unit-tested by make test.
package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// ShortenFor returns the Prometheus rule file rules with every alert's
// `for:` (and `keep_firing_for:`) longer than max set to max, and nothing
// else changed. The shipped alerts wait 5 to 60 minutes before firing; the
// end-to-end test cannot wait that long, so it loads a shortened copy. The
// expressions, labels and annotations it checks are the shipped ones.
func ShortenFor(rules []byte, max time.Duration) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(rules, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("not a rule file")
	}
	groups := mapValue(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no groups")
	}
	short := model.Duration(max).String()
	for _, g := range groups.Content {
		rules := mapValue(g, "rules")
		if rules == nil || rules.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("group without rules")
		}
		for _, r := range rules.Content {
			for _, key := range []string{"for", "keep_firing_for"} {
				v := mapValue(r, key)
				if v == nil {
					continue
				}
				d, err := model.ParseDuration(v.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
				if time.Duration(d) > max {
					v.Value = short
				}
			}
		}
	}
	return yaml.Marshal(&doc)
}

// ForTest returns a shipped Prometheus or Alertmanager config for the
// end-to-end test: every scalar value equal to a key of addrs (the
// addresses of the exporter and Alertmanager, the receivers' URLs) becomes
// its value, every key of timings present in the file (scrape_interval,
// group_wait, ...) gets that value, and nothing else changes. The shipped
// jobs, relabeling, routes, matchers and inhibitions are what the test
// runs.
func ForTest(config []byte, addrs, timings map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a config file")
	}
	found := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if t, ok := timings[k.Value]; ok && v.Kind == yaml.ScalarNode {
					v.Value, v.Style = t, 0
					continue
				}
				walk(v)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			if a, ok := addrs[n.Value]; ok {
				found[n.Value] = true
				n.Value = a
			}
		}
	}
	walk(doc.Content[0])
	for a := range addrs {
		if !found[a] {
			return nil, fmt.Errorf("address %q is not in the config", a)
		}
	}
	return yaml.Marshal(&doc)
}

// Where the shipped configs send scrapes and notifications, and the
// intervals the end-to-end test cuts to a second so that it takes seconds,
// not minutes (as ShortenFor cuts for:).
const (
	shippedExporter     = "kms-exporter:10567"
	shippedAlertmanager = "alertmanager:9093"
	shippedReceiverURL  = "http://alert-router.example.internal/kms/"
)

var (
	shippedReceivers = []string{"default", "pager", "tickets"}
	testTimings      = map[string]string{
		"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
		"refresh_interval": "1s", "group_wait": "1s", "group_interval": "1s",
	}
)

// PrometheusForTest is the shipped prometheus.yml scraping the exporter at
// exporter and alerting Alertmanager at am.
func PrometheusForTest(shipped []byte, exporter, am string) ([]byte, error) {
	return ForTest(shipped, map[string]string{
		shippedExporter:                          exporter,
		"http://" + shippedExporter + "/targets": "http://" + exporter + "/targets",
		shippedAlertmanager:                      am,
	}, testTimings)
}

// AlertmanagerForTest is the shipped alertmanager.yml whose receiver
// NAME posts to hook/NAME.
func AlertmanagerForTest(shipped []byte, hook string) ([]byte, error) {
	addrs := map[string]string{}
	for _, r := range shippedReceivers {
		addrs[shippedReceiverURL+r] = hook + "/" + r
	}
	return ForTest(shipped, addrs, testTimings)
}

// mapValue returns the value node of key in mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Query is one PromQL query of the dashboard.
type Query struct {
	Panel string // panel title
	RefID string
	Expr  string
}

// Variable is a templating variable of the dashboard with its query
// (label_values(...) for query variables).
type Variable struct {
	Name, Type, Query, AllValue string
}

// Dashboard returns the PromQL queries of every panel (rows included) and
// the template variables of a Grafana dashboard.
func Dashboard(data []byte) ([]Query, []Variable, error) {
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				Query    any    `json:"query"`
				AllValue string `json:"allValue"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, nil, err
	}
	var qs []Query
	var walk func([]json.RawMessage) error
	walk = func(raw []json.RawMessage) error {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				return err
			}
			for _, t := range p.Targets {
				qs = append(qs, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, nil, err
	}
	var vars []Variable
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok { // newer Grafana: {"query": "..."}
			q, _ = m["query"].(string)
		}
		vars = append(vars, Variable{Name: v.Name, Type: v.Type, Query: q, AllValue: v.AllValue})
	}
	return qs, vars, nil
}

var varRE = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// Substitute replaces Grafana variables ($name, ${name}) in expr with
// values, as Grafana does before sending a query, and fails on a variable
// that values lacks.
func Substitute(expr string, values map[string]string) (string, error) {
	var missing []string
	out := varRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := values[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("no value for variable(s) %s in %q", strings.Join(missing, ", "), expr)
	}
	return out, nil
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// LabelValuesQuery splits a Grafana label_values(selector, label) variable
// query into its series selector and label name.
func LabelValuesQuery(q string) (selector, label string, err error) {
	m := labelValuesRE.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", "", fmt.Errorf("not a label_values(selector, label) query: %q", q)
	}
	return strings.TrimSpace(m[1]), m[2], nil
}

// AllValues are the values Grafana would substitute with every variable at
// "All" (allValue .*) against a Prometheus scraping every second:
// $__rate_interval is at least four scrape intervals, and $__range is kept
// within the test Prometheus' short history.
var AllValues = map[string]string{
	"job":             ".*",
	"instance":        ".*",
	"region":          ".*",
	"project_id":      ".*",
	"__rate_interval": "10s",
	"__interval":      "1s",
	"__range":         "1m",
}
