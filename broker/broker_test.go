package broker

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
)

// A session started through broker A is answered and replayed through broker B:
// the brokers share nothing but Redis.
func TestToolResultAndReplayThroughAnotherBroker(t *testing.T) {
	crossBrokerSession(t, startRedis(t))
}

// The same session test on a three-node Redis Cluster: every script and
// pipeline must stay within one slot or be split by the client.
func TestCluster(t *testing.T) {
	crossBrokerSession(t, startCluster(t))
}

func crossBrokerSession(t *testing.T, rs store) {
	a, b := newBackend(t, rs, nil), newBackend(t, rs, nil)
	rt := startRuntime(t, rs, "rt-1", nil, nil)
	ctx := testCtx(t)

	id := create(t, a, "alice", askRequest())
	ch, err := a.Subscribe(ctx, "alice", id, 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	seen := untilType(t, ch, api.EventToolCall)
	callID := toolCallID(t, seen[len(seen)-1])

	wantCode(t, b.ToolResult(ctx, "mallory", id, api.ToolResultRequest{CallID: callID, Result: json.RawMessage(`{"v":1}`)}), api.CodeUnauthorized)
	wantCode(t, b.ToolResult(ctx, "alice", id, api.ToolResultRequest{CallID: "nope", Result: json.RawMessage(`{}`)}), api.CodeToolCallNotExpected)
	if err := b.ToolResult(ctx, "alice", id, api.ToolResultRequest{CallID: callID, Result: json.RawMessage(`{"v":21}`)}); err != nil {
		t.Fatalf("tool result through B: %v", err)
	}
	wantCode(t, b.ToolResult(ctx, "alice", id, api.ToolResultRequest{CallID: callID, Result: json.RawMessage(`{"v":5}`)}), api.CodeToolCallNotExpected)
	for e := range ch {
		seen = append(seen, e)
	}

	want := []api.EventType{api.EventSessionInit, api.EventToolCall, api.EventToolResultApplied, api.EventFinal}
	if got := types(seen); !reflect.DeepEqual(got, want) {
		t.Fatalf("events through A: %v, want %v", got, want)
	}
	checkSeqs(t, seen, 1)
	if got := finalResult(t, seen[3]); got != "42" {
		t.Fatalf("result %s, want 42", got)
	}
	replay := collect(t, b, "alice", id, 1)
	if !reflect.DeepEqual(replay, seen) {
		t.Fatalf("replay through B differs:\n%v\n%v", replay, seen)
	}
	if tail := collect(t, b, "alice", id, 3); !reflect.DeepEqual(tail, seen[2:]) {
		t.Fatalf("replay from seq 3: %v", types(tail))
	}
	if got := sessionField(t, b.rdb, id, "runtime"); got != rt.ID() {
		t.Fatalf("runtime field %q, want %q", got, rt.ID())
	}
	past, err := b.Subscribe(ctx, "alice", id, 9)
	if err != nil {
		t.Fatalf("subscribe past the end: %v", err)
	}
	for e := range past {
		t.Fatalf("replay past the end gave %s", e.Type)
	}
	_, err = b.Subscribe(ctx, "mallory", id, 1)
	wantCode(t, err, api.CodeUnauthorized)
	_, err = b.Subscribe(ctx, "alice", "no-such-session", 1)
	wantCode(t, err, api.CodeNotFound)
	wantCode(t, b.Cancel(ctx, "mallory", id), api.CodeUnauthorized)
}

// A script the validator refuses ends like any run: session_init, then the
// error, written by the runtime.
func TestValidationErrorIsAnEvent(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	startRuntime(t, rs, "rt-1", nil, nil)
	evs := collect(t, b, "", create(t, b, "", api.CreateRequest{Code: "return eval('1')"}), 1)
	if got := types(evs); !reflect.DeepEqual(got, []api.EventType{api.EventSessionInit, api.EventError}) {
		t.Fatalf("events %v", got)
	}
	if code := errorCode(t, evs[1]); code != api.CodeValidation {
		t.Fatalf("code %s, want VALIDATION_ERROR", code)
	}
}

// Cancel ends a queued session in the broker and a started one in its runtime.
func TestCancel(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	ctx := testCtx(t)

	queued := create(t, b, "alice", api.CreateRequest{Code: "return 1"})
	if err := b.Cancel(ctx, "alice", queued); err != nil {
		t.Fatalf("cancel queued: %v", err)
	}
	evs := collect(t, b, "alice", queued, 1)
	if len(evs) != 1 || errorCode(t, evs[0]) != api.CodeCancelled {
		t.Fatalf("queued cancel events %v", types(evs))
	}

	rt := startRuntime(t, rs, "rt-1", nil, nil)
	started := create(t, b, "alice", askRequest())
	ch, err := b.Subscribe(ctx, "alice", started, 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	seen := untilType(t, ch, api.EventToolCall)
	if err := b.Cancel(ctx, "alice", started); err != nil {
		t.Fatalf("cancel started: %v", err)
	}
	var last api.Event
	for e := range ch {
		last = e
	}
	if code := errorCode(t, last); code != api.CodeCancelled {
		t.Fatalf("started cancel ended with %s", code)
	}
	late := api.ToolResultRequest{CallID: toolCallID(t, seen[len(seen)-1]), Result: json.RawMessage(`{"v":1}`)}
	wantCode(t, b.ToolResult(ctx, "alice", started, late), api.CodeToolCallNotExpected)
	if got := sessionField(t, b.rdb, queued, "runtime"); got != "" {
		t.Fatalf("the queued session was run by %q after its cancel", got)
	}
	if got := sessionField(t, b.rdb, started, "runtime"); got != rt.ID() {
		t.Fatalf("started session runtime %q", got)
	}
	if got := sessionField(t, b.rdb, queued, "code"); got != "CANCELLED" {
		t.Fatalf("queued session code %q", got)
	}
}

// A runtime that dies mid-session: its started session ends with RUNTIME_LOST
// and runs nowhere else; a job a dead consumer took but never started, and a
// job still queued, run on the runtime that is left.
func TestRuntimeLostAndClaim(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	ctx := testCtx(t)
	dying := startRuntime(t, rs, "rt-dying", nil, func(o *RuntimeOptions) { o.Capacity = 1 })

	// Step 1: the dying runtime starts a session and waits on its tool call.
	s1 := create(t, b, "alice", askRequest())
	ch, err := b.Subscribe(ctx, "alice", s1, 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	untilType(t, ch, api.EventToolCall)

	// Step 2: a consumer takes the next job and dies before starting it.
	s2 := create(t, b, "alice", api.CreateRequest{Code: "return 7"})
	res, err := b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: groupName, Consumer: "ghost", Streams: []string{streamKey(defaultTarget), ">"}, Count: 1,
	}).Result()
	if err != nil || len(res[0].Messages) != 1 || res[0].Messages[0].Values["session"] != s2 {
		t.Fatalf("ghost read: %v %v", res, err)
	}
	s3 := create(t, b, "alice", api.CreateRequest{Code: "return 8"})

	// Step 3: kill the runtime; another one comes up.
	dying.stop(t)
	// One slot: the claimed job may have to wait for it behind s3.
	survivor := startRuntime(t, rs, "rt-survivor", nil, func(o *RuntimeOptions) { o.Capacity = 1 })

	var lost []api.Event
	for e := range ch {
		lost = append(lost, e)
	}
	if len(lost) == 0 || errorCode(t, lost[len(lost)-1]) != api.CodeRuntimeLost {
		t.Fatalf("s1 ended with %v", types(lost))
	}
	all := collect(t, b, "alice", s1, 1)
	checkSeqs(t, all, 1)
	want := []api.EventType{api.EventSessionInit, api.EventToolCall, api.EventError}
	if !reflect.DeepEqual(types(all), want) {
		t.Fatalf("s1 events %v, want %v (run once, then lost)", types(all), want)
	}
	if got := sessionField(t, b.rdb, s1, "runtime"); got != dying.ID() {
		t.Fatalf("s1 runtime %q, want %q", got, dying.ID())
	}
	// The call it was waiting on is no longer pending: a late answer is refused,
	// not queued for a reader that will never come.
	late := api.ToolResultRequest{CallID: toolCallID(t, all[1]), Result: []byte("1")}
	if err := b.ToolResult(ctx, "alice", s1, late); api.CodeOf(err) != api.CodeToolCallNotExpected {
		t.Fatalf("late answer after RUNTIME_LOST: %v", err)
	}
	for id, want := range map[string]string{s2: "7", s3: "8"} {
		evs := collect(t, b, "alice", id, 1)
		if got := finalResult(t, evs[len(evs)-1]); got != want {
			t.Fatalf("session %s result %s, want %s", id, got, want)
		}
		if got := sessionField(t, b.rdb, id, "runtime"); got != survivor.ID() {
			t.Fatalf("session %s ran on %q, want %q", id, got, survivor.ID())
		}
	}
	poll(t, "the open-session set empties", func() bool {
		n, err := b.rdb.ZCard(ctx, openSessionsKey).Result()
		return err == nil && n == 0
	})
}

// Requests routed to {tier: premium} run only on the premium runtime.
func TestRouting(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, func(o *BackendOptions) {
		o.RoutingRules = []limits.RoutingRule{{Match: map[string]string{"priority": "high"}, Target: map[string]string{"tier": "premium"}}}
	})
	startRuntime(t, rs, "rt-standard", map[string]string{"tier": "standard"}, nil)
	premium := startRuntime(t, rs, "rt-premium", map[string]string{"tier": "premium", "region": "eu"}, nil)

	var ids []string
	for range 6 {
		ids = append(ids, create(t, b, "", api.CreateRequest{Code: "return 1", Metadata: map[string]string{"priority": "high"}}))
	}
	for _, id := range ids {
		evs := collect(t, b, "", id, 1)
		finalResult(t, evs[len(evs)-1])
		if got := sessionField(t, b.rdb, id, "runtime"); got != premium.ID() {
			t.Fatalf("premium session ran on %q", got)
		}
		if got := sessionField(t, b.rdb, id, "target"); got != "tier=premium" {
			t.Fatalf("target %q", got)
		}
	}
	plain := create(t, b, "", api.CreateRequest{Code: "return 2", Metadata: map[string]string{"priority": "low"}})
	evs := collect(t, b, "", plain, 1)
	if got := finalResult(t, evs[len(evs)-1]); got != "2" {
		t.Fatalf("default-routed result %s", got)
	}
}

// The session limit holds across two brokers under concurrent submits.
func TestSessionLimitAcrossBrokers(t *testing.T) {
	rs := startRedis(t)
	limit := func(o *BackendOptions) { o.MaxConcurrentSessions = 5 }
	brokers := []*Backend{newBackend(t, rs, limit), newBackend(t, rs, limit)}
	ctx := testCtx(t)

	var (
		mu      sync.Mutex
		created []string
		refused int
		wg      sync.WaitGroup
	)
	for i := range 40 {
		wg.Go(func() {
			id, err := brokers[i%2].Create(ctx, "alice", api.CreateRequest{Code: "return 1"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				created = append(created, id)
				return
			}
			if api.CodeOf(err) == api.CodeSessionLimit {
				refused++
				return
			}
			t.Errorf("create: %v", err)
		})
	}
	wg.Wait()
	if len(created) != 5 || refused != 35 {
		t.Fatalf("created %d and refused %d, want 5 and 35", len(created), refused)
	}
	if err := brokers[0].Cancel(ctx, "alice", created[0]); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if _, err := brokers[1].Create(ctx, "alice", api.CreateRequest{Code: "return 1"}); err != nil {
		t.Fatalf("create after a cancel freed a place: %v", err)
	}
	_, err := brokers[0].Create(ctx, "alice", api.CreateRequest{Code: "return 1"})
	wantCode(t, err, api.CodeSessionLimit)
}

// Redis restarted empty under load: sessions in flight end (with an error
// event, never a hang), and brokers and runtimes recover so new sessions run.
func TestRedisRestartUnderLoad(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	startRuntime(t, rs, "rt-1", nil, nil)
	l := &loader{b: b}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { l.loop(stop) })
	}
	defer func() { close(stop); wg.Wait() }()

	poll(t, "ten sessions succeed", func() bool { return l.count(&l.ok) >= 10 })
	rs.stop()
	before := l.count(&l.ok)
	rs.start()
	poll(t, "ten sessions succeed after the restart", func() bool { return l.count(&l.ok) >= before+10 })
	if n := l.count(&l.hung); n > 0 {
		t.Fatalf("%d sessions never ended", n)
	}
}

// loader runs sessions back to back and counts how they end.
type loader struct {
	b                *Backend
	mu               sync.Mutex
	ok, failed, hung int
}

func (l *loader) count(n *int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *n
}

func (l *loader) add(n *int) {
	l.mu.Lock()
	*n++
	l.mu.Unlock()
}

func (l *loader) loop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		l.add(l.once())
	}
}

// once runs one session and says which counter it belongs to.
func (l *loader) once() *int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	id, err := l.b.Create(ctx, "", api.CreateRequest{Code: "return 3"})
	if err != nil {
		time.Sleep(20 * time.Millisecond)
		return &l.failed
	}
	ch, err := l.b.Subscribe(ctx, "", id, 1)
	if err != nil {
		return &l.failed
	}
	var last api.Event
	for e := range ch {
		last = e
	}
	switch {
	case ctx.Err() != nil:
		return &l.hung
	case last.Type == api.EventFinal && string(last.Payload) != "" && strings.Contains(string(last.Payload), `"result":3`):
		return &l.ok
	}
	return &l.failed
}

// Drain finishes the running session, then stops, and says goodbye.
func TestDrain(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	rt := startRuntime(t, rs, "rt-1", nil, nil)
	ctx := testCtx(t)

	id := create(t, b, "", askRequest())
	ch, err := b.Subscribe(ctx, "", id, 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	callID := toolCallID(t, untilType(t, ch, api.EventToolCall)[1])
	drained := make(chan error, 1)
	go func() { drained <- rt.Drain(ctx) }()
	poll(t, "the runtime reports draining", func() bool { return rt.Ready(ctx) != nil })
	if got := answerAndFinish(t, b, "", id, callID, `{"v":2}`, ch); got != "4" {
		t.Fatalf("result %s, want 4", got)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if err := <-rt.done; err != nil {
		t.Fatalf("run after drain: %v", err)
	}
	rt.done = closedErrChan()
	if n, _ := b.rdb.Exists(ctx, runtimeKey(rt.ID())).Result(); n != 0 {
		t.Fatalf("heartbeat key left after drain")
	}
}

func TestRouteAndServe(t *testing.T) {
	rules := []limits.RoutingRule{
		{Match: map[string]string{"priority": "high"}, Target: map[string]string{"tier": "premium"}},
		{Match: map[string]string{"region": "eu"}, Target: map[string]string{"region": "eu", "tier": "standard"}},
	}
	tests := []struct {
		meta   map[string]string
		target string
	}{
		{nil, "default"},
		{map[string]string{"priority": "high", "region": "eu"}, "tier=premium"},
		{map[string]string{"region": "eu"}, "region=eu,tier=standard"},
		{map[string]string{"region": "us"}, "default"},
	}
	for _, tt := range tests {
		if got := route(rules, tt.meta); got != tt.target {
			t.Errorf("route(%v) = %q, want %q", tt.meta, got, tt.target)
		}
	}
	labels := map[string]string{"tier": "premium", "region": "eu"}
	for target, want := range map[string]bool{
		"default": true, "tier=premium": true, "region=eu,tier=premium": true,
		"tier=standard": false, "region=eu,tier=standard": false, "garbage": false,
	} {
		if got := serves(labels, target); got != want {
			t.Errorf("serves(%v, %q) = %v, want %v", labels, target, got, want)
		}
	}
}

// A session no runtime takes ends when its keys expire, and its place among the
// open sessions lapses with it.
func TestSessionExpiry(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, func(o *BackendOptions) {
		o.SessionTimeout, o.MaxConcurrentSessions = time.Second, 1
	})
	ctx := testCtx(t)
	id := create(t, b, "", api.CreateRequest{Code: "return 1"})
	_, err := b.Create(ctx, "", api.CreateRequest{Code: "return 1"})
	wantCode(t, err, api.CodeSessionLimit)
	_, err = b.Create(ctx, "", api.CreateRequest{Code: "return 1", SecurityLevel: "LAX"})
	wantCode(t, err, api.CodeInvalidRequest)
	evs := collect(t, b, "", id, 1)
	if len(evs) != 1 || evs[0].Seq != 1 || errorCode(t, evs[0]) != api.CodeQueueTimeout {
		t.Fatalf("expired session events %v", types(evs))
	}
	_, err = b.Subscribe(ctx, "", id, 1)
	wantCode(t, err, api.CodeNotFound)
	if _, err := b.Create(ctx, "", api.CreateRequest{Code: "return 1"}); err != nil {
		t.Fatalf("create after the first session's place lapsed: %v", err)
	}
}

// The runtime reports its health to Prometheus.
func TestRuntimeHealthMetric(t *testing.T) {
	rs := startRedis(t)
	reg := prometheus.NewRegistry()
	rt := startRuntime(t, rs, "rt-metrics", nil, func(o *RuntimeOptions) { o.Registerer = reg })
	if got := healthValue(t, reg, "rt-metrics"); got != 1 {
		t.Fatalf("health %v while running, want 1", got)
	}
	rt.stop(t)
	if got := healthValue(t, reg, "rt-metrics"); got != 0 {
		t.Fatalf("health %v after the stop, want 0", got)
	}
}

func healthValue(t *testing.T, reg *prometheus.Registry, id string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "enclave_runtime_health" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetName() == "runtime_id" && l[0].GetValue() == id {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no enclave_runtime_health{runtime_id=%q}", id)
	return -1
}

// The broker's enclave_queue_depth counts, per target, the jobs no runtime took.
func TestQueueDepthMetric(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, func(o *BackendOptions) {
		o.RoutingRules = []limits.RoutingRule{{Match: map[string]string{"priority": "high"}, Target: map[string]string{"tier": "premium"}}}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(b.rdb))
	for i := range 5 {
		md := map[string]string{}
		if i < 2 {
			md["priority"] = "high"
		}
		create(t, b, "", api.CreateRequest{Code: "return 1", Metadata: md})
	}
	if got := queueDepths(t, reg); got["default"] != 3 || got["tier=premium"] != 2 {
		t.Fatalf("queue depths %v, want default 3 and tier=premium 2", got)
	}
	startRuntime(t, rs, "rt-standard", map[string]string{"tier": "standard"}, nil)
	poll(t, "the default queue empties", func() bool { return queueDepths(t, reg)["default"] == 0 })
	if got := queueDepths(t, reg)["tier=premium"]; got != 2 {
		t.Fatalf("premium queue %v, want 2: no runtime serves it", got)
	}
}

func queueDepths(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "enclave_queue_depth" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// A runtime that cannot reach Redis at start still stops at once on Drain.
func TestDrainWhileRedisUnreachable(t *testing.T) {
	rdb := NewClient(limits.Redis{Addrs: []string{"127.0.0.1:" + strconv.Itoa(freePort(t))}})
	t.Cleanup(func() { _ = rdb.Close() })
	rt, err := NewRuntime(RuntimeOptions{Redis: rdb, Supervisor: newSupervisor(t, "rt-offline"), ID: "rt-offline"})
	if err != nil {
		t.Fatalf("new runtime: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(testCtx(t)) }()
	if err := rt.Drain(testCtx(t)); err != nil {
		t.Fatalf("drain: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after drain: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("run did not return after the drain")
	}
}

// A session that runs longer than the claim timeout on a live runtime is
// claimed by the reapers and handed back, again and again, and never lost.
func TestLongRunOnLiveRuntimeIsNotLost(t *testing.T) {
	rs := startRedis(t)
	b := newBackend(t, rs, nil)
	startRuntime(t, rs, "rt-1", nil, nil)
	startRuntime(t, rs, "rt-2", nil, nil)
	ctx := testCtx(t)

	id := create(t, b, "", askRequest())
	ch, err := b.Subscribe(ctx, "", id, 1)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	callID := toolCallID(t, untilType(t, ch, api.EventToolCall)[1])
	owner := sessionField(t, b.rdb, id, "runtime")
	poll(t, "the reapers claimed the job three times", func() bool {
		p, err := b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: streamKey(defaultTarget), Group: groupName, Start: "-", End: "+", Count: 1,
		}).Result()
		return err == nil && len(p) == 1 && p[0].RetryCount >= 4
	})
	if got := answerAndFinish(t, b, "", id, callID, `{"v":8}`, ch); got != "16" {
		t.Fatalf("result %s, want 16", got)
	}
	if got := sessionField(t, b.rdb, id, "runtime"); got != owner {
		t.Fatalf("runtime changed from %s to %s", owner, got)
	}
}
