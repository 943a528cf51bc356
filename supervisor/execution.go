package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/enclave-go/enclave/agentscript"
	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/ipc/ipcpb"
	"github.com/enclave-go/enclave/limits"
)

// Request is one script to run.
type Request struct {
	// Code is the AgentScript source.
	Code string
	// Level is the security level; "" means the daemon's. A request may only name
	// a level at least as strict as the daemon's.
	Level string
	// Limits tighten the level's limits; a value above the daemon's is refused.
	Limits limits.Overrides
	// Globals are custom globals, each a JSON value.
	Globals map[string]json.RawMessage
	// ClientTools are name patterns of tools ClientTool answers.
	ClientTools []string
	// ClientTool answers calls to ClientTools. It gets the run's context, which ends
	// with the run.
	ClientTool ToolFunc
	// SessionID names the run in the daemon's log. Default: none.
	SessionID string
	// OnEvent gets the run's console output and client tool events as they happen.
	// It is called from several goroutines, never concurrently for console events.
	OnEvent func(Event)
}

// ToolFunc answers one tool call with a JSON value, or fails it. An *api.Error keeps
// its code (TOOL_NOT_ALLOWED, TOOL_TIMEOUT); any other error is a TOOL_ERROR.
type ToolFunc func(ctx context.Context, call ToolCall) (json.RawMessage, error)

// ToolCall is one call a script made.
type ToolCall struct {
	ID   string
	Name string
	Args json.RawMessage
}

// Event is something a run reports while it runs: stdout, log, tool_call or
// tool_result_applied, with the api package's payload.
type Event struct {
	Type    api.EventType
	Payload any
}

// Execution is an admitted run: it holds a worker slot or a place in the queue.
type Execution struct {
	s       *Supervisor
	req     Request
	plan    *plan
	planErr error
	ticket  *ticket
	waited  bool
}

// Start checks the request and admits it to the pool. Refusals that concern the
// request itself (a bad level, loosened limits) and a full queue are returned here;
// a script the validator refuses is admitted and fails in Wait with VALIDATION_ERROR,
// so callers report it like every other outcome.
func (s *Supervisor) Start(ctx context.Context, req Request) (*Execution, error) {
	p, err := s.plan(req)
	ex := &Execution{s: s, req: req, plan: p}
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeValidation {
			ex.planErr = err
			s.metrics.finished(err, 0)
			return ex, nil
		}
		return nil, err
	}
	t, err := s.pool.admit()
	if err != nil {
		if errors.Is(err, errPoolClosed) {
			return nil, api.Errorf(api.CodeInternal, "the daemon is shutting down")
		}
		s.metrics.finished(err, 0)
		return nil, err
	}
	s.metrics.queueDepth(s.pool)
	ex.ticket = t
	return ex, nil
}

// Level is the security level the run uses.
func (e *Execution) Level() string {
	if e.plan == nil {
		return ""
	}
	return string(e.plan.level)
}

// Limits reports the limits the run is held to.
func (e *Execution) Limits() api.LimitsReport {
	if e.plan == nil {
		return api.LimitsReport{}
	}
	v := e.plan.values
	return api.LimitsReport{
		TimeoutMs: v.Timeout.Milliseconds(), MaxIterations: v.MaxIterations,
		MaxToolCalls: v.MaxToolCalls, MaxConsoleCalls: v.MaxConsoleCalls,
		MaxConsoleOutputBytes: v.MaxConsoleOutputBytes, MaxValueDepth: v.MaxValueDepth,
		MaxValueBytes: v.MaxValueBytes,
	}
}

// Wait runs the script and returns its result. Call it once.
func (e *Execution) Wait(ctx context.Context) (*Result, error) {
	if e.waited {
		return nil, api.Errorf(api.CodeInternal, "execution waited twice")
	}
	e.waited = true
	if e.planErr != nil {
		return nil, e.planErr
	}
	s := e.s
	s.runs.Add(1)
	defer s.runs.Done()
	w, err := e.ticket.acquire(ctx)
	s.metrics.queueDepth(s.pool)
	if err != nil {
		s.metrics.finished(err, 0)
		return nil, err
	}
	s.metrics.active.Inc()
	start := time.Now()
	res, err := s.dispatch(ctx, w, e.plan, e.req)
	s.metrics.active.Dec()
	s.metrics.finished(err, time.Since(start))
	s.logRun(e, w, err, time.Since(start))
	s.pool.release(w, e.plan.values.RunsPerWorker)
	return res, err
}

// logRun writes one line per run: debug when it succeeded or the script itself
// failed, warn when a limit, a tool or the worker ended it.
func (s *Supervisor) logRun(e *Execution, w *worker, err error, d time.Duration) {
	attrs := []any{"session_id", e.req.SessionID, "worker_id", w.id, "duration_ms", d.Milliseconds()}
	if err == nil {
		s.log.Debug("run finished", attrs...)
		return
	}
	code := api.CodeOf(err)
	attrs = append(attrs, "code", string(code))
	if code == api.CodeScript || code == api.CodeValidation {
		s.log.Debug("run failed", attrs...)
		return
	}
	s.log.Warn("run failed", append(attrs, "error", err)...)
}

// dispatch runs a planned script on worker w over one stream.
func (s *Supervisor) dispatch(ctx context.Context, w *worker, p *plan, req Request) (*Result, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.worker.Run(runCtx)
	if err != nil {
		return nil, s.lost(ctx, w, err)
	}
	if err := stream.Send(&ipcpb.HostMessage{Msg: &ipcpb.HostMessage_Start{Start: p.start}}); err != nil {
		return nil, s.lost(ctx, w, err)
	}
	// The worker interrupts itself at the deadline; this is for a worker stuck in
	// native code (a regular expression, a sort) that never checks the interrupt.
	hard := time.AfterFunc(p.values.Timeout+s.opts.KillGrace, func() { w.kill("timeout") })
	defer hard.Stop()

	d := &dispatcher{s: s, w: w, p: p, req: req, ctx: runCtx, send: stream.Send}
	defer func() {
		cancel() // ends the run's tool calls before waiting for them
		d.wait()
	}()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, s.lost(ctx, w, err)
		}
		if res, err, done := d.handle(msg); done {
			return res, err
		}
	}
}

// lost explains a stream that broke: the supervisor killed the worker (deadline,
// memory, cancel), the kernel did (OOM), or it died on its own.
func (s *Supervisor) lost(ctx context.Context, w *worker, cause error) error {
	w.retire = true
	if ctx.Err() != nil {
		w.kill("cancel")
		return api.Errorf(api.CodeCancelled, "the run was cancelled")
	}
	select { // give the kernel a moment to account an OOM kill
	case <-w.exited:
	case <-time.After(200 * time.Millisecond):
		w.kill("crashed")
	}
	select { // and the worker's last words a moment to be read
	case <-w.stderrDone:
	case <-time.After(200 * time.Millisecond):
	}
	switch {
	case w.killReason() == "shutdown":
		return api.Errorf(api.CodeUnavailable, "the daemon stopped before the run ended")
	case w.killReason() == "timeout":
		return api.Errorf(api.CodeTimeout, "the script did not stop at its deadline; its worker was killed")
	case w.killReason() == "memory" || w.oomKilled() || w.runtimeOOM.Load():
		w.markKilled("memory")
		return api.Errorf(api.CodeMemoryLimit, "the worker passed its memory limit and was killed")
	}
	w.markKilled("crashed")
	s.log.Warn("worker lost mid-run", "worker_id", w.id, "pid", w.pid, "error", cause)
	return api.Errorf(api.CodeWorkerCrashed, "the worker process died during the run")
}

// dispatcher handles one run's messages from the worker.
type dispatcher struct {
	s    *Supervisor
	w    *worker
	p    *plan
	req  Request
	ctx  context.Context
	send func(*ipcpb.HostMessage) error

	sendMu sync.Mutex // stream.Send is not safe for concurrent use
	tools  sync.WaitGroup
}

func (d *dispatcher) handle(msg *ipcpb.WorkerMessage) (*Result, error, bool) {
	switch m := msg.Msg.(type) {
	case *ipcpb.WorkerMessage_Console:
		d.console(m.Console)
	case *ipcpb.WorkerMessage_ToolCall:
		d.tools.Add(1)
		go d.toolCall(m.ToolCall)
	case *ipcpb.WorkerMessage_Final:
		d.w.retire = d.w.retire || m.Final.Recycle
		return &Result{Value: m.Final.ResultJson, Stats: stats(m.Final.Stats), WorkerID: d.w.id, WorkerPID: d.w.pid}, nil, true
	case *ipcpb.WorkerMessage_Failure:
		f := m.Failure
		if f.Recycle {
			d.w.retire = true
			d.w.markKilled(retireReason(f.Code))
		}
		return nil, &api.Error{Code: api.Code(f.Code), Message: f.Message, Line: int(f.Line), Column: int(f.Column)}, true
	}
	return nil, nil, false
}

func retireReason(code string) string {
	switch api.Code(code) {
	case api.CodeTimeout:
		return "timeout"
	case api.CodeMemoryLimit:
		return "memory"
	}
	return "recycled"
}

func (d *dispatcher) console(c *ipcpb.Console) {
	if d.req.OnEvent == nil {
		return
	}
	typ := api.EventLog
	if c.Level == "log" {
		typ = api.EventStdout
	}
	d.req.OnEvent(Event{Type: typ, Payload: api.ConsolePayload{Level: c.Level, Text: c.Text}})
}

func (d *dispatcher) toolCall(c *ipcpb.ToolCall) {
	defer d.tools.Done()
	res := d.s.answerTool(d.ctx, d.p, d.req, c)
	d.sendMu.Lock()
	err := d.send(&ipcpb.HostMessage{Msg: &ipcpb.HostMessage_ToolResult{ToolResult: res}})
	d.sendMu.Unlock()
	if err == nil && d.req.OnEvent != nil && d.p.isClientTool(c.Name) {
		d.req.OnEvent(Event{Type: api.EventToolResultApplied,
			Payload: api.ToolResultAppliedPayload{CallID: c.CallId, OK: res.Error == nil}})
	}
}

// wait lets the run's tool calls finish; their context is already cancelled.
func (d *dispatcher) wait() { d.tools.Wait() }

func stats(s *ipcpb.Stats) api.Stats {
	if s == nil {
		return api.Stats{}
	}
	return api.Stats{DurationMs: s.DurationUs / 1000, ToolCallCount: s.ToolCalls, IterationCount: s.Iterations}
}

// plan is a checked request, ready for a worker.
type plan struct {
	level       limits.Level
	values      limits.Values
	script      *agentscript.Script
	start       *ipcpb.Start
	clientTools []string
}

func (p *plan) isClientTool(name string) bool {
	for _, pat := range p.clientTools {
		if limits.MatchPattern(pat, name) {
			return true
		}
	}
	return false
}

func (s *Supervisor) plan(req Request) (*plan, error) {
	cfg := s.cfg.Load()
	level, values, err := resolveLimits(cfg, req)
	if err != nil {
		return nil, err
	}
	p := &plan{level: level, values: values, clientTools: req.ClientTools}
	globals, names, err := encodeGlobals(req.Globals, values.MaxValueBytes, values.MaxValueDepth)
	if err != nil {
		return p, err
	}
	script, err := s.scripts.check(req.Code, level, names)
	if err != nil {
		return p, err
	}
	p.script = script
	lim := workerLimits(cfg, values)
	opts := ScriptOptions(level)
	lim.LinearRegexOnly, lim.AllowCollections = opts.LinearRegexOnly, opts.AllowCollections
	p.start = &ipcpb.Start{Source: script.Source, Hash: script.Hash, GlobalsJson: globals, Limits: lim}
	return p, nil
}

// resolveLimits applies the request's level and overrides to the daemon's values.
func resolveLimits(cfg *limits.Config, req Request) (limits.Level, limits.Values, error) {
	base := cfg.Values()
	level := cfg.SecurityLevel
	values := base
	if req.Level != "" {
		l, err := limits.ParseLevel(req.Level)
		if err != nil {
			return "", values, api.Errorf(api.CodeInvalidRequest, "securityLevel: %v", err)
		}
		values = limits.ForLevel(l)
		values.WorkerMemory, values.RunsPerWorker = base.WorkerMemory, base.RunsPerWorker
		if err := base.Stricter(values); err != nil {
			return "", values, api.Errorf(api.CodeInvalidRequest, "securityLevel %s is looser than the daemon's %s: %v", l, level, err)
		}
		values = tighterOf(values, base)
		level = l
	}
	values, err := values.Tighten(req.Limits)
	if err != nil {
		return "", values, api.Errorf(api.CodeInvalidRequest, "limits: %v", err)
	}
	if values.Timeout < time.Millisecond {
		return "", values, api.Errorf(api.CodeInvalidRequest, "limits: timeout %s is under 1ms", values.Timeout)
	}
	return level, values, nil
}

// tighterOf is a requested level's values held under the daemon's: each limit is
// the smaller of the two, so a daemon configured tighter than the level's table
// stays tighter, and a looser configured value never raises the level's own.
func tighterOf(v, ceiling limits.Values) limits.Values {
	v.Timeout = min(v.Timeout, ceiling.Timeout)
	v.MaxIterations = min(v.MaxIterations, ceiling.MaxIterations)
	v.MaxToolCalls = min(v.MaxToolCalls, ceiling.MaxToolCalls)
	v.MaxConsoleCalls = min(v.MaxConsoleCalls, ceiling.MaxConsoleCalls)
	v.MaxConsoleOutputBytes = min(v.MaxConsoleOutputBytes, ceiling.MaxConsoleOutputBytes)
	v.MaxValueDepth = min(v.MaxValueDepth, ceiling.MaxValueDepth)
	v.MaxValueBytes = min(v.MaxValueBytes, ceiling.MaxValueBytes)
	v.ScrubStacks = v.ScrubStacks || ceiling.ScrubStacks
	return v
}

// workerLimits is what the worker enforces itself.
func workerLimits(cfg *limits.Config, v limits.Values) *ipcpb.Limits {
	return &ipcpb.Limits{
		TimeoutMs: v.Timeout.Milliseconds(), MaxIterations: v.MaxIterations,
		MaxToolCalls: v.MaxToolCalls, MaxConsoleCalls: v.MaxConsoleCalls,
		MaxConsoleBytes: v.MaxConsoleOutputBytes, MaxValueDepth: v.MaxValueDepth,
		MaxValueBytes: v.MaxValueBytes, MemoryBudgetBytes: v.WorkerMemory / 2,
		MaxPendingToolCalls: int64(cfg.Pool.MaxPendingToolCalls), ScrubStacks: v.ScrubStacks,
		MaxCallDepth: 1000,
	}
}

// encodeGlobals turns custom globals into one JSON object and returns their names.
func encodeGlobals(globals map[string]json.RawMessage, maxBytes, maxDepth int64) ([]byte, []string, error) {
	if len(globals) == 0 {
		return nil, nil, nil
	}
	if len(globals) > maxGlobals {
		return nil, nil, api.Errorf(api.CodeInvalidRequest, "%d globals, at most %d", len(globals), maxGlobals)
	}
	names := make([]string, 0, len(globals))
	for name, v := range globals {
		if err := checkGlobalName(name); err != nil {
			return nil, nil, err
		}
		if !json.Valid(v) {
			return nil, nil, api.Errorf(api.CodeInvalidRequest, "global %q is not valid JSON", name)
		}
		names = append(names, name)
	}
	data, err := json.Marshal(globals)
	if err == nil && int64(limits.JSONDepth(data)) > maxDepth+1 { // +1: the object of names
		err = fmt.Errorf("globals nest deeper than the level's value depth %d", maxDepth)
	}
	if err != nil {
		return nil, nil, api.Errorf(api.CodeInvalidRequest, "globals: %v", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, nil, api.Errorf(api.CodeInvalidRequest, "globals are %d bytes, over the limit of %d", len(data), maxBytes)
	}
	return data, names, nil
}

// maxGlobals bounds how many custom globals one request may define.
const maxGlobals = 256

var identifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// checkGlobalName refuses a custom global that is not a plain identifier or that
// would replace a built-in, a host function or the worker's reserved names.
func checkGlobalName(name string) error {
	if !identifier.MatchString(name) {
		return api.Errorf(api.CodeInvalidRequest, "global %q is not a plain identifier", name)
	}
	if strings.HasPrefix(name, "__") || builtinGlobals[name] {
		return api.Errorf(api.CodeInvalidRequest, "global %q would replace a built-in name", name)
	}
	return nil
}

// builtinGlobals are names a custom global may not take: what scripts get from the
// worker, and what the validator refuses by name.
var builtinGlobals = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`Object Array Number String Boolean Date Math JSON parseInt
		parseFloat isNaN isFinite NaN Infinity undefined Error TypeError RangeError SyntaxError
		ReferenceError URIError EvalError AggregateError Map Set WeakMap WeakSet Promise RegExp
		encodeURIComponent decodeURIComponent encodeURI decodeURI callTool parallel console
		eval Function Proxy Reflect Symbol globalThis global self window this constructor
		prototype require process module exports import WebAssembly SharedArrayBuffer
		Atomics setTimeout setInterval setImmediate queueMicrotask arguments`) {
		m[n] = true
	}
	return m
}()

// validationError turns the validator's problems into one VALIDATION_ERROR that
// lists them all, positioned at the first.
func validationError(err error) error {
	var probs agentscript.Problems
	if !errors.As(err, &probs) || len(probs) == 0 {
		return api.Errorf(api.CodeValidation, "%v", err)
	}
	return &api.Error{Code: api.CodeValidation, Message: fmt.Sprintf("%d problem(s):\n%s", len(probs), probs.Error()),
		Line: probs[0].Line, Column: probs[0].Column}
}

// Abandon gives up an admitted run that will not be waited for.
func (e *Execution) Abandon() {
	if e.ticket != nil && !e.waited {
		e.waited = true
		e.ticket.drop()
	}
}

// overridesFrom converts a request's limit overrides to the config's type.
func overridesFrom(o *api.LimitOverrides) limits.Overrides {
	var out limits.Overrides
	if o.Timeout != nil {
		d := limits.Duration(*o.Timeout)
		out.Timeout = &d
	}
	out.MaxIterations, out.MaxToolCalls, out.MaxConsoleCalls = o.MaxIterations, o.MaxToolCalls, o.MaxConsoleCalls
	if o.MaxConsoleOutputBytes != nil {
		b := limits.ByteSize(*o.MaxConsoleOutputBytes)
		out.MaxConsoleOutputBytes = &b
	}
	return out
}
