package kmsapi

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/lockout"
)

// verdict is what err, the outcome of a call, says about the credential: a
// 401 rejects it; any other answer from the API proves it, but throttling
// and 5xx may come before authentication, so they prove nothing.
func verdict(err error) (lockout.Verdict, lockout.Failure) {
	if err == nil {
		return lockout.Accepted, lockout.Failure{}
	}
	e, ok := errors.AsType[*Error](err)
	switch {
	case !ok:
	case e.StatusCode == http.StatusUnauthorized:
		return lockout.Rejected, lockout.Failure{Endpoint: e.Endpoint, Code: e.Code, RequestID: e.RequestID, Err: e}
	case e.Endpoint == EndpointIAMToken || e.Endpoint == EndpointECSMetadata:
		// Login or metadata trouble other than a 401 says nothing yet.
	case e.StatusCode >= 200 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests:
		return lockout.Accepted, lockout.Failure{}
	}
	return lockout.Unknown, lockout.Failure{}
}

// newGate builds the lockout gate of a credential. Its state in the pause
// store is named by its public identity, or by its name for an
// authenticator without one.
func newGate(o CredentialOptions) *lockout.Gate {
	id, hint := o.Auth.identity()
	sum := sha256.Sum256([]byte(cmp.Or(id, "name\x00"+o.Name)))
	return lockout.NewGate(lockout.Options{Name: o.Name, ID: hex.EncodeToString(sum[:]), Hint: hint,
		Store: o.PauseStore, Logger: o.Logger, Now: o.Now, Restored: restoredFailure})
}

// restoredFailure stands for the failure behind a pause read back from the
// store.
func restoredFailure(endpoint, code string) error {
	return &Error{Endpoint: endpoint, StatusCode: http.StatusUnauthorized, Code: code,
		Err: errors.New("authentication failed before the last restart or reload")}
}

// PauseOf reports whether err is a call refused unsent because its
// credential is paused after an authentication failure, and until when.
func PauseOf(err error) (until time.Time, paused bool) {
	if p, ok := errors.AsType[*lockout.PausedError](err); ok {
		return p.Until, true
	}
	return time.Time{}, false
}

// PausedUntil reports whether the credential rests after an
// authentication failure, until when, and the failure that caused it.
func (c *Credential) PausedUntil() (until time.Time, cause error, paused bool) {
	return c.gate.Paused()
}
