package collector

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
)

// Result is what one scrape of one target produced, for Options.Record:
// the landing page shows the last ones and /probe?debug=true prints one.
type Result struct {
	Target     string
	Region     string
	ProjectID  string // "" when the lookup failed
	Credential string // the name of the target's credential
	Start      time.Time
	Duration   time.Duration
	Metrics    []prometheus.Metric // as sent to the registry
	Failures   []Failure           // failed collectors, in report order
	Trace      *apitrace.Trace     // every API call made for this target
}

// Failure is a collector that failed in a scrape; project_lookup when the
// project ID could not be found.
type Failure struct {
	Collector string
	Err       error
}

// recorder gathers a Result while a target is collected. A nil recorder
// (no Options.Record) does nothing.
type recorder struct {
	record func(context.Context, Result)
	mu     sync.Mutex
	res    Result
	order  []collector // the enabled collectors, in report order
	tee    chan prometheus.Metric
	done   chan struct{}
	keep   bool
}

// startRecord begins the Result of one target: the returned context carries
// the target's Trace, the returned channel copies every metric into it.
func (e *Exporter) startRecord(ctx context.Context, ch chan<- prometheus.Metric, t *target) (context.Context, chan<- prometheus.Metric, *recorder) {
	if e.record == nil {
		return ctx, ch, nil
	}
	r := &recorder{
		record: e.record,
		res: Result{Target: t.Name, Region: t.Region, ProjectID: t.ProjectID, Credential: t.Credential.Name(),
			Start: e.now(), Trace: apitrace.New()},
		order: e.enabled,
		tee:   make(chan prometheus.Metric),
		done:  make(chan struct{}),
		keep:  true,
	}
	go func() {
		defer close(r.done)
		for m := range r.tee {
			r.res.Metrics = append(r.res.Metrics, m)
			ch <- m
		}
	}()
	return apitrace.With(ctx, r.res.Trace), r.tee, r
}

// target sets the region and project the target resolved to.
func (r *recorder) target(region, project string) {
	if r != nil {
		r.res.Region, r.res.ProjectID = region, project
	}
}

// fail notes a failed collector.
func (r *recorder) fail(collector string, err error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.res.Failures)
	for i > 0 && r.rank(r.res.Failures[i-1].Collector) > r.rank(collector) {
		i--
	}
	r.res.Failures = slices.Insert(r.res.Failures, i, Failure{Collector: collector, Err: err})
}

// rank is the report position of the named collector; -1, first, for the
// project lookup.
func (r *recorder) rank(name string) int {
	return slices.IndexFunc(r.order, func(c collector) bool { return c.name() == name })
}

// skip drops the Result: the target was not reported (a duplicate).
func (r *recorder) skip() {
	if r != nil {
		r.keep = false
	}
}

// finish hands the Result to Options.Record once every metric has passed.
func (r *recorder) finish(ctx context.Context, now time.Time) {
	if r == nil {
		return
	}
	close(r.tee)
	<-r.done
	if !r.keep {
		return
	}
	r.res.Duration = now.Sub(r.res.Start)
	r.record(ctx, r.res)
}
