package config

import (
	"fmt"
	"strings"
	"testing"
)

// Mistakes are told in the config's words: the path of the key, the line,
// and what was meant; on one line, and without the value.
func TestSchemaErrors(t *testing.T) {
	const target = "targets:\n  - {name: t, region: cn-north-4}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"typo", "credentials:\n  prod:\n    access_key: AK\n    secret_kye: SK\n" + target,
			`line 4: credentials.prod: unknown key "secret_kye" (did you mean "secret_key"?)`},
		{"typo in iam", "credentials:\n  m:\n    iam: {domain_name: d, user_name: u, pasword: p}\n" + target,
			`line 3: credentials.m.iam: unknown key "pasword" (did you mean "password"?)`},
		{"start of a key", "credentials:\n  a: {access_key: a, secret: s}\n" + target,
			`line 2: credentials.a: unknown key "secret" (did you mean "secret_key"?)`},
		{"typo at the top", "credentials:\n  a: {access_key: a, secret_key: s}\ntarget:\n  - {name: t, region: cn-north-4}\n",
			`line 3: top level: unknown key "target" (did you mean "targets"?)`},
		{"nothing close", "credentials:\n  a: {access_key: a, secret_key: s, colour: red}\n" + target,
			`line 2: credentials.a: unknown key "colour" (valid keys: access_key, access_key_file, secret_key, secret_key_file, security_token, security_token_file, iam, ecs_metadata, metadata_endpoint, oidc, iam_endpoint)`},
		{"secret as a key", "credentials:\n  a:\n    access_key: a\n    Hk8sQ2vX9mZp4rT7wY1c: x\n" + target,
			`line 4: credentials.a: unknown key (valid keys: access_key, access_key_file, secret_key, secret_key_file, security_token, security_token_file, iam, ecs_metadata, metadata_endpoint, oidc, iam_endpoint)`},
		{"typo in a merged mapping", "credentials:\n  a: {<<: {acess_key: a}, secret_key: s}\n" + target,
			`line 2: credentials.a: unknown key "acess_key" (did you mean "access_key"?)`},
		{"not a bool", "credentials:\n  a: {ecs_metadata: maybe}\n" + target,
			`line 2: credentials.a.ecs_metadata: want true or false`},
		{"not a list", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets: {name: t}\n",
			`line 3: targets: want a list, not a mapping`},
		{"tag keys not a list", "credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: t, region: cn-north-4, tag_keys: env}\n",
			`line 4: targets[0].tag_keys: want a list`},
		{"list for a value", "credentials:\n  a: {access_key: [a], secret_key: s}\n" + target,
			`line 2: credentials.a.access_key: want a single value, not a list`},
		{"credential not a mapping", "credentials:\n  a: Pw9xQ2\n" + target,
			`line 2: credentials.a: want a mapping of keys`},
		{"credentials a list", "credentials:\n  - a\n" + target,
			`line 2: credentials: want a mapping of names, not a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\n  want %s", err, tc.want)
			}
		})
	}
}

// Merges of merges expand exponentially; the check walks each anchored
// node once, and YAML refuses to decode the expansion.
func TestSchemaAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("credentials:\n  m0: &m0 {access_key: a, secret_key: s}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("targets:\n  - {name: t, region: cn-north-4, credentials: m40}\n")
	_, err := Parse([]byte(b.String()), "")
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Errorf("error %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"secret_kye", "secret_key", 1},
		{"", "abc", 3},
		{"region", "regions", 1},
		{"projectid", "project_id", 1},
		{"kitten", "sitting", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
