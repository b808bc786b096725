package collector

import (
	"cmp"
	"slices"
	"sort"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// keySpec is the label set of one kms_keys_by_spec series.
type keySpec struct {
	KeySpec, KeyUsage, Origin, RotationEnabled string
}

type specCount struct {
	spec keySpec
	n    float64
}

type projectCount struct {
	id string
	n  float64
}

// unknown is the label value of an attribute the API left out: the
// documented example of resource_instances has none of them.
const unknown = "unknown"

func keySpecOf(k *kmsapi.Key) keySpec {
	return keySpec{k.KeySpec, k.KeyUsage, k.Origin, k.RotationEnabled}
}

// labelValue makes an attribute a label value: "unknown" when absent,
// invalid UTF-8 replaced.
func labelValue(s string) string {
	if s == "" {
		return unknown
	}
	return validUTF8(s)
}

// countSpecs turns the raw counts into series sorted by their labels;
// values that become the same label (invalid bytes) add up.
func countSpecs(raw map[keySpec]int) []specCount {
	merged := mergeLabels(raw, func(k keySpec) keySpec {
		return keySpec{labelValue(k.KeySpec), labelValue(k.KeyUsage), labelValue(k.Origin), labelValue(k.RotationEnabled)}
	})
	out := make([]specCount, 0, len(merged))
	for k, n := range merged {
		out = append(out, specCount{k, float64(n)})
	}
	slices.SortFunc(out, func(a, b specCount) int {
		x, y := a.spec, b.spec
		return cmp.Or(cmp.Compare(x.KeySpec, y.KeySpec), cmp.Compare(x.KeyUsage, y.KeyUsage),
			cmp.Compare(x.Origin, y.Origin), cmp.Compare(x.RotationEnabled, y.RotationEnabled))
	})
	return out
}

func countProjects(raw map[string]int) []projectCount {
	merged := mergeLabels(raw, labelValue)
	out := make([]projectCount, 0, len(merged))
	for id, n := range merged {
		out = append(out, projectCount{id, float64(n)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
