package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
	"github.com/enclave-go/enclave/workerproc"
)

// The test binary doubles as the worker: the supervisor under test re-executes it
// with ENCLAVE_TEST_WORKER=1, so every test here runs real worker processes.
func TestMain(m *testing.M) {
	if os.Getenv("ENCLAVE_TEST_WORKER") == "1" {
		probeNetwork()
		dieLikeGoOOM()
		os.Exit(workerproc.Main())
	}
	goleak.VerifyTestMain(m)
}

func testConfig(t *testing.T, edit func(*limits.Config)) *limits.Config {
	t.Helper()
	cfg := limits.Default()
	cfg.Pool.Size = 2
	cfg.Pool.MinWorkers = 1
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newSupervisor(t *testing.T, cfg *limits.Config, cgroupRoot string) *supervisor.Supervisor {
	t.Helper()
	if cgroupRoot == "" {
		cgroupRoot = "none"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"},
		CgroupRoot: cgroupRoot,
	})
	if err != nil {
		t.Fatalf("new supervisor: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// withTimeout sets the config's run timeout.
func withTimeout(d time.Duration) func(*limits.Config) {
	return func(c *limits.Config) {
		ld := limits.Duration(d)
		c.Limits.Timeout = &ld
	}
}

// untilCancelled is a client tool that never answers: it returns when the run ends.
func untilCancelled(ctx context.Context, _ supervisor.ToolCall) (json.RawMessage, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func run(t *testing.T, s *supervisor.Supervisor, req supervisor.Request) (*supervisor.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.Run(ctx, req)
}

func wantCode(t *testing.T, err error, code api.Code) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return e
}

func TestRunResultAndTools(t *testing.T) {
	cfg := testConfig(t, func(c *limits.Config) {
		c.Tools = []limits.Tool{{Name: "echo", Exec: &limits.ExecTool{Command: []string{"cat"}, Timeout: limits.Duration(5 * time.Second)}}}
	})
	s := newSupervisor(t, cfg, "")
	var events []supervisor.Event
	var mu sync.Mutex
	res, err := run(t, s, supervisor.Request{
		Code: `const a = await callTool('echo', {n: 20});
const b = await callTool('users:get', {id: 7});
console.log('got', b.name);
({sum: a.n + b.id, name: b.name})`,
		ClientTools: []string{"users:*"},
		ClientTool: func(_ context.Context, c supervisor.ToolCall) (json.RawMessage, error) {
			var args struct{ ID int }
			_ = json.Unmarshal(c.Args, &args)
			return json.RawMessage(`{"id": 7, "name": "Ada"}`), nil
		},
		OnEvent: func(e supervisor.Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Value) != `{"sum":27,"name":"Ada"}` || res.Stats.ToolCallCount != 2 {
		t.Fatalf("result %s stats %+v", res.Value, res.Stats)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, e := range events {
		types = append(types, string(e.Type))
	}
	if strings.Join(types, ",") != "tool_result_applied,stdout" {
		t.Fatalf("events %v", types)
	}
}

func TestToolErrors(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		c.Tools = []limits.Tool{{Name: "broken", Exec: &limits.ExecTool{Command: []string{"sh", "-c", "echo 'disk full' >&2; exit 3"}, Timeout: limits.Duration(5 * time.Second)}}}
		c.ToolPolicy.Deny = []string{"secret:*"}
	}), "")
	cases := []struct {
		name, code string
		want       api.Code
		contains   string
	}{
		{"exec failure", "await callTool('broken', {})", api.CodeToolError, "disk full"},
		{"unknown tool", "await callTool('nope', {})", api.CodeToolNotAllowed, "nope"},
		{"denied tool", "await callTool('secret:key', {})", api.CodeToolNotAllowed, "policy"},
		{"caught", "try { await callTool('broken', {}) } catch (e) { return e.message }", "", "disk full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(t, s, supervisor.Request{Code: tc.code})
			if tc.want == "" {
				if err != nil || !strings.Contains(string(res.Value), tc.contains) {
					t.Fatalf("got %v %v", res, err)
				}
				return
			}
			e := wantCode(t, err, tc.want)
			if !strings.Contains(e.Message, tc.contains) {
				t.Fatalf("message %q", e.Message)
			}
		})
	}
}

func TestScriptErrorHasLine(t *testing.T) {
	s := newSupervisor(t, testConfig(t, nil), "")
	_, err := run(t, s, supervisor.Request{Code: "const a = 1;\nconst b = null;\nb.field = a;"})
	e := wantCode(t, err, api.CodeScript)
	if e.Line != 3 {
		t.Fatalf("line %d, want 3 (%s)", e.Line, e.Message)
	}
	_, err = run(t, s, supervisor.Request{Code: "const x = eval('1');"})
	wantCode(t, err, api.CodeValidation)
}

// A CPU-bound script that never reaches an interrupt check (a catastrophic regular
// expression) is killed by the supervisor, and the next run succeeds.
func TestHardKillAtDeadline(t *testing.T) {
	s := newSupervisor(t, testConfig(t, withTimeout(time.Second)), "")
	start := time.Now()
	_, err := run(t, s, supervisor.Request{Code: "return /^(?=[a-z])([a-z0-9]+)+$/.test('a'.repeat(40) + '!')"})
	wantCode(t, err, api.CodeTimeout)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("TIMEOUT after %s, want within 2s", d)
	}
	res, err := run(t, s, supervisor.Request{Code: "return 1"})
	if err != nil || string(res.Value) != "1" {
		t.Fatalf("next run: %v %v", res, err)
	}
}

// A script that spends its time inside long native sorts is still stopped within
// its deadline plus a second (by the interrupt between sorts or the hard kill).
func TestHardKillOfLongSort(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		d := limits.Duration(time.Second)
		big := int64(1 << 40)
		c.Limits.Timeout, c.Limits.MaxIterations = &d, &big
	}), "")
	start := time.Now()
	_, err := run(t, s, supervisor.Request{Code: `const a = [];
for (let i = 0; i < 1000000; i++) a.push((i * 7919) % 1000003);
for (let r = 0; r < 50; r++) { a.reverse(); a.sort(); }
return a.length`})
	code := api.CodeOf(err)
	if code != api.CodeTimeout {
		t.Fatalf("want TIMEOUT, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("TIMEOUT after %s with a 1s limit", d)
	}
}

func TestTimeoutOfBusyLoop(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		d := limits.Duration(time.Second)
		big := int64(1 << 40)
		c.Limits.Timeout, c.Limits.MaxIterations = &d, &big
	}), "")
	start := time.Now()
	_, err := run(t, s, supervisor.Request{Code: "let i = 0; while (true) { i++ }"})
	wantCode(t, err, api.CodeTimeout)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("TIMEOUT after %s, want within 2s", d)
	}
}

func TestKilledWorkerIsCrash(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) { c.Pool.Size = 1 }), "")
	pids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := run(t, s, supervisor.Request{
			Code:        "await callTool('hold', {}); return 1",
			ClientTools: []string{"hold"},
			ClientTool: func(ctx context.Context, _ supervisor.ToolCall) (json.RawMessage, error) {
				pids <- workerPID(t)
				<-ctx.Done()
				return nil, ctx.Err()
			},
		})
		done <- err
	}()
	pid := <-pids
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", pid, err)
	}
	wantCode(t, <-done, api.CodeWorkerCrashed)
	res, err := run(t, s, supervisor.Request{Code: "return 2"})
	if err != nil || string(res.Value) != "2" {
		t.Fatalf("next run: %v %v", res, err)
	}
}

// workerPID finds the one worker process of this test binary.
func workerPID(t *testing.T) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !strings.Contains(string(env), "ENCLAVE_TEST_WORKER=1") {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if fields := strings.Fields(string(stat)); len(fields) > 3 && fields[3] == strconv.Itoa(self) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	t.Fatal("no worker process found")
	return 0
}

func TestRecycleAfterMaxExecutions(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers, c.Pool.MaxExecutionsPerWorker = 1, 1, 3
	}), "")
	var pids []int
	for i := 0; i < 4; i++ {
		res, err := run(t, s, supervisor.Request{Code: "return 1"})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, res.WorkerPID)
	}
	if pids[0] != pids[1] || pids[1] != pids[2] || pids[3] == pids[2] {
		t.Fatalf("pids %v: want the same worker for 3 runs, then a new one", pids)
	}
}

func TestQueueFull(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers, c.Pool.MaxQueueSize = 1, 1, 2
	}), "")
	release := make(chan struct{})
	hold := func(ctx context.Context, _ supervisor.ToolCall) (json.RawMessage, error) {
		select {
		case <-release:
			return json.RawMessage(`1`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var execs []*supervisor.Execution
	var full int
	for i := 0; i < 10; i++ {
		ex, err := s.Start(context.Background(), supervisor.Request{
			Code: "return await callTool('hold', {})", ClientTools: []string{"hold"}, ClientTool: hold,
		})
		if err != nil {
			wantCode(t, err, api.CodeQueueFull)
			full++
			continue
		}
		execs = append(execs, ex)
	}
	if full != 7 || len(execs) != 3 {
		t.Fatalf("%d QUEUE_FULL and %d admitted, want 7 and 3", full, len(execs))
	}
	close(release)
	for _, ex := range execs {
		res, err := ex.Wait(context.Background())
		if err != nil || string(res.Value) != "1" {
			t.Fatalf("queued run: %v %v", res, err)
		}
	}
}

func TestQueueTimeout(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers = 1, 1
		c.Pool.QueueTimeout = limits.Duration(200 * time.Millisecond)
	}), "")
	release := make(chan struct{})
	defer close(release)
	first, err := s.Start(context.Background(), supervisor.Request{
		Code: "return await callTool('hold', {})", ClientTools: []string{"hold"},
		ClientTool: func(ctx context.Context, _ supervisor.ToolCall) (json.RawMessage, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return json.RawMessage(`1`), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = first.Wait(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	_, err = run(t, s, supervisor.Request{Code: "return 1"})
	wantCode(t, err, api.CodeQueueTimeout)
}

func TestCancel(t *testing.T) {
	s := newSupervisor(t, testConfig(t, nil), "")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() { <-started; cancel() }()
	_, err := s.Run(ctx, supervisor.Request{
		Code: "return await callTool('hold', {})", ClientTools: []string{"hold"},
		ClientTool: func(ctx context.Context, _ supervisor.ToolCall) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	wantCode(t, err, api.CodeCancelled)
}

func TestRequestMayNotLoosen(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) { c.SecurityLevel = limits.Secure }), "")
	_, err := run(t, s, supervisor.Request{Code: "return 1", Level: "PERMISSIVE"})
	wantCode(t, err, api.CodeInvalidRequest)
	big := int64(1 << 30)
	_, err = run(t, s, supervisor.Request{Code: "return 1", Limits: limits.Overrides{MaxIterations: &big}})
	wantCode(t, err, api.CodeInvalidRequest)
	res, err := run(t, s, supervisor.Request{Code: "return 1", Level: "STRICT"})
	if err != nil || string(res.Value) != "1" {
		t.Fatalf("stricter level: %v %v", res, err)
	}
}

func TestCloseLeavesNoWorker(t *testing.T) {
	cfg := testConfig(t, nil)
	ctx := context.Background()
	s, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"}, CgroupRoot: "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, supervisor.Request{Code: "return 1"}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	if pids := childWorkers(); len(pids) != 0 {
		t.Fatalf("workers left after Close: %v", pids)
	}
}

func childWorkers() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat))
		if len(fields) > 3 && fields[3] == self && fields[2] != "Z" {
			out = append(out, e.Name())
		}
	}
	return out
}

// Idle workers above minWorkers are stopped after idleTimeout; a burst brings the pool
// back up to what it needs.
func TestIdleShrink(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers = 3, 1
		c.Pool.IdleTimeout = limits.Duration(300 * time.Millisecond)
	}), "")
	if live := s.Stats().Live; live != 3 {
		t.Fatalf("prewarmed %d workers, want 3", live)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Live != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if live := s.Stats().Live; live != 1 {
		t.Fatalf("%d workers after idling, want minWorkers 1", live)
	}
	if res, err := run(t, s, supervisor.Request{Code: "return 'still works'"}); err != nil || string(res.Value) != `"still works"` {
		t.Fatalf("run after shrink: %v %v", res, err)
	}
}

// dieLikeGoOOM makes a test worker die the way the Go runtime does when an
// allocation fails (a fatal error on stderr, exit 2), shortly after it starts.
func dieLikeGoOOM() {
	if os.Getenv("ENCLAVE_TEST_DIE_OOM") != "1" {
		return
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		// The runtime writes to file descriptor 2 itself; go-plugin only redirects
		// the os.Stderr variable.
		_, _ = syscall.Write(2, []byte("fatal error: runtime: out of memory\n"))
		os.Exit(2)
	}()
}

func TestGoRuntimeOOMIsMemoryLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := supervisor.New(ctx, supervisor.Options{
		Config:        testConfig(t, func(c *limits.Config) { c.Pool.Size, c.Pool.MinWorkers = 1, 1 }),
		WorkerCommand: []string{os.Args[0]}, CgroupRoot: "none",
		WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1", "ENCLAVE_TEST_DIE_OOM=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, err = s.Run(ctx, supervisor.Request{
		Code: "return await callTool('hold', {})", ClientTools: []string{"hold"},
		ClientTool: untilCancelled,
	})
	wantCode(t, err, api.CodeMemoryLimit)
}

// A client tool that never answers ends the run at its deadline, not later.
func TestUnansweredClientToolTimesOut(t *testing.T) {
	s := newSupervisor(t, testConfig(t, withTimeout(time.Second)), "")
	start := time.Now()
	_, err := run(t, s, supervisor.Request{
		Code: "return await callTool('ext:a', {})", ClientTools: []string{"ext:*"},
		ClientTool: untilCancelled,
	})
	wantCode(t, err, api.CodeTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("TIMEOUT after %s with a 1s limit", d)
	}
	if res, err := run(t, s, supervisor.Request{Code: "return 2"}); err != nil || string(res.Value) != "2" {
		t.Fatalf("next run: %v %v", res, err)
	}
}

func TestRequestRefusals(t *testing.T) {
	s := newSupervisor(t, testConfig(t, nil), "")
	tiny := limits.Duration(time.Microsecond)
	cases := map[string]supervisor.Request{
		"sub-millisecond timeout":   {Code: "return 1", Limits: limits.Overrides{Timeout: &tiny}},
		"global shadows a built-in": {Code: "return 1", Globals: map[string]json.RawMessage{"Object": json.RawMessage("5")}},
		"global shadows callTool":   {Code: "return 1", Globals: map[string]json.RawMessage{"callTool": json.RawMessage("5")}},
		"global not an identifier":  {Code: "return 1", Globals: map[string]json.RawMessage{"a-b": json.RawMessage("5")}},
		"global reserved prefix":    {Code: "return 1", Globals: map[string]json.RawMessage{"__enclave_tick": json.RawMessage("5")}},
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := run(t, s, req)
			wantCode(t, err, api.CodeInvalidRequest)
		})
	}
	res, err := run(t, s, supervisor.Request{Code: "return user.name", Globals: map[string]json.RawMessage{"user": json.RawMessage(`{"name":"Ada"}`)}})
	if err != nil || string(res.Value) != `"Ada"` {
		t.Fatalf("custom global: %v %v", res, err)
	}
}

// A request for a stricter level gets that level's own limits, held under the
// daemon's: a daemon configured with a long timeout does not lend it to STRICT.
func TestStricterLevelKeepsItsLimits(t *testing.T) {
	s := newSupervisor(t, testConfig(t, func(c *limits.Config) {
		d := limits.Duration(60 * time.Second)
		c.Limits.Timeout = &d
	}), "")
	ex, err := s.Start(context.Background(), supervisor.Request{Code: "return 1", Level: "STRICT"})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Abandon()
	if got := ex.Limits().TimeoutMs; got != 5000 {
		t.Fatalf("STRICT timeout %d ms, want the level's 5000", got)
	}
	deep := json.RawMessage(`{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}`)
	_, err = run(t, s, supervisor.Request{Code: "return 1", Level: "STRICT", Globals: map[string]json.RawMessage{"g": deep}})
	wantCode(t, err, api.CodeInvalidRequest)
}
