package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// requestReadTimeout bounds reading one request, body included, so a client that
// sends half a body does not hold a connection; event streams clear it once the
// request is read. idleConnTimeout closes idle keep-alive connections.
const (
	requestReadTimeout = 30 * time.Second
	idleConnTimeout    = 2 * time.Minute
)

// drainTimeout is how long a stopping daemon lets running scripts finish before it
// kills their workers.
const drainTimeout = 15 * time.Second

func runServe(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.err)
	configPath := fs.String("config", "", "YAML config file (default: built-in defaults)")
	socket := fs.String("socket", "", "Unix socket path (overrides the config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := limits.Load(*configPath)
	if err != nil {
		fmt.Fprintf(io.err, "enclave serve: %v\n", err)
		return 1
	}
	if *socket != "" {
		cfg.Socket = *socket
	}
	log := newLogger(cfg.Log, io.err)
	tuneGC()
	if err := serve(ctx, cfg, *configPath, log); err != nil {
		log.Error("daemon stopped", "error", err)
		return 1
	}
	return 0
}

// serve runs the daemon until ctx ends: supervisor, metrics, the socket API, SIGHUP
// reloads, then the shutdown: stop accepting, drain, kill, remove the socket.
func serve(ctx context.Context, cfg *limits.Config, configPath string, log *slog.Logger) error {
	started := time.Now()
	reg, stopMetrics, err := startMetrics(cfg.Metrics.Listen, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	// MCP servers in the config are reached through one registry, so the tool
	// declarations come from the same connections scripts call through.
	mcp := codemode.NewRegistry(log)
	defer mcp.Close()
	supervisor.ProviderFactory = mcp.Factory
	sup, err := supervisor.New(ctx, supervisor.Options{Config: cfg, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	sessions := supervisor.NewSessions(sup, cfg.SessionTimeout.Std(), int(cfg.MaxConcurrentSessions))
	ln, err := listenUnix(cfg.Socket, cfg.SocketAccess)
	if err != nil {
		closeSupervisor(sup, log)
		return err
	}
	var draining atomic.Bool
	handler := peerCheck(refuseWhileDraining(&draining, api.NewHandler(sessions, api.HandlerOptions{
		Logger: log, MaxBodyBytes: maxBodyBytes(cfg), Tools: describeTools(sup, mcp),
	})), cfg.SocketAccess)
	srv := &http.Server{Handler: handler, ConnContext: withPeerCred, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: requestReadTimeout, IdleTimeout: idleConnTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("socket server failed", "error", err)
		}
	}()
	log.Info("daemon ready", "socket", cfg.Socket, "ready_ms", time.Since(started).Milliseconds())
	stopReload := reloadOnHUP(sup, configPath, log)
	defer stopReload()

	<-ctx.Done()
	log.Info("daemon stopping")
	// New sessions are refused, but running ones keep their streams, tool results
	// and cancels while they drain.
	draining.Store(true)
	closeSupervisor(sup, log)
	sessions.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	_ = os.Remove(cfg.Socket)
	log.Info("daemon stopped")
	return nil
}

// describeTools answers GET /v1/tools from the configuration new runs use.
func describeTools(sup *supervisor.Supervisor, mcp *codemode.Registry) func(context.Context) (any, string, error) {
	return func(ctx context.Context) (any, string, error) {
		cat := codemode.BuildCatalog(ctx, sup.Config(), mcp.Lister)
		return cat, cat.Text(), nil
	}
}

// maxBodyBytes lets a request carry the largest value the daemon's limits allow (a
// client tool's result, custom globals) plus room for the envelope.
func maxBodyBytes(cfg *limits.Config) int64 {
	return max(cfg.Values().MaxValueBytes, api.DefaultMaxBodyBytes-64<<10) + 64<<10
}

func closeSupervisor(sup *supervisor.Supervisor, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := sup.Close(ctx); err != nil {
		log.Warn("supervisor close", "error", err)
	}
}

// reloadOnHUP re-reads the config file on SIGHUP; a bad file is logged and the old
// config stays.
func reloadOnHUP(sup *supervisor.Supervisor, path string, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				reload(sup, path, log)
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// ignoreHUP keeps SIGHUP (Go's default: exit) from killing a process that reads
// its config only at start, and says so in the log. It returns the stop function.
func ignoreHUP(log *slog.Logger, what string) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				log.Warn("SIGHUP ignored: the " + what + " reads its config only at start; restart it to apply a change")
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

func reload(sup *supervisor.Supervisor, path string, log *slog.Logger) {
	if path == "" {
		log.Info("reload skipped: the daemon runs on built-in defaults, no file to read")
		return
	}
	cfg, err := limits.Load(path)
	if err == nil {
		err = sup.Reload(cfg)
	}
	if err != nil {
		log.Error("reload failed, keeping the old config", "error", err)
		return
	}
	log.Info("config reloaded", "path", path, "security_level", string(cfg.SecurityLevel))
}

// tuneGC collects less often than Go's default unless GOGC says otherwise: the
// daemon's live heap is small and each run leaves short-lived garbage (events,
// JSON), so the default spends a measurable share of CPU on collection
// (docs/performance.md).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
}

// newLogger builds the daemon's one logger: text for a terminal, JSON on request.
func newLogger(l limits.Log, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// refuseWhileDraining answers new sessions and readiness with 503 once the daemon
// is stopping; the other routes keep serving the sessions that are draining.
func refuseWhileDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		creating := r.Method == http.MethodPost && r.URL.Path == "/v1/sessions"
		if draining.Load() && (creating || r.URL.Path == "/readyz") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"status": "not ready", "reason": "the daemon is shutting down",
				"code": string(api.CodeUnavailable), "message": "the daemon is shutting down",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}
