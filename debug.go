package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/kms-exporter/kms_exporter/collector"
)

// scrapeInfo travels in a scrape's context to recordScrape: which route
// asked, and for /probe?debug=true where to leave the record.
type scrapeInfo struct {
	via string
	mu  sync.Mutex
	got *scrapeRecord
}

type scrapeInfoKey struct{}

func withScrapeInfo(ctx context.Context, via string) (context.Context, *scrapeInfo) {
	si := &scrapeInfo{via: via}
	return context.WithValue(ctx, scrapeInfoKey{}, si), si
}

// recordScrape is the collector's Options.Record: it keeps the result of
// one target's scrape in the history. It keeps the metrics as they are:
// they are gathered only when a page or a debug log shows the record.
func (a *app) recordScrape(ctx context.Context, res collector.Result) {
	rec := &scrapeRecord{
		target:     res.Target,
		region:     res.Region,
		projectID:  res.ProjectID,
		credential: res.Credential,
		start:      res.Start,
		duration:   res.Duration,
		metrics:    res.Metrics,
		trace:      res.Trace,
		failures:   res.Failures,
	}
	si, _ := ctx.Value(scrapeInfoKey{}).(*scrapeInfo)
	if si != nil {
		rec.via = si.via
	}
	a.history.add(rec)
	if si != nil {
		si.mu.Lock()
		si.got = rec
		si.mu.Unlock()
	}
}

// serveProbeDebug answers /probe?target=NAME&debug=true: the scrape is made
// as for /probe, and its debug log is the answer.
func (a *app) serveProbeDebug(w http.ResponseWriter, c prometheus.Collector, si *scrapeInfo) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		level.Error(a.logger).Log("msg", "error gathering a debug probe", "err", err)
	}
	si.mu.Lock()
	rec := si.got
	si.mu.Unlock()
	if rec == nil {
		// A target whose project another target already reports.
		http.Error(w, "the scrape recorded nothing: the target was skipped; see the logs", http.StatusInternalServerError)
		return
	}
	writeDebugLog(w, rec)
}

// serveScrapeLog answers /probe/debug?id=N with the debug log of a recent
// scrape, as /probe?debug=true gave it.
func (a *app) serveScrapeLog(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
	if err != nil {
		http.Error(w, "want /probe/debug?id=N, N the number of a recent scrape on the landing page", http.StatusBadRequest)
		return
	}
	rec := a.history.get(id)
	if rec == nil {
		http.Error(w, fmt.Sprintf("scrape %d is not kept (the last --history.limit=%d are)", id, a.s.historyLimit), http.StatusNotFound)
		return
	}
	writeDebugLog(w, rec)
}

// writeDebugLog writes what one scrape of one target did: a summary, its
// API calls in order, then its metrics. Nothing in a record holds a secret.
func writeDebugLog(w http.ResponseWriter, rec *scrapeRecord) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// Names, tag values and error messages come from outside: no browser
	// may take them for HTML.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	b := bufio.NewWriter(w)
	defer b.Flush()
	fmt.Fprintf(b, "Scrape %d of target %s (region %s, project %s, credential %s)\n", rec.id, rec.target, rec.region, orNone(rec.projectID), orNone(rec.credential))
	up := "not reported"
	if v := rec.summary().up; !math.IsNaN(v) {
		up = strconv.FormatFloat(v, 'f', -1, 64)
	}
	fmt.Fprintf(b, "Asked by %s at %s, took %s, kms_up %s\n", orNone(rec.via), rec.start.UTC().Format("2006-01-02T15:04:05.000Z07:00"), formatSeconds(rec.duration), up)
	if len(rec.failures) == 0 {
		fmt.Fprintln(b, "Failed collectors: none")
	} else {
		fmt.Fprintln(b, "Failed collectors:")
		for _, f := range rec.failures {
			fmt.Fprintf(b, "  %s: %v\n", f.Collector, f.Err)
		}
	}
	fmt.Fprintln(b, "\nAPI calls, in order (at: time since the scrape began; waits before the attempt):")
	if rec.trace == nil || rec.trace.Len() == 0 {
		fmt.Fprintln(b, "none (results from the cache, or the credential is paused)")
	} else {
		rec.trace.WriteTo(b)
	}
	fmt.Fprintln(b, "\nMetrics:")
	writeFamilies(b, rec)
}

func writeFamilies(w io.Writer, rec *scrapeRecord) {
	fams, err := rec.families()
	if err != nil {
		fmt.Fprintf(w, "# some metrics are left out: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			fmt.Fprintf(w, "# cannot encode %s: %v\n", mf.GetName(), err)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
