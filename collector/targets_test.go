package collector

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

func twoProjects() kmsfake.Scenario {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 9, Projects: 2, KeysPerProject: 2500, AccessKey: testAK, Regions: []string{"cn-north-4", "cn-east-3"}})
	return sc
}

func akCredential(t *testing.T, srv *kmsfake.Server, client func() *kmsapi.CredentialOptions) *kmsapi.Credential {
	t.Helper()
	o := kmsapi.CredentialOptions{Name: "prod", Auth: kmsapi.NewAKSK(testAK.AK, testAK.SK, ""), IAMEndpoint: srv.URL(), RequestsPerSecond: 1e6}
	if client != nil {
		o = *client()
	}
	c, err := kmsapi.NewCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An Exporter derived with WithTargets keeps the cached results and project
// IDs of unchanged targets, and fetches anew for new and changed ones.
func TestWithTargetsKeepsState(t *testing.T) {
	sc := twoProjects()
	srv := kmsfake.Start(sc)
	t.Cleanup(srv.Close)
	cred := akCredential(t, srv, nil)
	a := Target{Name: "a", Region: sc.Projects[0].Region, Endpoint: srv.URL(), Credential: cred} // project looked up
	b := Target{Name: "b", Region: sc.Projects[1].Region, ProjectID: sc.Projects[1].ID, Endpoint: srv.URL(), Credential: cred}
	e, err := New([]Target{a}, Options{KeysRefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	collect(t, e.Collector(ctx))
	srv.ResetRequests()

	e2, err := e.WithTargets([]Target{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(e2.TargetNames(), ",") != "a,b" || strings.Join(e.TargetNames(), ",") != "a" {
		t.Fatalf("targets %v and %v", e2.TargetNames(), e.TargetNames())
	}
	got := collect(t, e2.Collector(ctx))
	if up := upByProject(got); up[sc.Projects[0].ID] != 1 || up[sc.Projects[1].ID] != 1 {
		t.Fatalf("kms_up %v", up)
	}
	// a: its keys and regions come from the cache, its project ID is
	// known; b: everything, three key pages, and the regions list (its
	// page and the empty page that ends it).
	want := map[string]int{kmsapi.EndpointIAMProjects: 0, kmsapi.EndpointResourceInstances: 3, kmsapi.EndpointQuotas: 2, kmsapi.EndpointRegions: 2}
	for ep, n := range want {
		if got := srv.Requests(ep); got != n {
			t.Errorf("%s: %d requests, want %d", ep, got, n)
		}
	}

	// a moves to another project: nothing of it is reused. b is gone.
	srv.ResetRequests()
	moved := a
	moved.ProjectID = sc.Projects[1].ID
	moved.Region = sc.Projects[1].Region
	e3, err := e2.WithTargets([]Target{moved})
	if err != nil {
		t.Fatal(err)
	}
	if up := upByProject(collect(t, e3.Collector(ctx))); up[sc.Projects[1].ID] != 1 || len(up) != 1 {
		t.Fatalf("kms_up %v", up)
	}
	if n := srv.Requests(kmsapi.EndpointResourceInstances); n != 3 {
		t.Errorf("the moved target listed %d key pages, want 3 (no cache of its old project)", n)
	}
	e2.results.mu.Lock()
	for k := range e2.results.cache {
		if k.target == "b" {
			t.Errorf("cache of the removed target b kept: %v", k)
		}
	}
	e2.results.mu.Unlock()

	if _, err := e.WithTargets([]Target{a, a}); err == nil || !strings.Contains(err.Error(), `duplicate target "a"`) {
		t.Errorf("duplicate: %v", err)
	}
}

func upByProject(samples []sample) map[string]float64 {
	up := map[string]float64{}
	for _, s := range samples {
		if s.name == "kms_up" {
			up[s.labels["project_id"]] = s.value
		}
	}
	return up
}

// When the calls a scrape needs cannot leave within its timeout at the
// credential's rate limit, one warning names the credential and the calls.
func TestBudgetWarning(t *testing.T) {
	sc := twoProjects()
	srv := kmsfake.Start(sc)
	t.Cleanup(srv.Close)
	synctest.Test(t, func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		cred := akCredential(t, srv, func() *kmsapi.CredentialOptions {
			return &kmsapi.CredentialOptions{Name: "prod", Auth: kmsapi.NewAKSK(testAK.AK, testAK.SK, ""), IAMEndpoint: srv.URL(),
				RequestsPerSecond: 2, Concurrency: 2, HTTPClient: srv.InMemoryClient()}
		})
		var targets []Target
		for i, p := range sc.Projects {
			targets = append(targets, Target{Name: string(rune('a' + i)), Region: p.Region, ProjectID: p.ID, Endpoint: srv.URL(), Credential: cred})
		}
		e, err := New(targets, Options{Logger: log.NewLogfmtLogger(logs)})
		if err != nil {
			t.Fatal(err)
		}
		scrape := func(timeout time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			collect(t, e.Collector(ctx))
		}
		// Before the first listing each target counts one key page: 2 x 4
		// calls (quotas, instances, keys, regions) fit in 10s.
		scrape(10 * time.Second)
		if strings.Contains(logs.String(), "do not fit") {
			t.Fatalf("8 calls fit in 10s at 2/s, yet:\n%s", logs)
		}
		// Now each lists 3 pages and the regions are cached: 2 x 5 calls,
		// more than the 2 + 2/s x 3s that can leave in 3s.
		scrape(3 * time.Second)
		scrape(3 * time.Second)
		l := logs.String()
		if n := strings.Count(l, "do not fit"); n != 1 {
			t.Fatalf("%d warnings, want 1:\n%s", n, l)
		}
		for _, want := range []string{"level=warn", "credentials=prod", "calls=10", "fit=8", "--collector.keys.refresh-interval", "--kms.cache-ttl"} {
			if !strings.Contains(l, want) {
				t.Errorf("warning lacks %q:\n%s", want, l)
			}
		}
	})
}
