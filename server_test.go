package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
)

// serveInBubble runs newServer with h on an in-memory network, on which a
// test in a synctest bubble controls the server's clock, and returns a
// dialler to it. tlsConfig, if set, puts TLS in front.
func serveInBubble(t *testing.T, h http.Handler, scrapeLimit time.Duration, logs *syncbuf.Buffer, tlsConfig *tls.Config) (dial func() net.Conn) {
	logger, _ := newLogger(logs, "info", "logfmt")
	srv := newServer(h, scrapeLimit, logger)
	n := &memnet.Network{}
	l, err := n.Listen("exporter.test:80")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = l
	if tlsConfig != nil {
		ln = tls.NewListener(l, tlsConfig)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return func() net.Conn {
		c, err := n.DialContext(t.Context(), "tcp", "exporter.test:80")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) (*http.Response, error) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: exporter\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, err
}

// TestServerClosesIdleConnections: a keep-alive connection left idle is
// closed by the server after idleTimeout.
func TestServerClosesIdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dial := serveInBubble(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok")
		}), 30*time.Second, &syncbuf.Buffer{}, nil)
		c := dial()
		defer c.Close()
		br := bufio.NewReader(c)
		if resp, err := get(t, c, br, "/"); err != nil || resp.Close {
			t.Fatalf("first request: %v (close %v)", err, resp != nil && resp.Close)
		}
		idleSince := time.Now()
		// Far beyond any sane idle timeout: the read ends with the server's
		// close, or with this deadline when the server never closes.
		c.SetReadDeadline(time.Now().Add(24 * time.Hour))
		_, err := br.ReadByte()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection not closed by the server: %v after %v", err, time.Since(idleSince))
		}
		if d := time.Since(idleSince); d != idleTimeout {
			t.Errorf("idle connection closed after %v, want %v", d, idleTimeout)
		}
	})
}

// TestServerWriteTimeoutFitsScrape: the answer of a scrape that uses all of
// --kms.timeout and then some time to gather still arrives; an answer
// ready only after the scrape limit plus the margin is not sent: the client
// sees the connection closed.
func TestServerWriteTimeoutFitsScrape(t *testing.T) {
	const limit = 30 * time.Second
	synctest.Test(t, func(t *testing.T) {
		dial := serveInBubble(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := time.ParseDuration(r.URL.Query().Get("take"))
			time.Sleep(d) // the scrape, in the bubble's time
			io.WriteString(w, "metrics")
		}), limit, &syncbuf.Buffer{}, nil)

		c := dial()
		defer c.Close()
		resp, err := get(t, c, bufio.NewReader(c), "/metrics?take="+(limit+writeMargin/2).String())
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("scrape of %v: %v", limit+writeMargin/2, err)
		}

		c2 := dial()
		defer c2.Close()
		c2.SetReadDeadline(time.Now().Add(24 * time.Hour))
		if _, err := get(t, c2, bufio.NewReader(c2), "/metrics?take=1h"); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("answer written after 1h: %v, want the connection closed", err)
		}
	})
}

// TestServerErrorLogThroughLogger: net/http's own lines, such as a failed
// TLS handshake, come out in the exporter's format with a level, not in Go's
// default log format.
func TestServerErrorLogThroughLogger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		cert, _ := selfSignedCert(t, "exporter.test")
		c := serveInBubble(t, http.NotFoundHandler(), 30*time.Second, logs, &tls.Config{Certificates: []tls.Certificate{cert}})()
		// Not a TLS client hello, and not HTTP either.
		io.WriteString(c, "\x00\x01\x02\x03\x04\x05\x06\x07")
		// The server logs the failed handshake, then closes.
		io.Copy(io.Discard, c)
		c.Close()

		out := logs.String()
		if !strings.Contains(out, "TLS handshake error from ") {
			t.Fatalf("handshake error not logged through the logger:\n%s", out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(line, "level=warn ") || !strings.Contains(line, `msg="HTTP server error"`) || !strings.Contains(line, "caller=") {
				t.Errorf("line not in the logger's format: %q", line)
			}
		}
	})
}
