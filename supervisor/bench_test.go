package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enclave-go/enclave/agentscript"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/workerproc"
)

// The benchmarks here run real worker processes: the test binary re-runs itself
// as a worker when benchWorkerEnv is set. They measure the hot path's pieces so a
// change's cost shows in benchstat:
//
//	go test -run '^$' -bench . -benchtime 2000x -count 6 ./supervisor/ | tee new.txt
//	benchstat old.txt new.txt

const benchWorkerEnv = "ENCLAVE_BENCH_WORKER"

func init() {
	if os.Getenv(benchWorkerEnv) == "1" {
		profileWorker(os.Getenv("ENCLAVE_BENCH_WORKER_PROFILE"))
		os.Exit(workerproc.Main())
	}
}

// profileWorker writes a CPU profile of this worker process's first
// workerProfileFor to dir/worker-PID.cpu, when dir is set: workers are killed,
// not stopped, so the profile is cut at a fixed time instead of at exit. The
// directory must be writable by the workers' user (nobody, under root).
//
//	ENCLAVE_BENCH_WORKER_PROFILE=/tmp/prof go test -run '^$' -bench RunWarm$ -benchtime 20000x ./supervisor/
//	go tool pprof -top supervisor.test /tmp/prof/worker-*.cpu
func profileWorker(dir string) {
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, "worker-"+strconv.Itoa(os.Getpid())+".cpu"))
	if err != nil || pprof.StartCPUProfile(f) != nil {
		return
	}
	time.AfterFunc(workerProfileFor, func() { pprof.StopCPUProfile(); _ = f.Close() })
}

const workerProfileFor = 5 * time.Second

// benchScript is about 2 KB of the kind of script a model writes: tool calls,
// loops, array methods, a template and an object result.
const benchScript = `// Summarise the open orders of the best customers.
const customers = await callTool('crm:listCustomers', { limit: 50, status: 'active' });
const ranked = customers.items
  .filter((c) => c.score >= 0.5 && !c.blocked)
  .map((c) => ({ id: c.id, name: c.name, score: Math.round(c.score * 100) / 100 }))
  .sort((a, b) => b.score - a.score)
  .slice(0, 10);

const orders = await Promise.all(ranked.map((c) => callTool('orders:open', { customerId: c.id })));

let total = 0;
let count = 0;
const byCurrency = {};
for (let i = 0; i < orders.length; i++) {
  const list = orders[i].items ?? [];
  for (const o of list) {
    const amount = Number(o.amount) || 0;
    total += amount;
    count++;
    byCurrency[o.currency] = (byCurrency[o.currency] ?? 0) + amount;
  }
}

const lines = [];
for (const [currency, amount] of Object.entries(byCurrency)) {
  lines.push(` + "`${currency}: ${amount.toFixed(2)}`" + `);
}

let attempts = 0;
let pending = count;
while (pending > 0 && attempts < 3) {
  const res = await callTool('orders:ping', { batch: attempts });
  pending = res?.pending ?? 0;
  attempts++;
}

try {
  const report = { customers: ranked.length, orders: count, total, lines };
  console.log('report ready', JSON.stringify(report).length);
} catch (e) {
  console.error('report failed', e.message);
}

const top = ranked[0] ? ranked[0].name : 'nobody';
const summary = {
  top,
  customers: ranked.map((c) => c.name),
  orders: count,
  total: Math.round(total * 100) / 100,
  average: count > 0 ? Math.round((total / count) * 100) / 100 : 0,
  currencies: Object.keys(byCurrency).sort(),
  lines,
  attempts,
  checkedAt: new Date(0).toISOString(),
};
return summary;
`

// BenchmarkCheck is parse + validate + transform of a 2 KB script (a cache miss).
func BenchmarkCheck(b *testing.B) {
	opts := ScriptOptions(limits.Standard)
	if _, err := agentscript.Check(benchScript, opts); err != nil {
		b.Fatalf("bench script refused: %v", err)
	}
	b.SetBytes(int64(len(benchScript)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := agentscript.Check(benchScript, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCached is the same script found in the supervisor's cache.
func BenchmarkCheckCached(b *testing.B) {
	c := newScriptCache()
	if _, err := c.check(benchScript, limits.Standard, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.check(benchScript, limits.Standard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSupervisor starts a supervisor of size real workers without cgroups and
// with recycling pushed out of the way, so the loop measures warm runs.
func benchSupervisor(b *testing.B, size int) *Supervisor {
	b.Helper()
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = size, size
	cfg.Pool.MaxExecutionsPerWorker = 1 << 40
	cfg.Pool.MaxQueueSize = 1024
	env := []string{benchWorkerEnv + "=1"}
	if dir := os.Getenv("ENCLAVE_BENCH_WORKER_PROFILE"); dir != "" {
		env = append(env, "ENCLAVE_BENCH_WORKER_PROFILE="+dir) // workers get no host env
	}
	s, err := New(context.Background(), Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: env, CgroupRoot: "none",
	})
	if err != nil {
		b.Fatalf("start supervisor: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

const trivialScript = "let s = 0; for (let i = 0; i < 10; i++) { s += i } return s"

func runOK(b *testing.B, s *Supervisor, req Request, want string) {
	res, err := s.Run(context.Background(), req)
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	if string(res.Value) != want {
		b.Fatalf("result %s, want %s", res.Value, want)
	}
}

// BenchmarkRunWarm is one run of a trivial script in a warm worker, one at a time:
// admission, the script cache, the gRPC stream, a fresh goja runtime and back.
func BenchmarkRunWarm(b *testing.B) {
	s := benchSupervisor(b, 1)
	req := Request{Code: trivialScript}
	runOK(b, s, req, "45")
	b.ReportAllocs()
	for b.Loop() {
		runOK(b, s, req, "45")
	}
}

// BenchmarkRunWarmParallel keeps the default pool busy from GOMAXPROCS×4
// goroutines: the supervisor's throughput on this machine, without HTTP.
func BenchmarkRunWarmParallel(b *testing.B) {
	s := benchSupervisor(b, limits.Default().Pool.Size)
	req := Request{Code: trivialScript}
	runOK(b, s, req, "45")
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			runOK(b, s, req, "45")
		}
	})
}

// BenchmarkToolRoundTrip runs a script making n client tool calls in a row; a
// call's cost is the difference from calls=0, divided by n.
func BenchmarkToolRoundTrip(b *testing.B) {
	for _, n := range []int{0, 1, 4} {
		b.Run("calls="+strconv.Itoa(n), func(b *testing.B) {
			s := benchSupervisor(b, 1)
			var code strings.Builder
			code.WriteString("let v = 0;\n")
			for range n {
				code.WriteString("v = (await callTool('bench:add', { a: v, b: 1 })).sum;\n")
			}
			code.WriteString("return v;")
			req := Request{Code: code.String(), ClientTools: []string{"bench:*"}, ClientTool: addTool}
			want := strconv.Itoa(n)
			runOK(b, s, req, want)
			b.ReportAllocs()
			for b.Loop() {
				runOK(b, s, req, want)
			}
		})
	}
}

func addTool(_ context.Context, call ToolCall) (json.RawMessage, error) {
	var in struct{ A, B int64 }
	if err := json.Unmarshal(call.Args, &in); err != nil {
		return nil, err
	}
	return json.RawMessage(`{"sum":` + strconv.FormatInt(in.A+in.B, 10) + `}`), nil
}

// BenchmarkSpawn starts a worker and waits for its go-plugin handshake
// (spawn-to-ready), and reports the new worker's RSS. Stopping it is not timed.
// The worker is this test binary, or the binary named by ENCLAVE_BENCH_BINARY
// (run with its hidden "worker" subcommand), which is what a daemon starts:
//
//	ENCLAVE_BENCH_BINARY=$PWD/bin/enclave go test -run '^$' -bench Spawn ./supervisor/
func BenchmarkSpawn(b *testing.B) {
	s := benchSupervisor(b, 1)
	if bin := os.Getenv("ENCLAVE_BENCH_BINARY"); bin != "" {
		s.opts.WorkerCommand, s.opts.WorkerEnv = []string{bin, "worker"}, nil
	}
	var rss atomic.Int64
	id := 100
	for b.Loop() {
		id++
		p, err := s.startWorker(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		rss.Add(rssOf(b, p.pid))
		p.stop(context.Background(), "bench")
		b.StartTimer()
	}
	b.ReportMetric(float64(rss.Load())/float64(b.N)/(1<<20), "MiB-rss")
}

// rssOf reads VmRSS of pid from /proc.
func rssOf(b *testing.B, pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// BenchmarkSessionsAdd is the cost of opening a session while n finished ones
// are still kept for replay (they stay for the session timeout, 5 minutes by
// default: 300,000 sessions at 1000 runs/s).
func BenchmarkSessionsAdd(b *testing.B) {
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run("retained="+strconv.Itoa(n), func(b *testing.B) {
			m := NewSessions(nil, time.Minute, 1000)
			for i := range n {
				m.sessions["done-"+strconv.Itoa(i)] = &session{done: true}
			}
			b.ReportAllocs()
			for b.Loop() {
				s, err := m.add("")
				if err != nil {
					b.Fatal(err)
				}
				delete(m.sessions, s.id) // keep n finished sessions, no open one
			}
		})
	}
}
