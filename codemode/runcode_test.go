package codemode_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/codemode"
)

// connectRunCode serves run_code over an in-memory transport on a real
// supervisor and returns a client session to it.
func connectRunCode(t testing.TB) *mcp.ClientSession {
	t.Helper()
	s := newSupervisor(t, nil)
	reg := codemode.NewRegistry(nil)
	t.Cleanup(func() { reg.Close() })
	cat := codemode.BuildCatalog(context.Background(), s.Config(), reg.Lister)
	rc := codemode.NewRunCode(s, cat, &mcp.Implementation{Name: "enclave", Version: "test"})
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := rc.Server().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestRunCode(t *testing.T) {
	cs := connectRunCode(t)
	cases := []struct {
		name    string
		args    map[string]any
		isError bool
		want    string // a substring of the text content
	}{
		{"value and console", map[string]any{"code": `
			const s = await callTool('t:add', { a: 40, b: 2 });
			console.log('sum is', s.sum);
			console.warn('careful');
			return { answer: s.sum };`},
			false, `"result":{"answer":42},"console":["sum is 42","[warn] careful"]`},
		{"hostile script", map[string]any{"code": `eval('1')`}, true, "VALIDATION_ERROR: "},
		{"tighter tool budget", map[string]any{"code": `
			await callTool('t:pid', {}); await callTool('t:pid', {}); return 1;`, "maxToolCalls": 1},
			true, "MAX_TOOL_CALLS"},
		{"tighter timeout", map[string]any{"code": `await callTool('t:slow', { ms: 5000 }); return 1;`, "timeoutMs": 200},
			true, "TIMEOUT"},
		{"empty code", map[string]any{"code": " "}, true, "INVALID_REQUEST: code is empty"},
		{"looser limits refused", map[string]any{"code": "1", "timeoutMs": 3_600_000}, true, "INVALID_REQUEST"},
		{"zero timeout refused", map[string]any{"code": "1", "timeoutMs": 0}, true, "INVALID_REQUEST"},
		{"negative timeout refused", map[string]any{"code": "1", "timeoutMs": -1}, true, "INVALID_REQUEST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_code", Arguments: tc.args})
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			text := res.Content[0].(*mcp.TextContent).Text
			if res.IsError != tc.isError || !strings.Contains(text, tc.want) {
				t.Fatalf("isError=%v text=%s; want isError=%v containing %s", res.IsError, text, tc.isError, tc.want)
			}
		})
	}
}

func TestRunCodeStructuredError(t *testing.T) {
	cs := connectRunCode(t)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_code",
		Arguments: map[string]any{"code": "console.log('before');\nconst x = this;"}})
	if err != nil {
		t.Fatal(err)
	}
	var out codemode.RunCodeOutput
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !res.IsError || out.Error == nil || out.Error.Code != "VALIDATION_ERROR" || out.Error.Line != 2 {
		t.Fatalf("structured content: %s", b)
	}
}

func TestRunCodeListsDeclarations(t *testing.T) {
	cs := connectRunCode(t)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) != 1 || tools.Tools[0].Name != "run_code" {
		t.Fatalf("tools: %+v", tools.Tools)
	}
	desc := tools.Tools[0].Description
	for _, has := range []string{`declare function callTool(name: "t:add"`, "AgentScript (security level STANDARD)"} {
		if !strings.Contains(desc, has) {
			t.Fatalf("description lacks %q:\n%s", has, desc)
		}
	}
}
