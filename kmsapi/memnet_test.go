package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// An in-memory network for tests in a testing/synctest bubble: a server
// listens on a made-up host, clients reach it through net.Pipe, and no
// goroutine waits on a socket, so the bubble's clock moves on as soon as
// every goroutine is blocked. Client and server are net/http's own, so a
// test sees real HTTP: Content-Length, chunking, cut connections.

var (
	memListeners sync.Map // "host:80" → *memListener
	memSeq       atomic.Int64
)

type memListener struct {
	addr  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr(l.addr) }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// testServer is a server on the in-memory network.
type testServer struct {
	URL string
}

// serveMem serves h on the in-memory network until the test ends; config,
// if set, adjusts the http.Server first.
func serveMem(t *testing.T, h http.Handler, config func(*http.Server)) *testServer {
	host := fmt.Sprintf("kms-%d.test", memSeq.Add(1))
	l := &memListener{addr: host + ":80", conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	if config != nil {
		config(srv)
	}
	memListeners.Store(l.addr, l)
	go srv.Serve(l)
	t.Cleanup(func() {
		memListeners.Delete(l.addr)
		srv.Close()
	})
	return &testServer{URL: "http://" + host}
}

var errRefused = errors.New("connection refused")

// memDial connects to a server of the in-memory network; an address
// nothing serves is refused.
func memDial(ctx context.Context, _, addr string) (net.Conn, error) {
	v, ok := memListeners.Load(addr)
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errRefused}
	}
	l := v.(*memListener)
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errRefused}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// memClient is an HTTP client on the in-memory network, its idle
// connections closed when the test ends.
func memClient(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	tr := &http.Transport{DialContext: memDial}
	t.Cleanup(tr.CloseIdleConnections)
	if wrap != nil {
		return &http.Client{Transport: wrap(tr)}
	}
	return &http.Client{Transport: tr}
}
