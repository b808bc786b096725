package kmsapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// An answer the client stops reading (over the body cap) must still give
// its connection back: the server sees it closed.
func TestOverCapAnswerClosesConnection(t *testing.T) {
	defer SetMaxBodyBytes(1 << 10)()
	var mu sync.Mutex
	closed := 0
	h := &kmsHandler{t: t, ak: testAK, sk: testSK, fn: func(w http.ResponseWriter, r *http.Request, _ []byte) {
		// No Content-Length, so the cap is hit while reading, not up front.
		w.(http.Flusher).Flush()
		chunk := `"` + strings.Repeat("x", 1<<10) + `",`
		for range 1 << 8 {
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
	}}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	_, err := c.Quotas(context.Background())
	if e := mustError(t, err); !strings.Contains(e.Error(), "exceeds") {
		t.Fatalf("want a body cap error, got %v", e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := closed
		mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection of an over-cap answer was never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
