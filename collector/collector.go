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
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/internal/flight"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// collector is one API endpoint turned into metrics. Each lives in a file of
// its own and is listed once in factories.
type collector interface {
	// name is the `collector` label value and the --collector.<name> flag.
	name() string
	// endpoint is the kmsapi.Endpoint* that fetch calls, named in logs.
	endpoint() string
	// reuse is how long a successful fetch is served again (0: never).
	reuse() time.Duration
	// descs lists every gauge the emitted metrics use.
	descs() []*desc
	// fetch calls the API for one target. What it returns is cached and
	// may be emitted by many scrapes: it must not change once returned.
	fetch(ctx context.Context, client *kmsapi.Client, t *Target) (emitFunc, error)
}

// about is what a collector tells of itself; every collector embeds it.
type about struct {
	collectorName, apiEndpoint string
	ttl                        time.Duration
}

func (a about) name() string         { return a.collectorName }
func (a about) endpoint() string     { return a.apiEndpoint }
func (a about) reuse() time.Duration { return a.ttl }

// emitFunc sends a fetched result's metrics through gauge.
type emitFunc func(gauge gaugeFunc)

// gaugeFunc sends one gauge of the target; region and project_id come first
// and are added by the caller, labels are the desc's own ones.
type gaugeFunc func(d *desc, v float64, labels ...string)

// factories builds every collector, in the order they are reported. Adding a
// collector is adding a file and a line here.
var factories = []func(Options) collector{
	newQuotas,
	newInstances,
	newKeys,
	newRegions,
}

// All lists every collector name, in the order they are reported.
var All = func() []string {
	names := make([]string, len(factories))
	for i, f := range factories {
		names[i] = f(Options{}).name()
	}
	return names
}()

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
	// Record, if set, is given the Result of every target of every scrape,
	// with the scrape's context.
	Record func(context.Context, Result)
}

// Exporter scrapes a fixed set of targets. It is safe for concurrent scrapes.
type Exporter struct {
	logger     log.Logger
	now        func() time.Time
	collectors []collector // every collector, for Describe
	enabled    []collector
	targets    []*target
	byName     map[string]*target
	up         *desc
	success    *desc
	duration   *desc
	record     func(context.Context, Result)

	tagKeys []string // Options.TagKeys

	// Shared with the Exporters WithTargets derives from this one.
	results *results
	lookups *flight.Group[string, string] // project lookups, by target name
	budget  *budget
}

type target struct {
	Target
	mu     sync.Mutex
	client *kmsapi.Client // set once the project ID is known
}

// New builds an Exporter. Target names must be unique.
func New(targets []Target, o Options) (*Exporter, error) {
	e := &Exporter{
		logger:   o.Logger,
		now:      o.Now,
		byName:   map[string]*target{},
		up:       newDesc("kms_up", "1 if the API answered for the target: a call made for it in this scrape succeeded or, when every result came from the cache, its last call did.", 0),
		success:  newDesc("kms_scrape_collector_success", "1 if the collector succeeded in this scrape, 0 if it failed; served from the cache, the outcome of its last fetch.", 0, "collector"),
		duration: newDesc("kms_scrape_collector_duration_seconds", "Wall time of the collector in this scrape.", 0, "collector"),
		record:   o.Record,
	}
	if e.logger == nil {
		e.logger = log.NewNopLogger()
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.results = newResults(e.now)
	e.lookups = &flight.Group[string, string]{}
	e.budget = &budget{logger: e.logger}
	e.tagKeys = o.TagKeys
	byName := map[string]collector{}
	for _, f := range factories {
		c := f(o)
		e.collectors = append(e.collectors, c)
		byName[c.name()] = c
	}
	e.enabled = e.collectors
	if o.Collectors != nil {
		e.enabled = nil
		for _, name := range o.Collectors {
			c, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("unknown collector %q", name)
			}
			e.enabled = append(e.enabled, c)
		}
	}
	if err := e.setTargets(targets, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// desc is a per-target gauge: its Desc, and what Metrics tells of it.
type desc struct {
	*prometheus.Desc
	name, help string
	labels     []string // region and project_id first
}

// newDesc builds a per-target gauge; reuse > 0 says in HELP how long a value
// may be served from the cache.
func newDesc(name, help string, reuse time.Duration, labels ...string) *desc {
	if reuse > 0 {
		help += fmt.Sprintf(" Reused for up to %s after a successful fetch.", model.Duration(reuse))
	}
	labels = append([]string{"region", "project_id"}, labels...)
	return &desc{Desc: prometheus.NewDesc(name, help, labels, nil), name: name, help: help, labels: labels}
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

func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.e.descs() {
		ch <- d.Desc
	}
}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	s.checkBudget()
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
	ctx, ch, rec := e.startRecord(s.ctx, ch, t)
	defer func() { rec.finish(ctx, e.now()) }()
	client, err := e.client(ctx, t)
	if err != nil {
		e.logFailure(t, "project_lookup", "", s.ctx, err)
		rec.fail("project_lookup", err)
		if !s.claim(t, t.Region, t.ProjectID) {
			rec.skip()
			return
		}
		dur := time.Since(start).Seconds()
		for _, c := range e.enabled {
			e.send(ch, e.success, 0, t.Region, t.ProjectID, c.name())
			e.send(ch, e.duration, dur, t.Region, t.ProjectID, c.name())
		}
		e.send(ch, e.up, 0, t.Region, t.ProjectID)
		return
	}
	region, project := client.Region(), client.ProjectID()
	rec.target(region, project)
	if !s.claim(t, region, project) {
		rec.skip()
		return
	}
	// The target is up when a call made for it in this scrape succeeded;
	// when every result came from the cache, when its last call did.
	var called, answered atomic.Bool
	var wg sync.WaitGroup
	for _, c := range e.enabled {
		wg.Go(func() {
			call, ok := s.collectOne(ctx, ch, rec, t, client, c)
			if call {
				called.Store(true)
				if ok {
					answered.Store(true)
				}
			}
		})
	}
	wg.Wait()
	up := 0.0
	if answered.Load() || (!called.Load() && e.results.lastCallOK(t.Name)) {
		up = 1
	}
	e.send(ch, e.up, up, region, project)
}

// collectOne sends the metrics of one collector for t; called says whether
// it made an API call rather than use the cache, ok whether it succeeded.
func (s *collection) collectOne(ctx context.Context, ch chan<- prometheus.Metric, rec *recorder, t *target, client *kmsapi.Client, c collector) (called, ok bool) {
	e := s.e
	region, project := client.Region(), client.ProjectID()
	begin := time.Now()
	emit, called, err := e.results.get(ctx, t.Name, c, func(ctx context.Context) (emitFunc, error) {
		return c.fetch(ctx, client, &t.Target)
	})
	success := 0.0
	if err == nil {
		success = 1
		emit(e.gauges(ch, region, project))
	} else {
		e.logFailure(t, c.name(), c.endpoint(), s.ctx, err)
		rec.fail(c.name(), err)
	}
	e.send(ch, e.success, success, region, project, c.name())
	e.send(ch, e.duration, time.Since(begin).Seconds(), region, project, c.name())
	return called, err == nil
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
		var err error
		project, err = e.lookups.Do(ctx, t.Name, func(ctx context.Context) (string, error) {
			return t.Credential.LookupProject(ctx, t.Region)
		})
		if err != nil {
			return nil, err
		}
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

// gauges returns the gaugeFunc of one target's series.
func (e *Exporter) gauges(ch chan<- prometheus.Metric, region, project string) gaugeFunc {
	// NewConstMetric copies the label values: one buffer serves every series.
	lv := make([]string, 2, 4)
	lv[0], lv[1] = region, project
	return func(d *desc, v float64, labels ...string) {
		e.send(ch, d, v, append(lv[:2], labels...)...)
	}
}

// send emits one gauge. Label values are made valid beforehand, so an error
// here is a bug: it is logged, never a panic at scrape time.
func (e *Exporter) send(ch chan<- prometheus.Metric, d *desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d.Desc, prometheus.GaugeValue, v, labels...)
	if err != nil {
		level.Error(e.logger).Log("msg", "cannot build metric", "metric", d.name, "err", err)
		return
	}
	ch <- m
}

// logFailure writes one line per failed collector, with what an operator
// needs to look the call up: never a secret (kmsapi.Error holds none).
// Authentication failures go at debug level: the credential warns once per
// pause, where every collector of every target would fail each scrape.
func (e *Exporter) logFailure(t *target, collector, endpoint string, scrapeCtx context.Context, err error) {
	if until, paused := kmsapi.PauseOf(err); paused {
		level.Debug(e.logger).Log("msg", "collector skipped: credential paused", "target", t.Name, "collector", collector,
			"endpoint", endpoint, "credential", t.Credential.Name(), "until", until.UTC().Format(time.RFC3339))
		return
	}
	if scrapeCtx.Err() != nil && errors.Is(err, scrapeCtx.Err()) {
		err = fmt.Errorf("scrape deadline reached: %w", err)
	}
	kv := []any{"msg", "collector failed", "target", t.Name, "collector", collector}
	lvl := level.Error
	var ae *kmsapi.Error
	if errors.As(err, &ae) {
		kv = append(kv, "endpoint", ae.Endpoint, "status", ae.StatusCode, "error_code", ae.Code, "request_id", ae.RequestID)
		if ae.StatusCode == http.StatusUnauthorized {
			lvl = level.Debug
		}
	} else if endpoint != "" {
		// No answer to tell (e.g. the deadline passed while waiting): the
		// endpoint that did not answer still helps.
		kv = append(kv, "endpoint", endpoint)
	}
	kv = append(kv, "err", err)
	lvl(e.logger).Log(kv...)
}
