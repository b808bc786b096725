package lockout

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newGate(t *testing.T, clk *fakeclock.Clock, store *Store) *Gate {
	t.Helper()
	return NewGate(Options{Name: "test", ID: "id", Store: store, Now: clk.Now,
		Restored: func(endpoint, code string) error { return errors.New("restored " + endpoint + " " + code) }})
}

func enter(t *testing.T, g *Gate) Ticket {
	t.Helper()
	tk, err := g.Enter(t.Context())
	if err != nil {
		t.Fatalf("Enter: %v", err)
	}
	return tk
}

func reject(g *Gate, t Ticket) bool {
	return g.Leave(t, Rejected, Failure{Endpoint: "user-quotas", Code: "APIGW.0301", Err: errors.New("HTTP 401")})
}

func wantPausedFor(t *testing.T, g *Gate, clk *fakeclock.Clock, want time.Duration) {
	t.Helper()
	until, cause, paused := g.Paused()
	if !paused || until.Sub(clk.Now()) != want || cause == nil {
		t.Fatalf("Paused() = %v, %v, %v; want paused for %v", until.Sub(clk.Now()), cause, paused, want)
	}
	if _, err := g.Enter(t.Context()); !errors.Is(err, ErrPaused) {
		t.Fatalf("Enter during the pause: %v, want ErrPaused", err)
	}
}

// The pause doubles per failure, and the third failure in five minutes
// holds the credential until the first leaves the window.
func TestPauseScheduleAndBudget(t *testing.T) {
	clk := fakeclock.New(start)
	g := newGate(t, clk, nil)
	if !reject(g, enter(t, g)) {
		t.Fatal("the first rejection did not start a pause")
	}
	wantPausedFor(t, g, clk, pauseMin)
	clk.Advance(pauseMin)
	reject(g, enter(t, g))
	wantPausedFor(t, g, clk, 2*pauseMin)
	clk.Advance(2 * pauseMin)
	reject(g, enter(t, g)) // at 90 s: the budget ends at 301 s, later than 90+120 s
	wantPausedFor(t, g, clk, 301*time.Second-90*time.Second)
	clk.Advance(211 * time.Second)
	if g.Leave(enter(t, g), Accepted, Failure{}) {
		t.Error("an accepted call reported a pause")
	}
	if _, _, paused := g.Paused(); paused {
		t.Error("still paused after an accepted call")
	}
}

// Rejections of calls that started before the pause count towards the
// budget, as they do at the API.
func TestLateRejectionsPushThePause(t *testing.T) {
	clk := fakeclock.New(start)
	g := newGate(t, clk, nil)
	g.Leave(enter(t, g), Accepted, Failure{})
	t1, t2, t3 := enter(t, g), enter(t, g), enter(t, g)
	if !reject(g, t1) || reject(g, t2) {
		t.Fatal("want only the first rejection to start a pause")
	}
	wantPausedFor(t, g, clk, pauseMin)
	reject(g, t3)
	wantPausedFor(t, g, clk, window+time.Second)
}

// While the credential is unproven one call goes; the others wait for its
// answer, or for their context.
func TestSingleProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(t, fakeclock.New(start), nil)
		probe := enter(t, g)
		entered := make(chan error, 1)
		go func() {
			_, err := g.Enter(t.Context())
			entered <- err
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := g.Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a second caller with a deadline: %v, want DeadlineExceeded", err)
		}
		synctest.Wait()
		select {
		case err := <-entered:
			t.Fatalf("a second call entered (%v) while the probe was out", err)
		default:
		}
		g.Leave(probe, Unknown, Failure{}) // a 503 proves nothing
		if err := <-entered; err != nil {
			t.Fatalf("the waiting call after the probe answered: %v", err)
		}
	})
}

// A restart finds the pause in the store's directory; a reload (the same
// store) keeps only the budget, so a fixed secret is tried at once.
func TestStoredPause(t *testing.T) {
	clk := fakeclock.New(start)
	dir := t.TempDir()
	store, err := NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, clk, store)
	reject(g, enter(t, g))
	clk.Advance(10 * time.Second)

	restarted, err := NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantPausedFor(t, newGate(t, clk, restarted), clk, pauseMin-10*time.Second)
	_, cause, _ := newGate(t, clk, restarted).Paused()
	if cause == nil || cause.Error() != "restored user-quotas APIGW.0301" {
		t.Errorf("restored cause %v", cause)
	}
	_, cause, _ = NewGate(Options{Name: "test", ID: "id", Store: restarted, Now: clk.Now}).Paused()
	if cause == nil || cause.Error() != "user-quotas: HTTP 401 APIGW.0301" {
		t.Errorf("restored cause without Options.Restored: %v", cause)
	}

	if _, _, paused := newGate(t, clk, store).Paused(); paused {
		t.Error("a reload with one failure in the budget is paused")
	}
}
