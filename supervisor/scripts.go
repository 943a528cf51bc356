package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"sync"

	"github.com/enclave-go/enclave/agentscript"
	"github.com/enclave-go/enclave/limits"
)

// scriptCacheSize bounds the checked-script cache; a full cache is emptied.
const scriptCacheSize = 1024

// ScriptOptions maps a security level to the validator's switches (DESIGN's table).
func ScriptOptions(level limits.Level) agentscript.Options {
	switch level {
	case limits.Permissive:
		return agentscript.Options{AllowWhile: true, AllowForIn: true, AllowArrowValues: true,
			AllowFunctions: true, AllowCollections: true, MaxSourceBytes: 256 << 10}
	case limits.Standard:
		return agentscript.Options{AllowWhile: true, AllowArrowValues: true, AllowCollections: true}
	case limits.Secure:
		return agentscript.Options{AllowCollections: true, LinearRegexOnly: true, MaxSourceBytes: 64 << 10}
	default: // STRICT, and anything unknown is treated as strictly as possible
		return agentscript.Options{LinearRegexOnly: true, MaxSourceBytes: 32 << 10}
	}
}

// scriptCache keeps checked and transformed scripts by a hash of the level, the
// custom global names and the source, so a repeated script costs a lookup. Refusals
// are cached too: a model that resends a bad script gets the same answer cheaply.
type scriptCache struct {
	mu      sync.Mutex
	entries map[string]scriptEntry
}

type scriptEntry struct {
	script *agentscript.Script
	err    error
}

func newScriptCache() *scriptCache { return &scriptCache{entries: map[string]scriptEntry{}} }

func (c *scriptCache) check(code string, level limits.Level, globals []string) (*agentscript.Script, error) {
	key := cacheKey(code, level, globals)
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return e.script, e.err
	}
	opts := ScriptOptions(level)
	opts.Globals = globals
	s, err := agentscript.Check(code, opts)
	if err != nil {
		err = validationError(err)
	}
	c.mu.Lock()
	if len(c.entries) >= scriptCacheSize {
		clear(c.entries)
	}
	c.entries[key] = scriptEntry{script: s, err: err}
	c.mu.Unlock()
	return s, err
}

func (c *scriptCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

func cacheKey(code string, level limits.Level, globals []string) string {
	sorted := append([]string(nil), globals...)
	sort.Strings(sorted)
	h := sha256.New()
	h.Write([]byte(string(level) + "\x00" + strings.Join(sorted, ",") + "\x00"))
	h.Write([]byte(code))
	return hex.EncodeToString(h.Sum(nil))
}
