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

// identify names the state of a credential in the pause store by its
// public identity, or by its name for an authenticator without one, and
// tells what to check after a 401.
func identify(o CredentialOptions) (pauseID, hint string) {
	id, hint := o.Auth.identity()
	sum := sha256.Sum256([]byte(cmp.Or(id, "name\x00"+o.Name)))
	return hex.EncodeToString(sum[:]), hint
}

// errEarlierFailure stands for the failure behind a pause read back from
// the store.
var errEarlierFailure = errors.New("authentication failed before the last restart or reload")

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
