package kmsapi_test

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

func traceText(t *testing.T, tr *apitrace.Trace) string {
	t.Helper()
	var b strings.Builder
	if _, err := tr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// traceLines splits a trace into its lines, each checked against pattern.
func traceLines(t *testing.T, text string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Fatalf("trace has %d lines, want %d:\n%s", len(lines), len(patterns), text)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			t.Errorf("trace line %d:\n%s\ndoes not match %s", i+1, lines[i], p)
		}
	}
}

func TestTraceRecordsAttemptsRetriesAndPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 3, Projects: 1, KeysPerProject: 5})
		p := sc.Projects[0]
		srv := start(t, sc)
		clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		c := newClient(t, srv, p, kmsapi.NewAKSK(sc.AccessKeys[0].AK, sc.AccessKeys[0].SK, ""), func(o *kmsapi.CredentialOptions) { o.Now = clk.Now })

		// A success: one line.
		tr := apitrace.New()
		ctx := apitrace.With(ctxFor(t, 30*time.Second), tr)
		if _, err := c.Quotas(ctx); err != nil {
			t.Fatal(err)
		}
		url := regexp.QuoteMeta(srv.URL() + "/v1.0/" + p.ID + "/kms/user-quotas")
		traceLines(t, traceText(t, tr),
			`^at=\+\S+ endpoint=user-quotas attempt=1 method=GET url=`+url+` status=200 duration=\S+ request_id=[0-9a-f]+ rate_limit_wait=\S+( slot_wait=\S+)?$`)

		// A 503 every time: three attempts, the later two after a backoff.
		srv.SetFault(kmsapi.EndpointInstances, kmsfake.Fault{Status: http.StatusServiceUnavailable})
		tr = apitrace.New()
		ctx = apitrace.With(ctxFor(t, 30*time.Second), tr)
		if _, err := c.InstanceCount(ctx); err == nil {
			t.Fatal("want an error")
		}
		attempt := func(n int, backoff string) string {
			return `^at=\S+ endpoint=user-instances attempt=` + string(rune('0'+n)) + ` method=GET url=\S+ status=503 duration=\S+ request_id=[0-9a-f]+ rate_limit_wait=\S+( slot_wait=\S+)?` + backoff + ` err="user-instances: HTTP 503 KMS.0101: Internal error. \(request_id=[0-9a-f]+\)"$`
		}
		traceLines(t, traceText(t, tr), attempt(1, ""), attempt(2, ` backoff=\S+`), attempt(3, ` backoff=\S+`))
		srv.ClearFaults()

		// A 401 pauses the credential: the next call is refused, and the trace says until when.
		srv.SetFault(kmsapi.EndpointQuotas, kmsfake.Fault{Status: http.StatusUnauthorized})
		tr = apitrace.New()
		ctx = apitrace.With(ctxFor(t, 30*time.Second), tr)
		if _, err := c.Quotas(ctx); err == nil {
			t.Fatal("want an error")
		}
		if _, err := c.InstanceCount(ctx); err == nil {
			t.Fatal("want an error while paused")
		}
		until := clk.Now().Add(authPauseMin).UTC().Format(time.RFC3339)
		traceLines(t, traceText(t, tr),
			`^at=\S+ endpoint=user-quotas attempt=1 method=GET url=\S+ status=401 duration=\S+ request_id=\S+ rate_limit_wait=\S+( slot_wait=\S+)? err="user-quotas: HTTP 401 APIGW.0301: .*"$`,
			`^at=\S+ msg="user-instances: not sent: credential fake paused until `+until+` after user-quotas: HTTP 401 APIGW.0301: .*"$`)
		gotUntil, cause, paused := c.Credential().PausedUntil()
		if e, ok := errors.AsType[*kmsapi.Error](cause); !paused || gotUntil.UTC().Format(time.RFC3339) != until || !ok || e.StatusCode != 401 {
			t.Errorf("PausedUntil = %v, %v, %v; want paused until %s by the 401", gotUntil, cause, paused, until)
		}
		clk.Advance(authPauseMin)
		if _, _, paused := c.Credential().PausedUntil(); paused {
			t.Error("still paused after the pause")
		}
	})
}

// TestTraceHoldsNoSecret traces every kind of call, the IAM login included,
// and looks for the secrets, the signature and the token in the trace.
func TestTraceHoldsNoSecret(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 4, Projects: 1, KeysPerProject: 30})
	p := sc.Projects[0]
	ak := sc.AccessKeys[0]
	user := sc.Users[0]
	for name, auth := range map[string]func() kmsapi.Authenticator{
		"aksk": func() kmsapi.Authenticator { return kmsapi.NewAKSK(ak.AK, ak.SK, "") },
		"iam": func() kmsapi.Authenticator {
			return kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{DomainName: user.Domain, UserName: user.Name, Password: user.Password})
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := start(t, sc)
				c := newClient(t, srv, p, auth())
				tr := apitrace.New()
				ctx := apitrace.With(ctxFor(t, 30*time.Second), tr)
				if _, err := c.Quotas(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.ListKeys(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Credential().LookupProject(ctx, p.Region); err != nil {
					t.Fatal(err)
				}
				text := traceText(t, tr)
				for _, s := range []string{ak.SK, user.Password, "Signature", "Authorization", "X-Auth-Token", "MIIFake", "X-Security-Token"} {
					if strings.Contains(text, s) {
						t.Errorf("trace holds %q:\n%s", s, text)
					}
				}
				for _, want := range []string{"endpoint=user-quotas", "endpoint=resource-instances"} {
					if !strings.Contains(text, want) {
						t.Errorf("trace lacks %s:\n%s", want, text)
					}
				}
				if name == "iam" && !strings.Contains(text, "endpoint=iam-token attempt=1 method=POST") {
					t.Errorf("trace lacks the IAM login:\n%s", text)
				}
			})
		})
	}
}

func TestTraceURLAndNotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 5, Projects: 1, KeysPerProject: 1})
		srv := start(t, sc)
		p := sc.Projects[0]
		// An endpoint given with a user and password: neither reaches the trace.
		cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "x", Auth: kmsapi.NewAKSK(sc.AccessKeys[0].AK, sc.AccessKeys[0].SK, ""), RequestsPerSecond: 1000, HTTPClient: srv.InMemoryClient()})
		if err != nil {
			t.Fatal(err)
		}
		withUser := strings.Replace(srv.URL(), "http://", "http://someone:hunter2@", 1)
		c, err := kmsapi.NewClient(kmsapi.ClientOptions{Region: p.Region, ProjectID: p.ID, Endpoint: withUser, Credential: cred})
		if err != nil {
			t.Fatal(err)
		}
		tr := apitrace.New()
		tr.Note("quotas: from the cache, fetched %s ago", "5s")
		c.Quotas(apitrace.With(ctxFor(t, 30*time.Second), tr))
		text := traceText(t, tr)
		if strings.Contains(text, "hunter2") || strings.Contains(text, "someone") {
			t.Errorf("trace holds the endpoint's user info:\n%s", text)
		}
		traceLines(t, text, `^at=\S+ msg="quotas: from the cache, fetched 5s ago"$`, `^at=\S+ endpoint=user-quotas attempt=1 method=GET url=http://kmsfake\.invalid/v1\.0/`+p.ID+`/kms/user-quotas `)
		if tr.Len() != 2 || tr.Calls() != 1 {
			t.Errorf("Len = %d, Calls = %d, want 2 and 1", tr.Len(), tr.Calls())
		}
	})
}
