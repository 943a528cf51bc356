package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/broker"
	"github.com/enclave-go/enclave/limits"
)

// streamCloseGrace is how long a stopping broker lets open event streams go on;
// clients resume them through another broker afterwards.
const streamCloseGrace = 5 * time.Second

func runBroker(ctx context.Context, args []string, io stdio) int {
	cfg, ok := loadScaleOutConfig("broker", args, io)
	if !ok {
		return 2
	}
	if cfg.Listen == "" {
		fmt.Fprintln(io.err, "enclave broker: listen is required (the TCP address of the HTTP API)")
		return 1
	}
	log := newLogger(cfg.Log, io.err)
	tuneGC()
	defer ignoreHUP(log, "broker")()
	if err := serveBroker(ctx, cfg, log); err != nil {
		log.Error("broker stopped", "error", err)
		return 1
	}
	return 0
}

// loadScaleOutConfig parses --config and loads a broker's or runtime's file,
// which must name Redis.
func loadScaleOutConfig(name string, args []string, io stdio) (*limits.Config, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	configPath := fs.String("config", "", "YAML config file (required: it names Redis)")
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	cfg, err := limits.Load(*configPath)
	if err == nil && len(cfg.Redis.Addrs) == 0 {
		err = errors.New("redis.addrs is required")
	}
	if err != nil {
		fmt.Fprintf(io.err, "enclave %s: %v\n", name, err)
		return nil, false
	}
	return cfg, true
}

// serveBroker serves the HTTP API over Redis on cfg.Listen until ctx ends.
func serveBroker(ctx context.Context, cfg *limits.Config, log *slog.Logger) error {
	reg, stopMetrics, err := startMetrics(cfg.Metrics.Listen, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	rdb := broker.NewClient(cfg.Redis)
	defer rdb.Close()
	reg.MustRegister(broker.NewQueueCollector(rdb))
	backend := broker.NewBackend(broker.BackendOptions{
		Redis: rdb, MaxConcurrentSessions: cfg.MaxConcurrentSessions,
		SessionTimeout: cfg.SessionTimeout.Std(), RoutingRules: cfg.RoutingRules, Logger: log,
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("broker listener: %w", err)
	}
	srv := &http.Server{Handler: api.NewHandler(backend, handlerOptions(cfg, log)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("broker server failed", "error", err)
		}
	}()
	log.Info("broker ready", "addr", ln.Addr().String(), "auth", len(cfg.APIKeys) > 0)

	<-ctx.Done()
	log.Info("broker stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), streamCloseGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // streams still open: their clients resume elsewhere
	}
	log.Info("broker stopped")
	return nil
}

// handlerOptions turns on bearer authentication when API keys are configured.
// A key list whose every entry is empty (an unset ${VAR}) refuses everyone
// rather than letting everyone in.
func handlerOptions(cfg *limits.Config, log *slog.Logger) api.HandlerOptions {
	opts := api.HandlerOptions{Logger: log}
	if len(cfg.APIKeys) > 0 {
		opts.Authenticate = api.BearerAuth(cfg.APIKeys)
	} else {
		log.Warn("no apiKeys configured: the broker's API is open to anyone who can reach it")
	}
	return opts
}
