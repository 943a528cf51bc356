package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
	"github.com/enclave-go/enclave/workerproc"
)

// benchWorkerEnv makes this test binary a worker process: the in-process daemon
// below starts its workers by re-running the test binary with it set.
const benchWorkerEnv = "ENCLAVE_BENCH_WORKER"

func init() {
	if os.Getenv(benchWorkerEnv) == "1" {
		os.Exit(workerproc.Main())
	}
}

// startBenchBackend starts a real supervisor (with real worker processes) and
// the sessions backend over it, both stopped at the end of the test.
func startBenchBackend(t testing.TB) *supervisor.Sessions {
	t.Helper()
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = 2, 2
	sup, err := supervisor.New(context.Background(), supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]},
		WorkerEnv: []string{benchWorkerEnv + "=1"}, CgroupRoot: "none",
	})
	if err != nil {
		t.Fatalf("start supervisor: %v", err)
	}
	sessions := supervisor.NewSessions(sup, time.Minute, 1000)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sup.Close(ctx)
		sessions.Close()
	})
	return sessions
}

// startBenchDaemon runs the daemon's pieces in-process (startBenchBackend and the
// API handler) on a Unix socket in a temporary directory, and returns the
// socket's path.
func startBenchDaemon(t testing.TB) string {
	t.Helper()
	sessions := startBenchBackend(t)
	path := filepath.Join(t.TempDir(), "enclave.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: api.NewHandler(sessions, api.HandlerOptions{})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return path
}

// runBenchCmd runs `enclave bench args...` in-process.
func runBenchCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"bench"}, args...), stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestBenchJSON(t *testing.T) {
	socket := startBenchDaemon(t)
	for _, w := range []string{"simple", "tools"} {
		t.Run(w, func(t *testing.T) {
			code, out, stderr := runBenchCmd(t, "--socket", socket, "--workload", w,
				"--concurrency", "3", "--duration", "400ms", "--warmup", "100ms", "--json")
			var rep map[string]any
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("exit %d, stdout is not one JSON object: %v\n%s\nstderr:\n%s", code, err, out, stderr)
			}
			checkBenchShape(t, rep, w)
			if want := benchExit(rep["errors"].(float64)); code != want {
				t.Fatalf("exit %d with %v errors, want %d", code, rep["errors"], want)
			}
		})
	}
}

// TestBenchOverTCP drives the --broker path: TCP, and the API key sent as a
// bearer token. A handler over the local backend stands in for a broker.
func TestBenchOverTCP(t *testing.T) {
	sessions := startBenchBackend(t)
	srv := httptest.NewServer(api.NewHandler(sessions, api.HandlerOptions{Authenticate: api.BearerAuth([]string{"good-key"})}))
	t.Cleanup(srv.Close)
	cases := []struct {
		key      string
		exit     int
		wantCode string
	}{
		{"good-key", 0, ""},
		{"bad-key", 1, string(api.CodeUnauthorized)},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			code, out, stderr := runBenchCmd(t, "--broker", srv.URL, "--api-key", tc.key, "--workload", "tools",
				"--concurrency", "2", "--duration", "300ms", "--warmup", "0s", "--json")
			if tc.wantCode != "" {
				// A refusal every run would get ends the bench after one try.
				if code != tc.exit || out != "" || !strings.Contains(stderr, tc.wantCode) {
					t.Fatalf("exit %d stdout %q stderr %q, want exit %d naming %s", code, out, stderr, tc.exit, tc.wantCode)
				}
				return
			}
			var rep benchReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != tc.exit {
				t.Fatalf("exit %d (want %d), %v\nstdout:\n%s\nstderr:\n%s", code, tc.exit, err, out, stderr)
			}
			if rep.Target != srv.URL {
				t.Fatalf("target %q, want %q", rep.Target, srv.URL)
			}
			if tc.wantCode == "" && (rep.Executions < 1 || rep.Errors != 0) {
				t.Fatalf("executions %d errors %v", rep.Executions, rep.ErrorsByCode)
			}
		})
	}
}

// checkBenchShape asserts the JSON summary's fields and that its numbers agree with
// each other (never how big they are).
func checkBenchShape(t *testing.T, rep map[string]any, workload string) {
	t.Helper()
	if rep["workload"] != workload || rep["concurrency"] != 3.0 || rep["warmupSeconds"] != 0.1 {
		t.Fatalf("header fields: %v", rep)
	}
	if !strings.HasPrefix(rep["target"].(string), "unix:") {
		t.Fatalf("target %v", rep["target"])
	}
	n := rep["executions"].(float64)
	if n < 1 {
		t.Fatalf("executions %v", n)
	}
	checkBenchErrors(t, rep)
	secs, rate := rep["durationSeconds"].(float64), rep["executionsPerSecond"].(float64)
	if secs < 0.4 || rate <= 0 || benchAbs(rate*secs-n) > 0.5 {
		t.Fatalf("rate %v over %vs does not make %v executions", rate, secs, n)
	}
	lat := rep["latencyMs"].(map[string]any)
	p50, p90, p99, mx := lat["p50"].(float64), lat["p90"].(float64), lat["p99"].(float64), lat["max"].(float64)
	if p50 <= 0 || p50 > p90 || p90 > p99 || p99 > mx || lat["mean"].(float64) <= 0 {
		t.Fatalf("latencies out of order: %v", lat)
	}
}

// checkBenchErrors asserts that no run failed and that no code is listed.
func checkBenchErrors(t *testing.T, rep map[string]any) {
	t.Helper()
	if rep["errors"].(float64) != 0 || len(rep["errorsByCode"].(map[string]any)) != 0 {
		t.Fatalf("errors %v: %v (%v)", rep["errors"], rep["errorsByCode"], rep["errorExamples"])
	}
}

func benchExit(errs float64) int {
	if errs > 0 {
		return 1
	}
	return 0
}

func benchAbs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestBenchTextAndProgress(t *testing.T) {
	socket := startBenchDaemon(t)
	old := progressInterval
	progressInterval = 50 * time.Millisecond
	t.Cleanup(func() { progressInterval = old })
	code, out, stderr := runBenchCmd(t, "--socket", socket, "--workload", "simple",
		"--concurrency", "2", "--duration", "300ms", "--warmup", "0s")
	if code != 0 {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, want := range []string{"workload simple, concurrency 2", "executions/s", "right results", "p50", "p90", "p99", "max"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Count(stderr, "bench run ")
	if lines < 2 || strings.Contains(stderr, "bench warmup") {
		t.Fatalf("want several run progress lines and no warm-up, got:\n%s", stderr)
	}
}

// TestBenchCountsFailures runs doctored workloads against the real daemon: a
// wrong answer and a failing script are both errors, by code.
func TestBenchCountsFailures(t *testing.T) {
	socket := startBenchDaemon(t)
	cases := []struct {
		name, code, want string
		wantCode         string
	}{
		{"wrong value", "return 41", "42", codeWrongResult},
		{"script error", "throw new Error('no')", "42", string(api.CodeScript)},
		{"validation", "return eval('1')", "1", string(api.CodeValidation)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := benchConfig{socket: socket, concurrency: 2, duration: 200 * time.Millisecond}
			c, err := benchClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w := workload{name: "doctored", code: tc.code, want: func(int64) string { return tc.want }}
			rep := bench(context.Background(), c, cfg, w, &bytes.Buffer{})
			if rep.Executions != 0 || rep.Errors < 1 || rep.ErrorsByCode[tc.wantCode] != rep.Errors {
				t.Fatalf("executions %d errors %d by code %v; want all %s", rep.Executions, rep.Errors, rep.ErrorsByCode, tc.wantCode)
			}
			if rep.ErrorExamples[tc.wantCode] == "" {
				t.Fatalf("no example message for %s", tc.wantCode)
			}
		})
	}
}

func TestBenchExitCodes(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "none.sock")
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"unknown workload", []string{"--socket", dead, "--workload", "nope"}, 2},
		{"zero concurrency", []string{"--socket", dead, "--concurrency", "0"}, 2},
		{"negative warmup", []string{"--socket", dead, "--warmup", "-1s"}, 2},
		{"stray argument", []string{"--socket", dead, "extra"}, 2},
		{"no daemon", []string{"--socket", dead, "--duration", "100ms"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, stderr := runBenchCmd(t, tc.args...); code != tc.want {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.want, stderr)
			}
		})
	}
}

func TestWorkloadCheck(t *testing.T) {
	simple, _ := newWorkload("simple")
	tools, _ := newWorkload("tools")
	cases := []struct {
		name string
		w    workload
		val  string
		err  error
		seed int64
		want string
	}{
		{"simple right", simple, "201", nil, 1, ""},
		{"simple wrong", simple, "200", nil, 1, codeWrongResult},
		{"tools right", tools, "17", nil, 7, ""},
		{"tools other session's answer", tools, "18", nil, 7, codeWrongResult},
		{"api error", simple, "", &api.Error{Code: api.CodeQueueFull}, 1, "QUEUE_FULL"},
		{"transport error", simple, "", errors.New("dial unix: refused"), 1, codeClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res *client.Result
			if tc.err == nil {
				res = &client.Result{Value: json.RawMessage(tc.val)}
			}
			if got := tc.w.check(res, tc.err, tc.seed); got != tc.want {
				t.Fatalf("check = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddTool(t *testing.T) {
	out, err := addTool(context.Background(), "bench:add", json.RawMessage(`{"a":40,"b":2}`))
	if err != nil || string(out) != `{"sum":42}` {
		t.Fatalf("addTool = %s, %v", out, err)
	}
	if _, err := addTool(context.Background(), "other", json.RawMessage(`{}`)); err == nil {
		t.Fatal("unknown tool answered")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	cases := []struct {
		vals []time.Duration
		p    float64
		want time.Duration
	}{
		{ms(5), 50, 5 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 91, 10 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := percentile(tc.vals, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.vals, tc.p, got, tc.want)
		}
	}
	if simpleSum() != 201 {
		t.Fatalf("simpleSum = %d", simpleSum())
	}
}

// BenchmarkSocket runs both workloads through the API over a Unix socket with the
// daemon in-process (the bench client too), 16 runs in flight: profile the
// daemon's side of the hot path with
//
//	go test -run '^$' -bench Socket -cpuprofile cpu.out ./cmd/enclave/
//
// Workers are separate processes and do not show in the profile.
func BenchmarkSocket(b *testing.B) {
	for _, name := range []string{"simple", "tools"} {
		b.Run(name, func(b *testing.B) {
			socket := startBenchDaemon(b)
			w, _ := newWorkload(name)
			c, err := benchClient(benchConfig{socket: socket, concurrency: 16})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var seed atomic.Int64
			b.SetParallelism(8) // 16 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := seed.Add(1)
					res, err := c.Execute(context.Background(), w.options(s))
					if code := w.check(res, err, s); code != "" {
						b.Errorf("%s: %v", code, err)
					}
				}
			})
		})
	}
}
