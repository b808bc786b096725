package main

import (
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// scrapeRecord is what one scrape of one target produced: the landing page
// shows the last one of every target, and the recent ones link to their
// debug logs. Only the view gathered from its metrics changes once it is
// recorded, and only once.
type scrapeRecord struct {
	id         uint64
	target     string
	region     string
	projectID  string
	credential string
	via        string // the route that asked: /metrics or /probe
	start      time.Time
	duration   time.Duration
	metrics    []prometheus.Metric // the target's metrics, as the scrape sent them, until gathered
	failures   []collector.Failure // failed collectors, in report order
	trace      *apitrace.Trace     // the API calls; nil when none were traced

	// Gathered from metrics when a page or a debug log first shows the
	// record, not when it is recorded: most records are dropped unseen,
	// and every scrape of every target would pay for them.
	gathered  sync.Once
	fams      []*dto.MetricFamily // sorted by name
	gatherErr error
	sum       summary
}

// families returns the record's metrics as sorted families; with an error,
// those that could be gathered.
func (r *scrapeRecord) families() ([]*dto.MetricFamily, error) {
	r.gather()
	return r.fams, r.gatherErr
}

// summary returns what the landing page shows of the record.
func (r *scrapeRecord) summary() summary {
	r.gather()
	return r.sum
}

func (r *scrapeRecord) gather() {
	r.gathered.Do(func() {
		r.fams, r.gatherErr = gatherMetrics(r.metrics)
		r.sum = summarize(r.fams)
		r.metrics = nil // the families hold them now
	})
}

// summary is what the landing page shows of a scrape, read from its metrics.
type summary struct {
	up              float64 // kms_up; NaN when not reported
	cmkUsed, cmkMax float64 // kms_quota_used and _limit of resource CMK; NaN when absent
	pendingDeletion float64 // kms_keys{state="pending_deletion"}; NaN when absent
	nearestDeletion time.Time
}

// replay is a collector of fixed metrics, to gather them into families.
type replay []prometheus.Metric

func (replay) Describe(chan<- *prometheus.Desc) {}

func (r replay) Collect(ch chan<- prometheus.Metric) {
	for _, m := range r {
		ch <- m
	}
}

// gatherMetrics turns the metrics of one target into sorted families. An
// inconsistent metric is left out with the error, the others kept.
func gatherMetrics(ms []prometheus.Metric) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(replay(ms)); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// summarize reads the figures of the landing page from a target's metrics.
func summarize(families []*dto.MetricFamily) summary {
	s := summary{up: math.NaN(), cmkUsed: math.NaN(), cmkMax: math.NaN(), pendingDeletion: math.NaN()}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue()
			switch mf.GetName() {
			case "kms_up":
				s.up = v
			case "kms_quota_used":
				if label(m, "resource") == "CMK" {
					s.cmkUsed = v
				}
			case "kms_quota_limit":
				if label(m, "resource") == "CMK" {
					s.cmkMax = v
				}
			case "kms_keys":
				if label(m, "state") == "pending_deletion" {
					s.pendingDeletion = v
				}
			case "kms_key_scheduled_deletion_timestamp_seconds":
				at := time.UnixMilli(int64(v * 1000)).UTC()
				if s.nearestDeletion.IsZero() || at.Before(s.nearestDeletion) {
					s.nearestDeletion = at
				}
			}
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// history keeps the last limit scrape records, and the last record of every
// target however old, for the landing page and the debug logs.
type history struct {
	mu     sync.Mutex
	limit  int
	nextID uint64
	ring   []*scrapeRecord // oldest first
	last   map[string]*scrapeRecord
}

func newHistory(limit int) *history {
	return &history{limit: max(limit, 0), nextID: 1, last: map[string]*scrapeRecord{}}
}

// add numbers r, keeps it, and returns its ID.
func (h *history) add(r *scrapeRecord) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.id = h.nextID
	h.nextID++
	if h.limit > 0 {
		if len(h.ring) == h.limit {
			copy(h.ring, h.ring[1:])
			h.ring = h.ring[:h.limit-1]
		}
		h.ring = append(h.ring, r)
	}
	if prev := h.last[r.target]; prev == nil || !r.start.Before(prev.start) {
		h.last[r.target] = r
	}
	return r.id
}

// get returns the record with the given ID while it is kept.
func (h *history) get(id uint64) *scrapeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.ring), func(i int) bool { return h.ring[i].id >= id })
	if i < len(h.ring) && h.ring[i].id == id {
		return h.ring[i]
	}
	for _, r := range h.last {
		if r.id == id {
			return r
		}
	}
	return nil
}

// recent returns the kept records, newest first.
func (h *history) recent() []*scrapeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*scrapeRecord, len(h.ring))
	for i, r := range h.ring {
		out[len(h.ring)-1-i] = r
	}
	return out
}

// lastOf returns the newest record of the target, nil if never scraped.
func (h *history) lastOf(target string) *scrapeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last[target]
}

// retain forgets the last records of targets keep rejects (no longer
// configured or discovered), so that the map does not grow forever.
func (h *history) retain(keep func(target string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name := range h.last {
		if !keep(name) {
			delete(h.last, name)
		}
	}
}

// apiError is what the page and the debug log show of a failed collector.
type apiError struct {
	Collector string
	Endpoint  string
	Status    int
	Code      string
	RequestID string
	Message   string
}

func describeFailure(f collector.Failure) apiError {
	e := apiError{Collector: f.Collector, Message: f.Err.Error()}
	var ae *kmsapi.Error
	if errors.As(f.Err, &ae) {
		e.Endpoint, e.Status, e.Code, e.RequestID = ae.Endpoint, ae.StatusCode, ae.Code, ae.RequestID
		// A wrapped API error (the credential's pause names the failure
		// that caused it) keeps its whole story.
		if error(ae) == f.Err {
			switch {
			case ae.Message != "":
				e.Message = ae.Message
			case ae.Err != nil:
				e.Message = ae.Err.Error()
			}
		}
	}
	return e
}
