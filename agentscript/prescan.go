package agentscript

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// prescan checks the raw text against the budgets before goja's recursive
// parser sees it. It reports every problem it finds (up to the cap).
func prescan(src string, o Options, r *reporter) {
	if len(src) > o.MaxSourceBytes {
		// Nothing else is scanned: refusing an over-size script must stay cheap.
		r.add(Problem{RuleSize, 1, 1, fmt.Sprintf(
			"script is %d bytes; the limit is %d", len(src), o.MaxSourceBytes)})
		return
	}
	if !utf8.ValidString(src) {
		r.add(Problem{RuleEncoding, 1, 1, "script is not valid UTF-8 text"})
		return
	}
	scanChars(src, o, r)
	s := newTextScanner(src, o, r)
	s.run()
}

// scanChars checks line count, line lengths and forbidden characters.
func scanChars(src string, o Options, r *reporter) {
	line, col := 1, 0
	for i, ch := range src {
		col++
		if ch == '\n' || (ch == '\r' && (i+1 >= len(src) || src[i+1] != '\n')) {
			checkLineLength(line, col-1, o, r)
			line, col = line+1, 0
			continue
		}
		if invisible(ch) {
			r.add(Problem{RuleInvisible, line, col, fmt.Sprintf(
				"character U+%04X is invisible or reorders text; remove it or write it as an escape", ch)})
		}
	}
	checkLineLength(line, col, o, r)
	if line > o.MaxLines {
		r.add(Problem{RuleLines, line, 1, fmt.Sprintf(
			"script has %d lines; the limit is %d", line, o.MaxLines)})
	}
}

func checkLineLength(line, length int, o Options, r *reporter) {
	if length > o.MaxLineLength {
		r.add(Problem{RuleLineLength, line, o.MaxLineLength + 1, fmt.Sprintf(
			"line is %d characters; the limit is %d", length, o.MaxLineLength)})
	}
}

// invisible reports characters that hide or reorder code when displayed
// (Trojan Source), and control characters other than tab, LF and CR.
func invisible(ch rune) bool {
	switch {
	case ch == '\t', ch == '\n', ch == '\r':
		return false
	case ch < 0x20, ch >= 0x7f && ch < 0xa0:
		return true
	case ch == 0x2028, ch == 0x2029:
		// Line terminators to the parser but not to most editors: a line
		// shown as a comment can hold code.
		return true
	}
	return unicode.Is(unicode.Cf, ch)
}

// textScanner measures bracket nesting and string literal lengths on the raw
// text. It is a small approximation of the JavaScript lexer: it knows
// comments, strings, templates and guesses regex literals from the previous
// token. It errs towards counting too deep: brackets inside strings,
// comments, templates and regexes count too (see litOpen). A crafted script
// that fools the regex guess can still hide nesting from it; goja's parser
// then sees at most MaxSourceBytes of nesting, which it survives (about 1 s
// and 128 MB of stack for 100 KiB of parentheses on the reference machine).
type textScanner struct {
	src   string
	o     Options
	r     *reporter
	i     int
	line  int
	col   int
	stack []byte // open brackets; '$' marks a template substitution
	max   int
	// prev is the last significant code byte, and prevWord the identifier
	// or keyword that ended there: together they decide regex vs division.
	prev     byte
	prevWord string
	reported bool
}

func newTextScanner(src string, o Options, r *reporter) *textScanner {
	return &textScanner{src: src, o: o, r: r, line: 1, col: 1}
}

func (s *textScanner) run() {
	for s.i < len(s.src) {
		s.code()
	}
}

// advance moves past one byte, keeping line and column (in characters).
func (s *textScanner) advance() {
	c := s.src[s.i]
	s.i++
	switch {
	case c == '\n', c == '\r' && (s.i >= len(s.src) || s.src[s.i] != '\n'):
		s.line, s.col = s.line+1, 1
	case c < 0x80 || c >= 0xc0:
		s.col++ // count a character at its first byte only
	}
}

func (s *textScanner) peek(k int) byte {
	if s.i+k < len(s.src) {
		return s.src[s.i+k]
	}
	return 0
}

// open pushes a bracket and reports the first time the budget is exceeded.
func (s *textScanner) open(b byte) {
	s.stack = append(s.stack, b)
	if len(s.stack) > s.max {
		s.max = len(s.stack)
	}
	if len(s.stack) > s.o.MaxNesting && !s.reported {
		s.reported = true
		s.r.add(Problem{RuleNesting, s.line, s.col, fmt.Sprintf(
			"brackets nest deeper than %d; split the expression into named steps", s.o.MaxNesting)})
	}
}

// closeCode pops the innermost code bracket, discarding what literals
// inside it left open.
func (s *textScanner) closeCode() {
	for len(s.stack) > 0 && s.stack[len(s.stack)-1] == litOpen {
		s.stack = s.stack[:len(s.stack)-1]
	}
	if len(s.stack) > 0 && s.stack[len(s.stack)-1] != '$' {
		s.stack = s.stack[:len(s.stack)-1]
	}
}

// litOpen marks a bracket opened inside a string, comment, template text or
// regex: it counts towards the depth, but only a closer in the same literal
// or the enclosing code closer removes it, so data cannot hide code nesting.
const litOpen = 'L'

// bracket counts one byte of a literal's content; floor is the depth when
// the literal began.
func (s *textScanner) bracket(c byte, floor int) {
	switch c {
	case '(', '[', '{':
		s.open(litOpen)
	case ')', ']', '}':
		if len(s.stack) > floor {
			s.stack = s.stack[:len(s.stack)-1]
		}
	}
}

// code scans one token of code.
func (s *textScanner) code() {
	c := s.src[s.i]
	switch {
	case c == '/' && s.peek(1) == '/':
		s.lineComment()
	case c == '/' && s.peek(1) == '*':
		s.blockComment()
	case c == '\'' || c == '"':
		s.str(c)
	case c == '`':
		s.advance()
		s.template()
	case c == '/' && s.regexAllowed():
		s.regex()
	case c == '}' && s.substitutionEnds():
		s.advance()
		s.template()
	case c == '(' || c == '[' || c == '{':
		s.open(c)
		s.token(c)
	case c == ')' || c == ']' || c == '}':
		s.closeCode()
		s.token(c)
	case isIdentByte(c):
		s.word()
	case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		s.advance()
	default:
		s.token(c)
	}
}

// substitutionEnds pops the template substitution a `}` closes, with what
// literals inside it left open.
func (s *textScanner) substitutionEnds() bool {
	n := len(s.stack)
	for n > 0 && s.stack[n-1] == litOpen {
		n--
	}
	if n == 0 || s.stack[n-1] != '$' {
		return false
	}
	s.stack = s.stack[:n-1]
	return true
}

// token records a punctuator as the previous significant byte.
func (s *textScanner) token(c byte) {
	s.prev, s.prevWord = c, ""
	s.advance()
}

func (s *textScanner) word() {
	start := s.i
	for s.i < len(s.src) && isIdentByte(s.src[s.i]) {
		s.advance()
	}
	s.prev, s.prevWord = 'a', s.src[start:s.i]
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// regexKeywords are words after which a slash starts a regex literal.
var regexKeywords = map[string]bool{
	"return": true, "typeof": true, "case": true, "do": true, "else": true,
	"in": true, "of": true, "new": true, "void": true, "delete": true,
	"throw": true, "instanceof": true, "await": true, "yield": true,
}

// regexAllowed guesses whether a slash starts a regex literal, the way most
// JavaScript highlighters do: after an operator, an opening bracket or a
// keyword it does; after a value it is a division.
func (s *textScanner) regexAllowed() bool {
	switch s.prev {
	case 0, '(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';',
		'+', '-', '*', '%', '<', '>', '~', '^':
		return true
	case 'a':
		return regexKeywords[s.prevWord]
	}
	return false
}

func (s *textScanner) lineComment() {
	floor := len(s.stack)
	for s.i < len(s.src) && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
		s.bracket(s.src[s.i], floor)
		s.advance()
	}
}

func (s *textScanner) blockComment() {
	floor := len(s.stack)
	s.advance()
	s.advance()
	for s.i < len(s.src) && !(s.src[s.i] == '*' && s.peek(1) == '/') {
		s.bracket(s.src[s.i], floor)
		s.advance()
	}
	if s.i < len(s.src) {
		s.advance()
		s.advance()
	}
}

// str scans a quoted string; a line break ends it (the parser will report it).
func (s *textScanner) str(q byte) {
	line, col, floor := s.line, s.col, len(s.stack)
	s.advance()
	start := s.i
	for s.i < len(s.src) && s.src[s.i] != q && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
		if s.src[s.i] == '\\' {
			s.advance()
			if s.i >= len(s.src) {
				break
			}
		}
		s.bracket(s.src[s.i], floor)
		s.advance()
	}
	s.checkLiteral(line, col, s.i-start)
	if s.i < len(s.src) && s.src[s.i] == q {
		s.advance()
	}
	s.prev, s.prevWord = 'a', ""
}

// template scans template text after a backtick or a substitution's closing
// brace, up to the closing backtick or the next `${`.
func (s *textScanner) template() {
	line, col, start, floor := s.line, s.col, s.i, len(s.stack)
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\\':
			s.advance()
		case c == '`':
			s.checkLiteral(line, col, s.i-start)
			s.advance()
			s.prev, s.prevWord = 'a', ""
			return
		case c == '$' && s.peek(1) == '{':
			s.checkLiteral(line, col, s.i-start)
			s.advance()
			s.advance()
			s.open('$')
			s.prev, s.prevWord = '{', ""
			return
		default:
			s.bracket(c, floor)
		}
		if s.i < len(s.src) {
			s.advance()
		}
	}
	s.checkLiteral(line, col, s.i-start)
}

// regex scans a regex literal up to its closing slash on the same line. If
// there is none, the slash was a division after all.
func (s *textScanner) regex() {
	floor := len(s.stack)
	s.advance()
	inClass := false
	for s.i < len(s.src) && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
		c := s.src[s.i]
		switch {
		case c == '\\':
			s.advance()
		case c == '[':
			inClass = true
		case c == ']':
			inClass = false
		case c == '/' && !inClass:
			s.advance()
			s.prev, s.prevWord = 'a', ""
			return
		}
		if s.i < len(s.src) {
			s.bracket(s.src[s.i], floor)
			s.advance()
		}
	}
	s.prev, s.prevWord = 'a', ""
}

func (s *textScanner) checkLiteral(line, col, n int) {
	if n > s.o.MaxStringLiteral {
		s.r.add(Problem{RuleStringLength, line, col, fmt.Sprintf(
			"string literal is %d bytes; the limit is %d; pass large data as a global or tool result",
			n, s.o.MaxStringLiteral)})
	}
}
