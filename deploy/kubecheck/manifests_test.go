package kubecheck

import (
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const storagePath = "/var/lib/kms_exporter"

// A workload of the chart or the kustomize base, as rendered.
type workload struct {
	o         *objects
	dep       *appsv1.Deployment
	pod       corev1.PodSpec
	container corev1.Container
	args      map[string]string // --flag=value
	mounts    map[string]corev1.VolumeMount
	volumes   map[string]corev1.Volume
}

func newWorkload(t *testing.T, o *objects) *workload {
	t.Helper()
	if len(o.Deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(o.Deployments))
	}
	w := &workload{o: o, dep: o.Deployments[0], args: map[string]string{}, mounts: map[string]corev1.VolumeMount{}, volumes: map[string]corev1.Volume{}}
	w.pod = w.dep.Spec.Template.Spec
	if len(w.pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(w.pod.Containers))
	}
	w.container = w.pod.Containers[0]
	for _, a := range w.container.Args {
		k, v, _ := strings.Cut(a, "=")
		w.args[k] = v
	}
	for _, m := range w.container.VolumeMounts {
		w.mounts[m.Name] = m
	}
	for _, v := range w.pod.Volumes {
		w.volumes[v.Name] = v
	}
	return w
}

// checkedWorkload decodes a full rendering and checks what every one must
// hold: the restricted profile, state on wantClaim ("" for an emptyDir),
// and selectors that match.
func checkedWorkload(t *testing.T, stream []byte, wantClaim string) (*objects, *workload) {
	t.Helper()
	o := mustDecode(t, stream)
	w := newWorkload(t, o)
	w.checkRestricted(t)
	w.checkStorage(t, wantClaim)
	w.checkSelectors(t)
	return o, w
}

// mountOf returns the volume mounted at the directory of file.
func (w *workload) mountOf(file string) (corev1.VolumeMount, corev1.Volume, bool) {
	for _, m := range w.mounts {
		if path.Dir(file) == path.Clean(m.MountPath) {
			return m, w.volumes[m.Name], true
		}
	}
	return corev1.VolumeMount{}, corev1.Volume{}, false
}

// checkRestricted: the restricted Pod Security Standard, read-only root,
// uid 65532 as in the image, no service account token.
func (w *workload) checkRestricted(t *testing.T) {
	t.Helper()
	psc, sc := w.pod.SecurityContext, w.container.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("pod or container securityContext missing")
	}
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, uid 65532, RuntimeDefault seccomp", psc)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !isTrue(sc.ReadOnlyRootFilesystem) ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || isTrue(sc.Privileged) {
		t.Errorf("container securityContext %+v: want no privilege escalation, read-only root, all capabilities dropped", sc)
	}
	if w.pod.AutomountServiceAccountToken == nil || *w.pod.AutomountServiceAccountToken {
		t.Error("the pod mounts the service account token; the exporter does not use the Kubernetes API")
	}
	if w.container.Resources.Requests.Memory().IsZero() || w.container.Resources.Limits.Memory().IsZero() {
		t.Error("memory requests and limits required")
	}
	for name, p := range map[string]*corev1.Probe{"/-/healthy": w.container.LivenessProbe, "/-/ready": w.container.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != "http" {
			t.Errorf("probe on %s missing", name)
		}
	}
	if len(w.container.Ports) != 1 || w.container.Ports[0].Name != "http" || w.container.Ports[0].ContainerPort != 10567 {
		t.Errorf("ports %+v, want http 10567", w.container.Ports)
	}
}

// checkStorage: --storage.path is a volume that outlives container restarts.
func (w *workload) checkStorage(t *testing.T, wantClaim string) {
	t.Helper()
	if w.args["--storage.path"] != storagePath {
		t.Errorf("--storage.path=%q, want %s", w.args["--storage.path"], storagePath)
	}
	m, v, ok := w.mountOf(storagePath + "/x")
	switch {
	case !ok || m.ReadOnly:
		t.Errorf("no writable volume at %s", storagePath)
	case wantClaim != "" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != wantClaim):
		t.Errorf("storage volume %+v, want the claim %s", v.VolumeSource, wantClaim)
	case wantClaim == "" && v.EmptyDir == nil:
		t.Errorf("storage volume %+v, want an emptyDir", v.VolumeSource)
	}
}

// config returns the config file the exporter reads, from its ConfigMap.
func (w *workload) config(t *testing.T) map[string]any {
	t.Helper()
	file := w.args["--config.file"]
	_, v, ok := w.mountOf(file)
	if !ok || v.ConfigMap == nil {
		t.Fatalf("--config.file=%s is not in a ConfigMap volume", file)
	}
	for _, cm := range w.o.ConfigMaps {
		if cm.Name != v.ConfigMap.Name {
			continue
		}
		var cfg map[string]any
		if err := yaml.UnmarshalStrict([]byte(cm.Data[path.Base(file)]), &cfg); err != nil || cfg == nil {
			t.Fatalf("ConfigMap %s key %s: %v", cm.Name, path.Base(file), err)
		}
		return cfg
	}
	t.Fatalf("the ConfigMap %s mounted for the config is not rendered", v.ConfigMap.Name)
	return nil
}

// checkFiles: every *_file of the config is in a mounted volume: the
// secret volume (of secretName, holding the keys of the rendered Secret if
// there is one) or the projected OIDC token.
func (w *workload) checkFiles(t *testing.T, cfg map[string]any, secretName string) {
	t.Helper()
	var files []string
	walkFiles(cfg, &files)
	if len(files) == 0 {
		t.Fatal("the config names no secret file")
	}
	for _, f := range files {
		m, v, ok := w.mountOf(f)
		switch {
		case !ok || !m.ReadOnly:
			t.Errorf("%s is in no read-only mount", f)
		case v.Secret != nil:
			if v.Secret.SecretName != secretName {
				t.Errorf("%s: Secret %s mounted, want %s", f, v.Secret.SecretName, secretName)
			}
			for _, s := range w.o.Secrets {
				if _, has := s.Data[path.Base(f)]; s.Name == secretName && !has {
					t.Errorf("%s: the Secret %s has no key %s", f, s.Name, path.Base(f))
				}
			}
		case v.Projected != nil:
			var found bool
			for _, src := range v.Projected.Sources {
				found = found || (src.ServiceAccountToken != nil && src.ServiceAccountToken.Path == path.Base(f) && src.ServiceAccountToken.Audience != "")
			}
			if !found {
				t.Errorf("%s: the projected volume has no service account token with an audience at %s", f, path.Base(f))
			}
		default:
			t.Errorf("%s is in volume %s, neither a Secret nor a projected token", f, v.Name)
		}
	}
}

func walkFiles(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && strings.HasSuffix(k, "_file") {
				*out = append(*out, s)
			}
			walkFiles(x, out)
		}
	case []any:
		for _, x := range v {
			walkFiles(x, out)
		}
	}
}

// checkSelectors: Service, ServiceMonitor, NetworkPolicy and PDB reach the
// pods and their port.
func (w *workload) checkSelectors(t *testing.T) {
	t.Helper()
	pods := labels.Set(w.dep.Spec.Template.Labels)
	if sel := labels.SelectorFromSet(w.dep.Spec.Selector.MatchLabels); !sel.Matches(pods) {
		t.Error("the Deployment's selector does not match its pods")
	}
	if len(w.o.Services) != 1 {
		t.Fatalf("%d Services, want 1", len(w.o.Services))
	}
	svc := w.o.Services[0]
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %s does not reach the pods' http port", svc.Name)
	}
	for _, sm := range w.o.ServiceMonitors {
		if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor %s does not select the Service", sm.Name)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor %s endpoints %+v, want port http /metrics", sm.Name, sm.Spec.Endpoints)
		}
	}
	for _, np := range w.o.NetworkPolicies {
		if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(pods) {
			t.Errorf("NetworkPolicy %s does not select the pods", np.Name)
		}
		if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" {
			t.Errorf("NetworkPolicy %s: ingress %+v, want the http port only", np.Name, np.Spec.Ingress)
		}
		if len(np.Spec.Egress) == 0 {
			t.Errorf("NetworkPolicy %s allows no egress: KMS and IAM are unreachable", np.Name)
		}
	}
	for _, pdb := range w.o.PDBs {
		if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(pods) {
			t.Errorf("PodDisruptionBudget %s does not select the pods", pdb.Name)
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// shippedGroups are the alert groups of deploy/prometheus/alerts.yml.
func shippedGroups(t *testing.T) []monitoringv1.RuleGroup {
	t.Helper()
	data, err := os.ReadFile("../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &rf); err != nil {
		t.Fatal(err)
	}
	return rf.Groups
}

// checkRules: the PrometheusRule has the shipped alerts, with the job
// selector replaced by selector.
func checkRules(t *testing.T, o *objects, selector string) {
	t.Helper()
	if len(o.Rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(o.Rules))
	}
	want := shippedGroups(t)
	for gi := range want {
		for ri := range want[gi].Rules {
			r := &want[gi].Rules[ri]
			r.Expr.StrVal = strings.ReplaceAll(r.Expr.StrVal, `job=~"kms.*"`, selector)
			r.Annotations["description"] = strings.ReplaceAll(r.Annotations["description"], `job=~"kms.*"`, selector)
		}
	}
	if got := o.Rules[0].Spec.Groups; !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want)
		t.Errorf("PrometheusRule %s groups:\n%s\nwant:\n%s", o.Rules[0].Name, g, w)
	}
}
