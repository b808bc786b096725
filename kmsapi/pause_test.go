package kmsapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/kms-exporter/kms_exporter/internal/fakeclock"
	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
)

// lockoutSim is a KMS that rejects every signature and notes when, on a
// fake clock, plus the exporter side: credentials that sign with a wrong
// secret, rebuilt at every simulated restart.
type lockoutSim struct {
	t     *testing.T
	clock *fakeclock.Clock
	srv   *testServer
	dir   string // --storage.path; "" for none

	mu    sync.Mutex
	fails []time.Time
}

func newLockoutSim(t *testing.T, storage bool) *lockoutSim {
	s := &lockoutSim{t: t, clock: newFakeClock()}
	if storage {
		s.dir = filepath.Join(t.TempDir(), "state", "kms_exporter")
	}
	h := &kmsHandler{t: t, ak: testAK, sk: testSK, fn: func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		t.Error("a request with the wrong secret was accepted")
	}}
	s.srv = serveMem(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.fails = append(s.fails, s.clock.Now())
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}), nil)
	return s
}

func (s *lockoutSim) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fails)
}

// start is a process start: a new store on the same directory, a new
// credential.
func (s *lockoutSim) start(logger log.Logger) *Client {
	var store *lockout.Store
	if s.dir != "" {
		var err error
		if store, err = lockout.NewStore(s.dir, logger); err != nil {
			s.t.Fatal(err)
		}
	}
	return newTestClient(s.t, s.srv.URL, NewAKSK(testAK, "wrong-"+testSK, ""), func(o *CredentialOptions) {
		o.Now = s.clock.Now
		o.PauseStore, o.Logger = store, logger
	})
}

// scrape makes the calls of one scrape at once, as the collectors do.
func (s *lockoutSim) scrape(c *Client) {
	calls := []func() error{
		func() error { _, err := c.Quotas(ctxTimeout(s.t, 10*time.Second)); return err },
		func() error { _, err := c.InstanceCount(ctxTimeout(s.t, 10*time.Second)); return err },
		func() error { _, err := c.ListKeys(ctxTimeout(s.t, 10*time.Second)); return err },
		func() error { _, err := c.Regions(ctxTimeout(s.t, 10*time.Second)); return err },
	}
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			if err := call(); !isAuthFailure(err) {
				s.t.Errorf("want an auth failure, got %v", err)
			}
		})
	}
	wg.Wait()
}

// run scrapes every scrapeEvery for d, restarting every restartEvery (0:
// never), and returns the most failures the API saw in any lockoutWindow.
func (s *lockoutSim) run(d, scrapeEvery, restartEvery time.Duration) (most, total int) {
	c := s.start(nil)
	started := s.clock.Now()
	for end := s.clock.Now().Add(d); s.clock.Now().Before(end); s.clock.Advance(scrapeEvery) {
		if restartEvery > 0 && s.clock.Now().Sub(started) >= restartEvery {
			c, started = s.start(nil), s.clock.Now()
		}
		s.scrape(c)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return mostInWindow(s.fails, lockoutWindow), len(s.fails)
}

// mostInWindow is the most times in any closed interval of length w.
func mostInWindow(times []time.Time, w time.Duration) int {
	most := 0
	for i, t := range times {
		n := 0
		for _, u := range times[i:] {
			if u.Sub(t) <= w {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// TestLockoutBudget simulates 30 minutes of scrapes with a wrong secret:
// the API never sees more than 3 failed signatures in any 5 minutes (it
// locks the AK at 5), from one process or from one that keeps restarting
// with --storage.path.
func TestLockoutBudget(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		scrapeEvery, restartEvery time.Duration
	}{
		{"one process, scrapes every 15s", 15 * time.Second, 0},
		{"one process, scrapes every second", time.Second, 0},
		{"crash loop, a restart every scrape", 5 * time.Second, 5 * time.Second},
		{"five restarts in 25s", time.Second, 5 * time.Second},
		{"restarts every 11s, scrapes every 7s", 7 * time.Second, 11 * time.Second},
		{"rolling updates every 2m", 15 * time.Second, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := newLockoutSim(t, true)
			most, total := sim.run(30*time.Minute, tc.scrapeEvery, tc.restartEvery)
			t.Logf("%d failed signatures in 30 minutes, at most %d in any 5 minutes", total, most)
			if most > lockoutBudget {
				t.Errorf("%d failed signatures within 5 minutes, want at most %d", most, lockoutBudget)
			}
			if total < 30/5 {
				t.Errorf("only %d attempts in 30 minutes: a fixed secret would wait too long", total)
			}
		})
	}
	t.Run("for comparison: restarts without --storage.path", func(t *testing.T) {
		sim := newLockoutSim(t, false)
		most, _ := sim.run(30*time.Minute, 5*time.Second, 5*time.Second)
		t.Logf("a restart every 5s without storage: %d failed signatures in some 5 minutes", most)
		if most <= lockoutBudget {
			t.Errorf("without storage the restarts stayed within the budget (%d): the simulation does not restart", most)
		}
	})
}

// The schedule of one process: pauses of 30s and 60s, then the fourth try
// waits until the first failure has left the 5-minute window.
func TestPauseScheduleKeepsBudget(t *testing.T) {
	sim := newLockoutSim(t, false)
	c := sim.start(nil)
	try := func() {
		t.Helper()
		_, err := c.Quotas(ctxTimeout(t, 5*time.Second))
		if !isAuthFailure(err) {
			t.Fatalf("want an auth failure, got %v", err)
		}
	}
	var got []time.Duration
	start := sim.clock.Now()
	for sim.clock.Now().Sub(start) < 15*time.Minute {
		n := sim.failures()
		try()
		if sim.failures() > n {
			got = append(got, sim.clock.Now().Sub(start))
		}
		sim.clock.Advance(time.Second)
	}
	want := []time.Duration{0, 30 * time.Second, 90 * time.Second, 301 * time.Second, 541 * time.Second, 841 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("failed signatures at %v, want %v", got, want)
	}
}

// TestPauseSurvivesRestart: a restart inside a pause sends nothing until
// the pause ends, then one probe.
func TestPauseSurvivesRestart(t *testing.T) {
	sim := newLockoutSim(t, true)
	logs := &syncbuf.Buffer{}
	sim.scrape(sim.start(nil))
	if sim.failures() != 1 {
		t.Fatalf("%d requests, want the single probe", sim.failures())
	}
	sim.clock.Advance(10 * time.Second)
	c := sim.start(log.NewLogfmtLogger(logs))
	for range 5 {
		sim.scrape(c)
		_, err := c.Quotas(ctxTimeout(t, 5*time.Second))
		if !errors.Is(err, lockout.ErrPaused) || !strings.Contains(err.Error(), "before the last restart") {
			t.Fatalf("after the restart: %v, want the paused error", err)
		}
		if e := mustError(t, err); e.StatusCode != 401 || e.Code != "APIGW.0301" || e.Endpoint == "" {
			t.Errorf("restored failure %#v, want the 401 APIGW.0301", e)
		}
		sim.clock.Advance(3 * time.Second)
	}
	if sim.failures() != 1 {
		t.Fatalf("%d requests after a restart inside the pause, want none", sim.failures())
	}
	if !strings.Contains(logs.String(), "level=warn") || !strings.Contains(logs.String(), "check access_key and secret_key") {
		t.Errorf("restored pause not logged with a hint:\n%s", logs)
	}
	sim.clock.Advance(30 * time.Second) // past the 30s pause
	sim.scrape(c)
	if sim.failures() != 2 {
		t.Fatalf("%d requests after the pause, want one more", sim.failures())
	}
}

func TestPauseStoreFile(t *testing.T) {
	sim := newLockoutSim(t, true)
	sim.scrape(sim.start(nil))
	if fi, err := os.Stat(sim.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("storage directory: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(sim.dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the storage directory, want one (no temporary file left): %v", len(entries), entries)
	}
	sum := sha256.Sum256([]byte("aksk\x00" + testAK))
	id := hex.EncodeToString(sum[:])
	if entries[0].Name() != "pause-"+id+".json" {
		t.Errorf("file %s, want it named by the hash of the AK", entries[0].Name())
	}
	path := filepath.Join(sim.dir, entries[0].Name())
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, secret := range []string{testSK, "wrong-" + testSK, testAK, "Signature"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("state file holds %q:\n%s", secret, b)
		}
	}
	for _, want := range []string{`"id":"` + id + `"`, `"credential":"test"`, `"failures":1`, `"paused_until":"2026-03-01T12:00:30Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("state file lacks %s:\n%s", want, b)
		}
	}
}

// An unreadable or corrupt state file never stops a start: it is reported,
// and the credential starts without a pause.
func TestPauseStoreBadFile(t *testing.T) {
	sum := sha256.Sum256([]byte("aksk\x00" + testAK))
	name := "pause-" + hex.EncodeToString(sum[:]) + ".json"
	plants := map[string]func(path string) error{
		"garbage":     func(p string) error { return os.WriteFile(p, []byte("\x00{not json"), 0o600) },
		"huge":        func(p string) error { return os.WriteFile(p, []byte(`{"id":"`+strings.Repeat("a", 1<<20)+`"}`), 0o600) },
		"a directory": func(p string) error { return os.Mkdir(p, 0o700) },
		"another credential's": func(p string) error {
			return os.WriteFile(p, []byte(`{"id":"00","failures":3,"paused_until":"2026-03-01T12:04:00Z"}`), 0o600)
		},
		"a symlink elsewhere": func(p string) error { return os.Symlink("/dev/zero", p) },
	}
	if mkfifo != nil {
		plants["a FIFO"] = mkfifo
	}
	for what, plant := range plants {
		t.Run(what, func(t *testing.T) {
			sim := newLockoutSim(t, true)
			if err := os.MkdirAll(sim.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := plant(filepath.Join(sim.dir, name)); err != nil {
				t.Fatal(err)
			}
			logs := &syncbuf.Buffer{}
			sim.scrape(sim.start(log.NewLogfmtLogger(logs)))
			if sim.failures() != 1 {
				t.Errorf("%d requests, want the probe of a fresh start", sim.failures())
			}
			if !strings.Contains(logs.String(), "level=warn") || !strings.Contains(logs.String(), "starting without it") {
				t.Errorf("bad state file not reported:\n%s", logs)
			}
		})
	}
}

// A failed write is reported and the pause in memory holds.
func TestPauseStoreWriteFailure(t *testing.T) {
	sim := newLockoutSim(t, true)
	logs := &syncbuf.Buffer{}
	c := sim.start(log.NewLogfmtLogger(logs))
	os.RemoveAll(sim.dir)
	sim.scrape(c)
	sim.scrape(c)
	if sim.failures() != 1 {
		t.Errorf("%d requests, want 1", sim.failures())
	}
	if !strings.Contains(logs.String(), "cannot store the pause") {
		t.Errorf("failed write not reported:\n%s", logs)
	}
}

// A reload that changes the secret builds a new credential on the same
// store: a fixed secret is tried at once while the budget allows, else when
// the oldest failure leaves the window.
func TestPauseStoreChangedSecret(t *testing.T) {
	srv, h := newKMS(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.Write([]byte(quotasExample)) })
	clock := newFakeClock()
	store, _ := lockout.NewStore("", nil)
	build := func(sk string) *Client {
		return newTestClient(t, srv.URL, NewAKSK(testAK, sk, ""), func(o *CredentialOptions) {
			o.Now, o.PauseStore = clock.Now, store
		})
	}
	quotas := func(c *Client) error { _, err := c.Quotas(ctxTimeout(t, 5*time.Second)); return err }

	quotas(build("wrong-1"))
	if err := quotas(build(testSK)); err != nil {
		t.Fatalf("fixed secret after one failure: %v, want it tried at once", err)
	}
	quotas(build("wrong-2"))
	clock.Advance(time.Second)
	quotas(build("wrong-3"))
	clock.Advance(time.Second)
	if h.count.Load() != 4 {
		t.Fatalf("%d requests, want 4", h.count.Load())
	}
	fixed := build(testSK)
	if err := quotas(fixed); !errors.Is(err, lockout.ErrPaused) || h.count.Load() != 4 {
		t.Fatalf("a 4th secret within 5 minutes of 3 failures: %v, %d requests; want paused", err, h.count.Load())
	}
	clock.Advance(lockoutWindow)
	if err := quotas(fixed); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
