package agentscript

import (
	"regexp"
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// regexLiteral checks a regex literal when only linear-time patterns are
// allowed. goja runs a pattern on Go's RE2 engine (linear) when it can
// translate it, and otherwise on a backtracking engine that Interrupt cannot
// stop; the translation below is the one goja itself uses.
func (c *checker) regexLiteral(e *ast.RegExpLiteral) {
	if !c.opts.LinearRegexOnly {
		return
	}
	if msg := linearProblem(e.Pattern, e.Flags); msg != "" {
		c.report(e.Idx, RuleRegex, msg)
	}
}

// linearProblem explains why a pattern is not guaranteed linear-time, or
// returns "".
func linearProblem(pattern, flags string) string {
	re2, err := parser.TransformRegExp(pattern, strings.Contains(flags, "s"), strings.Contains(flags, "u"))
	if err != nil {
		return "this regular expression needs the backtracking engine (backreferences and " +
			"lookaround like (?=, (?!, (?<= are not available at this security level); " +
			"rewrite it or test the parts separately"
	}
	if _, err := regexp.Compile(re2); err != nil {
		return "this regular expression is not accepted by the linear-time engine " +
			"(repeat counts above 1000 are not available); simplify it"
	}
	if nestedQuantifier(pattern) {
		return "this regular expression repeats a group that itself repeats, like (a+)+; " +
			"write the group once, like a+"
	}
	return ""
}

// nestedQuantifier reports a group that contains an unbounded quantifier
// and is itself followed by one, the shape of catastrophic backtracking.
func nestedQuantifier(p string) bool {
	var stack []bool // per open group: it contains a repeating quantifier
	closed := false  // the previous atom was a group that contains one
	for i := 0; i < len(p); i++ {
		ch, afterGroup := p[i], closed
		closed = false
		switch {
		case ch == '\\':
			i++
		case ch == '[':
			i = skipClass(p, i)
		case ch == '(':
			stack = append(stack, false)
		case ch == ')' && len(stack) > 0:
			closed = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		case ch == '*' || ch == '+' || ch == '{' && isRepeat(p[i:]):
			if afterGroup {
				return true
			}
			for k := range stack {
				stack[k] = true
			}
		}
	}
	return false
}

// skipClass returns the index of the ] that closes the class opened at i.
func skipClass(p string, i int) int {
	for i++; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case ']':
			return i
		}
	}
	return len(p)
}

// isRepeat reports whether s starts with an unbounded or large {n,m}.
func isRepeat(s string) bool {
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return false
	}
	body := s[1:end]
	for _, ch := range body {
		if (ch < '0' || ch > '9') && ch != ',' {
			return false
		}
	}
	return strings.Contains(body, ",")
}
