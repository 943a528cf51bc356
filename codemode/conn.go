package codemode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/limits"
)

// Backoff after failures in a row: the first failure is retried at once (a server
// that crashed once should serve the very next call), then 250ms doubling up to
// maxBackoff, so a server that cannot start is not respawned on every call.
const (
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 30 * time.Second
	// connectTimeout bounds starting a server and the handshake when the
	// entry's call timeout is shorter: a server fetched by a package runner
	// may take a while the first time.
	connectTimeout = 30 * time.Second
	// terminateGrace is how long a stdio server gets after its stdin closes
	// before it is sent SIGTERM, then killed.
	terminateGrace = 2 * time.Second
)

func backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := firstBackoff << min(failures-2, 10)
	return min(d, maxBackoff)
}

// acquire returns the live session, or waits for the one being dialed. The
// dial runs on its own, bounded by connectTimeout rather than by this call: a
// server slower to start than one call's timeout still comes up for the next.
func (p *Provider) acquire(ctx context.Context) (*mcp.ClientSession, error) {
	s, d, err := p.currentOrDial()
	if d == nil {
		return s, err
	}
	select {
	case <-d.done:
		return d.session, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dialing is one connection attempt; its fields are set before done closes.
type dialing struct {
	done    chan struct{}
	session *mcp.ClientSession
	err     error
}

// currentOrDial returns the live session, an error when the provider is closed
// or backing off, or the attempt in flight (starting one if there is none), so
// a burst of calls after a crash starts one server, not one each.
func (p *Provider) currentOrDial() (*mcp.ClientSession, *dialing, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, nil, ErrClosed
	case p.session != nil:
		return p.session, nil, nil
	case p.dialing != nil:
		return nil, p.dialing, nil
	case time.Now().Before(p.retryAt):
		wait := time.Until(p.retryAt).Round(time.Millisecond)
		return nil, nil, fmt.Errorf("%v (next attempt in %s)", p.lastErr, wait)
	}
	d := &dialing{done: make(chan struct{})}
	p.dialing = d
	go p.connect(d)
	return nil, d, nil
}

func (p *Provider) connect(d *dialing) {
	defer close(d.done)
	ctx, cancel := context.WithTimeout(p.life, max(p.timeout, connectTimeout))
	defer cancel()
	s, err := p.dial(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing = nil
	switch {
	case p.closed:
		if s != nil {
			_ = s.Close()
		}
		d.err = ErrClosed
	case err != nil:
		p.failLocked(fmt.Errorf("connect: %w", err))
		p.log.Warn("mcp server connect failed", "error", err, "failures", p.failures)
		d.err = p.lastErr
	default:
		p.session, p.tools, d.session = s, nil, s
		go p.watch(s)
		p.log.Info("mcp server connected")
	}
}

func (p *Provider) failLocked(err error) {
	p.failures++
	p.lastErr = err
	p.retryAt = time.Now().Add(backoff(p.failures))
}

// watch forgets the session when its connection ends (the server exited or the
// stream broke), so the next call dials again.
func (p *Provider) watch(s *mcp.ClientSession) {
	err := s.Wait()
	if p.forget(s, errors.New("connection closed")) {
		p.log.Warn("mcp server connection ended", "error", err)
	}
}

// forget drops s if it is still the current session and reports whether it was.
func (p *Provider) forget(s *mcp.ClientSession, cause error) bool {
	p.mu.Lock()
	dropped := p.session == s
	if dropped {
		p.session, p.tools = nil, nil
		p.toolsGen++
		p.failLocked(cause)
	}
	onChange := p.onChange
	p.mu.Unlock()
	if dropped {
		_ = s.Close()
		if onChange != nil {
			go onChange()
		}
	}
	return dropped
}

// lost drops the session after a call failed below the protocol: a JSON-RPC
// error is the server's answer and leaves the session alone, a timeout may be
// the tool's slowness, anything else means the connection is gone.
func (p *Provider) lost(s *mcp.ClientSession, err error) {
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return
	}
	p.forget(s, fmt.Errorf("connection lost: %w", err))
}

// healthy resets the backoff after a call the server answered.
func (p *Provider) healthy() {
	p.mu.Lock()
	p.failures, p.lastErr, p.retryAt = 0, nil, time.Time{}
	p.mu.Unlock()
}

// toolsChanged drops the cached listing when the server announces a change.
func (p *Provider) toolsChanged() {
	p.mu.Lock()
	p.tools = nil
	p.toolsGen++
	onChange := p.onChange
	p.mu.Unlock()
	if onChange != nil {
		go onChange()
	}
}

// dialer returns the function that opens one session with the server.
func (p *Provider) dialer(m limits.MCPTool) func(ctx context.Context) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "enclave", Version: "1"}, &mcp.ClientOptions{
		Logger: p.log,
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			p.toolsChanged()
		},
	})
	return func(ctx context.Context) (*mcp.ClientSession, error) {
		return client.Connect(ctx, p.transport(m), nil)
	}
}

// transport builds a fresh transport per connection: a command transport
// starts a new process each time.
func (p *Provider) transport(m limits.MCPTool) mcp.Transport {
	if m.URL != "" {
		hc := &http.Client{Transport: &headerTransport{headers: m.Headers, base: http.DefaultTransport}}
		return &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: hc}
	}
	cmd := exec.Command(m.Command[0], m.Command[1:]...)
	cmd.Env = serverEnv(m.Env)
	cmd.Stderr = &lineLogger{log: p.log}
	// Its own process group: a Ctrl-C meant for the daemon must not kill the
	// server under a running call; the daemon closes it in order instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return &mcp.CommandTransport{Command: cmd, TerminateDuration: terminateGrace}
}

// serverEnv is the daemon's environment with the entry's variables on top: a
// server usually needs PATH and HOME, and its credentials come from the config,
// never from the script.
func serverEnv(extra map[string]string) []string {
	env := os.Environ()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// headerTransport adds the entry's headers (credentials) to every request.
type headerTransport struct {
	headers map[string]string
	base    http.RoundTripper
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	return t.base.RoundTrip(req)
}

// lineLogger logs a server's stderr one line at a time.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	buf bytes.Buffer
}

// maxLogLine bounds a stderr line kept for the log.
const maxLogLine = 4096

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		line, err := l.buf.ReadBytes('\n')
		if err != nil {
			l.keep(line)
			return len(b), nil
		}
		l.emit(line)
	}
}

// keep holds a partial line for the next write, flushing it when it grows too long.
func (l *lineLogger) keep(partial []byte) {
	if len(partial) > maxLogLine {
		l.emit(partial)
		return
	}
	l.buf.Write(partial)
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	if len(line) > 0 {
		l.log.Info("mcp server stderr", "line", string(line))
	}
}
