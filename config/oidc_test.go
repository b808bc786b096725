package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

func oidcConfig(tokenFile string) string {
	return `
credentials:
  workload:
    oidc:
      idp_id: my-cce-idp
      id_token_file: ` + tokenFile + `
targets:
  - name: t
    region: cn-north-4
`
}

func TestOIDCCredential(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oidc-token"), []byte("eyJ.header.sig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(oidcConfig("oidc-token")), dir)
	if err != nil {
		t.Fatal(err)
	}
	cr := c.Credentials["workload"]
	if cr.Kind() != KindOIDC || cr.OIDC.IdpID != "my-cce-idp" || cr.OIDC.IDTokenFile != filepath.Join(dir, "oidc-token") {
		t.Fatalf("%+v", cr.OIDC)
	}
	if tok, err := cr.OIDC.idToken(); err != nil || tok != "eyJ.header.sig" {
		t.Fatalf("idToken = %q, %v", tok, err)
	}

	for name, tc := range map[string]struct{ config, want string }{
		"no idp_id":      {strings.Replace(oidcConfig("oidc-token"), "idp_id: my-cce-idp", "", 1), "credentials.workload.oidc.idp_id: missing"},
		"no token file":  {strings.Replace(oidcConfig("x"), "id_token_file: x", "", 1), "credentials.workload.oidc.id_token_file: missing"},
		"missing file":   {oidcConfig("not-there"), "credentials.workload.oidc.id_token_file: " + filepath.Join(dir, "not-there") + ": no such file or directory"},
		"directory":      {oidcConfig(dir), "credentials.workload.oidc.id_token_file: " + dir + " is a directory"},
		"and an AK":      {strings.Replace(oidcConfig("oidc-token"), "    oidc:", "    access_key: AK\n    secret_key: SK\n    oidc:", 1), "more than one kind of secret: access_key/secret_key and oidc"},
		"unknown key":    {strings.Replace(oidcConfig("oidc-token"), "idp_id:", "idp:", 1), `credentials.workload.oidc: unknown key "idp"`},
		"no kind at all": {"credentials:\n  a:\n    iam_endpoint: https://iam.example.com\ntargets: [{name: t, region: cn-north-4}]\n", "ecs_metadata or oidc"},
	} {
		_, err := Parse([]byte(tc.config), dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

// A credential built from the config reads the token file at every
// exchange: a rotated file is used, a file gone is an error naming the
// field, and the token is in no error.
func TestOIDCCredentialReadsTheFileAtEveryExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, KeysPerProject: 2})
		srv := kmsfake.New(sc)
		t.Cleanup(srv.Close)
		p := sc.Projects[0]
		dir := t.TempDir()
		file := filepath.Join(dir, "oidc-token")
		write := func() string {
			tok := srv.IDToken(kmsfake.ExampleIdentityProvider.ID, "system:serviceaccount:monitoring:kms-exporter", time.Hour)
			if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
				t.Fatal(err)
			}
			return tok
		}
		first := write()
		c, err := Parse([]byte(strings.Replace(oidcConfig(file), "my-cce-idp", kmsfake.ExampleIdentityProvider.ID, 1)), dir)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := BuildCredentials(c, nil, BuildOptions{IAMEndpoint: srv.URL(), HTTPClient: srv.InMemoryClient(), RequestsPerSecond: 100})
		if err != nil {
			t.Fatal(err)
		}
		client, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Endpoint: srv.URL(), Credential: creds.Get("workload")})
		if err != nil {
			t.Fatal(err)
		}
		quotas := func() error {
			_, err := client.Quotas(context.Background())
			return err
		}
		if err := quotas(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour) // the bubble's clock: the first ID token expires
		second := write()
		srv.ExpireTokens()
		if err := quotas(); err != nil {
			t.Fatalf("with the rotated file: %v", err)
		}
		if n := srv.Requests(kmsapi.EndpointIAMToken); n != 2 {
			t.Errorf("%d exchanges, want 2", n)
		}

		os.Remove(file)
		srv.ExpireTokens()
		err = quotas()
		if err == nil || !strings.Contains(err.Error(), "credentials.workload.oidc.id_token_file: "+file+": no such file or directory") {
			t.Fatalf("token file gone: %v", err)
		}
		for _, tok := range []string{first, second} {
			if strings.Contains(err.Error(), tok) {
				t.Error("the ID token in an error")
			}
		}
	})
}
