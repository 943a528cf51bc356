// Package supervisor is Enclave's worker pool and its embeddable Go API: it checks a
// script, queues it, runs it in a worker process, routes the worker's tool calls, and
// kills and replaces workers that hang, crash or outgrow their memory.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
)

// Options configure a Supervisor.
type Options struct {
	// Config is the daemon's configuration. Default: limits.Default().
	Config *limits.Config
	// Logger receives the supervisor's and the workers' logs. Default: discard.
	Logger *slog.Logger
	// Registerer gets the supervisor's metrics. Default: none are registered.
	Registerer prometheus.Registerer
	// WorkerCommand starts one worker process. Default: this executable with the
	// hidden "worker" subcommand.
	WorkerCommand []string
	// WorkerEnv is the workers' whole environment (the host's is not inherited).
	// Default: none.
	WorkerEnv []string
	// CgroupRoot is where cgroup controllers are mounted. Default: /sys/fs/cgroup.
	// "none" turns cgroups off (the RSS watchdog still caps memory).
	CgroupRoot string
	// KillGrace is how long after a run's deadline the supervisor waits for the
	// worker's own interrupt before it kills the process. Default: 500ms.
	KillGrace time.Duration
	// RuntimeLabel is the "runtime" label of the queue depth metric. Default: "local".
	RuntimeLabel string
	// WorkerUser is the account workers run as when the daemon is root. Default:
	// "nobody"; "root" keeps them root.
	WorkerUser string
	// SharedNetwork keeps workers in the daemon's network namespace when it is root.
	// Default: false, each worker gets an empty namespace of its own.
	SharedNetwork bool
}

// Supervisor runs scripts in a pool of worker processes. It is safe for concurrent
// use; Close stops it.
type Supervisor struct {
	opts    Options
	log     *slog.Logger
	cfg     atomic.Pointer[limits.Config]
	tools   atomic.Pointer[toolRouter]
	pool    *pool
	cgroups *limits.Cgroups
	metrics *metrics
	scripts *scriptCache
	iso     *isolation

	runs      sync.WaitGroup
	stopJan   chan struct{}
	closeOnce sync.Once
}

// New starts a supervisor and waits until its first workers are ready.
func New(ctx context.Context, opts Options) (*Supervisor, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	s := &Supervisor{
		opts: opts, log: opts.Logger, scripts: newScriptCache(),
		metrics: newMetrics(opts.Registerer, opts.RuntimeLabel), stopJan: make(chan struct{}),
	}
	s.cfg.Store(opts.Config)
	s.tools.Store(newToolRouter(opts.Config, opts.Logger))
	s.cgroups = s.setupCgroups()
	s.iso = planIsolation(opts, opts.Logger)
	pc := opts.Config.Pool
	s.pool = newPool(&pool{
		size: pc.Size, minWorkers: pc.MinWorkers, maxQueue: pc.MaxQueueSize,
		queueTimeout: pc.QueueTimeout.Std(), idleTimeout: pc.IdleTimeout.Std(),
		start: s.startWorker, onExit: s.workerExited,
	})
	if err := s.pool.prewarm(ctx, pc.Size); err != nil {
		s.Close(context.Background())
		return nil, fmt.Errorf("start workers: %w", err)
	}
	go s.janitor(pc.IdleTimeout.Std())
	s.log.Info("supervisor ready", "workers", pc.Size, "cgroups", s.cgroupMode(),
		"security_level", string(opts.Config.SecurityLevel))
	return s, nil
}

func (o *Options) fill() error {
	if o.Config == nil {
		o.Config = limits.Default()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(o.WorkerCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable for workers: %w", err)
		}
		o.WorkerCommand = []string{exe, "worker"}
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	if o.KillGrace <= 0 {
		o.KillGrace = 500 * time.Millisecond
	}
	if o.RuntimeLabel == "" {
		o.RuntimeLabel = "local"
	}
	return nil
}

func (s *Supervisor) setupCgroups() *limits.Cgroups {
	if s.opts.CgroupRoot == "none" {
		s.log.Warn("cgroups disabled by configuration; memory is capped by RSS sampling only")
		return nil
	}
	name := "enclave-" + strconv.Itoa(os.Getpid())
	cg, err := limits.NewCgroups(s.opts.CgroupRoot, name, s.log)
	if err != nil {
		s.log.Warn("cgroups unavailable; memory is capped by RSS sampling only", "error", err)
		return nil
	}
	return cg // limits logs the mode it found, and why when it is none
}

func (s *Supervisor) cgroupMode() string {
	if s.cgroups == nil {
		return string(limits.CgroupNone)
	}
	return string(s.cgroups.Mode())
}

// Config returns the configuration new runs use.
func (s *Supervisor) Config() *limits.Config { return s.cfg.Load() }

// Reload applies a new configuration to runs that start from now on: levels, limits,
// tools and tool policy. Pool sizes and the socket keep their old values until restart.
func (s *Supervisor) Reload(cfg *limits.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg.Store(cfg)
	old := s.tools.Swap(newToolRouter(cfg, s.log))
	old.close()
	s.scripts.clear()
	return nil
}

// Ready returns nil when a run submitted now would start without waiting for a
// worker to boot, else the reason it would not.
func (s *Supervisor) Ready() error {
	idle, live, waiting, busy := s.pool.stats()
	switch {
	case live == 0:
		return errors.New("no worker is running yet")
	case idle == 0 && busy >= s.pool.size && waiting >= s.pool.maxQueue:
		return fmt.Errorf("queue is full: %d runs waiting", waiting)
	}
	return nil
}

// PoolStats describe the worker pool at one moment.
type PoolStats struct {
	Live    int // started or starting workers
	Idle    int // workers waiting for a run
	Busy    int // runs holding a worker slot
	Waiting int // runs in the queue
}

// Stats returns the pool's current counts.
func (s *Supervisor) Stats() PoolStats {
	idle, live, waiting, busy := s.pool.stats()
	return PoolStats{Live: live, Idle: idle, Busy: busy, Waiting: waiting}
}

// CgroupMode reports how worker memory is capped: "v2", "v1" or "none".
func (s *Supervisor) CgroupMode() string { return s.cgroupMode() }

// janitor stops idle workers above minWorkers.
func (s *Supervisor) janitor(idle time.Duration) {
	if idle <= 0 {
		return
	}
	t := time.NewTicker(max(idle/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stopJan:
			return
		case now := <-t.C:
			s.pool.shrink(now)
		}
	}
}

// Close refuses new runs, lets running ones finish (until ctx ends, then kills
// them), stops every worker and removes the cgroups. Safe to call twice.
func (s *Supervisor) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.stopJan)
		if s.pool != nil {
			s.pool.close(ctx)
			s.waitRuns(ctx)
			s.waitWorkersGone(ctx)
		}
		s.tools.Load().close()
		if s.cgroups != nil {
			if err := s.cgroups.Close(); err != nil {
				s.log.Warn("remove cgroups", "error", err)
			}
		}
	})
	return nil
}

func (s *Supervisor) waitRuns(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.pool.killBusy()
		<-done
	}
}

func (s *Supervisor) waitWorkersGone(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, live, _, _ := s.pool.stats(); live == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.log.Warn("workers still running after shutdown")
}

// Result is a finished run.
type Result struct {
	// Value is the script's result as JSON.
	Value json.RawMessage
	// Stats count the run's time, tool calls and iterations.
	Stats api.Stats
	// WorkerID and WorkerPID name the worker that ran it.
	WorkerID  int
	WorkerPID int
}

// Run checks and runs one script and waits for its result. A failure is an *api.Error
// with the wire code (use api.CodeOf).
func (s *Supervisor) Run(ctx context.Context, req Request) (*Result, error) {
	ex, err := s.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return ex.Wait(ctx)
}
