package workerproc

import (
	"strings"

	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// console returns the script's console object: log, info and debug go to stdout, warn
// and error to the log stream. Calls and bytes are counted against the level's limits.
func (r *run) console() *goja.Object {
	c := r.rt.NewObject()
	for name, level := range map[string]string{
		"log": "log", "info": "log", "debug": "log", "warn": "warn", "error": "error",
	} {
		_ = c.Set(name, r.hostFunc(name, r.consoleFunc(level)))
	}
	return c
}

func (r *run) consoleFunc(level string) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		r.consoleCalls++
		if max := r.lim.MaxConsoleCalls; max > 0 && r.consoleCalls > max {
			r.stop(codeConsole, "more than %d console calls", max)
			return goja.Undefined()
		}
		text, ok := r.formatConsole(call.Arguments)
		if !ok {
			return goja.Undefined()
		}
		msg := &ipcpb.Console{Level: level, Text: text}
		if err := r.send(&ipcpb.WorkerMessage{Msg: &ipcpb.WorkerMessage_Console{Console: msg}}); err != nil {
			r.stop(codeCancelled, "the host went away")
		}
		return goja.Undefined()
	}
}

// formatConsole joins the arguments with spaces: strings as they are, other values as
// JSON. It stops the run once the output would pass maxConsoleOutputBytes.
func (r *run) formatConsole(args []goja.Value) (string, bool) {
	left := r.lim.MaxConsoleBytes - r.consoleBytes
	if r.lim.MaxConsoleBytes <= 0 {
		left = 1 << 30
	}
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if !r.formatArg(&b, a, left-int64(b.Len())) {
			break
		}
	}
	if int64(b.Len()) > left || left <= 0 {
		r.stop(codeConsole, "console output passed %d bytes", r.lim.MaxConsoleBytes)
		return "", false
	}
	r.consoleBytes += int64(b.Len())
	return b.String(), true
}

// formatArg writes one argument, at most room+1 bytes of it (enough to tell the
// caller the budget is gone).
func (r *run) formatArg(b *strings.Builder, a goja.Value, room int64) bool {
	if room < 0 {
		return false
	}
	if s, ok := a.Export().(string); ok {
		if int64(len(s)) > room {
			s = s[:room+1]
		}
		b.WriteString(s)
		return true
	}
	if a == nil || goja.IsUndefined(a) {
		b.WriteString("undefined")
		return true
	}
	if _, ok := goja.AssertFunction(a); ok {
		b.WriteString("[Function]")
		return true
	}
	if o, ok := a.(*goja.Object); ok && o.ClassName() == "Error" {
		b.WriteString(r.describe(o)) // "TypeError: message", as a console would
		return true
	}
	w := r.writer(r.lim.MaxValueDepth, min(room+1, 1<<30))
	if _, err := w.encode(a); err != nil {
		if err == errCircular {
			b.WriteString("[Circular]")
			return true
		}
		b.Write(w.buf)
		b.WriteString("…")
		return err != errTooLarge
	}
	b.Write(w.buf)
	return true
}
