package kmsapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
)

// An answer that does not hold together on its own is broken, whatever
// happens to the list between requests: the listing fails.
func TestListKeysBrokenPages(t *testing.T) {
	for name, mutate := range map[string]func(offset, limit int) (int, int){
		"short page": func(offset, limit int) (int, int) {
			if offset == 1000 {
				return 999, 2500
			}
			return min(limit, 2500-offset), 2500
		},
		"empty first page":    func(offset, limit int) (int, int) { return 0, 2500 },
		"more than the total": func(offset, limit int) (int, int) { return 3, 2 },
		"absurd total": func(offset, limit int) (int, int) {
			return min(limit, 2500-offset), maxListedKeys + 1
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, _, _ := pagingServer(t, 2500, mutate)
				c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
				keys, err := c.ListKeys(ctxTimeout(t, 10*time.Second))
				e := mustError(t, err)
				if keys != nil || e.Endpoint != EndpointResourceInstances || e.StatusCode != 200 {
					t.Errorf("got %d keys, %v", len(keys), err)
				}
			})
		})
	}
	for name, page := range map[string][]byte{
		"key twice in a page":       []byte(strings.Replace(string(keyPageJSON(0, 3, 3)), "key-000001", "key-000000", 2)),
		"more keys than the limit":  keyPageJSON(0, MaxPageSize+1, MaxPageSize+1),
		"key twice in a later page": nil,
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
					offset := pageOffset(t, body)
					switch {
					case page != nil:
						w.Write(page)
					case offset == 0:
						w.Write(keyPageJSON(0, 1000, 1002))
					default:
						w.Write([]byte(strings.Replace(string(keyPageJSON(1000, 2, 1002)), "key-001001", "key-001000", 2)))
					}
				})
				keys, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).ListKeys(ctxTimeout(t, 10*time.Second))
				if e := mustError(t, err); keys != nil || e.StatusCode != 200 {
					t.Errorf("got %d keys, %v", len(keys), err)
				}
			})
		})
	}
}

func pageOffset(t *testing.T, body []byte) int {
	var q struct{ Offset string }
	if err := json.Unmarshal(body, &q); err != nil {
		t.Error(err)
	}
	var offset int
	fmt.Sscan(q.Offset, &offset)
	return offset
}

// Pages that each hold together but moved between requests (keys created
// or deleted meanwhile) are a busy account, not an error: each key is
// listed once, and keys past the first total are read.
func TestListKeysShiftedPages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(offset int) []byte
		want  []int // key numbers listed, in order
		calls int
	}{{
		// A key created before offset 1000 while the first page was out
		// pushes key 999 onto the second page.
		name: "key twice",
		serve: func(offset int) []byte {
			if offset == 0 {
				return keyPageJSON(0, 1000, 1001)
			}
			return keyPageJSON(999, 2, 1002)
		},
		want: seq(0, 1001), calls: 2,
	}, {
		// Keys created at the end while listing: the second page tells of
		// them, and the listing reads on from where the last page ended.
		name: "total grows",
		serve: func(offset int) []byte {
			switch offset {
			case 0:
				return keyPageJSON(0, 1000, 2500)
			case 1000:
				return keyPageJSON(1000, 1000, 2600)
			case 2000:
				return keyPageJSON(2000, 500, 2500) // answered before the others were created
			}
			return keyPageJSON(offset, max(0, min(1000, 2600-offset)), 2600)
		},
		want: seq(0, 2600), calls: 4,
	}, {
		// Keys deleted at the end: the last page comes back shorter, as its
		// own total says.
		name: "total shrinks",
		serve: func(offset int) []byte {
			if offset == 0 {
				return keyPageJSON(0, 1000, 2500)
			}
			return keyPageJSON(offset, max(0, min(1000, 2200-offset)), 2200)
		},
		want: seq(0, 2200), calls: 3,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
					calls.Add(1)
					w.Write(tc.serve(pageOffset(t, body)))
				})
				trace := apitrace.New()
				ctx := apitrace.With(ctxTimeout(t, 10*time.Second), trace)
				keys, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) { o.Concurrency = 1 }).ListKeys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != len(tc.want) {
					t.Fatalf("%d keys, want %d", len(keys), len(tc.want))
				}
				for i, n := range tc.want {
					if want := fmt.Sprintf("key-%06d", n); keys[i].ID != want || keys[i].Alias != fmt.Sprintf("alias-%d", n) {
						t.Fatalf("key %d is %s, want %s", i, keys[i].ID, want)
					}
				}
				if n := int(calls.Load()); n != tc.calls {
					t.Errorf("%d page requests, want %d", n, tc.calls)
				}
				// The scrape's debug log tells why the counts may be off.
				var b strings.Builder
				trace.WriteTo(&b)
				if !strings.Contains(b.String(), "keys changed while listing") {
					t.Errorf("trace:\n%s", b.String())
				}
			})
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
