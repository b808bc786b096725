package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

func TestSummarizeKeys(t *testing.T) {
	del := time.Unix(1700000000, 500e6)
	keys := []kmsapi.Key{
		{ID: "k1", State: kmsapi.StateEnabled, Tags: []kmsapi.Tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "a"}}},
		{ID: "k2", State: kmsapi.StateEnabled, Default: true, Tags: []kmsapi.Tag{{Key: "env", Value: "prod"}, {Key: "other", Value: "x"}}},
		{ID: "k3", State: kmsapi.StateDisabled, Tags: []kmsapi.Tag{{Key: "env", Value: "dev"}, {Key: "team", Value: "b\xff"}}},
		{ID: "k5", Alias: "gone", State: kmsapi.StatePendingDeletion, ScheduledDeletion: del},
		{ID: "k4", Alias: "gone2", State: kmsapi.StatePendingDeletion, ScheduledDeletion: del.Add(time.Hour)},
		{ID: "k4", Alias: "gone2", State: kmsapi.StatePendingDeletion, ScheduledDeletion: del.Add(time.Hour)}, // listed twice
		{ID: "k6", State: kmsapi.StatePendingDeletion},                                                        // no date: no series
		{ID: "k7", State: 9},
	}
	s := summarizeKeys(keys, []string{"env", "team"}, 3)
	wantStates := [len(stateNames)]float64{0, 2, 1, 4, 0, 1}
	if s.states != wantStates {
		t.Errorf("states = %v, want %v", s.states, wantStates)
	}
	if s.defaults != 1 {
		t.Errorf("defaults = %v", s.defaults)
	}
	// env=prod(2), then ties at 1 by key then value: env=dev, team=a, team=b\uFFFD.
	want := []tagCount{{"env", "prod", 2}, {"env", "dev", 1}, {"team", "a", 1}}
	if fmt.Sprint(s.tags) != fmt.Sprint(want) || s.dropped != 1 {
		t.Errorf("tags = %v dropped %v, want %v dropped 1", s.tags, s.dropped, want)
	}
	wantDel := []deletion{{"k4", "gone2", 1700003600.5}, {"k5", "gone", 1700000000.5}}
	if fmt.Sprint(s.deletions) != fmt.Sprint(wantDel) {
		t.Errorf("deletions = %v, want %v", s.deletions, wantDel)
	}

	all := summarizeKeys(keys, nil, 100)
	if len(all.tags) != 5 || all.dropped != 0 || all.tags[4].value != "b\uFFFD" {
		t.Errorf("all tags = %v dropped %v", all.tags, all.dropped)
	}
	none := summarizeKeys(keys, nil, 0)
	if len(none.tags) != 0 || none.dropped != 5 {
		t.Errorf("cap 0: tags = %v dropped %v", none.tags, none.dropped)
	}
}

func TestSortedUnique(t *testing.T) {
	got := sortedUnique([]string{"b", "a", "b", "c", "a"})
	if fmt.Sprint(got) != "[a b c]" {
		t.Errorf("got %v", got)
	}
}

func newTestExporter(t *testing.T, now func() time.Time) *Exporter {
	t.Helper()
	e, err := New(nil, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSharedJoinsFlight(t *testing.T) {
	e := newTestExporter(t, nil)
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context) (any, error) {
		calls.Add(1)
		<-release
		return "v", nil
	}
	var wg sync.WaitGroup
	results := make([]any, 20)
	for i := range results {
		wg.Go(func() {
			v, err := e.shared(context.Background(), "k", 0, fetch)
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	// Wait until all twenty wait on the one flight.
	for {
		e.mu.Lock()
		f := e.flights["k"]
		n := 0
		if f != nil {
			n = f.waiters
		}
		e.mu.Unlock()
		if n == 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("fetch called %d times, want 1", calls.Load())
	}
	for _, r := range results {
		if r != "v" {
			t.Fatalf("result %v", r)
		}
	}
	// TTL 0: nothing cached, the next call fetches again.
	release = make(chan struct{})
	close(release)
	if _, err := e.shared(context.Background(), "k", 0, fetch); err != nil || calls.Load() != 2 {
		t.Errorf("second call: err %v, calls %d", err, calls.Load())
	}
}

func TestSharedCacheTTLAndFailures(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newTestExporter(t, clock)
	var calls int
	fail := false
	fetch := func(context.Context) (any, error) {
		calls++
		if fail {
			return nil, errors.New("boom")
		}
		return calls, nil
	}
	get := func() (any, error) { return e.shared(context.Background(), "k", time.Minute, fetch) }
	if v, _ := get(); v != 1 {
		t.Fatalf("first = %v", v)
	}
	advance(59 * time.Second)
	if v, _ := get(); v != 1 || calls != 1 {
		t.Fatalf("within TTL: %v, calls %d", v, calls)
	}
	advance(time.Second)
	fail = true
	if _, err := get(); err == nil {
		t.Fatal("expired entry served instead of the failure")
	}
	if _, err := get(); err == nil || calls != 3 {
		t.Fatalf("failure cached: err %v calls %d", err, calls)
	}
	fail = false
	if v, _ := get(); v != 4 {
		t.Fatalf("after recovery = %v", v)
	}
}

func TestSharedCancelledWhenAllWaitersLeave(t *testing.T) {
	e := newTestExporter(t, nil)
	cancelled := make(chan struct{})
	fetch := func(ctx context.Context) (any, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := e.shared(short, "k", 0, fetch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("fetch not cancelled after its only waiter left")
	}
	// A new scrape starts a fresh fetch instead of joining the cancelled one.
	v, err := e.shared(context.Background(), "k", 0, func(context.Context) (any, error) { return "fresh", nil })
	if err != nil || v != "fresh" {
		t.Fatalf("after cancel: %v %v", v, err)
	}
}

func TestSharedSurvivesOneWaiterLeaving(t *testing.T) {
	e := newTestExporter(t, nil)
	release := make(chan struct{})
	fetch := func(ctx context.Context) (any, error) {
		select {
		case <-release:
			return "v", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	done := make(chan error, 1)
	go func() {
		v, err := e.shared(context.Background(), "k", 0, fetch)
		if err == nil && v != "v" {
			err = fmt.Errorf("got %v", v)
		}
		done <- err
	}()
	for {
		e.mu.Lock()
		f := e.flights["k"]
		e.mu.Unlock()
		if f != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.shared(short, "k", 0, fetch); err == nil {
		t.Fatal("cancelled waiter got no error")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("remaining waiter: %v", err)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New(nil, Options{Collectors: []string{"quotas", "nope"}}); err == nil {
		t.Error("unknown collector accepted")
	}
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "c", Auth: kmsapi.NewAKSK("a", "s", "")})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Name: "a", Region: "r", ProjectID: "p", Credential: cred}
	if _, err := New([]Target{tg, tg}, Options{}); err == nil {
		t.Error("duplicate target accepted")
	}
	if _, err := New([]Target{{Name: "x", Region: "r"}}, Options{}); err == nil {
		t.Error("target without credential accepted")
	}
}
