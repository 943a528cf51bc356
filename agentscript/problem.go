package agentscript

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one reason a script was refused. Line and Column are 1-based and
// count characters (not bytes) of the script as the user wrote it.
type Problem struct {
	Rule    string
	Line    int
	Column  int
	Message string
}

// String formats the problem as "line:col rule message".
func (p Problem) String() string {
	return fmt.Sprintf("%d:%d %s %s", p.Line, p.Column, p.Rule, p.Message)
}

// Problems lists every problem found in a script; it is the error Check
// returns when it refuses a script.
type Problems []Problem

// Error joins the problems, one "line:col rule message" per line.
func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, pr := range p {
		lines[i] = pr.String()
	}
	return strings.Join(lines, "\n")
}

// Rules returns the distinct rule ids in the list, in order of first appearance.
func (p Problems) Rules() []string {
	seen := map[string]bool{}
	var out []string
	for _, pr := range p {
		if !seen[pr.Rule] {
			seen[pr.Rule] = true
			out = append(out, pr.Rule)
		}
	}
	return out
}

// sortByPosition orders problems by line, then column, keeping the order of
// equal positions so the report stays deterministic.
func (p Problems) sortByPosition() {
	sort.SliceStable(p, func(i, j int) bool {
		if p[i].Line != p[j].Line {
			return p[i].Line < p[j].Line
		}
		return p[i].Column < p[j].Column
	})
}

// maxProblems caps the report: a hostile script can otherwise produce one
// problem per token and turn the refusal itself into a large response.
const maxProblems = 200

// reporter collects problems up to maxProblems.
type reporter struct {
	list    Problems
	seen    map[Problem]bool
	dropped int
}

func (r *reporter) add(p Problem) {
	if r.seen[p] {
		return // one node can be checked from two places
	}
	if r.seen == nil {
		r.seen = map[Problem]bool{}
	}
	r.seen[p] = true
	if len(r.list) >= maxProblems {
		r.dropped++
		return
	}
	r.list = append(r.list, p)
}

// result returns the collected problems (sorted), or nil when there are none.
func (r *reporter) result() Problems {
	if len(r.list) == 0 {
		return nil
	}
	r.list.sortByPosition()
	if r.dropped > 0 {
		last := r.list[len(r.list)-1]
		r.list = append(r.list, Problem{
			Rule: RuleTooMany, Line: last.Line, Column: last.Column,
			Message: fmt.Sprintf("%d more problems not listed; fix the ones above first", r.dropped),
		})
	}
	return r.list
}
