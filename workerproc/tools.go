package workerproc

import (
	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// defaultMaxPending is the fan-out cap when the host sends none: calls beyond it wait
// in the worker until an answer frees a slot.
const defaultMaxPending = 100

// callTool is the script's only way out: callTool(name, args) returns a promise that
// the host settles with the tool's answer.
func (r *run) callTool(call goja.FunctionCall) goja.Value {
	name := call.Argument(0)
	if _, ok := name.Export().(string); !ok {
		panic(r.rt.NewTypeError("callTool: the tool name must be a string"))
	}
	r.toolCalls++
	if max := r.lim.MaxToolCalls; max > 0 && r.toolCalls > max {
		r.stop(codeToolCalls, "more than %d tool calls", max)
		return goja.Undefined()
	}
	args, ok := r.encodeValue("tool arguments", call.Argument(1))
	if !ok {
		return goja.Undefined()
	}
	promise, resolve, reject := r.rt.NewPromise()
	msg := &ipcpb.ToolCall{CallId: r.newCallID(), Name: name.String(), ArgsJson: args}
	r.queued = append(r.queued, queuedCall{msg: msg, call: pendingCall{resolve, reject}})
	r.flushCalls()
	return r.rt.ToValue(promise)
}

// encodeValue serializes a value that leaves the run, stopping the run when it is
// over the level's depth or size.
func (r *run) encodeValue(what string, v goja.Value) ([]byte, bool) {
	w := r.writer(r.lim.MaxValueDepth, r.lim.MaxValueBytes)
	wrote, err := w.encode(v)
	if err != nil {
		if isValueLimit(err) {
			r.stop(codeSerialization, "%s: %v", what, err)
			return nil, false
		}
		panic(err)
	}
	if !wrote {
		return []byte("null"), true
	}
	return w.buf, true
}

// flushCalls sends queued calls while fewer than the cap are pending.
func (r *run) flushCalls() {
	max := int(r.lim.MaxPendingToolCalls)
	if max <= 0 {
		max = defaultMaxPending
	}
	for len(r.queued) > 0 && len(r.pending) < max {
		q := r.queued[0]
		r.queued = r.queued[1:]
		r.pending[q.msg.CallId] = q.call
		if err := r.send(&ipcpb.WorkerMessage{Msg: &ipcpb.WorkerMessage_ToolCall{ToolCall: q.msg}}); err != nil {
			r.stop(codeCancelled, "the host went away")
			return
		}
	}
}

// applyResult settles a pending call's promise; the promise jobs it queues run before
// this returns.
func (r *run) applyResult(res *ipcpb.ToolResult) error {
	call, ok := r.pending[res.CallId]
	if !ok {
		return nil // a late answer for a call this run no longer waits on
	}
	delete(r.pending, res.CallId)
	defer r.flushCalls()
	if res.Error != nil {
		return call.reject(r.toolError(res.Error))
	}
	v, err := r.intr.jsonParse(goja.Undefined(), r.rt.ToValue(string(res.ResultJson)))
	if err != nil {
		return call.reject(r.toolError(&ipcpb.ToolFailure{Code: codeToolError, Message: "tool answered with invalid JSON"}))
	}
	return call.resolve(v)
}

// toolError builds a plain script Error for a failed call. It is made by the script's
// own Error constructor, so no host object crosses into the script.
func (r *run) toolError(f *ipcpb.ToolFailure) *goja.Object {
	code := f.Code
	if code == "" {
		code = codeToolError
	}
	obj, err := r.rt.New(r.intr.errorCtor, r.rt.ToValue(f.Message))
	if err != nil {
		panic(err)
	}
	_ = obj.Set("code", code)
	r.toolErrors[obj] = code
	return obj
}

// parallel(items, fn) calls fn for every item and resolves to the array of results,
// the fan-out an agent would write as Promise.all(items.map(fn)). Tool calls fn
// makes count against maxToolCalls and at most the pending cap are in flight.
func (r *run) parallel(call goja.FunctionCall) goja.Value {
	items, ok := call.Argument(0).(*goja.Object)
	fn, isFn := goja.AssertFunction(call.Argument(1))
	if !ok || !isFn {
		panic(r.rt.NewTypeError("parallel(items, fn): items must be an array and fn a function"))
	}
	n := lengthOf(items)
	if r.overBudget("parallel", 16*n) {
		return goja.Undefined()
	}
	results := make([]any, 0, min(n, 1024))
	for i := int64(0); i < n; i++ {
		v, err := fn(goja.Undefined(), items.Get(itoa(i)), r.rt.ToValue(i))
		if err != nil {
			panic(err)
		}
		results = append(results, v)
	}
	all, err := r.intr.promiseAll(r.intr.promiseCtor, r.rt.NewArray(results...))
	if err != nil {
		panic(err)
	}
	return all
}
