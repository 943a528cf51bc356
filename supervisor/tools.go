package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/ipc/ipcpb"
	"github.com/enclave-go/enclave/limits"
)

// Provider answers calls for the tools a daemon serves itself. http and exec tools
// are built in; MCP servers plug in through the same interface.
type Provider interface {
	// Call runs the tool and returns its JSON answer.
	Call(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error)
	// Close releases the provider's connections and processes.
	Close() error
}

// ProviderFactory builds a provider for a tool entry of a kind the supervisor does
// not build itself (mcp). Set it before New; nil leaves such entries unserved.
var ProviderFactory func(t limits.Tool, log *slog.Logger) (Provider, error)

// toolRouter finds the provider for a tool name: the daemon's own tools first, in
// config order, then the run's client tools.
type toolRouter struct {
	policy limits.ToolPolicy
	routes []route
}

type route struct {
	pattern string
	p       Provider
}

func newToolRouter(cfg *limits.Config, log *slog.Logger) *toolRouter {
	r := &toolRouter{policy: cfg.ToolPolicy}
	client := &http.Client{}
	for _, t := range cfg.Tools {
		var p Provider
		switch {
		case t.HTTP != nil:
			p = &httpTool{url: t.HTTP.URL, timeout: t.HTTP.Timeout.Std(), headers: t.HTTP.Headers, client: client}
		case t.Exec != nil:
			p = &execTool{command: t.Exec.Command, timeout: t.Exec.Timeout.Std(), env: t.Exec.Env, dir: t.Exec.Dir}
		case t.MCP != nil && ProviderFactory != nil:
			var err error
			if p, err = ProviderFactory(t, log); err != nil {
				log.Warn("tool provider unavailable", "tool", t.Name, "error", err)
				continue
			}
		default:
			continue
		}
		r.routes = append(r.routes, route{pattern: t.Name, p: p})
	}
	return r
}

func (r *toolRouter) find(name string) Provider {
	for _, rt := range r.routes {
		if limits.MatchPattern(rt.pattern, name) {
			return rt.p
		}
	}
	return nil
}

func (r *toolRouter) close() {
	if r == nil {
		return
	}
	for _, rt := range r.routes {
		_ = rt.p.Close()
	}
}

// answerTool runs one call and turns the outcome into the worker's message.
func (s *Supervisor) answerTool(ctx context.Context, p *plan, req Request, c *ipcpb.ToolCall) *ipcpb.ToolResult {
	out, err := s.callTool(ctx, p, req, c)
	if err == nil {
		err = checkToolValue(out, p.values)
	}
	if err != nil {
		code := toolCode(ctx, err)
		s.metrics.toolCall(string(code))
		return &ipcpb.ToolResult{CallId: c.CallId, Error: &ipcpb.ToolFailure{Code: string(code), Message: toolMessage(err)}}
	}
	s.metrics.toolCall("success")
	return &ipcpb.ToolResult{CallId: c.CallId, ResultJson: out}
}

func (s *Supervisor) callTool(ctx context.Context, p *plan, req Request, c *ipcpb.ToolCall) (json.RawMessage, error) {
	router := s.tools.Load()
	if !router.policy.Allows(c.Name) {
		return nil, api.Errorf(api.CodeToolNotAllowed, "tool %q is not allowed by the daemon's tool policy", c.Name)
	}
	if prov := router.find(c.Name); prov != nil {
		return prov.Call(ctx, c.Name, c.ArgsJson)
	}
	if req.ClientTool != nil && p.isClientTool(c.Name) {
		return req.ClientTool(ctx, ToolCall{ID: c.CallId, Name: c.Name, Args: c.ArgsJson})
	}
	return nil, api.Errorf(api.CodeToolNotAllowed, "no tool named %q is available to this script", c.Name)
}

// checkToolValue holds a tool's answer to the same bounds as the script's values.
func checkToolValue(v json.RawMessage, lim limits.Values) error {
	if int64(len(v)) > lim.MaxValueBytes {
		return api.Errorf(api.CodeSerializationLimit, "tool result is %d bytes, over the limit of %d", len(v), lim.MaxValueBytes)
	}
	if !json.Valid(v) {
		return api.Errorf(api.CodeToolError, "tool answered with invalid JSON")
	}
	if d := limits.JSONDepth(v); int64(d) > lim.MaxValueDepth {
		return api.Errorf(api.CodeSerializationLimit, "tool result nests %d levels, over the limit of %d", d, lim.MaxValueDepth)
	}
	return nil
}

func toolCode(ctx context.Context, err error) api.Code {
	var e *api.Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.DeadlineExceeded):
		return api.CodeToolTimeout
	case ctx.Err() != nil:
		return api.CodeCancelled
	}
	return api.CodeToolError
}

func toolMessage(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// maxToolOutput bounds what the daemon reads from a tool before it even checks the
// run's value limit: the largest level's limit plus room for the error text.
const maxToolOutput = 16<<20 + 1024

// httpTool POSTs the arguments as JSON and reads a JSON answer.
type httpTool struct {
	url     string
	timeout time.Duration
	headers map[string]string
	client  *http.Client
}

func (t *httpTool) Call(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(args))
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Enclave-Tool", name)
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, api.Errorf(api.CodeToolTimeout, "tool %s did not answer within %s", name, t.timeout)
		}
		return nil, fmt.Errorf("tool %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxToolOutput))
	if err != nil {
		return nil, fmt.Errorf("tool %s: read answer: %w", name, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("tool %s answered HTTP %d: %s", name, resp.StatusCode, snippet(body))
	}
	return body, nil
}

func (t *httpTool) Close() error { t.client.CloseIdleConnections(); return nil }

// execTool runs a command per call: the arguments as JSON on stdin; exit 0 with JSON
// on stdout, or non-zero with the error message on stderr.
type execTool struct {
	command []string
	timeout time.Duration
	env     []string
	dir     string
}

func (t *execTool) Call(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.command[0], t.command[1:]...)
	cmd.Stdin = bytes.NewReader(args)
	cmd.Env = t.env
	cmd.Dir = t.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: a tool that forks must not outlive its timeout.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxToolOutput, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, api.Errorf(api.CodeToolTimeout, "tool %s did not answer within %s", name, t.timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, errors.New(msg)
	}
	return bytes.TrimSpace(stdout.Bytes()), nil
}

func (t *execTool) Close() error { return nil }

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
