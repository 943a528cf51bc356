// Package agentscript checks and prepares AgentScript, the JavaScript subset
// Enclave runs, before any worker process sees it.
//
// Check does three things, in order:
//
//  1. Pre-scan the raw text: size, line count, line length, bracket nesting,
//     string literal length, and invisible or bidi characters. goja's parser
//     is recursive; the budgets keep pathological input away from it.
//  2. Parse once with goja's parser and validate the tree: every rule in
//     rules.go, real scope resolution (let/const/class per block, var and
//     function per function, hoisting), and the declaration clashes and
//     regex errors goja's compiler would refuse later. Every problem is
//     reported with a rule id, line, column and a message a model can act on.
//  3. Rewrite by source position, without adding line breaks: the script is
//     wrapped as (async () => {...})() so top-level await and return work; the
//     last expression statement becomes `return`; every loop body and every
//     function or arrow body calls TickName, so array-method callbacks and
//     recursion count against maxIterations together with loops.
//
// # Levels
//
// The supervisor owns the mapping from a security level to Options; the
// DESIGN table reads as:
//
//	           While ForIn ArrowValues Functions Collections LinearRegexOnly
//	STRICT     -     -     -           -         -           yes
//	SECURE     -     -     -           -         yes         yes
//	STANDARD   yes   -     yes         -         yes         -
//	PERMISSIVE yes   yes   yes         yes       yes         -
//
// Globals at every level: Math, JSON, Object, Array, Number, String, Boolean,
// Date, parseInt, parseFloat, isNaN, isFinite, Error, TypeError, RangeError,
// SyntaxError, ReferenceError, callTool, parallel, console, undefined, NaN,
// Infinity, encodeURIComponent, decodeURIComponent, and Options.Globals.
// Map, Set and Promise come with AllowCollections; RegExp is there unless
// LinearRegexOnly. GlobalsFor lists them for a given Options.
//
// # Decisions
//
//   - `new` is allowed for Error, TypeError, RangeError, SyntaxError,
//     ReferenceError, Date, Array, Object, Map, Set, Promise and RegExp (the
//     last four where the level has them), and at PERMISSIVE for classes and
//     functions the script declares. Everything else (new Number, new of a
//     member expression) is refused.
//   - An arrow written directly as a call or `new` argument is allowed at
//     every level (array methods, parallel, the Promise executor). Below
//     STANDARD an arrow elsewhere is refused; a script can still smuggle one
//     into an array and recurse through it, which the tick in every body
//     counts, so this is a style rule, not the bound.
//   - `constructor` is allowed in exactly one place: the name of a class's
//     own constructor method (PERMISSIVE only).
//   - The Object members that hand out prototypes or descriptors
//     (getPrototypeOf, getOwnPropertyDescriptor(s), defineProperty, ...) are
//     refused: with them a string reaches what the name rules refuse.
//   - Computed keys are folded when they are string literals, templates
//     without substitutions, or + of those. Keys built at run time (join,
//     variables) cannot be seen here; the worker refuses them.
//   - Identifiers must be plain ASCII without \u escapes: escapes could
//     spell a refused name, and goja's node positions are wrong for them.
//   - The nesting scan is an approximation of the lexer (it guesses regex
//     literals from the previous token). Brackets inside literals count, so
//     it errs deep; a crafted script that fools the guess reaches goja's
//     parser with at most MaxSourceBytes of nesting, which it survives.
//   - The report stops after 200 problems (rule too-many).
//   - Regex literals are compiled once here, as goja will (RE2 where it
//     can, regexp2 otherwise), so an invalid pattern is a syntax problem with
//     a position; regexp2 is imported for that reason only. Nothing is ever
//     matched here.
//
// A Check that panics (a validator bug) returns a Problems with rule
// internal instead: a refusal, never a crash of the caller.
package agentscript
