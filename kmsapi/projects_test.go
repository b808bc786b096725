package kmsapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// accountScenario has two region projects, a sub-project and MOS.
func accountScenario() kmsfake.Scenario {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 3, Projects: 3, KeysPerProject: 2, Regions: []string{"cn-north-4", "ap-southeast-1"}})
	sc.Projects[2].Name = "cn-north-4_payments"
	sc.OtherProjects = []kmsfake.IAMProject{{ID: "0f0e0d0c0b0a09080706050403020100", Name: "MOS"}}
	return sc
}

func projectNames(ps []kmsapi.Project) string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

func newCredential(t *testing.T, srv *kmsfake.Server, auth kmsapi.Authenticator, opts ...func(*kmsapi.CredentialOptions)) *kmsapi.Credential {
	t.Helper()
	o := kmsapi.CredentialOptions{Name: "fake", Auth: auth, IAMEndpoint: srv.URL(), RequestsPerSecond: 1000, HTTPClient: srv.InMemoryClient()}
	for _, f := range opts {
		f(&o)
	}
	c, err := kmsapi.NewCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListProjects(t *testing.T) {
	sc := accountScenario()
	const want = "cn-north-4,ap-southeast-1,cn-north-4_payments,MOS"
	for name, mk := range map[string]func(srv *kmsfake.Server) kmsapi.Authenticator{
		"aksk": func(*kmsfake.Server) kmsapi.Authenticator {
			return kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, "")
		},
		// An IAM user lists with a token scoped to its domain.
		"iam-password": func(srv *kmsfake.Server) kmsapi.Authenticator {
			u := kmsfake.ExampleUser
			return kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{IAMEndpoint: srv.URL(), DomainName: u.Domain, UserName: u.Name, Password: u.Password})
		},
		"ecs-metadata": func(srv *kmsfake.Server) kmsapi.Authenticator {
			return kmsapi.NewECSMetadata(kmsapi.ECSMetadataOptions{Endpoint: srv.URL(), HTTPClient: srv.InMemoryClient()})
		},
		// OIDC workload identity lists with an unscoped token.
		"oidc": func(srv *kmsfake.Server) kmsapi.Authenticator {
			idp := kmsfake.ExampleIdentityProvider
			return kmsapi.NewOIDC(kmsapi.OIDCOptions{IAMEndpoint: srv.URL(), IdpID: idp.ID, IDToken: func() (string, error) {
				return srv.IDToken(idp.ID, "system:serviceaccount:monitoring:kms-exporter", time.Hour), nil
			}})
		},
	} {
		for _, pageSize := range []int{0, 1, 3} {
			t.Run(fmt.Sprint(name, "/page", pageSize), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv := start(t, sc)
					srv.SetProjectPageSize(pageSize)
					cred := newCredential(t, srv, mk(srv))
					got, err := cred.ListProjects(ctxFor(t, 20*time.Second))
					if err != nil {
						t.Fatal(err)
					}
					if projectNames(got) != want {
						t.Fatalf("projects %s, want %s", projectNames(got), want)
					}
					if got[2].ID != sc.Projects[2].ID || !got[2].Enabled || got[2].DomainID == "" {
						t.Errorf("sub-project: %+v", got[2])
					}
					pages := 1
					if pageSize > 0 {
						pages = (4 + pageSize - 1) / pageSize
					}
					if n := srv.Requests(kmsapi.EndpointIAMProjectList); n != pages {
						t.Errorf("%d listing requests, want %d", n, pages)
					}
				})
			})
		}
	}
}

func TestListProjectsRefusesLinkToOtherHost(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		fmt.Fprint(w, `{"projects":[{"id":"p1","name":"cn-north-4"}],"links":{"next":"https://elsewhere.example/v3/auth/projects?marker=p1"}}`)
	}))
	t.Cleanup(srv.Close)
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "x", Auth: kmsapi.NewAKSK("AK", "SK", ""), IAMEndpoint: srv.URL, RequestsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.ListProjects(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not on the IAM endpoint") || requests != 1 {
		t.Fatalf("ListProjects: %v after %d requests; want a refused link after 1", err, requests)
	}
}

func TestListProjectsErrors(t *testing.T) {
	for name, c := range map[string]struct {
		body, want string
		enabled    bool
	}{
		"no projects":  {body: `{"links":{}}`, want: "lacks projects"},
		"not json":     {body: `<html>`, want: "decoding response"},
		"disabled":     {body: `{"projects":[{"id":"p1","name":"cn-north-4","enabled":false}],"links":{"next":null}}`},
		"enabled left": {body: `{"projects":[{"id":"p1","name":"cn-north-4"}]}`, enabled: true},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, c.body) }))
			t.Cleanup(srv.Close)
			cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "x", Auth: kmsapi.NewAKSK("AK", "SK", ""), IAMEndpoint: srv.URL, RequestsPerSecond: 1000})
			if err != nil {
				t.Fatal(err)
			}
			got, err := cred.ListProjects(context.Background())
			if c.want != "" {
				var ae *kmsapi.Error
				if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &ae) || ae.Endpoint != kmsapi.EndpointIAMProjectList {
					t.Fatalf("ListProjects: %v, want an %s error with %q", err, kmsapi.EndpointIAMProjectList, c.want)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0].Enabled != c.enabled {
				t.Fatalf("ListProjects: %+v, %v; want one project, enabled %v", got, err, c.enabled)
			}
		})
	}
}

// A wrong secret pauses the credential for the listing as for KMS calls.
func TestListProjectsWrongSecretPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := start(t, accountScenario())
		cred := newCredential(t, srv, kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, "wrong", ""))
		ctx := ctxFor(t, 10*time.Second)
		if _, err := cred.ListProjects(ctx); !isAuthFailure(err) {
			t.Fatalf("first listing: %v, want an authentication failure", err)
		}
		if _, err := cred.ListProjects(ctx); !isPaused(err) {
			t.Fatalf("second listing: %v, want the paused error", err)
		}
		if n := srv.Requests(kmsapi.EndpointIAMProjectList); n != 1 {
			t.Errorf("%d requests reached IAM, want 1", n)
		}
	})
}

// RateLimitWait adds up the time calls queued for the rate limit: at one
// request per second with a burst of one, three calls in a row wait 0, 1
// and 1 s.
func TestRateLimitWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := start(t, accountScenario())
		cred := newCredential(t, srv, kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""), func(o *kmsapi.CredentialOptions) {
			o.RequestsPerSecond, o.Concurrency = 1, 1
		})
		if cred.RateLimitWait() != 0 || cred.Burst() != 1 || cred.RequestsPerSecond() != 1 {
			t.Fatalf("fresh credential: wait %v, burst %d, rps %v", cred.RateLimitWait(), cred.Burst(), cred.RequestsPerSecond())
		}
		ctx := context.Background()
		for i := range 3 {
			if _, err := cred.ListProjects(ctx); err != nil {
				t.Fatalf("listing %d: %v", i, err)
			}
		}
		if got := cred.RateLimitWait(); got != 2*time.Second {
			t.Errorf("RateLimitWait = %v, want 2s", got)
		}
	})
}
