package workerproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// These tests drive a run in-process, with the host side played by a Go function; the
// supervisor's tests run the same code in real worker processes.

func wrapScript(body string) string { return "(async () => {" + body + "\n})()" }

func testLimits() *ipcpb.Limits {
	return &ipcpb.Limits{
		TimeoutMs: 2000, MaxIterations: 10000, MaxToolCalls: 100, MaxConsoleCalls: 1000,
		MaxConsoleBytes: 1 << 20, MaxValueDepth: 20, MaxValueBytes: 5 << 20,
		MemoryBudgetBytes: 128 << 20, MaxCallDepth: 500, AllowCollections: true,
	}
}

type outcome struct {
	final   *ipcpb.Final
	failure *ipcpb.Failure
	console []*ipcpb.Console
	calls   []*ipcpb.ToolCall
}

// runScript runs body; answer (if not nil) answers every tool call.
func runScript(t *testing.T, body string, lim *ipcpb.Limits, answer func(*ipcpb.ToolCall) *ipcpb.ToolResult) outcome {
	t.Helper()
	src := wrapScript(body)
	sum := sha256.Sum256([]byte(src))
	inbox := make(chan *ipcpb.ToolResult, 1000)
	var out outcome
	send := func(m *ipcpb.WorkerMessage) error {
		switch x := m.Msg.(type) {
		case *ipcpb.WorkerMessage_Console:
			out.console = append(out.console, x.Console)
		case *ipcpb.WorkerMessage_ToolCall:
			out.calls = append(out.calls, x.ToolCall)
			if answer != nil {
				inbox <- answer(x.ToolCall)
			}
		}
		return nil
	}
	start := &ipcpb.Start{Source: src, Hash: hex.EncodeToString(sum[:]), Limits: lim}
	msg := NewServer().execute(context.Background(), start, send, inbox)
	out.final, out.failure = msg.GetFinal(), msg.GetFailure()
	return out
}

func echo(c *ipcpb.ToolCall) *ipcpb.ToolResult {
	if c.Name == "fail" {
		var args struct{ Message string }
		_ = json.Unmarshal(c.ArgsJson, &args)
		return &ipcpb.ToolResult{CallId: c.CallId, Error: &ipcpb.ToolFailure{Code: "TOOL_ERROR", Message: args.Message}}
	}
	return &ipcpb.ToolResult{CallId: c.CallId, ResultJson: c.ArgsJson}
}

func TestRunValues(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"number", "return 1 + 2", "3"},
		{"object", "return {a: [1, 'x', null, true], b: undefined, c: NaN}", `{"a":[1,"x",null,true],"c":null}`},
		{"date", "return new Date(0)", `"1970-01-01T00:00:00.000Z"`},
		{"undefined", "return undefined", "null"},
		{"tool", "const r = await callTool('echo', {n: 2}); return r.n * 21", "42"},
		{"fanout", "const rs = await Promise.all([1,2,3].map(n => callTool('echo', {n}))); return rs.map(r => r.n)", "[1,2,3]"},
		{"parallel", "const rs = await parallel([4,5], (n) => callTool('echo', {n})); return rs.length", "2"},
		{"caught tool error", "try { await callTool('fail', {message: 'nope'}) } catch (e) { return [e instanceof Error, e.message, e.code, typeof e.Unwrap] }", `[true,"nope","TOOL_ERROR","undefined"]`},
		{"stringify", `return JSON.stringify({a: 1, b: [1, 2]}, null, 2)`, `"{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}"`},
		{"function ctor cut", "const f = () => 1; return typeof f.constructor", `"undefined"`},
		{"globals deleted", "return [typeof eval, typeof Function, typeof Proxy, typeof Reflect, typeof globalThis, typeof Symbol, typeof GoError]", `["undefined","undefined","undefined","undefined","undefined","undefined","undefined"]`},
		{"frozen", "try { Array.prototype.push = null; return 'changed' } catch (e) { return e instanceof TypeError }", "true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runScript(t, tc.body, testLimits(), echo)
			if out.failure != nil {
				t.Fatalf("failure %s: %s", out.failure.Code, out.failure.Message)
			}
			if got := string(out.final.ResultJson); got != tc.want {
				t.Fatalf("result %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRunFailures(t *testing.T) {
	cases := []struct {
		name, body, code, contains string
	}{
		{"throw", "\nthrow new TypeError('bad input')", "SCRIPT_ERROR", "bad input"},
		{"uncaught tool error", "await callTool('fail', {message: 'quota'})", "TOOL_ERROR", "quota"},
		{"iterations", "let i = 0; while (true) { __enclave_tick(); i++ }", "MAX_ITERATIONS", ""},
		{"iterations not catchable", "while (true) { try { while (true) { __enclave_tick() } } catch (e) {} }", "MAX_ITERATIONS", ""},
		{"timeout", "while (true) {}", "TIMEOUT", ""},
		{"repeat bomb", "return 'x'.repeat(2 ** 30).length", "MEMORY_LIMIT_EXCEEDED", "repeat"},
		{"fill bomb", "return new Array(1e9).fill(0).length", "MEMORY_LIMIT_EXCEEDED", "fill"},
		{"recursion", "const f = (n) => { try { return f(n + 1) } catch (e) { return f(n + 1) } }; return f(0)", "MEMORY_LIMIT_EXCEEDED", "depth"},
		{"json parse depth", "return JSON.parse('['.repeat(5000) + ']'.repeat(5000)).length", "SERIALIZATION_LIMIT_EXCEEDED", ""},
		{"result too deep", "let a = []; for (let i = 0; i < 50; i++) a = [a]; return a", "SERIALIZATION_LIMIT_EXCEEDED", ""},
		{"never settles", "await new Promise(() => {})", "SCRIPT_ERROR", "never settle"},
		{"tool calls", "for (let i = 0; i < 200; i++) await callTool('echo', {})", "MAX_TOOL_CALLS", ""},
		{"console calls", "for (let i = 0; i < 2000; i++) console.log(i)", "CONSOLE_LIMIT", ""},
		{"console bytes", "console.log('x'.repeat(2 << 20))", "CONSOLE_LIMIT", ""},
		{"cycle", "const a = {}; a.self = a; return a", "SCRIPT_ERROR", "circular"},
		{"runtime built ctor", "const k = ['con','struc','tor'].join(''); return (42)[k][k]('return 1')()", "SCRIPT_ERROR", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out := runScript(t, tc.body, testLimits(), echo)
			if out.failure == nil {
				t.Fatalf("want %s, got result %s", tc.code, out.final.ResultJson)
			}
			if out.failure.Code != tc.code || !strings.Contains(out.failure.Message, tc.contains) {
				t.Fatalf("got %s: %s; want %s containing %q", out.failure.Code, out.failure.Message, tc.code, tc.contains)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("took %s", time.Since(start))
			}
		})
	}
}

func TestRunErrorLine(t *testing.T) {
	out := runScript(t, "const a = 1;\nconst b = null;\nreturn b.x;", testLimits(), echo)
	if out.failure == nil || out.failure.Line != 3 {
		t.Fatalf("want failure on line 3, got %+v", out.failure)
	}
}

func TestRunConsole(t *testing.T) {
	out := runScript(t, "console.log('a', 1, {b: 2}); console.warn('w'); return 0", testLimits(), echo)
	if len(out.console) != 2 || out.console[0].Text != `a 1 {"b":2}` || out.console[1].Level != "warn" {
		t.Fatalf("console %+v", out.console)
	}
}

// Cases found by attacking the worker: ordinary array-likes must work, and counts a
// script controls must not crash the process or slip past a guard.
func TestGuardsOnOddInput(t *testing.T) {
	values := []struct{ name, body, want string }{
		{"from set", "return Array.from(new Set([1, 2, 2, 3]))", "[1,2,3]"},
		{"from map keys", "return Array.from(new Map([[1, 'a']]).keys())", "[1]"},
		{"from plain object", "return Array.from({})", "[]"},
		{"concat object", "return [1].concat({a: 1})", `[1,{"a":1}]`},
		{"repeat negative is RangeError", "try { 'a'.repeat(-1) } catch (e) { return e instanceof RangeError }", "true"},
		{"repeat infinity is RangeError", "try { 'a'.repeat(Infinity) } catch (e) { return e instanceof RangeError }", "true"},
		// The count is read once: the guard checks the value repeat then uses.
		{"repeat reads its count once", "let n = 0; const c = {valueOf: () => (n++ ? 2 ** 60 : 1)}; return 'abcdefgh'.repeat(c).length", "8"},
		{"no Go names", "return String(console.log) + String(callTool)", `"function log() { [native code] }function callTool() { [native code] }"`},
	}
	for _, tc := range values {
		t.Run(tc.name, func(t *testing.T) {
			out := runScript(t, tc.body, testLimits(), echo)
			if out.failure != nil {
				t.Fatalf("failure %s: %s", out.failure.Code, out.failure.Message)
			}
			if got := string(out.final.ResultJson); got != tc.want {
				t.Fatalf("result %s, want %s", got, tc.want)
			}
		})
	}
	bombs := map[string]string{
		"parallel huge length": "return await parallel({length: 2 ** 31}, (x) => 1)",
		"apply huge length":    "return Math.max.apply(null, {length: 2 ** 32 - 1})",
		"map sparse":           "return Array(2 ** 31).map((x) => 1).length",
		"sort sparse":          "const a = []; a[2 ** 32 - 2] = 1; return a.sort().length",
	}
	for name, body := range bombs {
		t.Run(name, func(t *testing.T) {
			out := runScript(t, body, testLimits(), echo)
			if out.failure == nil || out.failure.Code != "MEMORY_LIMIT_EXCEEDED" {
				t.Fatalf("want MEMORY_LIMIT_EXCEEDED, got %+v %+v", out.failure, out.final)
			}
		})
	}
}

// Keys built at run time reach nothing the level refuses by name.
func TestRuntimeKeysReachNothingRefused(t *testing.T) {
	strict := testLimits()
	strict.LinearRegexOnly, strict.AllowCollections = true, false
	cases := []struct {
		name, body string
		lim        *ipcpb.Limits
		want       string
	}{
		{"RegExp via a literal at STRICT", "const k = ['con', 'structor'].join(''); return typeof /x/[k]", strict, `"undefined"`},
		{"RegExp global at STRICT", "return typeof RegExp", strict, `"undefined"`},
		{"Map via an instance is gone at STRICT", "return typeof Map", strict, `"undefined"`},
		{"RegExp works at STANDARD", "return new RegExp('a+').test('caat')", testLimits(), "true"},
		{"reflection is gone", "const k = ['define', 'Property'].join(''); return [typeof Object[k], typeof Object['getPrototype' + 'Of'], typeof ({})['__define' + 'Getter__']]", testLimits(), `["undefined","undefined","undefined"]`},
		{"Promise still awaits", "const p = await Promise.all([1, 2]); return p", strict, "[1,2]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runScript(t, tc.body, tc.lim, echo)
			if out.failure != nil {
				t.Fatalf("failure %s: %s", out.failure.Code, out.failure.Message)
			}
			if got := string(out.final.ResultJson); got != tc.want {
				t.Fatalf("result %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBigIntAndConsoleErrors(t *testing.T) {
	out := runScript(t, "return 10n", testLimits(), echo)
	if out.failure == nil || !strings.Contains(out.failure.Message, "BigInt") {
		t.Fatalf("a BigInt result: %+v %+v", out.failure, out.final)
	}
	out = runScript(t, "try { JSON.stringify({a: 1n}) } catch (e) { return e instanceof TypeError }", testLimits(), echo)
	if out.failure != nil || string(out.final.ResultJson) != "true" {
		t.Fatalf("JSON.stringify of a BigInt: %+v %+v", out.failure, out.final)
	}
	out = runScript(t, "console.log(new RangeError('too far')); return 0", testLimits(), echo)
	if len(out.console) != 1 || out.console[0].Text != "RangeError: too far" {
		t.Fatalf("console of an Error: %+v", out.console)
	}
}

// Second round of attacks: lengths that change between reads, runtime regexes at the
// linear-only levels, and native walks over huge sparse lengths.
func TestGuardsSecondRound(t *testing.T) {
	strict := testLimits()
	strict.LinearRegexOnly = true
	shifty := "let c = 0; const n = {valueOf: () => { c++; return c < 2 ? 1 : 2 ** 29 }};"
	cases := []struct {
		name, body string
		lim        *ipcpb.Limits
		code       string
	}{
		{"Array.from shifting length", shifty + "return Array.from({length: n}).length", testLimits(), "MEMORY_LIMIT_EXCEEDED"},
		{"join shifting length", shifty + "return [].join.call({length: n}, 'x').length", testLimits(), "MEMORY_LIMIT_EXCEEDED"},
		{"apply shifting length", shifty + "return Math.max.apply(null, {length: n})", testLimits(), "MEMORY_LIMIT_EXCEEDED"},
		{"indexOf huge", "return [].indexOf.call({length: 2 ** 53 - 1}, 1)", testLimits(), "MAX_ITERATIONS"},
		{"includes huge sparse", "return new Array(2 ** 30).includes(1)", testLimits(), "MAX_ITERATIONS"},
		{"compile at STRICT", "const r = /x/; r.compile(['^(a+)', '+$'].join('')); return r.test('aaa!')", strict, "SCRIPT_ERROR"},
		{"search string at STRICT", "return 'aaa'.search(['(a+)', '+$'].join(''))", strict, "SCRIPT_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runScript(t, tc.body, tc.lim, echo)
			if out.failure == nil || out.failure.Code != tc.code {
				t.Fatalf("want %s, got %+v %+v", tc.code, out.failure, out.final)
			}
		})
	}
	out := runScript(t, "return ['aXbXc'.search(/X/), 'aXb'.match(/X/)[0], 'a-b'.split('-').length]", strict, echo)
	if out.failure != nil || string(out.final.ResultJson) != `[1,"X",2]` {
		t.Fatalf("literal regexes at STRICT: %+v %+v", out.failure, out.final)
	}
}
