// Package collector turns the KMS read APIs into Prometheus metrics. An
// Exporter holds the targets and what must outlive one scrape (project IDs,
// cached results, fetches in flight); each scrape gets its own
// prometheus.Collector bound to the scrape's context, so the scrape deadline
// reaches every API call.
package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Collector names: the `collector` label and the --collector.<name> flags.
const (
	Quotas    = "quotas"
	Instances = "instances"
	Keys      = "keys"
	Regions   = "regions"
)

// All lists every collector, in the order they are reported.
var All = []string{Quotas, Instances, Keys, Regions}

// endpoints names the API endpoint each collector calls.
var endpoints = map[string]string{
	Quotas:    kmsapi.EndpointQuotas,
	Instances: kmsapi.EndpointInstances,
	Keys:      kmsapi.EndpointResourceInstances,
	Regions:   kmsapi.EndpointRegions,
}

// DefaultRegionsTTL is how long the cross-region list is reused: it changes
// when Huawei Cloud opens a region, not between scrapes.
const DefaultRegionsTTL = time.Hour

// Target is one project in one region.
type Target struct {
	Name       string
	Region     string
	ProjectID  string // "" looks it up in IAM (Credential.LookupProject) on the first scrape
	Endpoint   string // KMS base URL; "" for the public endpoint of Region
	Credential *kmsapi.Credential
	TagKeys    []string // tag keys for kms_keys_by_tag; nil takes Options.TagKeys
}

// Options configure an Exporter.
type Options struct {
	// Collectors lists the enabled collectors; nil enables All.
	Collectors []string
	// TagKeys are the tag keys exported by kms_keys_by_tag; empty exports all.
	TagKeys []string
	// MaxTagSeries caps kms_keys_by_tag series per target; the rest are
	// counted in kms_keys_by_tag_dropped_series. 0 exports none.
	MaxTagSeries int
	// CacheTTL reuses every result of a target younger than this.
	CacheTTL time.Duration
	// KeysRefreshInterval lists keys at most this often.
	KeysRefreshInterval time.Duration
	// RegionsTTL reuses the cross-region list; 0 takes DefaultRegionsTTL,
	// a negative value only CacheTTL.
	RegionsTTL time.Duration
	Logger     log.Logger
	Now        func() time.Time // clock for cache ages; default time.Now
}

// Exporter scrapes a fixed set of targets. It is safe for concurrent scrapes.
type Exporter struct {
	opts    Options
	logger  log.Logger
	now     func() time.Time
	enabled []string
	ttl     map[string]time.Duration
	targets []*target
	byName  map[string]*target
	d       descs

	mu      sync.Mutex
	cache   map[string]cached
	flights map[string]*flight
}

type target struct {
	Target
	mu     sync.Mutex
	client *kmsapi.Client // set once the project ID is known
}

// New builds an Exporter. Target names must be unique.
func New(targets []Target, o Options) (*Exporter, error) {
	e := &Exporter{
		opts:    o,
		logger:  o.Logger,
		now:     o.Now,
		byName:  map[string]*target{},
		cache:   map[string]cached{},
		flights: map[string]*flight{},
	}
	if e.logger == nil {
		e.logger = log.NewNopLogger()
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.enabled = o.Collectors
	if e.enabled == nil {
		e.enabled = All
	}
	for _, c := range e.enabled {
		switch c {
		case Quotas, Instances, Keys, Regions:
		default:
			return nil, fmt.Errorf("unknown collector %q", c)
		}
	}
	regionsTTL := o.RegionsTTL
	if regionsTTL == 0 {
		regionsTTL = DefaultRegionsTTL
	}
	e.ttl = map[string]time.Duration{
		Quotas:    o.CacheTTL,
		Instances: o.CacheTTL,
		Keys:      max(o.CacheTTL, o.KeysRefreshInterval),
		Regions:   max(o.CacheTTL, regionsTTL),
	}
	e.d = newDescs(e.ttl)
	for _, t := range targets {
		if t.Name == "" || t.Region == "" || t.Credential == nil {
			return nil, fmt.Errorf("target %q: name, region and credential are required", t.Name)
		}
		if _, ok := e.byName[t.Name]; ok {
			return nil, fmt.Errorf("duplicate target %q", t.Name)
		}
		tt := &target{Target: t}
		if tt.TagKeys == nil {
			tt.TagKeys = o.TagKeys
		}
		e.targets = append(e.targets, tt)
		e.byName[t.Name] = tt
	}
	return e, nil
}

// TargetNames returns the target names in configuration order.
func (e *Exporter) TargetNames() []string {
	names := make([]string, len(e.targets))
	for i, t := range e.targets {
		names[i] = t.Name
	}
	return names
}

// Collector returns a collector for one scrape of every target, bound to ctx:
// the scrape's deadline bounds every API call it makes.
func (e *Exporter) Collector(ctx context.Context) prometheus.Collector {
	return &scrape{e: e, ctx: ctx, targets: e.targets}
}

// TargetCollector is Collector for the one target named name; false when
// there is no such target.
func (e *Exporter) TargetCollector(ctx context.Context, name string) (prometheus.Collector, bool) {
	t, ok := e.byName[name]
	if !ok {
		return nil, false
	}
	return &scrape{e: e, ctx: ctx, targets: []*target{t}}, true
}

type scrape struct {
	e       *Exporter
	ctx     context.Context
	targets []*target
}

func (s *scrape) Describe(ch chan<- *prometheus.Desc) { s.e.d.describe(ch) }

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	c := &collection{scrape: s, seen: map[[2]string]string{}}
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() { c.collectTarget(ch, t) })
	}
	wg.Wait()
}

// collection is one Collect call.
type collection struct {
	*scrape
	mu   sync.Mutex
	seen map[[2]string]string // region, project ID -> target name
}

func (s *collection) collectTarget(ch chan<- prometheus.Metric, t *target) {
	e := s.e
	start := time.Now()
	client, err := e.client(s.ctx, t)
	if err != nil {
		e.logFailure(t, "project_lookup", s.ctx, err)
		if !s.claim(t, t.Region, t.ProjectID) {
			return
		}
		dur := time.Since(start).Seconds()
		for _, c := range e.enabled {
			e.send(ch, e.d.success, 0, t.Region, t.ProjectID, c)
			e.send(ch, e.d.duration, dur, t.Region, t.ProjectID, c)
		}
		e.send(ch, e.d.up, 0, t.Region, t.ProjectID)
		return
	}
	region, project := client.Region(), client.ProjectID()
	if !s.claim(t, region, project) {
		return
	}

	var ok atomic.Int32
	var wg sync.WaitGroup
	for _, c := range e.enabled {
		wg.Go(func() {
			begin := time.Now()
			val, err := e.shared(s.ctx, t.Name+"\x00"+c, e.ttl[c], func(ctx context.Context) (any, error) {
				return e.fetch(ctx, c, client, t)
			})
			success := 0.0
			if err == nil {
				ok.Add(1)
				success = 1
				e.emit(ch, c, val, region, project)
			} else {
				e.logFailure(t, c, s.ctx, err)
			}
			e.send(ch, e.d.success, success, region, project, c)
			e.send(ch, e.d.duration, time.Since(begin).Seconds(), region, project, c)
		})
	}
	wg.Wait()
	up := 0.0
	if ok.Load() > 0 {
		up = 1
	}
	e.send(ch, e.d.up, up, region, project)
}

// claim keeps two targets that resolve to the same project from exporting
// the same series twice: the first one wins.
func (s *collection) claim(t *target, region, project string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{region, project}
	if other, dup := s.seen[k]; dup {
		level.Warn(s.e.logger).Log("msg", "target skipped: same region and project as another target", "target", t.Name, "other", other, "region", region, "project_id", project)
		return false
	}
	s.seen[k] = t.Name
	return true
}

// client returns the target's API client, looking up its project ID first
// when the config does not give one. A found ID is kept for the Exporter's life.
func (e *Exporter) client(ctx context.Context, t *target) (*kmsapi.Client, error) {
	t.mu.Lock()
	c := t.client
	t.mu.Unlock()
	if c != nil {
		return c, nil
	}
	project := t.ProjectID
	if project == "" {
		v, err := e.shared(ctx, t.Name+"\x00project", 0, func(ctx context.Context) (any, error) {
			return t.Credential.LookupProject(ctx, t.Region)
		})
		if err != nil {
			return nil, err
		}
		project = v.(string)
	}
	c, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: t.Region, ProjectID: project, Endpoint: t.Endpoint, Credential: t.Credential})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		t.client = c
	}
	return t.client, nil
}

func (e *Exporter) fetch(ctx context.Context, c string, client *kmsapi.Client, t *target) (any, error) {
	switch c {
	case Quotas:
		return client.Quotas(ctx)
	case Instances:
		return client.InstanceCount(ctx)
	case Keys:
		keys, err := client.ListKeys(ctx, kmsapi.KeyQuery{})
		if err != nil {
			return nil, err
		}
		return summarizeKeys(keys, t.TagKeys, e.opts.MaxTagSeries), nil
	case Regions:
		regions, err := client.Regions(ctx)
		if err != nil {
			return nil, err
		}
		return sortedUnique(regions), nil
	}
	return nil, fmt.Errorf("unknown collector %q", c)
}

func (e *Exporter) emit(ch chan<- prometheus.Metric, c string, val any, region, project string) {
	d := &e.d
	// NewConstMetric copies the label values: one buffer serves every series.
	lv := make([]string, 2, 4)
	lv[0], lv[1] = region, project
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		e.send(ch, desc, v, append(lv[:2], labels...)...)
	}
	switch c {
	case Quotas:
		seen := map[string]bool{}
		for _, q := range val.([]kmsapi.Quota) {
			r := validUTF8(q.Resource)
			if seen[r] {
				continue
			}
			seen[r] = true
			gauge(d.quotaLimit, float64(q.Limit), r)
			gauge(d.quotaUsed, float64(q.Used), r)
		}
	case Instances:
		gauge(d.instances, float64(val.(int64)))
	case Keys:
		s := val.(*keySummary)
		for i, name := range stateNames {
			if i == unknownState && s.states[i] == 0 {
				continue
			}
			gauge(d.keys, s.states[i], name)
		}
		gauge(d.defaultKeys, s.defaults)
		for _, tc := range s.tags {
			gauge(d.keysByTag, tc.n, tc.key, tc.value)
		}
		gauge(d.tagDropped, s.dropped)
		for _, del := range s.deletions {
			gauge(d.deletion, del.at, del.id, del.alias)
		}
	case Regions:
		for _, r := range val.([]string) {
			gauge(d.crossRegion, 1, r)
		}
	}
}

// send emits one gauge. Label values are made valid beforehand, so an error
// here is a bug: it is logged, never a panic at scrape time.
func (e *Exporter) send(ch chan<- prometheus.Metric, desc *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	if err != nil {
		level.Error(e.logger).Log("msg", "cannot build metric", "desc", desc, "err", err)
		return
	}
	ch <- m
}

// logFailure writes one line per failed collector, with what an operator
// needs to look the call up: never a secret (kmsapi.Error holds none).
func (e *Exporter) logFailure(t *target, collector string, scrapeCtx context.Context, err error) {
	if scrapeCtx.Err() != nil && errors.Is(err, scrapeCtx.Err()) {
		err = fmt.Errorf("scrape deadline reached: %w", err)
	}
	kv := []any{"msg", "collector failed", "target", t.Name, "collector", collector}
	var ae *kmsapi.Error
	if errors.As(err, &ae) {
		kv = append(kv, "endpoint", ae.Endpoint, "status", ae.StatusCode, "error_code", ae.Code, "request_id", ae.RequestID)
	} else if ep := endpoints[collector]; ep != "" {
		// No answer to tell (e.g. the deadline passed while waiting): the
		// endpoint that did not answer still helps.
		kv = append(kv, "endpoint", ep)
	}
	kv = append(kv, "err", err)
	level.Error(e.logger).Log(kv...)
}

type descs struct {
	up, success, duration                              *prometheus.Desc
	quotaLimit, quotaUsed, instances                   *prometheus.Desc
	keys, defaultKeys, keysByTag, tagDropped, deletion *prometheus.Desc
	crossRegion                                        *prometheus.Desc
}

func newDescs(ttl map[string]time.Duration) descs {
	desc := func(name, help string, reuse time.Duration, labels ...string) *prometheus.Desc {
		if reuse > 0 {
			help += fmt.Sprintf(" Reused for up to %s after a successful fetch.", model.Duration(reuse))
		}
		return prometheus.NewDesc(name, help, append([]string{"region", "project_id"}, labels...), nil)
	}
	return descs{
		up:          desc("kms_up", "1 if the target authenticated and at least one collector succeeded.", 0),
		success:     desc("kms_scrape_collector_success", "1 if the collector succeeded in this scrape, 0 if it failed.", 0, "collector"),
		duration:    desc("kms_scrape_collector_duration_seconds", "Wall time of the collector in this scrape.", 0, "collector"),
		quotaLimit:  desc("kms_quota_limit", "KMS quota of the resource (user-quotas quota).", ttl[Quotas], "resource"),
		quotaUsed:   desc("kms_quota_used", "KMS quota of the resource in use (user-quotas used).", ttl[Quotas], "resource"),
		instances:   desc("kms_cmk_instances", "Number of customer master keys, default keys excluded (user-instances instance_num).", ttl[Instances]),
		keys:        desc("kms_keys", "Number of keys by key state.", ttl[Keys], "state"),
		defaultKeys: desc("kms_default_keys", "Number of default master keys created by cloud services.", ttl[Keys]),
		keysByTag:   desc("kms_keys_by_tag", "Number of keys carrying the tag (allowed tag keys only, capped per target).", ttl[Keys], "tag_key", "tag_value"),
		tagDropped:  desc("kms_keys_by_tag_dropped_series", "Number of kms_keys_by_tag series not exported because of the cap.", ttl[Keys]),
		deletion:    desc("kms_key_scheduled_deletion_timestamp_seconds", "When the key pending deletion will be deleted, in Unix seconds.", ttl[Keys], "key_id", "key_alias"),
		crossRegion: desc("kms_cross_region_info", "1 for every region that cross-region keys support.", ttl[Regions], "supported_region"),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.up, d.success, d.duration, d.quotaLimit, d.quotaUsed, d.instances,
		d.keys, d.defaultKeys, d.keysByTag, d.tagDropped, d.deletion, d.crossRegion} {
		ch <- x
	}
}
