package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/collector"
)

// readmeTable returns the rows of the tables in the README section under
// heading (a line such as "### Flags"), each as its cells, header and rule
// left out.
func readmeTable(t *testing.T, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", heading)
	}
	section, _, _ = strings.Cut(section, "\n#")
	var rows [][]string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("README.md: no table rows under %q", heading)
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

func codeSpans(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// readmeFlag is one flag as the README's flag table documents it.
type readmeFlag struct {
	env, def string // def: the default's code span, or its words when it has none
	literal  bool   // def is the exact default of the flag
}

// A default written with a placeholder, `https://kms.{region}.myhuaweicloud.com`,
// is derived at run time: the flag itself has none.
var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// readmeFlags reads the flag table: a row per flag, or per group of flags
// written `--a.b`, `.c` (for --a.c), with one default each or one for all.
func readmeFlags(t *testing.T) map[string]readmeFlag {
	flags := map[string]readmeFlag{}
	for _, cells := range readmeTable(t, "### Flags") {
		if len(cells) < 4 {
			t.Fatalf("README flag row %q: want flag, env, default and meaning", cells)
		}
		var names []string
		for _, name := range codeSpans(cells[0]) {
			name = strings.TrimPrefix(strings.TrimPrefix(name, "--"), "[no-]")
			if strings.HasPrefix(name, ".") && len(names) > 0 {
				prev := names[len(names)-1]
				name = prev[:strings.LastIndex(prev, ".")] + name
			}
			names = append(names, name)
		}
		env := strings.Join(codeSpans(cells[1]), ",")
		defaults := codeSpans(cells[2])
		for i, name := range names {
			f := readmeFlag{env: env, def: cells[2]}
			switch len(defaults) {
			case 0:
			case len(names):
				f.def, f.literal = defaults[i], !placeholder.MatchString(defaults[i])
			default:
				t.Errorf("README flag row %q: %d defaults for %d flags", cells[0], len(defaults), len(names))
			}
			if _, dup := flags[name]; dup {
				t.Errorf("README documents --%s twice", name)
			}
			flags[name] = f
		}
	}
	return flags
}

// TestREADMEFlagTable keeps the README's flag table and the flags the
// exporter defines from drifting apart: the same flags, environment
// variables and defaults.
func TestREADMEFlagTable(t *testing.T) {
	documented := readmeFlags(t)
	app, _, _ := flagApp(&settings{})
	defined := map[string]bool{}
	for _, f := range app.Model().Flags {
		if f.Name == "help" || f.Name == "version" || f.Hidden {
			continue
		}
		defined[f.Name] = true
		doc, ok := documented[f.Name]
		if !ok {
			t.Errorf("--%s is not in the README's flag table", f.Name)
			continue
		}
		if doc.env != f.Envar {
			t.Errorf("--%s: README says environment variable %q, the flag reads %q", f.Name, doc.env, f.Envar)
		}
		def := strings.Join(f.Default, ",")
		switch {
		case doc.literal && doc.def != def:
			t.Errorf("--%s: README says default %q, the flag has %q", f.Name, doc.def, def)
		// Words stand for a default that is no value of the flag ("none",
		// "off", "looked up"), or for switches that are on ("all on").
		case !doc.literal && doc.def == "all on" && def != "true":
			t.Errorf("--%s: README says it is on by default, the flag's default is %q", f.Name, def)
		case !doc.literal && doc.def != "all on" && !slices.Contains([]string{"", "false"}, def):
			t.Errorf("--%s: README says default %q, the flag has %q", f.Name, doc.def, def)
		}
	}
	for name := range documented {
		if !defined[name] {
			t.Errorf("README documents --%s, which the exporter does not define", name)
		}
	}
}

// TestREADMEMetricTable keeps the README's metrics table and the metrics
// the exporter can expose from drifting apart: the same names, types and
// labels (region and project_id, on every per-target series, go unsaid).
func TestREADMEMetricTable(t *testing.T) {
	type doc struct {
		typ    string
		labels []string // nil: not listed by name ("version labels")
	}
	documented := map[string]doc{}
	for _, cells := range readmeTable(t, "## Metrics") {
		if len(cells) < 4 {
			t.Fatalf("README metric row %q: want metric, type, labels and meaning", cells)
		}
		d := doc{typ: cells[1], labels: codeSpans(cells[2])}
		if d.labels == nil && cells[2] == "" {
			d.labels = []string{}
		}
		for _, name := range codeSpans(cells[0]) {
			documented[name] = d
		}
	}
	exposed := map[string]bool{}
	for _, m := range collector.Metrics() {
		exposed[m.Name] = true
		d, ok := documented[m.Name]
		if !ok {
			t.Errorf("%s is not in the README's metrics table", m.Name)
			continue
		}
		if d.typ != m.Type {
			t.Errorf("%s: README says %s, it is a %s", m.Name, d.typ, m.Type)
		}
		labels := m.Labels
		if len(labels) >= 2 && labels[0] == "region" && labels[1] == "project_id" {
			labels = labels[2:]
		}
		// In any order: gathered families sort their labels by name.
		if d.labels != nil && !slices.Equal(slices.Sorted(slices.Values(d.labels)), slices.Sorted(slices.Values(labels))) {
			t.Errorf("%s: README says labels %q, it has %q", m.Name, d.labels, labels)
		}
	}
	for name := range documented {
		if !exposed[name] {
			t.Errorf("README documents %s, which the exporter does not expose", name)
		}
	}
}
