package config

import (
	"strings"
	"testing"
)

func TestNormalizeEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"iam.example.com":                  "https://iam.example.com",
		"iam.example.com:8443/":            "https://iam.example.com:8443",
		"https://kms.example.com/":         "https://kms.example.com",
		"http://127.0.0.1:8080":            "http://127.0.0.1:8080",
		"http://[::1]:8080":                "http://[::1]:8080",
		"https://gw.example.com/kms/":      "https://gw.example.com/kms",
		"HTTPS://KMS.cn-north-4.example":   "https://KMS.cn-north-4.example",
		"http://169.254.169.254":           "http://169.254.169.254",
		"kms.eu-west-101.myhuaweicloud.eu": "https://kms.eu-west-101.myhuaweicloud.eu",
	} {
		got, err := NormalizeEndpoint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"ftp://kms.example.com":                   `"ftp://kms.example.com": the scheme must be http or https`,
		"https://":                                `"https://" has no valid host name`,
		"https://kms example.com":                 `"https://kms example.com" is not a URL`,
		"kms.example.com/a b?":                    `the endpoint must not have a query or fragment`,
		"https://kms.example.com#x":               `the endpoint must not have a query or fragment`,
		"https://iam.example.com/?token=s3cr3t":   `the endpoint must not have a query or fragment`,
		"https://iam.example.com:99999/?t=s3cr3t": `the endpoint has an invalid port`,
		"https://kms.example.com:0":               `"https://kms.example.com:0" has an invalid port`,
		"https://kms.example.com:99999":           `"https://kms.example.com:99999" has an invalid port`,
		"https://user:hunter2@kms.example.com":    "the endpoint must not hold a user name or password",
		"https://kms.exa%mple.com":                `"https://kms.exa%mple.com" is not a URL`,
		"\x00":                                    `"\x00" is not a URL`,
		"https://" + strings.Repeat("a", 1100):    "longer than 1024 bytes",
	} {
		got, err := NormalizeEndpoint(in)
		if err == nil || err.Error() != want {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v; want error %s", in, got, err, want)
		}
	}
}

// Endpoints in the config get the scheme they lack.
func TestEndpointsWithoutScheme(t *testing.T) {
	c, err := Parse([]byte(`
credentials:
  a: {access_key: a, secret_key: s, iam_endpoint: iam.example.com}
  m: {ecs_metadata: true, metadata_endpoint: 'metadata.example.com/'}
targets:
  - {name: t, region: cn-north-4, credentials: a, kms_endpoint: kms.example.com}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Credentials["a"].IAMEndpoint; got != "https://iam.example.com" {
		t.Errorf("iam_endpoint %q", got)
	}
	if got := c.Credentials["m"].MetadataEndpoint; got != "https://metadata.example.com" {
		t.Errorf("metadata_endpoint %q", got)
	}
	if got := c.Targets[0].KMSEndpoint; got != "https://kms.example.com" {
		t.Errorf("kms_endpoint %q", got)
	}
}
