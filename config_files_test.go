//go:build unix

package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// replace puts at path a symlink to target (or, target "", a FIFO).
func replace(t *testing.T, path, target string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	var err error
	if target == "" {
		err = syscall.Mkfifo(path, 0o600)
	} else {
		err = os.Symlink(target, path)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A reload that meets a file without end or a FIFO answers at once with an
// error naming the field and the path, keeps the config in force, and does
// not hold up the reloads after it.
func TestReloadRefusesSpecialFiles(t *testing.T) {
	a, cfgPath, skPath, _ := fileTestApp(t)
	inForce := a.cur.Load()
	restore := func(path, content string) {
		t.Helper()
		os.Remove(path)
		writeFile(t, path, content)
		if err := a.reload(); err != nil {
			t.Fatalf("reload after fixing %s: %v", path, err)
		}
		inForce = a.cur.Load()
	}
	cfg, _ := os.ReadFile(cfgPath)
	for _, tc := range []struct {
		path, target, want string
	}{
		{skPath, "/dev/zero", "credentials.prod.secret_key_file: " + skPath + " is a device, not a regular file"},
		{skPath, "", "credentials.prod.secret_key_file: " + skPath + " is a named pipe (FIFO), not a regular file"},
		{cfgPath, "/dev/zero", "--config.file: " + cfgPath + " is a device, not a regular file"},
		{cfgPath, "", "--config.file: " + cfgPath + " is a named pipe (FIFO), not a regular file"},
	} {
		replace(t, tc.path, tc.target)
		rec := httptest.NewRecorder()
		a.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
		if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s -> %q: reload answered %d %q\n  want 500 with %q", tc.path, tc.target, rec.Code, rec.Body, tc.want)
		}
		if a.cur.Load() != inForce || testutil.ToFloat64(a.reloadOK) != 0 {
			t.Errorf("%s -> %q: the config in force changed, or the reload gauge is not 0", tc.path, tc.target)
		}
		if tc.path == skPath {
			restore(skPath, "file-test-secret\n")
		} else {
			restore(cfgPath, string(cfg))
		}
	}
}

func TestStartRefusesSpecialFiles(t *testing.T) {
	_, _, skPath, _ := fileTestApp(t)
	replace(t, skPath, "")
	cfgPath := filepath.Join(filepath.Dir(skPath), "kms.yml")
	for _, tc := range []struct{ arg, want string }{
		{"--config.file=/dev/zero", "--config.file: /dev/zero is a device, not a regular file"},
		{"--config.file=" + cfgPath, "credentials.prod.secret_key_file: " + skPath + " is a named pipe (FIFO), not a regular file"},
	} {
		var out bytes.Buffer
		if code := run([]string{tc.arg, "--web.listen-address=127.0.0.1:0"}, &out, func(string) string { return "" }); code != 1 {
			t.Errorf("%s: exit %d, want 1", tc.arg, code)
		}
		if !strings.Contains(out.String(), tc.want) || !strings.Contains(out.String(), "cannot load config") {
			t.Errorf("%s: log does not say %q:\n%s", tc.arg, tc.want, out.String())
		}
	}
}

// --web.config.file is read by exporter-toolkit, which would wait forever
// on a FIFO and read /dev/zero until memory runs out: the exporter refuses
// it at start as it does its own files.
func TestStartRefusesSpecialWebConfigFile(t *testing.T) {
	_, cfgPath, _, _ := fileTestApp(t)
	dir := filepath.Dir(cfgPath)
	big := filepath.Join(dir, "big.yml")
	writeFile(t, big, "\t"+strings.Repeat("x", 5<<20))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{dir, dir + " is a directory, not a regular file"},
		{big, big + " is larger than"},
		{fifo, fifo + " is a named pipe (FIFO), not a regular file"},
	} {
		var out bytes.Buffer
		args := []string{"--config.file=" + cfgPath, "--web.config.file=" + tc.path, "--web.listen-address=127.0.0.1:0"}
		if code := run(args, &out, func(string) string { return "" }); code != 1 {
			t.Errorf("%s: exit %d, want 1", tc.path, code)
		}
		if !strings.Contains(out.String(), "--web.config.file: "+tc.want) {
			t.Errorf("%s: log does not say %q:\n%s", tc.path, tc.want, out.String())
		}
	}
}
