package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
	wantDel := []keyTime{{"k4", "gone2", 1700003600.5}, {"k5", "gone", 1700000000.5}}
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

// stub is a collector whose fetch the test controls.
type stub struct {
	about
	calls   atomic.Int32
	fetchFn func(ctx context.Context) error
	desc    *desc
}

func newStub(ttl time.Duration, fetch func(ctx context.Context) error) *stub {
	return &stub{about: about{"stub", "stub-endpoint", ttl}, fetchFn: fetch, desc: newDesc("kms_stub", "Calls made so far.", ttl)}
}

func (s *stub) descs() []*desc { return []*desc{s.desc} }

func (s *stub) fetch(ctx context.Context, _ *kmsapi.Client, _ *Target) (emitFunc, error) {
	n := s.calls.Add(1)
	if err := s.fetchFn(ctx); err != nil {
		return nil, err
	}
	return func(gauge gaugeFunc) { gauge(s.desc, float64(n)) }, nil
}

// stubExporter scrapes one target with c as its only collector.
func stubExporter(t *testing.T, c collector, now func() time.Time) *Exporter {
	t.Helper()
	cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{Name: "c", Auth: kmsapi.NewAKSK("a", "s", "")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New([]Target{{Name: "t1", Region: "r", ProjectID: "p", Credential: cred}}, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e.collectors = []collector{c}
	e.enabled = e.collectors
	return e
}

// stubValue scrapes e and returns kms_stub, or -1 when the stub failed.
func stubValue(t *testing.T, e *Exporter) float64 {
	t.Helper()
	v := -1.0
	for _, m := range collect(t, e.Collector(context.Background())) {
		if m.name == "kms_stub" {
			v = m.value
		}
	}
	return v
}

func TestConcurrentScrapesShareOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		c := newStub(0, func(context.Context) error { <-release; return nil })
		e := stubExporter(t, c, nil)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if v := stubValue(t, e); v != 1 {
					t.Errorf("kms_stub = %v, want 1 (the one shared fetch)", v)
				}
			})
		}
		synctest.Wait() // every scrape waits on the one fetch
		close(release)
		wg.Wait()
		if n := c.calls.Load(); n != 1 {
			t.Errorf("%d fetches for 20 concurrent scrapes, want 1", n)
		}
		// Nothing cached with no reuse time: the next scrape fetches again.
		if v := stubValue(t, e); v != 2 {
			t.Errorf("next scrape: kms_stub = %v, want 2", v)
		}
	})
}

func TestCacheTTLAndFailures(t *testing.T) {
	clock := newFakeClock()
	fail := false
	c := newStub(time.Minute, func(context.Context) error {
		if fail {
			return errors.New("boom")
		}
		return nil
	})
	e := stubExporter(t, c, clock.Now)
	if v := stubValue(t, e); v != 1 {
		t.Fatalf("first = %v", v)
	}
	clock.Advance(59 * time.Second)
	if v := stubValue(t, e); v != 1 || c.calls.Load() != 1 {
		t.Fatalf("within TTL: %v, calls %d", v, c.calls.Load())
	}
	clock.Advance(time.Second)
	fail = true
	if v := stubValue(t, e); v != -1 {
		t.Fatalf("expired entry served instead of the failure: %v", v)
	}
	if v := stubValue(t, e); v != -1 || c.calls.Load() != 3 {
		t.Fatalf("failure cached: %v, calls %d", v, c.calls.Load())
	}
	fail = false
	if v := stubValue(t, e); v != 4 {
		t.Fatalf("after recovery = %v", v)
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
