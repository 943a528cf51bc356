package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPOverStdio drives the built enclave binary's `mcp` command with the
// SDK's client, as a model host would: list the tools, run the example script,
// and send a hostile one.
func TestMCPOverStdio(t *testing.T) {
	dir := t.TempDir()
	enclave := goBuild(t, dir, ".", "enclave")
	cfg := codemodeConfig(t, dir)
	cmd := exec.Command(enclave, "mcp", "--config", cfg)
	cs := connectMCP(t, &mcp.CommandTransport{Command: cmd})

	t.Run("lists run_code with the declarations", func(t *testing.T) {
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tools) != 1 || res.Tools[0].Name != "run_code" {
			t.Fatalf("tools: %+v", res.Tools)
		}
		desc := res.Tools[0].Description
		for _, has := range []string{
			`declare function callTool(name: "tracker:create_issue", args: {`,
			`declare function callTool(name: "tracker:list_issues", args?: {`,
			"// AgentScript (security level STANDARD)",
		} {
			if !strings.Contains(desc, has) {
				t.Fatalf("description lacks %q:\n%s", has, desc)
			}
		}
	})
	t.Run("runs the example script", func(t *testing.T) {
		script, err := os.ReadFile("../../examples/codemode/triage.js")
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile("../../examples/codemode/triage.expected.json")
		if err != nil {
			t.Fatal(err)
		}
		out := runCode(t, cs, string(script), false)
		assertSameJSON(t, out["result"], want)
		console := fmt.Sprint(out["console"])
		if !strings.Contains(console, "expected failure: TOOL_ERROR: issue 999 does not exist") {
			t.Fatalf("console: %s", console)
		}
	})
	t.Run("refuses a hostile script", func(t *testing.T) {
		out := runCode(t, cs, `const f = eval; f('1')`, true)
		e, _ := out["error"].(map[string]any)
		if e["code"] != "VALIDATION_ERROR" {
			t.Fatalf("error: %+v", out)
		}
	})
}

func connectMCP(t *testing.T, tr mcp.Transport) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// runCode calls run_code and returns its structured content, checking the
// error flag and that the text names the error code first.
func runCode(t *testing.T, cs *mcp.ClientSession, code string, wantErr bool) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_code", Arguments: map[string]any{"code": code}})
	if err != nil {
		t.Fatalf("run_code: %v", err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if res.IsError != wantErr {
		t.Fatalf("isError=%v: %s", res.IsError, text)
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	if e, ok := out["error"].(map[string]any); ok && !strings.HasPrefix(text, fmt.Sprint(e["code"])+": ") {
		t.Fatalf("error text %q does not start with the code", text)
	}
	return out
}

func assertSameJSON(t *testing.T, got any, want []byte) {
	t.Helper()
	var w any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("got %s, want %s", gb, wb)
	}
}

// TestMCPOverHTTP runs `enclave mcp --http` on a loopback port and calls
// run_code over streamable HTTP.
func TestMCPOverHTTP(t *testing.T) {
	dir := t.TempDir()
	enclave := goBuild(t, dir, ".", "enclave")
	cfg := codemodeConfig(t, dir)
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(enclave, "mcp", "--config", cfg, "--http", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	waitListening(t, addr)

	cs := connectMCP(t, &mcp.StreamableClientTransport{Endpoint: "http://" + addr})
	out := runCode(t, cs, `const r = await callTool('tracker:list_issues', { label: 'feature' });
		r.issues.map((i) => i.title)`, false)
	assertSameJSON(t, out["result"], []byte(`["Add dark mode"]`))
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func TestMCPRefusesNonLoopback(t *testing.T) {
	cases := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true}, {"[::1]:8080", true}, {"localhost:8080", true},
		{"0.0.0.0:8080", false}, {":8080", false}, {"10.0.0.1:8080", false}, {"example.com:80", false},
	}
	for _, tc := range cases {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}
