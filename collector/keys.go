package collector

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Keys exports the resource_instances endpoint: the keys, counted by state,
// default flag and tag, and the keys pending deletion.
const Keys = "keys"

type keysCollector struct {
	about
	maxTags int
	pages   sync.Map // target name -> key pages of its last listing

	keys, defaults, byTag, dropped, deletion *desc
}

func newKeys(o Options) collector {
	ttl := max(o.CacheTTL, o.KeysRefreshInterval)
	return &keysCollector{
		about:    about{Keys, kmsapi.EndpointResourceInstances, ttl},
		maxTags:  o.MaxTagSeries,
		keys:     newDesc("kms_keys", "Number of keys by key state.", ttl, "state"),
		defaults: newDesc("kms_default_keys", "Number of default master keys created by cloud services.", ttl),
		byTag:    newDesc("kms_keys_by_tag", "Number of keys carrying the tag (allowed tag keys only, capped per target).", ttl, "tag_key", "tag_value"),
		dropped:  newDesc("kms_keys_by_tag_dropped_series", "Number of kms_keys_by_tag series not exported because of the cap.", ttl),
		deletion: newDesc("kms_key_scheduled_deletion_timestamp_seconds", "When the key pending deletion will be deleted, in Unix seconds.", ttl, "key_id", "key_alias"),
	}
}

// calls is the pages of the target's last listing; 1 before the first.
func (c *keysCollector) calls(target string) int {
	if n, ok := c.pages.Load(target); ok {
		return n.(int)
	}
	return 1
}

func (c *keysCollector) descs() []*desc {
	return []*desc{c.keys, c.defaults, c.byTag, c.dropped, c.deletion}
}

func (c *keysCollector) fetch(ctx context.Context, client *kmsapi.Client, t *Target) (emitFunc, error) {
	keys, err := client.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	c.pages.Store(t.Name, max(1, (len(keys)+kmsapi.MaxPageSize-1)/kmsapi.MaxPageSize))
	s := summarizeKeys(keys, t.TagKeys, c.maxTags)
	return func(gauge gaugeFunc) { c.emit(gauge, s) }, nil
}

func (c *keysCollector) emit(gauge gaugeFunc, s *keySummary) {
	for i, name := range stateNames {
		if i == unknownState && s.states[i] == 0 {
			continue
		}
		gauge(c.keys, s.states[i], name)
	}
	gauge(c.defaults, s.defaults)
	for _, tc := range s.tags {
		gauge(c.byTag, tc.n, tc.key, tc.value)
	}
	gauge(c.dropped, s.dropped)
	for _, del := range s.deletions {
		gauge(c.deletion, del.at, del.id, del.alias)
	}
}

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
