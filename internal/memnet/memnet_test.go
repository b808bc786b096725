package memnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestDialAcceptTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n Network
		if _, err := n.DialContext(t.Context(), "tcp", "nowhere:80"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial to nothing: %v, want connection refused", err)
		}
		l, err := n.Listen("host:80")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Listen("host:80"); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("second listen: %v, want address in use", err)
		}
		// Both ends write more than fits at once before reading: the
		// buffer must not deadlock them the way net.Pipe would a small
		// exchange of writes, and big writes wait for the reader.
		big := bytes.Repeat([]byte("x"), 3*bufSize)
		done := make(chan []byte)
		go func() {
			c, err := l.Accept()
			if err != nil {
				t.Error(err)
				close(done)
				return
			}
			c.Write([]byte("hello"))
			got, _ := io.ReadAll(c)
			c.Close()
			done <- got
		}()
		c, err := n.DialContext(t.Context(), "tcp", "host:80")
		if err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr().String() != "host:80" {
			t.Errorf("remote address %s", c.RemoteAddr())
		}
		if w, err := c.Write(big); err != nil || w != len(big) {
			t.Fatalf("write: %d %v", w, err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("read %q %v", buf, err)
		}
		c.Close()
		if got := <-done; !bytes.Equal(got, big) {
			t.Errorf("server read %d bytes, want %d", len(got), len(big))
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after close: %v", err)
		}
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept after close: %v", err)
		}
		if _, err := n.DialContext(t.Context(), "tcp", "host:80"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after close: %v, want connection refused", err)
		}
	})
}

func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n Network
		l, _ := n.Listen("host:80")
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		c, err := n.DialContext(context.Background(), "tcp", "host:80")
		if err != nil {
			t.Fatal(err)
		}
		srv := <-accepted
		defer srv.Close()
		start := time.Now()
		c.SetReadDeadline(start.Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past the deadline: %v", err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("read gave up after %v, want 1s", took)
		}
		// A deadline in the past interrupts a read in progress, as
		// net/http does to stop its background read.
		c.SetReadDeadline(time.Time{})
		errc := make(chan error)
		go func() {
			_, err := c.Read(make([]byte, 1))
			errc <- err
		}()
		synctest.Wait()
		c.SetReadDeadline(time.Unix(1, 0))
		if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("interrupted read: %v", err)
		}
		// A full buffer blocks the writer until its deadline.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if w, err := c.Write(make([]byte, bufSize+1)); w != bufSize || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write into a full buffer: %d %v", w, err)
		}
		c.Close()
	})
}
