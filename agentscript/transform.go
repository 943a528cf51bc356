package agentscript

import (
	"sort"
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
)

// edit inserts text before the byte at off of the wrapped source. Edits never
// contain line breaks, so line numbers survive the transform.
type edit struct {
	off  int
	text string
}

// Inserted text.
const (
	tickStmt      = TickName + "();"
	tickExprOpen  = "(" + TickName + "(), "
	tickExprClose = ")"
	blockOpen     = "{" + tickStmt
	blockClose    = "}"
	returnPrefix  = "return "
)

// insert queues text at a goja index. Edits at the same offset keep the
// order they were queued in: the walk queues an opener before visiting a
// node's children and a closer after, so nesting comes out right.
func (c *checker) insert(idx file.Idx, text string) {
	c.edits = append(c.edits, edit{off: int(idx) - 1, text: text})
}

func applyEdits(src string, edits []edit) string {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].off < edits[j].off })
	var b strings.Builder
	n := len(src)
	for _, e := range edits {
		n += len(e.text)
	}
	b.Grow(n)
	last := 0
	for _, e := range edits {
		b.WriteString(src[last:e.off])
		b.WriteString(e.text)
		last = e.off
	}
	b.WriteString(src[last:])
	return b.String()
}

// goja's nodes do not record grouping parentheses, so a node's Idx0/Idx1 can
// sit inside `(`...`)` that belong to it, and an update expression written
// `i ++` reports an end inside its operator. The helpers below find true
// statement boundaries by lexing the few characters between known positions:
// only whitespace, comments and punctuation can be there.

// end returns a node's end, corrected for postfix update expressions.
func (c *checker) end(n ast.Node) file.Idx {
	e := n.Idx1()
	if fixed, ok := c.fixEnd[e]; ok {
		return fixed
	}
	return e
}

// skipTrivia returns the offset after whitespace and comments from off.
func (c *checker) skipTrivia(off int) int {
	s := c.wrapped
	for off < len(s) {
		switch {
		case s[off] == ' ' || s[off] == '\t' || s[off] == '\n' || s[off] == '\r':
			off++
		case strings.HasPrefix(s[off:], "//"):
			for off < len(s) && s[off] != '\n' && s[off] != '\r' {
				off++
			}
		case strings.HasPrefix(s[off:], "/*"):
			k := strings.Index(s[off+2:], "*/")
			if k < 0 {
				return len(s)
			}
			off += k + 4
		default:
			return off
		}
	}
	return off
}

// stmtStart returns where a statement truly starts: the first token after
// the last `)` or `;` between from (a known position before it) and its
// reported start. Between them there are only closers and semicolons of
// what came before, and the statement's own opening parentheses or keyword.
func (c *checker) stmtStart(from file.Idx, s ast.Statement) file.Idx {
	off, stop := int(from)-1, int(reportedStart(s))-1
	start := stop
	for {
		off = c.skipTrivia(off)
		if off >= stop {
			return file.Idx(start + 1)
		}
		switch ch := c.wrapped[off]; {
		case ch == ')' || ch == ';':
			start = stop
		case start == stop:
			start = off
		}
		off++
	}
}

// reportedStart is a position at or after a statement's first token. goja
// leaves IfStatement.If unset, so an if is found from its condition.
func reportedStart(s ast.Statement) file.Idx {
	if st, ok := s.(*ast.IfStatement); ok {
		return st.Test.Idx0()
	}
	return s.Idx0()
}

// stmtEnd returns where a statement truly ends: after the closing
// parentheses its reported end leaves out and its optional semicolon.
// Statements never sit inside parentheses, so every `)` that follows belongs
// to the statement.
func (c *checker) stmtEnd(n ast.Node) file.Idx {
	end := int(c.end(n)) - 1
	if _, ok := n.(*ast.EmptyStatement); ok {
		return file.Idx(end + 1)
	}
	for {
		off := c.skipTrivia(end)
		if off >= len(c.wrapped) || c.wrapped[off] != ')' {
			break
		}
		end = off + 1
	}
	if off := c.skipTrivia(end); off < len(c.wrapped) && c.wrapped[off] == ';' {
		end = off + 1
	}
	return file.Idx(end + 1)
}

// postfixEnd records the true end of `x ++`: the operator may follow the
// operand after spaces or closing parentheses.
func (c *checker) postfixEnd(u *ast.UnaryExpression) {
	off := int(c.end(u.Operand)) - 1
	for {
		off = c.skipTrivia(off)
		if off < len(c.wrapped) && c.wrapped[off] == ')' {
			off++
			continue
		}
		break
	}
	if off+2 <= len(c.wrapped) {
		c.fixEnd[u.Idx1()] = file.Idx(off + 2 + 1)
	}
}

// loopBody queues the tick at the start of a loop body; headerEnd is a known
// position after the loop's condition (or its `do` keyword).
func (c *checker) loopBody(body ast.Statement, headerEnd file.Idx) {
	if b, ok := body.(*ast.BlockStatement); ok {
		c.insert(b.LeftBrace+1, tickStmt)
		c.block(b)
		return
	}
	c.insert(c.stmtStart(headerEnd, body), blockOpen)
	c.push(false)
	c.stmt(body)
	c.pop()
	c.insert(c.stmtEnd(body), blockClose)
}

// exprBody queues the tick for an expression-bodied arrow: x => e becomes
// x => (tick(), e). Parentheses around e stay balanced because both inserts
// sit inside them (see the package tests).
func (c *checker) exprBody(e ast.Expression) {
	c.insert(e.Idx0(), tickExprOpen)
	c.expr(e)
	c.insert(c.end(e), tickExprClose)
}
