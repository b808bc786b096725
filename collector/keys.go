package collector

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Keys exports the resource_instances endpoint: the keys, counted by state,
// default flag, tag, spec and enterprise project, the keys pending deletion
// and the imported key material that expires.
const Keys = "keys"

type keysCollector struct {
	about
	maxTags int
	pages   sync.Map // target name -> key pages of its last listing

	keys, defaults, byTag, dropped, deletion *desc
	bySpec, byProject, expiration            *desc
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
		bySpec: newDesc("kms_keys_by_spec", "Number of keys by key spec, usage, origin of the key material (kms, external) and rotation; unknown where the API leaves a field out.", ttl,
			"key_spec", "key_usage", "origin", "rotation_enabled"),
		byProject:  newDesc("kms_keys_by_enterprise_project", "Number of keys by enterprise project (0 is the default one; unknown where the API leaves it out).", ttl, "enterprise_project_id"),
		expiration: newDesc("kms_key_material_expiration_timestamp_seconds", "When the imported key material of the key expires, in Unix seconds.", ttl, "key_id", "key_alias"),
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
	return []*desc{c.keys, c.defaults, c.byTag, c.dropped, c.deletion, c.bySpec, c.byProject, c.expiration}
}

func (c *keysCollector) fetch(ctx context.Context, client *kmsapi.Client, t *Target) (emitFunc, error) {
	tally := newKeyTally(t.TagKeys)
	if err := client.VisitKeys(ctx, tally.add); err != nil {
		return nil, err
	}
	c.pages.Store(t.Name, max(1, (tally.keys+kmsapi.MaxPageSize-1)/kmsapi.MaxPageSize))
	s := tally.summary(c.maxTags)
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
	for _, sc := range s.specs {
		gauge(c.bySpec, sc.n, sc.spec.KeySpec, sc.spec.KeyUsage, sc.spec.Origin, sc.spec.RotationEnabled)
	}
	for _, pc := range s.projects {
		gauge(c.byProject, pc.n, pc.id)
	}
	for _, exp := range s.expirations {
		gauge(c.expiration, exp.at, exp.id, exp.alias)
	}
}

// keySummary is everything the keys collector exports, derived from one
// listing, page by page as the pages arrive. It is what the cache holds, so
// a cached scrape costs nothing per key, and no page outlives its turn.
type keySummary struct {
	states      [len(stateNames)]float64 // by stateIndex
	defaults    float64
	tags        []tagCount     // exported series, most keys first
	dropped     float64        // tag series over the cap
	deletions   []keyTime      // sorted by key ID
	specs       []specCount    // sorted by labels
	projects    []projectCount // sorted by enterprise project ID
	expirations []keyTime      // sorted by key ID
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

// keyTime is a point in time of one key: its scheduled deletion, or when
// its key material expires.
type keyTime struct {
	id, alias string
	at        float64 // Unix seconds
}

func newKeyTime(k *kmsapi.Key, at time.Time) keyTime {
	return keyTime{id: validUTF8(k.ID), alias: validUTF8(k.Alias), at: float64(at.UnixMilli()) / 1e3}
}

// keyTally is the running summary of a listing, fed page by page: the
// counts and the keys' times, never the keys themselves. Its strings are
// the decoded ones, which outlive their page.
type keyTally struct {
	allowed  []string // tag keys counted; all when empty
	keys     int
	s        keySummary         // states, defaults, deletions and expirations so far
	tags     map[kmsapi.Tag]int // keyed by the decoded strings: no per-key allocation
	specs    map[keySpec]int
	projects map[string]int
}

func newKeyTally(allowed []string) *keyTally {
	return &keyTally{allowed: allowed, tags: map[kmsapi.Tag]int{}, specs: map[keySpec]int{}, projects: map[string]int{}}
}

// add counts a page of keys by state, default flag, allowed tag, spec and
// enterprise project, and notes the keys pending deletion and the key
// material that expires.
func (t *keyTally) add(page []kmsapi.Key) error {
	s := &t.s
	t.keys += len(page)
	for i := range page {
		k := &page[i]
		s.states[stateIndex(k.State)]++
		if k.Default {
			s.defaults++
		}
		if k.State == kmsapi.StatePendingDeletion && !k.ScheduledDeletion.IsZero() {
			s.deletions = append(s.deletions, newKeyTime(k, k.ScheduledDeletion))
		}
		if !k.Expires.IsZero() {
			s.expirations = append(s.expirations, newKeyTime(k, k.Expires))
		}
		t.specs[keySpecOf(k)]++
		t.projects[k.EnterpriseProjectID]++
		for _, tag := range k.Tags {
			if tagAllowed(t.allowed, tag.Key) {
				t.tags[tag]++
			}
		}
	}
	return nil
}

// summary keeps the maxTags largest tag series (ties broken by key, then
// value, so the choice is stable between scrapes), one deletion and one
// expiration per key, and sorts every list.
func (t *keyTally) summary(maxTags int) *keySummary {
	s := t.s
	merged := mergeLabels(t.tags, func(t kmsapi.Tag) kmsapi.Tag {
		return kmsapi.Tag{Key: validUTF8(t.Key), Value: validUTF8(t.Value)}
	})
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

	s.deletions = uniqueByID(s.deletions)
	s.expirations = uniqueByID(s.expirations)
	s.specs = countSpecs(t.specs)
	s.projects = countProjects(t.projects)
	return &s
}

// uniqueByID sorts key times by key ID, one per key: a key listed twice
// must not become a duplicate series.
func uniqueByID(ts []keyTime) []keyTime {
	slices.SortFunc(ts, func(a, b keyTime) int { return strings.Compare(a.id, b.id) })
	return slices.CompactFunc(ts, func(a, b keyTime) bool { return a.id == b.id })
}

// mergeLabels adds up the counts of raw under the label values label makes
// of their keys: label values must be valid UTF-8, and raw values that only
// differ in invalid bytes become one series.
func mergeLabels[K comparable](raw map[K]int, label func(K) K) map[K]int {
	merged := make(map[K]int, len(raw))
	for k, n := range raw {
		merged[label(k)] += n
	}
	return merged
}

func tagAllowed(allowed []string, key string) bool {
	return len(allowed) == 0 || slices.Contains(allowed, key)
}

// validUTF8 replaces invalid bytes; it does not allocate for valid input.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
