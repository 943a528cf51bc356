package agentscript

import (
	"fmt"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/token"
)

func (c *checker) optExpr(e ast.Expression) {
	if e != nil {
		c.expr(e)
	}
}

// expr walks one expression.
func (c *checker) expr(e ast.Expression) {
	// goja compiles long operator chains in time that grows with the square of their
	// length (a 48,000-term sum takes minutes), and the pre-scan's bracket count
	// does not see them: bound the tree's depth here.
	c.exprDepth++
	defer func() { c.exprDepth-- }()
	if c.exprDepth > maxExprDepth {
		if !c.deepReported {
			c.deepReported = true
			c.report(e.Idx0(), RuleNesting, fmt.Sprintf("expression nests deeper than %d levels (a very long operator chain?); split it into statements", maxExprDepth))
		}
		return
	}
	switch e := e.(type) {
	case *ast.Identifier:
		if c.identifier(e) {
			c.use(e, false)
		}
	case *ast.StringLiteral, *ast.NumberLiteral, *ast.BooleanLiteral, *ast.NullLiteral:
	case *ast.RegExpLiteral:
		c.regexLiteral(e)
	case *ast.TemplateLiteral:
		c.template(e)
	case *ast.ArrayLiteral:
		for _, v := range e.Value {
			c.optExpr(v)
		}
	case *ast.ObjectLiteral:
		for _, p := range e.Value {
			c.objectProperty(p)
		}
	case *ast.SpreadElement:
		c.expr(e.Expression)
	case *ast.ArrayPattern, *ast.ObjectPattern:
		c.target(e, assign)
	case *ast.AssignExpression:
		c.target(e.Left, assign)
		c.expr(e.Right)
	case *ast.BinaryExpression:
		c.expr(e.Left)
		c.expr(e.Right)
	case *ast.UnaryExpression:
		c.expr(e.Operand)
		if e.Postfix {
			c.postfixEnd(e)
		}
	case *ast.ConditionalExpression:
		c.expr(e.Test)
		c.expr(e.Consequent)
		c.expr(e.Alternate)
	case *ast.SequenceExpression:
		for _, s := range e.Sequence {
			c.expr(s)
		}
	default:
		c.expr2(e)
	}
}

// expr2 walks calls, members, functions and the expressions refused outright.
func (c *checker) expr2(e ast.Expression) {
	switch e := e.(type) {
	case *ast.CallExpression:
		c.call(e)
	case *ast.NewExpression:
		c.newExpr(e)
	case *ast.DotExpression:
		c.expr(e.Left)
		if c.identifierSpelling(&e.Identifier) {
			c.propertyName(e.Identifier.Idx, e.Identifier.Name.String())
		}
	case *ast.PrivateDotExpression:
		c.expr(e.Left)
	case *ast.BracketExpression:
		c.expr(e.Left)
		c.expr(e.Member)
		c.constantKey(e.Member)
	case *ast.Optional:
		c.expr(e.Expression)
	case *ast.OptionalChain:
		c.expr(e.Expression)
	case *ast.AwaitExpression:
		c.expr(e.Argument)
	case *ast.ArrowFunctionLiteral:
		c.arrow(e, false)
	case *ast.FunctionLiteral:
		c.function(e, "function expressions")
	case *ast.ClassLiteral:
		c.class(e)
	default:
		c.refused(e)
	}
}

// refused reports the expressions no level allows.
func (c *checker) refused(e ast.Expression) {
	switch e := e.(type) {
	case *ast.ThisExpression:
		c.report(e.Idx, RuleThis, "this is not available; pass values explicitly")
	case *ast.SuperExpression:
		c.report(e.Idx, RuleThis, "super is not available")
	case *ast.YieldExpression:
		c.report(e.Yield, RuleGenerator, "generators are not available; use arrays and loops")
		c.optExpr(e.Argument)
	case *ast.MetaProperty:
		c.report(e.Idx, RuleMetaProperty, "new.target and import.meta are not available")
	default:
		c.report(e.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported", e))
	}
}

// identifierSpelling checks that a member name is spelled without escapes.
func (c *checker) identifierSpelling(id *ast.Identifier) bool {
	name := id.Name.String()
	off := int(id.Idx) - 1
	if off < 0 || off+len(name) > len(c.wrapped) || c.wrapped[off:off+len(name)] != name || !isASCII(name) {
		c.report(id.Idx, RuleIdentifier, "write property names in plain ASCII, without \\u escapes")
		return false
	}
	return true
}

func (c *checker) template(t *ast.TemplateLiteral) {
	if t.Tag != nil {
		c.report(t.Tag.Idx0(), RuleTaggedTemplate, "tagged templates are not available; "+
			"call the function with a normal template string")
		c.expr(t.Tag)
	}
	for _, e := range t.Expressions {
		c.expr(e)
	}
}

func (c *checker) objectProperty(p ast.Property) {
	switch p := p.(type) {
	case *ast.PropertyShort:
		if c.identifier(&p.Name) {
			c.use(&p.Name, false)
		}
		if p.Initializer != nil {
			// {a = 1} is only valid as a pattern; goja's compiler refuses it here.
			c.report(p.Initializer.Idx0(), RuleSyntax, "invalid shorthand property initializer; write {a: 1}")
			c.expr(p.Initializer)
		}
	case *ast.PropertyKeyed:
		c.key(p.Key, p.Computed)
		if p.Kind != ast.PropertyKindValue {
			c.method(p.Kind, p.Value)
			return
		}
		c.expr(p.Value)
	case *ast.SpreadElement:
		c.expr(p.Expression)
	default:
		c.report(p.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported in an object", p))
	}
}

// method walks an object method, getter or setter.
func (c *checker) method(kind ast.PropertyKind, v ast.Expression) {
	fn, ok := v.(*ast.FunctionLiteral)
	if !ok {
		c.expr(v)
		return
	}
	what := "methods"
	if kind == ast.PropertyKindGet || kind == ast.PropertyKindSet {
		what = "getters and setters"
	}
	c.function(fn, what)
}

// key checks an object, pattern or class key.
func (c *checker) key(k ast.Expression, computed bool) {
	if computed {
		c.expr(k)
		c.constantKey(k)
		return
	}
	if s, ok := k.(*ast.StringLiteral); ok {
		c.propertyName(s.Idx, s.Value.String())
	}
}

// constantKey checks a computed key whose value is known before running:
// a string literal, a template without substitutions, or + of those.
func (c *checker) constantKey(k ast.Expression) {
	if s, ok := constantString(k); ok {
		c.propertyName(k.Idx0(), s)
	}
}

func constantString(e ast.Expression) (string, bool) {
	switch e := e.(type) {
	case *ast.StringLiteral:
		return e.Value.String(), true
	case *ast.TemplateLiteral:
		if e.Tag == nil && len(e.Expressions) == 0 && len(e.Elements) == 1 {
			return e.Elements[0].Parsed.String(), true
		}
	case *ast.BinaryExpression:
		if e.Operator != token.PLUS {
			return "", false
		}
		l, ok := constantString(e.Left)
		if !ok || len(l) > maxFolded {
			return "", false
		}
		r, ok := constantString(e.Right)
		return l + r, ok && len(l)+len(r) <= maxFolded
	}
	return "", false
}

// maxFolded bounds constant folding: every name worth refusing is short, and
// a long chain of + must not cost quadratic time.
const maxFolded = 64

// call walks a call; callTool and arrows passed as arguments are special.
func (c *checker) call(e *ast.CallExpression) {
	if id, ok := e.Callee.(*ast.Identifier); ok && id.Name.String() == toolFunc {
		c.toolCall(id, e)
	} else {
		c.expr(e.Callee)
	}
	c.arguments(e.ArgumentList)
}

// arguments walks call arguments; an arrow written directly as an argument
// is the one form allowed at every level (array methods, parallel).
func (c *checker) arguments(args []ast.Expression) {
	for _, a := range args {
		if fn, ok := a.(*ast.ArrowFunctionLiteral); ok {
			c.arrow(fn, true)
			continue
		}
		c.expr(a)
	}
}

func (c *checker) toolCall(id *ast.Identifier, e *ast.CallExpression) {
	if len(e.ArgumentList) == 0 {
		c.report(id.Idx, RuleToolName, "callTool needs a tool name: await callTool('name', args)")
		return
	}
	name, ok := literalString(e.ArgumentList[0])
	if !ok {
		c.report(e.ArgumentList[0].Idx0(), RuleToolName, "the tool name must be a string literal, "+
			"as in callTool('users:list', args); pick the name with if/else or a switch")
		return
	}
	if c.opts.ToolAllowed != nil && !c.opts.ToolAllowed(name) {
		c.report(e.ArgumentList[0].Idx0(), RuleToolDenied, fmt.Sprintf("tool %q is not allowed", name))
	}
	if !c.toolSeen[name] {
		c.toolSeen[name] = true
		c.tools = append(c.tools, name)
	}
}

// literalString accepts a string literal or a template without substitutions.
func literalString(e ast.Expression) (string, bool) {
	switch e := e.(type) {
	case *ast.StringLiteral:
		return e.Value.String(), true
	case *ast.TemplateLiteral:
		return constantString(e)
	}
	return "", false
}

func (c *checker) newExpr(e *ast.NewExpression) {
	id, ok := e.Callee.(*ast.Identifier)
	if !ok {
		c.report(e.New, RuleNew, "new needs a constructor name: Error types, Date, Array, Object, "+
			"Map, Set or Promise")
		c.expr(e.Callee)
	} else if c.identifier(id) {
		name := id.Name.String()
		if name == toolFunc {
			c.use(id, false) // reports tool-value
		} else {
			c.use(id, !newAllowed[name])
		}
	}
	c.arguments(e.ArgumentList)
}

// function walks a function literal; what names it in the refusal.
func (c *checker) function(f *ast.FunctionLiteral, what string) {
	if !c.opts.AllowFunctions {
		c.report(f.Idx0(), RuleFunction, what+" are not available at this security level; "+
			"use plain objects, and arrow functions passed to array methods like items.map((x) => x.id)")
	}
	if f.Generator {
		c.report(f.Idx0(), RuleGenerator, "generators are not available; use arrays and loops")
	}
	c.push(true)
	c.scope.declare("arguments", kindImplicit)
	if f.Name != nil && c.identifier(f.Name) {
		c.scope.declare(f.Name.Name.String(), kindImplicit)
	}
	c.params(f.ParameterList)
	c.insert(f.Body.LeftBrace+1, tickStmt)
	c.statements(f.Body.List)
	c.pop()
}

// arrow walks an arrow function; asArg says it is written as a call argument.
func (c *checker) arrow(f *ast.ArrowFunctionLiteral, asArg bool) {
	if !asArg && !c.opts.AllowArrowValues {
		c.report(f.Start, RuleArrowValue, "arrow functions can only be written as call arguments "+
			"at this security level, e.g. items.map((x) => x * 2)")
	}
	c.push(true)
	c.params(f.ParameterList)
	switch b := f.Body.(type) {
	case *ast.BlockStatement:
		c.insert(b.LeftBrace+1, tickStmt)
		c.statements(b.List)
	case *ast.ExpressionBody:
		c.exprBody(b.Expression)
	}
	c.pop()
}

func (c *checker) params(p *ast.ParameterList) {
	if p == nil {
		return
	}
	for _, b := range p.List {
		c.target(b.Target, declParam)
		c.optExpr(b.Initializer)
	}
	c.optTarget(p.Rest, declParam)
}

// class walks a class (PERMISSIVE only).
func (c *checker) class(k *ast.ClassLiteral) {
	if !c.opts.AllowFunctions {
		c.report(k.Class, RuleFunction, "classes are not available at this security level; "+
			"use plain objects")
	}
	c.optExpr(k.SuperClass)
	c.push(false)
	if k.Name != nil && c.identifier(k.Name) {
		c.scope.declare(k.Name.Name.String(), kindImplicit)
	}
	for _, el := range k.Body {
		c.classElement(el)
	}
	c.pop()
}

func (c *checker) classElement(el ast.ClassElement) {
	switch el := el.(type) {
	case *ast.MethodDefinition:
		c.classKey(el.Key, el.Computed, !el.Static && el.Kind == ast.PropertyKindMethod)
		c.method(el.Kind, el.Body)
	case *ast.FieldDefinition:
		c.classKey(el.Key, el.Computed, false)
		c.optExpr(el.Initializer)
	case *ast.ClassStaticBlock:
		c.block(el.Block)
	default:
		c.report(el.Idx0(), RuleUnsupported, fmt.Sprintf("%T is not supported in a class", el))
	}
}

// classKey allows `constructor` as the name of a class's own constructor
// method, the one place the word is ordinary syntax.
func (c *checker) classKey(k ast.Expression, computed, ctorOK bool) {
	if s, ok := k.(*ast.StringLiteral); ok && !computed && ctorOK && s.Value.String() == "constructor" {
		return
	}
	c.key(k, computed)
}
