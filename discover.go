package main

import (
	"context"
	"slices"
	"time"

	"github.com/go-kit/log/level"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/config"
	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// initialDiscoveryTimeout bounds the wait of a (re)load for the first
// listing of a new discovery entry; when IAM is slower, the config starts
// without the entry's targets and the background refresh adds them.
const initialDiscoveryTimeout = 10 * time.Second

// newDiscoverer builds the discovery entries of cfg. An entry unchanged
// from the config in force starts from its last list, so that a reload
// does not drop discovered targets while it lists the projects again.
func (a *app) newDiscoverer(cfg *config.Config, creds *config.Credentials) *discovery.Discoverer {
	var sources []discovery.Source
	for _, d := range cfg.Discovery {
		sources = append(sources, discovery.Source{
			Rule: discovery.Rule{
				Credential: d.Credentials, Regions: d.Regions, Include: d.IncludeRE, Exclude: d.ExcludeRE,
				KMSEndpoint: d.KMSEndpoint, TagKeys: d.TagKeys,
			},
			Interval: d.Interval,
			List:     creds.Get(d.Credentials).ListProjects,
		})
	}
	var static []discovery.Static
	for _, t := range cfg.Targets {
		static = append(static, discovery.Static{Name: t.Name, Credential: t.Credentials, Region: t.Region, ProjectID: t.ProjectID})
	}
	var disc *discovery.Discoverer
	disc = discovery.New(sources, discovery.Options{
		Static:   static,
		Logger:   a.logger,
		OnChange: func() { a.rediscovered(disc) },
	})
	if cur := a.cur.Load(); cur != nil {
		disc.Keep(cur.disc)
	}
	return disc
}

// collectorTargets are the static targets of cfg, then the discovered ones.
// Discovered targets use their entry's credential object, and so share its
// rate limit and its pause after an authentication failure with every
// other target of that credential.
func collectorTargets(cfg *config.Config, creds *config.Credentials, found []discovery.Target) []collector.Target {
	targets := make([]collector.Target, 0, len(cfg.Targets)+len(found))
	for _, t := range cfg.Targets {
		targets = append(targets, collector.Target{
			Name:       t.Name,
			Region:     t.Region,
			ProjectID:  t.ProjectID,
			Endpoint:   t.KMSEndpoint,
			Credential: creds.Get(t.Credentials),
			TagKeys:    t.TagKeys,
		})
	}
	for _, t := range found {
		targets = append(targets, collector.Target{
			Name:       t.Name,
			Region:     t.Region,
			ProjectID:  t.ProjectID,
			Endpoint:   t.KMSEndpoint,
			Credential: creds.Get(t.Credential),
			TagKeys:    slices.Clone(t.TagKeys),
		})
	}
	return targets
}

// rediscovered puts the new list of disc in force, if disc belongs to the
// config in force (a reload may have replaced it meanwhile).
func (a *app) rediscovered(disc *discovery.Discoverer) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cur := a.cur.Load()
	if cur == nil || cur.disc != disc {
		return
	}
	found := disc.Targets()
	exp, err := cur.exp.WithTargets(collectorTargets(cur.cfg, cur.creds, found))
	var next *loaded
	if err == nil {
		next, err = a.withExporter(cur, exp, found)
	}
	if err != nil {
		level.Error(a.logger).Log("msg", "cannot use the discovered targets; the previous targets stay", "err", err)
		return
	}
	a.cur.Store(next)
	a.forgetGoneTargets(next)
}

// forgetGoneTargets drops from the history the last records of the targets
// that l, now in force, no longer has.
func (a *app) forgetGoneTargets(l *loaded) {
	names := make(map[string]bool, len(l.targets))
	for _, t := range l.targets {
		names[t.Name] = true
	}
	a.history.retain(func(target string) bool { return names[target] })
}

// withExporter is a copy of l serving exp, whose discovered targets are found.
func (a *app) withExporter(l *loaded, exp *collector.Exporter, found []discovery.Target) (*loaded, error) {
	next := *l
	next.exp = exp
	next.targets = targetInfos(l.cfg, found)
	next.sd = sdGroups(next.targets)
	landing, err := a.landingPage(&next)
	if err != nil {
		return nil, err
	}
	next.landing = landing
	return &next, nil
}

// startDiscovery runs l's discovery until the next reload or close.
func (a *app) startDiscovery(l *loaded) {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopDiscovery = cancel
	a.discoveries.Go(func() { l.disc.Run(ctx) })
}

// configMetrics exports the discovery and rate-limit metrics of the config in force.
func (a *app) configMetrics() collector.ConfigMetrics {
	return collector.ConfigMetrics{Current: func() (map[string]*kmsapi.Credential, *discovery.Discoverer) {
		l := a.cur.Load()
		if l == nil {
			return nil, nil
		}
		creds := map[string]*kmsapi.Credential{}
		for _, name := range l.cfg.CredentialNames() {
			creds[name] = l.creds.Get(name)
		}
		return creds, l.disc
	}}
}
