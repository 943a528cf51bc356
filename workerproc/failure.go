package workerproc

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// wrapperPrefix is what the transform puts before the script on its first line; a
// column on line 1 is shifted back by its length.
const wrapperPrefix = "(async () => {"

func (r *run) failure(code, message string, line, col int) *ipcpb.WorkerMessage {
	if line == 1 && col > len(wrapperPrefix) {
		col -= len(wrapperPrefix)
	}
	return &ipcpb.WorkerMessage{Msg: &ipcpb.WorkerMessage_Failure{Failure: &ipcpb.Failure{
		Code: code, Message: message, Line: int32(line), Column: int32(col),
		Stats:   r.stats(),
		Recycle: code != codeScript && code != codeToolError && !strings.HasPrefix(code, "TOOL_"),
	}}}
}

// failFrom turns an error from goja into the run's failure.
func (r *run) failFrom(err error) *ipcpb.WorkerMessage {
	if reason := r.stopReason(); reason != nil {
		return r.failure(reason.code, reason.message, 0, 0)
	}
	var intr *goja.InterruptedError
	var overflow *goja.StackOverflowError
	var exc *goja.Exception
	var syntax *goja.CompilerSyntaxError
	var stop *stopError
	switch {
	case errors.As(err, &stop):
		return r.failure(stop.code, stop.message, 0, 0)
	case errors.As(err, &overflow):
		return r.failure(codeMemory, fmt.Sprintf("call depth passed %d", r.lim.MaxCallDepth), 0, 0)
	case errors.As(err, &intr):
		return r.failure(codeCancelled, "the run was interrupted", 0, 0)
	case errors.As(err, &exc):
		return r.thrown(exc.Value(), exc.Stack())
	case errors.As(err, &syntax):
		return r.failure(codeValidation, scrub(syntax.Error(), true), 0, 0)
	}
	return r.failure(codeScript, scrub(err.Error(), r.lim.ScrubStacks), 0, 0)
}

// thrown reports a value the script threw and did not catch. A failed tool call the
// script let through keeps its tool code.
func (r *run) thrown(v goja.Value, stack []goja.StackFrame) *ipcpb.WorkerMessage {
	message := r.describe(v)
	line, col := positionOf(stack)
	if obj, ok := v.(*goja.Object); ok {
		if code, ok := r.toolErrors[obj]; ok {
			return r.failure(code, message, line, col)
		}
		if line == 0 {
			line, col = positionInStack(obj.Get("stack"))
		}
	}
	return r.failure(codeScript, "Uncaught "+message, line, col)
}

// describe renders a thrown value as "Name: message". It runs inside the runtime, so
// a hostile toString is still bounded by the deadline.
func (r *run) describe(v goja.Value) (out string) {
	out = "exception"
	defer func() {
		if recover() != nil {
			out = "exception"
		}
	}()
	fn, _ := goja.AssertFunction(r.rt.ToValue(func(goja.FunctionCall) goja.Value {
		if v == nil {
			return goja.Undefined()
		}
		out = v.String()
		return goja.Undefined()
	}))
	_, _ = fn(goja.Undefined())
	if len(out) > 2000 {
		out = out[:2000] + "…"
	}
	if r.lim.ScrubStacks {
		out = scrub(out, true)
	}
	return out
}

func positionOf(stack []goja.StackFrame) (int, int) {
	for _, f := range stack {
		p := f.Position()
		if p.Filename == scriptName && p.Line > 0 {
			return p.Line, p.Column
		}
	}
	return 0, 0
}

var stackPosition = regexp.MustCompile(regexp.QuoteMeta(scriptName) + `:(\d+):(\d+)`)

func positionInStack(stack goja.Value) (int, int) {
	if stack == nil || goja.IsUndefined(stack) {
		return 0, 0
	}
	m := stackPosition.FindStringSubmatch(stack.String())
	if m == nil {
		return 0, 0
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	return line, col
}

func (r *run) valueFailure(what string, err error) *ipcpb.WorkerMessage {
	if isValueLimit(err) {
		return r.failure(codeSerialization, fmt.Sprintf("%s: %v", what, err), 0, 0)
	}
	if errors.Is(err, errCircular) || errors.Is(err, errBigInt) {
		return r.failure(codeScript, fmt.Sprintf("%s cannot be serialized: %v", what, err), 0, 0)
	}
	return r.failFrom(err)
}

func isValueLimit(err error) bool {
	return errors.Is(err, errTooDeep) || errors.Is(err, errTooLarge)
}

// enginePanic reports a panic inside goja (or this package) as a script error and
// retires the worker: its runtime state can no longer be trusted.
func (r *run) enginePanic(p any) *ipcpb.WorkerMessage {
	if reason := r.stopReason(); reason != nil {
		return r.failure(reason.code, reason.message, 0, 0)
	}
	msg := r.failure(codeScript, "the engine failed on this script: "+scrub(fmt.Sprint(p), true), 0, 0)
	msg.GetFailure().Recycle = true
	return msg
}

var hostPath = regexp.MustCompile(`(/[\w.@+-]+){2,}(:\d+)*`)

// scrub removes host file paths from a message. With full set it also drops goroutine
// dumps and Go frame noise, keeping only the first line.
func scrub(msg string, full bool) string {
	msg = hostPath.ReplaceAllString(msg, "<path>")
	if full {
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
	}
	return msg
}
