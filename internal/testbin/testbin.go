// Package testbin builds the kms_exporter binary once per test binary and
// runs processes for tests: the exporter, Prometheus, Alertmanager.
//
// Tests wait on what a process writes (the exporter-toolkit's "Listening
// on" line, a log message after a signal) or on its exit, never on a sleep
// or on an idea of how fast the machine is.
package testbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	dir      string
	once     sync.Once
	bin      string
	buildErr error
)

// Main runs the tests of a package that uses Binary, then removes the
// binary. Call it from TestMain.
func Main(m *testing.M) {
	var err error
	dir, err = os.MkdirTemp("", "kms_exporter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Binary is the kms_exporter binary under test: $KMS_EXPORTER when set (make
// e2e tests the binary make build stamped), else one built with -ldflags
// "-s -w" as make build does, the first time a test asks, and shared by the
// package's tests after that.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if p := os.Getenv("KMS_EXPORTER"); p != "" {
			bin, buildErr = filepath.Abs(p)
			return
		}
		if dir == "" {
			buildErr = errors.New("testbin.Binary: call testbin.Main from TestMain")
			return
		}
		bin, buildErr = build(filepath.Join(dir, "kms_exporter"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

func build(out string) (string, error) {
	// go test puts its own toolchain first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building kms_exporter: %w", err)
	}
	cmd := exec.Command(goTool, "build", "-ldflags=-s -w", "-o", out, "github.com/kms-exporter/kms_exporter")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// Proc is a process started by a test, in its own process group where the
// system has them.
type Proc struct {
	Name string
	Cmd  *exec.Cmd

	mu      sync.Mutex
	out     []byte // stdout and stderr, as they came
	stderr  []byte
	changed chan struct{} // closed and replaced on every write
	exited  chan struct{}
	err     error // Cmd.Wait's answer, set before exited closes
}

// Start runs bin. Its stdout and stderr are collected together, and
// stderr (the exporter's log) also on its own. Cleanup
// stops the whole process group (TERM, then KILL after 10s) and logs the
// output when the test failed.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, changed: make(chan struct{}), exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = writer{p, false}, writer{p, true}
	ownGroup(p.Cmd)
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.Cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = stopGroup(p.Cmd.Process, false)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = stopGroup(p.Cmd.Process, true)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("---- %s %s (%v)\n%s", name, strings.Join(args, " "), p.Err(), p.Output())
		}
	})
	return p
}

type writer struct {
	p      *Proc
	stderr bool
}

func (w writer) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	if w.stderr {
		p.stderr = append(p.stderr, b...)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return len(b), nil
}

// Output is everything the process wrote so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// Stderr is what the process wrote on stderr so far: the exporter's log.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.stderr)
}

// Exited is closed once the process is gone.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited; nil while it runs.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.Name, err)
	}
}

// WaitOutput waits until the output matches re at least n times and returns
// the submatches of the n-th match. It fails the test when the process
// exits first, or when the test's own deadline (go test -timeout) is near.
func (p *Proc) WaitOutput(t testing.TB, re *regexp.Regexp, n int) []string {
	t.Helper()
	expire := deadline(t)
	for {
		p.mu.Lock()
		out, changed := string(p.out), p.changed
		p.mu.Unlock()
		if m := re.FindAllStringSubmatch(out, n); len(m) >= n {
			return m[n-1]
		}
		select {
		case <-changed:
		case <-p.exited:
			// Output written just before the exit is there by now.
			if m := re.FindAllStringSubmatch(p.Output(), n); len(m) >= n {
				return m[n-1]
			}
			t.Fatalf("%s exited (%v) before writing %q (%d times):\n%s", p.Name, p.Err(), re, n, p.Output())
		case <-expire:
			t.Fatalf("%s: no %q (%d times) before the test's deadline:\n%s", p.Name, re, n, p.Output())
		}
	}
}

var listening = regexp.MustCompile(`msg="?Listening on"? address=(\S+)`)

// ListenAddress waits for the exporter-toolkit's "Listening on" line of an
// exporter started with --web.listen-address=127.0.0.1:0 and returns the
// address it got.
func (p *Proc) ListenAddress(t testing.TB) string {
	t.Helper()
	return p.WaitOutput(t, listening, 1)[1]
}

// Wait waits for the process to exit and returns Cmd.Wait's answer. It
// fails the test when the test's deadline is near first.
func (p *Proc) Wait(t testing.TB) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.Err()
	case <-deadline(t):
		t.Fatalf("%s still running at the test's deadline:\n%s", p.Name, p.Output())
	}
	return nil
}

// Context is cancelled shortly before go test's -timeout would stop the
// whole test binary, so that a test waiting on a process fails with what it
// saw instead; never without a deadline (benchmarks).
func Context(t testing.TB) context.Context {
	at, ok := testDeadline(t)
	if !ok {
		return t.Context()
	}
	ctx, cancel := context.WithDeadline(t.Context(), at)
	t.Cleanup(cancel)
	return ctx
}

// deadline fires when Context ends.
func deadline(t testing.TB) <-chan time.Time {
	at, ok := testDeadline(t)
	if !ok {
		return nil
	}
	return time.After(time.Until(at))
}

func testDeadline(t testing.TB) (time.Time, bool) {
	d, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}, false
	}
	at, ok := d.Deadline()
	if !ok {
		return time.Time{}, false
	}
	margin := min(time.Until(at)/10, 30*time.Second)
	return at.Add(-margin), true
}
