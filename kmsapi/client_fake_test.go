package kmsapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// End-to-end tests of the client against kmsfake.

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// start returns a fake on no network, for a test in a testing/synctest
// bubble: deadlines, backoffs, pauses and the fake's latency all run on
// the bubble's clock. Clients reach it through newClient.
func start(t *testing.T, sc kmsfake.Scenario) *kmsfake.Server {
	srv := kmsfake.New(sc)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, srv *kmsfake.Server, p kmsfake.Project, auth kmsapi.Authenticator, opts ...func(*kmsapi.CredentialOptions)) *kmsapi.Client {
	t.Helper()
	o := kmsapi.CredentialOptions{Name: "fake", Auth: auth, IAMEndpoint: srv.URL(), RequestsPerSecond: 1000, HTTPClient: srv.InMemoryClient()}
	for _, f := range opts {
		f(&o)
	}
	cred, err := kmsapi.NewCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Endpoint: srv.URL(), Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameKeys(t *testing.T, got, want []kmsapi.Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Alias != w.Alias || g.State != w.State || g.Default != w.Default || g.KeyType != w.KeyType ||
			!g.Created.Equal(w.Created.Truncate(time.Millisecond)) || !g.ScheduledDeletion.Equal(w.ScheduledDeletion.Truncate(time.Millisecond)) ||
			fmt.Sprint(g.Tags) != fmt.Sprint(w.Tags) {
			t.Fatalf("key %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestFakeEveryAuthKind(t *testing.T) {
	temp := kmsfake.AccessKey{AK: "TEMPAK00000000000000", SK: "temporary-secret-key-000000000000000000", SecurityToken: "temporary-security-token"}
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 7, Projects: 2, KeysPerProject: 1500})
	sc.AccessKeys = append(sc.AccessKeys, temp)
	p := sc.Projects[1]
	for name, mk := range map[string]func(srv *kmsfake.Server) kmsapi.Authenticator{
		"aksk": func(*kmsfake.Server) kmsapi.Authenticator {
			return kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, "")
		},
		"temporary": func(*kmsfake.Server) kmsapi.Authenticator {
			return kmsapi.NewAKSK(temp.AK, temp.SK, temp.SecurityToken)
		},
		"iam-password": func(srv *kmsfake.Server) kmsapi.Authenticator {
			u := kmsfake.ExampleUser
			return kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{IAMEndpoint: srv.URL(), DomainName: u.Domain, UserName: u.Name, Password: u.Password})
		},
		"ecs-metadata": func(srv *kmsfake.Server) kmsapi.Authenticator {
			return kmsapi.NewECSMetadata(kmsapi.ECSMetadataOptions{Endpoint: srv.URL(), HTTPClient: srv.InMemoryClient()})
		},
	} {
		for _, enc := range []kmsfake.Encoding{kmsfake.Numeric, kmsfake.Strings} {
			t.Run(fmt.Sprint(name, "/", enc), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv := start(t, sc)
					srv.SetEncoding(enc)
					c := newClient(t, srv, p, mk(srv))
					ctx := ctxFor(t, 20*time.Second)

					id, err := c.Credential().LookupProject(ctx, p.Region)
					if err != nil || id != p.ID {
						t.Fatalf("LookupProject: %q, %v", id, err)
					}
					q, err := c.Quotas(ctx)
					if err != nil || fmt.Sprint(q) != fmt.Sprint(p.Quotas) {
						t.Fatalf("Quotas: %v, %v; want %v", q, err, p.Quotas)
					}
					n, err := c.InstanceCount(ctx)
					if err != nil || n != p.Instances {
						t.Fatalf("InstanceCount: %d, %v", n, err)
					}
					keys, err := c.ListKeys(ctx)
					if err != nil {
						t.Fatal(err)
					}
					sameKeys(t, keys, p.Keys)
					regions, err := c.Regions(ctx)
					if err != nil || fmt.Sprint(regions) != fmt.Sprint(sc.CrossRegions) {
						t.Fatalf("Regions: %v, %v", regions, err)
					}
				})
			})
		}
	}
}

// The key attributes outside the documentation's example come through in
// both encodings; where the fake makes them up, as it serves them.
func TestFakeKeyAttributes(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 2, KeysPerProject: 3})
	k := &sc.Projects[0].Keys[0]
	k.KeySpec, k.KeyUsage, k.Origin, k.RotationEnabled, k.EnterpriseProjectID = "SM2", "SIGN_VERIFY", "external", "true", "ep-1"
	k.Expires = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// Left to the fake to make up.
	u := &sc.Projects[0].Keys[1]
	u.KeySpec, u.KeyUsage, u.Origin, u.RotationEnabled, u.EnterpriseProjectID, u.Expires = "", "", "", "", "", time.Time{}
	for _, enc := range []kmsfake.Encoding{kmsfake.Numeric, kmsfake.Strings} {
		synctest.Test(t, func(t *testing.T) {
			srv := start(t, sc)
			srv.SetEncoding(enc)
			c := newClient(t, srv, sc.Projects[0], kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""))
			keys, err := c.ListKeys(context.Background())
			if err != nil || len(keys) != 3 {
				t.Fatal(len(keys), err)
			}
			g := keys[0]
			if g.KeySpec != "SM2" || g.KeyUsage != "SIGN_VERIFY" || g.Origin != "external" || g.RotationEnabled != "true" ||
				g.EnterpriseProjectID != "ep-1" || !g.Expires.Equal(k.Expires) {
				t.Errorf("encoding %v: got %+v", enc, g)
			}
			// Made up by the fake: rotation off, no expiry.
			if g := keys[1]; g.KeySpec == "" || g.KeyUsage != "ENCRYPT_DECRYPT" || g.Origin == "" || g.RotationEnabled != "false" || g.EnterpriseProjectID != "0" || !g.Expires.IsZero() {
				t.Errorf("encoding %v: got %+v", enc, g)
			}
		})
	}
}

// A server that answers fewer regions than asked does not cut the list.
func TestFakeRegionsPageCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, KeysPerProject: 1})
		for i := range 25 {
			sc.CrossRegions = append(sc.CrossRegions, fmt.Sprintf("xx-region-%d", i))
		}
		srv := start(t, sc)
		srv.SetRegionsPageCap(10)
		c := newClient(t, srv, sc.Projects[0], kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""))
		regions, err := c.Regions(ctxFor(t, 10*time.Second))
		if err != nil || fmt.Sprint(regions) != fmt.Sprint(sc.CrossRegions) {
			t.Fatalf("got %v, %v; want the %d regions %v", regions, err, len(sc.CrossRegions), sc.CrossRegions)
		}
		// 10, 10, 8 and the empty page that ends the list.
		if n := srv.Requests(kmsapi.EndpointRegions); n != 4 {
			t.Errorf("%d requests, want 4", n)
		}
	})
}

func TestFakeTokenRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, KeysPerProject: 5})
		srv := start(t, sc)
		clk := fakeclock.New(time.Now())
		srv.SetClock(clk.Now)
		u := kmsfake.ExampleUser
		auth := kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{IAMEndpoint: srv.URL(), DomainName: u.Domain, UserName: u.Name, Password: u.Password, Now: clk.Now})
		c := newClient(t, srv, sc.Projects[0], auth, func(o *kmsapi.CredentialOptions) { o.Now = clk.Now })
		call := func() {
			t.Helper()
			if _, err := c.InstanceCount(ctxFor(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		call()
		call()
		if got := srv.Requests(kmsapi.EndpointIAMToken); got != 1 {
			t.Fatalf("%d logins, want 1", got)
		}
		// The API answers that the token expired: one new login, and the call succeeds.
		srv.ExpireTokens()
		call()
		if got, calls := srv.Requests(kmsapi.EndpointIAMToken), srv.Requests(kmsapi.EndpointInstances); got != 2 || calls != 4 {
			t.Fatalf("%d logins, %d calls; want 2, 4", got, calls)
		}
		// Close to expires_at the token is replaced before the API refuses it.
		clk.Advance(23*time.Hour + 45*time.Minute)
		call()
		if got, calls := srv.Requests(kmsapi.EndpointIAMToken), srv.Requests(kmsapi.EndpointInstances); got != 3 || calls != 5 {
			t.Fatalf("%d logins, %d calls; want 3, 5", got, calls)
		}
	})
}

func TestFakeMetadataRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, KeysPerProject: 5})
		srv := start(t, sc)
		clk := fakeclock.New(time.Now())
		srv.SetClock(clk.Now)
		auth := kmsapi.NewECSMetadata(kmsapi.ECSMetadataOptions{Endpoint: srv.URL(), HTTPClient: srv.InMemoryClient(), Now: clk.Now})
		c := newClient(t, srv, sc.Projects[0], auth, func(o *kmsapi.CredentialOptions) { o.Now = clk.Now })
		for range 3 {
			if _, err := c.Quotas(ctxFor(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		before := srv.Requests(kmsapi.EndpointECSMetadata)
		clk.Advance(24 * time.Hour) // whatever lifetime the fake gives, it is over
		if _, err := c.Quotas(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if after := srv.Requests(kmsapi.EndpointECSMetadata); after <= before {
			t.Fatalf("metadata not asked again (%d requests before, %d after)", before, after)
		}
	})
}

func TestFakePaging(t *testing.T) {
	for _, n := range []int{0, 1, 999, 1000, 1001, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: int64(n), KeysPerProject: n})
				p := sc.Projects[0]
				if len(p.Keys) != n {
					t.Fatalf("scenario holds %d keys", len(p.Keys))
				}
				srv := start(t, sc)
				c := newClient(t, srv, p, kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""))
				keys, err := c.ListKeys(ctxFor(t, 30*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				sameKeys(t, keys, p.Keys)
				if got, want := srv.Requests(kmsapi.EndpointResourceInstances), max(1, (n+999)/1000); got != want {
					t.Errorf("%d resource_instances requests, want %d", got, want)
				}
				if got := srv.Requests(""); got != max(1, (n+999)/1000) {
					t.Errorf("%d requests in all", got)
				}
			})
		})
	}
}

func TestFakeFaults(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 3, KeysPerProject: 10})
	p := sc.Projects[0]
	ak := kmsfake.ExampleAccessKey
	for _, tc := range []struct {
		name     string
		fault    kmsfake.Fault
		requests int
		check    func(error) bool
		calls    int
	}{
		// Every second request is throttled: the first call passes, the second is retried once.
		{"429 then success", kmsfake.Fault{ThrottleRate: 0.5}, 3, func(err error) bool { return err == nil }, 2},
		{"429 always", kmsfake.Fault{ThrottleRate: 1}, 3, statusIs(429), 1},
		{"500", kmsfake.Fault{Status: 500}, 3, isServerError, 1},
		{"502", kmsfake.Fault{Status: 502}, 3, isServerError, 1},
		{"504", kmsfake.Fault{Status: 504}, 3, isServerError, 1},
		{"401", kmsfake.Fault{Status: 401}, 1, isAuthFailure, 1},
		{"403", kmsfake.Fault{Status: 403}, 1, statusIs(403), 1},
		{"404", kmsfake.Fault{Status: 404}, 1, statusIs(404), 1},
		{"malformed", kmsfake.Fault{Malformed: true}, 1, decodeFailure, 1},
		{"truncated", kmsfake.Fault{Truncated: true}, 1, decodeFailure, 1},
		{"huge", kmsfake.Fault{HugeBody: 2 << 20}, 1, func(err error) bool {
			return decodeFailure(err) && strings.Contains(err.Error(), "response body exceeds 1048576 bytes")
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				defer kmsapi.SetMaxBodyBytes(1 << 20)()
				srv := start(t, sc)
				c := newClient(t, srv, p, kmsapi.NewAKSK(ak.AK, ak.SK, ""))
				srv.SetFault(kmsapi.EndpointQuotas, tc.fault)
				var err error
				for range max(1, tc.calls) {
					_, err = c.Quotas(ctxFor(t, 20*time.Second))
				}
				if !tc.check(err) {
					t.Errorf("got %v", err)
				}
				if err != nil {
					var e *kmsapi.Error
					if !errors.As(err, &e) || e.Endpoint != kmsapi.EndpointQuotas {
						t.Errorf("got %#v", err)
					} else if e.RequestID == "" {
						t.Errorf("no request ID in %v", err)
					}
				}
				if got := srv.Requests(kmsapi.EndpointQuotas); got != tc.requests {
					t.Errorf("%d requests, want %d", got, tc.requests)
				}
			})
		})
	}
}

// The error checks of the package's own tests.
var (
	statusIs      = kmsapi.StatusIs
	isServerError = kmsapi.IsServerError
	isAuthFailure = kmsapi.IsAuthFailure
	isPaused      = kmsapi.IsPaused
)

// authPauseMin is the first pause after an authentication failure.
const authPauseMin = 30 * time.Second

func decodeFailure(err error) bool {
	var e *kmsapi.Error
	return errors.As(err, &e) && e.StatusCode == http.StatusOK && e.Err != nil
}

func TestFakeHangAndConnectionRefused(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 3, KeysPerProject: 2500})
	p := sc.Projects[0]
	ak := kmsfake.ExampleAccessKey
	synctest.Test(t, func(t *testing.T) {
		srv := start(t, sc)
		c := newClient(t, srv, p, kmsapi.NewAKSK(ak.AK, ak.SK, ""))
		srv.SetFault(kmsapi.EndpointResourceInstances, kmsfake.Fault{Hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.ListKeys(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 300*time.Millisecond {
			t.Errorf("got %v after %v, want the deadline after 300ms", err, time.Since(start))
		}
	})

	// A closed port refuses at once; the retries wait on the bubble's clock.
	srv := kmsfake.Start(sc)
	url := srv.URL()
	srv.Close()
	synctest.Test(t, func(t *testing.T) {
		cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "c", Auth: kmsapi.NewAKSK(ak.AK, ak.SK, ""), IAMEndpoint: url})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Endpoint: url, Credential: cred})
		_, err = c.Regions(context.Background())
		var e *kmsapi.Error
		if !errors.As(err, &e) || e.StatusCode != 0 || e.Err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("got %v", err)
		}
	})
}

func TestFakeWrongSecretPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 3, KeysPerProject: 10})
		srv := start(t, sc)
		clk := fakeclock.New(time.Now())
		c := newClient(t, srv, sc.Projects[0], kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, "not-the-secret", ""),
			func(o *kmsapi.CredentialOptions) { o.Now = clk.Now })
		window := func(want int) {
			t.Helper()
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					_, err := c.ListKeys(ctxFor(t, 10*time.Second))
					if !isAuthFailure(err) {
						t.Errorf("got %v", err)
					}
				})
			}
			wg.Wait()
			for range 10 {
				if _, err := c.Quotas(ctxFor(t, 10*time.Second)); !isPaused(err) {
					t.Fatalf("got %v", err)
				}
			}
			if got := srv.Requests(""); got != want {
				t.Fatalf("%d requests reached the API, want %d", got, want)
			}
		}
		window(1)
		clk.Advance(authPauseMin + time.Second)
		window(2)
		clk.Advance(authPauseMin + time.Second) // the pause doubled
		window(2)
		clk.Advance(authPauseMin)
		window(3)
	})
}
