package kmsfake

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/sign"
)

// BenchmarkFilterPage measures one 1000-key page out of 50,000 keys, over HTTP.
func BenchmarkFilterPage(b *testing.B) {
	for _, name := range []string{"all", "tags"} {
		b.Run(name, func(b *testing.B) {
			sc := Generate(GenerateOptions{Seed: 1, KeysPerProject: 50000, Now: testNow})
			srv := Start(sc)
			defer srv.Close()
			p := sc.Projects[0]
			body := []byte(`{"action":"filter","limit":"1000","offset":"20000"}`)
			if name == "tags" {
				body = []byte(`{"action":"filter","limit":"1000","offset":"2000","tags":[{"key":"env","values":["prod"]}]}`)
			}
			c := srv.Client()
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequest("POST", srv.URL()+filterPath(p), bytes.NewReader(body))
				sign.Sign(req, body, ExampleAccessKey.AK, ExampleAccessKey.SK, "", time.Now())
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
				b.SetBytes(n)
			}
		})
	}
}
