// Package syncbuf is a buffer for tests that read output written from other
// goroutines: a logger, a child process.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects output written from several goroutines (a logger, a
// child process) while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
