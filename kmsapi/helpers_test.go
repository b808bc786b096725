package kmsapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/internal/sign"
)

const (
	testAK      = "TESTAKEXAMPLE0000001"
	testSK      = "testSecretKeyDoNotLeak0123456789"
	testProject = "0dea2644dc80d5d22ff1c01e3ebea6fc"
	testRegion  = "cn-north-4"
)

// Tests that call a server run in a testing/synctest bubble on the
// in-memory network (memnet_test.go): deadlines, backoffs and pauses run on
// the bubble's clock, and synctest.Wait stands in for any "long enough".

// newFakeClock is a settable clock for pauses and token lifetimes.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// verifyAKSK checks the SDK-HMAC-SHA256 signature of a request the way the
// API gateway does.
func verifyAKSK(r *http.Request, body []byte, ak, sk, token string) error {
	gotAK, signed, sig, err := sign.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if gotAK != ak {
		return errors.New("wrong AK")
	}
	if r.Header.Get(sign.HeaderSecToken) != token {
		return errors.New("wrong security token")
	}
	if sign.Signature(r, body, signed, sk, r.Header.Get(sign.HeaderSdkDate)) != sig {
		return errors.New("bad signature")
	}
	return nil
}

// kmsHandler answers like KMS for requests signed with testAK/testSK,
// delegating the answer to fn. It counts requests per path.
type kmsHandler struct {
	t     *testing.T
	ak    string
	sk    string
	token string
	fn    func(w http.ResponseWriter, r *http.Request, body []byte)
	count atomic.Int64
}

func (h *kmsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.count.Add(1)
	body, _ := io.ReadAll(r.Body)
	if err := verifyAKSK(r, body, h.ak, h.sk, h.token); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: `+err.Error()+`","request_id":"rid-401"}`)
		return
	}
	h.fn(w, r, body)
}

func newKMS(t *testing.T, fn func(w http.ResponseWriter, r *http.Request, body []byte)) (*testServer, *kmsHandler) {
	t.Helper()
	h := &kmsHandler{t: t, ak: testAK, sk: testSK, fn: fn}
	return serveMem(t, h, nil), h
}

type testOpt func(*CredentialOptions)

func newTestClient(t *testing.T, url string, auth Authenticator, opts ...testOpt) *Client {
	t.Helper()
	o := CredentialOptions{Name: "test", Auth: auth, RequestsPerSecond: 1000, IAMEndpoint: url, HTTPClient: memClient(t, nil)}
	for _, f := range opts {
		f(&o)
	}
	cred, err := NewCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ClientOptions{Region: testRegion, ProjectID: testProject, Endpoint: url, Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The API locks an AK after five failed signatures in five minutes; a
// credential keeps to lockoutBudget of them in any lockoutWindow.
const (
	lockoutWindow = 5 * time.Minute
	lockoutBudget = 3
)

func mustError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	return e
}

// statusOf is the HTTP status a call failed with; 0 without an *Error.
func statusOf(err error) int {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.StatusCode
	}
	return 0
}

func statusIs(code int) func(error) bool {
	return func(err error) bool { return statusOf(err) == code }
}

func isServerError(err error) bool { return statusOf(err) >= 500 }

// isAuthFailure: the API rejected the credentials, or the call was refused
// unsent because the credential is paused after that.
func isAuthFailure(err error) bool {
	return errors.Is(err, lockout.ErrPaused) || statusOf(err) == http.StatusUnauthorized
}
