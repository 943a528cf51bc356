package codemode_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
)

func TestDeclarations(t *testing.T) {
	cases := []struct {
		name string
		tool codemode.ToolInfo
		want string
	}{
		{"no schema", codemode.ToolInfo{Name: "ping"},
			`declare function callTool(name: "ping", args?: Record<string, unknown>): Promise<any>;`},
		{"pattern name", codemode.ToolInfo{Name: "users:*", Description: "Any users tool."},
			"/** Any users tool. */\ndeclare function callTool(name: `users:${string}`, args?: Record<string, unknown>): Promise<any>;"},
		{"required and optional", codemode.ToolInfo{Name: "notes:add", InputSchema: map[string]any{
			"type": "object", "required": []any{"title"},
			"properties": map[string]any{
				"title": map[string]any{"type": "string", "description": "Short title."},
				"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"state": map[string]any{"enum": []any{"open", "closed"}},
				"x-y":   map[string]any{"type": []any{"integer", "null"}},
			},
		}}, `declare function callTool(name: "notes:add", args: {
  /** Short title. */
  title: string;
  state?: "open" | "closed";
  tags?: string[];
  "x-y"?: number | null;
}): Promise<any>;`},
		{"output schema and maps", codemode.ToolInfo{Name: "kv", InputSchema: map[string]any{"type": "object"},
			OutputSchema: map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "number"}}},
			`declare function callTool(name: "kv", args?: Record<string, unknown>): Promise<Record<string, number>>;`},
		{"comment cannot be closed early", codemode.ToolInfo{Name: "evil", Description: "a */ b"},
			"/** a *\\/ b */"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := codemode.Declarations([]codemode.ToolInfo{tc.tool})
			if !strings.Contains(got, tc.want) {
				t.Fatalf("declarations:\n%s\nwant to contain:\n%s", got, tc.want)
			}
		})
	}
}

func TestDeclarationsDepthIsBounded(t *testing.T) {
	deep := map[string]any{"type": "string"}
	for range 20 {
		deep = map[string]any{"type": "array", "items": deep}
	}
	got := codemode.Declarations([]codemode.ToolInfo{{Name: "deep", OutputSchema: deep}})
	if !strings.Contains(got, "Promise<unknown[][][][][][][]>;") {
		t.Fatalf("a 20-deep schema was not cut: %s", got)
	}
}

func TestBuildCatalog(t *testing.T) {
	cfg := limits.Default()
	cfg.SecurityLevel = limits.Secure
	cfg.ToolPolicy.Deny = []string{"t:fail", "blocked"}
	cfg.Tools = []limits.Tool{
		{Name: "blocked", Exec: &limits.ExecTool{Command: []string{"true"}}},
		{Name: "users:*", Description: "Users.", HTTP: &limits.HTTPTool{URL: "http://127.0.0.1:1/"}},
		testTool(10 * time.Second),
	}
	reg := codemode.NewRegistry(nil)
	defer reg.Close()
	cat := codemode.BuildCatalog(context.Background(), cfg, reg.Lister)

	var names []string
	for _, ti := range cat.Tools {
		names = append(names, ti.Name)
	}
	want := "users:* t:add t:crash t:echo t:grow t:pid t:profile t:slow"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("tools %q, want %q (problems %v)", got, want, cat.Problems)
	}
	text := cat.Text()
	for _, has := range []string{
		`declare function callTool(name: "t:add", args: {`,
		"Promise<{\n  sum: number;\n}>",
		"security level SECURE",
		"Also: Map, Set, Promise",
		"50 tool calls",
	} {
		if !strings.Contains(text, has) {
			t.Errorf("catalog text lacks %q:\n%s", has, text)
		}
	}
}

func TestBuildCatalogReportsDeadServer(t *testing.T) {
	cfg := limits.Default()
	tool := testTool(time.Second)
	tool.MCP.Command = []string{"/nonexistent/server"}
	cfg.Tools = []limits.Tool{tool}
	reg := codemode.NewRegistry(nil)
	defer reg.Close()
	cat := codemode.BuildCatalog(context.Background(), cfg, reg.Lister)
	if len(cat.Tools) != 0 || len(cat.Problems) != 1 || !strings.Contains(cat.Text(), "// unavailable: mcp server t:*") {
		t.Fatalf("catalog: %+v", cat)
	}
}
