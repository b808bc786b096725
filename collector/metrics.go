package collector

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Metric is one metric family the exporter can expose.
type Metric struct {
	Name   string
	Type   string // "gauge", "counter" or "histogram"
	Help   string // as with default options
	Labels []string
}

// Metrics lists every metric family the exporter can expose: the per-target
// ones of every collector, then the exporter's own (/metrics only). Dashboards
// and alert rules are checked against it.
func Metrics() []Metric {
	e, err := New(nil, Options{})
	if err != nil {
		panic(err) // no targets and default options: a bug
	}
	var out []Metric
	for _, d := range e.descs() {
		out = append(out, Metric{Name: d.name, Type: "gauge", Help: d.help, Labels: d.labels})
	}
	own := NewOwnMetrics()
	// A vector shows its family once it has a series.
	own.API.Observe(kmsapi.RequestInfo{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(own.Collectors()...)
	reg.MustRegister(exampleConfigMetrics())
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		m := Metric{Name: mf.GetName(), Type: strings.ToLower(mf.GetType().String()), Help: mf.GetHelp()}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			m.Labels = append(m.Labels, l.GetName())
		}
		out = append(out, m)
	}
	return out
}

// descs lists every per-target gauge, of every collector enabled or not.
func (e *Exporter) descs() []*desc {
	out := []*desc{e.up, e.success, e.duration}
	for _, c := range e.collectors {
		out = append(out, c.descs()...)
	}
	return out
}

// OwnMetrics are the exporter's own metrics, on /metrics only.
type OwnMetrics struct {
	API        *APIMetrics
	ReloadOK   prometheus.Gauge
	ReloadTime prometheus.Gauge
}

// NewOwnMetrics builds the exporter's own metrics.
func NewOwnMetrics() *OwnMetrics {
	return &OwnMetrics{
		API: NewAPIMetrics(),
		ReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kms_exporter_config_last_reload_successful",
			Help: "1 if the last config (re)load succeeded, 0 if it failed and the previous config is still in force.",
		}),
		ReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kms_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful config (re)load, in Unix seconds.",
		}),
	}
}

// Collectors returns what to register, the build info included.
func (o *OwnMetrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{versioncollector.NewCollector("kms_exporter"), o.API, o.ReloadOK, o.ReloadTime}
}
