package agentscript

// Rule ids. They are short, stable and part of the contract: the supervisor,
// `enclave validate` and tests match on them. Each Problem carries one.
//
// Pre-scan (raw text, before parsing):
//
//	size            script longer than MaxSourceBytes
//	lines           more than MaxLines lines
//	line-length     a line longer than MaxLineLength characters
//	nesting         brackets, braces and parentheses deeper than MaxNesting
//	string-length   a string or template literal longer than MaxStringLiteral bytes
//	invisible-char  bidi controls, zero-width and other invisible characters,
//	                control characters, U+2028/U+2029, anywhere (also in strings)
//	encoding        the text is not valid UTF-8
//
// Parse and structure:
//
//	syntax          a parse error, or code that closes the script's wrapper
//	identifier      an identifier written with \u escapes or non-ASCII letters
//	reserved        an identifier or property starting with __enclave
//	unsupported     an AST node this validator does not know (refused to be safe)
//	too-many        the list was cut after 200 problems
//	internal        the validator itself failed (a bug; the script is refused)
//
// Refused at every level:
//
//	eval                  eval
//	function-constructor  Function, AsyncFunction, GeneratorFunction, ...
//	this                  this, super
//	global-object         globalThis, global, self, window
//	prototype             constructor, __proto__, prototype, __defineGetter__,
//	                      __defineSetter__, __lookupGetter__, __lookupSetter__ as a
//	                      name, member, computed constant key or object/destructuring key
//	reflection            Proxy, Reflect, and the Object members that hand out
//	                      prototypes or property descriptors (getPrototypeOf, ...)
//	with                  the with statement
//	module                import, require, process, module, exports
//	low-level             WebAssembly, SharedArrayBuffer, Atomics
//	timer                 setTimeout, setInterval, setImmediate, queueMicrotask, ...
//	symbol                Symbol (reaches well-known hooks)
//	debugger              the debugger statement
//	generator             function*, yield
//	tagged-template       tag`...` (hands raw string arrays to a function)
//	meta-property         new.target, import.meta
//	new                   new of anything but the allowed constructors
//	tool-name             callTool whose first argument is not a string literal
//	tool-denied           callTool with a name ToolAllowed refuses
//	tool-value            callTool used other than as a direct call
//	global                an identifier neither declared in the script nor allowed
//
// Refused by level (Options switches):
//
//	while             while, do...while          (AllowWhile)
//	for-in            for...in                   (AllowForIn)
//	arrow-value       an arrow that is not a direct call argument (AllowArrowValues)
//	function          function, methods, getters/setters, class (AllowFunctions)
//	collection        Map, Set, Promise          (AllowCollections)
//	regex             a regex literal that needs the backtracking engine
//	                  (backreference, lookaround) or nests quantifiers (LinearRegexOnly)
//	regex-constructor RegExp                     (LinearRegexOnly)
const (
	RuleSize           = "size"
	RuleLines          = "lines"
	RuleLineLength     = "line-length"
	RuleNesting        = "nesting"
	RuleStringLength   = "string-length"
	RuleInvisible      = "invisible-char"
	RuleEncoding       = "encoding"
	RuleSyntax         = "syntax"
	RuleIdentifier     = "identifier"
	RuleReserved       = "reserved"
	RuleUnsupported    = "unsupported"
	RuleTooMany        = "too-many"
	RuleInternal       = "internal"
	RuleEval           = "eval"
	RuleFunctionCtor   = "function-constructor"
	RuleThis           = "this"
	RuleGlobalObject   = "global-object"
	RulePrototype      = "prototype"
	RuleReflection     = "reflection"
	RuleWith           = "with"
	RuleModule         = "module"
	RuleLowLevel       = "low-level"
	RuleTimer          = "timer"
	RuleSymbol         = "symbol"
	RuleDebugger       = "debugger"
	RuleGenerator      = "generator"
	RuleTaggedTemplate = "tagged-template"
	RuleMetaProperty   = "meta-property"
	RuleNew            = "new"
	RuleToolName       = "tool-name"
	RuleToolDenied     = "tool-denied"
	RuleToolValue      = "tool-value"
	RuleGlobal         = "global"
	RuleWhile          = "while"
	RuleForIn          = "for-in"
	RuleArrowValue     = "arrow-value"
	RuleFunction       = "function"
	RuleCollection     = "collection"
	RuleRegex          = "regex"
	RuleRegexCtor      = "regex-constructor"
)

// reservedPrefix marks names the transform and the worker use.
const reservedPrefix = "__enclave"

// bannedName says why an identifier (a reference or a binding) is refused.
type bannedName struct {
	rule string
	msg  string
}

// bannedIdents are refused wherever they appear as an identifier, declared or
// not: shadowing them would be harmless, but refusing the spelling outright
// keeps the rule simple to state and impossible to confuse.
var bannedIdents = map[string]bannedName{
	"eval":                   {RuleEval, "eval is not available; write the code directly"},
	"Function":               {RuleFunctionCtor, "the Function constructor compiles strings to code and is not available"},
	"AsyncFunction":          {RuleFunctionCtor, "the AsyncFunction constructor compiles strings to code and is not available"},
	"GeneratorFunction":      {RuleFunctionCtor, "the GeneratorFunction constructor is not available"},
	"AsyncGeneratorFunction": {RuleFunctionCtor, "the AsyncGeneratorFunction constructor is not available"},
	"globalThis":             {RuleGlobalObject, "the global object is not reachable; use the allowed globals by name"},
	"global":                 {RuleGlobalObject, "the global object is not reachable; use the allowed globals by name"},
	"self":                   {RuleGlobalObject, "the global object is not reachable; use the allowed globals by name"},
	"window":                 {RuleGlobalObject, "the global object is not reachable; use the allowed globals by name"},
	"Proxy":                  {RuleReflection, "Proxy is not available"},
	"Reflect":                {RuleReflection, "Reflect is not available"},
	"require":                {RuleModule, "modules are not available; use callTool to reach the host"},
	"import":                 {RuleModule, "modules are not available; use callTool to reach the host"},
	"process":                {RuleModule, "process is not available; use callTool to reach the host"},
	"module":                 {RuleModule, "module is not available"},
	"exports":                {RuleModule, "exports is not available; return the result instead"},
	"WebAssembly":            {RuleLowLevel, "WebAssembly is not available"},
	"SharedArrayBuffer":      {RuleLowLevel, "SharedArrayBuffer is not available"},
	"Atomics":                {RuleLowLevel, "Atomics is not available"},
	"setTimeout":             {RuleTimer, "timers are not available; await callTool or Promise instead"},
	"setInterval":            {RuleTimer, "timers are not available; use a loop"},
	"setImmediate":           {RuleTimer, "timers are not available"},
	"clearTimeout":           {RuleTimer, "timers are not available"},
	"clearInterval":          {RuleTimer, "timers are not available"},
	"clearImmediate":         {RuleTimer, "timers are not available"},
	"queueMicrotask":         {RuleTimer, "queueMicrotask is not available; use await"},
	"Symbol":                 {RuleSymbol, "Symbol is not available"},
}

// bannedProps are property names that lead to prototypes or to the Function
// constructor. They are refused as members (o.x), constant computed keys
// (o['x']), object and destructuring keys ({x: 1}, const {x} = o) and as bare
// identifiers (a bare `constructor` resolves through the global object's
// prototype chain in goja).
var bannedProps = map[string]bool{
	"constructor":      true,
	"__proto__":        true,
	"prototype":        true,
	"__defineGetter__": true,
	"__defineSetter__": true,
	"__lookupGetter__": true,
	"__lookupSetter__": true,
}

// reflectionProps are members (of Object, whatever it is called locally) that
// hand out prototypes or property descriptors: with them a string-keyed lookup
// reaches what bannedProps refuses by name.
var reflectionProps = map[string]bool{
	"getPrototypeOf":            true,
	"setPrototypeOf":            true,
	"getOwnPropertyDescriptor":  true,
	"getOwnPropertyDescriptors": true,
	"getOwnPropertyNames":       true,
	"getOwnPropertySymbols":     true,
	"defineProperty":            true,
	"defineProperties":          true,
}

// baseGlobals are the globals every level allows.
var baseGlobals = []string{
	"Math", "JSON", "Object", "Array", "Number", "String", "Boolean", "Date",
	"parseInt", "parseFloat", "isNaN", "isFinite",
	"Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError",
	"callTool", "parallel", "console", "undefined", "NaN", "Infinity",
	"encodeURIComponent", "decodeURIComponent",
}

// collectionGlobals are allowed only with AllowCollections.
var collectionGlobals = []string{"Map", "Set", "Promise"}

// regexpGlobal is allowed unless LinearRegexOnly: RegExp compiles a runtime
// string, which no validator can check for backtracking.
const regexpGlobal = "RegExp"

// newAllowed are the constructors `new` may call. Object and Array are
// harmless (they make empty containers); everything else that is
// constructible is either refused anyway or pointless in a script.
var newAllowed = map[string]bool{
	"Error": true, "TypeError": true, "RangeError": true, "SyntaxError": true,
	"ReferenceError": true, "Date": true, "Array": true, "Object": true,
	"Map": true, "Set": true, "Promise": true, "RegExp": true,
}

// toolFunc is the one global that may only be called with a literal name.
const toolFunc = "callTool"

// GlobalsFor returns the names of the globals a script may use under opts
// (before opts.Globals), sorted as listed in the documentation.
func GlobalsFor(opts Options) []string {
	out := append([]string(nil), baseGlobals...)
	if opts.AllowCollections {
		out = append(out, collectionGlobals...)
	}
	if !opts.LinearRegexOnly {
		out = append(out, regexpGlobal)
	}
	return out
}
