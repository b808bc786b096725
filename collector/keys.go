package collector

import (
	"sort"
	"strings"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// keySummary is everything the keys collector exports, derived from one
// listing in one pass. It is what the cache holds, so a cached scrape costs
// nothing per key and the key list itself is garbage as soon as it is summarised.
type keySummary struct {
	states    [len(stateNames)]float64 // by stateIndex
	defaults  float64
	tags      []tagCount // exported series, most keys first
	dropped   float64    // tag series over the cap
	deletions []deletion // sorted by key ID
}

// stateNames are the kms_keys{state} values; every one but "unknown" is
// always exported.
var stateNames = [...]string{
	kmsapi.StatePendingActivation.String(),
	kmsapi.StateEnabled.String(),
	kmsapi.StateDisabled.String(),
	kmsapi.StatePendingDeletion.String(),
	kmsapi.StatePendingImport.String(),
	"unknown",
}

const unknownState = len(stateNames) - 1

func stateIndex(s kmsapi.KeyState) int {
	if s >= kmsapi.StatePendingActivation && s <= kmsapi.StatePendingImport {
		return int(s - kmsapi.StatePendingActivation)
	}
	return unknownState
}

type tagCount struct {
	key, value string
	n          float64
}

type deletion struct {
	id, alias string
	at        float64 // Unix seconds
}

// summarizeKeys counts keys by state, default flag and allowed tag (all tags
// when allowed is empty), keeps the maxTags largest tag series (ties broken
// by key, then value, so the choice is stable between scrapes) and lists the
// keys pending deletion.
func summarizeKeys(keys []kmsapi.Key, allowed []string, maxTags int) *keySummary {
	s := &keySummary{}
	// Keyed by the decoded strings themselves: no per-key allocation.
	counts := map[kmsapi.Tag]int{}
	for i := range keys {
		k := &keys[i]
		s.states[stateIndex(k.State)]++
		if k.Default {
			s.defaults++
		}
		if k.State == kmsapi.StatePendingDeletion && !k.ScheduledDeletion.IsZero() {
			s.deletions = append(s.deletions, deletion{
				id:    validUTF8(k.ID),
				alias: validUTF8(k.Alias),
				at:    float64(k.ScheduledDeletion.UnixMilli()) / 1e3,
			})
		}
		for _, t := range k.Tags {
			if tagAllowed(allowed, t.Key) {
				counts[t]++
			}
		}
	}

	// Label values must be valid UTF-8; two raw tags that only differ in
	// invalid bytes become one series.
	merged := make(map[kmsapi.Tag]int, len(counts))
	for t, n := range counts {
		merged[kmsapi.Tag{Key: validUTF8(t.Key), Value: validUTF8(t.Value)}] += n
	}
	all := make([]tagCount, 0, len(merged))
	for t, n := range merged {
		all = append(all, tagCount{key: t.Key, value: t.Value, n: float64(n)})
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.n != b.n {
			return a.n > b.n
		}
		if a.key != b.key {
			return a.key < b.key
		}
		return a.value < b.value
	})
	if maxTags < 0 {
		maxTags = 0
	}
	if len(all) > maxTags {
		s.dropped = float64(len(all) - maxTags)
		all = all[:maxTags:maxTags]
	}
	s.tags = all

	// A key seen twice (the listing shifted between pages) must not become
	// a duplicate series.
	sort.Slice(s.deletions, func(i, j int) bool { return s.deletions[i].id < s.deletions[j].id })
	out := s.deletions[:0]
	for i, d := range s.deletions {
		if i > 0 && d.id == s.deletions[i-1].id {
			continue
		}
		out = append(out, d)
	}
	s.deletions = out
	return s
}

func tagAllowed(allowed []string, key string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == key {
			return true
		}
	}
	return false
}

// validUTF8 replaces invalid bytes; it does not allocate for valid input.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// sortedUnique sorts names, drops duplicates and makes them valid label values.
func sortedUnique(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, validUTF8(n))
	}
	sort.Strings(out)
	w := 0
	for i, n := range out {
		if i > 0 && n == out[w-1] {
			continue
		}
		out[w] = n
		w++
	}
	return out[:w]
}
