package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/enclave-go/enclave/ipc"
	"github.com/enclave-go/enclave/ipc/ipcpb"
	"github.com/enclave-go/enclave/limits"
)

// process is one worker process: every exec.Cmd and go-plugin detail lives here.
//
// The shutdown ladder, used by stop: ask (close the plugin connection, the worker
// exits on its own) → wait askGrace → SIGTERM the process group → wait termGrace →
// SIGKILL the group → kill the cgroup → reap. kill skips straight to SIGKILL: it is
// for a worker stuck in native code, which no request can reach.
type process struct {
	id     int
	pid    int
	client *plugin.Client
	worker ipcpb.WorkerClient
	cgroup *limits.WorkerCgroup // nil without cgroups
	log    *slog.Logger

	exited     chan struct{}  // closed when the process has been reaped
	stderrDone chan struct{}  // closed when the worker's stderr has been read to its end
	runtimeOOM atomic.Bool    // the Go runtime in the worker died for lack of memory or stack
	stderr     *io.PipeWriter // go-plugin copies the worker's stderr here
	socket     string         // the worker's gRPC socket file, removed after it exits

	mu       sync.Mutex
	killedBy string // why the supervisor killed it: "timeout", "cancel", "memory", ...
	oomBase  int64  // the cgroup's OOM kill count when the worker started
}

// processConfig is what starting a worker needs.
type processConfig struct {
	command   []string
	env       []string
	cgroups   *limits.Cgroups // nil: none
	iso       *isolation
	memory    int64
	pids      int64
	logger    *slog.Logger
	stderr    func(*process, io.Reader) // consumes the worker's stderr until it ends
	startWait time.Duration
}

const (
	askGrace  = 500 * time.Millisecond
	termGrace = 500 * time.Millisecond
)

// startProcess starts worker id and waits for its handshake. On cgroup v1 the pid is
// moved into its group before the worker is handed any run.
func startProcess(ctx context.Context, id int, cfg processConfig) (*process, error) {
	p := &process{id: id, exited: make(chan struct{}), stderrDone: make(chan struct{}), log: cfg.logger}
	cmd := exec.Command(cfg.command[0], cfg.command[1:]...)
	cmd.Env = cfg.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cfg.iso.apply(cmd.SysProcAttr)
	if err := p.makeCgroup(cfg, cmd); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	p.stderr = pw
	go func() {
		defer close(p.stderrDone)
		cfg.stderr(p, pr)
	}()
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  ipc.Handshake,
		Plugins:          ipc.Plugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           ipc.NewHCLogger(p.log),
		StartTimeout:     cfg.startWait,
		GRPCDialOptions:  ipc.DialOptions(),
		Stderr:           pw,
		SkipHostEnv:      true,
	})
	if err := p.connect(); err != nil {
		p.kill("start failed")
		_ = pw.Close()
		return nil, fmt.Errorf("start worker %d: %w", id, err)
	}
	return p, nil
}

func (p *process) makeCgroup(cfg processConfig, cmd *exec.Cmd) error {
	if cfg.cgroups == nil || cfg.cgroups.Mode() == limits.CgroupNone {
		return nil
	}
	cg, err := cfg.cgroups.NewWorker(fmt.Sprintf("worker-%d-%d", p.id, time.Now().UnixNano()), cfg.memory, cfg.pids)
	if err != nil {
		return fmt.Errorf("worker %d cgroup: %w", p.id, err)
	}
	p.cgroup = cg
	if fd, err := cg.FD(); err == nil {
		// cgroup v2: the child starts inside its group, never outside it.
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	p.oomBase, _ = cg.OOMKills()
	return nil
}

func (p *process) connect() error {
	rpc, err := p.client.Client()
	if err != nil {
		return err
	}
	rc := p.client.ReattachConfig()
	p.pid = rc.Pid
	if rc.Addr != nil && rc.Addr.Network() == "unix" {
		p.socket = rc.Addr.String()
	}
	if p.cgroup != nil {
		if err := p.cgroup.AddPID(p.pid); err != nil {
			return fmt.Errorf("move pid %d into cgroup: %w", p.pid, err)
		}
	}
	raw, err := rpc.Dispense(ipc.PluginName)
	if err != nil {
		return err
	}
	w, ok := raw.(ipcpb.WorkerClient)
	if !ok {
		return errors.New("plugin is not a worker")
	}
	p.worker = w
	go p.reap()
	return nil
}

// reap waits for the process to end and closes exited.
func (p *process) reap() {
	for !p.client.Exited() {
		time.Sleep(25 * time.Millisecond)
	}
	_ = p.stderr.Close()
	close(p.exited)
}

// markKilled records why the supervisor is about to kill the worker; the first
// reason wins, so a crash report names what really happened.
func (p *process) markKilled(reason string) {
	p.mu.Lock()
	if p.killedBy == "" {
		p.killedBy = reason
	}
	p.mu.Unlock()
}

func (p *process) killReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killedBy
}

// oomKilled reports whether the kernel killed the worker for memory.
func (p *process) oomKilled() bool {
	if p.cgroup == nil {
		return false
	}
	n, err := p.cgroup.OOMKills()
	return err == nil && n > p.oomBase
}

// kill ends the worker at once: SIGKILL to its process group, then its cgroup.
// Safe to call more than once and from any goroutine.
func (p *process) kill(reason string) {
	p.markKilled(reason)
	if p.pid > 0 {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	if p.cgroup != nil {
		_ = p.cgroup.Kill()
	}
	p.client.Kill()
	p.cleanup()
}

// stop runs the whole shutdown ladder, bounded by ctx.
func (p *process) stop(ctx context.Context, reason string) {
	p.markKilled(reason)
	asked := make(chan struct{})
	go func() { p.client.Kill(); close(asked) }() // closes the connection: the worker exits
	if p.waitExit(ctx, askGrace) {
		<-asked
		p.cleanup()
		return
	}
	if p.pid > 0 {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	}
	if !p.waitExit(ctx, termGrace) {
		p.kill(reason)
	}
	<-asked
	p.cleanup()
}

func (p *process) waitExit(ctx context.Context, d time.Duration) bool {
	if p.pid == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// cleanup removes the worker's socket and cgroup once the process is gone. A worker
// that was killed never removes its own socket (go-plugin puts each in a directory
// of its own under the temp dir).
func (p *process) cleanup() {
	if p.socket != "" {
		_ = os.Remove(p.socket)
		if dir := filepath.Dir(p.socket); strings.HasPrefix(filepath.Base(dir), "plugin") {
			_ = os.Remove(dir) // only if empty
		}
	}
	if p.cgroup == nil {
		return
	}
	if err := p.cgroup.Remove(); err != nil {
		p.log.Warn("remove worker cgroup", "error", err)
	}
}
