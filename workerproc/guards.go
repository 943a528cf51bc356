package workerproc

import (
	"math"

	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/limits"
)

// Allocation guards. goja has no memory accounting and a built-in such as repeat runs
// to completion without checking the interrupt, so the built-ins that can allocate a
// lot in one call are wrapped: each estimates what it would allocate and stops the run
// with MEMORY_LIMIT_EXCEEDED before the allocation instead of after. The heap watcher
// and the cgroup catch what grows through paths no guard sees.

// maxJSONDepth bounds nesting in the script's own JSON.parse and JSON.stringify: goja
// recurses in Go for both, and a deep enough input would exhaust the Go stack.
const maxJSONDepth = 1000

// maxNativeWalk bounds how many indexes one built-in may walk (2^24: a fraction of a
// second in goja even for a dense array).
const maxNativeWalk = 1 << 24

// guardBudget is the most one built-in call may allocate: half the run's memory
// budget, so the copy a built-in makes still fits.
func (r *run) guardBudget() int64 {
	if r.lim.MemoryBudgetBytes <= 0 {
		return 256 << 20
	}
	return r.lim.MemoryBudgetBytes / 2
}

func (r *run) overBudget(what string, bytes int64) bool {
	if bytes <= r.guardBudget() && bytes >= 0 {
		return false
	}
	r.stop(codeMemory, "%s would allocate about %d MiB, over the run's budget of %d MiB",
		what, bytes>>20, r.guardBudget()>>20)
	return true
}

// wrap replaces obj[name] with guard, which calls the original when it allows. A
// check that converted an argument returns the converted arguments: the original
// must see the value that was checked, not read a valueOf or getter a second time.
func (r *run) wrap(obj *goja.Object, name string, check func(call goja.FunctionCall) ([]goja.Value, bool)) {
	orig, ok := goja.AssertFunction(obj.Get(name))
	if !ok {
		return
	}
	guard := func(call goja.FunctionCall) goja.Value {
		args, allowed := check(call)
		if !allowed {
			return goja.Undefined()
		}
		if args == nil {
			args = call.Arguments
		}
		v, err := orig(call.This, args...)
		if err != nil {
			panic(err)
		}
		return v
	}
	_ = obj.Set(name, r.hostFunc(name, guard))
}

func (r *run) installGuards() {
	g := r.rt.GlobalObject()
	strProto := g.Get("String").ToObject(r.rt).Get("prototype").ToObject(r.rt)
	array := g.Get("Array").ToObject(r.rt)
	arrProto := array.Get("prototype").ToObject(r.rt)
	fnProto := g.Get("Function").ToObject(r.rt).Get("prototype").ToObject(r.rt)

	r.wrap(strProto, "repeat", func(c goja.FunctionCall) ([]goja.Value, bool) {
		n := c.Argument(0).ToFloat()
		return []goja.Value{r.rt.ToValue(n)}, !r.overBudget("String.repeat", scaled(strLen(c.This), n))
	})
	for _, name := range []string{"padStart", "padEnd"} {
		r.wrap(strProto, name, func(c goja.FunctionCall) ([]goja.Value, bool) {
			n := c.Argument(0).ToFloat()
			args := append([]goja.Value{r.rt.ToValue(n)}, c.Arguments[min(1, len(c.Arguments)):]...)
			return args, !r.overBudget("String."+name, scaled(2, n))
		})
	}
	r.wrap(arrProto, "join", r.checkJoin)
	// Methods whose cost or result grows with the array's length, holes included:
	// new Array(2 ** 31) is cheap and sparse until one of these fills it in.
	for _, name := range []string{"fill", "map", "filter", "sort", "slice", "splice", "flat",
		"flatMap", "reverse", "toSorted", "toReversed", "toSpliced", "with", "copyWithin"} {
		r.wrap(arrProto, name, func(c goja.FunctionCall) ([]goja.Value, bool) {
			return nil, !r.overBudget("Array."+name, 16*lengthOf(c.This))
		})
	}
	// Methods that walk every index, holes included, in one native loop the
	// interrupt cannot stop: bound the walk rather than wait for the hard kill.
	for _, name := range []string{"indexOf", "lastIndexOf", "includes", "find", "findIndex",
		"findLast", "findLastIndex", "every", "some", "forEach", "reduce", "reduceRight"} {
		r.wrap(arrProto, name, func(c goja.FunctionCall) ([]goja.Value, bool) {
			if n := lengthOf(c.This); n > maxNativeWalk {
				r.stop(codeIterations, "Array.%s would walk %d elements, over %d", name, n, maxNativeWalk)
				return nil, false
			}
			return nil, true
		})
	}
	r.wrap(arrProto, "concat", func(c goja.FunctionCall) ([]goja.Value, bool) {
		total := lengthOf(c.This)
		for _, a := range c.Arguments {
			total += max(lengthOf(a), 1)
		}
		return nil, !r.overBudget("Array.concat", 16*total)
	})
	r.wrap(array, "from", func(c goja.FunctionCall) ([]goja.Value, bool) {
		return nil, !r.overBudget("Array.from", 16*lengthOf(c.Argument(0)))
	})
	r.wrap(fnProto, "apply", func(c goja.FunctionCall) ([]goja.Value, bool) {
		return nil, !r.overBudget("Function.apply", 16*lengthOf(c.Argument(1)))
	})
	r.installJSON(g.Get("JSON").ToObject(r.rt))
	if r.lim.LinearRegexOnly {
		r.linearRegexOnly(g, strProto)
	}
}

// linearRegexOnly closes the routes by which a string built at run time would be
// compiled as a regular expression, at the levels that allow only literals the
// validator has checked: RegExp.prototype.compile, and match, matchAll and search
// given a string (they compile it; replace and split take strings literally).
func (r *run) linearRegexOnly(g, strProto *goja.Object) {
	reProto := g.Get("RegExp").ToObject(r.rt).Get("prototype").ToObject(r.rt)
	_ = reProto.Delete("compile")
	for _, name := range []string{"match", "matchAll", "search"} {
		r.wrap(strProto, name, func(c goja.FunctionCall) ([]goja.Value, bool) {
			if o, ok := c.Argument(0).(*goja.Object); !ok || o.ClassName() != "RegExp" {
				panic(r.rt.NewTypeError("String.%s takes a regular expression literal at this security level", name))
			}
			return nil, true
		})
	}
}

// scaled is unit*n for a count a script passed; a count the built-in will refuse
// anyway (negative, NaN, infinite) is let through so it throws its own RangeError.
func scaled(unit int64, n float64) int64 {
	if math.IsNaN(n) || n <= 0 || math.IsInf(n, 0) {
		return 0
	}
	if n > float64(math.MaxInt64/max(unit, 1)) {
		return math.MaxInt64
	}
	return unit * int64(n)
}

// strLen is a value's length as a string, in UTF-16 units.
func strLen(v goja.Value) int64 {
	if s, ok := v.ToString().(goja.String); ok {
		return int64(s.Length())
	}
	return int64(len(v.String()))
}

// lengthOf reads an array-like's length as ToLength does: missing, negative or NaN is
// 0, and it never exceeds 2^53-1. Primitives have none.
func lengthOf(v goja.Value) int64 {
	o, ok := v.(*goja.Object)
	if !ok {
		return 0
	}
	return toLength(o.Get("length"))
}

func toLength(v goja.Value) int64 {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return 0
	}
	if _, isObject := v.(*goja.Object); isObject {
		// An object length converts through valueOf, which may answer the guard
		// with one number and the built-in with another: count it as unbounded.
		return 1<<53 - 1
	}
	f := v.ToFloat()
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	return int64(min(f, 1<<53-1))
}

// checkJoin estimates join's output: separators plus element lengths (scanning at most
// a million elements; past that the separators alone are compared).
func (r *run) checkJoin(c goja.FunctionCall) ([]goja.Value, bool) {
	obj, ok := c.This.(*goja.Object)
	if !ok {
		return nil, true
	}
	n := lengthOf(obj)
	sep := int64(1)
	if s := c.Argument(0); !goja.IsUndefined(s) {
		sep = strLen(s)
	}
	total := n * max(sep, 1)
	if n <= 1_000_000 {
		for i := int64(0); i < n && total <= r.guardBudget(); i++ {
			if s, ok := obj.Get(itoa(i)).(goja.String); ok {
				total += int64(s.Length())
			} else {
				total += 8
			}
		}
	}
	return nil, !r.overBudget("Array.join", total)
}

// installJSON replaces JSON.stringify with the bounded writer and puts a depth check
// in front of JSON.parse.
func (r *run) installJSON(jsonObj *goja.Object) {
	r.wrap(jsonObj, "parse", func(c goja.FunctionCall) ([]goja.Value, bool) {
		text := c.Argument(0).String()
		if limits.JSONDepth(text) > maxJSONDepth {
			r.stop(codeSerialization, "JSON.parse: input nests deeper than %d levels", maxJSONDepth)
			return nil, false
		}
		return append([]goja.Value{r.rt.ToValue(text)}, c.Arguments[min(1, len(c.Arguments)):]...), true
	})
	_ = jsonObj.Set("stringify", r.hostFunc("stringify", r.stringify))
}

func (r *run) stringify(c goja.FunctionCall) goja.Value {
	w := r.writer(maxJSONDepth, r.guardBudget())
	if fn, ok := goja.AssertFunction(c.Argument(1)); ok {
		w.replacer = fn
	} else if list, ok := c.Argument(1).(*goja.Object); ok && list.ClassName() == "Array" {
		w.allow = map[string]bool{}
		for i := int64(0); i < lengthOf(list); i++ {
			w.allow[list.Get(itoa(i)).String()] = true
		}
	}
	w.indent = indentOf(c.Argument(2))
	wrote, err := w.encode(c.Argument(0))
	switch {
	case err == errTooDeep:
		r.stop(codeSerialization, "JSON.stringify: value nests deeper than %d levels", maxJSONDepth)
		return goja.Undefined()
	case err == errTooLarge:
		r.overBudget("JSON.stringify", r.guardBudget()+1)
		return goja.Undefined()
	case err == errCircular:
		panic(r.rt.NewTypeError("Converting circular structure to JSON"))
	case err == errBigInt:
		panic(r.rt.NewTypeError("Do not know how to serialize a BigInt"))
	case err != nil:
		panic(err)
	case !wrote:
		return goja.Undefined()
	}
	return r.rt.ToValue(string(w.buf))
}

// indentOf reads JSON.stringify's space argument: a number of spaces (at most 10) or
// the first ten characters of a string.
func indentOf(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	if s, ok := v.Export().(string); ok {
		if len(s) > 10 {
			s = s[:10]
		}
		return s
	}
	n := min(max(v.ToInteger(), 0), 10)
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	return string(b)
}
