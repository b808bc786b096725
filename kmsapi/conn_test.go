package kmsapi

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// An answer the client stops reading (over the body cap) must still give
// its connection back: the server sees it closed.
func TestOverCapAnswerClosesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer SetMaxBodyBytes(1 << 10)()
		var closed atomic.Int64
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
		srv := serveMem(t, h, func(s *http.Server) {
			s.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed.Add(1)
				}
			}
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		_, err := c.Quotas(context.Background())
		if e := mustError(t, err); !strings.Contains(e.Error(), "exceeds") {
			t.Fatalf("want a body cap error, got %v", e)
		}
		synctest.Wait()
		if closed.Load() != 1 {
			t.Fatal("the connection of an over-cap answer was not closed")
		}
	})
}
