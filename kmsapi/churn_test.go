package kmsapi_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// churn is a kmsfake.Churn on one project, checked against that project.
type churn struct {
	*kmsfake.Churn
	srv     *kmsfake.Server
	project string
}

func newChurn(srv *kmsfake.Server, project string, change func(n int, keys []kmsapi.Key) ([]kmsapi.Key, int)) *churn {
	return &churn{srv.StartChurn(project, change), srv, project}
}

// check holds a listing taken while c changed the keys to what offset
// paging can promise: each key once, only keys that existed, and off by
// no more than the keys that changed.
func (c *churn) check(t *testing.T, listed []kmsapi.Key, before []kmsapi.Key) {
	t.Helper()
	after := c.srv.Keys(c.project)
	changed := c.Changed()
	if changed == 0 {
		t.Fatal("no key changed: the test tests nothing")
	}
	got := map[string]bool{}
	for _, k := range listed {
		if got[k.ID] {
			t.Fatalf("key %s listed twice", k.ID)
		}
		if !c.Existed(k.ID) {
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
