package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// APIMetrics counts and times every API request the client makes. They
// belong to the exporter's own registry (/metrics only), fed through
// kmsapi.CredentialOptions.Observer.
type APIMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewAPIMetrics builds the kms_api_* metrics.
func NewAPIMetrics() *APIMetrics {
	return &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kms_api_requests_total",
			Help: "API requests made, retries included, by region (empty for IAM and metadata), endpoint and HTTP status code (\"error\" when no response came).",
		}, []string{"region", "endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kms_api_request_duration_seconds",
			Help:    "Duration of API requests by region (empty for IAM and metadata) and endpoint.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"region", "endpoint"}),
	}
}

// Observe records one request; it is a kmsapi.Observer.
func (m *APIMetrics) Observe(r kmsapi.RequestInfo) {
	m.requests.WithLabelValues(r.Region, r.Endpoint, r.Code).Inc()
	m.duration.WithLabelValues(r.Region, r.Endpoint).Observe(r.Duration.Seconds())
}

func (m *APIMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

func (m *APIMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}
