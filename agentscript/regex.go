package agentscript

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/dlclark/regexp2"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// regexLiteral checks a regex literal when only linear-time patterns are
// allowed. goja runs a pattern on Go's RE2 engine (linear) when it can
// translate it, and otherwise on a backtracking engine that Interrupt cannot
// stop; the translation below is the one goja itself uses.
func (c *checker) regexLiteral(e *ast.RegExpLiteral) {
	if msg := regexSyntax(e.Pattern, e.Flags); msg != "" {
		c.report(e.Idx, RuleSyntax, msg)
		return
	}
	if !c.opts.LinearRegexOnly {
		return
	}
	if msg := linearProblem(e.Pattern, e.Flags); msg != "" {
		c.report(e.Idx, RuleRegex, msg)
	}
}

// regexSyntax mirrors the checks goja makes when it compiles a regex
// literal, so an invalid one is refused here with its position instead of
// failing in the worker. Patterns only the backtracking engine accepts are
// left to it.
func regexSyntax(pattern, flags string) string {
	for i, f := range flags {
		if !strings.ContainsRune("gimsuy", f) || strings.ContainsRune(flags[i+1:], f) {
			return "invalid regular expression flags '" + flags + "'"
		}
	}
	re2, err := parser.TransformRegExp(pattern, strings.Contains(flags, "s"), strings.Contains(flags, "u"))
	var incompatible parser.RegexpErrorIncompatible
	switch {
	case errors.As(err, &incompatible):
		return backtrackingSyntax(pattern, flags)
	case err != nil:
		return "invalid regular expression: " + err.Error()
	}
	if _, err := regexp.Compile(re2); err != nil && !isRepeatSize(err) {
		return "invalid regular expression: " + err.Error()
	}
	return ""
}

// backtrackingSyntax compiles a pattern the way goja does when RE2 cannot
// run it (only compiled, never matched here).
func backtrackingSyntax(pattern, flags string) string {
	var opts regexp2.RegexOptions = regexp2.ECMAScript
	for _, f := range flags {
		switch f {
		case 'm':
			opts |= regexp2.Multiline
		case 's':
			opts |= regexp2.Singleline
		case 'i':
			opts |= regexp2.IgnoreCase
		case 'u':
			opts |= regexp2.Unicode
		}
	}
	if _, err := regexp2.Compile(pattern, opts); err != nil {
		return "invalid regular expression: " + err.Error()
	}
	return ""
}

func isRepeatSize(err error) bool {
	var se *syntax.Error
	return errors.As(err, &se) && se.Code == syntax.ErrInvalidRepeatSize
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
