package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
	"github.com/enclave-go/enclave/workerproc"
)

// The test binary doubles as the worker: runtimes under test start it again
// with ENCLAVE_TEST_WORKER=1, so sessions run in real worker processes. It also
// doubles as a runtime or broker process for the tests that kill them.
func TestMain(m *testing.M) {
	if os.Getenv("ENCLAVE_TEST_WORKER") == "1" {
		os.Exit(workerproc.Main())
	}
	if spec := os.Getenv(envRuntimeProc); spec != "" {
		os.Exit(runtimeProcMain(spec))
	}
	if spec := os.Getenv(envBrokerProc); spec != "" {
		os.Exit(brokerProcMain(spec))
	}
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait of a test.
const testTimeout = 30 * time.Second

// redisServer is a redis-server on a free loopback port, without persistence.
type redisServer struct {
	t     *testing.T
	port  int
	dir   string
	extra []string // more redis-server flags
	cmd   *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server); the broker tests need a real Redis")
	}
	return startRedisWith(t)
}

func startRedisWith(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	s := &redisServer{t: t, port: freePort(t), dir: t.TempDir(), extra: extra}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// store is a Redis deployment of a test: one server or a cluster.
type store interface{ addrs() []string }

func (s *redisServer) addrs() []string { return []string{s.addr()} }

// redisCluster is a three-master Redis Cluster on loopback, without replicas.
type redisCluster struct{ nodes []*redisServer }

func (c *redisCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr()
	}
	return out
}

// startCluster starts three cluster-enabled servers and joins them with
// redis-cli --cluster create; it skips the test when that cannot be done here.
func startCluster(t *testing.T) *redisCluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not installed; it is needed to form a cluster")
	}
	c := &redisCluster{}
	for range 3 {
		c.nodes = append(c.nodes, startRedisWith(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))
	}
	args := append([]string{"--cluster", "create"}, c.addrs()...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Skipf("redis-cli --cluster create failed, cluster mode unavailable here: %v\n%s", err, out)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs()})
	defer rdb.Close()
	poll(t, "the cluster is ok", func() bool {
		info, err := rdb.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok") &&
			rdb.ForEachShard(context.Background(), func(ctx context.Context, n *redis.Client) error {
				return n.Ping(ctx).Err()
			}) == nil
	})
	return c
}

// start runs the server and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir}
	s.cmd = exec.Command("redis-server", append(args, s.extra...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	poll(s.t, "redis-server answers PING", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// stop kills the server at once, as a crash would.
func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// poll waits until cond holds, failing the test after testTimeout.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newClient is one process's connection pool to s.
func newClient(t *testing.T, s store) redis.UniversalClient {
	t.Helper()
	c := NewClient(limits.Redis{Addrs: s.addrs()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newBackend(t *testing.T, s store, edit func(*BackendOptions)) *Backend {
	t.Helper()
	opts := BackendOptions{Redis: newClient(t, s), SessionTimeout: time.Minute}
	if edit != nil {
		edit(&opts)
	}
	return NewBackend(opts)
}

func newSupervisor(t *testing.T, id string) *supervisor.Supervisor {
	t.Helper()
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = 2, 1
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sup, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"},
		CgroupRoot: "none", RuntimeLabel: id,
	})
	if err != nil {
		t.Fatalf("new supervisor: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = sup.Close(ctx)
	})
	return sup
}

// testRuntime is a Runtime running in a goroutine of the test.
type testRuntime struct {
	*Runtime
	kill context.CancelFunc // stops it abruptly, as SIGKILL would
	done chan error         // gets Run's result
}

// fastRuntime makes failures show within a second.
func fastRuntime(o *RuntimeOptions) {
	o.HeartbeatInterval, o.HeartbeatTTL = 100*time.Millisecond, 400*time.Millisecond
	o.ClaimTimeout, o.TargetRefresh = 500*time.Millisecond, 100*time.Millisecond
}

func startRuntime(t *testing.T, s store, id string, labels map[string]string, edit func(*RuntimeOptions)) *testRuntime {
	t.Helper()
	opts := RuntimeOptions{Redis: newClient(t, s), Supervisor: newSupervisor(t, id), ID: id, Labels: labels}
	fastRuntime(&opts)
	if edit != nil {
		edit(&opts)
	}
	rt, err := NewRuntime(opts)
	if err != nil {
		t.Fatalf("new runtime: %v", err)
	}
	ctx, kill := context.WithCancel(context.Background())
	tr := &testRuntime{Runtime: rt, kill: kill, done: make(chan error, 1)}
	go func() { tr.done <- rt.Run(ctx) }()
	<-rt.started
	t.Cleanup(func() { tr.stop(t) })
	return tr
}

// stop kills the runtime if it still runs and waits for Run to return.
func (tr *testRuntime) stop(t *testing.T) {
	tr.kill()
	select {
	case <-tr.done:
	case <-time.After(testTimeout):
		t.Errorf("runtime %s did not stop", tr.id)
	}
	tr.done = closedErrChan()
}

func closedErrChan() chan error {
	ch := make(chan error)
	close(ch)
	return ch
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// askScript calls the client tool "ask" once and doubles the answer's v.
const askScript = `const r = await callTool('ask', { q: 1 }); return r.v * 2;`

func askRequest() api.CreateRequest {
	return api.CreateRequest{Code: askScript, ClientTools: []string{"ask"}}
}

func create(t *testing.T, b *Backend, owner string, req api.CreateRequest) string {
	t.Helper()
	id, err := b.Create(testCtx(t), owner, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return id
}

// collect reads a session's events from seq from until the stream closes.
func collect(t *testing.T, b *Backend, owner, id string, from int64) []api.Event {
	t.Helper()
	ch, err := b.Subscribe(testCtx(t), owner, id, from)
	if err != nil {
		t.Fatalf("subscribe %s: %v", id, err)
	}
	var out []api.Event
	for e := range ch {
		out = append(out, e)
	}
	if len(out) == 0 || !out[len(out)-1].Type.Terminal() {
		t.Fatalf("session %s: stream ended without a terminal event: %v", id, types(out))
	}
	return out
}

// answerAndFinish answers a pending tool call and reads the session's stream ch to
// its end, returning the final result.
func answerAndFinish(t *testing.T, b *Backend, owner, id, callID, result string, ch <-chan api.Event) string {
	t.Helper()
	req := api.ToolResultRequest{CallID: callID, Result: json.RawMessage(result)}
	if err := b.ToolResult(testCtx(t), owner, id, req); err != nil {
		t.Fatalf("tool result: %v", err)
	}
	var last api.Event
	for e := range ch {
		last = e
	}
	return finalResult(t, last)
}

// untilType reads ch up to and including the first event of type typ.
func untilType(t *testing.T, ch <-chan api.Event, typ api.EventType) []api.Event {
	t.Helper()
	var out []api.Event
	for e := range ch {
		out = append(out, e)
		if e.Type == typ {
			return out
		}
	}
	t.Fatalf("stream closed before a %s event: %v", typ, types(out))
	return nil
}

func types(evs []api.Event) []api.EventType {
	out := make([]api.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// checkSeqs fails unless the events are numbered from, from+1, ...
func checkSeqs(t *testing.T, evs []api.Event, from int64) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != from+int64(i) {
			t.Fatalf("event %d has seq %d, want %d: %v", i, e.Seq, from+int64(i), types(evs))
		}
	}
}

func wantCode(t *testing.T, err error, code api.Code) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

// finalResult returns the result of a final event, failing on anything else.
func finalResult(t *testing.T, e api.Event) string {
	t.Helper()
	if e.Type != api.EventFinal {
		t.Fatalf("want a final event, got %s %s", e.Type, e.Payload)
	}
	var p api.FinalPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("final payload: %v", err)
	}
	return string(p.Result)
}

func errorCode(t *testing.T, e api.Event) api.Code {
	t.Helper()
	if e.Type != api.EventError {
		t.Fatalf("want an error event, got %s %s", e.Type, e.Payload)
	}
	var p api.ErrorPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("error payload: %v", err)
	}
	return p.Code
}

func toolCallID(t *testing.T, e api.Event) string {
	t.Helper()
	var p api.ToolCallPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.CallID == "" {
		t.Fatalf("tool_call payload %s: %v", e.Payload, err)
	}
	return p.CallID
}

// sessionField reads one field of a session's hash; "" when it is not set.
func sessionField(t *testing.T, rdb redis.UniversalClient, id, field string) string {
	t.Helper()
	v, err := rdb.HGet(testCtx(t), keysOf(id).hash, field).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatalf("read %s of session %s: %v", field, id, err)
	}
	return v
}
