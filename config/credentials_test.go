package config

import (
	"reflect"
	"strings"
	"testing"
)

// fullCredential has every field set, so that changing any one of them is
// a change from a value to another.
func fullCredential() *Credential {
	return &Credential{
		AccessKey: "AK", AccessKeyFile: "ak_file",
		SecretKey: "SK", SecretKeyFile: "sk_file",
		SecurityToken: "TOKEN", SecurityTokenFile: "token_file",
		IAM:         &IAMUser{DomainName: "d", UserName: "u", Password: "pw", PasswordFile: "pw_file"},
		ECSMetadata: true, MetadataEndpoint: "http://127.0.0.1:1",
		OIDC:        &OIDC{IdpID: "idp", IDTokenFile: "token_file"},
		IAMEndpoint: "https://iam.example.com",
	}
}

// leafPaths lists the settable fields of t, through structs and pointers
// to structs, as index paths.
func leafPaths(t *testing.T, typ reflect.Type, prefix []int, name string) (paths [][]int, names []string) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue // derived from the exported ones
		}
		p := append(append([]int(nil), prefix...), i)
		n := name + "." + f.Name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.Struct:
			sp, sn := leafPaths(t, ft, p, n)
			paths, names = append(paths, sp...), append(names, sn...)
		case reflect.String, reflect.Bool:
			paths, names = append(paths, p), append(names, n)
		default:
			t.Fatalf("%s: field of kind %s: teach this test to change it", n, ft.Kind())
		}
	}
	return paths, names
}

// change sets the field at path of c to another value.
func change(c *Credential, path []int) {
	v := reflect.ValueOf(c).Elem()
	for _, i := range path {
		v = v.Field(i)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "-changed")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	}
}

func oneCredential(c *Credential) *Config {
	return &Config{Credentials: map[string]*Credential{"a": c}}
}

func TestBuildCredentialsKeepsUnchanged(t *testing.T) {
	o := BuildOptions{IAMEndpoint: "https://iam.flag.example.com"}
	first, err := BuildCredentials(oneCredential(fullCredential()), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	// A new config with the same settings, as a reload reads it.
	again, err := BuildCredentials(oneCredential(fullCredential()), first, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Get("a") != first.Get("a") {
		t.Error("unchanged credential built anew")
	}

	paths, names := leafPaths(t, reflect.TypeOf(Credential{}), nil, "Credential")
	if len(paths) < 15 {
		t.Fatalf("only %d fields found: %v", len(paths), names)
	}
	for i, p := range paths {
		c := fullCredential()
		change(c, p)
		if reflect.DeepEqual(c, fullCredential()) {
			t.Fatalf("%s: the test did not change it", names[i])
		}
		next, err := BuildCredentials(oneCredential(c), first, o)
		if err != nil {
			t.Fatal(err)
		}
		if next.Get("a") == first.Get("a") {
			t.Errorf("a change of %s kept the old credential", names[i])
		}
	}

	for name, c := range map[string]*Config{
		"renamed":        {Credentials: map[string]*Credential{"b": fullCredential()}},
		"iam block gone": oneCredential(func() *Credential { c := fullCredential(); c.IAM = nil; return c }()),
	} {
		next, err := BuildCredentials(c, first, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a", "b"} {
			if got := next.Get(n); got != nil && got == first.Get("a") {
				t.Errorf("%s: old credential kept as %q", name, n)
			}
		}
	}
}

// The IAM endpoint of a credential without iam_endpoint comes from the
// flag: a different flag value is a different credential.
func TestBuildCredentialsIAMEndpointFromOptions(t *testing.T) {
	c := fullCredential()
	c.IAMEndpoint = ""
	first, err := BuildCredentials(oneCredential(c), nil, BuildOptions{IAMEndpoint: "https://one.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := BuildCredentials(oneCredential(c), first, BuildOptions{IAMEndpoint: "https://two.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Get("a") == first.Get("a") {
		t.Error("another --iam.endpoint kept the old credential")
	}
}

func TestBuildCredentialsKinds(t *testing.T) {
	for _, c := range []*Credential{
		{AccessKey: "AK", SecretKey: "SK"},
		{IAM: &IAMUser{DomainName: "d", UserName: "u", Password: "p"}},
		{ECSMetadata: true},
	} {
		cs, err := BuildCredentials(oneCredential(c), nil, BuildOptions{})
		if err != nil || cs.Get("a") == nil || cs.Get("a").Name() != "a" {
			t.Errorf("%v: %v", c, err)
		}
	}
	_, err := BuildCredentials(oneCredential(&Credential{}), nil, BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "credentials.a: no secret") {
		t.Errorf("credential without a secret: %v", err)
	}
}
