package kmsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/internal/pausestore"
)

// The API locks an AK for everyone after five failed authentications in
// five minutes. A credential stays at lockoutBudget of them in any
// lockoutWindow, which leaves room for one restart without --storage.path,
// or for another tool that uses the same key.
const (
	lockoutWindow = 5 * time.Minute
	lockoutBudget = 3
)

// After an authentication failure a credential rests authPauseMin, doubled
// per consecutive failure up to authPauseMax.
const (
	authPauseMin = 30 * time.Second
	authPauseMax = 5 * time.Minute
)

// gate implements the pause after authentication failures and the single
// probe while the credential is not known to work.
type gate struct {
	mu    sync.Mutex
	ok    bool          // accepted since the last failure
	probe chan struct{} // non-nil while the single probe call is out; closed when it answers
	gen   uint64        // counts failures, so late answers of older calls are ignored
	last  *Error        // the failure that caused the pause
	// What the pause store keeps: the consecutive failures and the pause
	// after them (zero without failures), the last lockoutBudget failures,
	// oldest first, kept across successes.
	pausestore.State
}

// pausedError is returned while the credential rests: errors.Is(err,
// errCredentialPaused) holds, and errors.As finds the remembered *Error.
type pausedError struct {
	name  string
	until time.Time
	last  *Error
}

func (e *pausedError) Error() string {
	s := errCredentialPaused.Error()
	if e.name != "" {
		s = "credential " + e.name + ": " + s
	}
	return s + " (until " + e.until.UTC().Format(time.RFC3339) + "): " + e.last.Error()
}

func (e *pausedError) Unwrap() []error { return []error{errCredentialPaused, e.last} }

// PauseOf reports whether err is a call refused unsent because its
// credential is paused after an authentication failure, and until when.
func PauseOf(err error) (until time.Time, paused bool) {
	var p *pausedError
	if errors.As(err, &p) {
		return p.until, true
	}
	return time.Time{}, false
}

// enter waits until the call may go: returns the paused error during a
// pause, lets one probe through while the credential is unproven, and holds
// the others until the probe answers.
func (c *Credential) enter(ctx context.Context, endpoint string) (gen uint64, probe bool, err error) {
	g := &c.gate
	for {
		g.mu.Lock()
		gen, wait := g.gen, g.probe
		switch {
		case g.Failures > 0 && c.opts.Now().Before(g.PausedUntil):
			err := &pausedError{name: c.opts.Name, until: g.PausedUntil, last: g.last}
			g.mu.Unlock()
			apitrace.Note(ctx, "%s: not sent: credential %s paused until %s after %v", endpoint, err.name, err.until.UTC().Format(time.RFC3339), err.last)
			return 0, false, err
		case g.ok:
			g.mu.Unlock()
			return gen, false, nil
		case wait == nil:
			g.probe = make(chan struct{})
			g.mu.Unlock()
			return gen, true, nil
		}
		g.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, false, &Error{Endpoint: endpoint, Err: ctx.Err()}
		}
	}
}

// leave records what a call learnt about the credential. A 401 starts or
// lengthens the pause; any other answer from the API proves the credential
// (throttling and 5xx may come before authentication, so they prove nothing).
func (c *Credential) leave(gen uint64, probe bool, err error) {
	g := &c.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if probe {
		close(g.probe)
		g.probe = nil
	}
	e, isErr := errors.AsType[*Error](err)
	rejected := isErr && e.StatusCode == http.StatusUnauthorized
	if rejected {
		// Every 401 counts at the API, a late one too.
		g.Recent = append(g.Recent, c.opts.Now())
		g.Recent = g.Recent[max(0, len(g.Recent)-lockoutBudget):]
	}
	if gen != g.gen {
		// Started before a newer failure: its answer says nothing new about
		// the credential, but a late 401 may push the pause out.
		if rejected && g.Failures > 0 {
			g.PausedUntil = later(g.PausedUntil, c.budgetEnd())
			c.savePause()
		}
		return
	}
	switch {
	case err == nil:
		c.proven()
	case rejected:
		g.gen++
		g.ok = false
		g.Failures++
		g.PausedUntil = c.pauseEnd(g.Failures)
		g.last, g.Endpoint, g.Code = e, e.Endpoint, e.Code
		c.opts.Auth.Invalidate()
		c.savePause()
		c.warn("msg", "authentication failed: credential paused, no call with it until the pause ends",
			"credential", c.opts.Name, "endpoint", e.Endpoint, "status", e.StatusCode, "error_code", e.Code, "request_id", e.RequestID,
			"failures", g.Failures, "pause", g.PausedUntil.Sub(c.opts.Now()).Round(time.Second), "until", g.PausedUntil.UTC().Format(time.RFC3339),
			"hint", c.hint)
	case isErr && (e.Endpoint == EndpointIAMToken || e.Endpoint == EndpointECSMetadata):
		// Login or metadata trouble other than a 401 says nothing yet.
	case isErr && e.StatusCode >= 200 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests:
		c.proven()
	}
}

// proven records an answer that got past authentication. c.gate.mu is held.
func (c *Credential) proven() {
	g := &c.gate
	g.ok, g.last = true, nil
	if g.Failures > 0 {
		g.Failures, g.PausedUntil, g.Endpoint, g.Code = 0, time.Time{}, "", ""
		c.savePause()
	}
}

// pauseEnd is when the pause after the failures-th consecutive failure
// ends, never before budgetEnd. c.gate.mu is held.
func (c *Credential) pauseEnd(failures int) time.Time {
	pause := min(authPauseMin<<min(failures-1, 10), authPauseMax)
	return later(c.opts.Now().Add(pause), c.budgetEnd())
}

// budgetEnd is when the oldest of the last lockoutBudget failures leaves
// the lockout window, so that one more attempt keeps the window at the
// budget; zero while fewer failures are known. We count a failure when its
// answer comes, after the API did, so the window is never shorter than the
// API's; a second more spares a clock step. c.gate.mu is held.
func (c *Credential) budgetEnd() time.Time {
	r := c.gate.Recent
	if len(r) < lockoutBudget {
		return time.Time{}
	}
	return r[len(r)-lockoutBudget].Add(lockoutWindow + time.Second)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// identify names the state of a credential in the pause store by its
// public identity, or by its name for an authenticator without one, and
// tells what to check after a 401.
func identify(o CredentialOptions) (pauseID, hint string) {
	id, hint := "name\x00"+o.Name, akskHint
	if i, ok := o.Auth.(identified); ok {
		var pub string
		if pub, hint = i.identity(); pub != "" {
			id = pub
		}
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:]), hint
}

// errEarlierFailure stands for the failure behind a pause read back from
// the store.
var errEarlierFailure = errors.New("authentication failed before the last restart or reload")

// restorePause starts the gate where the stored state left it: in a pause
// after a restart; within the lockout budget after a reload that changed
// the credential (a fixed secret is tried at once if the budget allows).
func (c *Credential) restorePause() {
	s := c.opts.PauseStore
	if s == nil {
		return
	}
	g := &c.gate
	st, thisProcess, ok := s.Load(g.ID, g.Credential)
	if !ok {
		return
	}
	now := c.opts.Now()
	for _, t := range st.Recent[max(0, len(st.Recent)-lockoutBudget):] {
		if t.After(now) { // a clock stepped back, an edited file
			t = now
		}
		g.Recent = append(g.Recent, t)
	}
	g.Failures = max(0, min(st.Failures, 64))
	if g.Failures == 0 {
		return
	}
	g.Endpoint, g.Code = st.Endpoint, st.Code
	g.last = &Error{Endpoint: st.Endpoint, StatusCode: http.StatusUnauthorized, Code: st.Code, Err: errEarlierFailure}
	g.PausedUntil = st.PausedUntil
	if thisProcess {
		g.PausedUntil = c.budgetEnd()
	}
	if !g.PausedUntil.After(now) {
		return // over: the first call goes alone, as after any pause
	}
	// No stored pause is longer than one this process would choose.
	if limit := now.Add(max(authPauseMax, lockoutWindow) + time.Second); g.PausedUntil.After(limit) {
		g.PausedUntil = limit
	}
	c.warn("msg", "credential paused by earlier authentication failures; no call until the pause ends",
		"credential", c.opts.Name, "until", g.PausedUntil.UTC().Format(time.RFC3339), "hint", c.hint)
}

// savePause stores the gate's state. c.gate.mu is held.
func (c *Credential) savePause() {
	if s := c.opts.PauseStore; s != nil {
		s.Save(c.gate.State)
	}
}

func (c *Credential) warn(keyvals ...any) {
	if c.opts.Logger != nil {
		level.Warn(c.opts.Logger).Log(keyvals...)
	}
}

// PausedUntil reports whether the credential rests after an
// authentication failure, until when, and the failure that caused it.
func (c *Credential) PausedUntil() (until time.Time, cause *Error, paused bool) {
	g := &c.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Failures > 0 && c.opts.Now().Before(g.PausedUntil) {
		return g.PausedUntil, g.last, true
	}
	return time.Time{}, nil, false
}
