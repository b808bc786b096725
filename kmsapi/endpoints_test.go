package kmsapi_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// The official SDK's KMS region table, region by region.
var sdkKMSEndpoints = map[string]string{
	"ae-ad-1":          "https://kms.ae-ad-1.myhuaweicloud.com",
	"af-north-1":       "https://kms.af-north-1.myhuaweicloud.com",
	"af-south-1":       "https://kms.af-south-1.myhuaweicloud.com",
	"ap-southeast-1":   "https://kms.ap-southeast-1.myhuaweicloud.com",
	"ap-southeast-2":   "https://kms.ap-southeast-2.myhuaweicloud.com",
	"ap-southeast-3":   "https://kms.ap-southeast-3.myhuaweicloud.com",
	"ap-southeast-4":   "https://kms.ap-southeast-4.myhuaweicloud.com",
	"ap-southeast-5":   "https://kms.ap-southeast-5.myhuaweicloud.com",
	"cn-east-2":        "https://kms.cn-east-2.myhuaweicloud.com",
	"cn-east-3":        "https://kms.cn-east-3.myhuaweicloud.com",
	"cn-east-4":        "https://kms.cn-east-4.myhuaweicloud.com",
	"cn-east-5":        "https://kms.cn-east-5.myhuaweicloud.com",
	"cn-north-1":       "https://kms.cn-north-1.myhuaweicloud.com",
	"cn-north-11":      "https://kms.cn-north-11.myhuaweicloud.com",
	"cn-north-12":      "https://kms.cn-north-12.myhuaweicloud.com",
	"cn-north-2":       "https://kms.cn-north-2.myhuaweicloud.com",
	"cn-north-4":       "https://kms.cn-north-4.myhuaweicloud.com",
	"cn-north-9":       "https://kms.cn-north-9.myhuaweicloud.com",
	"cn-south-1":       "https://kms.cn-south-1.myhuaweicloud.com",
	"cn-south-2":       "https://kms.cn-south-2.myhuaweicloud.com",
	"cn-south-4":       "https://kms.cn-south-4.myhuaweicloud.com",
	"cn-southwest-2":   "https://kms.cn-southwest-2.myhuaweicloud.com",
	"cn-southwest-3":   "https://kms.cn-southwest-3.myhuaweicloud.com",
	"eu-west-101":      "https://kms.eu-west-101.myhuaweicloud.eu",
	"la-north-2":       "https://kms.la-north-2.myhuaweicloud.com",
	"la-south-2":       "https://kms.la-south-2.myhuaweicloud.com",
	"me-east-1":        "https://kms.me-east-1.myhuaweicloud.com",
	"my-kualalumpur-1": "https://kms.my-kualalumpur-1.myhuaweicloud.com",
	"na-mexico-1":      "https://kms.na-mexico-1.myhuaweicloud.com",
	"ru-moscow-1":      "https://kms.ru-moscow-1.myhuaweicloud.com",
	"sa-brazil-1":      "https://kms.sa-brazil-1.myhuaweicloud.com",
	"tr-west-1":        "https://kms.tr-west-1.myhuaweicloud.com",
}

// The official SDK's IAM region table, region by region.
var sdkIAMEndpoints = map[string]string{
	"ae-ad-1":          "https://iam.ae-ad-1.myhuaweicloud.com",
	"af-south-1":       "https://iam.af-south-1.myhuaweicloud.com",
	"ap-southeast-1":   "https://iam.ap-southeast-1.myhuaweicloud.com",
	"ap-southeast-2":   "https://iam.ap-southeast-2.myhuaweicloud.com",
	"ap-southeast-3":   "https://iam.ap-southeast-3.myhuaweicloud.com",
	"ap-southeast-4":   "https://iam.ap-southeast-4.myhuaweicloud.com",
	"cn-east-2":        "https://iam.cn-east-2.myhuaweicloud.com",
	"cn-east-3":        "https://iam.cn-east-3.myhuaweicloud.com",
	"cn-east-4":        "https://iam.cn-east-4.myhuaweicloud.com",
	"cn-east-5":        "https://iam.cn-east-5.myhuaweicloud.com",
	"cn-north-1":       "https://iam.cn-north-1.myhuaweicloud.com",
	"cn-north-12":      "https://iam.cn-north-12.myhuaweicloud.com",
	"cn-north-2":       "https://iam.cn-north-2.myhuaweicloud.com",
	"cn-north-4":       "https://iam.cn-north-4.myhuaweicloud.com",
	"cn-north-9":       "https://iam.cn-north-9.myhuaweicloud.com",
	"cn-south-1":       "https://iam.cn-south-1.myhuaweicloud.com",
	"cn-south-2":       "https://iam.cn-south-2.myhuaweicloud.com",
	"cn-southwest-2":   "https://iam.cn-southwest-2.myhuaweicloud.com",
	"eu-west-0":        "https://iam.eu-west-0.myhuaweicloud.com",
	"eu-west-101":      "https://iam.eu-west-101.myhuaweicloud.eu",
	"la-north-2":       "https://iam.la-north-2.myhuaweicloud.com",
	"la-south-2":       "https://iam.la-south-2.myhuaweicloud.com",
	"me-east-1":        "https://iam.me-east-1.myhuaweicloud.com",
	"my-kualalumpur-1": "https://iam.my-kualalumpur-1.myhuaweicloud.com",
	"na-mexico-1":      "https://iam.na-mexico-1.myhuaweicloud.com",
	"ru-moscow-1":      "https://iam.ru-moscow-1.myhuaweicloud.com",
	"sa-brazil-1":      "https://iam.sa-brazil-1.myhuaweicloud.com",
	"tr-west-1":        "https://iam.tr-west-1.myhuaweicloud.com",
}

// regionShape is the shape the config requires of a region.
var regionShape = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

func TestKMSRegionTable(t *testing.T) {
	for region, want := range sdkKMSEndpoints {
		if !regionShape.MatchString(region) {
			t.Errorf("%s does not have the shape of a region", region)
		}
		if got := kmsapi.DefaultKMSEndpoint(region); got != want {
			t.Errorf("DefaultKMSEndpoint(%s) = %s, want %s", region, got, want)
		}
		if !kmsapi.IsKMSRegion(region) {
			t.Errorf("IsKMSRegion(%s) = false", region)
		}
	}
	for _, r := range []string{"eu-west-0", "xx-nowhere-1", ""} {
		if kmsapi.IsKMSRegion(r) {
			t.Errorf("IsKMSRegion(%q) = true", r)
		}
	}
}

func TestIAMRegionTable(t *testing.T) {
	for region, want := range sdkIAMEndpoints {
		if got := kmsapi.DefaultIAMEndpoint(region); got != want {
			t.Errorf("DefaultIAMEndpoint(%s) = %s, want %s", region, got, want)
		}
	}
	// Regions without an IAM endpoint of their own in the SDK's table use
	// the global one, as the SDK does; so do calls not tied to a region.
	others := []string{"xx-nowhere-1", ""}
	for region := range sdkKMSEndpoints {
		if _, ok := sdkIAMEndpoints[region]; !ok {
			others = append(others, region)
		}
	}
	for _, region := range others {
		if got := kmsapi.DefaultIAMEndpoint(region); got != "https://iam.myhuaweicloud.com" {
			t.Errorf("DefaultIAMEndpoint(%q) = %s, want %s", region, got, "https://iam.myhuaweicloud.com")
		}
	}
}

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
				want := kmsapi.DefaultIAMEndpoint(p.Region) + tc.path
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
			kmsapi.DefaultIAMEndpoint(p.Region) + "/v3/auth/tokens",
			kmsapi.DefaultKMSEndpoint(p.Region) + "/v1.0/" + p.ID + "/kms/user-instances",
		} {
			if !rt.saw(want) {
				t.Errorf("%s: no request to %s; saw %v", p.Region, want, rt.seen)
			}
		}
	}
}
