package kmsapi_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// churn changes a fake project's keys before every page the fake answers,
// as automation on a busy account does, and remembers what it did.
type churn struct {
	srv     *kmsfake.Server
	project string
	change  func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) // the keys after change n, and how many keys it created or deleted

	mu      sync.Mutex
	n       int
	changed int             // keys created or deleted so far
	ever    map[string]bool // every key ID that existed at some point
}

func newChurn(srv *kmsfake.Server, project string, change func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int)) *churn {
	c := &churn{srv: srv, project: project, change: change, ever: map[string]bool{}}
	for _, k := range srv.Keys(project) {
		c.ever[k.ID] = true
	}
	srv.OnKeyPage(func(id string, _ int) {
		if id != project {
			return
		}
		srv.ChangeKeys(id, func(keys []kmsapi.Key) []kmsapi.Key {
			c.mu.Lock()
			defer c.mu.Unlock()
			keys, d := c.change(c.n, keys)
			c.n++
			c.changed += d
			for _, k := range keys {
				c.ever[k.ID] = true
			}
			return keys
		})
	})
	return c
}

// check holds a listing taken while c changed the keys to what offset
// paging can promise: each key once, only keys that existed, and off by
// no more than the keys that changed.
func (c *churn) check(t *testing.T, listed []kmsapi.Key, before []kmsapi.Key) {
	t.Helper()
	after := c.srv.Keys(c.project)
	c.mu.Lock()
	changed := c.changed
	c.mu.Unlock()
	if changed == 0 {
		t.Fatal("no key changed: the test tests nothing")
	}
	got := map[string]bool{}
	for _, k := range listed {
		if got[k.ID] {
			t.Fatalf("key %s listed twice", k.ID)
		}
		if !c.ever[k.ID] {
			t.Fatalf("key %s never existed", k.ID)
		}
		got[k.ID] = true
	}
	// Keys there from start to end may be missed only where the list
	// shifted: once per change at most.
	kept := map[string]bool{}
	for _, k := range before {
		kept[k.ID] = true
	}
	missed := 0
	for _, k := range after {
		if kept[k.ID] && !got[k.ID] {
			missed++
		}
	}
	if missed > changed {
		t.Errorf("%d keys there all along were missed, more than the %d that changed", missed, changed)
	}
	if d := len(listed) - len(after); d > changed || -d > changed {
		t.Errorf("listed %d keys, %d at the end, %d changed", len(listed), len(after), changed)
	}
}

// A busy account: keys are created and deleted between the page requests
// of a listing. It succeeds, within what the changes allow.
func TestFakeListKeysWhileKeysChange(t *testing.T) {
	mint := func(n int) kmsapi.Key {
		return kmsapi.Key{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Alias: fmt.Sprintf("auto-%d", n), State: kmsapi.StateEnabled, KeyType: 1}
	}
	for _, tc := range []struct {
		name   string
		keys   int
		change func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int)
	}{
		{"created at the front", 2500, func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) {
			return slices.Insert(keys, 0, mint(2*n), mint(2*n+1)), 2
		}},
		{"deleted at the front", 2500, func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) {
			return slices.Delete(keys, 3, 6), 3
		}},
		{"created and deleted", 3200, func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) {
			keys = slices.Delete(keys, 100*n, 100*n+2)
			return slices.Insert(keys, 50, mint(n)), 3
		}},
		{"grows past the first total", 2995, func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int) {
			return append(keys, mint(3*n), mint(3*n+1), mint(3*n+2)), 3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 8, KeysPerProject: tc.keys})
			srv := start(t, sc)
			p := sc.Projects[0]
			ch := newChurn(srv, p.ID, tc.change)
			c := newClient(t, srv, p, kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""))
			before := srv.Keys(p.ID)
			keys, err := c.ListKeys(ctxFor(t, 30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ch.check(t, keys, before)
		})
	}
}
