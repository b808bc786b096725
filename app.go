package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/config"
	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// app is the running exporter: its own metrics, and the config in force,
// swapped whole on reload.
type app struct {
	s      *settings
	logger log.Logger
	getenv func(string) string

	own        *prometheus.Registry
	api        *collector.APIMetrics
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge

	demo       *kmsfake.Server // --demo only
	demoData   kmsfake.Scenario
	httpClient *http.Client // every API call's, metadata included; nil: kmsapi's defaults
	pauses     *lockout.Store

	history *history // recent scrapes, kept across reloads

	reloadMu    sync.Mutex
	cur         atomic.Pointer[loaded]
	discoveries sync.WaitGroup // the Run of every discovery started
}

// loaded is one config in force. A discovery refresh replaces it by a copy
// with the new targets.
type loaded struct {
	cfg     *config.Config
	exp     *collector.Exporter
	landing http.Handler
	creds   *config.Credentials

	disc          *discovery.Discoverer
	stopDiscovery context.CancelFunc
	targets       []targetInfo // static, then discovered
	sd            []sdGroup    // /targets
}

func newApp(s *settings, logger log.Logger, getenv func(string) string) (*app, error) {
	if err := normalizeEndpointFlags(s); err != nil {
		return nil, err
	}
	own := collector.NewOwnMetrics()
	a := &app{
		s:          s,
		logger:     logger,
		getenv:     getenv,
		own:        prometheus.NewRegistry(),
		api:        own.API,
		reloadOK:   own.ReloadOK,
		reloadTime: own.ReloadTime,
		history:    newHistory(s.historyLimit),
	}
	a.own.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.configMetrics(),
	)
	a.own.MustRegister(own.Collectors()...)
	var err error
	if a.pauses, err = lockout.NewStore(s.storagePath, logger); err != nil {
		return nil, fmt.Errorf("--storage.path: %w", err)
	}
	if s.demo {
		a.demo, a.demoData = startDemo(logger)
		a.httpClient = a.demo.Client()
	}
	return a, nil
}

// normalizeEndpointFlags gives --kms.endpoint and --iam.endpoint the
// https:// they lack, and refuses what is not a URL at start-up rather
// than at every scrape.
func normalizeEndpointFlags(s *settings) error {
	for _, f := range []struct {
		name string
		v    *string
	}{{"--kms.endpoint", &s.kmsEndpoint}, {"--iam.endpoint (HUAWEICLOUD_SDK_IAM_ENDPOINT)", &s.iamEndpoint}} {
		if *f.v == "" {
			continue
		}
		v, err := config.NormalizeEndpoint(*f.v)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.v = v
	}
	return nil
}

func (a *app) close() {
	if l := a.cur.Load(); l != nil && l.stopDiscovery != nil {
		l.stopDiscovery()
	}
	a.discoveries.Wait()
	if a.demo != nil {
		a.demo.Close()
	}
}

// loadConfig reads the config from where the flags say: the file, the demo
// fake, or the single-target flags and environment.
func (a *app) loadConfig() (*config.Config, error) {
	switch {
	case a.demo != nil:
		return demoConfig(a.demo.URL(), a.demoData)
	case a.s.configFile != "":
		return config.Load(a.s.configFile)
	}
	return singleTargetConfig(a.s, a.getenv)
}

// singleTargetConfig builds the config of one target from --kms.* flags and
// the SDK's environment variables. A secret never comes from a flag.
func singleTargetConfig(s *settings, getenv func(string) string) (*config.Config, error) {
	if s.region == "" {
		return nil, errors.New("no targets: give --config.file, or --kms.region with HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE) in the environment, or try --demo")
	}
	cred, err := envCredential(getenv)
	if err != nil {
		return nil, err
	}
	c := &config.Config{
		Credentials: map[string]*config.Credential{"env": cred},
		Targets: []config.Target{{
			Name:        s.region,
			Region:      s.region,
			ProjectID:   s.projectID,
			KMSEndpoint: s.kmsEndpoint,
		}},
	}
	if err := c.Resolve(""); err != nil {
		return nil, errors.New(flagNames.Replace(err.Error()))
	}
	return c, nil
}

// configWarnings are cfg's warnings, in the words of the flags when the
// config was built from them.
func (a *app) configWarnings(cfg *config.Config) []string {
	w := cfg.Warnings()
	if a.s.configFile == "" {
		for i := range w {
			w[i] = flagNames.Replace(w[i])
		}
	}
	return w
}

// flagNames names, in the errors about the config built from flags and
// environment, where each value came from.
var flagNames = strings.NewReplacer(
	"credentials.env.access_key", "HUAWEICLOUD_SDK_AK",
	"credentials.env.secret_key", "HUAWEICLOUD_SDK_SK",
	"credentials.env.security_token", "HUAWEICLOUD_SDK_SECURITY_TOKEN",
	"credentials.env.oidc.idp_id", "HUAWEICLOUD_SDK_IDP_ID",
	"credentials.env.oidc.id_token_file", "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
	"targets[0].name", "--kms.region",
	"targets[0].region", "--kms.region",
	"targets[0].project_id", "--kms.project-id (HUAWEICLOUD_SDK_PROJECT_ID)",
	"targets[0].kms_endpoint", "--kms.endpoint",
)

// build turns a config into an Exporter: one kmsapi.Credential per named
// credential, shared by its targets (one rate limit and one auth pause
// each), kept from the config in force while its settings are unchanged.
func (a *app) build(cfg *config.Config) (*loaded, error) {
	var previous *config.Credentials
	if cur := a.cur.Load(); cur != nil {
		previous = cur.creds
	}
	creds, err := config.BuildCredentials(cfg, previous, a.buildOptions())
	if err != nil {
		return nil, err
	}
	disc := a.newDiscoverer(cfg, creds)
	// A config starts with its discovered targets when IAM answers soon.
	ctx, cancel := context.WithTimeout(context.Background(), initialDiscoveryTimeout)
	disc.Initial(ctx)
	cancel()
	found := disc.Targets()
	exp, err := collector.New(collectorTargets(cfg, creds, found), collector.Options{
		Collectors:          a.s.collectors,
		TagKeys:             a.s.tagKeys,
		MaxTagSeries:        a.s.maxTagSeries,
		CacheTTL:            a.s.cacheTTL,
		KeysRefreshInterval: a.s.keysRefresh,
		Logger:              a.logger,
		Record:              a.recordScrape,
	})
	if err != nil {
		return nil, err
	}
	return a.withExporter(&loaded{cfg: cfg, creds: creds, disc: disc}, exp, found)
}

// buildOptions apply to every credential of a config.
func (a *app) buildOptions() config.BuildOptions {
	return config.BuildOptions{
		IAMEndpoint:       a.s.iamEndpoint,
		RequestsPerSecond: a.s.rps,
		Concurrency:       a.s.concurrency,
		HTTPClient:        a.httpClient,
		Observer:          a.api.Observe,
		PauseStore:        a.pauses,
		Logger:            a.logger,
	}
}

// reload reads and builds the config and puts it in force. On failure the
// config in force stays, and the reload gauge says so.
func (a *app) reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cfg, err := a.loadConfig()
	var l *loaded
	if err == nil {
		l, err = a.build(cfg)
	}
	if err != nil {
		a.reloadOK.Set(0)
		msg := "cannot load config"
		if a.cur.Load() != nil {
			msg = "cannot reload config; the previous config stays in force"
		}
		level.Error(a.logger).Log("msg", msg, "err", err)
		return err
	}
	a.startDiscovery(l)
	if prev := a.cur.Swap(l); prev != nil {
		prev.stopDiscovery()
	}
	a.forgetGoneTargets(l)
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	level.Info(a.logger).Log("msg", "config loaded", "targets", len(cfg.Targets), "discovery", len(cfg.Discovery), "credentials", len(cfg.Credentials))
	for _, w := range a.configWarnings(cfg) {
		level.Warn(a.logger).Log("msg", w)
	}
	return nil
}
