package workerproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/dop251/goja"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// These benchmarks run the worker's side of a run in-process (no gRPC, no
// supervisor): what a warm worker spends per run. Profile them with
//
//	go test -run '^$' -bench Execute -cpuprofile cpu.out ./workerproc/
//	go tool pprof -top workerproc.test cpu.out

// benchStart wraps body as the agentscript transform does and names it by hash,
// so the worker's program cache hits after the first run.
func benchStart(body string) *ipcpb.Start {
	src := "(async () => {" + body + "\n})()"
	sum := sha256.Sum256([]byte(src))
	return &ipcpb.Start{Source: src, Hash: hex.EncodeToString(sum[:]), Limits: &ipcpb.Limits{
		TimeoutMs: 30000, MaxIterations: 10000, MaxToolCalls: 100, MaxConsoleCalls: 1000,
		MaxConsoleBytes: 1 << 20, MaxValueDepth: 20, MaxValueBytes: 5 << 20,
		MemoryBudgetBytes: 128 << 20, MaxCallDepth: 1000,
	}}
}

const benchSimple = `let sum = 0;
for (let i = 1; i <= 100; i++) { __enclave_tick(); sum += (i * i) % 7; }
return sum;`

// benchRun runs start on s, answering tool calls with {"sum": a+b}, and checks
// the result.
func benchRun(b *testing.B, s *Server, start *ipcpb.Start, want string) {
	inbox := make(chan *ipcpb.ToolResult, 8)
	send := func(m *ipcpb.WorkerMessage) error {
		if c := m.GetToolCall(); c != nil {
			inbox <- benchAdd(c)
		}
		return nil
	}
	out := s.execute(context.Background(), start, send, inbox)
	if f := out.GetFailure(); f != nil {
		b.Fatalf("%s: %s", f.Code, f.Message)
	}
	if got := string(out.GetFinal().ResultJson); got != want {
		b.Fatalf("result %s, want %s", got, want)
	}
}

func benchAdd(c *ipcpb.ToolCall) *ipcpb.ToolResult {
	var in struct{ A, B int64 }
	_ = json.Unmarshal(c.ArgsJson, &in)
	return &ipcpb.ToolResult{CallId: c.CallId, ResultJson: []byte(`{"sum":` + strconv.FormatInt(in.A+in.B, 10) + `}`)}
}

// BenchmarkExecuteSimple is a warm worker's whole run of the simple workload: a
// fresh runtime, its lockdown, the cached program, the result's encoding.
func BenchmarkExecuteSimple(b *testing.B) {
	s, start := NewServer(), benchStart(benchSimple)
	benchRun(b, s, start, "201")
	b.ReportAllocs()
	for b.Loop() {
		benchRun(b, s, start, "201")
	}
}

// BenchmarkExecuteTools is the tools workload: four tool calls in a row,
// answered at once by the host side.
func BenchmarkExecuteTools(b *testing.B) {
	body := `let v = 0;
for (let i = 1; i <= 4; i++) { __enclave_tick(); v = (await callTool('bench:add', { a: v, b: i })).sum; }
return v;`
	s, start := NewServer(), benchStart(body)
	benchRun(b, s, start, "10")
	b.ReportAllocs()
	for b.Loop() {
		benchRun(b, s, start, "10")
	}
}

// BenchmarkSetup is the fresh runtime alone: goja.New, host functions, guards
// and the lockdown, the part of every run that does not depend on the script.
func BenchmarkSetup(b *testing.B) {
	lim := benchStart("").Limits
	b.ReportAllocs()
	for b.Loop() {
		r := &run{lim: lim, ctx: context.Background(), stopped: make(chan struct{}),
			pending: map[string]pendingCall{}, toolErrors: map[*goja.Object]string{}}
		if err := r.setup(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGojaNew is goja's own share of BenchmarkSetup.
func BenchmarkGojaNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = goja.New()
	}
}

// BenchmarkCompile is a worker's program cache miss for the simple script.
func BenchmarkCompile(b *testing.B) {
	src := benchStart(benchSimple).Source
	b.ReportAllocs()
	for b.Loop() {
		if _, err := goja.Compile(scriptName, src, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetupWithoutLockdown is BenchmarkSetup minus the lockdown script:
// their difference is what deleting and freezing the intrinsics costs per run.
func BenchmarkSetupWithoutLockdown(b *testing.B) {
	lim := benchStart("").Limits
	b.ReportAllocs()
	for b.Loop() {
		r := &run{lim: lim, ctx: context.Background(), stopped: make(chan struct{}),
			pending: map[string]pendingCall{}, toolErrors: map[*goja.Object]string{}}
		r.rt = goja.New()
		r.rt.SetMaxCallStackSize(int(lim.MaxCallDepth))
		if err := r.captureIntrinsics(); err != nil {
			b.Fatal(err)
		}
		r.installGuards()
		if _, err := r.installGlobals(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScriptInLockedRuntime runs the simple script again and again in one
// runtime set up once: what a run would cost if a locked-down runtime served
// several runs. It is a lower bound for comparison, not how the worker runs.
func BenchmarkScriptInLockedRuntime(b *testing.B) {
	start := benchStart(benchSimple)
	r := &run{lim: start.Limits, ctx: context.Background(), stopped: make(chan struct{}),
		pending: map[string]pendingCall{}, toolErrors: map[*goja.Object]string{}}
	if err := r.setup(nil); err != nil {
		b.Fatal(err)
	}
	prog, err := NewServer().compile(start)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.iterations = 0
		val, err := r.rt.RunProgram(prog)
		if err != nil {
			b.Fatal(err)
		}
		out := r.await(val)
		if got := string(out.GetFinal().GetResultJson()); got != "201" {
			b.Fatalf("result %q (%v)", got, out.GetFailure())
		}
	}
}
