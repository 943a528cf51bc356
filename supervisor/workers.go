package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/enclave-go/enclave/limits"
)

const (
	workerStartTimeout = 15 * time.Second
	// workerPids caps threads and processes in a worker's cgroup: a Go process needs
	// a few dozen threads; a script can start none.
	workerPids  = 256
	rssInterval = 100 * time.Millisecond
)

// startWorker starts worker id with the configured memory cap and its RSS watch.
func (s *Supervisor) startWorker(ctx context.Context, id int) (*process, error) {
	memory := s.cfg.Load().Values().WorkerMemory
	log := s.log.With("worker_id", id)
	cfg := processConfig{
		command: s.opts.WorkerCommand, env: s.opts.WorkerEnv, cgroups: s.cgroups, iso: s.iso,
		memory: memory, pids: workerPids, logger: log, stderr: logLines,
		startWait: workerStartTimeout,
	}
	p, err := startProcess(ctx, id, cfg)
	if err != nil && s.iso.netns.Load() && errors.Is(err, syscall.EPERM) {
		// A container without CAP_SYS_ADMIN refuses new namespaces: say so once and
		// go on without.
		s.log.Warn("kernel refused a network namespace for workers; they share the daemon's", "error", err)
		s.iso.netns.Store(false)
		p, err = startProcess(ctx, id, cfg)
	}
	if err != nil {
		return nil, err
	}
	go s.watchMemory(p, memory)
	log.Debug("worker started", "pid", p.pid)
	return p, nil
}

// watchMemory samples the worker's RSS: a gauge, a warning at 80 % of the cap and a
// kill past it. With a cgroup the kernel usually acts first; without one this is the
// cap.
func (s *Supervisor) watchMemory(p *process, limit int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-p.exited; cancel() }()
	w := limits.RSSWatch{
		Interval: rssInterval, Soft: limit / 10 * 8, Hard: limit,
		OnSample: func(rss int64) { s.metrics.workerMemory(p.id, rss) },
		OnSoft: func(rss int64) {
			s.log.Warn("worker memory high", "worker_id", p.id, "pid", p.pid, "rss_bytes", rss)
		},
	}
	if err := w.Run(ctx, p.pid); errors.Is(err, limits.ErrOverMemory) {
		p.log.Warn("worker over its memory cap, killing it", "pid", p.pid)
		p.kill("memory")
	}
}

func (s *Supervisor) workerExited(w *worker, reason string) {
	s.metrics.restarted(reason)
	s.log.Debug("worker stopped", "worker_id", w.id, "pid", w.pid, "reason", reason, "runs", w.runs)
}

// maxStderrLines bounds what one worker may put in the daemon's log: a Go runtime
// crash prints every goroutine's stack, a thousand lines that say little more than
// the first few.
const maxStderrLines = 40

// logLines writes a worker's stderr to the daemon's log until it ends, and notes a Go
// runtime death for lack of memory or stack, which the caller gets as
// MEMORY_LIMIT_EXCEEDED rather than as a crash.
func logLines(p *process, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		if isRuntimeOOM(line) {
			p.runtimeOOM.Store(true)
		}
		if n++; n <= maxStderrLines {
			logWorkerLine(p.log, line)
		}
	}
	_, _ = io.Copy(io.Discard, r) // an over-long line stops the scanner; keep draining
	if n > maxStderrLines {
		p.log.Warn("worker stderr truncated", "lines", n, "logged", maxStderrLines)
	}
}

func isRuntimeOOM(line []byte) bool {
	s := string(line)
	return strings.HasPrefix(s, "fatal error: runtime: out of memory") ||
		strings.HasPrefix(s, "fatal error: stack overflow") ||
		strings.Contains(s, "goroutine stack exceeds")
}

// logWorkerLine logs one stderr line of a worker. go-plugin's own lines are hclog
// JSON and keep their level; anything else (a panic, a runtime error) is a warning.
func logWorkerLine(log *slog.Logger, line []byte) {
	var entry struct {
		Level   string `json:"@level"`
		Message string `json:"@message"`
	}
	if json.Unmarshal(line, &entry) != nil || entry.Message == "" {
		log.Warn("worker stderr", "line", string(line))
		return
	}
	level := slog.LevelInfo
	switch entry.Level {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "worker log", "message", entry.Message)
}
