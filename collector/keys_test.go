package collector

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// The documented example of resource_instances has 9 fields: the keys are
// counted all the same, their spec and enterprise project as unknown, and
// no material expires.
func TestKeysOfTheExampleShape(t *testing.T) {
	f := newFixture(t)
	f.fake.SetDetail(kmsfake.DetailExample)
	e := f.exporter(t, []Target{f.target(f.aksk(t))}, Options{})
	checkGolden(t, e.Collector(context.Background()), "keys_example_shape",
		"kms_keys", "kms_keys_by_spec", "kms_keys_by_enterprise_project", "kms_key_material_expiration_timestamp_seconds", "kms_scrape_collector_success")
}

func TestSummarizeKeyAttributes(t *testing.T) {
	exp := time.Unix(1800000000, 250e6)
	keys := []kmsapi.Key{
		{ID: "a", KeySpec: "AES_256", KeyUsage: "ENCRYPT_DECRYPT", Origin: "kms", RotationEnabled: "true", EnterpriseProjectID: "0"},
		{ID: "b", KeySpec: "AES_256", KeyUsage: "ENCRYPT_DECRYPT", Origin: "kms", RotationEnabled: "true", EnterpriseProjectID: "0"},
		{ID: "c", Alias: "byok", KeySpec: "AES_256", KeyUsage: "ENCRYPT_DECRYPT", Origin: "external", RotationEnabled: "false", EnterpriseProjectID: "ep\xff", Expires: exp},
		{ID: "c", Alias: "byok", KeySpec: "AES_256", KeyUsage: "ENCRYPT_DECRYPT", Origin: "external", RotationEnabled: "false", EnterpriseProjectID: "ep\xfe", Expires: exp}, // listed twice
		{ID: "d", KeySpec: "SM2"}, // the rest left out
		{ID: "e"},
	}
	s := summarizeKeys(keys, nil, 0)
	wantSpecs := []specCount{
		{keySpec{"AES_256", "ENCRYPT_DECRYPT", "external", "false"}, 2},
		{keySpec{"AES_256", "ENCRYPT_DECRYPT", "kms", "true"}, 2},
		{keySpec{"SM2", "unknown", "unknown", "unknown"}, 1},
		{keySpec{"unknown", "unknown", "unknown", "unknown"}, 1},
	}
	if !slices.Equal(s.specs, wantSpecs) {
		t.Errorf("specs = %v, want %v", s.specs, wantSpecs)
	}
	// Two raw IDs that differ only in invalid bytes are one label value.
	wantProjects := []projectCount{{"0", 2}, {"ep\uFFFD", 2}, {"unknown", 2}}
	if !slices.Equal(s.projects, wantProjects) {
		t.Errorf("projects = %v, want %v", s.projects, wantProjects)
	}
	if want := []keyTime{{"c", "byok", 1800000000.25}}; !slices.Equal(s.expirations, want) {
		t.Errorf("expirations = %v, want %v", s.expirations, want)
	}
}

// A busy account: keys are created and deleted while the collector pages
// through them. The keys collector succeeds, and its counts are off by no
// more than the keys that changed.
func TestKeysWhileKeysChange(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 4, KeysPerProject: 2600, AccessKey: testAK})
	srv := kmsfake.Start(sc)
	t.Cleanup(srv.Close)
	p := sc.Projects[0]
	ch := srv.StartChurn(p.ID, func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) {
		k := kmsapi.Key{ID: fmt.Sprintf("auto-%d", 3*(n+1)), Alias: "auto", State: kmsapi.StateEnabled}
		return slices.Insert(slices.Delete(keys, 7, 9), 0, k), 3
	})
	e := newFixture(t).exporter(t, []Target{{Name: "busy", Region: p.Region, ProjectID: p.ID, Endpoint: srv.URL(), Credential: akCredential(t, srv, nil)}}, Options{})
	got := collect(t, e.Collector(context.Background()))
	if ok := byCollector(got, "kms_scrape_collector_success")[Keys]; ok != 1 {
		t.Fatalf("keys collector success %v", ok)
	}
	listed := 0.0
	for _, s := range got {
		if s.name == "kms_keys" {
			listed += s.value
		}
	}
	changed := ch.Changed()
	if now := float64(len(srv.Keys(p.ID))); changed == 0 || listed < now-float64(changed) || listed > now+float64(changed) {
		t.Errorf("kms_keys adds up to %v; %v keys at the end, %d changed", listed, now, changed)
	}
}
