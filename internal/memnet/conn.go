package memnet

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// bufSize is how much one end may write before the other reads, as a
// socket's buffers allow. net.Pipe buffers nothing, and so deadlocks where
// both ends write at once: a TLS client that rejects the certificate sends
// its alert while the server still writes its handshake.
const bufSize = 256 << 10

// stream is one direction of a connection.
type stream struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	eof     bool          // the writing end closed
	gone    bool          // the reading end closed: writes fail
	changed chan struct{} // closed and replaced on every change
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

// notify wakes whoever waits on s; s.mu must be held.
func (s *stream) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// conn is one end of an in-memory connection.
type conn struct {
	in, out       *stream
	local, remote net.Addr
	rd, wd        *deadline
	closeOnce     sync.Once
	closed        chan struct{}
}

// connPair returns the two ends of a new connection to addr.
func connPair(addr net.Addr) (client, server *conn) {
	a, b := newStream(), newStream()
	peer := pipeAddr("client")
	client = &conn{in: a, out: b, local: peer, remote: addr, rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	server = &conn{in: b, out: a, local: addr, remote: peer, rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	return client, server
}

func (c *conn) Read(p []byte) (int, error) {
	s := c.in
	for {
		s.mu.Lock()
		switch {
		case isClosed(c.closed):
			s.mu.Unlock()
			return 0, net.ErrClosed
		case s.buf.Len() > 0:
			n, _ := s.buf.Read(p)
			s.notify()
			s.mu.Unlock()
			return n, nil
		case s.eof:
			s.mu.Unlock()
			return 0, io.EOF
		case isClosed(c.rd.wait()):
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-c.rd.wait():
		case <-c.closed:
		}
	}
}

func (c *conn) Write(p []byte) (int, error) {
	s := c.out
	written := 0
	for len(p) > 0 {
		s.mu.Lock()
		switch {
		case isClosed(c.closed):
			s.mu.Unlock()
			return written, net.ErrClosed
		case s.gone:
			s.mu.Unlock()
			return written, io.ErrClosedPipe
		case isClosed(c.wd.wait()):
			s.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		case s.buf.Len() < bufSize:
			n := min(bufSize-s.buf.Len(), len(p))
			s.buf.Write(p[:n])
			p, written = p[n:], written+n
			s.notify()
			s.mu.Unlock()
			continue
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-c.wd.wait():
		case <-c.closed:
		}
	}
	return written, nil
}

// Close ends both directions: the peer reads what was written, then EOF,
// and its writes fail.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		for _, s := range []*stream{c.in, c.out} {
			s.mu.Lock()
			if s == c.in {
				s.gone = true
			} else {
				s.eof = true
			}
			s.notify()
			s.mu.Unlock()
		}
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a read or write deadline: a channel closed when it passes,
// as net.Pipe keeps them.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until its callback closed cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	switch dur := time.Until(t); {
	case t.IsZero() || dur > 0:
		if closed {
			d.cancel = make(chan struct{})
		}
		if !t.IsZero() {
			cancel := d.cancel
			d.timer = time.AfterFunc(dur, func() { close(cancel) })
		}
	case !closed:
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
