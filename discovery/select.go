// Package discovery finds targets by listing the IAM projects of a
// credential: every project named after a KMS region ("cn-north-4"), or a
// sub-project of one ("cn-north-4_payments"), is a target named
// CREDENTIAL/PROJECT_NAME. A Discoverer refreshes the list in the
// background and keeps the last one when a refresh fails.
package discovery

import (
	"regexp"
	"slices"
	"sort"

	"github.com/kms-exporter/kms_exporter/internal/regions"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Rule is what one discovery entry keeps of the projects it lists.
type Rule struct {
	Credential string
	// Regions keeps only projects of these regions; empty keeps every KMS
	// region. A region named here counts as a KMS region even when the
	// exporter's region table does not know it yet.
	Regions []string
	// Include keeps only project names it matches; Exclude drops the names
	// it matches. Both are searched, not anchored; nil matches nothing.
	Include, Exclude *regexp.Regexp
	KMSEndpoint      string   // "" for the public endpoint of each region
	TagKeys          []string // nil for the exporter's default
}

// Target is a project the rule keeps.
type Target struct {
	Name        string // CREDENTIAL/PROJECT_NAME
	Credential  string
	Region      string
	ProjectID   string
	ProjectName string
	KMSEndpoint string
	TagKeys     []string
}

// Static is a configured target, which wins over a discovered one for the
// same project.
type Static struct {
	Name       string
	Credential string
	Region     string
	ProjectID  string // "": the project named Region, looked up with Credential
}

// Select returns the targets r keeps of projects, sorted by name: enabled
// projects of a KMS region (or a sub-project of one), that pass the
// filters, and that no static target covers.
func Select(r Rule, projects []kmsapi.Project, static []Static) []Target {
	covered := indexStatic(static)
	var out []Target
	for _, p := range projects {
		region := regions.OfProject(p.Name)
		if p.ID == "" || !p.Enabled || !r.keeps(p.Name, region) {
			continue
		}
		t := Target{
			Name:        r.Credential + "/" + p.Name,
			Credential:  r.Credential,
			Region:      region,
			ProjectID:   p.ID,
			ProjectName: p.Name,
			KMSEndpoint: r.KMSEndpoint,
			TagKeys:     r.TagKeys,
		}
		if !covered.covers(t) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	// IAM lists a project once; a listing that repeats one must not make
	// two targets of the same name.
	return slices.CompactFunc(out, func(a, b Target) bool { return a.Name == b.Name })
}

// staticIndex tells which discovered targets a static target covers: the
// same name, the same region and project ID, or, for a static target
// without a project ID, the same credential and a project named its region.
type staticIndex struct {
	names       map[string]bool
	ids, byName map[[2]string]bool
}

func indexStatic(static []Static) staticIndex {
	x := staticIndex{names: map[string]bool{}, ids: map[[2]string]bool{}, byName: map[[2]string]bool{}}
	for _, s := range static {
		x.names[s.Name] = true
		if s.ProjectID != "" {
			x.ids[[2]string{s.Region, s.ProjectID}] = true
		} else {
			x.byName[[2]string{s.Credential, s.Region}] = true
		}
	}
	return x
}

func (x staticIndex) covers(t Target) bool {
	return x.names[t.Name] || x.ids[[2]string{t.Region, t.ProjectID}] || x.byName[[2]string{t.Credential, t.ProjectName}]
}

func (r Rule) keeps(name, region string) bool {
	if len(r.Regions) > 0 {
		if !slices.Contains(r.Regions, region) {
			return false
		}
	} else if !regions.HasKMS(region) {
		return false
	}
	if r.Include != nil && !r.Include.MatchString(name) {
		return false
	}
	return r.Exclude == nil || !r.Exclude.MatchString(name)
}
