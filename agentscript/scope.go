package agentscript

import (
	"fmt"
	"strings"

	"github.com/dop251/goja/file"
)

// scope is one block or function scope. Declarations are recorded while the
// tree is walked and references resolved after the walk, so hoisting (a use
// before its let/const/function/var) resolves like the engine does.
type scope struct {
	parent *scope
	fn     bool // function scope: var and function declarations land here
	names  map[string]declKind
}

// declKind is how a name was declared; goja's compiler refuses some
// combinations in one scope, and they are reported here, before any worker.
type declKind uint8

const (
	kindImplicit declKind = iota + 1 // arguments, a function expression's own name
	kindVar
	kindFunction
	kindParam
	kindLexical // let, const, class
	kindCatch
)

// declare records name and reports whether it clashes with an earlier
// declaration the way goja's compiler would refuse.
func (s *scope) declare(name string, kind declKind) (clash bool) {
	if s.names == nil {
		s.names = map[string]declKind{}
	}
	prev, seen := s.names[name]
	if !seen || prev == kindImplicit {
		s.names[name] = kind
		return false
	}
	switch {
	case kind == kindLexical || prev == kindLexical:
		return true
	case kind == kindParam && prev == kindParam:
		return true
	case kind == kindCatch || prev == kindCatch:
		return true
	}
	if kind == kindFunction {
		s.names[name] = kind
	}
	return false
}

// declareVar records a var in the function scope; it clashes with a
// lexical declaration (or catch parameter) in any scope it hoists through.
func (s *scope) declareVar(name string) (clash bool) {
	for sc := s; ; sc = sc.parent {
		if k := sc.names[name]; k == kindLexical || k == kindCatch {
			return true
		}
		if sc.fn || sc.parent == nil {
			return sc.declare(name, kindVar)
		}
	}
}

// function returns the nearest function scope.
func (s *scope) function() *scope {
	for s.parent != nil && !s.fn {
		s = s.parent
	}
	return s
}

func (s *scope) resolves(name string) bool {
	for ; s != nil; s = s.parent {
		if _, ok := s.names[name]; ok {
			return true
		}
	}
	return false
}

// ref is a use of a free-looking identifier, resolved after the walk.
type ref struct {
	name  string
	idx   file.Idx
	scope *scope
	// ctor is set for `new name(...)` of a name outside newAllowed: it must
	// then be a class or function the script declares itself.
	ctor bool
}

func (c *checker) push(fn bool) { c.scope = &scope{parent: c.scope, fn: fn} }
func (c *checker) pop()         { c.scope = c.scope.parent }

// resolve reports every reference that is neither declared in an enclosing
// scope nor an allowed global.
func (c *checker) resolve() {
	for _, r := range c.refs {
		if r.scope.resolves(r.name) {
			continue
		}
		c.unresolved(r)
	}
}

func (c *checker) unresolved(r ref) {
	switch {
	case r.ctor:
		c.report(r.idx, RuleNew, fmt.Sprintf("new %s: only Error types, Date, Array, Object, "+
			"Map, Set, Promise and classes the script declares can be constructed", r.name))
	case c.allowed[r.name]:
	case isCollection(r.name):
		c.report(r.idx, RuleCollection, r.name+" is not available at this security level; "+
			"use arrays and plain objects")
	case r.name == regexpGlobal:
		c.report(r.idx, RuleRegexCtor, "RegExp is not available at this security level "+
			"(it compiles a runtime string); use a regex literal")
	default:
		c.report(r.idx, RuleGlobal, fmt.Sprintf("%s is not defined; declare it with const or let, "+
			"or use one of the available globals: %s", r.name, strings.Join(c.globalNames, ", ")))
	}
}

func isCollection(name string) bool {
	for _, n := range collectionGlobals {
		if n == name {
			return true
		}
	}
	return false
}
