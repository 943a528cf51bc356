package agentscript

import (
	"fmt"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/token"
)

// checker walks the tree once: it reports problems, records declarations and
// references for scope resolution, and queues the source edits.
type checker struct {
	src, wrapped string
	opts         Options
	r            *reporter
	lines        *lineIndex

	scope  *scope
	refs   []ref
	edits  []edit
	fixEnd map[file.Idx]file.Idx

	exprDepth    int  // nesting of the expression being walked
	deepReported bool // the depth problem is reported once

	allowed     map[string]bool
	globalNames []string
	tools       []string
	toolSeen    map[string]bool
}

func newChecker(src, wrapped string, opts Options, r *reporter) *checker {
	c := &checker{
		src: src, wrapped: wrapped, opts: opts, r: r,
		lines:    newLineIndex(src),
		fixEnd:   map[file.Idx]file.Idx{},
		allowed:  map[string]bool{},
		toolSeen: map[string]bool{},
	}
	c.globalNames = GlobalsFor(opts)
	for _, g := range c.globalNames {
		c.allowed[g] = true
	}
	for _, g := range opts.Globals {
		c.allowed[g] = true
	}
	c.globalNames = append(c.globalNames, opts.Globals...)
	return c
}

// maxExprDepth bounds expression nesting: operator chains, nested calls and
// literals. Ordinary agent code stays far below it.
const maxExprDepth = 500

// report adds a problem at a goja index of the wrapped source.
func (c *checker) report(idx file.Idx, rule, msg string) {
	line, col := c.lines.at(offsetOf(idx))
	c.r.add(Problem{Rule: rule, Line: line, Column: col, Message: msg})
}

// program checks that the tree is exactly the wrapper around the user's
// statements (the user's text could close it early), then walks the body.
func (c *checker) program(p *ast.Program) {
	body := c.wrapperBody(p)
	if body == nil {
		c.report(file.Idx(len(wrapPrefix)+1), RuleSyntax,
			"the script closes more braces or parentheses than it opens")
		return
	}
	c.push(true)
	c.statements(body.List)
	c.implicitReturn(body)
	c.pop()
}

func (c *checker) wrapperBody(p *ast.Program) *ast.BlockStatement {
	if len(p.Body) != 1 {
		return nil
	}
	es, ok := p.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return nil
	}
	call, ok := es.Expression.(*ast.CallExpression)
	if !ok || len(call.ArgumentList) != 0 {
		return nil
	}
	fn, ok := call.Callee.(*ast.ArrowFunctionLiteral)
	if !ok || !fn.Async || len(fn.ParameterList.List) != 0 {
		return nil
	}
	body, ok := fn.Body.(*ast.BlockStatement)
	wantOpen := file.Idx(len(wrapPrefix))
	wantClose := file.Idx(len(c.wrapped) - len(wrapSuffix) + 2)
	if !ok || body.LeftBrace != wantOpen || body.RightBrace != wantClose {
		return nil
	}
	return body
}

// implicitReturn makes the last expression statement the script's value.
func (c *checker) implicitReturn(body *ast.BlockStatement) {
	n := len(body.List)
	if n == 0 {
		return
	}
	last, ok := body.List[n-1].(*ast.ExpressionStatement)
	if !ok {
		return
	}
	from := body.LeftBrace + 1
	if n > 1 {
		from = c.end(body.List[n-2])
	}
	// Queued after the walk, so sort it before any edit at the same offset
	// (a tick opening the expression itself).
	e := edit{off: int(c.stmtStart(from, last)) - 1, text: returnPrefix}
	c.edits = append([]edit{e}, c.edits...)
}

func (c *checker) statements(list []ast.Statement) {
	for _, s := range list {
		c.stmt(s)
	}
}

func (c *checker) block(b *ast.BlockStatement) {
	c.push(false)
	c.statements(b.List)
	c.pop()
}

// stmt walks one statement.
func (c *checker) stmt(s ast.Statement) {
	switch s := s.(type) {
	case *ast.BlockStatement:
		c.block(s)
	case *ast.ExpressionStatement:
		c.expr(s.Expression)
	case *ast.VariableStatement:
		c.bindings(s.List, declVar)
	case *ast.LexicalDeclaration:
		c.bindings(s.List, declLet)
		c.constInitialized(s)
	case *ast.IfStatement:
		c.expr(s.Test)
		c.stmt(s.Consequent)
		if s.Alternate != nil {
			c.stmt(s.Alternate)
		}
	case *ast.ReturnStatement:
		c.optExpr(s.Argument)
	case *ast.ThrowStatement:
		c.expr(s.Argument)
	case *ast.TryStatement:
		c.try(s)
	case *ast.SwitchStatement:
		c.switchStmt(s)
	case *ast.LabelledStatement:
		c.stmt(s.Statement)
	case *ast.BranchStatement, *ast.EmptyStatement:
	case *ast.FunctionDeclaration:
		c.bind(s.Function.Name, declFunction)
		c.function(s.Function, "function declarations")
	case *ast.ClassDeclaration:
		c.bind(s.Class.Name, declLet)
		c.class(s.Class)
	default:
		c.loopOrRare(s)
	}
}

// loopOrRare walks loops and the statements refused at every level.
func (c *checker) loopOrRare(s ast.Statement) {
	switch s := s.(type) {
	case *ast.ForStatement:
		c.forStmt(s)
	case *ast.ForOfStatement:
		c.forEach(s.Into, s.Source, s.Body)
	case *ast.ForInStatement:
		if !c.opts.AllowForIn {
			c.report(s.For, RuleForIn, "for...in is not available at this security level; "+
				"use for (const k of Object.keys(obj))")
		}
		c.forEach(s.Into, s.Source, s.Body)
	case *ast.WhileStatement:
		c.needWhile(s.While, "while")
		c.expr(s.Test)
		c.loopBody(s.Body, c.end(s.Test))
	case *ast.DoWhileStatement:
		c.needWhile(s.Do, "do...while")
		c.loopBody(s.Body, s.Do+2)
		c.expr(s.Test)
	case *ast.WithStatement:
		c.report(s.With, RuleWith, "with is not available; name the object explicitly")
		c.expr(s.Object)
		c.stmt(s.Body)
	case *ast.DebuggerStatement:
		c.report(s.Debugger, RuleDebugger, "debugger statements are not allowed; remove it")
	default:
		c.report(s.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported", s))
	}
}

func (c *checker) needWhile(at file.Idx, what string) {
	if !c.opts.AllowWhile {
		c.report(at, RuleWhile, what+" is not available at this security level; "+
			"use for (let i = 0; i < n; i++) or for...of")
	}
}

func (c *checker) forStmt(s *ast.ForStatement) {
	c.push(false)
	header := s.For + 3 // after "for"
	switch init := s.Initializer.(type) {
	case *ast.ForLoopInitializerExpression:
		c.expr(init.Expression)
		header = c.end(init)
	case *ast.ForLoopInitializerVarDeclList:
		c.bindings(init.List, declVar)
		header = c.end(init)
	case *ast.ForLoopInitializerLexicalDecl:
		c.bindings(init.LexicalDeclaration.List, declLet)
		header = c.end(init)
	}
	for _, e := range []ast.Expression{s.Test, s.Update} {
		if e != nil {
			c.expr(e)
			header = c.end(e)
		}
	}
	c.loopBody(s.Body, header)
	c.pop()
}

// forEach walks for...of and for...in.
func (c *checker) forEach(into ast.ForInto, source ast.Expression, body ast.Statement) {
	c.push(false)
	switch into := into.(type) {
	case *ast.ForIntoVar:
		c.bindings([]*ast.Binding{into.Binding}, declVar)
	case *ast.ForDeclaration:
		c.target(into.Target, declLet)
	case *ast.ForIntoExpression:
		c.target(into.Expression, assign)
	}
	c.expr(source)
	c.loopBody(body, c.end(source))
	c.pop()
}

func (c *checker) try(s *ast.TryStatement) {
	c.block(s.Body)
	if s.Catch != nil {
		// The parameter and the body share one scope: goja refuses
		// redeclaring the parameter in the body.
		c.push(false)
		if s.Catch.Parameter != nil {
			c.target(s.Catch.Parameter, declCatch)
		}
		c.statements(s.Catch.Body.List)
		c.pop()
	}
	if s.Finally != nil {
		c.block(s.Finally)
	}
}

func (c *checker) switchStmt(s *ast.SwitchStatement) {
	c.expr(s.Discriminant)
	c.push(false)
	for _, cs := range s.Body {
		c.optExpr(cs.Test)
		c.statements(cs.Consequent)
	}
	c.pop()
}

// declaration kinds for target.
const (
	assign       = iota // an assignment target: identifiers are references
	declVar             // var: lands in the function scope
	declLet             // let, const, class: the block scope
	declParam           // a function or arrow parameter
	declCatch           // a catch parameter
	declFunction        // a function declaration
)

// declKinds maps a target kind to the scope's record of it.
var declKinds = map[int]declKind{
	declLet: kindLexical, declParam: kindParam, declCatch: kindCatch, declFunction: kindFunction,
}

// constInitialized reports const without an initializer, which goja's
// parser accepts and its compiler refuses.
func (c *checker) constInitialized(d *ast.LexicalDeclaration) {
	if d.Token != token.CONST {
		return
	}
	for _, b := range d.List {
		if b.Initializer == nil {
			c.report(b.Target.Idx0(), RuleSyntax, "missing initializer in const declaration")
		}
	}
}

func (c *checker) bindings(list []*ast.Binding, kind int) {
	for _, b := range list {
		c.target(b.Target, kind)
		c.optExpr(b.Initializer)
	}
}

// target walks a binding or assignment target (identifier or pattern).
func (c *checker) target(t ast.Expression, kind int) {
	switch t := t.(type) {
	case *ast.Identifier:
		c.bind(t, kind)
	case *ast.ObjectPattern:
		for _, p := range t.Properties {
			c.patternProperty(p, kind)
		}
		c.optTarget(t.Rest, kind)
	case *ast.ArrayPattern:
		for _, e := range t.Elements {
			c.optTarget(e, kind)
		}
		c.optTarget(t.Rest, kind)
	case *ast.AssignExpression:
		// A default value: {a = 1} or [a = 1].
		c.target(t.Left, kind)
		c.expr(t.Right)
	case *ast.Binding:
		c.target(t.Target, kind)
		c.optExpr(t.Initializer)
	default:
		if kind == assign {
			c.expr(t)
			return
		}
		c.report(t.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported as a binding", t))
	}
}

func (c *checker) optTarget(t ast.Expression, kind int) {
	if t != nil {
		c.target(t, kind)
	}
}

func (c *checker) patternProperty(p ast.Property, kind int) {
	switch p := p.(type) {
	case *ast.PropertyShort:
		c.bind(&p.Name, kind)
		c.optExpr(p.Initializer)
	case *ast.PropertyKeyed:
		c.key(p.Key, p.Computed)
		c.target(p.Value, kind)
	case *ast.SpreadElement:
		c.target(p.Expression, kind)
	default:
		c.report(p.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported in a pattern", p))
	}
}

// bind declares an identifier, or records it as a reference for assignments.
func (c *checker) bind(id *ast.Identifier, kind int) {
	if !c.identifier(id) {
		return
	}
	name := id.Name.String()
	clash := false
	switch kind {
	case assign:
		c.use(id, false)
		return
	case declVar:
		clash = c.scope.declareVar(name)
	case declFunction:
		clash = c.scope.declare(name, kindFunction)
		if !c.scope.fn && !clash {
			// Annex B: a function declared in a block is also visible
			// in the enclosing function.
			c.scope.function().declare(name, kindImplicit)
		}
	default:
		clash = c.scope.declare(name, declKinds[kind])
	}
	switch {
	case clash:
		c.report(id.Idx, RuleSyntax, fmt.Sprintf("identifier '%s' has already been declared", name))
	case name == toolFunc:
		c.report(id.Idx, RuleToolValue, "callTool cannot be redeclared")
	case name == "let" && kind != declVar:
		c.report(id.Idx, RuleSyntax, "let cannot be the name of a declaration")
	}
}

// use records a reference to resolve after the walk.
func (c *checker) use(id *ast.Identifier, ctor bool) {
	name := id.Name.String()
	if name == toolFunc {
		c.report(id.Idx, RuleToolValue, "callTool can only be called directly: "+
			"await callTool('name', args)")
		return
	}
	c.refs = append(c.refs, ref{name: name, idx: id.Idx, scope: c.scope, ctor: ctor})
}

// identifier checks a name in any identifier position and reports whether
// it is fine to go on with it.
func (c *checker) identifier(id *ast.Identifier) bool {
	name := id.Name.String()
	off := int(id.Idx) - 1
	if off < 0 || off+len(name) > len(c.wrapped) || c.wrapped[off:off+len(name)] != name || !isASCII(name) {
		c.report(id.Idx, RuleIdentifier, "write identifiers in plain ASCII letters, digits, _ and $, "+
			"without \\u escapes")
		return false
	}
	if b, ok := bannedIdents[name]; ok {
		c.report(id.Idx, b.rule, b.msg)
		return false
	}
	return c.propertyName(id.Idx, name)
}

// propertyName checks a name used as a member, key or identifier.
func (c *checker) propertyName(at file.Idx, name string) bool {
	switch {
	case bannedProps[name]:
		c.report(at, RulePrototype, fmt.Sprintf("%s is not accessible; it leads to prototypes "+
			"and the Function constructor (for own-property checks use Object.hasOwn(obj, key))", name))
	case reflectionProps[name]:
		c.report(at, RuleReflection, fmt.Sprintf("%s is not available; use Object.keys, "+
			"Object.values or Object.entries", name))
	case len(name) >= len(reservedPrefix) && name[:len(reservedPrefix)] == reservedPrefix:
		c.report(at, RuleReserved, name+" is reserved for the runtime; choose another name")
	default:
		return true
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
