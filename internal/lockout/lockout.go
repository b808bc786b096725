// Package lockout keeps a wrong secret from locking its access key. The API
// locks an AK for everyone after five failed authentications in five
// minutes; a Gate stays at three in any five minutes, which leaves room for
// one restart without a Store directory, or for another tool that uses the
// same key.
//
// A Gate pauses its credential after each failure, 30 s doubled per
// consecutive failure up to 5 min, and never ends a pause before a fourth
// attempt would fit the budget. Until the credential has been accepted
// once, and again after each pause, one call goes through and concurrent
// ones wait for its answer: with a wrong secret only that one reaches the
// API.
package lockout

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

const (
	window   = 5 * time.Minute
	budget   = 3
	pauseMin = 30 * time.Second // the first pause
	pauseMax = 5 * time.Minute  // the longest, once doubling reaches it
)

// Options configure a Gate.
type Options struct {
	Name  string // the credential's name, for errors and logs
	ID    string // the Store's key: a hash of the credential's public identity
	Hint  string // what to check after a failure
	Store *Store // nil: the gate starts afresh and keeps nothing
	// Restored builds the cause of a pause read back from the Store; by
	// default an error naming the endpoint and error code.
	Restored func(endpoint, code string) error
	Logger   log.Logger
	Now      func() time.Time
}

// Gate is the pause and the single probe of one credential.
type Gate struct {
	o     Options
	mu    sync.Mutex
	ok    bool          // accepted since the last failure
	probe chan struct{} // non-nil while the single probe call is out; closed when it answers
	gen   uint64        // counts failures, so late answers of older calls are ignored
	last  error         // the failure that caused the pause
	st    state         // what the Store keeps
}

// Ticket is a call Enter let through, for Leave.
type Ticket struct {
	gen   uint64
	probe bool
}

// Verdict is what a call's answer says about its credential.
type Verdict int

const (
	Unknown  Verdict = iota // no answer, or one that may come before authentication (429, 5xx)
	Accepted                // an answer past authentication
	Rejected                // authentication failed (401)
)

// Failure describes a rejected call.
type Failure struct {
	Endpoint, Code, RequestID string
	Err                       error // the call's error, the cause of the pause
}

// ErrPaused matches (errors.Is) every call refused during a pause.
var ErrPaused = errors.New("credential paused after an authentication failure")

// PausedError is a call refused during a pause; errors.As also finds the
// failure that caused it.
type PausedError struct {
	Credential string
	Until      time.Time
	Cause      error
}

func (e *PausedError) Error() string {
	s := ErrPaused.Error()
	if e.Credential != "" {
		s = "credential " + e.Credential + ": " + s
	}
	return s + " (until " + e.Until.UTC().Format(time.RFC3339) + "): " + e.Cause.Error()
}

func (e *PausedError) Unwrap() []error { return []error{ErrPaused, e.Cause} }

// NewGate builds a Gate that starts where the Store left the credential: in
// a pause after a restart; within the budget after a reload that changed
// the credential (a fixed secret is tried at once if the budget allows).
func NewGate(o Options) *Gate {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Restored == nil {
		o.Restored = func(endpoint, code string) error { return errors.New(endpoint + ": HTTP 401 " + code) }
	}
	g := &Gate{o: o, st: state{ID: o.ID, Credential: o.Name}}
	if o.Store == nil {
		return g
	}
	st, thisProcess, ok := o.Store.Load(o.ID, o.Name)
	if !ok {
		return g
	}
	now := o.Now()
	for _, t := range st.Recent[max(0, len(st.Recent)-budget):] {
		if t.After(now) { // a clock stepped back, an edited file
			t = now
		}
		g.st.Recent = append(g.st.Recent, t)
	}
	g.st.Failures = max(0, min(st.Failures, 64))
	if g.st.Failures == 0 {
		return g
	}
	g.st.Endpoint, g.st.Code = st.Endpoint, st.Code
	g.last = o.Restored(st.Endpoint, st.Code)
	g.st.PausedUntil = st.PausedUntil
	if thisProcess {
		g.st.PausedUntil = g.budgetEnd()
	}
	if !g.st.PausedUntil.After(now) {
		return g // over: the first call goes alone, as after any pause
	}
	// No stored pause is longer than one this process would choose.
	if limit := now.Add(max(pauseMax, window) + time.Second); g.st.PausedUntil.After(limit) {
		g.st.PausedUntil = limit
	}
	level.Warn(o.Logger).Log("msg", "credential paused by earlier authentication failures; no call until the pause ends",
		"credential", o.Name, "until", g.st.PausedUntil.UTC().Format(time.RFC3339), "hint", o.Hint)
	return g
}

// Enter waits until a call may go: it returns a *PausedError during a
// pause, lets one probe through while the credential is unproven, and holds
// the others until the probe answers, or until ctx ends (ctx.Err()).
func (g *Gate) Enter(ctx context.Context) (Ticket, error) {
	for {
		g.mu.Lock()
		t, wait := Ticket{gen: g.gen}, g.probe
		switch {
		case g.pausedLocked():
			err := &PausedError{Credential: g.o.Name, Until: g.st.PausedUntil, Cause: g.last}
			g.mu.Unlock()
			return Ticket{}, err
		case g.ok:
			g.mu.Unlock()
			return t, nil
		case wait == nil:
			g.probe, t.probe = make(chan struct{}), true
			g.mu.Unlock()
			return t, nil
		}
		g.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return Ticket{}, ctx.Err()
		}
	}
}

// Leave records what the call of t learnt about the credential. A
// rejection starts or lengthens the pause; it reports whether it started
// one, for the caller to drop cached tokens. f is read only when rejected.
func (g *Gate) Leave(t Ticket, v Verdict, f Failure) (paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.probe {
		close(g.probe)
		g.probe = nil
	}
	now := g.o.Now()
	if v == Rejected {
		// Every rejection counts at the API, a late one too.
		g.st.Recent = append(g.st.Recent, now)
		g.st.Recent = g.st.Recent[max(0, len(g.st.Recent)-budget):]
	}
	switch {
	case t.gen != g.gen:
		// Started before a newer failure: its answer says nothing new about
		// the credential, but a late rejection may push the pause out.
		if v == Rejected && g.st.Failures > 0 {
			g.st.PausedUntil = later(g.st.PausedUntil, g.budgetEnd())
			g.save()
		}
	case v == Accepted:
		g.ok, g.last = true, nil
		if g.st.Failures > 0 {
			g.st.Failures, g.st.PausedUntil, g.st.Endpoint, g.st.Code = 0, time.Time{}, "", ""
			g.save()
		}
	case v == Rejected:
		g.gen++
		g.ok = false
		g.st.Failures++
		pause := min(pauseMin<<min(g.st.Failures-1, 10), pauseMax)
		g.st.PausedUntil = later(now.Add(pause), g.budgetEnd())
		g.last, g.st.Endpoint, g.st.Code = f.Err, f.Endpoint, f.Code
		g.save()
		level.Warn(g.o.Logger).Log("msg", "authentication failed: credential paused, no call with it until the pause ends",
			"credential", g.o.Name, "endpoint", f.Endpoint, "status", 401, "error_code", f.Code, "request_id", f.RequestID,
			"failures", g.st.Failures, "pause", g.st.PausedUntil.Sub(now).Round(time.Second), "until", g.st.PausedUntil.UTC().Format(time.RFC3339),
			"hint", g.o.Hint)
		return true
	}
	return false
}

// budgetEnd is when the oldest of the last budget failures leaves the
// window, so that one more attempt keeps the window at the budget; zero
// while fewer failures are known. A failure is counted when its answer
// comes, after the API counted it, so the window is never shorter than the
// API's; a second more spares a clock step. g.mu is held.
func (g *Gate) budgetEnd() time.Time {
	r := g.st.Recent
	if len(r) < budget {
		return time.Time{}
	}
	return r[len(r)-budget].Add(window + time.Second)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (g *Gate) pausedLocked() bool {
	return g.st.Failures > 0 && g.o.Now().Before(g.st.PausedUntil)
}

// save stores the state. g.mu is held.
func (g *Gate) save() {
	if g.o.Store != nil {
		g.o.Store.Save(g.st)
	}
}

// Paused reports whether the credential rests after an authentication
// failure, until when, and the failure that caused it.
func (g *Gate) Paused() (until time.Time, cause error, paused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pausedLocked() {
		return g.st.PausedUntil, g.last, true
	}
	return time.Time{}, nil, false
}
