package codemode_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
)

// testTool is an mcp entry that starts this test binary as the test server.
func testTool(timeout time.Duration) limits.Tool {
	return limits.Tool{Name: "t:*", MCP: &limits.MCPTool{
		Command: []string{os.Args[0]}, Env: map[string]string{"ENCLAVE_TEST_MCP": "1"},
		Prefix: "t:", Timeout: limits.Duration(timeout),
	}}
}

func newTestProvider(t testing.TB, timeout time.Duration) *codemode.Provider {
	t.Helper()
	p, err := codemode.New(testTool(timeout), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProviderResultMapping(t *testing.T) {
	p := newTestProvider(t, 10*time.Second)
	cases := []struct {
		name, tool, args string
		want             string // JSON value, or "" when an error is expected
		code             api.Code
		errHas           string
	}{
		{name: "structured content", tool: "t:add", args: `{"a":2,"b":3}`, want: `{"sum":5}`},
		{name: "plain text", tool: "t:echo", args: `{"text":"hello there"}`, want: `"hello there"`},
		{name: "JSON text", tool: "t:profile", args: `{"name":"ada"}`, want: `{"name":"ada","len":3}`},
		{name: "no arguments", tool: "t:pid", args: ``},
		{name: "error result", tool: "t:fail", args: `{"text":"issue 42 is closed"}`, code: api.CodeToolError, errHas: "issue 42 is closed"},
		{name: "unknown tool", tool: "t:nope", args: `{}`, code: api.CodeToolError, errHas: "nope"},
		{name: "outside the prefix", tool: "u:add", args: `{}`, code: api.CodeToolNotAllowed, errHas: "not served"},
		{name: "array arguments", tool: "t:add", args: `[1,2]`, code: api.CodeToolError, errHas: "must be an object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Call(context.Background(), tc.tool, json.RawMessage(tc.args))
			if tc.code != "" {
				assertToolErr(t, err, tc.code, tc.errHas)
				return
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if tc.want == "" {
				if !json.Valid(got) || len(got) < 3 {
					t.Fatalf("got %s, want a JSON value", got)
				}
				return
			}
			assertJSON(t, got, tc.want)
		})
	}
}

func assertToolErr(t *testing.T, err error, code api.Code, has string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error containing %q, got success", code, has)
	}
	got := api.CodeToolError // what the supervisor makes of a plain error
	var ae *api.Error
	if errors.As(err, &ae) {
		got = ae.Code
	}
	if got != code || !strings.Contains(err.Error(), has) {
		t.Fatalf("got %s (%v), want %s containing %q", got, err, code, has)
	}
}

func assertJSON(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("got %s, want %s", gb, wb)
	}
}

func TestProviderReconnectsAfterCrash(t *testing.T) {
	p := newTestProvider(t, 10*time.Second)
	ctx := context.Background()
	first := callString(t, p, "t:pid")

	_, err := p.Call(ctx, "t:crash", json.RawMessage(`{}`))
	assertToolErr(t, err, api.CodeToolError, "unavailable")
	t.Logf("crash error: %v", err)
	if strings.Contains(err.Error(), "jsonrpc") {
		t.Fatalf("error leaks transport internals: %v", err)
	}

	second := callString(t, p, "t:pid")
	if first == second {
		t.Fatalf("pid %s after the crash: no new server was started", second)
	}
}

func callString(t *testing.T, p *codemode.Provider, tool string) string {
	t.Helper()
	out, err := p.Call(context.Background(), tool, nil)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return string(out)
}

func TestProviderTimeout(t *testing.T) {
	p := newTestProvider(t, 300*time.Millisecond)
	_, err := p.Call(context.Background(), "t:slow", json.RawMessage(`{"ms":5000}`))
	assertToolErr(t, err, api.CodeToolTimeout, "did not answer within 300ms")

	// The session survives a slow tool: the next call is answered.
	got, err := p.Call(context.Background(), "t:echo", json.RawMessage(`{"text":"still here"}`))
	if err != nil || string(got) != `"still here"` {
		t.Fatalf("echo after timeout: %s, %v", got, err)
	}
}

func TestProviderBacksOffWhenServerCannotStart(t *testing.T) {
	tool := testTool(time.Second)
	tool.MCP.Command = []string{"/nonexistent/mcp-server"}
	p, err := codemode.New(tool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The first failure is retried at once, the second waits.
	for _, want := range []string{"connect", "connect", "next attempt in"} {
		_, err := p.Call(context.Background(), "t:add", nil)
		assertToolErr(t, err, api.CodeToolError, want)
	}
}

func TestProviderClosed(t *testing.T) {
	p := newTestProvider(t, time.Second)
	callString(t, p, "t:pid")
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err := p.Call(context.Background(), "t:pid", nil)
	assertToolErr(t, err, api.CodeToolError, "closed")
}

func TestListTools(t *testing.T) {
	tool := testTool(10 * time.Second)
	tool.Name = "t:a*" // the entry routes only names starting with t:a
	p, err := codemode.New(tool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tools, err := p.ListTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 1 || tools[0].Name != "t:add" || tools[0].Description != "Add two numbers." {
		t.Fatalf("tools: %+v", tools)
	}
	if tools[0].InputSchema["type"] != "object" || tools[0].OutputSchema == nil {
		t.Fatalf("schemas: %+v", tools[0])
	}
}

func TestProviderFollowsToolListChanges(t *testing.T) {
	p := newTestProvider(t, 10*time.Second)
	changed := make(chan struct{}, 10)
	p.OnToolsChanged(func() { changed <- struct{}{} })
	before := toolNames(t, p)
	if strings.Contains(before, "t:extra") {
		t.Fatalf("extra listed before it exists: %s", before)
	}
	callString(t, p, "t:grow")
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change notification")
	}
	if after := toolNames(t, p); !strings.Contains(after, "t:extra") {
		t.Fatalf("extra not listed after the change: %s", after)
	}
}

func toolNames(t *testing.T, p *codemode.Provider) string {
	t.Helper()
	tools, err := p.ListTools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range tools {
		names = append(names, ti.Name)
	}
	return strings.Join(names, " ")
}

func TestProviderSlowStartConnectsForALaterCall(t *testing.T) {
	tool := testTool(200 * time.Millisecond)
	tool.MCP.Env["ENCLAVE_TEST_MCP_DELAY"] = "1s"
	p, err := codemode.New(tool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Call(context.Background(), "t:pid", nil)
	assertToolErr(t, err, api.CodeToolTimeout, "did not answer within 200ms")

	// The dial goes on after the first call gave up; a later call finds it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := p.Call(context.Background(), "t:pid", nil)
		if err == nil && len(out) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never connected: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
