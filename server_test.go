package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
)

// pipeListener hands the server in-memory connections, so that a test in a
// synctest bubble controls the server's clock.
type pipeListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serveInBubble runs newServer with h on a pipe listener until the test's
// bubble ends.
func serveInBubble(t *testing.T, h http.Handler, scrapeLimit time.Duration, logs *syncbuf.Buffer) *pipeListener {
	logger, _ := newLogger(logs, "info", "logfmt")
	srv := newServer(h, scrapeLimit, logger)
	l := newPipeListener()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return l
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
		l := serveInBubble(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "ok")
		}), 30*time.Second, &syncbuf.Buffer{})
		c := l.dial()
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
		l := serveInBubble(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := time.ParseDuration(r.URL.Query().Get("take"))
			time.Sleep(d) // the scrape, in the bubble's time
			io.WriteString(w, "metrics")
		}), limit, &syncbuf.Buffer{})

		c := l.dial()
		defer c.Close()
		resp, err := get(t, c, bufio.NewReader(c), "/metrics?take="+(limit+writeMargin/2).String())
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("scrape of %v: %v", limit+writeMargin/2, err)
		}

		c2 := l.dial()
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
		logger, _ := newLogger(logs, "info", "logfmt")
		srv := newServer(http.NotFoundHandler(), 30*time.Second, logger)
		l := newPipeListener()
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{testCertificate(t)}}))
		}()
		defer func() {
			srv.Close()
			<-served
		}()
		c := l.dial()
		// Not a TLS client hello, and not HTTP either.
		io.WriteString(c, "\x00\x01\x02\x03\x04\x05\x06\x07")
		// The server logs the failed handshake, then closes.
		io.Copy(io.Discard, c)
		c.Close()

		out := logs.String()
		if !strings.Contains(out, "TLS handshake error from pipe") {
			t.Fatalf("handshake error not logged through the logger:\n%s", out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(line, "level=warn ") || !strings.Contains(line, `msg="HTTP server error"`) || !strings.Contains(line, "caller=") {
				t.Errorf("line not in the logger's format: %q", line)
			}
		}
	})
}

// testCertificate is a throwaway self-signed certificate.
func testCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"exporter"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
