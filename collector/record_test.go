package collector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Every target of a scrape hands its Result to Options.Record: its metrics
// exactly as the registry got them, its failed collectors in report order,
// and the trace of its own API calls only.
func TestRecordResults(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 11, Projects: 2, KeysPerProject: 12})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	fake.SetFault(kmsapi.EndpointRegions, kmsfake.Fault{Status: http.StatusForbidden, ErrorMessage: "no regions for you"})
	fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Status: http.StatusForbidden})
	ak := sc.AccessKeys[0]
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "c", Auth: kmsapi.NewAKSK(ak.AK, ak.SK, ""), IAMEndpoint: fake.URL(), RequestsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for i, p := range sc.Projects {
		project := p.ID
		if i == 1 {
			project = "" // looked up in IAM: the Result has the found ID
		}
		targets = append(targets, Target{Name: "t" + string(rune('0'+i)), Region: p.Region, ProjectID: project, Endpoint: fake.URL(), Credential: cred})
	}
	var (
		mu      sync.Mutex
		results = map[string]Result{}
	)
	type ctxKey struct{}
	e, err := New(targets, Options{Record: func(ctx context.Context, r Result) {
		if ctx.Value(ctxKey{}) != "scrape" {
			t.Error("Record did not get the scrape's context")
		}
		mu.Lock()
		defer mu.Unlock()
		results[r.Target] = r
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "scrape"), time.Minute)
	defer cancel()
	col := e.Collector(ctx)
	ch := make(chan prometheus.Metric)
	var sent []prometheus.Metric
	go func() {
		col.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		sent = append(sent, m)
	}

	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	recorded := map[prometheus.Metric]bool{}
	for i, p := range sc.Projects {
		r := results["t"+string(rune('0'+i))]
		if r.Region != p.Region || r.ProjectID != p.ID || r.Credential != "c" || r.Start.IsZero() || r.Duration < 0 {
			t.Errorf("result %d: %+v", i, r)
		}
		var names []string
		for _, f := range r.Failures {
			names = append(names, f.Collector)
			var ae *kmsapi.Error
			if !errors.As(f.Err, &ae) || ae.StatusCode != http.StatusForbidden {
				t.Errorf("result %d: failure %s: %v, want the 403", i, f.Collector, f.Err)
			}
		}
		if strings.Join(names, ",") != "quotas,regions" {
			t.Errorf("result %d: failures %v, want quotas,regions in report order", i, names)
		}
		var b strings.Builder
		r.Trace.WriteTo(&b)
		trace := b.String()
		for _, want := range []string{"endpoint=user-quotas", "endpoint=user-instances", "endpoint=resource-instances", "endpoint=regions", "/" + p.ID + "/"} {
			if !strings.Contains(trace, want) {
				t.Errorf("result %d: trace lacks %q:\n%s", i, want, trace)
			}
		}
		if other := sc.Projects[1-i].ID; strings.Contains(trace, other) {
			t.Errorf("result %d: trace holds the other target's calls:\n%s", i, trace)
		}
		if i == 1 && !strings.Contains(trace, "endpoint=iam-projects") {
			t.Errorf("result 1: trace lacks the project lookup:\n%s", trace)
		}
		for _, m := range r.Metrics {
			recorded[m] = true
		}
	}
	if len(recorded) != len(sent) {
		t.Errorf("results hold %d metrics, the registry got %d", len(recorded), len(sent))
	}
	for _, m := range sent {
		if !recorded[m] {
			t.Errorf("metric %v sent but not in a result", m.Desc())
		}
	}
}

// A result served from the cache made no call: the trace says so.
func TestRecordTraceNotesCachedResults(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 12, Projects: 1, KeysPerProject: 3})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	ak := sc.AccessKeys[0]
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "c", Auth: kmsapi.NewAKSK(ak.AK, ak.SK, ""), IAMEndpoint: fake.URL(), RequestsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	p := sc.Projects[0]
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var traces []string
	e, err := New([]Target{{Name: "t", Region: p.Region, ProjectID: p.ID, Endpoint: fake.URL(), Credential: cred}}, Options{
		Collectors: []string{Quotas, Regions},
		Now:        func() time.Time { return now },
		Record: func(_ context.Context, r Result) {
			var b strings.Builder
			r.Trace.WriteTo(&b)
			traces = append(traces, b.String())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if i == 1 {
			// An Exporter derived on reload records as well, and keeps the cache.
			if e, err = e.WithTargets([]Target{{Name: "t", Region: p.Region, ProjectID: p.ID, Endpoint: fake.URL(), Credential: cred}}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Collector(ctx))
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		cancel()
		now = now.Add(5 * time.Second)
	}
	if len(traces) != 2 {
		t.Fatalf("%d results, want 2", len(traces))
	}
	if !strings.Contains(traces[0], "endpoint=regions") || strings.Contains(traces[0], "from the cache") {
		t.Errorf("first scrape:\n%s", traces[0])
	}
	if strings.Contains(traces[1], "endpoint=regions") || !strings.Contains(traces[1], `msg="regions: from the cache, fetched 5s ago"`) ||
		!strings.Contains(traces[1], "endpoint=user-quotas") {
		t.Errorf("second scrape:\n%s", traces[1])
	}
}
