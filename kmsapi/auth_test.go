package kmsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/internal/sign"
)

// hammer makes n concurrent Quotas calls and returns their errors.
func hammer(t *testing.T, c *Client, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = c.Quotas(ctxTimeout(t, 10*time.Second)) })
	}
	wg.Wait()
	return errs
}

func TestAuthFailurePause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The server verifies signatures with testSK; the client signs with a
		// wrong secret. However many calls are made, one per pause window reaches it.
		srv, h := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { io.WriteString(w, quotasExample) })
		clock := newFakeClock()
		auth := &switchableAuth{sk: "wrong-secret"}
		c := newTestClient(t, srv.URL, auth, func(o *CredentialOptions) { o.Now = clock.Now })

		check := func(phase string, wantServer int64) {
			t.Helper()
			for i, err := range hammer(t, c, 8) {
				if !isAuthFailure(err) {
					t.Fatalf("%s: call %d: want auth failure, got %v", phase, i, err)
				}
			}
			for range 5 {
				_, err := c.Quotas(ctxTimeout(t, 5*time.Second))
				if !errors.Is(err, lockout.ErrPaused) || !isAuthFailure(err) {
					t.Fatalf("%s: want paused error, got %v", phase, err)
				}
				if e := mustError(t, err); e.StatusCode != 401 || e.Code != "APIGW.0301" {
					t.Fatalf("%s: paused error does not carry the 401: %#v", phase, e)
				}
			}
			if got := h.count.Load(); got != wantServer {
				t.Fatalf("%s: %d requests reached the server, want %d", phase, got, wantServer)
			}
		}
		check("first window", 1)

		clock.Advance(29 * time.Second)
		check("still in the first 30s window", 1)

		clock.Advance(2 * time.Second) // past 30s: one probe, which fails: pause 60s
		check("second window", 2)
		clock.Advance(59 * time.Second)
		check("within the doubled window", 2)
		clock.Advance(2 * time.Second)
		check("third window", 3)

		// The pause stops growing at authPauseMax (5m).
		for i := 4; i <= 8; i++ {
			clock.Advance(5*time.Minute + time.Second)
			check(fmt.Sprint("window ", i), int64(i))
		}

		// Fixed secret: after the pause, one probe succeeds, then calls flow
		// concurrently again and the failure count is reset.
		auth.setSK(testSK)
		clock.Advance(5*time.Minute + time.Second)
		for _, err := range hammer(t, c, 8) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := h.count.Load(); got != 8+8 {
			t.Fatalf("%d requests, want 16", got)
		}
		auth.setSK("wrong-again")
		hammer(t, c, 1)
		clock.Advance(31 * time.Second) // back to the 30s start
		hammer(t, c, 1)
		if got := h.count.Load(); got != 18 {
			t.Fatalf("%d requests, want 18", got)
		}
	})
}

// switchableAuth signs with a secret the test can change.
type switchableAuth struct {
	mu sync.Mutex
	sk string
}

func (a *switchableAuth) setSK(sk string) { a.mu.Lock(); a.sk = sk; a.mu.Unlock() }

func (a *switchableAuth) authenticate(_ context.Context, _ caller, req *http.Request, body []byte, _, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	sign.Sign(req, body, testAK, a.sk, "", time.Now())
	return nil
}

func (a *switchableAuth) rejected(*http.Request) bool { return false }
func (a *switchableAuth) invalidate()                 {}
func (a *switchableAuth) identity() (id, hint string) { return "aksk\x00" + testAK, akskHint }

func TestFirstCallProbesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Until the credential has worked once, one call goes first and the
		// others wait for its answer.
		release := make(chan struct{})
		var answered atomic.Int64
		srv, h := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			if answered.Add(1) == 1 {
				<-release
			}
			io.WriteString(w, quotasExample)
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		done := make(chan []error)
		go func() { done <- hammer(t, c, 8) }()
		// Every goroutine is blocked now: the first call at the server, the
		// others waiting for its answer (or, wrongly, answered already).
		synctest.Wait()
		if got := h.count.Load(); got != 1 {
			t.Errorf("%d requests while the first was unanswered, want 1", got)
		}
		close(release)
		for _, err := range <-done {
			if err != nil {
				t.Fatal(err)
			}
		}
		if h.count.Load() != 8 {
			t.Errorf("%d requests, want 8", h.count.Load())
		}
	})
}

// A call waiting for the probe gives up at its own deadline, unsent, while
// the probe is still out.
func TestProbeWaitersHonourContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		srv, h := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			<-release
			io.WriteString(w, quotasExample)
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		probe := make(chan error)
		go func() { _, err := c.Quotas(context.Background()); probe <- err }()
		synctest.Wait() // the probe is at the server, unanswered

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		var took time.Duration
		waiter := make(chan error, 1)
		go func() {
			_, err := c.Quotas(ctx)
			took = time.Since(start)
			waiter <- err
		}()
		time.Sleep(time.Second)
		select {
		case err := <-waiter:
			if !errors.Is(err, context.DeadlineExceeded) || took != 100*time.Millisecond {
				t.Errorf("waiter: %v after %v; want the deadline after 100ms", err, took)
			}
		default:
			t.Error("a call waiting for the probe outlived its deadline by 900ms")
		}
		if n := h.count.Load(); n != 1 {
			t.Errorf("%d requests reached the server, want the probe's alone", n)
		}
		close(release)
		if err := <-probe; err != nil {
			t.Fatal(err)
		}
	})
}

// iamServer is a small IAM + KMS: logins for user/password, tokens checked
// on the KMS call.
type iamServer struct {
	mu       sync.Mutex
	logins   int
	kmsCalls int
	tokens   map[string]string // token -> project id
	expireIn time.Duration
	clock    *fakeclock.Clock
	expired  map[string]bool
	bodies   []map[string]any
	password string
}

func (s *iamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v3/auth/tokens":
		s.logins++
		var body struct {
			Auth struct {
				Identity struct {
					Methods  []string
					Password struct {
						User struct {
							Name, Password string
							Domain         struct{ Name string }
						}
					}
				}
				Scope struct {
					Project *struct{ ID, Name string }
				}
			}
		}
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		s.bodies = append(s.bodies, m)
		json.Unmarshal(raw, &body)
		u := body.Auth.Identity.Password.User
		if u.Name != "alice" || u.Password != s.password || u.Domain.Name != "acme" || fmt.Sprint(body.Auth.Identity.Methods) != "[password]" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}`)
			return
		}
		p := body.Auth.Scope.Project
		pid := ""
		switch {
		case p == nil:
		case p.ID != "":
			pid = p.ID
		case p.Name == testRegion:
			pid = "looked-up-id"
		default:
			w.WriteHeader(400)
			return
		}
		tok := fmt.Sprintf("token-%d", s.logins)
		s.tokens[tok] = pid
		w.Header().Set("X-Subject-Token", tok)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"token":{"expires_at":"%s","project":{"id":"%s","name":"x"},"methods":["password"]}}`,
			s.clock.Now().Add(s.expireIn).Format("2006-01-02T15:04:05.000000Z"), pid)
	case strings.HasSuffix(r.URL.Path, "/kms/user-instances"):
		s.kmsCalls++
		tok := r.Header.Get("X-Auth-Token")
		pid, ok := s.tokens[tok]
		if s.expired[tok] {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"error_code":"KMS.0303","error_msg":"token expired"}}`)
			return
		}
		if !ok || pid != r.Header.Get("X-Project-Id") {
			w.WriteHeader(401)
			io.WriteString(w, `{"error_code":"APIGW.0301","error_msg":"bad token"}`)
			return
		}
		io.WriteString(w, `{"instance_num":3}`)
	default:
		w.WriteHeader(404)
	}
}

func newIAMTest(t *testing.T, password string) (*iamServer, *Client, *fakeclock.Clock, *[]RequestInfo) {
	clock := newFakeClock()
	s := &iamServer{tokens: map[string]string{}, expired: map[string]bool{}, expireIn: 24 * time.Hour, clock: clock, password: "s3cret"}
	srv := serveMem(t, s, nil)
	var mu sync.Mutex
	var seen []RequestInfo
	obs := func(ri RequestInfo) { mu.Lock(); seen = append(seen, ri); mu.Unlock() }
	auth := NewIAMPassword(IAMPasswordOptions{IAMEndpoint: srv.URL, DomainName: "acme", UserName: "alice", Password: password, Now: clock.Now})
	c := newTestClient(t, srv.URL, auth, func(o *CredentialOptions) { o.Now = clock.Now; o.Observer = obs })
	return s, c, clock, &seen
}

func TestIAMPasswordTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, c, clock, seen := newIAMTest(t, "s3cret")
		// Concurrent first calls: one login, and the token is reused.
		for _, err := range hammerInstances(t, c, 8) {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, err := range hammerInstances(t, c, 8) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if s.logins != 1 || s.kmsCalls != 16 {
			t.Fatalf("%d logins, %d KMS calls", s.logins, s.kmsCalls)
		}
		if scope := fmt.Sprint(s.bodies[0]["auth"].(map[string]any)["scope"]); scope != "map[project:map[id:"+testProject+"]]" {
			t.Errorf("scope %s", scope)
		}
		var iamSeen int
		for _, ri := range *seen {
			if ri.Endpoint == EndpointIAMToken {
				iamSeen++
				if ri.Code != "201" || ri.Region != "" {
					t.Errorf("observed %+v", ri)
				}
			}
		}
		if iamSeen != 1 {
			t.Errorf("observer saw %d logins", iamSeen)
		}

		// Shortly before expiry (within the last 10%, at most 30 min) the token
		// is replaced without waiting for a rejection.
		clock.Advance(23*time.Hour + 20*time.Minute)
		if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil || s.logins != 1 {
			t.Fatalf("%v, %d logins; token should still be used", err, s.logins)
		}
		clock.Advance(15 * time.Minute)
		if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil || s.logins != 2 {
			t.Fatalf("%v, %d logins; token should be refreshed", err, s.logins)
		}

		// The API says the token expired: log in again and retry once.
		s.mu.Lock()
		s.expired["token-2"] = true
		calls := s.kmsCalls
		s.mu.Unlock()
		if n, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil || n != 3 {
			t.Fatal(n, err)
		}
		if s.logins != 3 || s.kmsCalls != calls+2 {
			t.Errorf("%d logins, %d KMS calls after expiry", s.logins, s.kmsCalls-calls)
		}

		// Lookup by region logs in scoped to the project name.
		id, err := c.opts.Credential.LookupProject(ctxTimeout(t, 5*time.Second), testRegion)
		if err != nil || id != "looked-up-id" {
			t.Fatal(id, err)
		}
		if scope := fmt.Sprint(s.bodies[3]["auth"].(map[string]any)["scope"]); scope != "map[project:map[name:cn-north-4]]" {
			t.Errorf("scope %s", scope)
		}
	})
}

func hammerInstances(t *testing.T, c *Client, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = c.InstanceCount(ctxTimeout(t, 10*time.Second)) })
	}
	wg.Wait()
	return errs
}

func TestIAMPasswordTokenExpiredTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A token rejected again right after a fresh login is an auth failure,
		// not a loop of logins.
		s, c, _, _ := newIAMTest(t, "s3cret")
		s.mu.Lock()
		for i := 1; i < 10; i++ {
			s.expired[fmt.Sprint("token-", i)] = true
		}
		s.mu.Unlock()
		_, err := c.InstanceCount(ctxTimeout(t, 5*time.Second))
		if !isAuthFailure(err) || s.logins != 2 || s.kmsCalls != 2 {
			t.Errorf("got %v after %d logins, %d calls", err, s.logins, s.kmsCalls)
		}
		if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); !errors.Is(err, lockout.ErrPaused) || s.logins != 2 {
			t.Errorf("got %v after %d logins", err, s.logins)
		}
	})
}

func TestIAMPasswordWrongPasswordPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, c, clock, _ := newIAMTest(t, "wrong-password-xyz")
		for _, err := range hammerInstances(t, c, 8) {
			if !isAuthFailure(err) {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "wrong-password-xyz") {
				t.Fatalf("error leaks the password: %v", err)
			}
		}
		_, err := c.opts.Credential.LookupProject(ctxTimeout(t, 5*time.Second), testRegion)
		if !errors.Is(err, lockout.ErrPaused) {
			t.Errorf("lookup: %v", err)
		}
		if s.logins != 1 || s.kmsCalls != 0 {
			t.Fatalf("%d logins, %d KMS calls; want 1, 0", s.logins, s.kmsCalls)
		}
		e := mustError(t, err)
		if e.Endpoint != EndpointIAMToken || e.StatusCode != 401 {
			t.Errorf("remembered %#v", e)
		}
		clock.Advance(31 * time.Second)
		hammerInstances(t, c, 8)
		if s.logins != 2 {
			t.Fatalf("%d logins after the pause, want 2", s.logins)
		}
	})
}

// metadataServer hands out temporary credentials and checks them on a KMS call.
type metadataServer struct {
	mu         sync.Mutex
	puts, gets int
	kmsCalls   int
	gen        int
	clock      *fakeclock.Clock
	life       time.Duration
	noToken    bool
	status     int
	current    [3]string // ak, sk, security token
	sessionTok string
}

func (s *metadataServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/meta-data/latest/api/token":
		s.puts++
		if s.noToken {
			w.WriteHeader(404)
			return
		}
		if r.Header.Get("X-Metadata-Token-Ttl-Seconds") == "" {
			w.WriteHeader(400)
			return
		}
		s.sessionTok = fmt.Sprint("session-", s.puts)
		io.WriteString(w, s.sessionTok)
	case r.Method == http.MethodGet && r.URL.Path == "/openstack/latest/securitykey":
		s.gets++
		if s.status != 0 {
			w.WriteHeader(s.status)
			return
		}
		if !s.noToken && r.Header.Get("X-Metadata-Token") != s.sessionTok {
			w.WriteHeader(401)
			return
		}
		s.gen++
		s.current = [3]string{fmt.Sprint("TMPAK", s.gen), fmt.Sprint("tmp-secret-", s.gen), fmt.Sprint("sectok-", s.gen)}
		fmt.Fprintf(w, `{"credential":{"access":"%s","secret":"%s","securitytoken":"%s","expires_at":"%s"}}`,
			s.current[0], s.current[1], s.current[2], s.clock.Now().Add(s.life).Format("2006-01-02T15:04:05.000000Z"))
	case strings.HasSuffix(r.URL.Path, "/kms/user-instances"):
		s.kmsCalls++
		if err := verifyAKSK(r, nil, s.current[0], s.current[1], s.current[2]); err != nil {
			w.WriteHeader(401)
			io.WriteString(w, `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information"}`)
			return
		}
		io.WriteString(w, `{"instance_num":"5"}`)
	default:
		w.WriteHeader(404)
	}
}

func TestECSMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, noToken := range []bool{false, true} {
			clock := newFakeClock()
			s := &metadataServer{clock: clock, life: time.Hour, noToken: noToken}
			srv := serveMem(t, s, nil)
			var ecsSeen atomic.Int64
			auth := NewECSMetadata(ECSMetadataOptions{Endpoint: srv.URL, HTTPClient: memClient(t, nil), Now: clock.Now})
			c := newTestClient(t, srv.URL, auth, func(o *CredentialOptions) {
				o.Now = clock.Now
				o.Observer = func(ri RequestInfo) {
					if ri.Endpoint == EndpointECSMetadata {
						ecsSeen.Add(1)
					}
				}
			})
			for _, err := range hammerInstances(t, c, 8) {
				if err != nil {
					t.Fatal(err)
				}
			}
			if s.gets != 1 || s.puts != 1 || s.kmsCalls != 8 || ecsSeen.Load() != 2 {
				t.Fatalf("noToken=%v: %d puts, %d gets, %d calls, %d observed", noToken, s.puts, s.gets, s.kmsCalls, ecsSeen.Load())
			}
			// Refreshed once less than 15 minutes are left.
			clock.Advance(44 * time.Minute)
			c.InstanceCount(ctxTimeout(t, 5*time.Second))
			if s.gets != 1 {
				t.Fatalf("refreshed too early")
			}
			clock.Advance(2 * time.Minute)
			if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil || s.gets != 2 {
				t.Fatalf("%v, %d gets: not refreshed", err, s.gets)
			}
			// Rotated early by the service: the 401 fetches new ones, once.
			s.mu.Lock()
			s.current[1] = "rotated"
			s.mu.Unlock()
			if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil || s.gets != 3 {
				t.Fatalf("%v, %d gets after rotation", err, s.gets)
			}
		}
	})
}

func TestECSMetadataFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := newFakeClock()
		s := &metadataServer{clock: clock, life: time.Hour, status: 401}
		srv := serveMem(t, s, nil)
		c := newTestClient(t, srv.URL, NewECSMetadata(ECSMetadataOptions{Endpoint: srv.URL, HTTPClient: memClient(t, nil), Now: clock.Now}), func(o *CredentialOptions) { o.Now = clock.Now })
		for _, err := range hammerInstances(t, c, 4) {
			if !isAuthFailure(err) {
				t.Fatal(err)
			}
		}
		if s.gets != 1 || s.kmsCalls != 0 {
			t.Errorf("%d gets, %d calls", s.gets, s.kmsCalls)
		}

		// A 404 (no agency) is an error but no auth failure; bodies are checked.
		for status, want := range map[int]string{404: "HTTP 404", 200: "lacks access or secret"} {
			s := &metadataServer{clock: clock, life: time.Hour, status: status}
			if status == 200 {
				s.status = 0
				s.current = [3]string{"", "", ""}
			}
			srv := serveMem(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if status == 200 && r.URL.Path == "/openstack/latest/securitykey" {
					io.WriteString(w, `{"credential":{"access":"","secret":"top-secret","expires_at":"2030-01-01T00:00:00Z"}}`)
					return
				}
				s.ServeHTTP(w, r)
			}), nil)
			c := newTestClient(t, srv.URL, NewECSMetadata(ECSMetadataOptions{Endpoint: srv.URL, HTTPClient: memClient(t, nil), Now: clock.Now}))
			_, err := c.InstanceCount(ctxTimeout(t, 5*time.Second))
			if err == nil || isAuthFailure(err) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "top-secret") {
				t.Errorf("%d: got %v", status, err)
			}
		}
	})
}

func TestTemporaryAKSK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { io.WriteString(w, `{"instance_num":1}`) })
		h.token = "temp-security-token"
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "temp-security-token"))
		if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		// The same pair without the token is refused.
		c = newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		if _, err := c.InstanceCount(ctxTimeout(t, 5*time.Second)); !isAuthFailure(err) {
			t.Fatal(err)
		}
	})
}
