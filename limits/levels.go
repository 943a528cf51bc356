package limits

import (
	"fmt"
	"strings"
	"time"
)

// Level is a named security level. Each level fixes the limit values of a run (see
// ForLevel) and the JavaScript constructs a script may use.
type Level string

// The four levels, strictest first.
const (
	Strict     Level = "STRICT"
	Secure     Level = "SECURE"
	Standard   Level = "STANDARD"
	Permissive Level = "PERMISSIVE"
)

// Levels lists every level, strictest first.
var Levels = []Level{Strict, Secure, Standard, Permissive}

// ParseLevel reads a level name in any case ("strict", "Standard"). An empty or
// unknown name is an error.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	if !l.Valid() {
		return "", fmt.Errorf("%w %q (want STRICT, SECURE, STANDARD or PERMISSIVE)", ErrUnknownLevel, s)
	}
	return l, nil
}

// Valid reports whether l is one of the four levels (upper case).
func (l Level) Valid() bool {
	_, ok := levelTable[l]
	return ok
}

// Values are the limits one run is held to, plus the worker-wide memory cap and
// recycling count that go with a level.
type Values struct {
	Timeout               time.Duration
	MaxIterations         int64 // loop iterations, all loops of a run together
	MaxToolCalls          int64
	MaxConsoleCalls       int64
	MaxConsoleOutputBytes int64
	MaxValueDepth         int64 // nesting depth of tool args, tool results and the result
	MaxValueBytes         int64 // serialized bytes of the same
	ScrubStacks           bool  // hide host paths and frames in error stacks
	WorkerMemory          int64 // bytes, the worker's memory cap
	RunsPerWorker         int64 // recycle a worker after this many runs
}

// Sizes in the level table are binary: 64 KB is 64*1024 bytes, 1 MB is 1<<20 and
// so on, matching how ByteSize reads "64KB" in the config file.
const (
	kib = int64(1) << 10
	mib = int64(1) << 20
)

var levelTable = map[Level]Values{
	Strict: {
		Timeout: 5 * time.Second, MaxIterations: 1_000, MaxToolCalls: 10,
		MaxConsoleCalls: 100, MaxConsoleOutputBytes: 64 * kib,
		MaxValueDepth: 5, MaxValueBytes: 256 * kib, ScrubStacks: true,
		WorkerMemory: 64 * mib, RunsPerWorker: 100,
	},
	Secure: {
		Timeout: 15 * time.Second, MaxIterations: 5_000, MaxToolCalls: 50,
		MaxConsoleCalls: 500, MaxConsoleOutputBytes: 256 * kib,
		MaxValueDepth: 10, MaxValueBytes: 1 * mib, ScrubStacks: true,
		WorkerMemory: 128 * mib, RunsPerWorker: 500,
	},
	Standard: {
		Timeout: 30 * time.Second, MaxIterations: 10_000, MaxToolCalls: 100,
		MaxConsoleCalls: 1_000, MaxConsoleOutputBytes: 1 * mib,
		MaxValueDepth: 20, MaxValueBytes: 5 * mib, ScrubStacks: false,
		WorkerMemory: 256 * mib, RunsPerWorker: 1_000,
	},
	Permissive: {
		Timeout: 60 * time.Second, MaxIterations: 100_000, MaxToolCalls: 1_000,
		MaxConsoleCalls: 10_000, MaxConsoleOutputBytes: 10 * mib,
		MaxValueDepth: 50, MaxValueBytes: 16 * mib, ScrubStacks: false,
		WorkerMemory: 512 * mib, RunsPerWorker: 5_000,
	},
}

// ForLevel returns the values of level l. An unknown level gets STRICT's values:
// a mistake must never loosen anything.
func ForLevel(l Level) Values {
	if v, ok := levelTable[l]; ok {
		return v
	}
	return levelTable[Strict]
}

// Overrides is the `limits:` block of the config file, and what a request may ask
// for. A nil field is unset and leaves the level's value alone.
type Overrides struct {
	// Timeout is the wall-clock limit of a run. Default: the level's.
	Timeout *Duration `yaml:"timeout" json:"timeout,omitempty"`
	// MaxIterations caps loop iterations of a run. Default: the level's.
	MaxIterations *int64 `yaml:"maxIterations" json:"maxIterations,omitempty"`
	// MaxToolCalls caps callTool calls of a run. Default: the level's.
	MaxToolCalls *int64 `yaml:"maxToolCalls" json:"maxToolCalls,omitempty"`
	// MaxConsoleCalls caps console.log/warn/error calls. Default: the level's.
	MaxConsoleCalls *int64 `yaml:"maxConsoleCalls" json:"maxConsoleCalls,omitempty"`
	// MaxConsoleOutputBytes caps console output bytes. Default: the level's.
	MaxConsoleOutputBytes *ByteSize `yaml:"maxConsoleOutputBytes" json:"maxConsoleOutputBytes,omitempty"`
}

// overrideField ties one Overrides field to the Values field it sets, so Apply,
// Tighten and Validate walk the same list.
type overrideField struct {
	key string
	get func(Overrides) (int64, bool)
	val func(*Values) *int64
}

func overrideFields() []overrideField {
	return []overrideField{
		{"timeout", func(o Overrides) (int64, bool) { return optDuration(o.Timeout) },
			func(v *Values) *int64 { return (*int64)(&v.Timeout) }},
		{"maxIterations", func(o Overrides) (int64, bool) { return optInt(o.MaxIterations) },
			func(v *Values) *int64 { return &v.MaxIterations }},
		{"maxToolCalls", func(o Overrides) (int64, bool) { return optInt(o.MaxToolCalls) },
			func(v *Values) *int64 { return &v.MaxToolCalls }},
		{"maxConsoleCalls", func(o Overrides) (int64, bool) { return optInt(o.MaxConsoleCalls) },
			func(v *Values) *int64 { return &v.MaxConsoleCalls }},
		{"maxConsoleOutputBytes", func(o Overrides) (int64, bool) { return optBytes(o.MaxConsoleOutputBytes) },
			func(v *Values) *int64 { return &v.MaxConsoleOutputBytes }},
	}
}

func optInt(p *int64) (int64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

func optDuration(p *Duration) (int64, bool) {
	if p == nil {
		return 0, false
	}
	return int64(*p), true
}

func optBytes(p *ByteSize) (int64, bool) {
	if p == nil {
		return 0, false
	}
	return int64(*p), true
}

// Apply returns v with every field that o sets replaced, higher or lower. It is
// how the config file's `limits:` block adjusts a level.
func (v Values) Apply(o Overrides) Values {
	for _, f := range overrideFields() {
		if x, ok := f.get(o); ok {
			*f.val(&v) = x
		}
	}
	return v
}

// Tighten returns v lowered by a request's overrides. A request may only tighten:
// a value above v's, or one that is not positive, is an error naming the field, and
// every such field is reported.
func (v Values) Tighten(o Overrides) (Values, error) {
	var p problems
	out := v
	for _, f := range overrideFields() {
		x, ok := f.get(o)
		if !ok {
			continue
		}
		limit := *f.val(&v)
		switch {
		case x <= 0:
			p.add(f.key, "must be positive")
		case x > limit:
			p.add(f.key, fmt.Sprintf("%s is above the allowed %s",
				formatField(f.key, x), formatField(f.key, limit)))
		default:
			*f.val(&out) = x
		}
	}
	if err := p.err(); err != nil {
		return v, err
	}
	return out, nil
}

// formatField prints a value the way the config file writes it.
func formatField(key string, x int64) string {
	switch key {
	case "timeout":
		return time.Duration(x).String()
	case "maxConsoleOutputBytes", "maxValueBytes", "workerMemory":
		return ByteSize(x).String()
	}
	return fmt.Sprint(x)
}

// Stricter returns nil when w loosens nothing compared with v, and otherwise an
// error naming each field where w allows more. A request that names another
// security level is accepted only when the daemon's values are not loosened.
//
// Every field is compared, WorkerMemory and RunsPerWorker too: a caller that keeps
// those pool-wide should copy v's into w before asking.
func (v Values) Stricter(w Values) error {
	var p problems
	for _, f := range valueFields() {
		if a, b := f.get(v), f.get(w); b > a {
			p.add(f.key, fmt.Sprintf("%s is above the allowed %s",
				formatField(f.key, b), formatField(f.key, a)))
		}
	}
	if v.ScrubStacks && !w.ScrubStacks {
		p.add("scrubStacks", "stack traces must stay scrubbed")
	}
	return p.err()
}

type valueField struct {
	key string
	get func(Values) int64
}

func valueFields() []valueField {
	return []valueField{
		{"timeout", func(v Values) int64 { return int64(v.Timeout) }},
		{"maxIterations", func(v Values) int64 { return v.MaxIterations }},
		{"maxToolCalls", func(v Values) int64 { return v.MaxToolCalls }},
		{"maxConsoleCalls", func(v Values) int64 { return v.MaxConsoleCalls }},
		{"maxConsoleOutputBytes", func(v Values) int64 { return v.MaxConsoleOutputBytes }},
		{"maxValueDepth", func(v Values) int64 { return v.MaxValueDepth }},
		{"maxValueBytes", func(v Values) int64 { return v.MaxValueBytes }},
		{"workerMemory", func(v Values) int64 { return v.WorkerMemory }},
		{"runsPerWorker", func(v Values) int64 { return v.RunsPerWorker }},
	}
}

// Validate checks that every set override is positive.
func (o Overrides) Validate() error {
	var p problems
	for _, f := range overrideFields() {
		if x, ok := f.get(o); ok && x <= 0 {
			p.add(f.key, "must be positive")
		}
	}
	return p.err()
}
