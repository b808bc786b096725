package collector

import (
	"fmt"
	"slices"
)

// WithTargets returns an Exporter of targets that shares e's state: cached
// results, fetches in flight, project lookups, and the project IDs of the
// targets whose settings did not change. A discovery refresh replaces the
// Exporter this way without fetching again what is still fresh. The cache
// of a target that is gone or changed is dropped.
func (e *Exporter) WithTargets(targets []Target) (*Exporter, error) {
	// Every setting and the shared state, whatever fields Exporter gains;
	// only the targets are new.
	n := new(Exporter)
	*n = *e
	n.targets, n.byName = nil, map[string]*target{}
	if err := n.setTargets(targets, e.byName); err != nil {
		return nil, err
	}
	gone := map[string]bool{}
	for name, old := range e.byName {
		if n.byName[name] != old {
			gone[name] = true
		}
	}
	e.results.forget(gone)
	return n, nil
}

// setTargets checks and adds targets, reusing the one of the same name and
// settings in prev.
func (e *Exporter) setTargets(targets []Target, prev map[string]*target) error {
	for _, t := range targets {
		if t.Name == "" || t.Region == "" || t.Credential == nil {
			return fmt.Errorf("target %q: name, region and credential are required", t.Name)
		}
		if _, ok := e.byName[t.Name]; ok {
			return fmt.Errorf("duplicate target %q", t.Name)
		}
		if t.TagKeys == nil {
			t.TagKeys = e.tagKeys
		}
		tt := prev[t.Name]
		if tt == nil || !sameTarget(tt.Target, t) {
			tt = &target{Target: t}
		}
		e.targets = append(e.targets, tt)
		e.byName[t.Name] = tt
	}
	return nil
}

func sameTarget(a, b Target) bool {
	return a.Name == b.Name && a.Region == b.Region && a.ProjectID == b.ProjectID && a.Endpoint == b.Endpoint &&
		a.Credential == b.Credential && slices.Equal(a.TagKeys, b.TagKeys)
}

// forget drops every cached result of the targets.
func (r *results) forget(targets map[string]bool) {
	if len(targets) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.cache {
		if targets[k.target] {
			delete(r.cache, k)
		}
	}
	for name := range targets {
		delete(r.lastOK, name)
	}
}
