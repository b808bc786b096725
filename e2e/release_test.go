//go:build release

// The release test: checks the archives make release built, as make
// release-test does.
package e2e

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var releasePlatforms = []string{"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64", "windows-amd64"}

func TestRelease(t *testing.T) {
	dir, name, version, revision := os.Getenv("KMS_RELEASE_DIR"), os.Getenv("KMS_RELEASE_NAME"), os.Getenv("KMS_RELEASE_VERSION"), os.Getenv("KMS_RELEASE_REVISION")
	if dir == "" || name == "" || version == "" || revision == "" {
		t.Fatal("KMS_RELEASE_DIR, KMS_RELEASE_NAME, KMS_RELEASE_VERSION and KMS_RELEASE_REVISION must be set: run make release-test")
	}

	// sha256sums.txt lists exactly the archives, with their digests.
	sums := map[string]string{}
	f, err := os.Open(filepath.Join(dir, "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("sha256sums.txt: bad line %q", sc.Text())
		}
		sums[file] = sum
	}
	var want []string
	for _, p := range releasePlatforms {
		ext := ".tar.gz"
		if strings.HasPrefix(p, "windows") {
			ext = ".zip"
		}
		want = append(want, name+"."+p+ext)
	}
	var got []string
	for file, sum := range sums {
		got = append(got, file)
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if d := sha256.Sum256(data); hex.EncodeToString(d[:]) != sum {
			t.Errorf("%s: sha256 %x, sha256sums.txt says %s", file, d, sum)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("sha256sums.txt lists %v, want %v", got, want)
	}

	// Every archive holds one directory with the binary and the docs.
	for _, archive := range want {
		files := archiveFiles(t, filepath.Join(dir, archive))
		base := strings.TrimSuffix(strings.TrimSuffix(archive, ".tar.gz"), ".zip")
		bin := "kms_exporter"
		if strings.HasSuffix(archive, ".zip") {
			bin += ".exe"
		}
		var wantFiles []string
		for _, f := range []string{bin, "LICENSE", "README.md", "CHANGELOG.md"} {
			wantFiles = append(wantFiles, base+"/"+f)
		}
		slices.Sort(files)
		slices.Sort(wantFiles)
		if !slices.Equal(files, wantFiles) {
			t.Errorf("%s holds %v, want %v", archive, files, wantFiles)
		}
	}

	// The linux/amd64 binary runs and says its version.
	tmp := t.TempDir()
	extractTarGz(t, filepath.Join(dir, name+".linux-amd64.tar.gz"), tmp)
	out, err := exec.Command(filepath.Join(tmp, name+".linux-amd64", "kms_exporter"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "version "+version+" ") || !strings.Contains(string(out), "revision: "+revision) {
		t.Errorf("--version:\n%s\nwant version %s, revision %s", out, version, revision)
	}
	t.Logf("%s", out)
}

// archiveFiles lists the regular files of a .tar.gz or .zip.
func archiveFiles(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if !f.FileInfo().IsDir() {
				out = append(out, f.Name)
			}
		}
		return out
	}
	forEachTar(t, path, func(h *tar.Header, _ io.Reader) {
		if h.Typeflag == tar.TypeReg {
			out = append(out, h.Name)
		}
	})
	return out
}

func extractTarGz(t *testing.T, path, dst string) {
	t.Helper()
	forEachTar(t, path, func(h *tar.Header, r io.Reader) {
		target := filepath.Join(dst, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, dst+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q leaves the directory", path, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, r); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func forEachTar(t *testing.T, path string, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		fn(h, tr)
	}
}
