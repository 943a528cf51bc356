package agentscript

import (
	"errors"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// lineIndex maps byte offsets of the user's text to 1-based line and
// character column, counting line breaks the way goja does (LF, CRLF, CR).
type lineIndex struct {
	src    string
	starts []int
}

func newLineIndex(src string) *lineIndex {
	starts := []int{0}
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\n':
			starts = append(starts, i+1)
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			starts = append(starts, i+1)
		}
	}
	return &lineIndex{src: src, starts: starts}
}

// at returns the line and column of a byte offset, clamped to the text.
func (l *lineIndex) at(off int) (line, col int) {
	off = max(0, min(off, len(l.src)))
	n := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > off }) - 1
	return n + 1, utf8.RuneCountInString(l.src[l.starts[n]:off]) + 1
}

// offsetOf converts a goja index in the wrapped source to an offset in the
// user's text.
func offsetOf(idx file.Idx) int {
	return int(idx) - 1 - len(wrapPrefix)
}

// syntaxProblems converts a parse error to problems at the user's positions.
func syntaxProblems(err error, src string) Problems {
	var list parser.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		return Problems{{RuleSyntax, 1, 1, err.Error()}}
	}
	idx := newLineIndex(src)
	var r reporter
	for _, e := range list {
		msg := syntaxMessage(e.Message)
		if e.Position.Line > len(idx.starts) {
			// The parser stumbled on the wrapper's closing text.
			msg = endOfScript
		}
		line, col := userPosition(idx, e.Position.Line, e.Position.Column)
		r.add(Problem{RuleSyntax, line, col, msg}) // duplicates are dropped
	}
	return r.result()
}

// userPosition maps a (line, byte column) of the wrapped source to the
// user's text: only line 1 carries the prefix, and a position in the suffix
// is reported at the end of the script.
func userPosition(idx *lineIndex, line, col int) (int, int) {
	if line > len(idx.starts) {
		return idx.at(len(idx.src))
	}
	start := idx.starts[max(line, 1)-1]
	off := start + col - 1
	if line <= 1 {
		off -= len(wrapPrefix)
	}
	return idx.at(off)
}

const endOfScript = "the script ends before a bracket, brace, string, template or comment is closed"

func syntaxMessage(msg string) string {
	if strings.Contains(msg, "end of input") {
		return endOfScript
	}
	return msg
}
