package codemode_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// newSupervisor runs real worker processes (this test binary re-executed) with
// the test MCP server configured as "t:*".
func newSupervisor(t testing.TB, edit func(*limits.Config)) *supervisor.Supervisor {
	t.Helper()
	supervisor.ProviderFactory = codemode.NewProvider
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = 2, 1
	cfg.Tools = []limits.Tool{testTool(10 * time.Second)}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]},
		WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"}, CgroupRoot: "none",
	})
	if err != nil {
		t.Fatalf("new supervisor: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func run(t testing.TB, s *supervisor.Supervisor, code string) (json.RawMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Run(ctx, supervisor.Request{Code: code})
	if err != nil {
		return nil, err
	}
	return res.Value, nil
}

func TestScriptsCallMCPTools(t *testing.T) {
	s := newSupervisor(t, nil)
	cases := []struct{ name, code, want string }{
		{"two tools chained", `
			const s = await callTool('t:add', { a: 2, b: 3 });
			const p = await callTool('t:profile', { name: 'ada' + s.sum });
			return { sum: s.sum, name: p.name, len: p.len };`,
			`{"len":4,"name":"ada5","sum":5}`},
		{"error result is catchable", `
			try {
				await callTool('t:fail', { text: 'issue 42 is closed' });
				return 'not thrown';
			} catch (e) {
				return { code: e.code, message: e.message };
			}`,
			`{"code":"TOOL_ERROR","message":"issue 42 is closed"}`},
		{"server dies mid-run, next call reconnects", `
			const before = await callTool('t:pid', {});
			let caught = null;
			try { await callTool('t:crash', {}); } catch (e) { caught = e.code; }
			const after = await callTool('t:pid', {});
			const sum = await callTool('t:add', { a: 20, b: 22 });
			return { caught, restarted: before !== after, sum: sum.sum };`,
			`{"caught":"TOOL_ERROR","restarted":true,"sum":42}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, s, tc.code)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			assertJSON(t, got, tc.want)
		})
	}
}

func TestScriptToolErrors(t *testing.T) {
	s := newSupervisor(t, func(c *limits.Config) {
		c.ToolPolicy.Deny = []string{"t:fail", "t:echo"}
	})
	cases := []struct {
		name, code string
		want       api.Code
		has        string
	}{
		{"denied by toolPolicy", `return await callTool('t:fail', { text: 'x' });`,
			api.CodeToolNotAllowed, "t:fail"},
		{"uncaught error result", `return await callTool('t:profile', {});`,
			api.CodeToolError, "name"},
		{"server crash uncaught", `return await callTool('t:crash', {});`,
			api.CodeToolError, "closed the connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, s, tc.code)
			assertToolErr(t, err, tc.want, tc.has)
		})
	}
}

func TestDeniedToolIsCatchable(t *testing.T) {
	s := newSupervisor(t, func(c *limits.Config) { c.ToolPolicy.Deny = []string{"t:add"} })
	got, err := run(t, s, `
		try { await callTool('t:add', { a: 1, b: 2 }); return 'called'; }
		catch (e) { return e.code; }`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	assertJSON(t, got, `"TOOL_NOT_ALLOWED"`)
}
