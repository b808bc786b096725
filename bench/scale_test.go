package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// The scaling benchmarks: many projects of 2,500 keys, where the
// credential's rate limit, not the exporter, sets the scrape time.

// ScaleLatency is the round trip every answer of the scaling benchmarks takes.
const ScaleLatency = 20 * time.Millisecond

// scaleKeys is the keys of every project of the scaling benchmarks.
const scaleKeys = 2500

// template answers the requests of any project with the answers kmsfake
// gave for one project of scaleKeys realistic keys, recorded once, after
// ScaleLatency: the exporter does all its work for every project (signing,
// paging, decoding, summarising), the fake's cost and memory stay out of the
// figures, and the scenario need not hold 500,000 keys.
type template struct {
	answers map[string][]byte // by requestKey with the project ID replaced
	calls   atomic.Int64
}

// newTemplate records the answers of one project of scaleKeys keys.
func newTemplate(b *testing.B) *template {
	sc := Scenario(1, scaleKeys, 1)
	rp, err := Record(sc, Setup{RequestsPerSecond: unlimited})
	if err != nil {
		b.Fatal(err)
	}
	t := &template{answers: map[string][]byte{}}
	for k, v := range rp.m {
		t.answers[strings.Replace(k, "/"+sc.Projects[0].ID+"/", "/{project}/", 1)] = v
	}
	return t
}

func (t *template) RoundTrip(req *http.Request) (*http.Response, error) {
	key, err := requestKey(req)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(key, "/", 4) // "GET ", "v1.0", project, rest
	if len(parts) == 4 {
		key = parts[0] + "/" + parts[1] + "/{project}/" + parts[3]
	}
	body, ok := t.answers[key]
	if !ok {
		return nil, fmt.Errorf("template: no answer for %s %s", req.Method, req.URL.RequestURI())
	}
	timer := time.NewTimer(ScaleLatency)
	select {
	case <-timer.C:
	case <-req.Context().Done():
		timer.Stop()
		return nil, req.Context().Err()
	}
	t.calls.Add(1)
	return okResponse(req, body), nil
}

// procStatus reads a field in kB of /proc/self/status, in MiB.
func procStatus(b *testing.B, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// scaleCase is one row of the scaling table.
type scaleCase struct {
	name                 string
	credentials, perCred int // projects = credentials x perCred
	rps                  float64
	scrapes              int
	maxRatio             float64 // the goal: median / bound
}

var scaleCases = []scaleCase{
	{name: "a_200projects_1cred", credentials: 1, perCred: 200, rps: 50, scrapes: 3, maxRatio: 1.05},
	{name: "b_20creds_x_10projects", credentials: 20, perCred: 10, rps: 5, scrapes: 3, maxRatio: 1.1},
}

// BenchmarkScale scrapes every project of a case through one Exporter, as
// /metrics does, at the case's --kms.requests-per-second per credential,
// with ScaleLatency per call. After a warm-up scrape (it also fetches the
// hourly regions), each scrape starts with every credential's token bucket
// full. It reports the median scrape time, the rate-limit bound of Bound
// (the slowest credential's; all credentials run in parallel), their ratio,
// the CPU time per target per scrape, and the process's resident memory
// (VmHWM, the peak, and VmRSS at the end: run each case in its own process).
// b.N is ignored: run it with -benchtime 1x.
func BenchmarkScale(b *testing.B) {
	for _, c := range scaleCases {
		b.Run(c.name, func(b *testing.B) { c.run(b) })
	}
}

func (c scaleCase) run(b *testing.B) {
	tmpl := newTemplate(b)
	projects := c.credentials * c.perCred
	// Project IDs and regions only: the keys come from the template.
	sc := Scenario(projects, 0, c.credentials)
	// Without the regions collector: its one call per target an hour would
	// need a warm-up scrape as long as the others.
	e, err := Setup{URL: ReplayURL, Credentials: c.credentials, RequestsPerSecond: c.rps,
		Concurrency: kmsapi.DefaultConcurrency, HTTPClient: &http.Client{Transport: tmpl},
		Options: collector.Options{Collectors: []string{collector.Quotas, collector.Instances, collector.Keys}}}.Exporter(sc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	burst := Burst(c.rps, kmsapi.DefaultConcurrency)
	refill := time.Duration(float64(burst)/c.rps*float64(time.Second)) + 100*time.Millisecond
	scrape := func() time.Duration {
		time.Sleep(refill)
		start := time.Now()
		mfs, err := Scrape(ctx, e)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if err := Check(mfs, projects, scaleKeys); err != nil {
			b.Fatal(err)
		}
		return d
	}
	var times []time.Duration
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range c.scrapes {
		times = append(times, scrape())
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0

	pages := (scaleKeys + kmsapi.MaxPageSize - 1) / kmsapi.MaxPageSize
	plans := make([]CallPlan, c.credentials)
	for i := range plans {
		plans[i] = CallPlan{First: 3 * c.perCred, Dependent: (pages - 1) * c.perCred}
	}
	bound := Bound(ScaleLatency, c.rps, burst, kmsapi.DefaultConcurrency, plans)
	med := Quantile(times, 0.5)
	calls := float64(tmpl.calls.Load()) / float64(c.scrapes)
	cpuPerTarget := float64(cpu) / float64(c.scrapes) / float64(projects) / 1e6
	b.ReportMetric(float64(med)/1e6, "median-ms")
	b.ReportMetric(float64(Quantile(times, 1))/1e6, "max-ms")
	b.ReportMetric(float64(bound)/1e6, "bound-ms")
	b.ReportMetric(float64(med)/float64(bound), "ratio")
	b.ReportMetric(calls, "calls/scrape")
	b.ReportMetric(cpuPerTarget, "cpu-ms/target")
	b.ReportMetric(procStatus(b, "VmHWM"), "rss-peak-MiB")
	b.ReportMetric(procStatus(b, "VmRSS"), "rss-end-MiB")
	b.Logf("%d credentials x %d projects of %d keys, %g requests/s per credential (burst %d), concurrency %d, latency %s: %.0f calls per scrape; median %s (scrapes %v), bound %s, ratio %.3f (goal <= %.2f); CPU %.2f ms per target per scrape",
		c.credentials, c.perCred, scaleKeys, c.rps, burst, kmsapi.DefaultConcurrency, ScaleLatency, calls,
		med.Round(time.Millisecond), times, bound.Round(time.Millisecond), float64(med)/float64(bound), c.maxRatio, cpuPerTarget)
	if want := float64(projects * (2 + pages)); calls != want {
		b.Errorf("%.0f calls per scrape, want %.0f = projects x (2 + ceil(keys/1000))", calls, want)
	}
}

// BenchmarkDiscoveryRefresh is one discovery refresh of an account of 1,000
// KMS projects (and MOS): the IAM listing answered from memory, decoded,
// the targets selected, and the exporter derived for them, as a refresh
// does. unchanged is the hourly case (the same projects as before),
// all-new the first listing (every target new).
func BenchmarkDiscoveryRefresh(b *testing.B) {
	const n = 1000
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 8, Projects: n, AccessKey: AccessKey(0)})
	for i := range sc.Projects {
		sc.Projects[i].Name = fmt.Sprintf("%s_team%04d", sc.Projects[i].Region, i)
	}
	sc.OtherProjects = []kmsfake.IAMProject{{ID: "0f0e0d0c0b0a09080706050403020100", Name: "MOS"}}
	srv := kmsfake.Start(sc)
	defer srv.Close()
	rec := &Recorder{Next: srv.Client().Transport}
	ak := AccessKey(0)
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "bench", Auth: kmsapi.NewAKSK(ak.AK, ak.SK, ""),
		IAMEndpoint: srv.URL(), RequestsPerSecond: unlimited, HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cred.ListProjects(context.Background()); err != nil {
		b.Fatal(err)
	}
	rp := rec.Replay()
	_, size := rp.Size()
	cred, err = kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "bench", Auth: kmsapi.NewAKSK(ak.AK, ak.SK, ""),
		IAMEndpoint: srv.URL(), RequestsPerSecond: unlimited, HTTPClient: &http.Client{Transport: rp}})
	if err != nil {
		b.Fatal(err)
	}
	source := []discovery.Source{{Rule: discovery.Rule{Credential: "bench"}, Interval: time.Hour, List: cred.ListProjects}}
	refresh := func(d *discovery.Discoverer, e *collector.Exporter) *collector.Exporter {
		if errs := d.Refresh(context.Background()); len(errs) > 0 {
			b.Fatal(errs)
		}
		var targets []collector.Target
		for _, t := range d.Targets() {
			targets = append(targets, collector.Target{Name: t.Name, Region: t.Region, ProjectID: t.ProjectID, Credential: cred})
		}
		next, err := e.WithTargets(targets)
		if err != nil {
			b.Fatal(err)
		}
		if len(next.TargetNames()) != n {
			b.Fatalf("%d targets, want %d", len(next.TargetNames()), n)
		}
		return next
	}
	empty, err := collector.New(nil, collector.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unchanged", func(b *testing.B) {
		d := discovery.New(source, discovery.Options{})
		e := refresh(d, empty)
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			e = refresh(d, e)
		}
	})
	b.Run("all-new", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for range b.N {
			refresh(discovery.New(source, discovery.Options{}), empty)
		}
	})
}
