package workerproc

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// scriptName is the file name goja puts in positions and stack traces. It holds no
// path, so a stack a script reads says nothing about the host.
const scriptName = "agentscript.js"

// Codes the worker reports. They are the wire codes; the supervisor passes them on.
const (
	codeScript        = "SCRIPT_ERROR"
	codeValidation    = "VALIDATION_ERROR"
	codeTimeout       = "TIMEOUT"
	codeIterations    = "MAX_ITERATIONS"
	codeToolCalls     = "MAX_TOOL_CALLS"
	codeMemory        = "MEMORY_LIMIT_EXCEEDED"
	codeConsole       = "CONSOLE_LIMIT"
	codeSerialization = "SERIALIZATION_LIMIT_EXCEEDED"
	codeCancelled     = "CANCELLED"
	codeToolError     = "TOOL_ERROR"
)

// stopError is why a run was stopped from outside the script's control: a limit, the
// deadline, a cancel. It travels through goja's Interrupt, which no try/catch in the
// script can catch.
type stopError struct {
	code    string
	message string
}

func (e *stopError) Error() string { return e.code + ": " + e.message }

// run is the state of one script run. Everything but the stop fields is touched only
// by the goroutine running the script.
type run struct {
	rt     *goja.Runtime
	lim    *ipcpb.Limits
	send   func(*ipcpb.WorkerMessage) error
	inbox  <-chan *ipcpb.ToolResult
	ctx    context.Context
	start  time.Time
	intr   intrinsics
	failed bool // a send to the host failed: stop doing work

	stopOnce sync.Once
	stopped  chan struct{}
	reason   *stopError // set once, before stopped is closed

	iterations   int64
	toolCalls    int64
	consoleCalls int64
	consoleBytes int64

	nextCall   int64
	pending    map[string]pendingCall
	queued     []queuedCall
	toolErrors map[*goja.Object]string // error objects made from failed calls -> code
}

type pendingCall struct {
	resolve func(any) error
	reject  func(any) error
}

type queuedCall struct {
	msg  *ipcpb.ToolCall
	call pendingCall
}

// stop ends the run with code: the first reason wins, later ones are ignored.
func (r *run) stop(code, format string, args ...any) {
	r.stopOnce.Do(func() {
		r.reason = &stopError{code: code, message: fmt.Sprintf(format, args...)}
		close(r.stopped)
		r.rt.Interrupt(r.reason)
	})
}

func (r *run) stopReason() *stopError {
	select {
	case <-r.stopped:
		return r.reason
	default:
		return nil
	}
}

// execute runs one script to its end and returns the message that ends the stream.
func (s *Server) execute(ctx context.Context, start *ipcpb.Start, send func(*ipcpb.WorkerMessage) error, inbox <-chan *ipcpb.ToolResult) (out *ipcpb.WorkerMessage) {
	r := &run{
		lim: start.Limits, send: send, inbox: inbox, ctx: ctx, start: time.Now(),
		stopped: make(chan struct{}), pending: map[string]pendingCall{},
		toolErrors: map[*goja.Object]string{},
	}
	if r.lim == nil {
		r.lim = &ipcpb.Limits{}
	}
	defer func() {
		// goja has had built-ins that panic on arguments they did not expect; such a
		// panic ends this run cleanly and retires the worker.
		if p := recover(); p != nil {
			out = r.enginePanic(p)
		}
	}()

	prog, err := s.compile(start)
	if err != nil {
		return r.failure(codeValidation, "compile: "+scrub(err.Error(), true), 0, 0)
	}
	return r.execute(prog, start.GlobalsJson)
}

func (r *run) execute(prog *goja.Program, globals []byte) *ipcpb.WorkerMessage {
	if r.lim.MemoryBudgetBytes > 0 {
		// The collector works hard from three quarters of the budget, so garbage
		// (the worker collects lazily, GOGC 400) is gone before the heap watcher,
		// which counts it, sees the whole budget.
		debug.SetMemoryLimit(r.lim.MemoryBudgetBytes / 4 * 3)
	}
	if err := r.setup(globals); err != nil {
		return r.failFrom(err)
	}
	timeout := time.Duration(r.lim.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timer := time.AfterFunc(timeout, func() {
		r.stop(codeTimeout, "script ran longer than %s", timeout)
	})
	defer timer.Stop()
	watchDone := make(chan struct{})
	defer close(watchDone)
	go r.watchHeap(watchDone)

	val, err := r.rt.RunProgram(prog)
	if err != nil {
		return r.failFrom(err)
	}
	return r.await(val)
}

// await drives the event loop until the script's promise settles: tool results come
// in, promise jobs run, and nothing else can wake the script up.
func (r *run) await(val goja.Value) *ipcpb.WorkerMessage {
	p, ok := val.Export().(*goja.Promise)
	if !ok {
		return r.finish(val)
	}
	for p.State() == goja.PromiseStatePending {
		if reason := r.stopReason(); reason != nil {
			return r.failure(reason.code, reason.message, 0, 0)
		}
		if len(r.pending) == 0 {
			return r.failure(codeScript, "the script awaits a promise that can never settle (no tool call is pending)", 0, 0)
		}
		select {
		case res := <-r.inbox:
			if err := r.applyResult(res); err != nil {
				return r.failFrom(err)
			}
		case <-r.stopped:
		case <-r.ctx.Done():
			r.stop(codeCancelled, "the run was cancelled")
		}
	}
	if reason := r.stopReason(); reason != nil {
		return r.failure(reason.code, reason.message, 0, 0)
	}
	if p.State() == goja.PromiseStateRejected {
		return r.thrown(p.Result(), nil)
	}
	return r.finish(p.Result())
}

// finish serializes the result inside the runtime, so the deadline and the
// interrupt still bound any script code (toJSON, getters) the conversion runs.
func (r *run) finish(v goja.Value) *ipcpb.WorkerMessage {
	var data []byte
	var encErr error
	export := func(goja.FunctionCall) goja.Value {
		w := r.writer(r.lim.MaxValueDepth, r.lim.MaxValueBytes)
		wrote, err := w.encode(v)
		if err == nil && !wrote {
			w.buf = append(w.buf[:0], "null"...)
		}
		data, encErr = w.buf, err
		return goja.Undefined()
	}
	fn, _ := goja.AssertFunction(r.rt.ToValue(export))
	if _, err := fn(goja.Undefined()); err != nil {
		return r.failFrom(err)
	}
	if reason := r.stopReason(); reason != nil {
		return r.failure(reason.code, reason.message, 0, 0)
	}
	if encErr != nil {
		return r.valueFailure("result", encErr)
	}
	return &ipcpb.WorkerMessage{Msg: &ipcpb.WorkerMessage_Final{Final: &ipcpb.Final{
		ResultJson: data, Stats: r.stats(), Recycle: heapBytes() > r.lim.MemoryBudgetBytes/2,
	}}}
}

func (r *run) stats() *ipcpb.Stats {
	return &ipcpb.Stats{
		DurationUs: time.Since(r.start).Microseconds(),
		ToolCalls:  r.toolCalls,
		Iterations: r.iterations,
	}
}

// watchHeap interrupts the run when the heap grows past its budget: string growth in
// a loop allocates through paths no guard sees. The cgroup cap stays the hard line.
func (r *run) watchHeap(done <-chan struct{}) {
	budget := r.lim.MemoryBudgetBytes
	if budget <= 0 {
		return
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if heapBytes() > budget {
				r.stop(codeMemory, "script used more than %d MiB of memory", budget>>20)
				return
			}
		}
	}
}

func (r *run) newCallID() string {
	r.nextCall++
	return "c" + strconv.FormatInt(r.nextCall, 10)
}
