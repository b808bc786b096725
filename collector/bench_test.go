package collector

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// BenchmarkSummarizeKeys is the exporter's own work per 1000 keys, the
// listing and decoding excluded.
func BenchmarkSummarizeKeys(b *testing.B) {
	keys := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 1, KeysPerProject: 1000}).Projects[0].Keys
	b.ReportAllocs()
	for b.Loop() {
		summarizeKeys(keys, nil, 500)
	}
}

// BenchmarkScrape1000Keys is one whole scrape of one target with 1000 keys
// against the fake: signing, paging, decoding, summary and exposition.
func BenchmarkScrape1000Keys(b *testing.B) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 1, KeysPerProject: 1000})
	fake := kmsfake.Start(sc)
	defer fake.Close()
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
		Auth: kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""), RequestsPerSecond: 1e9, HTTPClient: fake.Client(),
	})
	if err != nil {
		b.Fatal(err)
	}
	p := sc.Projects[0]
	e, err := New([]Target{{Name: "t", Region: p.Region, ProjectID: p.ID, Endpoint: fake.URL(), Credential: cred}},
		Options{Collectors: []string{Keys}, MaxTagSeries: 500})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Collector(ctx))
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
