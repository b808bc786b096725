package kmsapi_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/sign"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// realisticPage fetches a 1000-key page from kmsfake, whose keys carry the
// members and sizes of live answers (about 650 bytes a key, several
// members unknown to the decoder), unlike the synthetic keyPageJSON.
func realisticPage(b *testing.B) []byte {
	b.Helper()
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 1, KeysPerProject: 1000})
	srv := kmsfake.Start(sc)
	defer srv.Close()
	body := []byte(`{"action":"filter","limit":"1000","offset":"0"}`)
	req, err := http.NewRequest("POST", srv.URL()+"/v1.0/"+sc.Projects[0].ID+"/kms/resource_instances/action", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	sign.Sign(req, body, kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, "", time.Now())
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("fetching page: %v %s", err, resp.Status)
	}
	return page
}

// BenchmarkDecodeRealisticKeyPage1000 reads the page as a response
// arrives: in reads of at most 16 KiB (a TLS record).
func BenchmarkDecodeRealisticKeyPage1000(b *testing.B) {
	page := realisticPage(b)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	r := bytes.NewReader(page)
	for b.Loop() {
		r.Reset(page)
		keys, err := kmsapi.DecodeKeyPage(&chunkReader{r, 16 << 10}, int64(len(page)))
		if err != nil || len(keys) != 1000 {
			b.Fatal(err, len(keys))
		}
	}
}

// chunkReader returns at most n bytes a read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
