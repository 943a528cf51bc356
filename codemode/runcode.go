package codemode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// RunCodeTool is the name of the one tool Enclave serves over MCP.
const RunCodeTool = "run_code"

// Runner runs one script; *supervisor.Supervisor is one.
type Runner interface {
	Run(ctx context.Context, req supervisor.Request) (*supervisor.Result, error)
}

// RunCodeInput is run_code's arguments.
type RunCodeInput struct {
	// Code is the AgentScript source.
	Code string `json:"code"`
	// TimeoutMs tightens the run's timeout. Default: the daemon's.
	TimeoutMs *int64 `json:"timeoutMs,omitempty"`
	// MaxToolCalls tightens the run's tool call budget. Default: the daemon's.
	MaxToolCalls *int64 `json:"maxToolCalls,omitempty"`
}

// RunCodeOutput is a finished run_code call: its structured content, also
// written as JSON text for clients that read text only.
type RunCodeOutput struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Console []string        `json:"console"`
	Stats   *api.Stats      `json:"stats,omitempty"`
	Error   *RunCodeError   `json:"error,omitempty"`
}

// RunCodeError is a failed run: the wire error code and message, and the
// script position when known.
type RunCodeError struct {
	Code    api.Code `json:"code"`
	Message string   `json:"message"`
	Line    int      `json:"line,omitempty"`
	Column  int      `json:"column,omitempty"`
}

var runCodeSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"code": map[string]any{"type": "string", "description": "The AgentScript program to run."},
		"timeoutMs": map[string]any{"type": "integer", "minimum": 1,
			"description": "A tighter timeout for this run, in milliseconds."},
		"maxToolCalls": map[string]any{"type": "integer", "minimum": 0,
			"description": "A tighter budget of tool calls for this run."},
	},
	"required":             []string{"code"},
	"additionalProperties": false,
}

// RunCode is an MCP server with one run_code tool that runs scripts on a
// Runner. Its description carries a Catalog's declarations and primer.
type RunCode struct {
	runner Runner
	server *mcp.Server
	mu     sync.Mutex // serializes SetCatalog
}

// NewRunCode builds the server; impl names it to clients.
func NewRunCode(r Runner, cat *Catalog, impl *mcp.Implementation) *RunCode {
	rc := &RunCode{runner: r, server: mcp.NewServer(impl, nil)}
	rc.SetCatalog(cat)
	return rc
}

// Server is the MCP server, to run over a transport or an HTTP handler.
func (rc *RunCode) Server() *mcp.Server { return rc.server }

// SetCatalog replaces run_code's description; connected clients are told the
// tool list changed.
func (rc *RunCode) SetCatalog(cat *Catalog) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.server.AddTool(&mcp.Tool{
		Name:        RunCodeTool,
		Description: RunCodeDescription(cat),
		InputSchema: runCodeSchema,
	}, rc.handle)
}

// RunCodeDescription is run_code's description for a catalog.
func RunCodeDescription(cat *Catalog) string {
	return "Run an AgentScript program (a sandboxed subset of JavaScript) in an isolated " +
		"worker process and return its result value and console output. Write one script " +
		"that calls the tools below and combines their results, instead of calling tools " +
		"one at a time. On failure the result is an error with a code " +
		"(VALIDATION_ERROR, SCRIPT_ERROR, TIMEOUT, TOOL_ERROR, ...) and a message.\n\n" +
		cat.Text()
}

func (rc *RunCode) handle(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var in RunCodeInput
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
		return failure(api.Errorf(api.CodeInvalidRequest, "arguments: %v", err), nil), nil
	}
	if strings.TrimSpace(in.Code) == "" {
		return failure(api.Errorf(api.CodeInvalidRequest, "code is empty"), nil), nil
	}
	var console consoleLog
	res, err := rc.runner.Run(ctx, supervisor.Request{
		Code: in.Code, Limits: in.overrides(), OnEvent: console.add,
	})
	if err != nil {
		return failure(err, console.lines()), nil
	}
	return success(res, console.lines()), nil
}

func (in RunCodeInput) overrides() limits.Overrides {
	var o limits.Overrides
	if in.TimeoutMs != nil {
		// Zero or less is passed on and refused as a limit, not silently ignored.
		d := limits.Duration(time.Duration(*in.TimeoutMs) * time.Millisecond)
		o.Timeout = &d
	}
	o.MaxToolCalls = in.MaxToolCalls
	return o
}

func success(res *supervisor.Result, console []string) *mcp.CallToolResult {
	out := RunCodeOutput{Result: res.Value, Console: console, Stats: &res.Stats}
	if len(out.Result) == 0 {
		out.Result = json.RawMessage("null")
	}
	return toolResult(out, false)
}

func failure(err error, console []string) *mcp.CallToolResult {
	e := &RunCodeError{Code: api.CodeInternal, Message: err.Error()}
	var ae *api.Error
	if errors.As(err, &ae) {
		e = &RunCodeError{Code: ae.Code, Message: ae.Message, Line: ae.Line, Column: ae.Column}
	}
	return toolResult(RunCodeOutput{Console: console, Error: e}, true)
}

// toolResult writes out as structured content and as text: a model reading
// an error sees the code and message first.
func toolResult(out RunCodeOutput, isErr bool) *mcp.CallToolResult {
	if out.Console == nil {
		out.Console = []string{}
	}
	b, _ := json.Marshal(out)
	text := string(b)
	if isErr {
		text = errorText(out)
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: text}},
		StructuredContent: json.RawMessage(b),
		IsError:           isErr,
	}
}

func errorText(out RunCodeOutput) string {
	e := out.Error
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Code, e.Message)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	}
	if len(out.Console) > 0 {
		b.WriteString("\nconsole output:\n" + strings.Join(out.Console, "\n"))
	}
	return b.String()
}

// consoleLog collects a run's console output; warn and error lines are marked.
type consoleLog struct {
	mu  sync.Mutex
	out []string
}

func (c *consoleLog) add(e supervisor.Event) {
	p, ok := e.Payload.(api.ConsolePayload)
	if !ok {
		return
	}
	line := p.Text
	if p.Level == "warn" || p.Level == "error" {
		line = "[" + p.Level + "] " + line
	}
	c.mu.Lock()
	c.out = append(c.out, line)
	c.mu.Unlock()
}

func (c *consoleLog) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.out...)
}
