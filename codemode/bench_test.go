package codemode_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"
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
