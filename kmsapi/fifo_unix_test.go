//go:build unix

package kmsapi

import "syscall"

// mkfifo makes a named pipe, a file that would block a reader; nil where
// the system has none.
var mkfifo = func(path string) error { return syscall.Mkfifo(path, 0o600) }
