package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const good = `
credentials:
  prod:
    access_key: AKPROD
    secret_key_file: prod_sk
    security_token_file: prod_token
  monitor:
    iam:
      domain_name: my-account
      user_name: kms-monitor
      password_file: /ABS/monitor_pw
    iam_endpoint: https://iam.example.com
  agency:
    ecs_metadata: true
    metadata_endpoint: http://127.0.0.1:1
targets:
  - name: prod-cn-north-4
    region: cn-north-4
    project_id: p1
    credentials: prod
    kms_endpoint: https://kms.cn-north-4.myhuaweicloud.com
    tag_keys: [env, team]
  - name: mon
    region: ap-southeast-1
    credentials: monitor
`

func writeSecrets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"prod_sk":    "SKPROD\n",
		"prod_token": "TOKENPROD\r\n",
		"monitor_pw": "hunter2\n",
		"empty":      "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadGood(t *testing.T) {
	dir := writeSecrets(t)
	path := filepath.Join(dir, "kms.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(good, "/ABS", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	prod := c.Credentials["prod"]
	if prod.Kind() != KindAKSK || prod.AccessKey != "AKPROD" || prod.SecretKey != "SKPROD" || prod.SecurityToken != "TOKENPROD" {
		t.Errorf("prod credential: %+v", prod)
	}
	mon := c.Credentials["monitor"]
	if mon.Kind() != KindIAM || mon.IAM.Password != "hunter2" || mon.IAMEndpoint != "https://iam.example.com" {
		t.Errorf("monitor credential: %+v", mon)
	}
	if c.Credentials["agency"].Kind() != KindECSMetadata {
		t.Errorf("agency kind %q", c.Credentials["agency"].Kind())
	}
	if len(c.Targets) != 2 || c.Targets[0].TagKeys[1] != "team" || c.Targets[1].ProjectID != "" {
		t.Errorf("targets: %+v", c.Targets)
	}
	if c.Targets[1].Name != "mon" || c.Targets[1].Credentials != "monitor" {
		t.Errorf("second target: %+v", c.Targets[1])
	}
	if got := strings.Join(c.CredentialNames(), ","); got != "agency,monitor,prod" {
		t.Errorf("CredentialNames = %s", got)
	}
}

func TestSingleCredentialIsDefault(t *testing.T) {
	c, err := Parse([]byte(`
credentials:
  only: {access_key: a, secret_key: s}
targets:
  - {name: t, region: cn-north-4}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Targets[0].Credentials != "only" {
		t.Errorf("credentials = %q, want only", c.Targets[0].Credentials)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	c, err := Parse([]byte(`
credentials:
  p: {access_key: AK, secret_key: SUPERSECRET, security_token: TOKENSECRET}
  u: {iam: {domain_name: d, user_name: u, password: PWSECRET}}
targets:
  - {name: t, region: cn-north-4, credentials: p}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	dump := string(out) + string(js)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		dump += fmt.Sprintf(verb, c) + fmt.Sprintf(verb, *c) + fmt.Sprintf(verb, c.Credentials["p"]) +
			fmt.Sprintf(verb, *c.Credentials["p"]) + fmt.Sprintf(verb, c.Credentials["u"]) + fmt.Sprintf(verb, *c.Credentials["u"].IAM)
	}
	for _, s := range []string{"SUPERSECRET", "TOKENSECRET", "PWSECRET"} {
		if strings.Contains(dump, s) {
			t.Errorf("secret %s printed:\n%s", s, dump)
		}
	}
	if !strings.Contains(dump, "<secret>") {
		t.Errorf("expected <secret> in dump:\n%s", dump)
	}
}

func TestErrors(t *testing.T) {
	dir := writeSecrets(t)
	const oneTarget = "\ntargets:\n  - {name: t, region: cn-north-4}\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", ``, "empty config"},
		{"unknown top field", "credentials:\n  a: {access_key: a, secret_key: s}\nextra: 1" + oneTarget, `line 3: top level: unknown key "extra" (valid keys: credentials, targets, discovery)`},
		{"unknown credential field", "credentials:\n  a: {access_key: a, secret_key: s, secret: x}" + oneTarget, `line 2: credentials.a: unknown key "secret" (did you mean "secret_key"?)`},
		{"unknown target field", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: t, region: cn-north-4, projectid: x}", `line 4: targets[0]: unknown key "projectid" (did you mean "project_id"?)`},
		{"no credentials", "credentials: {}" + oneTarget, "credentials: at least one credential is required"},
		{"empty credential", "credentials:\n  a:" + oneTarget, "credentials.a: empty credential"},
		{"no secret", "credentials:\n  a: {iam_endpoint: https://iam}" + oneTarget, "credentials.a: no secret"},
		{"two kinds", "credentials:\n  a: {access_key: a, secret_key: s, ecs_metadata: true}" + oneTarget, "credentials.a: more than one kind of secret: access_key/secret_key and ecs_metadata"},
		{"iam and ecs", "credentials:\n  a: {iam: {domain_name: d, user_name: u, password: p}, ecs_metadata: true}" + oneTarget, "credentials.a: more than one kind of secret: iam and ecs_metadata"},
		{"both sk", "credentials:\n  prod: {access_key: a, secret_key: s, secret_key_file: prod_sk}" + oneTarget, "credentials.prod: both secret_key and secret_key_file set"},
		{"both ak", "credentials:\n  prod: {access_key: a, access_key_file: prod_sk, secret_key: s}" + oneTarget, "credentials.prod: both access_key and access_key_file set"},
		{"both token", "credentials:\n  prod: {access_key: a, secret_key: s, security_token: x, security_token_file: prod_token}" + oneTarget, "credentials.prod: both security_token and security_token_file set"},
		{"missing sk", "credentials:\n  prod: {access_key: a}" + oneTarget, "credentials.prod: missing secret_key (or secret_key_file)"},
		{"missing ak", "credentials:\n  prod: {secret_key: s}" + oneTarget, "credentials.prod: missing access_key (or access_key_file)"},
		{"token only", "credentials:\n  prod: {security_token: s}" + oneTarget, "credentials.prod: missing access_key"},
		{"unreadable sk file", "credentials:\n  prod: {access_key: a, secret_key_file: nope}" + oneTarget, "credentials.prod.secret_key_file: " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty sk file", "credentials:\n  prod: {access_key: a, secret_key_file: empty}" + oneTarget, "credentials.prod.secret_key_file: " + filepath.Join(dir, "empty") + " is empty"},
		{"iam missing domain", "credentials:\n  m: {iam: {user_name: u, password: p}}" + oneTarget, "credentials.m.iam.domain_name: missing"},
		{"iam missing user", "credentials:\n  m: {iam: {domain_name: d, password: p}}" + oneTarget, "credentials.m.iam.user_name: missing"},
		{"iam missing password", "credentials:\n  m: {iam: {domain_name: d, user_name: u}}" + oneTarget, "credentials.m.iam: missing password (or password_file)"},
		{"iam both passwords", "credentials:\n  m: {iam: {domain_name: d, user_name: u, password: p, password_file: monitor_pw}}" + oneTarget, "credentials.m.iam: both password and password_file set"},
		{"iam unreadable password", "credentials:\n  m: {iam: {domain_name: d, user_name: u, password_file: /nonexistent/pw}}" + oneTarget, "credentials.m.iam.password_file: /nonexistent/pw: no such file or directory"},
		{"metadata endpoint without ecs", "credentials:\n  a: {access_key: a, secret_key: s, metadata_endpoint: http://x}" + oneTarget, "credentials.a.metadata_endpoint: only allowed with ecs_metadata: true"},
		{"bad iam endpoint", "credentials:\n  a: {ecs_metadata: true, iam_endpoint: 'ftp://iam.example.com'}" + oneTarget, `credentials.a.iam_endpoint: "ftp://iam.example.com": the scheme must be http or https`},
		{"no targets", "credentials:\n  a: {access_key: a, secret_key: s}", "targets: at least one target is required"},
		{"target no name", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4}\n  - {region: cn-north-4}", "targets[1].name: missing"},
		{"duplicate name", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4}\n  - {name: y, region: cn-north-4}\n  - {name: x, region: cn-east-3}", `targets[2].name: duplicate name "x" (also targets[0])`},
		{"no region", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x}", "targets[0].region: missing"},
		{"bad region", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: a/b}", `targets[0].region: "a/b" is not a region ID such as cn-north-4`},
		{"duplicate project", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4, project_id: p}\n  - {name: y, region: cn-north-4, project_id: p}", "targets[1].project_id: same region and project as targets[0]"},
		{"unknown credential", "credentials:\n  prod: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4}\n  - {name: y, region: cn-north-4, credentials: prod}\n  - {name: z, region: cn-north-4, credentials: prd}", `targets[2].credentials: unknown credential "prd"`},
		{"ambiguous credential", "credentials:\n  a: {access_key: a, secret_key: s}\n  b: {ecs_metadata: true}" + oneTarget, "targets[0].credentials: missing (required when more than one credential exists)"},
		{"bad kms endpoint", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4, kms_endpoint: 'https://kms example.com'}", `targets[0].kms_endpoint: "https://kms example.com" is not a URL`},
		{"empty tag key", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4, tag_keys: [env, '']}", "targets[0].tag_keys[1]: empty tag key"},
		{"duplicate credential name", "credentials:\n  a: {access_key: a, secret_key: s}\n  a: {ecs_metadata: true}" + oneTarget, `mapping key "a" already defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), dir)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n  does not contain %q", err, tc.want)
			}
			for _, s := range []string{"SKPROD", "TOKENPROD", "hunter2"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks secret: %q", err)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.yml")); err == nil {
		t.Fatal("no error for a missing file")
	}
}
