//go:build !unix

package testbin

import (
	"os"
	"os/exec"
)

// Without process groups a process stands alone, and stopping it kills it:
// there is no TERM to ask it first.
func ownGroup(*exec.Cmd) {}

func stopGroup(p *os.Process, _ bool) error { return p.Kill() }
