// Package memnet is an in-memory network for tests: HTTP servers and
// clients connected in memory. Inside a testing/synctest bubble a goroutine
// waiting on a real socket does not count as blocked, so fake time would
// stand still; on these connections it does, and a test can then run
// deadlines, retries and latencies of seconds in no real time at all.
package memnet

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
)

// Network maps addresses (host:port) to listeners. Its zero value is empty
// and ready to use.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*Listener
}

// Listen listens on addr until the listener is closed.
func (n *Network) Listen(addr string) (*Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners == nil {
		n.listeners = map[string]*Listener{}
	}
	if _, ok := n.listeners[addr]; ok {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: pipeAddr(addr), Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	l := &Listener{n: n, addr: pipeAddr(addr), conns: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// DialContext connects to addr. Where nothing listens it fails the way a
// refused TCP connection does, with ECONNREFUSED.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: network, Addr: pipeAddr(addr), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if l == nil {
		return nil, refused
	}
	client, server := connPair(l.addr)
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: network, Addr: pipeAddr(addr), Err: ctx.Err()}
	}
}

// Transport is an HTTP transport that dials on n, without proxies.
func (n *Network) Transport() *http.Transport {
	return &http.Transport{DialContext: n.DialContext}
}

// Serve serves h on addr, over TLS when tlsConfig is set, until the
// returned server is closed.
func (n *Network) Serve(addr string, h http.Handler, tlsConfig *tls.Config) (*http.Server, error) {
	l, err := n.Listen(addr)
	if err != nil {
		return nil, err
	}
	var ln net.Listener = l
	if tlsConfig != nil {
		ln = tls.NewListener(l, tlsConfig)
	}
	// Handshakes a client rejects are expected in tests.
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	return srv, nil
}

// Listener accepts the connections dialled to its address.
type Listener struct {
	n     *Network
	addr  pipeAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops listening; the address is free again.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.n.mu.Lock()
		delete(l.n.listeners, string(l.addr))
		l.n.mu.Unlock()
	})
	return nil
}

func (l *Listener) Addr() net.Addr { return l.addr }

type pipeAddr string

func (a pipeAddr) Network() string { return "tcp" }
func (a pipeAddr) String() string  { return string(a) }
