package kmsapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// PauseStore keeps the pause of each credential after authentication
// failures. In memory, it carries the recent failures of a credential over
// to the new Credential that a reload with a changed secret builds, so that
// trying one wrong secret after another still keeps to the lockout budget.
// With a directory, it keeps the state in files too, so that a restart
// inside a pause sends nothing until the pause ends: else every restart of
// a crash loop or a rolling update would try a wrong secret once more, and
// lock the AK.
//
// A file holds, per credential, a hash of its public identity (the AK, or
// the IAM domain and user), the time its pause ends, and the times of its
// last failures. Never a secret, nor anything derived from one.
type PauseStore struct {
	dir    string // "": memory only
	logger log.Logger

	mu  sync.Mutex
	mem map[string]pauseState // by ID, of the credentials built by this process
}

// maxPauseFileBytes bounds what is read of a state file: a few hundred
// bytes are written.
const maxPauseFileBytes = 4 << 10

// NewPauseStore keeps state in dir, created (0700) if missing, or in memory
// only if dir is "". It fails if dir cannot be created or written, so that a
// wrong --storage.path shows at start-up.
func NewPauseStore(dir string, logger log.Logger) (*PauseStore, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	s := &PauseStore{dir: dir, logger: logger, mem: map[string]pauseState{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage path: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return nil, fmt.Errorf("storage path: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return s, nil
}

// pauseState is the content of one state file.
type pauseState struct {
	ID          string      `json:"id"`         // hex SHA-256 of the credential's kind and identity
	Credential  string      `json:"credential"` // its name in the config, for people reading the file
	Failures    int         `json:"failures"`   // consecutive authentication failures
	PausedUntil time.Time   `json:"paused_until"`
	Recent      []time.Time `json:"recent_failures"` // the last few, oldest first
	Endpoint    string      `json:"endpoint,omitempty"`
	Code        string      `json:"code,omitempty"` // error_code of the last failure, e.g. APIGW.0301
}

// identifier is implemented by authenticators with a public identity the
// API locks: the AK, the IAM user.
type identifier interface{ identity() string }

func (a *akskAuth) identity() string { return "aksk\x00" + a.ak }

func (a *iamAuth) identity() string {
	return "iam\x00" + a.o.IAMEndpoint + "\x00" + a.o.DomainName + "\x00" + a.o.UserName
}

func (a *ecsAuth) identity() string { return "ecs\x00" + a.o.Endpoint }

// pauseID names the state of a credential: its identity, or its name for
// an authenticator without one.
func pauseID(o CredentialOptions) string {
	id := "name\x00" + o.Name
	if i, ok := o.Auth.(identifier); ok {
		id = i.identity()
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (s *PauseStore) path(id string) string { return filepath.Join(s.dir, "pause-"+id+".json") }

// load returns the state of id: the latest of this process, else that of
// the file. A missing file is a fresh start; an unreadable or corrupt one
// too, with a warning.
func (s *PauseStore) load(id, name string) (st pauseState, thisProcess, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.mem[id]; ok {
		return st, true, true
	}
	if s.dir == "" {
		return st, false, false
	}
	err := s.read(s.path(id), &st)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, false, false
	case err == nil && st.ID != id:
		err = errors.New("the file belongs to another credential")
	}
	if err != nil {
		level.Warn(s.logger).Log("msg", "cannot read the stored pause of a credential; starting without it", "credential", name, "path", s.path(id), "err", err)
		return pauseState{}, false, false
	}
	return st, false, true
}

func (s *PauseStore) read(path string, st *pauseState) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPauseFileBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxPauseFileBytes {
		return fmt.Errorf("larger than %d bytes", maxPauseFileBytes)
	}
	return json.Unmarshal(b, st)
}

// save keeps st in memory and writes its file whole or not at all: a
// temporary file, renamed over the old one. A failed write is logged; the
// pause in memory holds.
func (s *PauseStore) save(st pauseState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Recent = slices.Clone(st.Recent)
	s.mem[st.ID] = st
	if s.dir == "" {
		return
	}
	if err := s.write(st); err != nil {
		level.Warn(s.logger).Log("msg", "cannot store the pause of a credential; a restart will not know it", "credential", st.Credential, "err", err)
	}
}

func (s *PauseStore) write(st pauseState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".pause-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(st.ID))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// errEarlierFailure stands for the failure behind a pause read back from
// the store.
var errEarlierFailure = errors.New("authentication failed before the last restart or reload")

// restorePause starts the gate where the stored state left it: in a pause
// after a restart; within the lockout budget after a reload that changed
// the credential (a fixed secret is tried at once if the budget allows).
func (c *Credential) restorePause() {
	s := c.opts.PauseStore
	if s == nil {
		return
	}
	c.pauseID = pauseID(c.opts)
	st, thisProcess, ok := s.load(c.pauseID, c.opts.Name)
	if !ok {
		return
	}
	now := c.opts.Now()
	g := &c.gate
	for _, t := range st.Recent {
		// A time from the future (a clock stepped back, an edited file)
		// counts as now.
		if t.After(now) {
			t = now
		}
		g.recent = append(g.recent, t)
	}
	if len(g.recent) > lockoutBudget {
		g.recent = g.recent[len(g.recent)-lockoutBudget:]
	}
	g.failures = max(0, min(st.Failures, 64))
	if g.failures == 0 {
		return
	}
	g.last = &Error{Endpoint: st.Endpoint, StatusCode: http.StatusUnauthorized, Code: st.Code, Err: errEarlierFailure}
	g.until = st.PausedUntil
	if thisProcess {
		g.until = c.budgetEnd()
	}
	if !g.until.After(now) {
		return // over: the first call goes alone, as after any pause
	}
	// No stored pause is longer than one this process would choose.
	if limit := now.Add(max(c.opts.AuthPauseMax, lockoutWindow) + time.Second); g.until.After(limit) {
		g.until = limit
	}
	level.Warn(s.logger).Log("msg", "credential paused by earlier authentication failures; no call until the pause ends",
		"credential", c.opts.Name, "until", g.until.UTC().Format(time.RFC3339), "hint", authHint(c.opts.Auth))
}

// savePause stores the gate's state. c.gate.mu is held.
func (c *Credential) savePause() {
	s := c.opts.PauseStore
	if s == nil {
		return
	}
	g := &c.gate
	st := pauseState{ID: c.pauseID, Credential: c.opts.Name, Failures: g.failures, Recent: g.recent}
	if g.failures > 0 {
		st.PausedUntil = g.until
		if g.last != nil {
			st.Endpoint, st.Code = g.last.Endpoint, g.last.Code
		}
	}
	s.save(st)
}

// authHint tells what to check after a 401, by credential kind.
func authHint(a Authenticator) string {
	switch a.(type) {
	case *iamAuth:
		return "check iam domain_name, user_name and password"
	case *ecsAuth:
		return "check the ECS agency of this instance"
	case *tokenSource:
		return "check oidc idp_id and id_token_file"
	}
	return "check access_key and secret_key (and security_token)"
}
