package limits

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const realRoot = "/sys/fs/cgroup"

// realCgroups makes a real parent group for this test process, or skips with the
// reason when the machine does not allow it.
func realCgroups(t *testing.T) *Cgroups {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	if err := unix.Access(filepath.Join(realRoot, "memory"), unix.W_OK); err != nil {
		if _, err2 := os.Stat(filepath.Join(realRoot, "cgroup.controllers")); err2 != nil {
			t.Skipf("no writable cgroup memory controller at %s: %v", realRoot, err)
		}
	}
	name := fmt.Sprintf("enclave-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	c, err := NewCgroups(realRoot, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() == CgroupNone {
		t.Skipf("no cgroup mode works here: %s", c.Reason())
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// startIn starts an sh script inside the group: directly on v2, moved in before
// it may go on (reading a line from stdin) on v1, as the supervisor does with a
// worker.
func startIn(t *testing.T, w *WorkerCgroup, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read go; "+script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if fd, err := w.FD(); err == nil {
		defer unix.Close(fd)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if w.mode == CgroupV1 {
		if err := w.AddPID(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	return cmd, stdin
}

func TestRealCgroupOOMKill(t *testing.T) {
	c := realCgroups(t)
	const memCap = 64 << 20
	w, err := c.NewWorker("oom", memCap, 64)
	if err != nil {
		t.Fatal(err)
	}
	limitFile := map[CgroupMode]string{CgroupV1: "memory.limit_in_bytes", CgroupV2: "memory.max"}[c.Mode()]
	if got := strings.TrimSpace(readFile(t, filepath.Join(w.Path(), limitFile))); got != "67108864" {
		t.Errorf("%s = %q", limitFile, got)
	}

	// tail keeps the whole newline-free stream in memory, so it grows past the cap.
	cmd, stdin := startIn(t, w, "head -c 400M /dev/zero | tail")
	start := time.Now()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("allocation bomb exited with %v, want a failure", err)
	}
	kills, err := w.OOMKills()
	if err != nil || kills < 1 {
		t.Errorf("OOMKills = %d, %v; want >= 1", kills, err)
	}
	t.Logf("mode %s: 400MiB bomb under a 64MiB cap stopped after %v (%v), oom kills %d",
		c.Mode(), took.Round(time.Millisecond), ee, kills)

	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("group still there: %v", err)
	}
}

func TestRealCgroupRemoveKills(t *testing.T) {
	c := realCgroups(t)
	w, err := c.NewWorker("sleeper", 64<<20, 64)
	if err != nil {
		t.Fatal(err)
	}
	// A child that forks more children: all of them are in the group and all die.
	cmd, stdin := startIn(t, w, "sleep 60 & sleep 60 & wait")
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		pids, _ := readPIDs(hostFS{}, filepath.Join(w.Path(), "cgroup.procs"))
		return len(pids) == 3
	})
	if n, err := w.MemoryUsage(); err != nil || n <= 0 {
		t.Errorf("MemoryUsage = %d, %v", n, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	assertKilled(t, done)
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("group still there: %v", err)
	}
	if err := w.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
