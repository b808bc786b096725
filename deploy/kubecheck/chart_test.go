package kubecheck

import (
	"strings"
	"testing"
)

// TestChartDefaults: helm template with the default values.
func TestChartDefaults(t *testing.T) {
	o, w := checkedWorkload(t, renderChart(t, ""), "")
	// No Secret from the chart: the pod mounts the one named like the
	// release, created out of band (NOTES.txt says how).
	if len(o.Secrets) != 0 {
		t.Errorf("the default values render %d Secrets", len(o.Secrets))
	}
	w.checkFiles(t, w.config(t), "kms-kms-exporter")
	if len(o.ServiceMonitors)+len(o.Rules)+len(o.NetworkPolicies)+len(o.PDBs) != 0 {
		t.Error("optional objects rendered by default")
	}
	if img := w.container.Image; !strings.HasPrefix(img, "registry.example.com/kms_exporter:v") {
		t.Errorf("image %s, want the registry placeholder and the appVersion tag", img)
	}
}

// TestChartFullValues: helm template with every option of ci/full-values.yaml.
func TestChartFullValues(t *testing.T) {
	o, w := checkedWorkload(t, renderChart(t, valuesPath("full-values.yaml")), "kms-exporter-state")
	if len(o.Secrets) != 0 {
		t.Errorf("existingSecret set, yet %d Secrets rendered", len(o.Secrets))
	}
	cfg := w.config(t)
	w.checkFiles(t, cfg, "kms-exporter-credentials")
	// The OIDC credential the chart adds, read from the projected token.
	creds, _ := cfg["credentials"].(map[string]any)
	workload, _ := creds["workload"].(map[string]any)
	oidc, _ := workload["oidc"].(map[string]any)
	if oidc["idp_id"] != "cce-oidc" || oidc["id_token_file"] != "/var/run/secrets/tokens/oidc-token" {
		t.Errorf("credential workload %v, want oidc with the idp and the projected token", workload)
	}
	for _, kind := range []struct {
		name string
		n    int
	}{{"ServiceMonitor", len(o.ServiceMonitors)}, {"PrometheusRule", len(o.Rules)}, {"NetworkPolicy", len(o.NetworkPolicies)}, {"PodDisruptionBudget", len(o.PDBs)}} {
		if kind.n != 1 {
			t.Errorf("%d %s, want 1", kind.n, kind.name)
		}
	}
	for _, sm := range o.ServiceMonitors {
		// kube-prometheus-stack selects on release; the job label is the
		// chart name, whatever the release is called.
		if sm.Labels["release"] != "kube-prometheus-stack" || sm.Spec.JobLabel != "app.kubernetes.io/name" {
			t.Errorf("ServiceMonitor labels %v jobLabel %q", sm.Labels, sm.Spec.JobLabel)
		}
	}
	checkRules(t, o, `job="kms-exporter",namespace="monitoring"`)
	for _, r := range o.Rules {
		if r.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("PrometheusRule labels %v", r.Labels)
		}
	}
	if w.container.Image != "swr.cn-north-4.myhuaweicloud.com/monitoring/kms_exporter:v0.1.0" {
		t.Errorf("image %s", w.container.Image)
	}
	for _, obj := range o.all {
		if obj.GetNamespace() != "monitoring" || obj.GetLabels()["team"] != "platform" {
			t.Errorf("%s: namespace %q labels %v, want monitoring and commonLabels", obj.GetName(), obj.GetNamespace(), obj.GetLabels())
		}
	}
}

// TestChartRulesDefaultSelector: the chart's rules are the shipped ones when
// the job selector is left alone.
func TestChartRulesDefaultSelector(t *testing.T) {
	o := mustDecode(t, renderChart(t, valuesPath("rules-values.yaml")))
	checkRules(t, o, `job=~"kms.*"`)
}
