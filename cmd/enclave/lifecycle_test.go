package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

// daemonProcess is the test binary started as `enclave serve` in its own process.
type daemonProcess struct {
	cmd    *exec.Cmd
	socket string
	config string
	log    *logBuffer
}

func startDaemonProcess(t *testing.T, yaml string) *daemonProcess {
	t.Helper()
	dir, err := os.MkdirTemp("", "encp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemonProcess{socket: filepath.Join(dir, "e.sock"), config: filepath.Join(dir, "enclave.yaml"), log: &logBuffer{}}
	d.writeConfig(t, yaml)
	d.cmd = exec.Command(os.Args[0])
	d.cmd.Env = append(os.Environ(), "ENCLAVE_TEST_SERVE="+d.config)
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Kill(); _ = d.cmd.Wait() })
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 3000; i++ {
			if _, err := os.Stat(d.socket); err == nil {
				done <- nil
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- fmt.Errorf("socket never appeared")
	}()
	if err := <-done; err != nil {
		t.Fatalf("%v; log:\n%s", err, d.log)
	}
	return d
}

func (d *daemonProcess) writeConfig(t *testing.T, yaml string) {
	t.Helper()
	body := "socket: " + d.socket + "\npool: {size: 2, minWorkers: 2}\n" + yaml
	if err := os.WriteFile(d.config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d *daemonProcess) run(t *testing.T, code string) (*client.Result, error) {
	t.Helper()
	c, err := client.New(client.Options{Socket: d.socket})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Execute(ctx, client.ExecuteOptions{Request: api.CreateRequest{Code: code}})
}

// logBuffer collects a child's stderr; the test reads it while the child writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// workersOf lists live worker processes whose environment names this daemon's config.
func workersOf(config string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.HasSuffix(string(cmdline), "\x00worker\x00") {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			continue
		}
		var pid int
		fmt.Sscan(e.Name(), &pid)
		if ppidEnv(pid, config) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ppidEnv reports whether pid is a worker started by the daemon of config: workers
// get no environment from the daemon, so match on the daemon being their parent or
// their having been reparented after it died.
func ppidEnv(pid int, config string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat))
	if len(f) < 4 {
		return false
	}
	var ppid int
	fmt.Sscan(f[3], &ppid)
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ppid))
	return strings.Contains(string(env), "ENCLAVE_TEST_SERVE="+config) || ppid == 1
}

// A daemon killed with SIGKILL leaves no worker behind for long, and the next daemon
// removes the cgroups it left.
func TestSigkilledDaemonLeavesNoWorkers(t *testing.T) {
	d := startDaemonProcess(t, "")
	if res, err := d.run(t, "return 1"); err != nil || string(res.Value) != "1" {
		t.Fatalf("run: %v", err)
	}
	before := workersOf(d.config)
	if len(before) == 0 {
		t.Fatalf("no workers found; log:\n%s", d.log)
	}
	pid := d.cmd.Process.Pid
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && anyAlive(before) {
		time.Sleep(20 * time.Millisecond)
	}
	if anyAlive(before) {
		t.Fatalf("workers %v still alive 2s after the daemon was killed", before)
	}
	group := filepath.Join("/sys/fs/cgroup/memory", fmt.Sprintf("enclave-%d", pid))
	if _, err := os.Stat(group); err != nil {
		return // no cgroup was made (not root, or no v1 memory controller)
	}
	next := startDaemonProcess(t, "")
	_ = next
	if _, err := os.Stat(group); !os.IsNotExist(err) {
		t.Fatalf("the killed daemon's cgroup %s is still there after the next start", group)
	}
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil && !strings.Contains(string(stat), ") Z ") {
			return true
		}
	}
	return false
}

// SIGHUP applies a valid new config to new runs and keeps the old one when the new
// file is invalid.
func TestSighupReload(t *testing.T) {
	d := startDaemonProcess(t, "limits: {maxIterations: 50}\n")
	loop := "let n = 0; for (let i = 0; i < 100; i++) n++; return n"
	if _, err := d.run(t, loop); api.CodeOf(err) != api.CodeMaxIterations {
		t.Fatalf("before reload: want MAX_ITERATIONS, got %v", err)
	}
	d.writeConfig(t, "limits: {maxIterations: 500}\n")
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(d.log.String(), "config reloaded") })
	if res, err := d.run(t, loop); err != nil || string(res.Value) != "100" {
		t.Fatalf("after reload: %v", err)
	}
	d.writeConfig(t, "limits: {maxIterations: -5}\nbogusKey: 1\n")
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(d.log.String(), "reload failed") })
	if res, err := d.run(t, loop); err != nil || string(res.Value) != "100" {
		t.Fatalf("after a bad reload: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Peers whose uid and gid are off the socket's allow-lists get UNAUTHORIZED.
func TestSocketPeerAllowList(t *testing.T) {
	other := uint32(os.Getuid() + 4242)
	d := startDaemon(t, func(c *limits.Config) {
		c.SocketAccess.AllowUIDs = []uint32{other}
		c.SocketAccess.AllowGIDs = []uint32{other}
	})
	resp, err := d.http().Post("http://x/v1/sessions", "application/json", strings.NewReader(`{"code":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var e api.ErrorPayload
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || e.Code != api.CodeUnauthorized {
		t.Fatalf("status %d code %s", resp.StatusCode, e.Code)
	}
	fi, err := os.Stat(d.socket)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want 0660 (%v)", fi.Mode().Perm(), err)
	}
}

// /readyz says 503 with a reason while every worker is busy and the queue is full.
func TestReadyzWhenSaturated(t *testing.T) {
	d := startDaemon(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers, c.Pool.MaxQueueSize = 1, 1, 0
	})
	get := func() (int, string) {
		resp, err := d.http().Get("http://x/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body["reason"]
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("idle daemon: readyz %d", code)
	}
	c, _ := client.New(client.Options{Socket: d.socket})
	held := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_, _ = c.Execute(context.Background(), client.ExecuteOptions{
			Request: api.CreateRequest{Code: "return await callTool('hold', {})", ClientTools: []string{"hold"}},
			Tools: func(ctx context.Context, _ string, _ json.RawMessage) (json.RawMessage, error) {
				close(held)
				<-release
				return json.RawMessage("1"), nil
			},
		})
	}()
	<-held
	code, reason := get()
	close(release)
	if code != http.StatusServiceUnavailable || !strings.Contains(reason, "queue") {
		t.Fatalf("saturated daemon: readyz %d %q", code, reason)
	}
}
