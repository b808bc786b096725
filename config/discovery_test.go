package config

import (
	"strings"
	"testing"
	"time"
)

func TestDiscoveryParse(t *testing.T) {
	c, err := Parse([]byte(`
credentials:
  prod: {access_key: a, secret_key: s}
discovery:
  - regions: [cn-north-4, ap-southeast-1]
    include: "^cn-"
    exclude: "_sandbox$"
    refresh_interval: 10m
    kms_endpoint: https://kms.example.internal
    tag_keys: [env]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 0 || len(c.Discovery) != 1 {
		t.Fatalf("targets %d, discovery %d", len(c.Targets), len(c.Discovery))
	}
	d := c.Discovery[0]
	if d.Credentials != "prod" || d.Interval != 10*time.Minute || d.KMSEndpoint != "https://kms.example.internal" ||
		strings.Join(d.Regions, ",") != "cn-north-4,ap-southeast-1" || strings.Join(d.TagKeys, ",") != "env" {
		t.Errorf("entry: %+v", d)
	}
	if !d.IncludeRE.MatchString("cn-north-4_payments") || d.IncludeRE.MatchString("ap-southeast-1") ||
		!d.ExcludeRE.MatchString("cn-north-4_sandbox") || d.ExcludeRE.MatchString("cn-north-4_sandbox2") {
		t.Errorf("include %v, exclude %v: not searched as unanchored regexps", d.IncludeRE, d.ExcludeRE)
	}

	c, err = Parse([]byte("credentials:\n  a: {access_key: a, secret_key: s}\ndiscovery:\n  - {}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Discovery[0]; d.Interval != DefaultRefreshInterval || d.IncludeRE != nil || d.ExcludeRE != nil || d.Credentials != "a" {
		t.Errorf("defaults: %+v", d)
	}
}

func TestDiscoveryErrors(t *testing.T) {
	const two = "credentials:\n  a: {access_key: a, secret_key: s}\n  b: {ecs_metadata: true}\n"
	const one = "credentials:\n  a: {access_key: a, secret_key: s}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"ambiguous credential", two + "discovery:\n  - {}", "discovery[0].credentials: missing (required when more than one credential exists)"},
		{"unknown credential", two + "discovery:\n  - {credentials: a}\n  - {credentials: c}", `discovery[1].credentials: unknown credential "c"`},
		{"same credential twice", two + "discovery:\n  - {credentials: b}\n  - {credentials: a}\n  - {credentials: b}", `discovery[2].credentials: credential "b" already has a discovery entry (discovery[0])`},
		{"bad include", one + "discovery:\n  - {include: '(cn'}", "discovery[0].include: invalid regexp"},
		{"bad exclude", one + "discovery:\n  - {exclude: '[a'}", "discovery[0].exclude: invalid regexp"},
		{"empty region", one + "discovery:\n  - {regions: [cn-north-4, '']}", `discovery[0].regions[1]: missing`},
		{"sub-project as region", one + "discovery:\n  - {regions: [cn-north-4_payments]}", `discovery[0].regions[0]: "cn-north-4_payments" is not a region ID such as cn-north-4`},
		{"negative interval", one + "discovery:\n  - {refresh_interval: -1m}", "discovery[0].refresh_interval"},
		{"bad interval", one + "discovery:\n  - {refresh_interval: often}", `discovery[0].refresh_interval: "often" is not a positive duration`},
		{"zero interval", one + "discovery:\n  - {refresh_interval: 0s}", "discovery[0].refresh_interval"},
		{"bad endpoint", one + "discovery:\n  - {kms_endpoint: 'kms.example.com?x=1'}", `discovery[0].kms_endpoint: the endpoint must not have a query or fragment`},
		{"empty tag key", one + "discovery:\n  - {tag_keys: ['']}", "discovery[0].tag_keys[0]: empty tag key"},
		{"unknown field", one + "discovery:\n  - {region: cn-north-4}", `line 4: discovery[0]: unknown key "region" (did you mean "regions"?)`},
		{"neither", one, "targets: at least one target is required (or a discovery entry)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
