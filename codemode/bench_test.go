package codemode_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkProviderCall is one tools/call round trip to a stdio server.
func BenchmarkProviderCall(b *testing.B) {
	p := newTestProvider(b, 10*time.Second)
	args := json.RawMessage(`{"a":1,"b":2}`)
	ctx := context.Background()
	for b.Loop() {
		if _, err := p.Call(ctx, "t:add", args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScriptTenMCPCalls is a whole run in a worker process that makes
// ten MCP calls in a row.
func BenchmarkScriptTenMCPCalls(b *testing.B) {
	s := newSupervisor(b, nil)
	code := `let sum = 0;
		for (let i = 0; i < 10; i++) { const r = await callTool('t:add', { a: i, b: 1 }); sum += r.sum; }
		return sum;`
	for b.Loop() {
		if _, err := run(b, s, code); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunCode is one run_code call over an in-memory MCP transport: a
// script with two MCP tool calls, its result and console sent back.
func BenchmarkRunCode(b *testing.B) {
	cs := connectRunCode(b)
	args := map[string]any{"code": `const s = await callTool('t:add', { a: 1, b: 2 });
		const p = await callTool('t:profile', { name: 'x' }); console.log(p.name); return s.sum;`}
	for b.Loop() {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_code", Arguments: args})
		if err != nil || res.IsError {
			b.Fatalf("run_code: %v %+v", err, res)
		}
	}
}
