package agentscript

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

type ruleCase struct {
	name string
	code string
	opts Options
	rule string // "" means the script must pass
}

// checkCases runs each case and asserts the rule it must trip, or a pass.
func checkCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.code, tc.opts)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("refused ordinary code:\n%s\n%v", tc.code, err)
				}
				return
			}
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("want rule %q, got err %v", tc.rule, err)
			}
			if !slices.Contains(probs.Rules(), tc.rule) {
				t.Fatalf("want rule %q, got:\n%v", tc.rule, probs)
			}
		})
	}
}

func TestRulesEveryLevel(t *testing.T) {
	checkCases(t, []ruleCase{
		{"eval call", "eval('1+1')", permissive, RuleEval},
		{"eval as value", "const e = eval; e('1')", permissive, RuleEval},
		{"evaluation is a name", "const evaluation = 1; evaluation", strict, ""},
		{"Function", "Function('return 1')()", permissive, RuleFunctionCtor},
		{"AsyncFunction", "const F = AsyncFunction", permissive, RuleFunctionCtor},
		{"GeneratorFunction", "GeneratorFunction", permissive, RuleFunctionCtor},
		{"this", "const t = this", permissive, RuleThis},
		{"super in class", "class A extends Object { m() { return super.m() } }", permissive, RuleThis},
		{"globalThis", "globalThis.x", permissive, RuleGlobalObject},
		{"global", "global", permissive, RuleGlobalObject},
		{"self", "self.fetch", permissive, RuleGlobalObject},
		{"window", "window", permissive, RuleGlobalObject},
		{"member constructor", "({}).constructor", permissive, RulePrototype},
		{"member __proto__", "const o = {}; o.__proto__", permissive, RulePrototype},
		{"member prototype", "Array.prototype.map", permissive, RulePrototype},
		{"__defineGetter__", "const o = {}; o.__defineGetter__('x', 1)", permissive, RulePrototype},
		{"__lookupSetter__", "const o = {}; o.__lookupSetter__('x')", permissive, RulePrototype},
		{"computed constructor", "const o = {}; o['constructor']", permissive, RulePrototype},
		{"computed template", "const o = {}; o[`constructor`]", permissive, RulePrototype},
		{"computed concatenation", "const o = {}; o['con' + 'structor']", permissive, RulePrototype},
		{"computed escape", "const o = {}; o['\\u0063onstructor']", permissive, RulePrototype},
		{"object key", "({constructor: 1})", permissive, RulePrototype},
		{"object quoted key", "({'__proto__': null})", permissive, RulePrototype},
		{"object computed key", "({['prototype']: 1})", permissive, RulePrototype},
		{"destructuring key", "const { \"constructor\": C } = {}", permissive, RulePrototype},
		{"destructuring short", "const { constructor } = {}", permissive, RulePrototype},
		{"assignment pattern key", "let C; ({ constructor: C } = {})", permissive, RulePrototype},
		{"bare constructor", "const O = constructor", permissive, RulePrototype},
		{"escaped member", "const o = {}; o.\\u0063onstructor", permissive, RuleIdentifier},
		{"class constructor method", "class A { constructor() { } }; new A()", permissive, ""},
		{"prototype field", "class A { prototype = 1 }", permissive, RulePrototype},
		{"words as data", "const o = { constructorName: 'constructor', prototypeVersion: 1 }; o.prototypeVersion", strict, ""},
		{"string mentions", "'eval require process constructor __proto__'", strict, ""},
		{"prototype hasOwnProperty", "Object.prototype.hasOwnProperty.call({}, 'a')", strict, RulePrototype},
		{"Object.hasOwn fine", "Object.hasOwn({ a: 1 }, 'a') && ({ a: 1 }).hasOwnProperty('a')", strict, ""},
		{"getPrototypeOf", "Object.getPrototypeOf([])", permissive, RuleReflection},
		{"descriptor", "const O = Object; O.getOwnPropertyDescriptor({}, 'a')", permissive, RuleReflection},
		{"defineProperty string key", "Object['defineProperty']({}, 'a', {})", permissive, RuleReflection},
		{"Object.keys fine", "Object.keys({a: 1}).concat(Object.entries({}), Object.values({}))", strict, ""},
		{"Object.fromEntries fine", "Object.fromEntries([['a', 1]])", strict, ""},
		{"Proxy", "new Proxy({}, {})", permissive, RuleReflection},
		{"Reflect", "Reflect.ownKeys({})", permissive, RuleReflection},
		{"with", "with (Math) { max(1, 2) }", permissive, RuleWith},
		{"require", "require('fs')", permissive, RuleModule},
		{"process", "process.env", permissive, RuleModule},
		{"module", "module.exports = 1", permissive, RuleModule},
		{"exports", "exports.x = 1", permissive, RuleModule},
		{"import call", "import('fs')", permissive, RuleSyntax},
		{"WebAssembly", "WebAssembly.compile", permissive, RuleLowLevel},
		{"SharedArrayBuffer", "new SharedArrayBuffer(8)", permissive, RuleLowLevel},
		{"Atomics", "Atomics.wait", permissive, RuleLowLevel},
		{"setTimeout", "setTimeout(() => 1, 0)", permissive, RuleTimer},
		{"setInterval", "setInterval", permissive, RuleTimer},
		{"setImmediate", "setImmediate", permissive, RuleTimer},
		{"queueMicrotask", "queueMicrotask(() => 1)", permissive, RuleTimer},
		{"Symbol", "Symbol.iterator", permissive, RuleSymbol},
		{"debugger", "debugger;", permissive, RuleDebugger},
		{"labelled loop fine", "outer: for (const a of [1]) { for (const b of [2]) { break outer; } }", strict, ""},
		{"generator", "function* g() { yield 1 }", permissive, RuleGenerator},
		{"tagged template", "String.raw`x`", permissive, RuleTaggedTemplate},
		{"template fine", "const n = 2; `n=${n}`", strict, ""},
		{"new.target", "function F() { return new.target }", permissive, RuleMetaProperty},
		{"reserved name", "const __enclave_tick = 1", permissive, RuleReserved},
		{"reserved call", "__enclave_tick()", permissive, RuleReserved},
		{"reserved member", "const o = {}; o.__enclave_x", permissive, RuleReserved},
		{"escaped identifier", "const \\u0061 = 1", permissive, RuleIdentifier},
		{"non-ASCII identifier", "const café = 1", permissive, RuleIdentifier},
		{"unknown global", "fetch('http://x')", permissive, RuleGlobal},
		{"assign undeclared", "leak = 1", permissive, RuleGlobal},
		{"arguments at top level", "arguments", permissive, RuleGlobal},
		{"declared later is fine", "const f = () => g(); const g = () => 1; f()", standard, ""},
		{"block scope respected", "{ const inner = 1 } inner", standard, RuleGlobal},
		{"var hoists to function", "{ var v = 1 } v", standard, ""},
		{"catch parameter", "try { x() } catch (err) { err }", strict, RuleGlobal},
		{"catch parameter fine", "try { JSON.parse('') } catch (err) { err.message }", strict, ""},
		{"allowed globals", "[Math.max(1), JSON.stringify({}), Number('1'), String(1), Boolean(0), " +
			"Date.now(), parseInt('1'), parseFloat('1'), isNaN(1), isFinite(1), undefined, NaN, " +
			"Infinity, encodeURIComponent('a'), decodeURIComponent('a'), Array.isArray([]), " +
			"new Error('x'), new TypeError('x'), new RangeError('x'), new SyntaxError('x'), " +
			"new ReferenceError('x'), console.log('x')]", strict, ""},
		{"custom global", "config.limit", Options{Globals: []string{"config"}}, ""},
		{"custom global missing", "config.limit", strict, RuleGlobal},
	})
}

func TestRulesNewAndTools(t *testing.T) {
	onlyUsers := Options{ToolAllowed: func(n string) bool { return strings.HasPrefix(n, "users:") }}
	checkCases(t, []ruleCase{
		{"new Date", "new Date(0).toISOString()", strict, ""},
		{"new Array Object", "[new Array(3), new Object()]", strict, ""},
		{"new member callee", "new Math.constructor()", permissive, RuleNew},
		{"new Number", "new Number(1)", permissive, RuleNew},
		{"new declared class", "class A {}; new A()", permissive, ""},
		{"new undeclared", "new Thing()", permissive, RuleNew},
		{"new Map at secure", "new Map()", secure, ""},
		{"callTool literal", "await callTool('users:list', { limit: 3 })", strict, ""},
		{"callTool template literal", "await callTool(`users:list`, {})", strict, ""},
		{"callTool variable name", "const n = 'x'; await callTool(n, {})", strict, RuleToolName},
		{"callTool substitution", "const n = 'x'; await callTool(`${n}`, {})", strict, RuleToolName},
		{"callTool no args", "await callTool()", strict, RuleToolName},
		{"callTool as value", "const f = callTool", strict, RuleToolValue},
		{"callTool member", "callTool.call(null, 'x')", strict, RuleToolValue},
		{"callTool redeclared", "const callTool = 1", strict, RuleToolValue},
		{"callTool allowed", "await callTool('users:get', {})", onlyUsers, ""},
		{"callTool denied", "await callTool('admin:drop', {})", onlyUsers, RuleToolDenied},
		{"parallel", "await parallel([1, 2], (n) => callTool('echo', { n }))", strict, ""},
	})
}

func TestRulesByLevel(t *testing.T) {
	checkCases(t, []ruleCase{
		{"while strict", "let i = 0; while (i < 3) i++", strict, RuleWhile},
		{"while standard", "let i = 0; while (i < 3) i++", standard, ""},
		{"do-while secure", "let i = 0; do { i++ } while (i < 3)", secure, RuleWhile},
		{"do-while standard", "let i = 0; do { i++ } while (i < 3)", standard, ""},
		{"for strict", "let s = 0; for (let i = 0; i < 3; i++) s += i", strict, ""},
		{"for-of strict", "let s = 0; for (const x of [1, 2]) s += x", strict, ""},
		{"for-in standard", "for (const k in {a: 1}) k", standard, RuleForIn},
		{"for-in permissive", "for (const k in {a: 1}) k", permissive, ""},
		{"arrow argument strict", "[1, 2].map((x) => x * 2).filter((x) => x > 2)", strict, ""},
		{"arrow value strict", "const f = (x) => x; f(1)", strict, RuleArrowValue},
		{"arrow in object strict", "({ f: () => 1 })", strict, RuleArrowValue},
		{"arrow value standard", "const f = (x) => x; f(1)", standard, ""},
		{"recursion standard", "const fact = (n) => n <= 1 ? 1 : n * fact(n - 1); fact(5)", standard, ""},
		{"function standard", "function f() { return 1 }", standard, RuleFunction},
		{"function expression standard", "[1].map(function (x) { return x })", standard, RuleFunction},
		{"method standard", "({ m() { return 1 } })", standard, RuleFunction},
		{"getter standard", "({ get x() { return 1 } })", standard, RuleFunction},
		{"setter standard", "({ set x(v) { } })", standard, RuleFunction},
		{"class standard", "class A {}", standard, RuleFunction},
		{"function permissive", "function f(a, ...rest) { return arguments.length + rest.length } f(1)", permissive, ""},
		{"class permissive", "class A { #p = 1; get p() { return this_p } static { } }", permissive, RuleGlobal},
		{"Map strict", "new Map()", strict, RuleCollection},
		{"Set strict", "const s = new Set([1])", strict, RuleCollection},
		{"Promise strict", "await Promise.all([])", strict, RuleCollection},
		{"Promise secure", "await Promise.all([callTool('a', {})])", secure, ""},
		{"Promise executor arrow", "await new Promise((resolve) => resolve(1))", secure, ""},
		{"lookahead strict", "/^(?=a)b/.test('b')", strict, RuleRegex},
		{"lookbehind secure", "/(?<=a)b/.test('ab')", secure, RuleRegex},
		{"backreference", "/(a)\\1/.test('aa')", strict, RuleRegex},
		{"named backreference", "/(?<x>a)\\k<x>/.test('aa')", strict, RuleRegex},
		{"nested quantifier", "/^(a+)+$/.test('aaa')", strict, RuleRegex},
		{"nested star", "/(x*)*y/.test('x')", strict, RuleRegex},
		{"nested repeat count", "/(ab{1,})+/.test('ab')", strict, RuleRegex},
		{"linear regex strict", "'a-b'.replace(/[^a-z0-9]+/g, '-').split(/\\s*,\\s*/)", strict, ""},
		{"optional group fine", "/^(ab+)?c$/.test('abc') && /(?:a|b)+/.test('a')", strict, ""},
		{"lookahead standard", "/^(?=a)a/.test('a')", standard, ""},
		{"RegExp strict", "new RegExp('a+')", strict, RuleRegexCtor},
		{"RegExp standard", "new RegExp('a+').test('a')", standard, ""},
	})
}

// TestEarlyErrors: declarations goja's parser accepts but its compiler
// refuses are reported before any worker sees them.
func TestEarlyErrors(t *testing.T) {
	checkCases(t, []ruleCase{
		{"const without initializer", "const a", strict, RuleSyntax},
		{"const pattern without initializer", "const {a} = {}, b", strict, RuleSyntax},
		{"const in for-of", "for (const x of [1]) x", strict, ""},
		{"let twice", "let a = 1; let a = 2", strict, RuleSyntax},
		{"let then var", "let a = 1; var a = 2", strict, RuleSyntax},
		{"var in block then let", "{ var a = 1 } let a = 2", strict, RuleSyntax},
		{"var twice fine", "var a = 1; var a = 2; a", strict, ""},
		{"shadowing fine", "const a = 1; { const a = 2 } [1].map((a) => a)", strict, ""},
		{"param then let", "[1].map((a) => { let a = 2 })", strict, RuleSyntax},
		{"param then var fine", "[1].map((a) => { var a = 2; return a })", strict, ""},
		{"duplicate params", "[1].map((a, a) => a)", strict, RuleSyntax},
		{"catch param then let", "try { } catch (e) { let e = 1 }", strict, RuleSyntax},
		{"catch param then var", "try { } catch (e) { var e = 1 }", strict, RuleSyntax},
		{"function then let", "function f() {} let f = 1", permissive, RuleSyntax},
		{"function then var fine", "function f() {} var f = 1", permissive, ""},
		{"let named let", "let let = 1", strict, RuleSyntax},
		{"invalid regex", "/(/", standard, RuleSyntax},
		{"shorthand initializer in a literal", "const a = 1; ({ a = 2 })", standard, RuleSyntax},
		{"shorthand default in a pattern", "const { a = 2 } = {}; a", standard, ""},
		{"invalid regex flags", "/a/gg", standard, RuleSyntax},
		{"invalid backtracking regex", "/0(?!/", standard, RuleSyntax},
		{"valid backtracking regex", "/(?<=a)b\\1/", standard, ""},
		{"unknown regex flag", "/a/q", standard, RuleSyntax},
		{"valid regex flags", "/a/gimsuy", standard, ""},
		{"backtracking regex with flags", "/(?<=a)b/gimsuy", standard, ""},
		{"large repeat count", "/a{2000}/.test('a')", standard, ""},
		{"large repeat count strict", "/a{2000}/.test('a')", strict, RuleRegex},
		{"block function visible in its function", "{ function f() { return 1 } } f()", permissive, ""},
		{"destructuring twice", "let [a, a] = []", strict, RuleSyntax},
	})
}

func TestSyntaxProblems(t *testing.T) {
	tests := []struct {
		name      string
		code      string
		line, col int
	}{
		{"trailing backtick", "const note = 'ok';\n`", 2, 2},
		{"missing paren line 1", "const x = (1;", 1, 13},
		{"bad token line 3", "const a = 1;\nconst b = 2;\nconst c = @;", 3, 11},
		{"unclosed brace", "if (true) {\n  1", 2, 4},
		{"closes the wrapper", "}); (async () => {", 1, 1},
		{"parser panic", "const[...[", 1, 1},
		{"closes the wrapper twice", "1 })(); globalThis.x = 1; (async () => { 2", 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.code, standard)
			var probs Problems
			if !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("want a syntax problem, got %v", err)
			}
			p := probs[0]
			if p.Rule != RuleSyntax || p.Line != tc.line || p.Column != tc.col {
				t.Errorf("got %v, want syntax at %d:%d", probs, tc.line, tc.col)
			}
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	code := "const a = this;\nconst b = eval;\nwhile (true) {}\nconst c = globalThis;"
	_, err := Check(code, strict)
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("want Problems, got %v", err)
	}
	want := []string{
		"1:11 this", "2:11 eval", "3:1 while", "4:11 global-object",
	}
	var got []string
	for _, p := range probs {
		got = append(got, strings.Join(strings.Fields(p.String())[:2], " "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !errors.Is(err, ErrRefused) {
		t.Error("errors.Is(err, ErrRefused) is false")
	}
	if !strings.Contains(err.Error(), "1:11 this this is not available") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestProblemCap(t *testing.T) {
	code := strings.Repeat("this;\n", maxProblems+50)
	_, err := Check(code, strict)
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatal(err)
	}
	if len(probs) != maxProblems+1 || probs[len(probs)-1].Rule != RuleTooMany {
		t.Fatalf("got %d problems, last %v", len(probs), probs[len(probs)-1])
	}
}

// Long operator chains compile in quadratic time in goja; the validator refuses
// them by depth while ordinary sums pass.
func TestExpressionDepth(t *testing.T) {
	chain := func(n int, sep string) string {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = "1"
		}
		return "return " + strings.Join(terms, sep)
	}
	if _, err := Check(chain(100, " + "), Options{}); err != nil {
		t.Fatalf("a 100-term sum is ordinary: %v", err)
	}
	for name, src := range map[string]string{
		"sum":   chain(5000, "+\n"),
		"unary": "return " + strings.Repeat("- ", 2000) + "1",
	} {
		_, err := Check(src, Options{})
		var probs Problems
		if !errors.As(err, &probs) || probs.Rules()[0] != RuleNesting {
			t.Fatalf("%s: want a nesting problem, got %v", name, err)
		}
	}
}
