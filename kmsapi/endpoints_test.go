package kmsapi_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/kms-exporter/kms_exporter/internal/regions"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// routeAll sends every request to the fake, whatever its host, and
// records the scheme, host and path each one was meant for.
type routeAll struct {
	fake *url.URL
	mu   sync.Mutex
	seen []string
}

func (r *routeAll) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	r.mu.Unlock()
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.fake.Scheme, r.fake.Host
	return http.DefaultTransport.RoundTrip(req)
}

func (r *routeAll) saw(u string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.seen, u)
}

// One credential serves targets in several regions: each project lookup
// and each IAM token goes to the IAM of the target's region unless an
// endpoint is set, and eu-west-101's is not the global one.
func TestIAMEndpointOfTheTargetsRegion(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 6, KeysPerProject: 1})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	fakeURL, _ := url.Parse(fake.URL())
	u := kmsfake.ExampleUser
	for _, tc := range []struct {
		name     string
		override string
		auth     func() kmsapi.Authenticator
		path     string
	}{
		{"aksk", "", func() kmsapi.Authenticator {
			return kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, "")
		}, "/v3/projects"},
		{"iam-password", "", func() kmsapi.Authenticator {
			return kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{DomainName: u.Domain, UserName: u.Name, Password: u.Password})
		}, "/v3/auth/tokens"},
		{"aksk-override", "https://iam.example.com", func() kmsapi.Authenticator {
			return kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, "")
		}, "/v3/projects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &routeAll{fake: fakeURL}
			cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
				Name: "c", Auth: tc.auth(), IAMEndpoint: tc.override, RequestsPerSecond: 1000,
				HTTPClient: &http.Client{Transport: rt},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range sc.Projects {
				id, err := cred.LookupProject(context.Background(), p.Region)
				if err != nil || id != p.ID {
					t.Fatalf("%s: project %q, %v; want %s", p.Region, id, err, p.ID)
				}
				want := regions.IAMEndpoint(p.Region) + tc.path
				if tc.override != "" {
					want = tc.override + tc.path
				}
				if !rt.saw(want) {
					t.Errorf("%s: no request to %s; saw %v", p.Region, want, rt.seen)
				}
			}
			if tc.override == "" && !rt.saw("https://iam.eu-west-101.myhuaweicloud.eu"+tc.path) {
				t.Errorf("eu-west-101 not asked at its own IAM: %v", rt.seen)
			}
		})
	}
}

// A token for a project given by ID (no lookup) comes from the IAM of the
// target's region too.
func TestIAMTokenFromTheTargetsRegion(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 6, KeysPerProject: 1})
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	fakeURL, _ := url.Parse(fake.URL())
	rt := &routeAll{fake: fakeURL}
	u := kmsfake.ExampleUser
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
		Name: "c", Auth: kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{DomainName: u.Domain, UserName: u.Name, Password: u.Password}),
		RequestsPerSecond: 1000, HTTPClient: &http.Client{Transport: rt},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sc.Projects {
		c, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Credential: cred})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.InstanceCount(context.Background()); err != nil {
			t.Fatalf("%s: %v", p.Region, err)
		}
		for _, want := range []string{
			regions.IAMEndpoint(p.Region) + "/v3/auth/tokens",
			regions.KMSEndpoint(p.Region) + "/v1.0/" + p.ID + "/kms/user-instances",
		} {
			if !rt.saw(want) {
				t.Errorf("%s: no request to %s; saw %v", p.Region, want, rt.seen)
			}
		}
	}
}
