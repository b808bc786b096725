package collector

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

var (
	testAK    = kmsfake.AccessKey{AK: "TESTAK00000000000000", SK: "test-secret-key-0000000000000000000000"}
	testTmpAK = kmsfake.AccessKey{AK: "TESTTMPAK00000000000", SK: "test-tmp-secret-00000000000000000000000", SecurityToken: "test-security-token-000"}
	testUser  = kmsfake.User{Domain: "test-domain", Name: "test-user", Password: "test-password"}
	testAgent = kmsfake.AccessKey{AK: "TESTAGENCYAK00000000", SK: "test-agency-secret-0000000000000000000", SecurityToken: "test-agency-token"}
	testIdP   = kmsfake.IdentityProvider{ID: "test-cce-idp", ClientID: "kms-exporter"}
	deletion1 = time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC)
	material1 = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
)

// epPayments is an enterprise project besides the default one ("0").
const epPayments = "6b8e4a2c-1f3d-4e5a-9b7c-0d2e4f6a8b1c"

// testScenario is one small project whose every metric value is known.
func testScenario() kmsfake.Scenario {
	return kmsfake.Scenario{
		AccessKeys:        []kmsfake.AccessKey{testAK, testTmpAK},
		Users:             []kmsfake.User{testUser},
		Agency:            &testAgent,
		IdentityProviders: []kmsfake.IdentityProvider{testIdP},
		Projects: []kmsfake.Project{{
			ID:     "p1",
			Region: "cn-north-4",
			Quotas: []kmsapi.Quota{
				{Resource: "CMK", Used: 7, Limit: 20},
				{Resource: "grant_per_CMK", Used: 3, Limit: 100},
				{Resource: "new_thing", Used: 1, Limit: 5},
			},
			Instances: 6,
			Keys: []kmsapi.Key{
				{ID: "k1", Alias: "pay", State: kmsapi.StateEnabled, KeyType: 1, KeySpec: "SM4", RotationEnabled: "true", EnterpriseProjectID: epPayments,
					Tags: []kmsapi.Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "pay"}}},
				{ID: "k2", Alias: "data", State: kmsapi.StateEnabled, KeyType: 2, KeySpec: "EC_P256", KeyUsage: "SIGN_VERIFY",
					Tags: []kmsapi.Tag{{Key: "env", Value: "prod"}, {Key: "note", Value: "a \"quoted\"\nvalue"}}},
				{ID: "k3", Alias: "dev", State: kmsapi.StateDisabled, KeyType: 1, Origin: "external", Expires: material1, EnterpriseProjectID: epPayments,
					Tags: []kmsapi.Tag{{Key: "env", Value: "dev"}}},
				{ID: "k4", Alias: "old-db", State: kmsapi.StatePendingDeletion, ScheduledDeletion: deletion1, Tags: []kmsapi.Tag{{Key: "env", Value: "prod"}}},
				{ID: "k5", Alias: "new", State: kmsapi.StatePendingActivation},
				{ID: "k6", Alias: "byok", State: kmsapi.StatePendingImport},
				{ID: "k7", Alias: "obs/default", State: kmsapi.StateEnabled, Default: true},
				{ID: "k8", Alias: "odd", State: 7},
			},
		}},
		CrossRegions: []string{"cn-north-4", "ap-southeast-1"},
	}
}

// steadyMetrics lists every metric but the durations, whose values vary.
var steadyMetrics = []string{
	"kms_up", "kms_scrape_collector_success", "kms_quota_limit", "kms_quota_used", "kms_cmk_instances",
	"kms_keys", "kms_default_keys", "kms_keys_by_tag", "kms_keys_by_tag_dropped_series",
	"kms_key_scheduled_deletion_timestamp_seconds", "kms_cross_region_info",
	"kms_keys_by_spec", "kms_keys_by_enterprise_project", "kms_key_material_expiration_timestamp_seconds",
}

type fixture struct {
	fake   *kmsfake.Server
	api    *APIMetrics
	logs   *syncbuf.Buffer
	logger log.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fake := kmsfake.Start(testScenario())
	t.Cleanup(fake.Close)
	logs := &syncbuf.Buffer{}
	return &fixture{fake: fake, api: NewAPIMetrics(), logs: logs, logger: log.NewLogfmtLogger(logs)}
}

func (f *fixture) credential(t *testing.T, auth kmsapi.Authenticator) *kmsapi.Credential {
	t.Helper()
	c, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
		Name:              "test",
		Auth:              auth,
		IAMEndpoint:       f.fake.URL(),
		RequestsPerSecond: 1000,
		HTTPClient:        f.fake.Client(),
		Observer:          f.api.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oidc exchanges a fresh ID token of testIdP, as read from a projected
// token file.
func (f *fixture) oidc() kmsapi.Authenticator {
	return kmsapi.NewOIDC(kmsapi.OIDCOptions{IAMEndpoint: f.fake.URL(), IdpID: testIdP.ID, IDToken: func() (string, error) {
		return f.fake.IDToken(testIdP.ID, "system:serviceaccount:monitoring:kms-exporter", time.Hour), nil
	}})
}

func (f *fixture) aksk(t *testing.T) *kmsapi.Credential {
	return f.credential(t, kmsapi.NewAKSK(testAK.AK, testAK.SK, ""))
}

func (f *fixture) target(cred *kmsapi.Credential) Target {
	return Target{Name: "t1", Region: "cn-north-4", ProjectID: "p1", Endpoint: f.fake.URL(), Credential: cred}
}

func (f *fixture) exporter(t *testing.T, targets []Target, o Options) *Exporter {
	t.Helper()
	if o.MaxTagSeries == 0 {
		o.MaxTagSeries = 500
	}
	o.Logger = f.logger
	e, err := New(targets, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCollectEveryMetricPerCredentialKind(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		auth     kmsapi.Authenticator
		lookup   bool // leave the project ID to IAM
		endpoint string
	}{
		{name: "aksk", auth: kmsapi.NewAKSK(testAK.AK, testAK.SK, "")},
		{name: "aksk project lookup", auth: kmsapi.NewAKSK(testAK.AK, testAK.SK, ""), lookup: true},
		{name: "temporary aksk", auth: kmsapi.NewAKSK(testTmpAK.AK, testTmpAK.SK, testTmpAK.SecurityToken)},
		{name: "iam token", auth: kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{
			IAMEndpoint: f.fake.URL(), DomainName: testUser.Domain, UserName: testUser.Name, Password: testUser.Password,
		})},
		{name: "iam token project lookup", lookup: true, auth: kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{
			IAMEndpoint: f.fake.URL(), DomainName: testUser.Domain, UserName: testUser.Name, Password: testUser.Password,
		})},
		{name: "ecs agency", auth: kmsapi.NewECSMetadata(kmsapi.ECSMetadataOptions{Endpoint: f.fake.URL(), HTTPClient: f.fake.Client()})},
		{name: "oidc", auth: f.oidc()},
		{name: "oidc project lookup", auth: f.oidc(), lookup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := f.target(f.credential(t, tc.auth))
			if tc.lookup {
				tg.ProjectID = ""
			}
			e := f.exporter(t, []Target{tg}, Options{})
			c := e.Collector(context.Background())
			checkGolden(t, c, "all", steadyMetrics...)
			if n := testutil.CollectAndCount(c, "kms_scrape_collector_duration_seconds"); n != 4 {
				t.Errorf("%d duration series, want 4", n)
			}
			problems, err := testutil.CollectAndLint(c)
			if err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %+v", err, problems)
			}
		})
	}
	if f.logs.String() != "" {
		t.Errorf("unexpected log output:\n%s", f.logs)
	}
	// The API metrics saw the calls, labelled by region and endpoint.
	if n := testutil.ToFloat64(f.api.requests.WithLabelValues("cn-north-4", kmsapi.EndpointQuotas, "200")); n < 6 {
		t.Errorf("kms_api_requests_total for user-quotas = %v, want >= 6", n)
	}
	// The histogram has the counter's region and endpoint: it timed every
	// request the counter counted.
	if got, want := apiSampleCount(t, f.api, "kms_api_request_duration_seconds", "cn-north-4", kmsapi.EndpointQuotas),
		apiSampleCount(t, f.api, "kms_api_requests_total", "cn-north-4", kmsapi.EndpointQuotas); got != want || got == 0 {
		t.Errorf("kms_api_request_duration_seconds{region=cn-north-4,endpoint=user-quotas} counted %v requests, kms_api_requests_total %v", got, want)
	}
	if problems, err := testutil.CollectAndLint(f.api); err != nil || len(problems) > 0 {
		t.Errorf("lint API metrics: %v %+v", err, problems)
	}
}

func TestCollectorFailsAlone(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{})
	f.fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Status: 403, ErrorCode: "KMS.0307"})
	checkGolden(t, e.Collector(context.Background()), "collector_fails_alone",
		"kms_up", "kms_scrape_collector_success", "kms_cmk_instances", "kms_quota_limit", "kms_quota_used")
	logs := f.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log line, got:\n%s", logs)
	}
	for _, s := range []string{"level=error", "target=t1", "collector=quotas", "endpoint=user-quotas", "status=403", "error_code=KMS.0307", "request_id="} {
		if !strings.Contains(lines[0], s) {
			t.Errorf("log line lacks %q: %s", s, lines[0])
		}
	}
	if strings.Contains(lines[0], "request_id= ") || strings.Contains(logs, testAK.SK) {
		t.Errorf("log line without request ID or with secret: %s", lines[0])
	}
}

func TestAllFailingIsDown(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{Collectors: []string{Quotas, Instances}})
	f.fake.SetFault("", kmsfake.Fault{Status: 403})
	checkGolden(t, e.Collector(context.Background()), "all_failing", steadyMetrics...)
}

func TestProjectLookupFailure(t *testing.T) {
	f := newFixture(t)
	tg := f.target(f.aksk(t))
	tg.ProjectID, tg.Region = "", "xx-nowhere-1"
	e := f.exporter(t, []Target{tg}, Options{Collectors: []string{Keys}})
	checkGolden(t, e.Collector(context.Background()), "project_lookup_failure", steadyMetrics...)
	if !strings.Contains(f.logs.String(), "collector=project_lookup") {
		t.Errorf("lookup failure not logged: %s", f.logs)
	}
}

func TestDeadlineCancelsHangingCollector(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{})
	// Until a credential has been accepted once, kmsapi lets one call through
	// and holds the rest: warm it up so the hanging call is not that one.
	testutil.CollectAndCount(e.Collector(context.Background()))
	f.fake.SetFault(kmsapi.EndpointResourceInstances, kmsfake.Fault{Hang: true})
	// The scrape's deadline passes once the three other collectors have
	// reported, not after a time that a busy machine could overrun.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	checkGolden(t, cancelAfter(e.Collector(ctx), "kms_scrape_collector_success", 3, cancel), "deadline",
		"kms_up", "kms_scrape_collector_success")
	if !strings.Contains(f.logs.String(), "scrape deadline reached") {
		t.Errorf("deadline not logged: %s", f.logs)
	}
}

func TestTagKeysAndCap(t *testing.T) {
	f := newFixture(t)
	cred := f.aksk(t)
	t1 := f.target(cred)
	e := f.exporter(t, []Target{t1}, Options{Collectors: []string{Keys}, MaxTagSeries: 2})
	checkGolden(t, e.Collector(context.Background()), "tags_capped", "kms_keys_by_tag", "kms_keys_by_tag_dropped_series")

	// Allowed tag keys from the options, overridden per target.
	e = f.exporter(t, []Target{t1}, Options{Collectors: []string{Keys}, TagKeys: []string{"team", "note"}})
	checkGolden(t, e.Collector(context.Background()), "tags_from_options", "kms_keys_by_tag")
	t1.TagKeys = []string{"env"}
	e = f.exporter(t, []Target{t1}, Options{Collectors: []string{Keys}, TagKeys: []string{"team"}})
	checkGolden(t, e.Collector(context.Background()), "tags_from_target", "kms_keys_by_tag")
}

func TestCacheTTLAndRefreshInterval(t *testing.T) {
	f := newFixture(t)
	clock := newFakeClock()
	advance := clock.Advance
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{
		CacheTTL: time.Minute, KeysRefreshInterval: 5 * time.Minute, Now: clock.Now,
	})
	scrape := func() {
		t.Helper()
		if n := testutil.CollectAndCount(e.Collector(context.Background()), "kms_up"); n != 1 {
			t.Fatalf("%d kms_up series", n)
		}
	}
	counts := func() [4]int {
		return [4]int{f.fake.Requests(kmsapi.EndpointQuotas), f.fake.Requests(kmsapi.EndpointInstances),
			f.fake.Requests(kmsapi.EndpointResourceInstances), f.fake.Requests(kmsapi.EndpointRegions)}
	}
	// The regions list takes two requests: its page, then the empty page
	// that ends it.
	scrape()
	if got := counts(); got != [4]int{1, 1, 1, 2} {
		t.Fatalf("first scrape requests %v", got)
	}
	advance(30 * time.Second)
	scrape()
	if got := counts(); got != [4]int{1, 1, 1, 2} {
		t.Fatalf("within TTL requests %v", got)
	}
	advance(31 * time.Second)
	scrape()
	if got := counts(); got != [4]int{2, 2, 1, 2} {
		t.Fatalf("after TTL requests %v (keys and regions should be reused)", got)
	}
	advance(5 * time.Minute)
	scrape()
	if got := counts(); got != [4]int{3, 3, 2, 2} {
		t.Fatalf("after refresh interval requests %v (regions reused for an hour)", got)
	}
	advance(time.Hour)
	// A failure shows as soon as the cached success has expired.
	f.fake.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Status: 403})
	checkGolden(t, e.Collector(context.Background()), "cache_expired_failure", "kms_scrape_collector_success")
	if got := counts(); got != [4]int{4, 4, 3, 4} {
		t.Fatalf("after an hour requests %v", got)
	}

	// HELP says which values may be reused.
	mfs := gather(t, e.Collector(context.Background()))
	help := map[string]string{}
	for _, mf := range mfs {
		help[mf.GetName()] = mf.GetHelp()
	}
	for name, reuse := range map[string]string{"kms_cmk_instances": "1m", "kms_keys": "5m", "kms_cross_region_info": "1h"} {
		if !strings.Contains(help[name], "Reused for up to "+reuse) {
			t.Errorf("HELP of %s = %q, want reuse of %s", name, help[name], reuse)
		}
	}
	if strings.Contains(help["kms_up"], "Reused") {
		t.Errorf("HELP of kms_up mentions reuse: %q", help["kms_up"])
	}
}

// TestDownWhileRegionsCached: with the API refusing every call, the
// regions collector still answers from its one-hour cache, but no call made
// for the target in this scrape succeeded, so the target is down.
func TestDownWhileRegionsCached(t *testing.T) {
	f := newFixture(t)
	clock := newFakeClock()
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{Now: clock.Now})
	checkGolden(t, e.Collector(context.Background()), "all", steadyMetrics...)
	clock.Advance(time.Minute)
	f.fake.SetFault("", kmsfake.Fault{Status: 403})
	checkGolden(t, e.Collector(context.Background()), "down_regions_cached", steadyMetrics...)
	if n := f.fake.Requests(kmsapi.EndpointRegions); n != 2 {
		t.Errorf("%d regions requests, want 2: one listing, then the cached list reused", n)
	}
}

// TestUpFromCacheIsTheLastCall: a scrape served wholly from the cache makes
// no call; kms_up repeats the outcome of the last one.
func TestUpFromCacheIsTheLastCall(t *testing.T) {
	f := newFixture(t)
	clock := newFakeClock()
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{CacheTTL: time.Minute, Now: clock.Now})
	checkGolden(t, e.Collector(context.Background()), "all_cached", steadyMetrics...)
	clock.Advance(30 * time.Second)
	f.fake.SetFault("", kmsfake.Fault{Status: 403})
	before := f.fake.Requests("")
	checkGolden(t, e.Collector(context.Background()), "all_cached", steadyMetrics...)
	if n := f.fake.Requests(""); n != before {
		t.Errorf("%d requests for a scrape within the cache TTL", n-before)
	}
}

func TestTwoTargetsSameProjectExportOnce(t *testing.T) {
	f := newFixture(t)
	cred := f.aksk(t)
	a := f.target(cred)
	b := a
	b.Name, b.ProjectID = "t2", "" // looked up: also p1
	e := f.exporter(t, []Target{a, b}, Options{Collectors: []string{Instances}})
	if n := testutil.CollectAndCount(e.Collector(context.Background()), "kms_up"); n != 1 {
		t.Errorf("%d kms_up series, want 1", n)
	}
	if !strings.Contains(f.logs.String(), "same region and project") {
		t.Errorf("duplicate not logged: %s", f.logs)
	}
	c, ok := e.TargetCollector(context.Background(), "t2")
	if !ok {
		t.Fatal("TargetCollector(t2) not found")
	}
	if n := testutil.CollectAndCount(c, "kms_cmk_instances"); n != 1 {
		t.Errorf("t2 alone: %d kms_cmk_instances series", n)
	}
	if _, ok := e.TargetCollector(context.Background(), "nope"); ok {
		t.Error("unknown target found")
	}
	if got := strings.Join(e.TargetNames(), ","); got != "t1,t2" {
		t.Errorf("TargetNames = %s", got)
	}
}

// TestMetricsListsWhatIsExposed holds Metrics to what a scrape of a target
// with every kind of series, and the exporter's own registry, expose.
func TestMetricsListsWhatIsExposed(t *testing.T) {
	f := newFixture(t)
	own := NewOwnMetrics()
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
		Name: "test", Auth: kmsapi.NewAKSK(testAK.AK, testAK.SK, ""), IAMEndpoint: f.fake.URL(),
		RequestsPerSecond: 1000, HTTPClient: f.fake.Client(), Observer: own.API.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := f.exporter(t, []Target{f.target(cred)}, Options{})
	mfs := gather(t, e.Collector(context.Background()))
	// The exporter's own, once the scrape has made its API calls.
	disc := discovery.New([]discovery.Source{{Rule: discovery.Rule{Credential: "test"}}}, discovery.Options{})
	ownMFs := gather(t, append(own.Collectors(), ConfigMetrics{Current: func() (map[string]*kmsapi.Credential, *discovery.Discoverer) {
		return map[string]*kmsapi.Credential{"test": cred}, disc
	}})...)
	exposed := map[string]string{}
	for _, mf := range append(mfs, ownMFs...) {
		var labels []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		exposed[mf.GetName()] = strings.ToLower(mf.GetType().String()) + " " + strings.Join(labels, ",")
	}
	listed := map[string]string{}
	for _, m := range Metrics() {
		labels := slices.Sorted(slices.Values(m.Labels))
		listed[m.Name] = m.Type + " " + strings.Join(labels, ",")
		if m.Help == "" {
			t.Errorf("%s has no help", m.Name)
		}
	}
	if !maps.Equal(exposed, listed) {
		t.Errorf("Metrics() = %v\nexposed   %v", listed, exposed)
	}
}

// apiSampleCount sums the requests that metric name (the counter or the
// histogram of APIMetrics) counted for region and endpoint.
func apiSampleCount(t *testing.T, api *APIMetrics, name, region, endpoint string) float64 {
	t.Helper()
	mfs := gather(t, api)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["region"] == region && labels["endpoint"] == endpoint {
				n += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}
