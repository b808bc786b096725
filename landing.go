package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

var (
	//go:embed landing.html
	landingHTML string
	//go:embed landing.css
	landingCSS string

	// html/template: target names, tag values and API error messages are
	// data from outside and never get to write HTML.
	landingTemplate = template.Must(template.New("landing").Parse(landingHTML))
)

// landingMarker stands in the toolkit's page where the tables go.
const landingMarker = "<!-- kms_exporter: targets and recent scrapes -->"

// landingPage is the exporter-toolkit's landing page with the targets table
// and the recent scrapes rendered into it on every request: the toolkit
// renders its page once, the tables must show the latest results.
type landingPage struct {
	head, tail []byte
	data       func() landingData
}

func newLandingPage(cfg web.LandingConfig, data func() landingData) (*landingPage, error) {
	cfg.ExtraHTML = landingMarker
	cfg.ExtraCSS += landingCSS
	h, err := web.NewLandingPage(cfg)
	if err != nil {
		return nil, err
	}
	rec := &pageRecorder{header: http.Header{}}
	h.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}})
	head, tail, ok := bytes.Cut(rec.body.Bytes(), []byte(landingMarker))
	if !ok || bytes.Contains(tail, []byte(landingMarker)) {
		return nil, errors.New("landing page: the toolkit's page does not hold ExtraHTML exactly once")
	}
	return &landingPage{head: head, tail: tail, data: data}, nil
}

func (p *landingPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	var b bytes.Buffer
	b.Write(p.head)
	if err := landingTemplate.ExecuteTemplate(&b, "targets", p.data()); err != nil {
		http.Error(w, "cannot render the landing page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b.Write(p.tail)
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.Write(b.Bytes())
}

// pageRecorder keeps what the toolkit's handler writes.
type pageRecorder struct {
	header http.Header
	body   bytes.Buffer
}

func (r *pageRecorder) Header() http.Header         { return r.header }
func (r *pageRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *pageRecorder) WriteHeader(int)             {}

// targetInfo is a target as the config (or discovery) describes it.
type targetInfo struct {
	Name, Region, ProjectID, Credential string
	ProjectName                         string // the IAM project's name, when known
	Discovered                          bool
}

type landingData struct {
	Now          string
	MetricsPath  string
	Targets      []targetRow
	Recent       []recentRow
	HistoryLimit int
}

type targetRow struct {
	Name, ProbeURL, Region, Project, ProjectShort, Credential string
	Discovered                                                bool

	Scraped                  bool
	ScrapedAt, Ago, DebugURL string
	Up                       string // "1", "0", or "" when not reported

	Quota                                quotaCell
	PendingKnown, PendingPositive        bool
	Pending                              string
	NearestDeletion, NearestDeletionFull string

	Errors      []apiError
	Paused      bool
	PausedUntil string
}

type quotaCell struct {
	Known                       bool
	Used, Limit, Percent, Width string
	Level                       string // ok, high (>= 80%), critical (>= 90%), unknown
}

type recentRow struct {
	ID                    uint64
	DebugURL              string
	Start, StartFull      string
	Target, Via, Duration string
	Calls                 int
	Up                    string
	Failed                string
}

// landingView gathers what the page shows: the last results only, never a
// call to the API (the credentials are asked about their pause, which they
// know without asking anyone).
type landingView struct {
	now         time.Time
	metricsPath string
	targets     []targetInfo
	credentials interface {
		Get(string) *kmsapi.Credential
	}
	history      *history
	historyLimit int
}

func (v landingView) data() landingData {
	d := landingData{Now: fullTime(v.now), MetricsPath: v.metricsPath, HistoryLimit: v.historyLimit}
	for _, t := range v.targets {
		d.Targets = append(d.Targets, v.row(t))
	}
	for _, r := range v.history.recent() {
		d.Recent = append(d.Recent, recentRow{
			ID:        r.id,
			DebugURL:  debugURL(r.id),
			Start:     r.start.UTC().Format("15:04:05"),
			StartFull: fullTime(r.start),
			Target:    r.target,
			Via:       r.via,
			Duration:  formatSeconds(r.duration),
			Calls:     traceCalls(r.trace),
			Up:        upText(r.summary().up),
			Failed:    failedNames(r.failures),
		})
	}
	return d
}

func (v landingView) row(t targetInfo) targetRow {
	row := targetRow{
		Name: t.Name, ProbeURL: "/probe?target=" + url.QueryEscape(t.Name),
		Region: t.Region, Project: t.ProjectID, Credential: t.Credential, Discovered: t.Discovered,
		Quota: quotaCell{Level: "unknown"},
	}
	if c := v.credential(t.Credential); c != nil {
		if until, _, paused := c.PausedUntil(); paused {
			row.Paused = true
			row.PausedUntil = fullTime(until) + " (" + relative(v.now, until) + ")"
		}
	}
	r := v.history.lastOf(t.Name)
	if r == nil {
		row.ProjectShort = shortID(row.Project)
		return row
	}
	if row.Project == "" {
		row.Project = r.projectID
	}
	row.ProjectShort = shortID(row.Project)
	row.Scraped = true
	row.ScrapedAt = fullTime(r.start)
	row.Ago = relative(v.now, r.start)
	row.DebugURL = debugURL(r.id)
	s := r.summary()
	row.Up = upText(s.up)
	row.Quota = newQuotaCell(s.cmkUsed, s.cmkMax)
	if !math.IsNaN(s.pendingDeletion) {
		row.PendingKnown, row.PendingPositive = true, s.pendingDeletion > 0
		row.Pending = strconv.FormatFloat(s.pendingDeletion, 'f', -1, 64)
	}
	if !s.nearestDeletion.IsZero() {
		row.NearestDeletion = s.nearestDeletion.Format("2006-01-02") + " (" + relative(v.now, s.nearestDeletion) + ")"
		row.NearestDeletionFull = fullTime(s.nearestDeletion)
	}
	for _, f := range r.failures {
		row.Errors = append(row.Errors, describeFailure(f))
	}
	return row
}

func (v landingView) credential(name string) *kmsapi.Credential {
	if v.credentials == nil {
		return nil
	}
	return v.credentials.Get(name)
}

func newQuotaCell(used, limit float64) quotaCell {
	if math.IsNaN(used) || math.IsNaN(limit) {
		return quotaCell{Level: "unknown"}
	}
	q := quotaCell{Known: true, Used: strconv.FormatFloat(used, 'f', -1, 64), Limit: strconv.FormatFloat(limit, 'f', -1, 64), Level: "ok"}
	pct := 100.0
	if limit > 0 {
		pct = 100 * used / limit
	} else if used <= 0 {
		pct = 0
	}
	switch {
	case pct >= 90:
		q.Level = "critical"
	case pct >= 80:
		q.Level = "high"
	}
	q.Percent = strconv.FormatFloat(math.Floor(pct), 'f', 0, 64) + "%"
	q.Width = strconv.FormatFloat(math.Min(math.Max(pct, 0), 100), 'f', 1, 64) + "%"
	return q
}

func debugURL(id uint64) string { return "/probe/debug?id=" + strconv.FormatUint(id, 10) }

func upText(v float64) string {
	switch v {
	case 1:
		return "1"
	case 0:
		return "0"
	}
	return ""
}

func failedNames(fs []collector.Failure) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Collector
	}
	return strings.Join(names, ", ")
}

func traceCalls(t *apitrace.Trace) int {
	if t == nil {
		return 0
	}
	return t.Calls()
}

func fullTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// shortID keeps the head of a long project ID; the cell's title has it whole.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:8] + "…"
	}
	return id
}

// relative says when t is, seen from now: "in 5h", "12s ago".
func relative(now, t time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + humanDuration(d)
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// humanDuration is d rounded to its largest unit: 45s, 12m, 5h, 3d.
func humanDuration(d time.Duration) string {
	switch {
	case d < 90*time.Second:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 90*time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()+0.5))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()+0.5))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24+0.5))
}

// formatSeconds writes a scrape duration the way a person reads it.
func formatSeconds(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(float64(d.Round(100*time.Microsecond))/float64(time.Millisecond), 'f', -1, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d.Round(10*time.Millisecond))/float64(time.Second), 'f', -1, 64) + "s"
}

// landingView is the view of the config l in force now.
func (a *app) landingView(l *loaded) landingView {
	return landingView{
		now:          time.Now(),
		metricsPath:  a.s.telemetryPath,
		targets:      l.targets,
		credentials:  l.creds,
		history:      a.history,
		historyLimit: a.s.historyLimit,
	}
}
