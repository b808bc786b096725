package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestConcurrentCallersShareOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, string]
		var calls atomic.Int32
		release := make(chan struct{})
		fn := func(context.Context) (string, error) {
			calls.Add(1)
			<-release
			return "v", nil
		}
		var wg sync.WaitGroup
		results := make([]string, 20)
		for i := range results {
			wg.Go(func() {
				v, err := g.Do(context.Background(), "k", fn)
				if err != nil {
					t.Error(err)
				}
				results[i] = v
			})
		}
		synctest.Wait() // all twenty wait on the one call
		close(release)
		wg.Wait()
		if calls.Load() != 1 {
			t.Errorf("fn called %d times, want 1", calls.Load())
		}
		for _, r := range results {
			if r != "v" {
				t.Fatalf("result %q", r)
			}
		}
		// The call is over: the next Do calls again.
		if _, err := g.Do(context.Background(), "k", fn); err != nil || calls.Load() != 2 {
			t.Errorf("second call: err %v, calls %d", err, calls.Load())
		}
		// Another key is another call.
		if _, err := g.Do(context.Background(), "other", fn); err != nil || calls.Load() != 3 {
			t.Errorf("other key: err %v, calls %d", err, calls.Load())
		}
	})
}

func TestCallCancelledWhenEveryCallerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, string]
		cancelled := make(chan struct{})
		fn := func(ctx context.Context) (string, error) {
			<-ctx.Done()
			close(cancelled)
			return "", ctx.Err()
		}
		short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := g.Do(short, "k", fn); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		synctest.Wait()
		select {
		case <-cancelled:
		default:
			t.Fatal("call not cancelled after its only caller left")
		}
		// A new caller starts a fresh call instead of joining the cancelled one.
		v, err := g.Do(context.Background(), "k", func(context.Context) (string, error) { return "fresh", nil })
		if err != nil || v != "fresh" {
			t.Fatalf("after cancel: %q %v", v, err)
		}
	})
}

func TestCallSurvivesOneCallerLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, string]
		release := make(chan struct{})
		fn := func(ctx context.Context) (string, error) {
			select {
			case <-release:
				return "v", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		// The first caller has the shortest deadline; its call outlives it.
		short, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := g.Do(short, "k", fn)
			done <- err
		}()
		synctest.Wait()
		long := make(chan string, 1)
		go func() {
			v, err := g.Do(context.Background(), "k", fn)
			if err != nil {
				v = err.Error()
			}
			long <- v
		}()
		time.Sleep(2 * time.Second) // past the first caller's deadline
		if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first caller: %v", err)
		}
		close(release)
		if v := <-long; v != "v" {
			t.Fatalf("remaining caller got %q, want v", v)
		}
	})
}

func TestCallKeepsValuesNotDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, string]
		type key struct{}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "trace"), time.Minute)
		defer cancel()
		v, err := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
			if _, ok := ctx.Deadline(); ok {
				return "", errors.New("call inherited the caller's deadline")
			}
			s, _ := ctx.Value(key{}).(string)
			return s, nil
		})
		if err != nil || v != "trace" {
			t.Fatalf("got %q %v", v, err)
		}
	})
}
