package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/enclave-go/enclave/broker"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

func runRuntime(ctx context.Context, args []string, io stdio) int {
	cfg, ok := loadScaleOutConfig("runtime", args, io)
	if !ok {
		return 2
	}
	log := newLogger(cfg.Log, io.err)
	tuneGC()
	defer ignoreHUP(log, "runtime")()
	if err := serveRuntime(ctx, cfg, log); err != nil {
		log.Error("runtime stopped", "error", err)
		return 1
	}
	return 0
}

// serveRuntime runs a runtime pod until ctx ends (SIGTERM), then drains it:
// stop taking work, let running sessions finish for up to drainTimeout, exit.
func serveRuntime(ctx context.Context, cfg *limits.Config, log *slog.Logger) error {
	reg, stopMetrics, err := startMetrics(cfg.Metrics.Listen, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	sup, err := supervisor.New(ctx, supervisor.Options{Config: cfg, Logger: log, Registerer: reg, RuntimeLabel: cfg.RuntimeID})
	if err != nil {
		return err
	}
	defer closeSupervisor(sup, log)
	rdb := broker.NewClient(cfg.Redis)
	defer rdb.Close()
	rt, err := broker.NewRuntime(broker.RuntimeOptions{
		Redis: rdb, Supervisor: sup, ID: cfg.RuntimeID, Labels: cfg.Labels, Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	stopHealth, err := startHealth(cfg.Listen, rt, log)
	if err != nil {
		return err
	}
	defer stopHealth()
	return runUntilDrained(ctx, rt, log)
}

// runUntilDrained runs rt until ctx ends and then drains it. A drain that does
// not finish in drainTimeout stops the runtime where it is; the sessions it
// still ran end with RUNTIME_LOST through the other runtimes.
func runUntilDrained(ctx context.Context, rt *broker.Runtime, log *slog.Logger) error {
	runCtx, kill := context.WithCancel(context.Background())
	defer kill()
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := rt.Drain(drainCtx); err != nil {
		log.Warn("drain did not finish; stopping with sessions running", "error", err)
		kill()
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startHealth serves /healthz and /readyz on listen, when it is set.
func startHealth(listen string, rt *broker.Runtime, log *slog.Logger) (func(), error) {
	if listen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("health listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := rt.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server failed", "error", err)
		}
	}()
	log.Info("health listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
