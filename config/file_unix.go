//go:build unix

package config

import "syscall"

// openNonBlocking keeps the open of a FIFO swapped in after the check from
// waiting for a writer.
const openNonBlocking = syscall.O_NONBLOCK
