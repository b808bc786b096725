package main

import (
	"context"
	"fmt"
	stdlog "log"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// Server timeouts. An idle keep-alive connection is closed after
// idleTimeout: Prometheus reconnects at no cost, and a client that opens
// connections and leaves them idle cannot hold them forever. An answer may
// take the longest scrape (--kms.timeout) plus writeMargin, for gathering
// and writing the metrics after the scrape's deadline.
const (
	idleTimeout = 30 * time.Second
	writeMargin = 10 * time.Second
)

// newServer is the HTTP server of the exporter: timeouts that fit a scrape
// of at most scrapeLimit, and net/http's own log lines (TLS handshake
// errors, panics in handlers) written through logger like every other line.
func newServer(h http.Handler, scrapeLimit time.Duration, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      scrapeLimit + writeMargin,
		IdleTimeout:       idleTimeout,
		ErrorLog:          stdlog.New(serverLog{logger}, "", 0),
	}
}

// serverLog receives http.Server's log lines, one per Write.
type serverLog struct{ l log.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimPrefix(strings.TrimSuffix(string(p), "\n"), "http: ")
	lvl := level.Warn
	if strings.Contains(msg, "panic serving") {
		lvl = level.Error
	}
	lvl(s.l).Log("msg", "HTTP server error", "err", msg)
	return len(p), nil
}

// handler routes every path. Cross-origin browser requests that change
// state (POST /-/reload from a page on another site) are refused with 403.
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	metrics := promhttp.InstrumentMetricHandler(a.own, http.HandlerFunc(a.serveMetrics))
	mux.Handle(a.s.telemetryPath, getOrHead(metrics))
	mux.Handle("/probe", getOrHead(http.HandlerFunc(a.serveProbe)))
	mux.Handle("/probe/debug", getOrHead(http.HandlerFunc(a.serveScrapeLog)))
	mux.Handle("/targets", getOrHead(http.HandlerFunc(a.serveTargets)))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if a.inForce(w) != nil {
			fmt.Fprintln(w, "Ready")
		}
	})
	mux.HandleFunc("/-/reload", a.serveReload)
	// Profiling, as node_exporter serves it: on this mux, so behind the
	// same TLS and basic auth. The landing page links heap and profile.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if l := a.inForce(w); l != nil {
			l.landing.ServeHTTP(w, r)
		}
	})
	return http.NewCrossOriginProtection().Handler(mux)
}

// inForce returns the config in force, or answers 503 and returns nil
// while none is loaded.
func (a *app) inForce(w http.ResponseWriter) *loaded {
	l := a.cur.Load()
	if l == nil {
		http.Error(w, "Not ready: no config loaded", http.StatusServiceUnavailable)
	}
	return l
}

// getOrHead answers 405 to every method but GET and HEAD: a scrape calls
// the API, and DELETE, TRACE or OPTIONS must not start one.
func getOrHead(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *app) landingPage(l *loaded) (http.Handler, error) {
	description := "Prometheus exporter for Huawei Cloud KMS"
	if a.demo != nil {
		description += " (demo mode: simulated data)"
	}
	return newLandingPage(web.LandingConfig{
		Name:        "KMS Exporter",
		Description: description,
		Version:     version.Info(),
		Links:       []web.LandingLinks{{Address: a.s.telemetryPath, Text: "Metrics", Description: "Every target, and the exporter's own metrics"}},
	}, func() landingData { return a.landingView(l).data() })
}

// minScrapeTimeout is the smallest X-Prometheus-Scrape-Timeout-Seconds taken
// as a deadline. Prometheus sends its scrape_timeout, which has millisecond
// resolution, so 0.001 is possible; but below 100ms not even one API call
// (a TLS handshake with a cloud endpoint) can finish, every collector would
// fail at once. Such a value, like a non-number, NaN or Inf, is a broken or
// forged header: --kms.timeout applies as if there were none.
const minScrapeTimeout = 100 * time.Millisecond

// scrapeTimeout is --kms.timeout, lowered to what Prometheus waits for
// (X-Prometheus-Scrape-Timeout-Seconds) minus --kms.timeout-offset.
func scrapeTimeout(r *http.Request, limit, offset time.Duration) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return limit
	}
	secs, err := strconv.ParseFloat(v, 64)
	// NaN fails every comparison: only an explicit range check keeps it out.
	if err != nil || !(secs >= minScrapeTimeout.Seconds() && secs <= limit.Seconds()) {
		return limit
	}
	t := time.Duration(secs * float64(time.Second))
	if t > offset {
		// Without room for the offset, use all the time there is.
		t -= offset
	}
	return t
}

func (a *app) scrapeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), scrapeTimeout(r, a.s.timeout, a.s.timeoutOffset))
}

// serveMetrics answers for every target plus the exporter's own metrics.
func (a *app) serveMetrics(w http.ResponseWriter, r *http.Request) {
	l := a.inForce(w)
	if l == nil {
		return
	}
	ctx, cancel := a.scrapeContext(r)
	defer cancel()
	ctx, _ = withScrapeInfo(ctx, "/metrics")
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.exp.Collector(ctx))
	// The scrape first, so the API metrics include its calls.
	a.serveGatherer(w, r, prometheus.Gatherers{reg, a.own})
}

// maxEchoedTarget bounds the unknown target name an error quotes: a
// target name in a config is at most 256 bytes.
const maxEchoedTarget = 256

// serveProbe answers for one target, from a fresh registry.
func (a *app) serveProbe(w http.ResponseWriter, r *http.Request) {
	l := a.inForce(w)
	if l == nil {
		return
	}
	name := r.URL.Query().Get("target")
	if name == "" {
		msg := "missing target parameter"
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			// Go drops the pairs it cannot parse, the target among them.
			msg = "bad query (" + err.Error() + ")"
		}
		http.Error(w, msg+": /probe?target=NAME, NAME one of: "+strings.Join(l.exp.TargetNames(), ", "), http.StatusBadRequest)
		return
	}
	ctx, cancel := a.scrapeContext(r)
	defer cancel()
	ctx, si := withScrapeInfo(ctx, "/probe")
	c, ok := l.exp.TargetCollector(ctx, name)
	if !ok {
		shown := name
		if len(shown) > maxEchoedTarget {
			shown = shown[:maxEchoedTarget] + "..." // echo no large input
		}
		http.Error(w, fmt.Sprintf("unknown target %q: not in the config; one of: %s", shown, strings.Join(l.exp.TargetNames(), ", ")), http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("debug") == "true" {
		a.serveProbeDebug(w, c, si)
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	a.serveGatherer(w, r, reg)
}

func (a *app) serveGatherer(w http.ResponseWriter, r *http.Request, g prometheus.Gatherer) {
	promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: promLogger{a.logger},
		// One bad series must not hide every other one.
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

func (a *app) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST to reload the config", http.StatusMethodNotAllowed)
		return
	}
	if err := a.reload(); err != nil {
		http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "config reloaded")
}

// promLogger lets promhttp log through go-kit.
type promLogger struct{ l log.Logger }

func (p promLogger) Println(v ...any) {
	level.Error(p.l).Log("msg", "error serving metrics", "err", fmt.Sprint(v...))
}
