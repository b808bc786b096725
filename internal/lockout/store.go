package lockout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// state is the pause of one credential, and the content of its file.
type state struct {
	ID          string      `json:"id"`         // hex SHA-256 of the credential's kind and identity
	Credential  string      `json:"credential"` // its name in the config, for people reading the file
	Failures    int         `json:"failures"`   // consecutive authentication failures
	PausedUntil time.Time   `json:"paused_until"`
	Recent      []time.Time `json:"recent_failures"` // the last few, oldest first
	Endpoint    string      `json:"endpoint,omitempty"`
	Code        string      `json:"code,omitempty"` // error_code of the last failure, e.g. APIGW.0301
}

// Store keeps the pause of each credential. In memory, it carries the
// recent failures of a credential over to the new one that a reload with a
// changed secret builds, so that trying one wrong secret after another
// still keeps to the budget. With a directory, it keeps the state in files
// too, so that a restart inside a pause sends nothing until the pause ends:
// else every restart of a crash loop or a rolling update would try a wrong
// secret once more, and lock the key.
//
// A state holds a hash of the credential's public identity, when its pause
// ends and when it last failed: never a secret, nor anything derived from one.
type Store struct {
	dir    string // "": memory only
	logger log.Logger

	mu  sync.Mutex
	mem map[string]state // of the credentials built by this process
}

// maxFileBytes bounds what is read of a state file: a few hundred bytes
// are written.
const maxFileBytes = 4 << 10

// NewStore keeps state in dir, created (0700) if missing, or in memory only if
// dir is "". It fails if dir cannot be created or written, so that a wrong
// --storage.path shows at start-up.
func NewStore(dir string, logger log.Logger) (*Store, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	s := &Store{dir: dir, logger: logger, mem: map[string]state{}}
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

func (s *Store) path(id string) string { return filepath.Join(s.dir, "pause-"+id+".json") }

// Load returns the state of id, for the credential name: the latest this
// process saved (thisProcess), else that of the file. A missing file is a
// fresh start (not ok); an unreadable or corrupt one too, with a warning.
func (s *Store) Load(id, name string) (st state, thisProcess, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.mem[id]; ok {
		return st, true, true
	}
	if s.dir == "" {
		return st, false, false
	}
	err := read(s.path(id), &st)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, false, false
	case err == nil && st.ID != id:
		err = errors.New("the file belongs to another credential")
	}
	if err != nil {
		level.Warn(s.logger).Log("msg", "cannot read the stored pause of a credential; starting without it", "credential", name, "path", s.path(id), "err", err)
		return state{}, false, false
	}
	return st, false, true
}

func read(path string, st *state) error {
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
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxFileBytes {
		return fmt.Errorf("larger than %d bytes", maxFileBytes)
	}
	return json.Unmarshal(b, st)
}

// Save keeps st in memory and writes its file whole or not at all: a
// temporary file, renamed over the old one. A failed write is logged; the
// state in memory holds.
func (s *Store) Save(st state) {
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

func (s *Store) write(st state) error {
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
