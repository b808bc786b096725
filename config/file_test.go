//go:build unix

package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func akskConfig(skFile string) string {
	return "credentials:\n  prod: {access_key: a, secret_key_file: " + skFile + "}\ntargets:\n  - {name: t, region: cn-north-4}\n"
}

// Files that are not regular are refused by name, with the path, before
// anything reads them: /dev/zero never ends, a directory cannot be read.
func TestSecretFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for path, what := range map[string]string{
		"/dev/zero": "a device",
		"/dev/null": "a device",
		link:        "a device",
		dir:         "a directory",
		sock:        "a socket",
	} {
		_, err := Parse([]byte(akskConfig(path)), dir)
		want := "credentials.prod.secret_key_file: " + path + " is " + what + ", not a regular file"
		if err == nil || err.Error() != want {
			t.Errorf("secret_key_file %s: %v\n  want %s", path, err, want)
		}
	}
}

// A FIFO as secret file is refused without being opened: the open would
// wait for a writer, and start-up or a reload with it. If the code under
// test opens it, the writer here gets in, closes, and the read finds an
// empty file: the wrong error, not a hang.
func TestSecretFileFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "sk")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := watchFIFO(t, fifo)
	_, err := Parse([]byte(akskConfig("sk")), dir)
	if o := opened(); o {
		t.Error("the FIFO was opened")
	}
	want := "credentials.prod.secret_key_file: " + fifo + " is a named pipe (FIFO), not a regular file"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\n  want %s", err, want)
	}
}

// watchFIFO waits, in the background, for a reader to open fifo. opened
// tells whether one did before it was called, and leaves nothing waiting.
func watchFIFO(t *testing.T, fifo string) (opened func() bool) {
	t.Helper()
	got := make(chan bool, 1)
	stop := make(chan struct{})
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for a reader
		if err != nil {
			got <- false
			return
		}
		select {
		case <-stop: // our own reader, below
			got <- false
		default:
			got <- true
		}
		w.Close()
	}()
	return func() bool {
		close(stop)
		r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return <-got
	}
}

func TestFilesOverTheLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("s", maxSecretFileBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(akskConfig(big)), dir)
	want := "credentials.prod.secret_key_file: " + big + " is larger than 16384 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\n  want %s", err, want)
	}

	cfg := filepath.Join(dir, "kms.yml")
	content := akskConfig("/nonexistent") + "#" + strings.Repeat("x", maxConfigFileBytes) + "\n"
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(cfg)
	want = "--config.file: " + cfg + " is larger than 4194304 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\n  want %s", err, want)
	}
}

func TestConfigFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "kms.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := watchFIFO(t, fifo)
	_, fifoErr := Load(fifo)
	if opened() {
		t.Error("the FIFO was opened")
	}
	for path, what := range map[string]string{
		fifo:        "a named pipe (FIFO)",
		"/dev/zero": "a device",
		dir:         "a directory",
	} {
		err := fifoErr
		if path != fifo {
			_, err = Load(path)
		}
		want := "--config.file: " + path + " is " + what + ", not a regular file"
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v\n  want %s", path, err, want)
		}
	}
}
