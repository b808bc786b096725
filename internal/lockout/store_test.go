package lockout

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNewRefusesUnusablePath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		if _, err := NewStore(dir, nil); err == nil {
			t.Errorf("NewStore(%s): no error", dir)
		}
	}
}
