package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Values far beyond any real one are refused with the field named and the
// value never repeated: a 10 MB region, a 5 MB or binary secret.
func TestValueBounds(t *testing.T) {
	dir := t.TempDir()
	longSK := filepath.Join(dir, "long_sk")
	if err := os.WriteFile(longSK, []byte(strings.Repeat("k", 2000)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	binarySK := filepath.Join(dir, "binary_sk")
	if err := os.WriteFile(binarySK, []byte("SK\x00\x01\xff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const target = "\ntargets:\n  - {name: t, region: cn-north-4}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"10 MB region", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: t, region: " + strings.Repeat("r", 10<<20) + "}\n",
			"targets[0].region: longer than 256 bytes"},
		{"5 MB secret", "credentials:\n  prod: {access_key: a, secret_key: " + strings.Repeat("S", 5<<20) + "}" + target,
			"credentials.prod.secret_key: longer than 1024 bytes"},
		{"binary secret", "credentials:\n  prod: {access_key: a, secret_key: \"SK\\0\\x01\"}" + target,
			"credentials.prod.secret_key: holds control characters or invalid UTF-8"},
		{"long secret file", "credentials:\n  prod: {access_key: a, secret_key_file: long_sk}" + target,
			"credentials.prod.secret_key_file: " + longSK + ": longer than 1024 bytes"},
		{"binary secret file", "credentials:\n  prod: {access_key: a, secret_key_file: binary_sk}" + target,
			"credentials.prod.secret_key_file: " + binarySK + ": holds control characters or invalid UTF-8"},
		{"long token", "credentials:\n  prod: {access_key: a, secret_key: s, security_token: " + strings.Repeat("T", 17<<10) + "}" + target,
			"credentials.prod.security_token: longer than 16384 bytes"},
		{"long credential name", "credentials:\n  " + strings.Repeat("n", 300) + ": {access_key: a, secret_key: s}" + target,
			"credentials (a name): longer than 256 bytes"},
		{"long target name", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: " + strings.Repeat("n", 300) + ", region: cn-north-4}\n",
			"targets[0].name: longer than 256 bytes"},
		{"long tag key", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: t, region: cn-north-4, tag_keys: [env, " + strings.Repeat("k", 300) + "]}\n",
			"targets[0].tag_keys[1]: longer than 256 bytes"},
		{"control character in a name", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: \"t\\e[31m\", region: cn-north-4}\n",
			"targets[0].name: holds control characters or invalid UTF-8"},
		{"long domain", "credentials:\n  m: {iam: {domain_name: " + strings.Repeat("d", 300) + ", user_name: u, password: p}}" + target,
			"credentials.m.iam.domain_name: longer than 256 bytes"},
		{"long discovery region", "credentials:\n  a: {access_key: a, secret_key: s}\ndiscovery:\n  - {regions: [" + strings.Repeat("r", 300) + "]}\n",
			"discovery[0].regions[0]: longer than 256 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), dir)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %.300v\n  want %s", err, tc.want)
			}
		})
	}
}

func TestRegionShape(t *testing.T) {
	// One region of each shape in the SDK's tables (kmsapi's table test
	// checks them all), and eu-west-0, in the IAM table only.
	for _, r := range []string{"cn-north-4", "cn-north-12", "eu-west-101", "my-kualalumpur-1", "ae-ad-1", "eu-west-0"} {
		if err := CheckRegion(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	for r, want := range map[string]string{
		"":                                    "missing",
		"CN-NORTH-4":                          `"CN-NORTH-4" is not a region ID such as cn-north-4`,
		"cn-north":                            `"cn-north" is not a region ID such as cn-north-4`,
		"cn_north_4":                          `"cn_north_4" is not a region ID such as cn-north-4`,
		"cn-north-4_payments":                 `"cn-north-4_payments" is not a region ID such as cn-north-4`,
		"a/b":                                 `"a/b" is not a region ID such as cn-north-4`,
		"cn-north-4\n":                        "not a region ID such as cn-north-4",
		"x" + strings.Repeat("-a", 40) + "-1": "not a region ID such as cn-north-4",
	} {
		if err := CheckRegion(r); err == nil || err.Error() != want {
			t.Errorf("CheckRegion(%q) = %v, want %s", r, err, want)
		}
	}
}

// A region of the right shape that the exporter does not know is allowed
// (Huawei Cloud opens regions) but warned about, unless its endpoint is set.
func TestUnknownRegionWarning(t *testing.T) {
	c, err := Parse([]byte(`
credentials:
  a: {access_key: a, secret_key: s}
targets:
  - {name: known, region: eu-west-101}
  - {name: new, region: xx-nowhere-1}
  - {name: own-endpoint, region: xx-nowhere-2, kms_endpoint: kms.example.com}
discovery:
  - {regions: [cn-north-4, xx-nowhere-3]}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Warnings(), "\n")
	want := `targets[1].region: region "xx-nowhere-1" is not one this exporter knows; its KMS endpoint is taken to be https://kms.xx-nowhere-1.myhuaweicloud.com` + "\n" +
		`discovery[0].regions[1]: region "xx-nowhere-3" is not one this exporter knows; its KMS endpoint is taken to be https://kms.xx-nowhere-3.myhuaweicloud.com`
	if got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
}
