package kubecheck

import (
	"strings"
	"testing"
)

// TestKustomizeBase: the base holds no Secret (applying it never replaces
// real credentials) and names its image with an explicit registry.
func TestKustomizeBase(t *testing.T) {
	o, w := checkedWorkload(t, buildKustomization(t, "../kubernetes/base"), "")
	if len(o.Secrets) != 0 {
		t.Errorf("the base has %d Secrets", len(o.Secrets))
	}
	w.checkFiles(t, w.config(t), "kms-exporter-credentials")
	if w.container.Image != "registry.example.com/kms_exporter:v0.1.0" {
		t.Errorf("image %s, want registry.example.com/kms_exporter:v0.1.0", w.container.Image)
	}
	// configMapGenerator: the name carries a hash of the content.
	if cm := w.volumes["config"].ConfigMap; cm == nil || !strings.HasPrefix(cm.Name, "kms-exporter-config-") {
		t.Errorf("config volume %+v, want the generated kms-exporter-config-<hash>", w.volumes["config"])
	}
	checkRules(t, o, `job=~"kms.*"`)
}

// TestKustomizeExampleOverlay: the example overlay generates the Secret;
// the Deployment follows its hashed name.
func TestKustomizeExampleOverlay(t *testing.T) {
	o := mustDecode(t, buildKustomization(t, "../kubernetes/overlays/example"))
	w := newWorkload(t, o)
	if len(o.Secrets) != 1 || !strings.HasPrefix(o.Secrets[0].Name, "kms-exporter-credentials-") {
		t.Fatalf("Secrets %v, want the generated kms-exporter-credentials-<hash>", o.Secrets)
	}
	w.checkFiles(t, w.config(t), o.Secrets[0].Name)
	for _, obj := range o.all {
		if obj.GetNamespace() != "monitoring" {
			t.Errorf("%s in namespace %q, want monitoring", obj.GetName(), obj.GetNamespace())
		}
	}
}
