package limits

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupFS is the handful of file operations cgroup control needs. Production uses
// hostFS on the real cgroup mount; tests use a fake that plays the kernel's part in
// a temporary directory (control files appear on mkdir, rmdir removes them).
type cgroupFS interface {
	Mkdir(path string) error
	Rmdir(path string) error
	Write(path, value string) error
	Read(path string) (string, error)
}

// hostFS is the real cgroup filesystem.
type hostFS struct{}

func (hostFS) Mkdir(path string) error { return os.Mkdir(path, 0o755) }

// Rmdir removes a group; a group already gone is not an error. os.Remove would
// try unlink first, which cgroupfs refuses with a misleading error.
func (hostFS) Rmdir(path string) error {
	if err := unix.Rmdir(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// Write writes value in one write call and never creates the file: control files
// exist or the kernel does not support the setting.
func (hostFS) Write(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	return errors.Join(err, f.Close())
}

func (hostFS) Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// readInt reads a control file holding one number ("max" is refused).
func readInt(cfs cgroupFS, path string) (int64, error) {
	s, err := cfs.Read(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
}

// readKey reads the value of key from a "key value" per line file such as
// memory.events or memory.oom_control. A missing key reads as 0: older kernels
// simply do not count that event.
func readKey(cfs cgroupFS, path, key string) (int64, error) {
	s, err := cfs.Read(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}

// readPIDs reads a cgroup.procs file.
func readPIDs(cfs cgroupFS, path string) ([]int, error) {
	s, err := cfs.Read(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// hasWord reports whether the space-separated list s holds w, as in
// cgroup.controllers.
func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
