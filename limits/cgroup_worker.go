package limits

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of emptying a group: SIGKILL is fast, but a process in uninterruptible
// sleep (disk, page fault under memory pressure) leaves only when that ends.
const (
	drainTimeout = 2 * time.Second
	drainPoll    = 5 * time.Millisecond
)

// WorkerCgroup is the leaf group of one worker process.
type WorkerCgroup struct {
	fs   cgroupFS
	mode CgroupMode
	// dirs are the group's directories: the one leaf on v2; the memory and pids
	// leaves on v1, memory first.
	dirs []string
}

// setting is one control file write; optional ones are skipped when the kernel
// does not have the file (no swap accounting, for one).
type setting struct {
	file     string
	value    string
	optional bool
}

// NewWorker makes the leaf group of worker id with a memory cap in bytes and a
// cap on processes and threads (pids <= 0: no cap; a Go process needs several
// threads). On v2 it sets memory.max, memory.high at 90% (the kernel throttles
// and reclaims there before the hard cap kills), memory.swap.max=0,
// memory.oom.group=1 and pids.max; on v1 memory.limit_in_bytes,
// memory.memsw.limit_in_bytes where swap is accounted, memory.swappiness=0 and
// pids.max. Swap is off so that a capped worker is killed rather than left
// thrashing. In mode "none" it returns ErrNoCgroups.
func (c *Cgroups) NewWorker(id string, memory int64, pids int64) (*WorkerCgroup, error) {
	if c.mode == CgroupNone {
		return nil, ErrNoCgroups
	}
	if err := checkGroupName(id); err != nil {
		return nil, fmt.Errorf("new worker cgroup: %w", err)
	}
	if memory <= 0 {
		return nil, fmt.Errorf("new worker cgroup %s: memory cap must be positive", id)
	}
	w := &WorkerCgroup{fs: c.fs, mode: c.mode}
	for _, p := range c.parents {
		w.dirs = append(w.dirs, filepath.Join(p, id))
	}
	if err := w.setUp(memory, pids); err != nil {
		_ = w.Remove()
		return nil, fmt.Errorf("new worker cgroup %s: %w", id, err)
	}
	return w, nil
}

func (w *WorkerCgroup) setUp(memory, pids int64) error {
	for _, d := range w.dirs {
		if err := mkdirGroup(w.fs, d); err != nil {
			return err
		}
	}
	pidsMax := "max"
	if pids > 0 {
		pidsMax = strconv.FormatInt(pids, 10)
	}
	if w.mode == CgroupV2 {
		return w.apply(w.dirs[0], v2Settings(memory, pidsMax))
	}
	if err := w.apply(w.dirs[0], v1MemorySettings(memory)); err != nil {
		return err
	}
	return w.apply(w.dirs[1], []setting{{file: "pids.max", value: pidsMax}})
}

func v2Settings(memory int64, pidsMax string) []setting {
	return []setting{
		{file: "memory.max", value: strconv.FormatInt(memory, 10)},
		{file: "memory.high", value: strconv.FormatInt(memory/10*9, 10)},
		{file: "memory.swap.max", value: "0", optional: true},
		{file: "memory.oom.group", value: "1", optional: true},
		{file: "pids.max", value: pidsMax, optional: true},
	}
}

// v1MemorySettings are in kernel order: memsw.limit may not be below
// limit_in_bytes, so the plain limit goes first.
func v1MemorySettings(memory int64) []setting {
	m := strconv.FormatInt(memory, 10)
	return []setting{
		{file: "memory.limit_in_bytes", value: m},
		{file: "memory.memsw.limit_in_bytes", value: m, optional: true},
		{file: "memory.swappiness", value: "0", optional: true},
	}
}

func (w *WorkerCgroup) apply(dir string, settings []setting) error {
	for _, s := range settings {
		err := w.fs.Write(filepath.Join(dir, s.file), s.value)
		if err != nil && !(s.optional && errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("set %s: %w", s.file, err)
		}
	}
	return nil
}

// Path returns the group's directory (on v1, the memory group's).
func (w *WorkerCgroup) Path() string { return w.dirs[0] }

// FD opens the group's directory for SysProcAttr.CgroupFD with UseCgroupFD, so
// the worker starts inside its group and never runs a single instruction outside.
// Only v2 can do this (ErrNotV2 otherwise). The caller closes the fd.
func (w *WorkerCgroup) FD() (int, error) {
	if w.mode != CgroupV2 {
		return -1, ErrNotV2
	}
	fd, err := unix.Open(w.dirs[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", w.dirs[0], err)
	}
	return fd, nil
}

// AddPID moves a running process into the group (on v1 into each controller's
// group). On v1 this is how a worker gets in: start it, move it, then give it
// work. Threads and children it makes afterwards stay inside.
func (w *WorkerCgroup) AddPID(pid int) error {
	for _, d := range w.dirs {
		if err := w.fs.Write(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// OOMKills returns how many processes the kernel's OOM killer killed in the
// group: oom_kill of memory.events on v2, of memory.oom_control on v1.
func (w *WorkerCgroup) OOMKills() (int64, error) {
	file := "memory.events"
	if w.mode == CgroupV1 {
		file = "memory.oom_control"
	}
	n, err := readKey(w.fs, filepath.Join(w.dirs[0], file), "oom_kill")
	if err != nil {
		return 0, fmt.Errorf("read oom kills: %w", err)
	}
	return n, nil
}

// MemoryUsage returns the group's charged memory in bytes (memory.current on v2,
// memory.usage_in_bytes on v1), page cache included.
func (w *WorkerCgroup) MemoryUsage() (int64, error) {
	file := "memory.current"
	if w.mode == CgroupV1 {
		file = "memory.usage_in_bytes"
	}
	n, err := readInt(w.fs, filepath.Join(w.dirs[0], file))
	if err != nil {
		return 0, fmt.Errorf("read memory usage: %w", err)
	}
	return n, nil
}

// Kill sends SIGKILL to every process in the group: one write to cgroup.kill on
// v2 (kernels from 5.14), else each pid of cgroup.procs. It does not wait.
func (w *WorkerCgroup) Kill() error {
	if w.mode == CgroupV2 {
		err := w.fs.Write(filepath.Join(w.dirs[0], "cgroup.kill"), "1")
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	_, err := killAll(w.fs, w.dirs)
	return err
}

// Remove kills what is left in the group, waits (bounded) until it is empty and
// removes it. It is safe to call twice.
func (w *WorkerCgroup) Remove() error {
	if err := w.Kill(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	if err := drain(w.fs, w.dirs); err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	var errs []error
	for _, d := range w.dirs {
		errs = append(errs, w.fs.Rmdir(d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	return nil
}

// drain kills the processes of dirs until none is left, re-reading the lists
// because a process may fork while being killed. A group already removed counts
// as empty.
func drain(cfs cgroupFS, dirs []string) error {
	deadline := time.Now().Add(drainTimeout)
	for {
		n, err := killAll(cfs, dirs)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still has %d processes after %s", dirs[0], n, drainTimeout)
		}
		time.Sleep(drainPoll)
	}
}

// killAll sends SIGKILL to each process listed in the dirs' cgroup.procs and
// returns how many it found.
func killAll(cfs cgroupFS, dirs []string) (int, error) {
	found := 0
	var errs []error
	for _, d := range dirs {
		pids, err := readPIDs(cfs, filepath.Join(d, "cgroup.procs"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pid := range pids {
			found++
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
			}
		}
	}
	return found, errors.Join(errs...)
}
