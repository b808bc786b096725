package collector

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// ConfigMetrics exports, on /metrics, what belongs to the config in force:
// the kms_discovery_* metrics of its discovery entries, and
// kms_api_rate_limit_wait_seconds_total of its credentials.
type ConfigMetrics struct {
	// Current returns the credentials of the config in force by name, and
	// its discovery; nil and nil before a config is loaded.
	Current func() (map[string]*kmsapi.Credential, *discovery.Discoverer)
}

var rateLimitWaitDesc = prometheus.NewDesc("kms_api_rate_limit_wait_seconds_total",
	"Time API calls with the credential spent waiting for its client-side rate limit (--kms.requests-per-second), summed over the calls. A rate that stays near or above 1 (second per second) means calls queue for the credential's budget.",
	[]string{"credentials"}, nil)

func (m ConfigMetrics) Describe(ch chan<- *prometheus.Desc) {
	discovery.New(nil, discovery.Options{}).Describe(ch)
	ch <- rateLimitWaitDesc
}

func (m ConfigMetrics) Collect(ch chan<- prometheus.Metric) {
	creds, disc := m.Current()
	if disc != nil {
		disc.Collect(ch)
	}
	names := make([]string, 0, len(creds))
	for name := range creds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if c := creds[name]; c != nil {
			if mt, err := prometheus.NewConstMetric(rateLimitWaitDesc, prometheus.CounterValue, c.RateLimitWait().Seconds(), name); err == nil {
				ch <- mt
			}
		}
	}
}

// exampleConfigMetrics has one series of each family, for Metrics.
func exampleConfigMetrics() ConfigMetrics {
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "x", Auth: kmsapi.NewAKSK("x", "x", "")})
	if err != nil {
		panic(err) // an authenticator is given: a bug
	}
	disc := discovery.New([]discovery.Source{{Rule: discovery.Rule{Credential: "x"}}}, discovery.Options{})
	return ConfigMetrics{Current: func() (map[string]*kmsapi.Credential, *discovery.Discoverer) {
		return map[string]*kmsapi.Credential{"x": cred}, disc
	}}
}
