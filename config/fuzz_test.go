package config

import (
	"fmt"
	"strings"
	"testing"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// TestParseErrorsHideSecrets writes a secret where YAML reads something
// else, the mistakes a person makes by hand, and checks no error quotes it.
func TestParseErrorsHideSecrets(t *testing.T) {
	const (
		long  = "Lk8sQ2vX9mZp4rT7wY1c"
		short = "Pw9xQ2" // YAML quotes values of up to 10 characters whole
	)
	for _, tc := range []struct{ name, yaml string }{
		{"password starting with *", "credentials:\n  a:\n    access_key: a\n    secret_key: *" + long + "\n"},
		{"short password starting with *", "credentials:\n  u:\n    iam: {domain_name: d, user_name: u, password: *" + short + "}\n"},
		{"secret under a bool", "credentials:\n  a: {access_key: a, secret_key: s, ecs_metadata: " + long + "}\n"},
		{"short secret under a bool", "credentials:\n  a: {access_key: a, secret_key: s, ecs_metadata: " + short + "}\n"},
		{"credential given as the secret", "credentials:\n  a: " + short + "\n"},
		{"iam given as the password", "credentials:\n  a:\n    iam: " + short + "\n"},
		{"secret under a list", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets: [{name: t, region: cn-north-4, tag_keys: " + short + "}]\n"},
		{"explicit int tag", "credentials:\n  a: {access_key: a, secret_key: !!int " + long + "}\n"},
		{"unterminated quote", "credentials:\n  a:\n    access_key: a\n    secret_key: \"" + long + "\ntargets: []\n"},
		{"colon in secret", "credentials:\n  a:\n    access_key: a\n    secret_key: " + long + ": x\n"},
		{"bad escape", "credentials:\n  a: {access_key: a, secret_key: \"" + long + "\\q\"}\n"},
		{"tab indentation", "credentials:\n  a:\n    access_key: a\n\tsecret_key: " + long + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []string{long, short, long[:7], short[:5]} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error quotes the secret: %v", err)
				}
			}
			if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "yaml:") {
				t.Errorf("error lost its position or origin: %v", err)
			}
		})
	}
}

// FuzzConfigParse feeds arbitrary bytes to Parse: it never panics, and a
// config it accepts holds what Resolve promises.
func FuzzConfigParse(f *testing.F) {
	for _, s := range []string{
		good,
		"credentials:\n  only: {access_key: a, secret_key: s}\ntargets:\n  - {name: t, region: cn-north-4}\n",
		"credentials:\n  m: {iam: {domain_name: d, user_name: u, password: p}}\ntargets: [{name: t, region: cn-north-4, credentials: m}]\n",
		"credentials:\n  e: {ecs_metadata: true, metadata_endpoint: http://127.0.0.1:1}\ntargets: [{name: t, region: cn-north-4, project_id: p, kms_endpoint: https://kms}]\n",
		"credentials:\n  a: {access_key: a, secret_key: *x}\n",
		"credentials:\n  a: &x {access_key: a, secret_key: s}\n  b: *x\ntargets: [{name: t, region: cn-north-4, credentials: b}]\n",
		"credentials:\n  a: {<<: {access_key: a}, secret_key: s}\ntargets: [{name: t, region: cn-north-4}]\n",
		"credentials: {a: {access_key: a, secret_key_file: /nonexistent}}\ntargets: [{name: t, region: cn-north-4}]\n",
		"targets: [{name: t, region: cn-north-4, tag_keys: [a, '']}]\n",
		"---\n...\n",
		"{}",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// No baseDir: relative secret files resolve against the working
		// directory, where the fuzzer finds none worth reading.
		c, err := Parse(data, "")
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error on more than one line: %q", err)
			}
			return
		}
		if len(c.Credentials) == 0 || len(c.Targets) == 0 {
			t.Fatalf("accepted without credentials or targets: %+v", c)
		}
		for name, cr := range c.Credentials {
			if cr == nil {
				t.Fatalf("credential %q is nil", name)
			}
			switch cr.Kind() {
			case KindAKSK:
				if cr.AccessKey == "" || cr.SecretKey == "" {
					t.Fatalf("credential %q: AK/SK without both keys", name)
				}
			case KindIAM:
				if cr.IAM.DomainName == "" || cr.IAM.UserName == "" || cr.IAM.Password == "" {
					t.Fatalf("credential %q: IAM without domain, user or password", name)
				}
			case KindECSMetadata:
			default:
				t.Fatalf("credential %q has no kind", name)
			}
			// Dumps never show a secret.
			for _, s := range []promconfig.Secret{cr.SecretKey, cr.SecurityToken} {
				if len(s) > 8 && strings.Contains(fmt.Sprintf("%v %+v %#v", cr, *cr, cr), string(s)) {
					t.Fatalf("credential %q prints its secret", name)
				}
			}
		}
		names := map[string]bool{}
		for _, tg := range c.Targets {
			if tg.Name == "" || tg.Region == "" || names[tg.Name] {
				t.Fatalf("bad or duplicate target accepted: %+v", tg)
			}
			names[tg.Name] = true
			if c.Credentials[tg.Credentials] == nil {
				t.Fatalf("target %q uses unknown credential %q", tg.Name, tg.Credentials)
			}
		}
		// What was accepted dumps and parses again to the same targets.
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Config
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatalf("dump does not parse: %v\n%s", err, out)
		}
		if len(back.Targets) != len(c.Targets) {
			t.Fatalf("dump has %d targets, want %d", len(back.Targets), len(c.Targets))
		}
	})
}
