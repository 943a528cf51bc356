package codemode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// ToolInfo describes one tool a script may call.
type ToolInfo struct {
	// Name is what the script passes to callTool; for an http or exec entry it
	// may be a pattern with '*'.
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	InputSchema map[string]any `json:"inputSchema,omitempty"`
	// OutputSchema types the result when an MCP server declares it.
	OutputSchema map[string]any `json:"outputSchema,omitempty"`
	// Kind is http, exec or mcp; Source is the config entry's name.
	Kind   string `json:"kind"`
	Source string `json:"source"`
}

// Lister lists the tools behind an mcp entry.
type Lister interface {
	ListTools(ctx context.Context) ([]ToolInfo, error)
}

// ListTools lists the server's tools under the names scripts call them by (the
// prefix added), keeping those the entry's pattern routes here. The listing is
// cached until the server announces a change or the connection is replaced.
func (p *Provider) ListTools(ctx context.Context) ([]ToolInfo, error) {
	p.mu.Lock()
	cached, gen := p.tools, p.toolsGen
	p.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	s, err := p.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("mcp server %s: %w", p.entry, err)
	}
	tools := []ToolInfo{}
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			p.lost(s, err)
			return nil, fmt.Errorf("mcp server %s: list tools: %w", p.entry, err)
		}
		name := p.prefix + t.Name
		if !limits.MatchPattern(p.entry, name) {
			continue // the entry does not route this name here
		}
		tools = append(tools, ToolInfo{
			Name: name, Description: t.Description, Kind: "mcp", Source: p.entry,
			InputSchema: schemaMap(t.InputSchema), OutputSchema: schemaMap(t.OutputSchema),
		})
	}
	p.mu.Lock()
	if p.session == s && p.toolsGen == gen {
		p.tools = tools // not stale: no change was announced while listing
	}
	p.mu.Unlock()
	return tools, nil
}

// schemaMap reads a schema of any Go form as a plain JSON object.
func schemaMap(v any) map[string]any {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// Catalog is everything a script may call, with the declarations and primer to
// put in a model's prompt. It is what `enclave tools` prints and what the
// run_code tool's description carries.
type Catalog struct {
	SecurityLevel limits.Level `json:"securityLevel"`
	Tools         []ToolInfo   `json:"tools"`
	// Problems name the servers that could not be listed; their tools are
	// missing from Tools.
	Problems     []string `json:"problems,omitempty"`
	Declarations string   `json:"declarations"`
	Primer       string   `json:"primer"`
}

// BuildCatalog lists the tools of cfg: http and exec entries from their
// description and input schema, mcp entries from their server (through
// listers). Exact names the tool policy refuses are left out.
func BuildCatalog(ctx context.Context, cfg *limits.Config, listers func(limits.Tool) Lister) *Catalog {
	c := &Catalog{SecurityLevel: cfg.SecurityLevel, Tools: []ToolInfo{}}
	for _, t := range cfg.Tools {
		tools, err := entryTools(ctx, t, listers)
		if err != nil {
			c.Problems = append(c.Problems, err.Error())
			continue
		}
		for _, ti := range tools {
			if strings.Contains(ti.Name, "*") || cfg.ToolPolicy.Allows(ti.Name) {
				c.Tools = append(c.Tools, ti)
			}
		}
	}
	c.Declarations = Declarations(c.Tools)
	c.Primer = Primer(cfg.SecurityLevel, cfg.Values())
	return c
}

func entryTools(ctx context.Context, t limits.Tool, listers func(limits.Tool) Lister) ([]ToolInfo, error) {
	switch {
	case t.MCP != nil:
		l := listers(t)
		if l == nil {
			return nil, fmt.Errorf("mcp server %s: not available", t.Name)
		}
		return l.ListTools(ctx)
	case t.HTTP != nil:
		return []ToolInfo{configTool(t, "http")}, nil
	case t.Exec != nil:
		return []ToolInfo{configTool(t, "exec")}, nil
	}
	return nil, nil
}

func configTool(t limits.Tool, kind string) ToolInfo {
	return ToolInfo{Name: t.Name, Description: t.Description, InputSchema: t.InputSchema, Kind: kind, Source: t.Name}
}

// Text is the catalog as a model reads it: the declarations, then the primer.
func (c *Catalog) Text() string {
	var b strings.Builder
	b.WriteString(c.Declarations)
	for _, p := range c.Problems {
		fmt.Fprintf(&b, "// unavailable: %s\n", p)
	}
	if len(c.Problems) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(c.Primer)
	return b.String()
}

// Registry builds the providers of mcp entries and remembers them, so the
// declarations come from the same connections the supervisor calls through. Set
// its Factory as supervisor.ProviderFactory before supervisor.New.
type Registry struct {
	log *slog.Logger

	mu        sync.Mutex
	providers map[string]*Provider // by entry name; the latest build wins
	onChange  func()
}

// NewRegistry returns an empty registry.
func NewRegistry(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, providers: map[string]*Provider{}}
}

// Factory builds and records the provider of an mcp entry.
func (r *Registry) Factory(t limits.Tool, log *slog.Logger) (supervisor.Provider, error) {
	p, err := New(t, log)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.providers[t.Name] = p
	p.OnToolsChanged(r.onChange)
	return p, nil
}

// Lister returns the recorded provider of an mcp entry, building one if the
// supervisor has not.
func (r *Registry) Lister(t limits.Tool) Lister {
	r.mu.Lock()
	p, ok := r.providers[t.Name]
	r.mu.Unlock()
	if ok {
		return p
	}
	if _, err := r.Factory(t, r.log); err != nil {
		r.log.Warn("tool provider unavailable", "tool", t.Name, "error", err)
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.providers[t.Name]
}

// OnToolsChanged sets a function called when any server's tool list may have
// changed. Set it before the providers are built.
func (r *Registry) OnToolsChanged(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onChange = f
	for _, p := range r.providers {
		p.OnToolsChanged(f)
	}
}

// Close closes every recorded provider.
func (r *Registry) Close() error {
	r.mu.Lock()
	ps := r.providers
	r.providers = map[string]*Provider{}
	r.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
