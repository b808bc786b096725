package discovery

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

func projects(names ...string) []kmsapi.Project {
	var ps []kmsapi.Project
	for _, n := range names {
		ps = append(ps, kmsapi.Project{ID: "id-" + n, Name: n, Enabled: true})
	}
	return ps
}

func names(ts []Target) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Name)
	}
	return strings.Join(s, " ")
}

func TestSelect(t *testing.T) {
	account := projects("cn-north-4", "MOS", "cn-north-4_payments", "ap-southeast-1", "cn-north-4_sandbox",
		"xx-nowhere-1", "cn-north-4x", "ap-southeast-1_shop_eu", "eu-west-101", "_cn-north-4", "cn-east-3")
	for _, c := range []struct {
		name   string
		rule   Rule
		static []Static
		want   string
	}{
		{name: "every KMS region and sub-project, sorted; MOS and unknown regions skipped",
			want: "prod/ap-southeast-1 prod/ap-southeast-1_shop_eu prod/cn-east-3 prod/cn-north-4 prod/cn-north-4_payments prod/cn-north-4_sandbox prod/eu-west-101"},
		{name: "regions", rule: Rule{Regions: []string{"cn-north-4", "eu-west-101"}},
			want: "prod/cn-north-4 prod/cn-north-4_payments prod/cn-north-4_sandbox prod/eu-west-101"},
		{name: "a region named in regions counts as a KMS region", rule: Rule{Regions: []string{"xx-nowhere-1"}},
			want: "prod/xx-nowhere-1"},
		{name: "include", rule: Rule{Include: regexp.MustCompile("^cn-")},
			want: "prod/cn-east-3 prod/cn-north-4 prod/cn-north-4_payments prod/cn-north-4_sandbox"},
		{name: "exclude", rule: Rule{Exclude: regexp.MustCompile("_sandbox$|_eu")},
			want: "prod/ap-southeast-1 prod/cn-east-3 prod/cn-north-4 prod/cn-north-4_payments prod/eu-west-101"},
		{name: "every filter", rule: Rule{Regions: []string{"cn-north-4", "ap-southeast-1"}, Include: regexp.MustCompile("_"), Exclude: regexp.MustCompile("sandbox")},
			want: "prod/ap-southeast-1_shop_eu prod/cn-north-4_payments"},
		{name: "static target with the same region and project ID wins",
			static: []Static{{Name: "mine", Credential: "other", Region: "cn-north-4", ProjectID: "id-cn-north-4_payments"}},
			rule:   Rule{Include: regexp.MustCompile("^cn-north-4")},
			want:   "prod/cn-north-4 prod/cn-north-4_sandbox"},
		{name: "static target without project ID covers the project named after its region, same credential",
			static: []Static{{Name: "mine", Credential: "prod", Region: "cn-north-4"}},
			rule:   Rule{Include: regexp.MustCompile("^cn-north-4")},
			want:   "prod/cn-north-4_payments prod/cn-north-4_sandbox"},
		{name: "but not another credential's (another account may have a project of that name)",
			static: []Static{{Name: "mine", Credential: "test", Region: "cn-north-4"}},
			rule:   Rule{Include: regexp.MustCompile("^cn-north-4$")},
			want:   "prod/cn-north-4"},
		{name: "static target of the same name wins",
			static: []Static{{Name: "prod/cn-east-3", Credential: "prod", Region: "cn-east-3", ProjectID: "elsewhere"}},
			rule:   Rule{Include: regexp.MustCompile("^cn-east")},
			want:   ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.rule.Credential = "prod"
			if got := names(Select(c.rule, account, c.static)); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestSelectTarget(t *testing.T) {
	ps := projects("cn-north-4_payments_eu")
	ps = append(ps,
		kmsapi.Project{ID: "x", Name: "cn-east-3", Enabled: false},                                     // disabled
		kmsapi.Project{Name: "cn-south-1", Enabled: true},                                              // no ID
		kmsapi.Project{ID: "id-cn-north-4_payments_eu", Name: "cn-north-4_payments_eu", Enabled: true}, // listed twice
	)
	got := Select(Rule{Credential: "c", KMSEndpoint: "https://kms.internal", TagKeys: []string{"env"}}, ps, nil)
	if len(got) != 1 {
		t.Fatalf("targets %s, want one", names(got))
	}
	want := Target{Name: "c/cn-north-4_payments_eu", Credential: "c", Region: "cn-north-4", ProjectID: "id-cn-north-4_payments_eu",
		ProjectName: "cn-north-4_payments_eu", KMSEndpoint: "https://kms.internal", TagKeys: []string{"env"}}
	if !sameTarget(got[0], want) || got[0].ProjectName != want.ProjectName || got[0].Credential != want.Credential {
		t.Errorf("target %+v\nwant   %+v", got[0], want)
	}
}

func TestDiff(t *testing.T) {
	a := Select(Rule{Credential: "c"}, projects("cn-north-4", "cn-east-3", "cn-south-1"), nil)
	b := Select(Rule{Credential: "c"}, projects("cn-east-3", "cn-north-9"), nil)
	if added, removed := diff(a, b); added != 1 || removed != 2 {
		t.Errorf("diff: %d added, %d removed; want 1 and 2", added, removed)
	}
	if added, removed := diff(nil, a); added != 3 || removed != 0 {
		t.Errorf("diff from nothing: %d added, %d removed", added, removed)
	}
}
