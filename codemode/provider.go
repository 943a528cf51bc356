package codemode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// ErrClosed is returned by a Provider's calls after Close.
var ErrClosed = errors.New("mcp provider is closed")

// Provider serves the tools of one MCP server to scripts: it implements
// supervisor.Provider. It connects on first use and again after the server dies,
// waiting longer after each failure in a row. It is safe for concurrent use.
type Provider struct {
	entry   string // the tool entry's name pattern, also the provider's name in logs
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	dial    func(ctx context.Context) (*mcp.ClientSession, error)

	// life ends with Close, and with it any dial in flight.
	life context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	session  *mcp.ClientSession
	dialing  *dialing  // the connection attempt in flight, if any
	failures int       // connect failures and lost connections since the last good call
	retryAt  time.Time // no new connection before this
	lastErr  error
	tools    []ToolInfo // the listing of the current session; nil when stale
	toolsGen int        // counts invalidations, so a listing racing one is not cached
	closed   bool
	onChange func()
}

// NewProvider builds the provider of an `mcp` tool entry. It is the signature of
// supervisor.ProviderFactory. Nothing is started until the first call.
func NewProvider(t limits.Tool, log *slog.Logger) (supervisor.Provider, error) {
	return New(t, log)
}

// New is NewProvider returning the concrete type, whose ListTools feeds the
// declarations.
func New(t limits.Tool, log *slog.Logger) (*Provider, error) {
	if t.MCP == nil {
		return nil, fmt.Errorf("tool %q: not an mcp entry", t.Name)
	}
	if err := t.MCP.Validate(); err != nil {
		return nil, fmt.Errorf("tool %q: %w", t.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{
		entry: t.Name, prefix: t.MCP.Prefix, timeout: t.MCP.Timeout.Std(),
		log: log.With("tool", t.Name),
	}
	if p.timeout <= 0 {
		p.timeout = limits.DefaultToolTimeout
	}
	p.dial = p.dialer(*t.MCP)
	p.life, p.stop = context.WithCancel(context.Background())
	return p, nil
}

// Name is the tool entry's name pattern.
func (p *Provider) Name() string { return p.entry }

// Call runs the server's tool for the script's name (the prefix removed) and
// returns its result as JSON. An MCP error result is an error carrying the
// result's text, which the script sees as a TOOL_ERROR.
func (p *Provider) Call(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	tool, err := p.serverName(name)
	if err != nil {
		return nil, err
	}
	arguments, err := callArgs(args)
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	s, err := p.acquire(ctx)
	if err != nil {
		return nil, p.callError(ctx, name, err)
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: arguments})
	if err != nil {
		p.lost(s, err)
		return nil, p.callError(ctx, name, err)
	}
	p.healthy()
	return resultValue(res)
}

// serverName maps a script's tool name to the server's: the prefix comes off,
// and a name outside the entry's pattern or prefix is refused.
func (p *Provider) serverName(name string) (string, error) {
	rest, ok := strings.CutPrefix(name, p.prefix)
	if !ok || rest == "" || !limits.MatchPattern(p.entry, name) {
		return "", api.Errorf(api.CodeToolNotAllowed, "tool %q is not served by %s", name, p.entry)
	}
	return rest, nil
}

// callArgs checks that the arguments are a JSON object (or absent).
func callArgs(args json.RawMessage) (json.RawMessage, error) {
	trimmed := strings.TrimSpace(string(args))
	if trimmed == "" || trimmed == "null" {
		return json.RawMessage(`{}`), nil
	}
	if !strings.HasPrefix(trimmed, "{") {
		return nil, errors.New("arguments must be an object")
	}
	return args, nil
}

// callError words a failed call for the script: timeouts keep their code, a
// cancelled run stays cancelled, and anything else is a clean TOOL_ERROR message
// without transport internals.
func (p *Provider) callError(ctx context.Context, name string, err error) error {
	var rpcErr *jsonrpc.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return api.Errorf(api.CodeToolTimeout, "tool %s did not answer within %s", name, p.timeout)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &rpcErr):
		return fmt.Errorf("tool %s: %s", name, rpcErr.Message)
	case errors.Is(err, ErrClosed):
		return fmt.Errorf("tool %s: %w", name, err)
	case errors.Is(err, io.EOF) || errors.Is(err, mcp.ErrConnectionClosed):
		return fmt.Errorf("tool %s: mcp server %s is unavailable: it closed the connection", name, p.entry)
	}
	return fmt.Errorf("tool %s: mcp server %s is unavailable: %v", name, p.entry, err)
}

// Close ends the session and stops the server process. Safe to call twice.
func (p *Provider) Close() error {
	p.mu.Lock()
	s := p.session
	p.session, p.closed, p.tools = nil, true, nil
	p.mu.Unlock()
	p.stop()
	if s != nil {
		return s.Close()
	}
	return nil
}

// OnToolsChanged sets a function called (on its own goroutine) when the server
// says its tool list changed or a new session may list different tools.
func (p *Provider) OnToolsChanged(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onChange = f
}
