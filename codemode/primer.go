package codemode

import (
	"fmt"
	"strings"

	"github.com/enclave-go/enclave/limits"
)

// Primer is a short description of AgentScript at a level, with the run's
// limits, written for a model that is about to write a script.
func Primer(level limits.Level, v limits.Values) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// AgentScript (security level %s): a JavaScript subset run in a sandbox.\n", level)
	for _, line := range primerBase {
		b.WriteString("// - " + line + "\n")
	}
	for _, line := range levelLines(level) {
		b.WriteString("// - " + line + "\n")
	}
	fmt.Fprintf(&b, "// - Limits per run: %s, %d loop iterations, %d tool calls, %d console calls.\n",
		v.Timeout, v.MaxIterations, v.MaxToolCalls, v.MaxConsoleCalls)
	return b.String()
}

var primerBase = []string{
	"Top-level await and return. The result is the returned value, or the value of the last expression statement.",
	"Call tools with `await callTool('name', args)`; the name must be a string literal. " +
		"A failed call throws an Error whose `code` is TOOL_ERROR, TOOL_TIMEOUT or TOOL_NOT_ALLOWED: catch it with try/catch.",
	"`parallel(items, (item) => callTool('name', {...}))` runs calls concurrently and resolves to their results.",
	"Values cross as JSON: no functions, cycles or symbols; dates become ISO strings.",
	"console.log/warn/error output is returned with the result.",
	"Available: const/let, destructuring, spread, if/ternary, ?., ??, templates, for and for...of, try/catch/throw, " +
		"arrow functions as call arguments (map, filter, reduce...), Math, JSON, Object.keys/values/entries/fromEntries, " +
		"Array.isArray/from, Number, String, Boolean, Date, parseInt, parseFloat, isNaN, Error types.",
	"Refused before running: eval, Function, this, globalThis, constructor/__proto__/prototype, Proxy, Reflect, " +
		"import/require/process, timers, with.",
}

// levelLines say what the level adds to the base set; it follows the
// validator's table of constructs by level.
func levelLines(level limits.Level) []string {
	switch level {
	case limits.Strict:
		return []string{
			"Not at this level: while/do-while, for...in, arrow functions as values, function/class, Map, Set, Promise.",
			"Regular expressions must be linear-time (no backreferences or lookaround).",
		}
	case limits.Secure:
		return []string{
			"Also: Map, Set, Promise (all, allSettled, race, resolve, reject).",
			"Not at this level: while/do-while, for...in, arrow functions as values, function/class.",
			"Regular expressions must be linear-time (no backreferences or lookaround).",
		}
	case limits.Permissive:
		return []string{
			"Also: Map, Set, Promise, while/do-while, for...in, arrow functions as values and recursion, function, methods, class, any regular expression.",
		}
	}
	return []string{
		"Also: Map, Set, Promise (all, allSettled, race, resolve, reject), while/do-while, arrow functions as values and recursion, regular expressions.",
		"Not at this level: for...in, function declarations, methods, class.",
	}
}
