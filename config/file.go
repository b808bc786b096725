package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Size limits of the files the exporter reads: a config far beyond any
// real one, and a secret that holds a security token with room to spare.
const (
	maxConfigFileBytes = 4 << 20
	maxSecretFileBytes = 16 << 10
)

// readFile reads the regular file at path, of at most limit bytes, and
// never blocks: an open of a FIFO waits for a writer, and /dev/zero never
// ends, so anything but a regular file is refused before it is opened. The
// open does not block either, and the opened file is checked again, in case
// the path was swapped between the two.
func readFile(path string, limit int64) ([]byte, error) {
	b, err := readRegular(path, limit)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// "stat" or "open" means nothing to whoever wrote the config.
		err = fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return b, err
}

func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlocking, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	tooBig := fmt.Errorf("%s is larger than %d bytes", path, limit)
	if fi.Size() > limit {
		return nil, tooBig
	}
	// The size may grow, or be 0 for a file with content (/proc).
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, tooBig
	}
	return b, nil
}

func regular(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	what := "a special file"
	switch {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("%s is %s, not a regular file", path, what)
}

// CheckFile refuses, as Load would, a path that is not a regular file of at
// most the config file's size: for a file another library reads without
// such a bound (exporter-toolkit's --web.config.file).
func CheckFile(path string) error {
	_, err := readFile(path, maxConfigFileBytes)
	return err
}
