package agentscript

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// fuzzSeeds are small scripts from the rule and transform tests; the corpus
// is added on top.
var fuzzSeeds = []string{
	"let n = 0;\nfor (let i = 0; i < 10; i++) n++;\nn",
	"[1,2,3].map(x=>x*2)",
	"let i = 0; do i++; while (i < 4); i",
	"for (const k in {a: 1}) if (k) k; else 1;",
	"const add = (a) => (b) => a + b; add(2)(3)",
	"let s = 0; for (const x of [1, 2]) (s) += x; s",
	"const arr = [];\nfor (let i = 0; i < 2; i++) // (\n  (arr).push(i);\narr.length",
	"let i = 0; for (; i < 3; i ++) i ++ ; i",
	"[1, 2].map(x => ({ v: x }))",
	"const a = 5;\n// note (\n(a)",
	"function f(n) { return n <= 1 ? 1 : n * f(n - 1) }\nf(4)",
	"class A { constructor(v) { } get x() { return 1 } static { } }",
	"const { \"constructor\": C } = {}",
	"({}).constructor.constructor('return 1')()",
	"const o = {}; o['con' + 'structor']",
	"await callTool('users:list', { limit: 3 })",
	"/^(?=a)(b+)+\\1/.test('b')",
	"`${`${1}`}` + String.raw`x`",
	"}); (async () => {",
	"const note = 'ok';\n`",
	"label: for (;;) { break label }",
	"try { x() } catch ({ message }) { message } finally { }",
	"switch (1) { case 1: default: }",
	"const [a, , ...b] = [1, 2, 3]; a?.b?.(c) ?? d",
}

// FuzzCheck: Check never panics (an internal failure is a bug too), and
// whatever it accepts compiles with goja and keeps the user's line count.
func FuzzCheck(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, uint8(2))
	}
	cases, _ := readCorpus(corpusPath) // seeds only; TestCorpus reports a bad file
	for _, c := range cases {
		f.Add(c.Code, uint8(2))
	}
	levels := []Options{strict, secure, standard, permissive}
	f.Fuzz(func(t *testing.T, code string, level uint8) {
		opts := levels[int(level)%len(levels)]
		// A hang is a failure too (goja's parser has hung on odd input
		// before): report the input instead of stalling the fuzzer.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("Check or Compile hung on %q", code))
			}
		}()
		s, err := Check(code, opts)
		var probs Problems
		if err != nil {
			if !errors.As(err, &probs) {
				t.Fatalf("error %T is not Problems", err)
			}
			for _, p := range probs {
				if p.Rule == RuleInternal {
					t.Fatalf("validator failed on %q: %v", code, p)
				}
			}
			return
		}
		if _, err := goja.Compile("script.js", s.Source, false); err != nil {
			if _, err0 := goja.Compile("", wrapPrefix+code+wrapSuffix, false); err0 != nil {
				// goja's compiler refuses the script as written too (an
				// early error the validator does not mirror): the worker
				// reports it as a script error; not a transform bug.
				t.Skipf("compile error without transforms too: %v", err0)
			}
			t.Fatalf("accepted %q but the output does not compile: %v\n%s", code, err, s.Source)
		}
		if strings.Count(s.Source, "\n") != strings.Count(code, "\n")+1 {
			t.Fatalf("line breaks changed for %q:\n%s", code, s.Source)
		}
	})
}
