package workerproc

import (
	"fmt"
	"strconv"

	"github.com/dop251/goja"
)

// tickName is the iteration counter the agentscript transform calls in every loop
// body and function body.
const tickName = "__enclave_tick"

// defaultCallDepth caps JS call depth when the host sends none. goja makes the overflow
// uncatchable, so a recursion bomb ends the run instead of spinning in catch blocks.
const defaultCallDepth = 1000

// baseGlobals are the globals a script may see at every level; everything else goja
// defines (eval, Function, Proxy, Reflect, Symbol, WebAssembly-like buffers, GoError,
// globalThis, ...) is deleted before the script runs. The validator refuses most of
// these names first; this is the second layer for keys built at run time.
var baseGlobals = []string{
	"Object", "Array", "Number", "String", "Boolean", "Date", "Math", "JSON",
	"parseInt", "parseFloat", "isNaN", "isFinite", "NaN", "Infinity", "undefined",
	"Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "URIError",
	"EvalError", "AggregateError", "Map", "Set", "WeakMap", "WeakSet", "Promise", "RegExp",
	"encodeURIComponent", "decodeURIComponent", "encodeURI", "decodeURI",
	"callTool", "parallel", "console", tickName,
}

// lockdownSource runs in every fresh runtime after the host functions are installed.
// It cuts every path to the Function constructor, deletes globals not kept, and freezes
// the intrinsics so one script cannot plant a hook (a prototype method, a toJSON) for
// the code that later reads its values.
const lockdownSource = `(function (keep, unfrozen, cut) {
  'use strict';
  const g = globalThis, O = Object;
  const getProto = O.getPrototypeOf, names = O.getOwnPropertyNames;
  const freeze = O.freeze, define = O.defineProperty, isFrozen = O.isFrozen;
  const iter = Symbol.iterator;
  const fnProtos = [
    getProto(function () {}), getProto(async function () {}), getProto(function* () {}),
  ];
  const arrayIter = getProto([][iter]());
  const iterProtos = [arrayIter, getProto(arrayIter), getProto(new Map()[iter]()),
    getProto(new Set()[iter]()), getProto(''[iter]()), getProto(/x/), getProto(fnProtos[2]),
    getProto(getProto((function* () {})()))];
  const hide = (p) => define(p, 'constructor', { value: undefined, writable: false, enumerable: false, configurable: false });
  for (const p of fnProtos) hide(p);
  // Constructors the level refuses by name must not be one runtime-built key away.
  for (const name of cut) hide(g[name].prototype);
  // Reflection the validator refuses by name: gone, so a built key finds nothing.
  for (const k of ['defineProperty', 'defineProperties', 'getOwnPropertyDescriptor',
    'getOwnPropertyDescriptors', 'getPrototypeOf', 'setPrototypeOf', 'getOwnPropertySymbols']) delete O[k];
  for (const k of ['__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__', '__proto__']) delete O.prototype[k];
  const keepSet = new Set(keep), skip = new Set(unfrozen);
  for (const name of cut) keepSet.delete(name);
  const roots = [];
  for (const name of names(g)) {
    if (!keepSet.has(name)) { delete g[name]; continue; }
    const v = g[name];
    if (!skip.has(name) && v !== null && (typeof v === 'object' || typeof v === 'function')) roots.push(v);
  }
  roots.push(...fnProtos, ...iterProtos);
  for (const r of roots) {
    if (!isFrozen(r)) freeze(r);
    const p = r.prototype;
    if (p !== null && typeof p === 'object' && !isFrozen(p)) freeze(p);
  }
})`

var lockdownProgram = goja.MustCompile("lockdown.js", lockdownSource, true)

// intrinsics are the originals the worker keeps for itself before the script can
// reach (or try to replace) them.
type intrinsics struct {
	jsonParse   goja.Callable
	errorCtor   *goja.Object
	promiseCtor *goja.Object
	promiseAll  goja.Callable
}

// setup builds the run's fresh runtime: limits, host functions, guards, custom
// globals, then the lockdown.
func (r *run) setup(globals []byte) error {
	r.rt = goja.New()
	depth := int(r.lim.MaxCallDepth)
	if depth <= 0 {
		depth = defaultCallDepth
	}
	r.rt.SetMaxCallStackSize(depth)
	if err := r.captureIntrinsics(); err != nil {
		return err
	}
	r.installGuards()
	names, err := r.installGlobals(globals)
	if err != nil {
		return err
	}
	return r.lockdown(names)
}

func (r *run) captureIntrinsics() error {
	g := r.rt.GlobalObject()
	jsonObj := g.Get("JSON").ToObject(r.rt)
	parse, ok1 := goja.AssertFunction(jsonObj.Get("parse"))
	promise := g.Get("Promise").ToObject(r.rt)
	all, ok2 := goja.AssertFunction(promise.Get("all"))
	if !ok1 || !ok2 {
		return fmt.Errorf("runtime is missing JSON.parse or Promise.all")
	}
	r.intr = intrinsics{
		jsonParse: parse, errorCtor: g.Get("Error").ToObject(r.rt),
		promiseCtor: promise, promiseAll: all,
	}
	return nil
}

// installGlobals sets the host functions and the request's custom globals, and returns
// the names of the custom ones (kept, but not frozen: they are the caller's data).
func (r *run) installGlobals(globals []byte) ([]string, error) {
	set := func(name string, v any) { _ = r.rt.Set(name, v) }
	set("callTool", r.hostFunc("callTool", r.callTool))
	set("parallel", r.hostFunc("parallel", r.parallel))
	set("console", r.console())
	set(tickName, r.hostFunc(tickName, r.tick))
	if len(globals) == 0 {
		return nil, nil
	}
	v, err := r.intr.jsonParse(goja.Undefined(), r.rt.ToValue(string(globals)))
	if err != nil {
		return nil, fmt.Errorf("custom globals: %w", err)
	}
	obj, ok := v.(*goja.Object)
	if !ok || obj.ClassName() == "Array" {
		return nil, fmt.Errorf("custom globals must be a JSON object")
	}
	names := obj.Keys()
	for _, k := range names {
		set(k, obj.Get(k))
	}
	return names, nil
}

func (r *run) lockdown(custom []string) error {
	fnVal, err := r.rt.RunProgram(lockdownProgram)
	if err != nil {
		return fmt.Errorf("lockdown: %w", err)
	}
	fn, _ := goja.AssertFunction(fnVal)
	keep := make([]any, 0, len(baseGlobals)+len(custom))
	for _, n := range baseGlobals {
		keep = append(keep, n)
	}
	unfrozen := make([]any, 0, len(custom))
	for _, n := range custom {
		keep = append(keep, n)
		unfrozen = append(unfrozen, n)
	}
	_, err = fn(goja.Undefined(), r.rt.NewArray(keep...), r.rt.NewArray(unfrozen...), r.rt.NewArray(r.cutConstructors()...))
	if err != nil {
		return fmt.Errorf("lockdown: %w", err)
	}
	return nil
}

// hostFunc makes a native function whose name (and so its toString) is the
// script-facing one, not the Go symbol behind it.
func (r *run) hostFunc(name string, fn func(goja.FunctionCall) goja.Value) *goja.Object {
	obj := r.rt.ToValue(fn).ToObject(r.rt)
	_ = obj.DefineDataProperty("name", r.rt.ToValue(name), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	return obj
}

// cutConstructors names the globals this run's level refuses, which are removed and
// whose prototypes' constructor is hidden.
func (r *run) cutConstructors() []any {
	var cut []any
	if r.lim.LinearRegexOnly {
		cut = append(cut, "RegExp")
	}
	if !r.lim.AllowCollections {
		cut = append(cut, "Map", "Set", "WeakMap", "WeakSet")
	}
	return cut
}

// tick counts one loop iteration or function call against maxIterations.
func (r *run) tick(goja.FunctionCall) goja.Value {
	r.iterations++
	if max := r.lim.MaxIterations; max > 0 && r.iterations > max {
		r.stop(codeIterations, "more than %d loop iterations and function calls", max)
	}
	return goja.Undefined()
}

// writer returns a JSON writer bounded by depth and bytes (0 means unbounded).
func (r *run) writer(maxDepth, maxBytes int64) *jsonWriter {
	if maxDepth <= 0 {
		maxDepth = 1000
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	return &jsonWriter{rt: r.rt, maxDepth: int(maxDepth), maxBytes: int(maxBytes)}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
