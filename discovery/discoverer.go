package discovery

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Defaults of Options.
const (
	// DefaultRetryInterval is how soon a failed refresh is tried again
	// (or the refresh interval, when shorter).
	DefaultRetryInterval = time.Minute
	// DefaultRefreshTimeout bounds one refresh.
	DefaultRefreshTimeout = time.Minute
)

// Source is one discovery entry at run time.
type Source struct {
	Rule
	Interval time.Duration
	// List lists the projects of the credential: kmsapi.Credential.ListProjects.
	List func(ctx context.Context) ([]kmsapi.Project, error)
}

// Options configure a Discoverer.
type Options struct {
	Static []Static
	// OnChange is called, from the refreshing goroutine, after a refresh
	// changed the targets.
	OnChange       func()
	Logger         log.Logger
	RetryInterval  time.Duration // default DefaultRetryInterval
	RefreshTimeout time.Duration // default DefaultRefreshTimeout
}

// Discoverer runs the discovery entries of one config.
type Discoverer struct {
	o       Options
	sources []*source
}

type source struct {
	Source
	mu          sync.Mutex
	targets     []Target
	found       bool      // a refresh succeeded, or the list was kept over a reload
	lastSuccess time.Time // zero until a refresh succeeds
	next        time.Time // when Run refreshes next; zero: at once
}

// New builds a Discoverer; nothing runs before Run or Refresh.
func New(sources []Source, o Options) *Discoverer {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.RefreshTimeout <= 0 {
		o.RefreshTimeout = DefaultRefreshTimeout
	}
	d := &Discoverer{o: o}
	for _, s := range sources {
		d.sources = append(d.sources, &source{Source: s})
	}
	return d
}

// Keep takes over the last list of every source of prev with the same
// credential and rule, so that a reload serves the discovered targets at
// once, while Run finds them again. Static targets of the new config still win.
func (d *Discoverer) Keep(prev *Discoverer) {
	if prev == nil {
		return
	}
	for _, s := range d.sources {
		for _, p := range prev.sources {
			if !sameRule(p.Rule, s.Rule) {
				continue
			}
			p.mu.Lock()
			targets, found, at := p.targets, p.found, p.lastSuccess
			p.mu.Unlock()
			s.mu.Lock()
			s.targets, s.found, s.lastSuccess = withoutStatic(targets, d.o.Static), found, at
			s.mu.Unlock()
		}
	}
}

func sameRule(a, b Rule) bool {
	return a.Credential == b.Credential && slices.Equal(a.Regions, b.Regions) &&
		reString(a.Include) == reString(b.Include) && reString(a.Exclude) == reString(b.Exclude) &&
		a.KMSEndpoint == b.KMSEndpoint && slices.Equal(a.TagKeys, b.TagKeys)
}

func reString(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	return re.String()
}

// Targets returns every discovered target: by source, then by name.
func (d *Discoverer) Targets() []Target {
	var out []Target
	for _, s := range d.sources {
		s.mu.Lock()
		out = append(out, s.targets...)
		s.mu.Unlock()
	}
	return out
}

// Run refreshes every source at once (but those Initial refreshed) and
// then every Interval, sooner after a failure, until ctx ends. It returns
// when every refresh has stopped.
func (d *Discoverer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range d.sources {
		wg.Go(func() {
			for {
				s.mu.Lock()
				wait := time.Until(s.next)
				s.mu.Unlock()
				if wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
				if ctx.Err() != nil {
					return
				}
				d.refresh(ctx, s, true)
			}
		})
	}
	wg.Wait()
}

// Initial refreshes, in parallel, the sources that have no list yet (none
// kept over a reload), without calling OnChange: the targets a config
// starts with. Run then lists them again only after their interval.
func (d *Discoverer) Initial(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range d.sources {
		s.mu.Lock()
		found := s.found
		s.mu.Unlock()
		if !found {
			wg.Go(func() { d.refresh(ctx, s, false) })
		}
	}
	wg.Wait()
}

// Refresh refreshes every source once, in parallel, and returns the errors
// by credential (none: an empty map).
func (d *Discoverer) Refresh(ctx context.Context) map[string]error {
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range d.sources {
		wg.Go(func() {
			if err := d.refresh(ctx, s, false); err != nil {
				mu.Lock()
				errs[s.Credential] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// refresh lists one source's projects and puts the targets in force; on
// failure the last list stays. notify calls OnChange when the targets changed.
func (d *Discoverer) refresh(parent context.Context, s *source, notify bool) error {
	ctx, cancel := context.WithTimeout(parent, d.o.RefreshTimeout)
	defer cancel()
	projects, err := s.List(ctx)
	if err != nil {
		if parent.Err() != nil {
			return err // stopped by a reload or shutdown: not a failure to report
		}
		s.mu.Lock()
		kept := len(s.targets)
		s.next = time.Now().Add(min(s.Interval, d.o.RetryInterval))
		s.mu.Unlock()
		lvl := level.Warn
		if refusedCredential(err) {
			// The credential already warns once per pause; a refresh
			// retried every minute would repeat it.
			lvl = level.Debug
		}
		lvl(d.o.Logger).Log("msg", "discovery refresh failed; keeping the last list of targets", "credentials", s.Credential, "targets_kept", kept, "err", err)
		return err
	}
	targets := Select(s.Rule, projects, d.o.Static)
	s.mu.Lock()
	changed := !s.found || !slices.EqualFunc(s.targets, targets, sameTarget)
	added, removed := diff(s.targets, targets)
	s.targets, s.found, s.lastSuccess = targets, true, time.Now()
	s.next = s.lastSuccess.Add(s.Interval)
	s.mu.Unlock()
	if changed {
		level.Info(d.o.Logger).Log("msg", "discovered targets", "credentials", s.Credential, "projects", len(projects), "targets", len(targets), "added", added, "removed", removed)
		if notify && d.o.OnChange != nil {
			d.o.OnChange()
		}
	}
	return nil
}

// refusedCredential tells a listing refused for a wrong credential: a 401,
// or no call at all while the credential is paused after one.
func refusedCredential(err error) bool {
	if _, paused := kmsapi.PauseOf(err); paused {
		return true
	}
	var e *kmsapi.Error
	return errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized
}

func sameTarget(a, b Target) bool {
	return a.Name == b.Name && a.Region == b.Region && a.ProjectID == b.ProjectID &&
		a.KMSEndpoint == b.KMSEndpoint && slices.Equal(a.TagKeys, b.TagKeys)
}

// diff counts the names in b but not in a, and in a but not in b.
func diff(a, b []Target) (added, removed int) {
	inA := make(map[string]bool, len(a))
	for _, t := range a {
		inA[t.Name] = true
	}
	for _, t := range b {
		if inA[t.Name] {
			delete(inA, t.Name)
		} else {
			added++
		}
	}
	return added, len(inA)
}

// withoutStatic drops the targets a static target now covers.
func withoutStatic(ts []Target, static []Static) []Target {
	covered := indexStatic(static)
	var out []Target
	for _, t := range ts {
		if !covered.covers(t) {
			out = append(out, t)
		}
	}
	return out
}

var (
	targetsDesc = prometheus.NewDesc("kms_discovery_targets",
		"Targets the last successful discovery refresh of the credential found.", []string{"credentials"}, nil)
	lastSuccessDesc = prometheus.NewDesc("kms_discovery_last_success_timestamp_seconds",
		"When a discovery refresh of the credential last succeeded, in Unix seconds; 0 before the first. A failed refresh keeps the last list of targets.", []string{"credentials"}, nil)
)

// Describe and Collect export kms_discovery_targets and
// kms_discovery_last_success_timestamp_seconds per discovery entry.
func (d *Discoverer) Describe(ch chan<- *prometheus.Desc) {
	ch <- targetsDesc
	ch <- lastSuccessDesc
}

func (d *Discoverer) Collect(ch chan<- prometheus.Metric) {
	for _, s := range d.sources {
		s.mu.Lock()
		n, at := len(s.targets), s.lastSuccess
		s.mu.Unlock()
		ts := 0.0
		if !at.IsZero() {
			ts = float64(at.UnixNano()) / 1e9
		}
		for desc, v := range map[*prometheus.Desc]float64{targetsDesc: float64(n), lastSuccessDesc: ts} {
			if m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, s.Credential); err == nil {
				ch <- m
			}
		}
	}
}
