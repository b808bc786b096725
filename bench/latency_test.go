package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Latency is the round-trip time the fake adds to every request.
const Latency = 50 * time.Millisecond

// latencyCase is one row of the scrape-latency table.
type latencyCase struct {
	name        string
	targets     int
	keys        int // per target
	credentials int
	rps         float64
	concurrency int
	scrapes     int
}

var latencyCases = []latencyCase{
	{name: "a_1x10000keys", targets: 1, keys: 10000, credentials: 1, rps: kmsapi.DefaultRequestsPerSecond, concurrency: kmsapi.DefaultConcurrency, scrapes: 9},
	{name: "b_20x1000keys_4creds", targets: 20, keys: 1000, credentials: 4, rps: kmsapi.DefaultRequestsPerSecond, concurrency: kmsapi.DefaultConcurrency, scrapes: 9},
	{name: "c_20x1000keys_4creds_rps5", targets: 20, keys: 1000, credentials: 4, rps: 5, concurrency: kmsapi.DefaultConcurrency, scrapes: 7},
}

// pages is the number of resource_instances filter calls listing keys takes.
func pages(keys int) int { return max(1, (keys+kmsapi.MaxPageSize-1)/kmsapi.MaxPageSize) }

// callPlans gives every credential's calls in a scrape with the regions
// cached: quotas, instances and the first key page can go at once, the
// other pages once the first gave the total.
func (c latencyCase) callPlans() []CallPlan {
	plans := make([]CallPlan, c.credentials)
	for t := range c.targets {
		p := &plans[t%c.credentials]
		p.First += 3
		p.Dependent += pages(c.keys) - 1
	}
	return plans
}

// minCalls is the fewest calls a scrape can make: per target 1 quotas, 1
// instances and one filter page per 1,000 keys; with refreshRegions also
// the regions list (only once an hour): its one page, and the empty page
// that ends a list without a total.
func (c latencyCase) minCalls(refreshRegions bool) int {
	n := 2 + pages(c.keys)
	if refreshRegions {
		n += 2
	}
	return c.targets * n
}

// BenchmarkScrapeLatency measures scrapes against the fake with Latency
// added to every request and the fake enforcing the real API's 20 requests
// per second per user. Each case runs one warm-up scrape (it fetches the
// regions, which are then cached for an hour, and opens the connections),
// then its scrapes, spaced so that every credential's token bucket is full
// when a scrape starts (as with any scrape interval above a second). After
// each, a minimalClient makes the same calls under the same limits against
// the same fake. It reports the median and 95th percentile scrape time, the
// API calls per scrape, the minimal client's median and the ratio of the
// two medians, and the lower bound of Bound and the ratio median/bound.
// b.N is ignored: run it with -benchtime 1x.
func BenchmarkScrapeLatency(b *testing.B) {
	for _, c := range latencyCases {
		b.Run(c.name, func(b *testing.B) {
			sc := Scenario(c.targets, c.keys, c.credentials)
			srv := kmsfake.Start(sc)
			defer srv.Close()
			srv.SetFault("", kmsfake.Fault{Latency: Latency})
			srv.SetRateLimit(20)
			e, err := Setup{URL: srv.URL(), Credentials: c.credentials, RequestsPerSecond: c.rps, Concurrency: c.concurrency}.Exporter(sc)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			burst := Burst(c.rps, c.concurrency)
			refill := time.Duration(float64(burst)/c.rps*float64(time.Second)) + 100*time.Millisecond

			mfs, err := Scrape(ctx, e)
			if err != nil {
				b.Fatal(err)
			}
			if err := Check(mfs, c.targets, c.keys); err != nil {
				b.Fatal(err)
			}
			warmCalls := srv.Requests("")
			if warmCalls != c.minCalls(true) {
				b.Errorf("warm-up scrape made %d calls, want %d", warmCalls, c.minCalls(true))
			}

			m := newMinimalClient(srv.URL(), c.credentials, c.rps, c.concurrency)
			time.Sleep(refill)
			if err := m.scrape(ctx, sc, c.keys); err != nil { // opens its connections
				b.Fatal(err)
			}
			var times, minimal []time.Duration
			calls, maxCalls := 0, 0
			byEndpoint := map[string]int{}
			endpoints := []string{kmsapi.EndpointQuotas, kmsapi.EndpointInstances, kmsapi.EndpointResourceInstances, kmsapi.EndpointRegions}
			b.ResetTimer()
			for range c.scrapes {
				time.Sleep(refill)
				srv.ResetRequests()
				start := time.Now()
				mfs, err := Scrape(ctx, e)
				d := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if err := Check(mfs, c.targets, c.keys); err != nil {
					b.Fatal(err)
				}
				times = append(times, d)
				n := srv.Requests("")
				calls += n
				maxCalls = max(maxCalls, n)
				for _, ep := range endpoints {
					byEndpoint[ep] += srv.Requests(ep)
				}
				time.Sleep(refill)
				start = time.Now()
				if err := m.scrape(ctx, sc, c.keys); err != nil {
					b.Fatal(err)
				}
				minimal = append(minimal, time.Since(start))
			}
			b.StopTimer()

			bound := Bound(Latency, c.rps, burst, c.concurrency, c.callPlans())
			med, p95, minMed := Quantile(times, 0.5), Quantile(times, 0.95), Quantile(minimal, 0.5)
			perScrape := float64(calls) / float64(c.scrapes)
			b.ReportMetric(float64(med)/1e6, "median-ms")
			b.ReportMetric(float64(p95)/1e6, "p95-ms")
			b.ReportMetric(float64(bound)/1e6, "bound-ms")
			b.ReportMetric(float64(med)/float64(bound), "ratio")
			b.ReportMetric(float64(minMed)/1e6, "minimal-median-ms")
			b.ReportMetric(float64(med)/float64(minMed), "ratio-to-minimal")
			b.ReportMetric(perScrape, "calls/scrape")
			b.ReportMetric(float64(c.minCalls(false)), "min-calls/scrape")
			b.ReportMetric(float64(warmCalls), "calls/refresh-scrape")
			var eps []string
			for _, ep := range endpoints {
				eps = append(eps, fmt.Sprintf("%s=%.1f", ep, float64(byEndpoint[ep])/float64(c.scrapes)))
			}
			b.Logf("%d targets x %d keys, %d credentials, rps %g (burst %d), concurrency %d, latency %s, %d scrapes: median %s p95 %s; minimal client %s, ratio %.3f; bound %s ratio %.3f; calls/scrape %.1f (max %d, minimum %d; %s); refresh scrape %d calls",
				c.targets, c.keys, c.credentials, c.rps, burst, c.concurrency, Latency, c.scrapes,
				med.Round(time.Millisecond), p95.Round(time.Millisecond), minMed.Round(time.Millisecond), float64(med)/float64(minMed),
				bound.Round(time.Millisecond), float64(med)/float64(bound),
				perScrape, maxCalls, c.minCalls(false), strings.Join(eps, " "), warmCalls)
			if maxCalls != c.minCalls(false) {
				b.Errorf("a scrape made %d calls, want the minimum %d", maxCalls, c.minCalls(false))
			}
		})
	}
}
