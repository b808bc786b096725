package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Without a config file, OIDC workload identity comes from the SDK's
// variables, as in a CCE pod: the exporter exchanges the projected token.
func TestSingleTargetOIDC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n memnet.Network
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 2, Projects: 1, KeysPerProject: 5, AccessKey: testAK})
		fake := serveFake(t, &n, "kms.test", sc, nil)
		u := fake.URL()
		tokenFile := filepath.Join(t.TempDir(), "oidc-token")
		tok := fake.IDToken(kmsfake.ExampleIdentityProvider.ID, "system:serviceaccount:monitoring:kms-exporter", time.Hour)
		if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"HUAWEICLOUD_SDK_IDP_ID": kmsfake.ExampleIdentityProvider.ID, "HUAWEICLOUD_SDK_ID_TOKEN_FILE": tokenFile}
		getenv := func(k string) string { return env[k] }
		region := sc.Projects[0].Region
		e := startSingleTarget(t, &n, getenv, sc.Projects[0], u)
		// The kubelet stopped rotating: the ID token expires, IAM refuses
		// it, the credential pauses.
		time.Sleep(2 * time.Hour)
		fake.ExpireTokens()
		_, body := e.get(t, "/probe?target="+region)
		if v, _ := value(parse(t, body), "kms_up", map[string]string{"region": region, "project_id": sc.Projects[0].ID}); v != 0 {
			t.Errorf("kms_up with an expired ID token = %v, want 0", v)
		}
		out := e.logs.String() + body
		for _, path := range []string{"/probe?debug=true&target=" + region, "/", "/metrics"} {
			_, b := e.get(t, path)
			out += b
		}
		if !strings.Contains(out, "paused") {
			t.Error("no output tells of the pause; the test did not exercise what it should")
		}
		if strings.Contains(out, tok) || strings.Contains(out, tok[strings.LastIndex(tok, ".")+1:]) || strings.Contains(out, "MIIFake") {
			t.Error("an ID token or IAM token in the logs, a debug log, the landing page or the metrics")
		}
	})
}

// The variables are read as the SDKs do, and errors name them.
func TestEnvCredential(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte("eyJ.x.y"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &settings{region: "cn-north-4", projectID: "p"}
	for _, tc := range []struct {
		env  map[string]string
		kind string // the kind built, or the error
	}{
		{map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"}, "aksk"},
		{map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK", "HUAWEICLOUD_SDK_IDP_ID": "idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": tokenFile}, "aksk"},
		{map[string]string{"HUAWEICLOUD_SDK_IDP_ID": "idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": tokenFile}, "oidc"},
		{map[string]string{"HUAWEICLOUD_SDK_IDP_ID": "idp"}, "HUAWEICLOUD_SDK_ID_TOKEN_FILE: missing"},
		{map[string]string{"HUAWEICLOUD_SDK_ID_TOKEN_FILE": tokenFile}, "HUAWEICLOUD_SDK_IDP_ID: missing"},
		{map[string]string{"HUAWEICLOUD_SDK_IDP_ID": "idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": filepath.Join(dir, "nope")},
			"HUAWEICLOUD_SDK_ID_TOKEN_FILE: " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_IDP_ID": "idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": tokenFile}, "needs HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"},
		{map[string]string{}, "or HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE"},
	} {
		c, err := singleTargetConfig(s, func(k string) string { return tc.env[k] })
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = string(c.Credentials["env"].Kind())
		}
		if !strings.Contains(got, tc.kind) {
			t.Errorf("%v: got %q, want %q", tc.env, got, tc.kind)
		}
	}
}
