package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

// TestStoragePathKeepsPauseOverRestart: with --storage.path, an exporter
// started again inside the pause after a wrong secret sends nothing, so
// that a crash loop or a rolling update cannot lock the AK.
func TestStoragePathKeepsPauseOverRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		e := newTestEnv(t, 1) // its own exporter stays idle
		wrong := strings.Replace(e.configYAML(1), testAK.SK, "wrong-"+testAK.SK, 1)
		start := func() *exporter {
			return startExporter(t, e.net, nil, wrong, "--storage.path="+dir, "--log.level=info")
		}
		first := start()
		e.fake.ResetRequests()
		first.get(t, "/metrics")
		if n := e.fake.Requests(""); n != 1 {
			t.Fatalf("%d requests with a wrong secret, want the single probe", n)
		}
		first.close()
		for restart := 1; restart <= 5; restart++ {
			x := start()
			if code, _ := x.get(t, "/metrics"); code != 200 {
				t.Fatalf("restart %d: /metrics answered %d", restart, code)
			}
			if n := e.fake.Requests(""); n != 1 {
				t.Fatalf("restart %d: %d requests, want none after the first", restart, n)
			}
			if !strings.Contains(x.logs.String(), "credential paused by earlier authentication failures") {
				t.Errorf("restart %d: restored pause not logged:\n%s", restart, x.logs)
			}
			x.close()
		}
		files, _ := os.ReadDir(dir)
		if len(files) != 1 {
			t.Errorf("%d files in --storage.path, want one", len(files))
		}
		for _, f := range files {
			b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
			if strings.Contains(string(b), testAK.SK) {
				t.Errorf("%s holds the secret", f.Name())
			}
		}
	})
}

func TestStoragePathUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, err := parseFlags([]string{"--storage.path=" + file})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newApp(s, nil, noEnv); err == nil || !strings.Contains(err.Error(), "--storage.path") {
		t.Errorf("newApp with a file as --storage.path: %v", err)
	}
}
