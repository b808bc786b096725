// Package bench is the performance harness of kms_exporter (make bench): Go
// benchmarks of one scrape's CPU time, allocations and peak heap, the scrape
// latency against a fake API with a round-trip latency, and the resident
// memory of an idle exporter. BENCHMARKS.md explains every figure.
//
// The fake API runs in the benchmark's own process. So that the exporter's
// cost is not mixed with the fake's, the CPU and memory benchmarks replay
// answers recorded once from the fake (Replay), and report the end-to-end
// figure with the fake separately.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Now is the fixed clock of generated scenarios, so runs are comparable.
var Now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// MaxTagSeries is the exporter's default --collector.keys.max-tag-series.
const MaxTagSeries = 500

// AccessKey returns the i-th benchmark AK/SK pair; a credential per pair
// gives every credential its own rate limit at the fake, as separate IAM
// users have at the real API.
func AccessKey(i int) kmsfake.AccessKey {
	return kmsfake.AccessKey{
		AK: fmt.Sprintf("BENCHAK%013d", i),
		SK: fmt.Sprintf("bench-secret-key-%022d", i),
	}
}

// Scenario generates projects of keys each, with credentials AK/SK pairs
// accepted for all of them.
func Scenario(projects, keys, credentials int) kmsfake.Scenario {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 5, Projects: projects, KeysPerProject: keys, Now: Now, AccessKey: AccessKey(0)})
	for i := 1; i < credentials; i++ {
		sc.AccessKeys = append(sc.AccessKeys, AccessKey(i))
	}
	return sc
}

// Setup describes an exporter over a scenario.
type Setup struct {
	URL               string // KMS endpoint of every target
	Credentials       int    // targets are spread round-robin over this many credentials
	RequestsPerSecond float64
	Concurrency       int
	HTTPClient        *http.Client // nil: a fresh kmsapi.NewHTTPClient per credential
	Options           collector.Options
}

// Exporter builds a collector.Exporter with one target per project of sc.
func (s Setup) Exporter(sc kmsfake.Scenario) (*collector.Exporter, error) {
	creds := make([]*kmsapi.Credential, max(s.Credentials, 1))
	for i := range creds {
		ak := AccessKey(i)
		c, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
			Name:              "bench" + strconv.Itoa(i),
			Auth:              kmsapi.NewAKSK(ak.AK, ak.SK, ""),
			IAMEndpoint:       s.URL,
			RequestsPerSecond: s.RequestsPerSecond,
			Concurrency:       s.Concurrency,
			HTTPClient:        s.HTTPClient,
		})
		if err != nil {
			return nil, err
		}
		creds[i] = c
	}
	var targets []collector.Target
	for i, p := range sc.Projects {
		targets = append(targets, collector.Target{
			Name:       fmt.Sprintf("t%02d-%s", i, p.Region),
			Region:     p.Region,
			ProjectID:  p.ID,
			Endpoint:   s.URL,
			Credential: creds[i%len(creds)],
		})
	}
	o := s.Options
	if o.MaxTagSeries == 0 {
		o.MaxTagSeries = MaxTagSeries
	}
	return collector.New(targets, o)
}

// Scrape runs one scrape of every target, as /metrics does: a fresh
// registry holding the per-scrape collector, gathered once.
func Scrape(ctx context.Context, e *collector.Exporter) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.Collector(ctx)); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// Check verifies that a scrape of targets targets succeeded: kms_up is 1
// for each, and, when keys >= 0, kms_keys sums to keys per target.
func Check(mfs []*dto.MetricFamily, targets, keys int) error {
	up, total := -1.0, 0.0
	ups := 0
	for _, mf := range mfs {
		switch mf.GetName() {
		case "kms_up":
			up = 0
			for _, m := range mf.GetMetric() {
				up += m.GetGauge().GetValue()
				ups++
			}
		case "kms_keys":
			for _, m := range mf.GetMetric() {
				total += m.GetGauge().GetValue()
			}
		}
	}
	if up != float64(targets) || ups != targets {
		return fmt.Errorf("kms_up: %v of %d targets up (%d series)", up, targets, ups)
	}
	if keys >= 0 && total != float64(targets*keys) {
		return fmt.Errorf("kms_keys sums to %v, want %d", total, targets*keys)
	}
	return nil
}

// Recorder is an http.RoundTripper that passes requests on and keeps every
// successful answer, keyed by method, URL and body.
type Recorder struct {
	Next http.RoundTripper
	mu   sync.Mutex
	m    map[string][]byte
}

func requestKey(req *http.Request) (string, error) {
	var body []byte
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return "", err
		}
		body, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", err
		}
	}
	return req.Method + " " + req.URL.RequestURI() + "\n" + string(body), nil
}

func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	key, err := requestKey(req)
	if err != nil {
		return nil, err
	}
	resp, err := r.Next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		r.mu.Lock()
		if r.m == nil {
			r.m = map[string][]byte{}
		}
		r.m[key] = body
		r.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Replay returns a transport answering from what r recorded.
func (r *Recorder) Replay() *Replay {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string][]byte, len(r.m))
	for k, v := range r.m {
		m[k] = v
	}
	return &Replay{m: m}
}

// Replay is an http.RoundTripper that answers from memory what a Recorder
// recorded, with no network, server or copy: the cost of a scrape through it
// is the exporter's own (signing, decoding, collecting) and that of building
// the request and response objects.
type Replay struct {
	m map[string][]byte
}

func (r *Replay) RoundTrip(req *http.Request) (*http.Response, error) {
	key, err := requestKey(req)
	if err != nil {
		return nil, err
	}
	body, ok := r.m[key]
	if !ok {
		return nil, fmt.Errorf("replay: no recorded answer for %s %s", req.Method, req.URL.RequestURI())
	}
	return okResponse(req, body), nil
}

// okResponse is a 200 answer to req with body.
func okResponse(req *http.Request, body []byte) *http.Response {
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json;charset=UTF-8"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// Size is the number of recorded answers and their total bytes.
func (r *Replay) Size() (answers int, bytes int64) {
	for _, b := range r.m {
		bytes += int64(len(b))
	}
	return len(r.m), bytes
}

// Record runs one scrape of an exporter over sc through a fresh fake and
// returns its answers for replay. Regions are fetched too, so a replaying
// exporter can fill its regions cache.
func Record(sc kmsfake.Scenario, s Setup) (*Replay, error) {
	srv := kmsfake.Start(sc)
	defer srv.Close()
	rec := &Recorder{Next: srv.Client().Transport}
	s.URL = srv.URL()
	s.HTTPClient = &http.Client{Transport: rec}
	e, err := s.Exporter(sc)
	if err != nil {
		return nil, err
	}
	mfs, err := Scrape(context.Background(), e)
	if err != nil {
		return nil, err
	}
	if err := Check(mfs, len(sc.Projects), -1); err != nil {
		return nil, err
	}
	return rec.Replay(), nil
}

// ReplayURL is the endpoint a replaying exporter is given; nothing listens there.
const ReplayURL = "http://kms.replay.invalid"

// Bound is the least time a scrape can take, in the formula BENCHMARKS.md
// documents. Every credential's limiter holds burst tokens at the start of
// the scrape (scrapes are further apart than burst/rps) and refills at rps;
// a call takes latency from send to answer; first calls can go at once and
// then calls depend on the answer of a first call (the first key page gives
// the total). Per credential, the c-th call in send order can leave at
// (c-burst)/rps at the earliest, so the last of calls leaves at
// (calls-burst)/rps; the dependent calls cannot leave before latency. The
// bound is the latest credential's
//
//	max(depth * latency, max(latency, (calls-burst)/rps) + latency)   (when there are dependent calls)
//	max(latency, (calls-burst)/rps + latency)                         (when there are none)
//
// and, when a credential's concurrency (in-flight cap) binds, the chain of
// ceil(calls/concurrency) round trips, whichever is longest. depth is the
// longest chain of dependent calls (2 when any target has more than one
// key page, else 1). It ignores the time the fake and the exporter spend
// per call, which the ratio to this bound includes.
func Bound(latency time.Duration, rps float64, burst, concurrency int, perCredential []CallPlan) time.Duration {
	var worst time.Duration
	for _, p := range perCredential {
		calls := p.First + p.Dependent
		if calls == 0 {
			continue
		}
		depth := 1
		if p.Dependent > 0 {
			depth = 2
		}
		rate := func(n int) time.Duration { // when the n-th call can leave
			return time.Duration(math.Max(0, float64(n-burst)/rps) * float64(time.Second))
		}
		b := time.Duration(depth) * latency
		last := rate(calls)
		if p.Dependent > 0 {
			last = max(last, latency)
		}
		b = max(b, last+latency)
		rounds := (calls + concurrency - 1) / concurrency
		b = max(b, time.Duration(max(rounds, depth))*latency)
		worst = max(worst, b)
	}
	return worst
}

// CallPlan counts one credential's calls in a scrape: First can be sent at
// once, Dependent only after a first call answered.
type CallPlan struct{ First, Dependent int }

// Burst is the token bucket size kmsapi gives a credential: min(concurrency, ceil(rps)).
func Burst(rps float64, concurrency int) int {
	return max(1, min(concurrency, int(math.Ceil(rps))))
}

// Quantile returns the q-quantile (0..1) of ds by the nearest-rank method.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(r, 0), len(s)-1)]
}
