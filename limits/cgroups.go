package limits

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupMode is how worker memory is capped on this machine.
type CgroupMode string

// The cgroup modes, preferred first.
const (
	CgroupV2   CgroupMode = "v2"   // unified hierarchy with the memory controller
	CgroupV1   CgroupMode = "v1"   // legacy memory and pids hierarchies
	CgroupNone CgroupMode = "none" // no cgroup control: RSS sampling alone
)

// groupPrefix starts the name of every parent group the daemon makes, followed by
// its pid, so a later daemon can tell a crashed one's leftovers from a live one's.
const groupPrefix = "enclave-"

// Cgroups is the daemon's parent cgroup, under which each worker gets a leaf group
// of its own. It is safe for concurrent use: it holds no mutable state after
// NewCgroups.
type Cgroups struct {
	fs     cgroupFS
	log    *slog.Logger
	name   string
	mode   CgroupMode
	reason string
	// parents are the daemon's group directories: one on v2, the memory and
	// pids groups on v1 (memory first).
	parents []string
}

// NewCgroups finds which cgroup mode works under root ("/sys/fs/cgroup" in
// production) and makes the daemon's parent group, name, for example
// "enclave-<pid>". Leftover "enclave-<pid>" groups whose pid no longer runs, a
// crashed daemon's, are removed first.
//
// v2 needs "memory" in cgroup.controllers of root (or of root/unified on a hybrid
// mount) and the right to enable it in cgroup.subtree_control; v1 needs
// root/memory and root/pids writable. When neither works the mode is "none" and
// Reason says why, for the log and /readyz. The error is only for a bad name.
func NewCgroups(root, name string, logger *slog.Logger) (*Cgroups, error) {
	return newCgroups(root, name, logger, hostFS{})
}

func newCgroups(root, name string, logger *slog.Logger, cfs cgroupFS) (*Cgroups, error) {
	if err := checkGroupName(name); err != nil {
		return nil, fmt.Errorf("new cgroups: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cgroups{fs: cfs, log: logger, name: name, mode: CgroupNone}
	v2Reason := c.tryV2(root)
	if c.mode == CgroupNone {
		v1Reason := c.tryV1(root)
		if c.mode == CgroupNone {
			c.reason = "cgroup v2: " + v2Reason + "; cgroup v1: " + v1Reason
		}
	}
	c.logMode()
	return c, nil
}

func (c *Cgroups) logMode() {
	if c.mode == CgroupNone {
		c.log.Warn("no cgroup control, worker memory capped by rss sampling only",
			"reason", c.reason)
		return
	}
	c.log.Info("cgroup control", "mode", string(c.mode), "group", c.parents[0])
}

// checkGroupName refuses names that would leave the cgroup directory.
func checkGroupName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid cgroup name %q", name)
	}
	return nil
}

// Mode returns the cgroup mode in use.
func (c *Cgroups) Mode() CgroupMode { return c.mode }

// Reason says why the mode is "none"; it is empty otherwise.
func (c *Cgroups) Reason() string { return c.reason }

// tryV2 sets up the parent group on the unified hierarchy and returns why not
// when it cannot.
func (c *Cgroups) tryV2(root string) string {
	dir, ctrls, why := findV2(c.fs, root)
	if dir == "" {
		return why
	}
	enable := []string{"memory"}
	if hasWord(ctrls, "pids") {
		enable = append(enable, "pids")
	}
	if err := enableControllers(c.fs, dir, enable); err != nil {
		return err.Error()
	}
	c.removeLeftovers(dir)
	parent := filepath.Join(dir, c.name)
	if err := mkdirGroup(c.fs, parent); err != nil {
		return err.Error()
	}
	if err := enableControllers(c.fs, parent, enable); err != nil {
		_ = c.fs.Rmdir(parent)
		return err.Error()
	}
	c.mode, c.parents = CgroupV2, []string{parent}
	return ""
}

// findV2 returns the unified hierarchy's directory and its controllers: root
// itself on a pure v2 mount, root/unified on a hybrid one.
func findV2(cfs cgroupFS, root string) (dir, ctrls, why string) {
	for _, d := range []string{root, filepath.Join(root, "unified")} {
		s, err := cfs.Read(filepath.Join(d, "cgroup.controllers"))
		if err != nil {
			continue
		}
		if !hasWord(s, "memory") {
			return "", "", fmt.Sprintf("memory controller not available in %s", d)
		}
		return d, s, ""
	}
	return "", "", fmt.Sprintf("no cgroup v2 hierarchy under %s", root)
}

// enableControllers turns controllers on for the children of dir.
func enableControllers(cfs cgroupFS, dir string, ctrls []string) error {
	for _, ctrl := range ctrls {
		err := cfs.Write(filepath.Join(dir, "cgroup.subtree_control"), "+"+ctrl)
		if err != nil {
			return fmt.Errorf("enable %s in %s: %w", ctrl, dir, err)
		}
	}
	return nil
}

// v1Controllers are the legacy hierarchies a worker joins, memory first: the
// memory group is the one Path and MemoryUsage report.
var v1Controllers = []string{"memory", "pids"}

// tryV1 sets up the parent groups on the legacy hierarchies and returns why not
// when it cannot.
func (c *Cgroups) tryV1(root string) string {
	var parents []string
	for _, ctrl := range v1Controllers {
		dir := filepath.Join(root, ctrl)
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return fmt.Sprintf("%s not writable: %v", dir, err)
		}
		parents = append(parents, filepath.Join(dir, c.name))
	}
	for _, p := range parents {
		c.removeLeftovers(filepath.Dir(p))
	}
	for i, p := range parents {
		if err := mkdirGroup(c.fs, p); err != nil {
			removeDirs(c.fs, parents[:i])
			return err.Error()
		}
	}
	c.mode, c.parents = CgroupV1, parents
	return ""
}

// mkdirGroup makes a group; one left by an earlier run of the same name is reused.
func mkdirGroup(cfs cgroupFS, dir string) error {
	if err := cfs.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make cgroup: %w", err)
	}
	return nil
}

func removeDirs(cfs cgroupFS, dirs []string) {
	for _, d := range dirs {
		_ = cfs.Rmdir(d)
	}
}

// removeLeftovers removes "enclave-<pid>..." groups under dir whose daemon is gone.
// A crashed daemon cannot clean up after itself, and its empty groups would pile
// up; its workers were killed with it or are killed here.
func (c *Cgroups) removeLeftovers(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == c.name || !isStaleGroup(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := removeTree(c.fs, path); err != nil {
			c.log.Warn("remove leftover cgroup", "path", path, "error", err)
			continue
		}
		c.log.Info("removed leftover cgroup", "path", path)
	}
}

// isStaleGroup reports whether name is "enclave-<pid>" or "enclave-<pid>-<any>"
// and no process <pid> exists.
func isStaleGroup(name string) bool {
	rest, ok := strings.CutPrefix(name, groupPrefix)
	if !ok {
		return false
	}
	digits, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

// removeTree empties and removes a group and every group below it, deepest first.
func removeTree(cfs cgroupFS, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeTree(cfs, filepath.Join(dir, e.Name())))
		}
	}
	errs = append(errs, drain(cfs, []string{dir}), cfs.Rmdir(dir))
	return errors.Join(errs...)
}

// Close removes the daemon's parent group, first removing any worker group still
// in it. It is safe to call twice.
func (c *Cgroups) Close() error {
	var errs []error
	for _, p := range c.parents {
		errs = append(errs, removeTree(c.fs, p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close cgroups: %w", err)
	}
	return nil
}
