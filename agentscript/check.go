package agentscript

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// TickName is the global function the worker provides; the transform calls it
// once per loop iteration and once per call of any function or arrow body.
const TickName = "__enclave_tick"

// Options are plain switches; the supervisor maps a security level to them.
type Options struct {
	// Pre-scan budgets on the raw text (0 means the default).
	MaxSourceBytes   int // default 100 KiB
	MaxLines         int // default 5000
	MaxLineLength    int // characters, default 10000
	MaxNesting       int // brackets/braces/parens depth, default 64
	MaxStringLiteral int // bytes, default 64 KiB

	AllowWhile       bool // while, do...while (STANDARD, PERMISSIVE)
	AllowForIn       bool // for...in (PERMISSIVE)
	AllowArrowValues bool // arrows as values, hence recursion (STANDARD, PERMISSIVE)
	AllowFunctions   bool // function, methods, get/set, class (PERMISSIVE)
	AllowCollections bool // Map, Set, Promise (SECURE and up)
	LinearRegexOnly  bool // regex literals must be linear-time, no RegExp (STRICT, SECURE)

	// Globals names the custom globals the request supplies.
	Globals []string
	// ToolAllowed, when set, must accept every literal tool name.
	ToolAllowed func(string) bool
}

// Default budgets.
const (
	DefaultMaxSourceBytes   = 100 << 10
	DefaultMaxLines         = 5000
	DefaultMaxLineLength    = 10000
	DefaultMaxNesting       = 64
	DefaultMaxStringLiteral = 64 << 10
)

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxSourceBytes, DefaultMaxSourceBytes)
	def(&o.MaxLines, DefaultMaxLines)
	def(&o.MaxLineLength, DefaultMaxLineLength)
	def(&o.MaxNesting, DefaultMaxNesting)
	def(&o.MaxStringLiteral, DefaultMaxStringLiteral)
	return o
}

// Script is a checked and transformed script.
type Script struct {
	Source string   // transformed source, ready for goja.Compile as a script
	Hash   string   // hex sha256 of Source (workers cache compiled programs by it)
	Tools  []string // distinct literal tool names called, in order of appearance
}

// The wrapper makes top-level await and return legal. It adds no line break
// before the user's text, so goja's line numbers are the user's; the line
// break after it ends a trailing line comment.
const (
	wrapPrefix = "(async () => {"
	wrapSuffix = "\n})()"
)

// ErrRefused is matched by errors.Is on every Problems value Check returns.
var ErrRefused = errors.New("script refused")

// Is makes errors.Is(err, ErrRefused) true for a Problems error.
func (p Problems) Is(target error) bool { return target == ErrRefused }

// Check pre-scans, parses once, validates and transforms src. On refusal the
// error is a Problems listing every problem found, not just the first.
func Check(src string, opts Options) (s *Script, err error) {
	defer func() {
		// A validator bug must refuse the script, never take the caller down.
		if v := recover(); v != nil {
			s, err = nil, Problems{{RuleInternal, 1, 1, fmt.Sprintf("validator failed: %v", v)}}
		}
	}()
	opts = opts.withDefaults()
	var r reporter
	prescan(src, opts, &r)
	if p := r.result(); p != nil {
		return nil, p
	}
	wrapped := wrapPrefix + src + wrapSuffix
	prog, err := parse(wrapped)
	if err != nil {
		return nil, syntaxProblems(err, src)
	}
	c := newChecker(src, wrapped, opts, &r)
	c.program(prog)
	c.resolve()
	if p := r.result(); p != nil {
		return nil, p
	}
	out := applyEdits(wrapped, c.edits)
	sum := sha256.Sum256([]byte(out))
	return &Script{Source: out, Hash: hex.EncodeToString(sum[:]), Tools: c.tools}, nil
}

// errParserPanic is reported for input that makes goja's parser panic (it
// has, on some malformed destructuring); such a script is a syntax error.
var errParserPanic = errors.New("the script could not be parsed; check the brackets and destructuring near the start")

func parse(wrapped string) (prog *ast.Program, err error) {
	defer func() {
		if recover() != nil {
			prog, err = nil, errParserPanic
		}
	}()
	return parser.ParseFile(nil, "", wrapped, 0)
}
