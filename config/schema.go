package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkSchema walks the YAML tree against the config types before it is
// decoded, so that a mistake is told in the config's words, with its path:
// `credentials.prod: unknown key "secret_kye" (did you mean "secret_key"?)`
// rather than yaml's `field secret_kye not found in type config.Credential`.
// It never quotes a value: the value may be a secret.
func checkSchema(root *yaml.Node) error {
	s := schemaWalk{seen: map[*yaml.Node]bool{}}
	return s.walk("", root, reflect.TypeOf(Config{}))
}

type schemaWalk struct {
	// seen holds the anchored nodes already checked: aliases to them are
	// not walked again (a document of nested aliases would take
	// exponential time).
	seen map[*yaml.Node]bool
}

func (s schemaWalk) walk(path string, n *yaml.Node, t reflect.Type) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || s.seen[n.Alias] {
			return nil
		}
		s.seen[n.Alias] = true
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		return s.mapping(path, n, t)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return wrongKind(path, n, "a mapping of names")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := s.walk(join(path, n.Content[i].Value), n.Content[i+1], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return wrongKind(path, n, "a list")
		}
		for i, e := range n.Content {
			if err := s.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return wrongKind(path, n, "true or false")
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return wrongKind(path, n, "a single value")
		}
	}
	return nil
}

// mapping checks the keys of a mapping for the struct t; "<<" merges
// another mapping in.
func (s schemaWalk) mapping(path string, n *yaml.Node, t reflect.Type) error {
	if n.Kind != yaml.MappingNode {
		return wrongKind(path, n, "a mapping of keys")
	}
	fields := map[string]reflect.Type{}
	var keys []string
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key != "" && key != "-" {
			fields[key] = t.Field(i).Type
			keys = append(keys, key)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			if err := s.merge(path, v, t); err != nil {
				return err
			}
			continue
		}
		ft, ok := fields[k.Value]
		if !ok {
			return unknownKey(path, k, keys)
		}
		if err := s.walk(join(path, k.Value), v, ft); err != nil {
			return err
		}
	}
	return nil
}

func (s schemaWalk) merge(path string, v *yaml.Node, t reflect.Type) error {
	if v.Kind == yaml.AliasNode {
		if v.Alias == nil || s.seen[v.Alias] {
			return nil
		}
		s.seen[v.Alias] = true
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			if err := s.walk(path, e, t); err != nil {
				return err
			}
		}
		return nil
	}
	return s.walk(path, v, t)
}

func where(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func wrongKind(path string, n *yaml.Node, want string) error {
	got := ""
	switch n.Kind {
	case yaml.MappingNode:
		got = ", not a mapping"
	case yaml.SequenceNode:
		got = ", not a list"
	}
	return fmt.Errorf("line %d: %s: want %s%s", n.Line, where(path), want, got)
}

// configKey is what a key written by hand looks like: such a key is
// repeated in the error; anything else (a secret pasted one line off) is not.
var configKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

func unknownKey(path string, k *yaml.Node, valid []string) error {
	if !configKey.MatchString(k.Value) {
		return fmt.Errorf("line %d: %s: unknown key (valid keys: %s)", k.Line, where(path), strings.Join(valid, ", "))
	}
	if best := closest(k.Value, valid); best != "" {
		return fmt.Errorf("line %d: %s: unknown key %q (did you mean %q?)", k.Line, where(path), k.Value, best)
	}
	return fmt.Errorf("line %d: %s: unknown key %q (valid keys: %s)", k.Line, where(path), k.Value, strings.Join(valid, ", "))
}

// closest is the candidate nearest to s by edit distance, if near enough to
// be the one meant: at most 2 edits, and at most a third of its length;
// else the shortest candidate that s starts.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD && d <= max(1, len(c)/3) {
			best, bestD = c, d
		}
	}
	if best == "" && len(s) >= 4 {
		// The start of a key: "secret" for secret_key.
		for _, c := range candidates {
			if strings.HasPrefix(c, s) && (best == "" || len(c) < len(best)) {
				best = c
			}
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps of
// two neighbours that turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// YAML quotes values in some errors: a secret written where YAML reads
// something else (a password starting with *) would be echoed into the
// log. yamlError drops them, and puts the error on one line.
var (
	yamlValue  = regexp.MustCompile("(?s)`.*`")
	yamlAnchor = regexp.MustCompile("(?s)unknown anchor '.*' referenced")
)

func yamlError(err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = yamlValue.ReplaceAllString(m, "(value hidden)")
		m = yamlAnchor.ReplaceAllString(m, "unknown anchor referenced (quote a value that starts with *)")
		msgs[i] = strings.Join(strings.Fields(m), " ")
	}
	return errors.New(strings.Join(msgs, "; "))
}
