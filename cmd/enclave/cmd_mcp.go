package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// mcpSessionTimeout closes HTTP sessions a client forgot.
const mcpSessionTimeout = 30 * time.Minute

func runMCP(ctx context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(io.err)
	configPath := fs.String("config", "", "YAML config file (default: built-in defaults)")
	addr := fs.String("http", "", "serve streamable HTTP on this loopback host:port instead of stdio")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(io.err, "usage: enclave mcp [--config FILE] [--http 127.0.0.1:PORT]")
		return 2
	}
	if *addr != "" {
		if err := checkLoopback(*addr); err != nil {
			fmt.Fprintf(io.err, "enclave mcp: %v\n", err)
			return 2
		}
	}
	cfg, err := limits.Load(*configPath)
	if err != nil {
		fmt.Fprintf(io.err, "enclave mcp: %v\n", err)
		return 1
	}
	// stdout may be the protocol: logs go to stderr only.
	log := newLogger(cfg.Log, io.err)
	if err := serveMCP(ctx, cfg, *addr, log, io); err != nil {
		log.Error("mcp server stopped", "error", err)
		return 1
	}
	return 0
}

// serveMCP runs run_code on a supervisor built from cfg (the daemon's pool and
// limits) until the client goes away (stdio) or ctx ends (HTTP).
func serveMCP(ctx context.Context, cfg *limits.Config, addr string, log *slog.Logger, std stdio) error {
	reg := codemode.NewRegistry(log)
	defer reg.Close()
	// The registry's providers are the supervisor's, so the declarations list
	// the tools of the very connections scripts call through.
	supervisor.ProviderFactory = reg.Factory
	sup, err := supervisor.New(ctx, supervisor.Options{Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	defer closeSupervisor(sup, log)
	cat := codemode.BuildCatalog(ctx, cfg, reg.Lister)
	for _, p := range cat.Problems {
		log.Warn("tool provider not listed", "error", p)
	}
	rc := codemode.NewRunCode(sup, cat, &mcp.Implementation{Name: "enclave", Version: version})
	up := &catalogUpdater{cfg: cfg, reg: reg, rc: rc, last: cat.Text(), log: log}
	reg.OnToolsChanged(up.update)
	log.Info("mcp server ready", "tools", len(cat.Tools), "transport", transportName(addr))
	if addr == "" {
		return rc.Server().Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(std.in), Writer: nopWriteCloser{std.out}})
	}
	return serveMCPHTTP(ctx, rc.Server(), addr, cfg.APIKeys, log)
}

func transportName(addr string) string {
	if addr == "" {
		return "stdio"
	}
	return "http"
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// catalogUpdater rebuilds run_code's description when a server's tool list
// changes (or its connection is replaced), and only republishes a real change.
type catalogUpdater struct {
	cfg *limits.Config
	reg *codemode.Registry
	rc  *codemode.RunCode
	log *slog.Logger

	mu   sync.Mutex
	last string
}

func (u *catalogUpdater) update() {
	u.mu.Lock()
	defer u.mu.Unlock()
	cat := codemode.BuildCatalog(context.Background(), u.cfg, u.reg.Lister)
	if text := cat.Text(); text != u.last {
		u.last = text
		u.rc.SetCatalog(cat)
		u.log.Info("run_code declarations updated", "tools", len(cat.Tools))
	}
}

// serveMCPHTTP serves streamable HTTP until ctx ends. The SDK refuses requests
// whose Host is not local (DNS rebinding); cross-origin browser requests are
// refused too, and with apiKeys set every request needs a bearer token.
func serveMCPHTTP(ctx context.Context, srv *mcp.Server, addr string, apiKeys []string, log *slog.Logger) error {
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{SessionTimeout: mcpSessionTimeout})
	h = http.NewCrossOriginProtection().Handler(h)
	if len(apiKeys) > 0 {
		h = requireBearer(h, api.BearerAuth(apiKeys))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mcp listener: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	log.Info("mcp listening", "addr", ln.Addr().String())
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func requireBearer(next http.Handler, auth func(*http.Request) (string, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth(r); err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkLoopback refuses any address but a loopback one: run_code runs code on
// this machine's worker pool, which is not for the network without a broker
// in front.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--http %q: only a loopback address (127.0.0.1, [::1], localhost) is allowed", addr)
	}
	return nil
}
