package kmsapi_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

const oidcSubject = "system:serviceaccount:monitoring:kms-exporter"

// oidcSetup is a fake account, a projected token file as Kubernetes keeps
// it, and a credential that exchanges the token, on one fake clock.
type oidcSetup struct {
	sc    kmsfake.Scenario
	srv   *kmsfake.Server
	clk   *fakeclock.Clock
	file  string
	reads atomic.Int32
	cred  *kmsapi.Credential
	trace *apitrace.Trace
	ctx   context.Context
	seen  []string // every ID token written
}

func newOIDCSetup(t *testing.T) *oidcSetup {
	s := &oidcSetup{sc: kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 2, KeysPerProject: 5})}
	s.srv = start(t, s.sc)
	s.clk = fakeclock.New(time.Now())
	s.srv.SetClock(s.clk.Now)
	s.file = filepath.Join(t.TempDir(), "oidc-token")
	auth := kmsapi.NewOIDC(kmsapi.OIDCOptions{
		IAMEndpoint: s.srv.URL(),
		IdpID:       kmsfake.ExampleIdentityProvider.ID,
		Now:         s.clk.Now,
		IDToken: func() (string, error) {
			s.reads.Add(1)
			b, err := os.ReadFile(s.file)
			if err != nil {
				return "", errors.New("id_token_file: " + err.Error())
			}
			return strings.TrimSpace(string(b)), nil
		},
	})
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "workload", Auth: auth, IAMEndpoint: s.srv.URL(), RequestsPerSecond: 1000, Now: s.clk.Now, HTTPClient: s.srv.InMemoryClient()})
	if err != nil {
		t.Fatal(err)
	}
	s.cred = cred
	s.trace = apitrace.New()
	s.ctx = apitrace.With(context.Background(), s.trace)
	return s
}

// rotate writes a fresh ID token, valid for an hour, as the kubelet does.
func (s *oidcSetup) rotate(t *testing.T) {
	tok := s.srv.IDToken(kmsfake.ExampleIdentityProvider.ID, oidcSubject, time.Hour)
	s.seen = append(s.seen, tok)
	if err := os.WriteFile(s.file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *oidcSetup) quotas(t *testing.T, p kmsfake.Project) error {
	t.Helper()
	c, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Endpoint: s.srv.URL(), Credential: s.cred})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	_, err = c.Quotas(ctx)
	return err
}

func (s *oidcSetup) exchanges() int { return s.srv.Requests(kmsapi.EndpointIAMToken) }

// callAfterRotation moves the clock on by d, rotates the token file, and
// checks that a call to p then succeeds, with want exchanges and as many
// token file reads in all.
func (s *oidcSetup) callAfterRotation(t *testing.T, d time.Duration, p kmsfake.Project, want int) {
	t.Helper()
	s.clk.Advance(d)
	s.rotate(t)
	if err := s.quotas(t, p); err != nil {
		t.Fatal(err)
	}
	if n, r := s.exchanges(), s.reads.Load(); n != want || r != int32(want) {
		t.Errorf("%d exchanges, %d token file reads; want %d, %d", n, r, want, want)
	}
}

// noSecrets holds errors and the debug trace free of every ID token and
// IAM token.
func (s *oidcSetup) noSecrets(t *testing.T, errs ...error) {
	t.Helper()
	var b bytes.Buffer
	s.trace.WriteTo(&b)
	for _, err := range errs {
		if err != nil {
			b.WriteString(err.Error())
		}
	}
	for _, tok := range s.seen {
		if strings.Contains(b.String(), tok) || strings.Contains(b.String(), tok[strings.LastIndex(tok, ".")+1:]) {
			t.Error("an ID token in an error or the trace")
		}
	}
	if strings.Contains(b.String(), "MIIFake") {
		t.Error("an IAM token in an error or the trace")
	}
}

// One token per project, cached; a project looked up by its name.
func TestOIDCTokenPerProject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newOIDCSetup(t)
		s.rotate(t)
		for range 3 {
			for _, p := range s.sc.Projects {
				if err := s.quotas(t, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := s.exchanges(); n != 2 {
			t.Errorf("%d exchanges for 2 projects, want 2", n)
		}
		p := s.sc.Projects[1]
		id, err := s.cred.LookupProject(s.ctx, p.Region)
		if err != nil || id != p.ID {
			t.Fatalf("LookupProject = %q, %v; want %s", id, err, p.ID)
		}
		// Close to its expiry a token is exchanged for a new one.
		s.callAfterRotation(t, 23*time.Hour+45*time.Minute, s.sc.Projects[0], 4)
		s.noSecrets(t)
	})
}

// Kubernetes rotates the token file: every exchange reads it afresh.
func TestOIDCRotatedTokenFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newOIDCSetup(t)
		p := s.sc.Projects[0]
		s.rotate(t)
		if err := s.quotas(t, p); err != nil {
			t.Fatal(err)
		}
		// The first ID token has expired; the file holds a new one. KMS
		// refuses the cached IAM token: the credential exchanges again, with
		// the new ID token, and the call succeeds.
		s.srv.ExpireTokens()
		s.callAfterRotation(t, 2*time.Hour, p, 2)
		s.noSecrets(t)
	})
}

// An expired ID token is refused (401): the credential pauses like any
// other kind, without asking IAM again, until the pause is over.
func TestOIDCExpiredIDTokenPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newOIDCSetup(t)
		p := s.sc.Projects[0]
		s.rotate(t)
		s.clk.Advance(2 * time.Hour) // the kubelet stopped rotating
		err := s.quotas(t, p)
		if !isAuthFailure(err) {
			t.Fatalf("got %v, want a 401", err)
		}
		before := s.srv.Requests("")
		var errs []error
		for range 5 {
			err := s.quotas(t, p)
			if !isPaused(err) {
				t.Fatalf("got %v, want the pause", err)
			}
			errs = append(errs, err)
		}
		if n := s.srv.Requests(""); n != before {
			t.Errorf("%d requests during the pause", n-before)
		}
		s.rotate(t)
		s.clk.Advance(6 * time.Minute)
		if err := s.quotas(t, p); err != nil {
			t.Fatalf("after the pause, with a fresh token: %v", err)
		}
		s.noSecrets(t, append(errs, err)...)
	})
}

// A token file that is not there yet is a clear error, not an
// authentication failure: nothing is sent, nothing paused.
func TestOIDCMissingTokenFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newOIDCSetup(t)
		p := s.sc.Projects[0]
		err := s.quotas(t, p)
		if err == nil || !strings.Contains(err.Error(), "id_token_file: ") || !strings.Contains(err.Error(), s.file) || isPaused(err) || isAuthFailure(err) {
			t.Fatalf("got %v", err)
		}
		if n := s.srv.Requests(""); n != 0 {
			t.Errorf("%d requests without a token", n)
		}
		s.rotate(t)
		if err := s.quotas(t, p); err != nil {
			t.Fatalf("once the file is there: %v", err)
		}
	})
}
