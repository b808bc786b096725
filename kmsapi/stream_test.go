package kmsapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Key pages are decoded as they arrive. These tests hold the streaming path
// to what reading the whole body first gave: the body cap, retries of broken
// transfers, no retries of malformed answers, and nothing of a failed
// attempt in the result.

// cutConnection sends the status, headers and part of a body, then drops
// the connection: a transfer broken by the network, not a bad answer.
func cutConnection(t *testing.T, w http.ResponseWriter, part []byte) {
	w.WriteHeader(http.StatusOK)
	w.Write(part)
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	conn.Close()
}

func pageQuery(t *testing.T, body []byte) (limit, offset int) {
	var q struct{ Limit, Offset string }
	if err := json.Unmarshal(body, &q); err != nil {
		t.Error(err)
	}
	limit, _ = strconv.Atoi(q.Limit)
	offset, _ = strconv.Atoi(q.Offset)
	return limit, offset
}

func TestKeyPageCutMidBodyIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		page := keyPageJSON(0, 200, 200)
		for _, withLength := range []bool{true, false} {
			var calls atomic.Int64
			srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				if withLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(page)))
				}
				if calls.Add(1) == 1 {
					cutConnection(t, w, page[:len(page)/2])
					return
				}
				w.Write(page)
			})
			p, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).filterKeys(ctxTimeout(t, 10*time.Second), 0)
			if err != nil || len(p.Keys) != 200 || p.Keys[199].ID != "key-000199" {
				t.Errorf("Content-Length %v: %d keys, %v", withLength, len(p.Keys), err)
			}
			if calls.Load() != 2 {
				t.Errorf("Content-Length %v: %d calls, want 2", withLength, calls.Load())
			}
		}
	})
}

func TestBadKeyPageIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := keyPageJSON(0, 200, 200)
		// Bad past the first 32 KiB, so the error comes mid-stream.
		bad := strings.Replace(string(good), `"resource_id":"key-000150"`, `"resource_id":key-000150"`, 1)
		if bad == string(good) || strings.Index(bad, "key-000150") < 32<<10 {
			t.Fatal("bad page is not bad past the first 32 KiB")
		}
		for name, body := range map[string]string{
			"malformed": bad,
			"truncated": string(good[:len(good)-40]), // ends cleanly: the server sent it so
			"no total":  `{"resources":[]}`,
		} {
			var calls atomic.Int64
			srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				calls.Add(1)
				w.Header().Set("X-Request-Id", "rid-bad")
				io.WriteString(w, body)
			})
			_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).filterKeys(ctxTimeout(t, 10*time.Second), 0)
			e := mustError(t, err)
			if e.StatusCode != 200 || e.Endpoint != EndpointResourceInstances || e.RequestID != "rid-bad" || errors.Is(err, errBodyTooLarge) {
				t.Errorf("%s: got %#v: %v", name, e, err)
			}
			if calls.Load() != 1 {
				t.Errorf("%s: %d calls, want 1", name, calls.Load())
			}
		}
	})
}

// A failed attempt may have written keys into the result's storage before
// the transfer broke; the retry must replace every one of them.
func TestListKeysRetryLeavesNoPartialPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const total = 2500
		var mu sync.Mutex
		cut := map[int]bool{}
		srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
			limit, offset := pageQuery(t, body)
			n := max(0, min(limit, total-offset))
			mu.Lock()
			first := !cut[offset]
			cut[offset] = true
			mu.Unlock()
			if offset > 0 && first {
				// Other keys, with other tags, then the connection drops.
				wrong := strings.ReplaceAll(string(keyPageJSON(offset+90000, n, total)), "prod", "WRONG")
				cutConnection(t, w, []byte(wrong[:len(wrong)*3/4]))
				return
			}
			w.Write(keyPageJSON(offset, n, total))
		})
		keys, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).ListKeys(ctxTimeout(t, 10*time.Second))
		if err != nil || len(keys) != total {
			t.Fatalf("%d keys, %v", len(keys), err)
		}
		for i, k := range keys {
			if want := fmt.Sprintf("key-%06d", i); k.ID != want || k.Alias != fmt.Sprintf("alias-%d", i) || len(k.Tags) != 1 || k.Tags[0].Value != "prod" {
				t.Fatalf("key %d is %+v, want %s", i, k, want)
			}
		}
		if len(cut) != 3 {
			t.Errorf("%d pages asked, want 3", len(cut))
		}
	})
}

// countingTransport counts the body bytes the client reads.
type countingTransport struct {
	next http.RoundTripper
	read atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &t.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// An answer past the cap fails without a retry, having read no more than
// one byte past the cap: whether it is endless keys, announced too long
// (then nothing is read), or one endless string, which stops sooner, at
// the size of the largest value.
func TestKeyPageOverCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 256 << 10
		defer SetMaxBodyBytes(limit)()
		oldValue := maxValueBytes
		maxValueBytes = 64 << 10
		defer func() { maxValueBytes = oldValue }()
		resource := strings.TrimPrefix(string(keyPageJSON(0, 1, 1)), `{"resources":[`)
		resource = resource[:strings.Index(resource, `],"total_count"`)] + ","
		for name, tc := range map[string]struct {
			start, repeat string
			length        bool
			want          string
		}{
			"endless keys":   {`{"resources":[`, resource, false, "response body exceeds 262144 bytes"},
			"endless string": {`{"resources":[{"resource_id":"`, strings.Repeat("x", 1000), false, "response body holds a value of more than 65536 bytes"},
			"announced":      {`{"resources":[`, resource, true, "response body exceeds 262144 bytes"},
		} {
			var calls, sent atomic.Int64
			srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				calls.Add(1)
				if tc.length {
					w.Header().Set("Content-Length", strconv.Itoa(4*limit))
				}
				io.WriteString(w, tc.start)
				for sent.Load() < 4*limit {
					n, err := io.WriteString(w, tc.repeat)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			tr := &countingTransport{}
			c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) {
				o.HTTPClient = memClient(t, func(next http.RoundTripper) http.RoundTripper { tr.next = next; return tr })
			})
			_, err := c.filterKeys(ctxTimeout(t, 10*time.Second), 0)
			if e := mustError(t, err); !errors.Is(err, errBodyTooLarge) || e.StatusCode != 200 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v", name, err)
			}
			if calls.Load() != 1 {
				t.Errorf("%s: %d calls, want 1", name, calls.Load())
			}
			read := tr.read.Load()
			if read > limit+1 || tc.length && read > 0 {
				t.Errorf("%s: read %d bytes for a cap of %d", name, read, limit)
			}
			t.Logf("%s: read %d bytes", name, read)
		}
	})
}
