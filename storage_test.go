package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
)

// TestStoragePathKeepsPauseOverRestart: with --storage.path, an exporter
// started again inside the pause after a wrong secret sends nothing, so
// that a crash loop or a rolling update cannot lock the AK.
func TestStoragePathKeepsPauseOverRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	e := newTestEnv(t, 1, "--storage.path="+dir)
	e.writeConfig(t, strings.Replace(e.configYAML(1), testAK.SK, "wrong-"+testAK.SK, 1))
	if err := e.app.reload(); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetRequests()
	e.get(t, "/metrics")
	if n := e.fake.Requests(""); n != 1 {
		t.Fatalf("%d requests with a wrong secret, want the single probe", n)
	}

	for restart := range 5 {
		s, _, err := parseFlags([]string{"--config.file=" + e.config, "--storage.path=" + dir})
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncbuf.Buffer{}
		logger, _ := newLogger(logs, "info", "logfmt")
		a, err := newApp(s, logger, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.reload(); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.handler())
		code, body := e.get(t, "/probe?target=t0") // the old process, still paused
		if code != 200 {
			t.Fatalf("old process: %d %s", code, body)
		}
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if n := e.fake.Requests(""); n != 1 {
			t.Fatalf("restart %d: %d requests, want none after the first", restart+1, n)
		}
		if !strings.Contains(logs.String(), "credential paused by earlier authentication failures") {
			t.Errorf("restart %d: restored pause not logged:\n%s", restart+1, logs)
		}
	}
	if strings.Contains(e.logs.String(), "wrong-"+testAK.SK) {
		t.Error("secret logged")
	}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		if strings.Contains(string(b), testAK.SK) {
			t.Errorf("%s holds the secret", f.Name())
		}
	}
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
