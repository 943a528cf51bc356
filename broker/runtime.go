package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/supervisor"
)

// Runtime defaults.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultClaimTimeout      = 15 * time.Second
	DefaultTargetRefresh     = 2 * time.Second
)

// RuntimeOptions configure a Runtime.
type RuntimeOptions struct {
	// Redis is the shared store. Required; the caller closes it.
	Redis redis.UniversalClient
	// Supervisor runs the sessions. Required; the caller closes it after Run
	// returns.
	Supervisor *supervisor.Supervisor
	// ID names the runtime in Redis; it must be unique among live runtimes.
	// Required.
	ID string
	// Labels are matched by the brokers' routing rules. Default: none (the
	// runtime takes only work no rule routes).
	Labels map[string]string
	// Capacity is how many sessions the runtime runs at once; it reads no more
	// work while full, so the rest waits in Redis for other runtimes. Default:
	// the supervisor's pool size.
	Capacity int
	// HeartbeatInterval is how often runtime:{id} is renewed. Default 2s.
	HeartbeatInterval time.Duration
	// HeartbeatTTL is how long the key outlives a missed renewal; a runtime whose
	// key expired is taken for dead. Default 3 x HeartbeatInterval.
	HeartbeatTTL time.Duration
	// ClaimTimeout is how long a job may sit with a consumer that has not acked
	// it before another runtime's reaper looks at it. Default 15s.
	ClaimTimeout time.Duration
	// TargetRefresh is how often the runtime looks for new work streams it
	// serves. Default 2s.
	TargetRefresh time.Duration
	// Logger receives the runtime's logs. Default: discard.
	Logger *slog.Logger
	// Registerer gets enclave_runtime_health. Default: none registered.
	Registerer prometheus.Registerer
}

func (o *RuntimeOptions) fill() error {
	if o.Redis == nil || o.Supervisor == nil || o.ID == "" {
		return errors.New("runtime: Redis, Supervisor and ID are required")
	}
	if o.Capacity <= 0 {
		o.Capacity = o.Supervisor.Config().Pool.Size
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTTL <= 0 {
		o.HeartbeatTTL = 3 * o.HeartbeatInterval
	}
	if o.ClaimTimeout <= 0 {
		o.ClaimTimeout = DefaultClaimTimeout
	}
	if o.TargetRefresh <= 0 {
		o.TargetRefresh = DefaultTargetRefresh
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Runtime takes sessions from the work streams its labels serve and runs them
// on a local supervisor, writing their events to Redis.
//
// Run runs it; ending Run's context stops it at once, as a crash would (nothing
// more is written, the heartbeat lapses and other runtimes clean up); Drain
// stops it gracefully.
type Runtime struct {
	opts RuntimeOptions
	rdb  redis.UniversalClient
	sup  *supervisor.Supervisor
	log  *slog.Logger
	id   string

	slots    chan struct{} // one token per session this runtime may run
	health   prometheus.Gauge
	draining atomic.Bool

	quit      chan struct{}  // closed by Drain
	drained   chan struct{}  // closed by Drain once the last run ended
	setupDone chan struct{}  // closed when Run's set-up ended, well or not
	started   chan struct{}  // closed when Run has set up
	runWG     sync.WaitGroup // sessions being run
	loopWG    sync.WaitGroup // readers, heartbeat, reaper, cancel listener

	mu       sync.Mutex         // guards the fields below
	stopRead context.CancelFunc // set by Run: ends the work readers
	runs     map[string]*run
	streams  map[string]bool // work streams read -> whose group is known to exist
	claimed  map[string]bool // entries of claimed jobs waiting for a slot
}

// NewRuntime checks opts and returns a Runtime; Run starts it.
func NewRuntime(opts RuntimeOptions) (*Runtime, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	rt := &Runtime{
		opts: opts, rdb: opts.Redis, sup: opts.Supervisor, log: opts.Logger.With("runtime_id", opts.ID),
		id: opts.ID, slots: make(chan struct{}, opts.Capacity), drained: make(chan struct{}),
		quit: make(chan struct{}), setupDone: make(chan struct{}), started: make(chan struct{}), runs: map[string]*run{}, streams: map[string]bool{},
		claimed: map[string]bool{},
	}
	rt.health = newHealthGauge(opts.Registerer, opts.ID)
	return rt, nil
}

// ID is the runtime's name in Redis.
func (rt *Runtime) ID() string { return rt.id }

// Run takes and runs work until ctx ends or Drain finishes. When ctx ends first,
// the runtime stops where it is, like a killed process: running sessions are
// abandoned and left to the other runtimes' reapers.
func (rt *Runtime) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readCtx, stopRead := context.WithCancel(ctx)
	rt.mu.Lock()
	rt.stopRead = stopRead
	rt.mu.Unlock()
	if err := rt.setup(ctx); err != nil {
		if rt.draining.Load() {
			return nil // drained before it ever took work
		}
		return err
	}
	rt.beat(ctx)
	rt.spawn(func() { rt.heartbeat(ctx) })
	rt.refreshStreams(readCtx)
	rt.spawn(func() { rt.discover(readCtx) })
	rt.spawn(func() { rt.consume(ctx, readCtx) })
	rt.spawn(func() { rt.reap(ctx, readCtx) })
	close(rt.started)
	rt.log.Info("runtime started", "labels", rt.opts.Labels, "capacity", rt.opts.Capacity)

	select {
	case <-ctx.Done():
		stopRead()
		rt.loopWG.Wait()
		rt.runWG.Wait()
		rt.health.Set(0) // after the loops: a last heartbeat may have set 1
		return ctx.Err()
	case <-rt.drained:
	}
	cancel()
	rt.loopWG.Wait()
	rt.goodbye()
	return nil
}

// setup subscribes to cancels, which waits for Redis; a Drain meanwhile ends
// the wait.
func (rt *Runtime) setup(ctx context.Context) error {
	defer close(rt.setupDone)
	setupCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-rt.quit:
			stop()
		case <-setupCtx.Done():
		}
	}()
	return rt.listenCancels(ctx, setupCtx)
}

// spawn runs fn as one of the runtime's loops.
func (rt *Runtime) spawn(fn func()) {
	rt.loopWG.Add(1)
	go func() { defer rt.loopWG.Done(); fn() }()
}

// Drain stops taking work, waits for the running sessions to end and then makes
// Run return. If ctx ends first the sessions still running are left as they are
// and Drain returns ctx's error; end Run's context to stop them.
func (rt *Runtime) Drain(ctx context.Context) error {
	if !rt.draining.CompareAndSwap(false, true) {
		return errors.New("runtime: already draining")
	}
	close(rt.quit)
	select {
	case <-rt.setupDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-rt.started:
	default:
		return nil // Run gave up its set-up and returns by itself
	}
	rt.log.Info("runtime draining")
	rt.mu.Lock()
	rt.stopRead()
	rt.mu.Unlock()
	done := make(chan struct{})
	go func() { rt.runWG.Wait(); close(done) }()
	select {
	case <-done:
		close(rt.drained)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}

// goodbye removes the heartbeat key after a drain, so nobody waits for it to
// lapse.
func (rt *Runtime) goodbye() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rt.health.Set(0)
	if err := rt.rdb.Del(ctx, runtimeKey(rt.id)).Err(); err != nil {
		rt.log.Warn("remove heartbeat", "error", err)
	}
	rt.log.Info("runtime drained")
}

// heartbeat renews runtime:{id} until ctx ends.
func (rt *Runtime) heartbeat(ctx context.Context) {
	t := time.NewTicker(rt.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rt.beat(ctx)
		}
	}
}

// heartbeatValue is what runtime:{id} holds, for operators and dashboards.
type heartbeatValue struct {
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Running  int               `json:"running"`
	Draining bool              `json:"draining"`
}

func (rt *Runtime) beat(ctx context.Context) {
	rt.mu.Lock()
	v := heartbeatValue{Labels: rt.opts.Labels, Capacity: rt.opts.Capacity, Running: len(rt.runs), Draining: rt.draining.Load()}
	rt.mu.Unlock()
	body, _ := json.Marshal(v)
	if err := rt.rdb.Set(ctx, runtimeKey(rt.id), body, rt.opts.HeartbeatTTL).Err(); err != nil {
		if ctx.Err() == nil {
			rt.log.Warn("heartbeat failed", "error", err)
		}
		rt.health.Set(0)
		return
	}
	rt.health.Set(1)
}

// Ready returns nil when the runtime takes work: not draining, Redis answers and
// the pool can start a run.
func (rt *Runtime) Ready(ctx context.Context) error {
	if rt.draining.Load() {
		return errors.New("draining")
	}
	if err := rt.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return rt.sup.Ready()
}

// listenCancels subscribes to this runtime's cancel channel (giving up when
// setupCtx ends) before any work is read, so a cancel for a session it starts
// cannot be missed, and then hands the messages on until ctx ends.
func (rt *Runtime) listenCancels(ctx, setupCtx context.Context) error {
	ps, err := rt.subscribeCancels(setupCtx)
	if err != nil {
		return err
	}
	rt.spawn(func() {
		defer ps.Close()
		ch := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				rt.cancelRun(m.Payload)
			}
		}
	})
	return nil
}

// subscribeCancels keeps trying while Redis is unreachable, until ctx ends.
func (rt *Runtime) subscribeCancels(ctx context.Context) (*redis.PubSub, error) {
	ps := rt.rdb.Subscribe(ctx, cancelChannel(rt.id))
	wait := newRetry()
	for {
		_, err := ps.Receive(ctx)
		if err == nil {
			return ps, nil
		}
		if ctx.Err() != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("subscribe to cancels: %w", err)
		}
		rt.log.Warn("subscribe to cancels; retrying", "error", err)
		wait.sleep(ctx)
	}
}

func (rt *Runtime) cancelRun(id string) {
	rt.mu.Lock()
	r := rt.runs[id]
	rt.mu.Unlock()
	if r != nil {
		r.cancelByClient()
	}
}

func (rt *Runtime) track(r *run) {
	rt.mu.Lock()
	rt.runs[r.id] = r
	rt.mu.Unlock()
}

func (rt *Runtime) untrack(r *run) {
	rt.mu.Lock()
	delete(rt.runs, r.id)
	rt.mu.Unlock()
}

func (rt *Runtime) running(id string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.runs[id] != nil
}

// newTicker is time.NewTicker with a floor, so a tiny configured interval does
// not spin.
func newTicker(d time.Duration) *time.Ticker {
	return time.NewTicker(max(d, 50*time.Millisecond))
}
