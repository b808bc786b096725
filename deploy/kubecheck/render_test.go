package kubecheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/kms-exporter"

// renderChart renders the chart as `helm template kms CHART -n monitoring
// [-f valuesFile]` does.
func renderChart(t *testing.T, valuesFile string) []byte {
	t.Helper()
	chart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := chartutil.Values{}
	if valuesFile != "" {
		if vals, err = chartutil.ReadValuesFile(valuesFile); err != nil {
			t.Fatal(err)
		}
	}
	opts := chartutil.ReleaseOptions{Name: "kms", Namespace: "monitoring", Revision: 1, IsInstall: true}
	values, err := chartutil.ToRenderValues(chart, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(chart, values)
	if err != nil {
		t.Fatalf("render %s: %v", valuesFile, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out bytes.Buffer
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.TrimSpace(files[name]) == "" {
			continue
		}
		out.WriteString("---\n# Source: " + name + "\n" + files[name] + "\n")
	}
	return out.Bytes()
}

// buildKustomization renders dir as `kustomize build dir` does.
func buildKustomization(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// objects are the rendered objects by kind, each decoded strictly.
type objects struct {
	Deployments     []*appsv1.Deployment
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	ServiceAccounts []*corev1.ServiceAccount
	NetworkPolicies []*networkingv1.NetworkPolicy
	PDBs            []*policyv1.PodDisruptionBudget
	ServiceMonitors []*monitoringv1.ServiceMonitor
	Rules           []*monitoringv1.PrometheusRule
	all             []metav1.Object
}

// decode splits a multi-document stream and decodes each document into its
// API type: an unknown field, a value of the wrong type, or an apiVersion
// and kind the chart and the kustomize base do not ship is an error.
func decode(stream []byte) (*objects, error) {
	o := &objects{}
	var errs []error
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, doc)
		}
		if tm.Kind == "" {
			if len(bytes.TrimSpace(stripComments(doc))) > 0 {
				errs = append(errs, fmt.Errorf("document without kind:\n%s", doc))
			}
			continue
		}
		var obj metav1.Object
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			obj = add(&o.Deployments)
		case "v1 Service":
			obj = add(&o.Services)
		case "v1 ConfigMap":
			obj = add(&o.ConfigMaps)
		case "v1 Secret":
			obj = add(&o.Secrets)
		case "v1 ServiceAccount":
			obj = add(&o.ServiceAccounts)
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = add(&o.NetworkPolicies)
		case "policy/v1 PodDisruptionBudget":
			obj = add(&o.PDBs)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = add(&o.ServiceMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			obj = add(&o.Rules)
		default:
			errs = append(errs, fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind))
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w\n%s", tm.Kind, err, doc))
		}
		if obj.GetName() == "" {
			errs = append(errs, fmt.Errorf("%s without a name", tm.Kind))
		}
		o.all = append(o.all, obj)
	}
	return o, errors.Join(errs...)
}

func mustDecode(t *testing.T, stream []byte) *objects {
	t.Helper()
	o, err := decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// add appends a new T to *list and returns it.
func add[T any, PT interface {
	*T
	metav1.Object
}](list *[]PT) metav1.Object {
	v := PT(new(T))
	*list = append(*list, v)
	return v
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func TestDecodeIsStrict(t *testing.T) {
	// decode guards every other test here: make sure it can fail.
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"wrong type":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: one}\n",
		"unknown kind":  "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"old API":       "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n",
		"CRD field":     "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: [{port: http, intervall: 1m}]}\n",
		"no name":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n",
	} {
		if _, err := decode([]byte(doc)); err == nil {
			t.Errorf("%s: accepted\n%s", name, doc)
		}
	}
	if _, err := decode([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")); err != nil {
		t.Errorf("a valid ConfigMap: %v", err)
	}
}

func valuesPath(name string) string { return filepath.Join(chartDir, "ci", name) }
