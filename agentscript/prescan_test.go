package agentscript

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPrescan(t *testing.T) {
	small := Options{MaxSourceBytes: 200, MaxLines: 5, MaxLineLength: 40, MaxNesting: 4, MaxStringLiteral: 10}
	deep := func(n int) string { return "const x = " + strings.Repeat("[", n) + strings.Repeat("]", n) }
	checkCases(t, []ruleCase{
		{"size", strings.Repeat("1;", 101), small, RuleSize},
		{"size default", strings.Repeat(" ", DefaultMaxSourceBytes+1), Options{}, RuleSize},
		{"size fine", strings.Repeat("1;", 20), small, ""},
		{"lines", strings.Repeat("1\n", 5) + "1", small, RuleLines},
		{"lines fine", strings.Repeat("1\n", 4) + "1", small, ""},
		{"lines CR", strings.Repeat("1\r", 5) + "1", small, RuleLines},
		{"line length", "const a = '" + strings.Repeat("a", 9) + "' + " + strings.Repeat("1+", 20) + "1", small, RuleLineLength},
		{"line length counts characters", "const a = 1 // éééééééééééééééééééééééé", small, ""},
		{"nesting", deep(5), small, RuleNesting},
		{"nesting fine", deep(4), small, ""},
		{"nesting default", deep(65), Options{}, RuleNesting},
		{"nesting mixed", "f([{a: (g(1))}])", small, RuleNesting},
		{"brackets in strings are closed locally", "const s = '(a)' + '[b]'; [[[1]]]", small, ""},
		{"string openers end with their code bracket", "String('(', '(');\nString('(', '(', '(');\n[[[1]]]", small, ""},
		{"string nesting counts", "const s = '(((((x)))))'", small, RuleNesting},
		{"string closers do not hide code", "[[[ ')))))' , [[1]]]]", small, RuleNesting},
		{"template substitution nests", "`${`${`${`${`${1}`}`}`}`}`", small, RuleNesting},
		{"comment closers do not hide code", "[[[ // ))))\n [[1]]]]", small, RuleNesting},
		{"regex closers do not hide code", "[[[ /\\)\\)\\)/, [[1]]]]", small, RuleNesting},
		{"division is not a regex", "const r = (1) / (2) / [3][0]", small, ""},
		{"string length", "const s = '" + strings.Repeat("a", 11) + "'", small, RuleStringLength},
		{"string length fine", "const s = '" + strings.Repeat("a", 10) + "'", small, ""},
		{"template length", "const s = `" + strings.Repeat("a", 11) + "`", small, RuleStringLength},
		{"template chunk fine", "const s = `aaaaa${1}aaaaa`", small, ""},
		{"escaped quote", "const s = 'a\\'b'", small, ""},
		{"invalid UTF-8", "const s = '\xff'", small, RuleEncoding},
	})
}

func TestInvisibleCharacters(t *testing.T) {
	chars := []rune{
		0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
		0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF, 0x00AD, 0x2028, 0x2029,
		0x2060, 0x180E, 0x0000, 0x001B, 0x0085, 0xE0001,
	}
	for _, ch := range chars {
		for _, where := range []string{"const s = 'a%cb'", "const s%c = 1", "// %c"} {
			code := fmt.Sprintf(where, ch)
			t.Run(fmt.Sprintf("U+%04X in %q", ch, where), func(t *testing.T) {
				_, err := Check(code, permissive)
				var probs Problems
				if !errors.As(err, &probs) || probs[0].Rule != RuleInvisible {
					t.Fatalf("want invisible-char, got %v", err)
				}
				if want := fmt.Sprintf("U+%04X", ch); !strings.Contains(probs[0].Message, want) {
					t.Errorf("message %q does not name %s", probs[0].Message, want)
				}
			})
		}
	}
	// Visible non-ASCII text and ordinary whitespace pass.
	if _, err := Check("const s = 'héllo wörld ✓ 日本';\ts\r\n", strict); err != nil {
		t.Fatalf("refused visible text: %v", err)
	}
}

func TestPrescanPositions(t *testing.T) {
	_, err := Check("const a = 1;\nconst s = 'x\u202Ey';", strict)
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatal(err)
	}
	if p := probs[0]; p.Line != 2 || p.Column != 13 {
		t.Errorf("got %v, want 2:13", p)
	}
}
