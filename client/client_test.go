package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enclave-go/enclave/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var networks = []string{"unix", "tcp"}

// env is a handler over a fake backend, served on one network, and a client.
type env struct {
	b      *fakeBackend
	client *Client
	cuts   *cutter
	conns  atomic.Int64 // connections the server accepted
}

// newEnv serves the API over a fresh fake backend on network ("unix": a socket
// in a temp dir; "tcp": loopback) behind a cutter, and builds a client with fast
// retries (opts may change them).
func newEnv(t testing.TB, network string, hopts api.HandlerOptions, opts Options) *env {
	t.Helper()
	b := newFakeBackend()
	if hopts.HeartbeatInterval == 0 {
		hopts.HeartbeatInterval = time.Minute // no heartbeat lines unless a test asks
	}
	cuts := &cutter{}
	cuts.next = api.NewHandler(b, hopts)
	srv := httptest.NewUnstartedServer(cuts)
	e := &env{b: b, cuts: cuts}
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			e.conns.Add(1)
		}
	}
	if network == "unix" {
		sock := filepath.Join(t.TempDir(), "enclave.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = l
		opts.Socket = sock
	}
	srv.Start()
	if network == "tcp" {
		opts.BaseURL = srv.URL
	}
	t.Cleanup(srv.Close)
	t.Cleanup(b.close) // runs first: ends sessions so the server can close
	opts.InitialBackoff = orDefault(opts.InitialBackoff, time.Millisecond)
	opts.MaxBackoff = orDefault(opts.MaxBackoff, 10*time.Millisecond)
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e.client = c
	return e
}

// cutter lets tests break connections: rule, if set, decides per request what
// happens; every request is recorded.
type cutter struct {
	next http.Handler

	mu       sync.Mutex
	rule     func(r *http.Request, n int) action // n: how many such requests so far
	counts   map[string]int
	requests []string
	lines    int // lines written on all connections
}

// action is what the cutter does to one request.
type action struct {
	lines        int  // >= 0: abort the connection after this many stream lines
	dropBefore   bool // abort before the handler runs (the server never sees it)
	dropAfter    bool // run the handler, then abort before the answer goes out
	passThrough  bool
	statusNoCode int // answer this status with a body that is not an ErrorPayload
}

var pass = action{passThrough: true}

func (c *cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	act := c.decide(r)
	switch {
	case act.passThrough:
		c.next.ServeHTTP(&cutWriter{ResponseWriter: w, left: -1, c: c}, r)
	case act.dropBefore:
		panic(http.ErrAbortHandler)
	case act.dropAfter:
		c.next.ServeHTTP(httptest.NewRecorder(), r)
		panic(http.ErrAbortHandler)
	case act.statusNoCode > 0:
		http.Error(w, "<html>bad gateway</html>", act.statusNoCode)
	default:
		c.next.ServeHTTP(&cutWriter{ResponseWriter: w, left: act.lines, c: c}, r)
	}
}

func (c *cutter) decide(r *http.Request) action {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := r.Method + " " + routeOf(r.URL.Path)
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[key]++
	c.requests = append(c.requests, r.Method+" "+r.URL.RequestURI())
	if c.rule == nil {
		return pass
	}
	return c.rule(r, c.counts[key])
}

// routeOf names a path by its last segment: "sessions", "events", "tool-result".
func routeOf(p string) string {
	switch {
	case strings.HasSuffix(p, "/events"):
		return "events"
	case strings.HasSuffix(p, "/tool-result"):
		return "tool-result"
	case p == "/v1/sessions":
		return "create"
	}
	return p
}

func (c *cutter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

func (c *cutter) log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.requests...)
}

func (c *cutter) linesWritten() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// cutWriter counts the lines written and aborts the connection when a line
// beyond its allowance (-1: none) would be written.
type cutWriter struct {
	http.ResponseWriter
	left int
	c    *cutter
}

func (w *cutWriter) Write(b []byte) (int, error) {
	if w.left == 0 {
		panic(http.ErrAbortHandler)
	}
	w.left--
	w.c.mu.Lock()
	w.c.lines++
	w.c.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

func (w *cutWriter) Flush()                      { w.ResponseWriter.(http.Flusher).Flush() }
func (w *cutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// adder answers "add" {"i":i} with i*10 and records the calls.
type adder struct {
	mu    sync.Mutex
	calls []string
	fail  int // the call number to fail, 0 for none
}

func (a *adder) handle(_ context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
	var in struct{ I int }
	if err := json.Unmarshal(args, &in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.calls = append(a.calls, fmt.Sprintf("%s(%d)", name, in.I))
	a.mu.Unlock()
	if in.I == a.fail {
		return nil, errors.New("upstream said no")
	}
	return json.RawMessage(fmt.Sprint(in.I * 10)), nil
}

func (a *adder) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// recorder collects OnEvent's events.
type recorder struct {
	mu     sync.Mutex
	events []api.Event
}

func (r *recorder) add(ev api.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// wantSeqs checks that the events are seq 1..n, each once, in order, and no
// heartbeat among them.
func (r *recorder) wantSeqs(t *testing.T, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []int64
	for _, ev := range r.events {
		got = append(got, ev.Seq)
		if ev.Type == api.EventHeartbeat {
			t.Error("OnEvent saw a heartbeat")
		}
	}
	ok := len(got) == n
	for i := 0; ok && i < n; i++ {
		ok = got[i] == int64(i+1)
	}
	if !ok {
		t.Errorf("seqs = %v, want 1..%d each once in order", got, n)
	}
}

// toolsEvents is the number of events of a "tools N" session: init, then
// tool_call, tool_result_applied and stdout per call, then final.
func toolsEvents(n int) int { return 2 + 3*n }

func TestExecuteAnswersToolCalls(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			e := newEnv(t, network, api.HandlerOptions{}, Options{})
			tools, rec := &adder{}, &recorder{}
			res, err := e.client.Execute(context.Background(), ExecuteOptions{
				Request: api.CreateRequest{Code: "tools 3", ClientTools: []string{"add"}},
				Tools:   tools.handle,
				OnEvent: rec.add,
			})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Value) != "60" || res.Stats.ToolCallCount != 3 || res.SessionID != "sess-1" ||
				res.Events != toolsEvents(3) {
				t.Errorf("result = %+v value %s", res, res.Value)
			}
			if got := strings.Join(tools.calls, " "); got != "add(1) add(2) add(3)" {
				t.Errorf("tool calls = %s", got)
			}
			rec.wantSeqs(t, toolsEvents(3))
		})
	}
}

// Sessions one after another reuse one connection: a client that tore down its
// connection after every stream would pay a dial and an accept per session.
func TestConnectionsReused(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			e := newEnv(t, network, api.HandlerOptions{}, Options{})
			for range 10 {
				if _, err := e.client.Execute(context.Background(), ExecuteOptions{
					Request: api.CreateRequest{Code: "tools 1"}, Tools: (&adder{}).handle,
				}); err != nil {
					t.Fatal(err)
				}
			}
			// One for the streams, one for tool results posted while a stream is open.
			if n := e.conns.Load(); n > 2 {
				t.Errorf("10 sessions opened %d connections, want at most 2", n)
			}
		})
	}
}

func TestExecuteErrors(t *testing.T) {
	tests := []struct {
		name      string
		code      string
		createErr error
		wantCode  api.Code
		wantLine  int
		inMessage string
	}{
		{"tool handler error", "tools 3", nil, api.CodeToolError, 0, "upstream said no"},
		{"script error", "fail", nil, api.CodeScript, 3, "not defined"},
		{"queue full", "tools 1", api.Errorf(api.CodeQueueFull, "queue is full"), api.CodeQueueFull, 0, "full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "tcp", api.HandlerOptions{}, Options{})
			e.b.createErr = tt.createErr
			_, err := e.client.Execute(context.Background(), ExecuteOptions{
				Request: api.CreateRequest{Code: tt.code},
				Tools:   (&adder{fail: 2}).handle,
			})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tt.wantCode || ae.Line != tt.wantLine ||
				!strings.Contains(ae.Message, tt.inMessage) {
				t.Fatalf("err = %#v, want %s at line %d mentioning %q", err, tt.wantCode, tt.wantLine, tt.inMessage)
			}
			if n := e.cuts.count("POST create"); n != 1 {
				t.Errorf("create sent %d times, want once", n)
			}
		})
	}
}

func TestExecuteToolErrorReachesServer(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{})
	_, err := e.client.Execute(context.Background(), ExecuteOptions{
		Request: api.CreateRequest{Code: "tools 1"},
		Tools:   (&adder{fail: 1}).handle,
	})
	if api.CodeOf(err) != api.CodeToolError {
		t.Fatalf("err = %v", err)
	}
	got := e.b.answers("sess-1")
	if len(got) != 1 || got[0].Error == nil || got[0].Error.Message != "upstream said no" || got[0].Result != nil {
		t.Errorf("server got %+v", got)
	}
}

// The stream is cut after a few lines on the create and on each of the first
// replays; the client must see every event once, in order, and answer each tool
// call once, over both transports.
func TestExecuteResumesAfterCuts(t *testing.T) {
	tests := []struct {
		name   string
		sloppy bool // the server replays from seq 1 whatever is asked
	}{
		{"exact replay", false},
		{"overlapping replay", true},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, network, api.HandlerOptions{}, Options{})
				e.b.ignoreFromSeq = tt.sloppy
				e.cuts.rule = func(r *http.Request, n int) action {
					switch routeOf(r.URL.Path) {
					case "create":
						return action{lines: 3} // init, tool_call 1, applied 1
					case "events":
						if n > 3 {
							return pass
						}
						if tt.sloppy { // each replay starts at 1: let it get further
							return action{lines: 3 + 2*n}
						}
						return action{lines: 2}
					}
					return pass
				}
				tools, rec := &adder{}, &recorder{}
				res, err := e.client.Execute(context.Background(), ExecuteOptions{
					Request: api.CreateRequest{Code: "tools 4"},
					Tools:   tools.handle,
					OnEvent: rec.add,
				})
				if err != nil {
					t.Fatalf("err = %v; requests %v", err, e.cuts.log())
				}
				if string(res.Value) != "100" || res.Events != toolsEvents(4) {
					t.Errorf("result = %s after %d events", res.Value, res.Events)
				}
				rec.wantSeqs(t, toolsEvents(4))
				if tools.count() != 4 || len(e.b.answers("sess-1")) != 4 {
					t.Errorf("tool handler ran %d times, server took %d answers; want 4 and 4",
						tools.count(), len(e.b.answers("sess-1")))
				}
				if n := e.cuts.count("GET events"); n < 4 {
					t.Errorf("only %d replays: the cuts did not happen", n)
				}
				if !tt.sloppy {
					wantResumeFrom(t, e.cuts.log(), "fromSeq=4")
				}
			})
		}
	}
}

// wantResumeFrom checks the first replay asked for the seq after the last seen.
func wantResumeFrom(t *testing.T, log []string, want string) {
	t.Helper()
	for _, l := range log {
		if strings.Contains(l, "/events") {
			if !strings.HasSuffix(l, want) {
				t.Errorf("first replay %q, want %s", l, want)
			}
			return
		}
	}
	t.Error("no replay request")
}

func TestExecuteGivesUpAfterMaxAttempts(t *testing.T) {
	tests := []struct {
		name   string
		replay action
	}{
		{"connection dropped", action{dropBefore: true}},
		{"502 without code", action{statusNoCode: http.StatusBadGateway}},
		{"stream ends at once", action{lines: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "tcp", api.HandlerOptions{}, Options{MaxAttempts: 3})
			e.cuts.rule = func(r *http.Request, n int) action {
				switch routeOf(r.URL.Path) {
				case "create":
					return action{lines: 1} // session_init; the tool_call line cuts
				case "events":
					return tt.replay
				}
				return pass
			}
			_, err := e.client.Execute(context.Background(), ExecuteOptions{
				Request: api.CreateRequest{Code: "tools 1"},
			})
			if err == nil || !strings.Contains(err.Error(), "stream lost after 3 attempts") {
				t.Fatalf("err = %v", err)
			}
			var ae *api.Error
			if errors.As(err, &ae) {
				t.Errorf("a transport failure came back as a code: %v", ae)
			}
			if n := e.cuts.count("GET events"); n != 3 {
				t.Errorf("%d replay attempts, want 3", n)
			}
		})
	}
}

func TestExecuteStopsOnCodedReplayAnswer(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{MaxAttempts: 5})
	e.cuts.rule = func(r *http.Request, n int) action {
		if routeOf(r.URL.Path) == "create" {
			return action{lines: 1}
		}
		return pass
	}
	// Forget the session as soon as its stream breaks: the replay gets 404.
	prev := e.cuts.rule
	e.cuts.rule = func(r *http.Request, n int) action {
		if routeOf(r.URL.Path) == "events" {
			e.b.mu.Lock()
			delete(e.b.sessions, "sess-1")
			e.b.mu.Unlock()
		}
		return prev(r, n)
	}
	_, err := e.client.Execute(context.Background(), ExecuteOptions{Request: api.CreateRequest{Code: "return 42"}})
	if api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("err = %v, want NOT_FOUND", err)
	}
	if n := e.cuts.count("GET events"); n != 1 {
		t.Errorf("%d replays, want 1: a 404 is final", n)
	}
}

func TestToolResultResentWhenLost(t *testing.T) {
	e := newEnv(t, "unix", api.HandlerOptions{}, Options{})
	e.cuts.rule = func(r *http.Request, n int) action {
		if routeOf(r.URL.Path) == "tool-result" && n == 1 {
			return action{dropBefore: true}
		}
		return pass
	}
	tools := &adder{}
	res, err := e.client.Execute(context.Background(), ExecuteOptions{
		Request: api.CreateRequest{Code: "tools 2"},
		Tools:   tools.handle,
	})
	if err != nil || string(res.Value) != "30" {
		t.Fatalf("res, err = %+v, %v", res, err)
	}
	if tools.count() != 2 || len(e.b.answers("sess-1")) != 2 {
		t.Errorf("handler ran %d times, server took %d answers; want 2 and 2",
			tools.count(), len(e.b.answers("sess-1")))
	}
	if n := e.cuts.count("POST tool-result"); n != 3 {
		t.Errorf("%d tool-result posts, want 3 (one re-sent): %v", n, e.cuts.log())
	}
}

// When the server took an answer but the reply was lost, the re-sent answer is
// refused with TOOL_CALL_NOT_PENDING, which means success.
func TestToolResultDuplicateIsSuccess(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{})
	e.cuts.rule = func(r *http.Request, n int) action {
		if routeOf(r.URL.Path) == "tool-result" && n == 1 {
			return action{dropAfter: true}
		}
		return pass
	}
	if _, err := e.b.Create(context.Background(), "", api.CreateRequest{Code: "tools 1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return len(e.b.sessions["sess-1"].pending) == 1
	})
	res := api.ToolResultRequest{CallID: "call-1", Result: json.RawMessage(`5`)}
	if err := e.client.postToolResult(context.Background(), context.Background(), "sess-1", res); err != nil {
		t.Fatalf("post: %v", err)
	}
	if n := e.cuts.count("POST tool-result"); n != 2 {
		t.Errorf("%d posts, want 2", n)
	}
	if got := e.b.answers("sess-1"); len(got) != 1 || string(got[0].Result) != "5" {
		t.Errorf("server took %+v", got)
	}
}

// waitFor polls cond until it holds or the test has waited too long.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStreamIdleCountsAsBreak(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{MaxAttempts: 2, StreamIdleTimeout: 50 * time.Millisecond})
	_, err := e.client.Execute(context.Background(), ExecuteOptions{Request: api.CreateRequest{Code: "wait"}})
	if err == nil || !strings.Contains(err.Error(), errStreamIdle.Error()) {
		t.Fatalf("err = %v, want an idle stream", err)
	}
	if n := e.cuts.count("GET events"); n != 2 {
		t.Errorf("%d replays, want 2", n)
	}
}

func TestHeartbeatsKeepStreamAlive(t *testing.T) {
	// The idle timeout is 25 heartbeats long, so a loaded machine cannot make
	// a late heartbeat look like a dead stream.
	e := newEnv(t, "unix", api.HandlerOptions{HeartbeatInterval: 10 * time.Millisecond},
		Options{StreamIdleTimeout: 250 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Execute(ctx, ExecuteOptions{Request: api.CreateRequest{Code: "wait"}, OnEvent: rec.add})
		done <- err
	}()
	// Let several idle timeouts pass (80 heartbeats, over 3 timeouts);
	// heartbeats must keep the first stream up.
	waitFor(t, func() bool { return e.cuts.linesWritten() > 80 })
	if err := e.client.Cancel(context.Background(), "sess-1"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; api.CodeOf(err) != api.CodeCancelled {
		t.Fatalf("err = %v, want CANCELLED", err)
	}
	if n := e.cuts.count("GET events"); n != 0 {
		t.Errorf("%d replays although heartbeats flowed", n)
	}
	rec.wantSeqs(t, 2)
}

func TestExecuteCallerCancelCancelsSession(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.client.Execute(ctx, ExecuteOptions{
		Request: api.CreateRequest{Code: "wait"},
		OnEvent: func(ev api.Event) {
			if ev.Type == api.EventSessionInit {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := e.cuts.count("DELETE /v1/sessions/sess-1"); n != 1 {
		t.Errorf("session cancelled %d times, want 1", n)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t, "unix", api.HandlerOptions{}, Options{})
	res, err := e.client.Execute(context.Background(), ExecuteOptions{
		Request: api.CreateRequest{Code: "tools 2"}, Tools: (&adder{}).handle})
	if err != nil {
		t.Fatal(err)
	}
	events, errc := e.client.Events(context.Background(), res.SessionID, 5)
	var got []int64
	for ev := range events {
		got = append(got, ev.Seq)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[5 6 7 8]" {
		t.Errorf("seqs = %v, want [5 6 7 8]", got)
	}

	events, errc = e.client.Events(context.Background(), "nope", 0)
	for range events {
		t.Error("event from an unknown session")
	}
	if err := <-errc; api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("err = %v, want NOT_FOUND", err)
	}
}

func TestCancelHealthReady(t *testing.T) {
	e := newEnv(t, "tcp", api.HandlerOptions{}, Options{})
	ctx := context.Background()
	if err := e.client.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if err := e.client.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	e.b.readyErr = errors.New("pool draining")
	if err := e.client.Ready(ctx); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "pool draining") {
		t.Errorf("Ready = %v, want ErrNotReady with the reason", err)
	}
	if err := e.client.Cancel(ctx, "nope"); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("Cancel(nope) = %v, want NOT_FOUND", err)
	}
}

func TestAPIKey(t *testing.T) {
	hopts := api.HandlerOptions{Authenticate: api.BearerAuth([]string{"right"})}
	for _, tt := range []struct {
		key  string
		want api.Code
	}{{"right", ""}, {"wrong", api.CodeUnauthorized}, {"", api.CodeUnauthorized}} {
		e := newEnv(t, "tcp", hopts, Options{APIKey: tt.key})
		_, err := e.client.Execute(context.Background(), ExecuteOptions{Request: api.CreateRequest{Code: "return 42"}})
		if (tt.want == "" && err != nil) || (tt.want != "" && api.CodeOf(err) != tt.want) {
			t.Errorf("key %q: err = %v, want %q", tt.key, err, tt.want)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := New(Options{BaseURL: srv.URL, RequestTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Health(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Health = %v, want a deadline error", err)
	}
	_, err = c.Execute(context.Background(), ExecuteOptions{Request: api.CreateRequest{Code: "1"}})
	if !errors.Is(err, errNoHeaders) {
		t.Errorf("Execute = %v, want %v", err, errNoHeaders)
	}
}

// A server that names the session neither in a header nor in an event leaves
// nothing to resume: the client says so instead of asking for a blank id.
func TestBreakBeforeSessionID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_, err = c.Execute(context.Background(), ExecuteOptions{Request: api.CreateRequest{Code: "1"}})
	if err == nil || !strings.Contains(err.Error(), "before the session id was known") {
		t.Errorf("err = %v", err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"socket", Options{Socket: "/tmp/x.sock"}, true},
		{"url", Options{BaseURL: "http://127.0.0.1:8080/"}, true},
		{"neither", Options{}, false},
		{"both", Options{Socket: "/tmp/x.sock", BaseURL: "http://127.0.0.1:1"}, false},
		{"no scheme", Options{BaseURL: "127.0.0.1:8080"}, false},
		{"ftp", Options{BaseURL: "ftp://127.0.0.1"}, false},
		{"jitter > 1", Options{Socket: "/s", Jitter: 1.5}, false},
		{"negative attempts", Options{Socket: "/s", MaxAttempts: -1}, false},
	}
	for _, tt := range tests {
		c, err := New(tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if c != nil {
			c.Close()
		}
	}
	c, _ := New(Options{BaseURL: "http://127.0.0.1:8080/"})
	if c.base != "http://127.0.0.1:8080" || c.opts.MaxAttempts != 5 || c.opts.Jitter != 0.2 ||
		c.opts.RequestTimeout != 10*time.Second || c.opts.MaxBackoff != 5*time.Second {
		t.Errorf("defaults: base %q opts %+v", c.base, c.opts)
	}
}
