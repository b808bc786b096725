package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Endpoints given without a scheme get https://, as in the official SDK:
// HUAWEICLOUD_SDK_IAM_ENDPOINT=iam.example.com works, where it once made
// every scrape fail with `unsupported protocol scheme ""`.
func TestEndpointFlagsWithoutScheme(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 1, KeysPerProject: 3})
	fake := kmsfake.StartTLS(sc)
	t.Cleanup(fake.Close)
	host := strings.TrimPrefix(fake.URL(), "https://")
	t.Setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", host)
	s, _, err := parseFlags([]string{"--kms.region=" + sc.Projects[0].Region, "--kms.endpoint=" + host})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HUAWEICLOUD_SDK_AK": sc.AccessKeys[0].AK, "HUAWEICLOUD_SDK_SK": sc.AccessKeys[0].SK}
	logger, _ := newLogger(&bytes.Buffer{}, "info", "logfmt")
	a, err := newApp(s, logger, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	a.httpClient = fake.Client() // trusts the fake's certificate
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `kms_up{project_id="`+sc.Projects[0].ID+`",region="`+sc.Projects[0].Region+`"} 1`) {
		t.Errorf("kms_up is not 1:\n%s", grepLines(rec.Body.String(), "kms_up", "kms_api_requests_total"))
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// What is not a URL stops the exporter at start, naming the flag.
func TestEndpointFlagsNotURLs(t *testing.T) {
	// logfmt escapes the quotes around the value.
	for _, tc := range []struct{ flag, want string }{
		{"--kms.endpoint=ftp://kms.example.com", `err="--kms.endpoint: \"ftp://kms.example.com\": the scheme must be http or https"`},
		{"--iam.endpoint=https://iam example.com", `err="--iam.endpoint (HUAWEICLOUD_SDK_IAM_ENDPOINT): \"https://iam example.com\" is not a URL"`},
	} {
		var out bytes.Buffer
		env := map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"}
		code := run([]string{"--kms.region=cn-north-4", tc.flag, "--web.listen-address=127.0.0.1:0"}, &out, func(k string) string { return env[k] })
		if code != 1 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, want 1 and a log with %q:\n%s", tc.flag, code, tc.want, out.String())
		}
	}
}
