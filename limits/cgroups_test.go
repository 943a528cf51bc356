package limits

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeFS plays the kernel's part in a temporary directory: mkdir creates the
// control files, cgroup.procs lists the live pids written to it, cgroup.kill
// kills them, and rmdir removes the directory with its files.
type fakeFS struct {
	hostFS
	files []string // control files each new group gets

	mu     sync.Mutex
	writes []string // "path=value", relative to root, in order
	root   string
}

func (f *fakeFS) Mkdir(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	for _, name := range append([]string{"cgroup.procs"}, f.files...) {
		if err := os.WriteFile(filepath.Join(path, name), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeFS) Rmdir(path string) error { return os.RemoveAll(path) }

func (f *fakeFS) Write(path, value string) error {
	f.mu.Lock()
	rel, _ := filepath.Rel(f.root, path)
	f.writes = append(f.writes, rel+"="+value)
	f.mu.Unlock()
	switch filepath.Base(path) {
	case "cgroup.procs":
		if _, err := os.Stat(path); err != nil {
			return err
		}
		old, _ := os.ReadFile(path)
		return os.WriteFile(path, append(old, value+"\n"...), 0o644)
	case "cgroup.kill":
		_, err := killAll(f, []string{filepath.Dir(path)})
		return err
	}
	return f.hostFS.Write(path, value)
}

func (f *fakeFS) Read(path string) (string, error) {
	s, err := f.hostFS.Read(path)
	if err != nil || filepath.Base(path) != "cgroup.procs" {
		return s, err
	}
	var live []string
	for _, p := range strings.Fields(s) {
		if pid, _ := strconv.Atoi(p); unix.Kill(pid, 0) == nil {
			live = append(live, p)
		}
	}
	return strings.Join(live, "\n"), nil
}

func (f *fakeFS) writeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

var (
	v2Files = []string{"cgroup.subtree_control", "cgroup.kill", "memory.max", "memory.high",
		"memory.swap.max", "memory.oom.group", "memory.events", "memory.current", "pids.max"}
	v1Files = []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness",
		"memory.oom_control", "memory.usage_in_bytes", "pids.max"}
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testName() string { return fmt.Sprintf("enclave-%d-test", os.Getpid()) }

// fakeV2 is a pure cgroup v2 mount with the memory and pids controllers.
func fakeV2(t *testing.T) (string, *fakeFS) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n")
	writeFile(t, filepath.Join(root, "cgroup.subtree_control"), "")
	return root, &fakeFS{root: root, files: v2Files}
}

// fakeV1 is this machine's hybrid mount: v1 memory and pids, v2 without memory.
func fakeV1(t *testing.T, files []string) (string, *fakeFS) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "unified", "cgroup.controllers"), "hugetlb\n")
	for _, d := range []string{"memory", "pids"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, &fakeFS{root: root, files: files}
}

func newFake(t *testing.T, root string, cfs *fakeFS) *Cgroups {
	t.Helper()
	c, err := newCgroups(root, testName(), nil, cfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startSleeper starts a process to put in a group and reaps it in the background,
// as the supervisor does, so that a killed one leaves the process table.
func startSleeper(t *testing.T) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, done
}

func assertKilled(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("process ended with %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("process still running")
	}
}

func TestCgroupsV2(t *testing.T) {
	root, cfs := fakeV2(t)
	c := newFake(t, root, cfs)
	if c.Mode() != CgroupV2 || c.Reason() != "" {
		t.Fatalf("mode %q reason %q", c.Mode(), c.Reason())
	}
	w, err := c.NewWorker("w1", 64<<20, 32)
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(root, testName(), "w1")
	if w.Path() != leaf {
		t.Errorf("Path = %q, want %q", w.Path(), leaf)
	}
	parent := testName() + "/cgroup.subtree_control"
	wantWrites := []string{
		"cgroup.subtree_control=+memory", "cgroup.subtree_control=+pids",
		parent + "=+memory", parent + "=+pids",
		testName() + "/w1/memory.max=67108864",
		testName() + "/w1/memory.high=60397974",
		testName() + "/w1/memory.swap.max=0",
		testName() + "/w1/memory.oom.group=1",
		testName() + "/w1/pids.max=32",
	}
	if got := cfs.writeLog(); !slicesEqual(got, wantWrites) {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantWrites, "\n"))
	}
	if got := readFile(t, filepath.Join(leaf, "memory.max")); got != "67108864" {
		t.Errorf("memory.max = %q", got)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestCgroupsV2FD(t *testing.T) {
	root, cfs := fakeV2(t)
	w, err := newFake(t, root, cfs).NewWorker("w1", 64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(w.Path(), "pids.max")); got != "max" {
		t.Errorf("pids.max without a cap = %q, want max", got)
	}
	fd, err := w.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var byFD, byPath unix.Stat_t
	if err := unix.Fstat(fd, &byFD); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(w.Path(), &byPath); err != nil {
		t.Fatal(err)
	}
	if byFD.Ino != byPath.Ino || byFD.Mode&unix.S_IFDIR == 0 {
		t.Errorf("fd is not the group directory")
	}
}

func TestCgroupsV2Counters(t *testing.T) {
	root, cfs := fakeV2(t)
	w, err := newFake(t, root, cfs).NewWorker("w1", 64<<20, 32)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Path(), "memory.events"), "low 0\nhigh 12\nmax 3\noom 2\noom_kill 1\noom_group_kill 1\n")
	writeFile(t, filepath.Join(w.Path(), "memory.current"), "12345678\n")
	if n, err := w.OOMKills(); n != 1 || err != nil {
		t.Errorf("OOMKills = %d, %v", n, err)
	}
	if n, err := w.MemoryUsage(); n != 12345678 || err != nil {
		t.Errorf("MemoryUsage = %d, %v", n, err)
	}
}

func TestCgroupsV2KillAndRemove(t *testing.T) {
	root, cfs := fakeV2(t)
	c := newFake(t, root, cfs)
	w, err := c.NewWorker("w1", 64<<20, 32)
	if err != nil {
		t.Fatal(err)
	}
	cmd, done := startSleeper(t)
	if err := w.AddPID(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	assertKilled(t, done)
	if !containsWrite(cfs.writeLog(), testName()+"/w1/cgroup.kill=1") {
		t.Error("v2 kill did not use cgroup.kill")
	}
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("group still there: %v", err)
	}
	if err := w.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, testName())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("parent still there: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func containsWrite(writes []string, w string) bool {
	for _, x := range writes {
		if x == w {
			return true
		}
	}
	return false
}

func TestCgroupsV2MissingRequiredFile(t *testing.T) {
	root, cfs := fakeV2(t)
	cfs.files = []string{"cgroup.subtree_control", "memory.high"} // no memory.max
	c := newFake(t, root, cfs)
	_, err := c.NewWorker("w1", 64<<20, 32)
	if err == nil || !strings.Contains(err.Error(), "memory.max") {
		t.Fatalf("error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, testName(), "w1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-made group left behind: %v", err)
	}
}

func TestCgroupsV1(t *testing.T) {
	root, cfs := fakeV1(t, v1Files)
	c := newFake(t, root, cfs)
	if c.Mode() != CgroupV1 {
		t.Fatalf("mode %q reason %q", c.Mode(), c.Reason())
	}
	w, err := c.NewWorker("w1", 64<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	mem := filepath.Join("memory", testName(), "w1")
	pids := filepath.Join("pids", testName(), "w1")
	wantWrites := []string{
		mem + "/memory.limit_in_bytes=67108864",
		mem + "/memory.memsw.limit_in_bytes=67108864",
		mem + "/memory.swappiness=0",
		pids + "/pids.max=100",
	}
	if got := cfs.writeLog(); !slicesEqual(got, wantWrites) {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantWrites, "\n"))
	}
	if w.Path() != filepath.Join(root, mem) {
		t.Errorf("Path = %q", w.Path())
	}
	if got := readFile(t, filepath.Join(root, pids, "memory.limit_in_bytes")); got != "" {
		t.Errorf("memory limit written in the pids group: %q", got)
	}
	if _, err := w.FD(); !errors.Is(err, ErrNotV2) {
		t.Errorf("FD on v1 = %v, want ErrNotV2", err)
	}
}

func TestCgroupsV1Counters(t *testing.T) {
	root, cfs := fakeV1(t, v1Files)
	w, err := newFake(t, root, cfs).NewWorker("w1", 64<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.Path(), "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	writeFile(t, filepath.Join(w.Path(), "memory.usage_in_bytes"), "4096\n")
	if n, err := w.OOMKills(); n != 2 || err != nil {
		t.Errorf("OOMKills = %d, %v", n, err)
	}
	if n, err := w.MemoryUsage(); n != 4096 || err != nil {
		t.Errorf("MemoryUsage = %d, %v", n, err)
	}
	// Kernels before 4.13 have no oom_kill line: no kills counted, no error.
	writeFile(t, filepath.Join(w.Path(), "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\n")
	if n, err := w.OOMKills(); n != 0 || err != nil {
		t.Errorf("OOMKills without the line = %d, %v", n, err)
	}
}

func TestCgroupsV1NoSwapAccounting(t *testing.T) {
	root, cfs := fakeV1(t, []string{"memory.limit_in_bytes", "memory.swappiness", "pids.max"})
	w, err := newFake(t, root, cfs).NewWorker("w1", 32<<20, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(w.Path(), "memory.limit_in_bytes")); got != "33554432" {
		t.Errorf("limit = %q", got)
	}
	if _, err := os.Stat(filepath.Join(w.Path(), "memory.memsw.limit_in_bytes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("memsw file created: %v", err)
	}
}

func TestCgroupsV1AddPIDKillAndRemove(t *testing.T) {
	root, cfs := fakeV1(t, v1Files)
	c := newFake(t, root, cfs)
	w, err := c.NewWorker("w1", 64<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	cmd, done := startSleeper(t)
	if err := w.AddPID(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, ctrl := range []string{"memory", "pids"} {
		got := readFile(t, filepath.Join(root, ctrl, testName(), "w1", "cgroup.procs"))
		if strings.TrimSpace(got) != pid {
			t.Errorf("%s cgroup.procs = %q, want %s", ctrl, got, pid)
		}
	}
	if err := w.Kill(); err != nil {
		t.Fatal(err)
	}
	assertKilled(t, done)
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, ctrl := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join(root, ctrl, testName(), "w1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s group still there", ctrl)
		}
	}
}

func TestCgroupsNone(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	tests := []struct {
		name       string
		setup      func(root string)
		wantReason []string
	}{
		{"empty", func(string) {}, []string{"no cgroup v2 hierarchy", "memory not writable"}},
		{"hybrid without v1 memory", func(root string) {
			writeFile(t, filepath.Join(root, "unified", "cgroup.controllers"), "hugetlb pids\n")
		}, []string{"memory controller not available in " + "ROOT/unified", "memory not writable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(root)
			c, err := newCgroups(root, testName(), logger, &fakeFS{root: root})
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode() != CgroupNone {
				t.Fatalf("mode = %q", c.Mode())
			}
			for _, w := range tt.wantReason {
				if w = strings.ReplaceAll(w, "ROOT", root); !strings.Contains(c.Reason(), w) {
					t.Errorf("reason %q lacks %q", c.Reason(), w)
				}
			}
			if _, err := c.NewWorker("w1", 64<<20, 10); !errors.Is(err, ErrNoCgroups) {
				t.Errorf("NewWorker = %v, want ErrNoCgroups", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	if !strings.Contains(logs.String(), "no cgroup control") {
		t.Errorf("mode none not logged: %s", logs.String())
	}
}

func TestBadNames(t *testing.T) {
	root, cfs := fakeV2(t)
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := newCgroups(root, name, nil, cfs); err == nil {
			t.Errorf("group name %q accepted", name)
		}
	}
	c := newFake(t, root, cfs)
	for _, id := range []string{"", "..", "../escape"} {
		if _, err := c.NewWorker(id, 64<<20, 1); err == nil {
			t.Errorf("worker id %q accepted", id)
		}
	}
	if _, err := c.NewWorker("w", 0, 1); err == nil {
		t.Error("zero memory cap accepted")
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestLeftoversRemoved(t *testing.T) {
	for _, mode := range []CgroupMode{CgroupV1, CgroupV2} {
		t.Run(string(mode), func(t *testing.T) {
			var root string
			var cfs *fakeFS
			hier := ""
			if mode == CgroupV1 {
				root, cfs = fakeV1(t, v1Files)
				hier = "memory"
			} else {
				root, cfs = fakeV2(t)
			}
			base := filepath.Join(root, hier)
			stale := filepath.Join(base, fmt.Sprintf("enclave-%d", deadPID(t)))
			live := filepath.Join(base, fmt.Sprintf("enclave-%d-other", os.Getpid()))
			foreign := filepath.Join(base, "system.slice")
			for _, d := range []string{stale, live, foreign} {
				if err := cfs.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			if err := cfs.Mkdir(filepath.Join(stale, "w0")); err != nil {
				t.Fatal(err)
			}
			cmd, done := startSleeper(t)
			writeFile(t, filepath.Join(stale, "w0", "cgroup.procs"), strconv.Itoa(cmd.Process.Pid)+"\n")

			newFake(t, root, cfs)
			assertKilled(t, done)
			if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale group kept: %v", err)
			}
			for _, d := range []string{live, foreign} {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("%s removed: %v", d, err)
				}
			}
		})
	}
}

func TestIsStaleGroup(t *testing.T) {
	dead := deadPID(t)
	tests := []struct {
		name string
		want bool
	}{
		{fmt.Sprintf("enclave-%d", dead), true},
		{fmt.Sprintf("enclave-%d-bench", dead), true},
		{fmt.Sprintf("enclave-%d", os.Getpid()), false},
		{"enclave-", false},
		{"enclave-abc", false},
		{"enclave-0", false},
		{fmt.Sprintf("other-%d", dead), false},
	}
	for _, tt := range tests {
		if got := isStaleGroup(tt.name); got != tt.want {
			t.Errorf("isStaleGroup(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
