//go:build image

// The image test: runs the image that make image built with buildah, as
// make image-test does. It needs root (buildah's chroot isolation) but no
// registry and no OCI runtime.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func buildah(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "buildah", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("buildah %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// imageConfig is the part of the OCI image config the test checks.
type imageConfig struct {
	User       string            `json:"User"`
	Entrypoint []string          `json:"Entrypoint"`
	Labels     map[string]string `json:"Labels"`
}

func TestImage(t *testing.T) {
	image, version, revision := os.Getenv("KMS_IMAGE"), os.Getenv("KMS_IMAGE_VERSION"), os.Getenv("KMS_IMAGE_REVISION")
	if image == "" || version == "" || revision == "" {
		t.Fatal("KMS_IMAGE, KMS_IMAGE_VERSION and KMS_IMAGE_REVISION must be set: run make image-test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var inspect struct {
		OCIv1 struct {
			Config imageConfig `json:"config"`
		} `json:"OCIv1"`
	}
	if err := json.Unmarshal([]byte(buildah(ctx, t, "inspect", "--type", "image", image)), &inspect); err != nil {
		t.Fatal(err)
	}
	cfg := inspect.OCIv1.Config
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", cfg.User)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/kms_exporter" {
		t.Errorf("entrypoint %q, want [/kms_exporter]", cfg.Entrypoint)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.licenses": "Apache-2.0",
	} {
		if got := cfg.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}

	ctr := buildah(ctx, t, "from", image)
	t.Cleanup(func() { _ = exec.Command("buildah", "rm", ctr).Run() })

	// From scratch: the binary and the CA bundle, nothing else.
	root := buildah(ctx, t, "mount", ctr)
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files, " "); got != "etc/ssl/certs/ca-certificates.crt kms_exporter" {
		t.Errorf("image files: %s, want the CA bundle and kms_exporter only", got)
	}
	if ca, err := os.ReadFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")); err != nil || bytes.Count(ca, []byte("BEGIN CERTIFICATE")) < 10 {
		t.Errorf("CA bundle: %d certificates, %v", bytes.Count(ca, []byte("BEGIN CERTIFICATE")), err)
	}

	// --version from the binary in the image.
	// (kingpin prints it on stderr)
	outb, err := exec.CommandContext(ctx, "buildah", append([]string{"run", "--isolation=chroot", ctr, "--"}, append(cfg.Entrypoint, "--version")...)...).CombinedOutput()
	if out := string(outb); err != nil || !strings.Contains(out, "version "+version) || !strings.Contains(out, "revision: "+revision) {
		t.Errorf("--version in the image: %v\n%s\nwant version %s, revision %s", err, out, version, revision)
	}

	// --demo with the image's entrypoint and user, on the host's network.
	addr := freeAddr(t)
	args := append([]string{"run", "--isolation=chroot", "--network=host", ctr, "--"}, cfg.Entrypoint...)
	cmd := exec.Command("buildah", append(args, "--demo", "--web.listen-address="+addr)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("---- buildah run --demo:\n%s", log.String())
		}
	}()

	up := regexp.MustCompile(`(?m)^kms_up\{[^}]*\} 1$`)
	var metrics string
	for metrics == "" {
		body, err := httpGet("http://" + addr + "/metrics")
		if err == nil && up.MatchString(body) {
			metrics = body
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/metrics never had kms_up 1: %v\n%.500s", err, body)
		case err := <-exited:
			exited <- err
			t.Fatalf("the container exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("%d targets with kms_up 1", len(up.FindAllString(metrics, -1)))

	// The process serving it runs as 65532, user and group.
	pid := processWithArg(t, "--web.listen-address="+addr, "/kms_exporter")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"Uid", "Gid"} {
		m := regexp.MustCompile(`(?m)^` + field + `:\s+(.*)$`).FindSubmatch(status)
		if m == nil || strings.Join(strings.Fields(string(m[1])), " ") != "65532 65532 65532 65532" {
			t.Errorf("process %d %s: %q, want 65532 (real, effective, saved, fs)", pid, field, m)
		}
	}
}

func httpGet(u string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(body), err
}

// processWithArg finds the one process whose command line starts with
// argv0 and contains arg.
func processWithArg(t *testing.T, arg, argv0 string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if argv[0] == argv0 && strings.Contains(string(cmdline), arg) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("processes %s with %s: %v, want exactly one", argv0, arg, found)
	}
	return found[0]
}
