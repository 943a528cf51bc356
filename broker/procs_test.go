package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// Environment variables that turn the test binary into a runtime or a broker
// process; each holds a procSpec as JSON.
const (
	envRuntimeProc = "ENCLAVE_TEST_RUNTIME"
	envBrokerProc  = "ENCLAVE_TEST_BROKER"
)

// procSpec configures a runtime or broker process of the tests.
type procSpec struct {
	Redis    []string             `json:"redis"`
	ID       string               `json:"id,omitempty"`
	Labels   map[string]string    `json:"labels,omitempty"`
	Listen   string               `json:"listen,omitempty"`
	APIKeys  []string             `json:"apiKeys,omitempty"`
	Rules    []limits.RoutingRule `json:"rules,omitempty"`
	MaxOpen  int64                `json:"maxOpen,omitempty"`
	PoolSize int                  `json:"poolSize,omitempty"`
}

// runtimeProcMain is a runtime process: fast heartbeats and claims, a drain on
// SIGTERM, and nothing at all on SIGKILL.
func runtimeProcMain(raw string) int {
	var spec procSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := limits.Default()
	cfg.Pool.Size, cfg.Pool.MinWorkers = spec.PoolSize, 1
	sup, err := supervisor.New(ctx, supervisor.Options{
		Config: cfg, WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1"}, CgroupRoot: "none",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sup.Close(context.Background())
	rdb := NewClient(limits.Redis{Addrs: spec.Redis})
	defer rdb.Close()
	opts := RuntimeOptions{Redis: rdb, Supervisor: sup, ID: spec.ID, Labels: spec.Labels}
	fastRuntime(&opts)
	rt, err := NewRuntime(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	<-ctx.Done()
	_ = rt.Drain(context.Background())
	<-done
	return 0
}

// brokerProcMain is a broker process: the HTTP API over a Backend.
func brokerProcMain(raw string) int {
	var spec procSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rdb := NewClient(limits.Redis{Addrs: spec.Redis})
	defer rdb.Close()
	b := NewBackend(BackendOptions{Redis: rdb, RoutingRules: spec.Rules, MaxConcurrentSessions: spec.MaxOpen, SessionTimeout: time.Minute})
	h := api.NewHandler(b, api.HandlerOptions{Authenticate: api.BearerAuth(spec.APIKeys)})
	if err := http.ListenAndServe(spec.Listen, h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// proc is a runtime or broker process of a test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, env string, spec procSpec) *proc {
	t.Helper()
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+string(raw))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s process: %v", env, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL); <-p.done })
	return p
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

func startRuntimeProc(t *testing.T, rs *redisServer, id string, labels map[string]string) *proc {
	t.Helper()
	p := startProc(t, envRuntimeProc, procSpec{Redis: []string{rs.addr()}, ID: id, Labels: labels, PoolSize: 2})
	rdb := newClient(t, rs)
	poll(t, "runtime "+id+" heartbeats", func() bool {
		n, err := rdb.Exists(context.Background(), runtimeKey(id)).Result()
		return err == nil && n == 1
	})
	return p
}

// startBrokerProc starts a broker process and returns its base URL.
func startBrokerProc(t *testing.T, rs *redisServer, spec procSpec) string {
	t.Helper()
	spec.Redis, spec.Listen = []string{rs.addr()}, "127.0.0.1:"+strconv.Itoa(freePort(t))
	startProc(t, envBrokerProc, spec)
	base := "http://" + spec.Listen
	poll(t, "broker "+base+" is ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// httpStream is an open NDJSON event stream of the HTTP API.
type httpStream struct {
	resp *http.Response
	sc   *bufio.Scanner
	id   string
}

// API keys of the broker processes: sessions belong to the key that made them.
const (
	testKey  = "test-key"
	otherKey = "other-key"
)

func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func apiRequest(t *testing.T, method, url string, body any) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&buf).Encode(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, url, &buf)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	return req
}

func openStream(t *testing.T, req *http.Request) *httpStream {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("%s %s: status %d", req.Method, req.URL, resp.StatusCode)
	}
	s := &httpStream{resp: resp, sc: bufio.NewScanner(resp.Body), id: resp.Header.Get(api.SessionIDHeader)}
	s.sc.Buffer(make([]byte, 1<<20), 1<<20)
	return s
}

// next returns the next event that is not a heartbeat; ok is false at the end.
func (s *httpStream) next(t *testing.T) (api.Event, bool) {
	t.Helper()
	for s.sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(s.sc.Bytes(), &e); err != nil {
			t.Errorf("bad event line %q: %v", s.sc.Text(), err) // may run off the test goroutine
			return api.Event{}, false
		}
		if e.Type != api.EventHeartbeat {
			return e, true
		}
	}
	return api.Event{}, false
}

// rest reads the stream to its end.
func (s *httpStream) rest(t *testing.T) []api.Event {
	t.Helper()
	defer s.resp.Body.Close()
	var out []api.Event
	for e, ok := s.next(t); ok; e, ok = s.next(t) {
		out = append(out, e)
	}
	return out
}

func postToolResult(t *testing.T, base, id, callID string, result string) {
	t.Helper()
	req := apiRequest(t, http.MethodPost, base+"/v1/sessions/"+id+"/tool-result",
		api.ToolResultRequest{CallID: callID, Result: json.RawMessage(result)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("tool result: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tool result through %s: status %d", base, resp.StatusCode)
	}
}

// Two broker processes and three runtime processes: a session created through
// broker A whose stream is cut after its tool call is answered through broker
// B and resumed through B, every event exactly once and in order; a premium
// request runs on the premium runtime.
func TestProcessesCrossBrokerResume(t *testing.T) {
	rs := startRedis(t)
	spec := procSpec{APIKeys: []string{testKey, otherKey}, Rules: []limits.RoutingRule{
		{Match: map[string]string{"priority": "high"}, Target: map[string]string{"tier": "premium"}}}}
	brokerA, brokerB := startBrokerProc(t, rs, spec), startBrokerProc(t, rs, spec)
	for i, tier := range []string{"standard", "standard", "premium"} {
		startRuntimeProc(t, rs, "proc-rt-"+strconv.Itoa(i+1), map[string]string{"tier": tier})
	}

	s := openStream(t, apiRequest(t, http.MethodPost, brokerA+"/v1/sessions", askRequest()))
	var seen []api.Event
	for len(seen) == 0 || seen[len(seen)-1].Type != api.EventToolCall {
		e, ok := s.next(t)
		if !ok {
			t.Fatalf("stream ended early: %v", types(seen))
		}
		seen = append(seen, e)
	}
	s.resp.Body.Close() // the connection to A is cut here
	postToolResult(t, brokerB, s.id, toolCallID(t, seen[len(seen)-1]), `{"v":50}`)
	from := seen[len(seen)-1].Seq + 1
	resumed := openStream(t, apiRequest(t, http.MethodGet, fmt.Sprintf("%s/v1/sessions/%s/events?fromSeq=%d", brokerB, s.id, from), nil))
	seen = append(seen, resumed.rest(t)...)

	want := []api.EventType{api.EventSessionInit, api.EventToolCall, api.EventToolResultApplied, api.EventFinal}
	if got := types(seen); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	checkSeqs(t, seen, 1)
	if got := finalResult(t, seen[3]); got != "100" {
		t.Fatalf("result %s, want 100", got)
	}
	stranger := apiRequest(t, http.MethodGet, brokerB+"/v1/sessions/"+s.id+"/events", nil)
	stranger.Header.Set("Authorization", "Bearer "+otherKey)
	if code := statusOf(t, stranger); code != http.StatusUnauthorized {
		t.Fatalf("another key's replay: status %d, want 401", code)
	}
	replay := openStream(t, apiRequest(t, http.MethodGet, brokerB+"/v1/sessions/"+s.id+"/events", nil)).rest(t)
	if fmt.Sprint(replay) != fmt.Sprint(seen) {
		t.Fatalf("replay through B differs from the live events")
	}

	premium := openStream(t, apiRequest(t, http.MethodPost, brokerB+"/v1/sessions",
		api.CreateRequest{Code: "return 5", Metadata: map[string]string{"priority": "high"}}))
	evs := premium.rest(t)
	if got := finalResult(t, evs[len(evs)-1]); got != "5" {
		t.Fatalf("premium result %s", got)
	}
	if got := sessionField(t, newClient(t, rs), premium.id, "runtime"); got != "proc-rt-3" {
		t.Fatalf("premium request ran on %q", got)
	}
}

var errStreamEnded = errors.New("stream ended without a terminal event")

// sessionRun follows one session over HTTP and answers its tool call once gate
// is closed. It sends the session's events on done.
func sessionRun(t *testing.T, s *httpStream, answerVia string, v int, toolCalled chan<- string, gate <-chan struct{}, done chan<- []api.Event) {
	defer s.resp.Body.Close()
	var evs []api.Event
	for {
		e, ok := s.next(t)
		if !ok {
			done <- evs
			return
		}
		evs = append(evs, e)
		if e.Type == api.EventToolCall {
			toolCalled <- s.id
			<-gate
			var p api.ToolCallPayload
			_ = json.Unmarshal(e.Payload, &p)
			req := apiRequest(t, http.MethodPost, answerVia+"/v1/sessions/"+s.id+"/tool-result",
				api.ToolResultRequest{CallID: p.CallID, Result: json.RawMessage(fmt.Sprintf(`{"v":%d}`, v))})
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		if e.Type.Terminal() {
			done <- evs
			return
		}
	}
}

// Thirty sessions over three runtime processes, one of them killed with
// SIGKILL while it runs two: those two end with RUNTIME_LOST, the other
// twenty-eight end with their right results, and none runs twice.
func TestProcessesRuntimeKilled(t *testing.T) {
	rs := startRedis(t)
	spec := procSpec{APIKeys: []string{testKey}}
	brokers := []string{startBrokerProc(t, rs, spec), startBrokerProc(t, rs, spec)}
	var runtimes []*proc
	for i := range 3 {
		runtimes = append(runtimes, startRuntimeProc(t, rs, "proc-rt-"+strconv.Itoa(i+1), nil))
	}
	rdb := newClient(t, rs)

	const n = 30
	toolCalled, gate, done := make(chan string, n), make(chan struct{}), make(chan []api.Event, n)
	want := map[string]string{}
	for i := range n {
		s := openStream(t, apiRequest(t, http.MethodPost, brokers[i%2]+"/v1/sessions", askRequest()))
		want[s.id] = strconv.Itoa(2 * i)
		go sessionRun(t, s, brokers[(i+1)%2], i, toolCalled, gate, done)
	}
	// Every slot (3 runtimes x 2) holds a session waiting on its tool call.
	started := map[string]bool{}
	for len(started) < 6 {
		select {
		case id := <-toolCalled:
			started[id] = true
		case <-time.After(testTimeout):
			t.Fatalf("only %d sessions started", len(started))
		}
	}
	var onVictim []string
	for id := range started {
		if sessionField(t, rdb, id, "runtime") == "proc-rt-1" {
			onVictim = append(onVictim, id)
		}
	}
	if len(onVictim) != 2 {
		t.Fatalf("the victim runs %d sessions, want 2", len(onVictim))
	}
	runtimes[0].signal(syscall.SIGKILL)
	<-runtimes[0].done
	close(gate)

	lost := 0
	for range n {
		var evs []api.Event
		select {
		case evs = <-done:
		case <-time.After(testTimeout):
			t.Fatalf("a session did not end")
		}
		if len(evs) == 0 || !evs[len(evs)-1].Type.Terminal() {
			t.Fatalf("%v: %v", errStreamEnded, types(evs))
		}
		id, last := evs[0].SessionID, evs[len(evs)-1]
		checkSeqs(t, evs, 1)
		if evs[0].Type != api.EventSessionInit || countType(evs, api.EventSessionInit) != 1 {
			t.Fatalf("session %s: events %v (ran more than once?)", id, types(evs))
		}
		if last.Type == api.EventError {
			if code := errorCode(t, last); code != api.CodeRuntimeLost {
				t.Fatalf("session %s ended with %s", id, code)
			}
			if got := sessionField(t, rdb, id, "runtime"); got != "proc-rt-1" {
				t.Fatalf("lost session %s ran on %s", id, got)
			}
			lost++
			continue
		}
		if got := finalResult(t, last); got != want[id] {
			t.Fatalf("session %s result %s, want %s", id, got, want[id])
		}
	}
	if lost != 2 {
		t.Fatalf("%d sessions lost, want the victim's 2", lost)
	}
}

func countType(evs []api.Event, typ api.EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}
