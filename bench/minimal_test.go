package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/kms-exporter/kms_exporter/internal/sign"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// minimalClient makes the calls of the exporter's scrape in the least time
// a client can under the same limits: per credential a token bucket of the
// same rate and burst and the same cap on requests in flight; per target
// quotas, instances and the first key page at once, then every other page
// at once. It signs each request and reads each answer whole, but decodes
// nothing and builds no metric. The exporter's scrape time against it is
// the cost of everything the exporter does besides waiting for the API.
type minimalClient struct {
	url   string
	http  *http.Client
	creds []minimalCred
}

type minimalCred struct {
	limiter *rate.Limiter
	slots   chan struct{}
	ak, sk  string
}

func newMinimalClient(url string, credentials int, rps float64, concurrency int) *minimalClient {
	m := &minimalClient{url: url, http: kmsapi.NewHTTPClient()}
	for i := range max(credentials, 1) {
		ak := AccessKey(i)
		m.creds = append(m.creds, minimalCred{
			limiter: rate.NewLimiter(rate.Limit(rps), Burst(rps, concurrency)),
			slots:   make(chan struct{}, concurrency),
			ak:      ak.AK,
			sk:      ak.SK,
		})
	}
	return m
}

// scrape makes the calls of one scrape of every project of sc, with keys
// keys each, targets spread over the credentials as Setup.Exporter does.
func (m *minimalClient) scrape(ctx context.Context, sc kmsfake.Scenario, keys int) error {
	var g errgroup.Group
	for i, p := range sc.Projects {
		c := &m.creds[i%len(m.creds)]
		g.Go(func() error {
			prefix := "/v1.0/" + p.ID + "/kms/"
			var first errgroup.Group
			first.Go(func() error { return m.call(ctx, c, p.ID, http.MethodGet, prefix+"user-quotas", nil) })
			first.Go(func() error { return m.call(ctx, c, p.ID, http.MethodGet, prefix+"user-instances", nil) })
			first.Go(func() error {
				return m.call(ctx, c, p.ID, http.MethodPost, prefix+"resource_instances/action", pageBody(0))
			})
			if err := first.Wait(); err != nil {
				return err
			}
			var rest errgroup.Group
			for offset := kmsapi.MaxPageSize; offset < keys; offset += kmsapi.MaxPageSize {
				rest.Go(func() error {
					return m.call(ctx, c, p.ID, http.MethodPost, prefix+"resource_instances/action", pageBody(offset))
				})
			}
			return rest.Wait()
		})
	}
	return g.Wait()
}

func pageBody(offset int) []byte {
	return []byte(`{"action":"filter","limit":"` + strconv.Itoa(kmsapi.MaxPageSize) + `","offset":"` + strconv.Itoa(offset) + `"}`)
}

func (m *minimalClient) call(ctx context.Context, c *minimalCred, projectID, method, path string, body []byte) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return err
	}
	c.slots <- struct{}{}
	defer func() { <-c.slots }()
	req, err := http.NewRequestWithContext(ctx, method, m.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Project-Id", projectID)
	sign.Sign(req, body, c.ak, c.sk, "", time.Now())
	resp, err := m.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}
