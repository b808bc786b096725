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
