package supervisor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/enclave-go/enclave/api"
)

// worker is a started process and its use count, owned by the pool or by the one run
// using it.
type worker struct {
	*process
	runs     int64
	lastUsed time.Time
	retire   bool // do not return it to the pool after this run
}

// pool hands out workers. Capacity is a semaphore of size slots; a run that finds no
// slot waits in the queue (at most maxQueue runs, each at most queueTimeout).
// Worker ids are slot-like numbers reused after a worker goes, so per-worker metric
// series stay bounded.
type pool struct {
	size         int
	minWorkers   int
	maxQueue     int
	queueTimeout time.Duration
	idleTimeout  time.Duration
	start        func(ctx context.Context, id int) (*process, error)
	onExit       func(w *worker, reason string)

	slots chan struct{} // one token per run that may hold a worker

	mu       sync.Mutex // guards the fields below
	idle     []*worker  // most recently used last
	ids      []bool     // worker ids in use
	busy     map[*worker]struct{}
	live     int // started or starting workers, retiring ones included
	retiring int // workers being stopped, not yet forgotten
	waiting  int // runs in the queue
	closed   bool
}

var errPoolClosed = errors.New("worker pool is closed")

func newPool(p *pool) *pool {
	p.slots = make(chan struct{}, p.size)
	p.ids = make([]bool, p.size)
	p.busy = map[*worker]struct{}{}
	return p
}

// ticket is a run's place: a slot already held, or a place in the queue.
type ticket struct {
	p       *pool
	hasSlot bool
	queued  bool
}

// admit decides at once: a free slot, a place in the queue, or QUEUE_FULL.
func (p *pool) admit() (*ticket, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	select {
	case p.slots <- struct{}{}:
		return &ticket{p: p, hasSlot: true}, nil
	default:
	}
	if p.waiting >= p.maxQueue {
		return nil, api.Errorf(api.CodeQueueFull, "all %d workers are busy and %d runs are queued", p.size, p.waiting)
	}
	p.waiting++
	return &ticket{p: p, queued: true}, nil
}

// acquire waits, if queued, for a slot (at most queueTimeout), then returns a ready
// worker: an idle one, else a new one. On error the ticket holds nothing.
func (t *ticket) acquire(ctx context.Context) (*worker, error) {
	if err := t.wait(ctx); err != nil {
		return nil, err
	}
	w, err := t.p.takeWorker(ctx)
	if err != nil {
		t.drop()
		return nil, err
	}
	return w, nil
}

// drop gives up the ticket's slot or queue place without running.
func (t *ticket) drop() {
	p := t.p
	if t.queued {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		t.queued = false
	}
	if t.hasSlot {
		<-p.slots
		t.hasSlot = false
	}
}

func (t *ticket) wait(ctx context.Context) error {
	if t.hasSlot {
		return nil
	}
	p := t.p
	defer func() {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		t.queued = false
	}()
	timer := time.NewTimer(p.queueTimeout)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		t.hasSlot = true
		return nil
	case <-timer.C:
		return api.Errorf(api.CodeQueueTimeout, "no worker was free within %s", p.queueTimeout)
	case <-ctx.Done():
		return api.Errorf(api.CodeCancelled, "cancelled while queued")
	}
}

// takeWorker pops the most recently used idle worker (its caches are warm), or
// starts one. Holding a slot guarantees live < size when no worker is idle.
func (p *pool) takeWorker(ctx context.Context) (*worker, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.busy[w] = struct{}{}
		p.mu.Unlock()
		return w, nil
	}
	id := p.reserveID()
	p.mu.Unlock()
	w, err := p.spawn(ctx, id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.busy[w] = struct{}{}
	p.mu.Unlock()
	return w, nil
}

// killBusy kills the workers still running a run (shutdown past its grace).
func (p *pool) killBusy() {
	p.mu.Lock()
	busy := make([]*worker, 0, len(p.busy))
	for w := range p.busy {
		busy = append(busy, w)
	}
	p.mu.Unlock()
	for _, w := range busy {
		w.kill("shutdown")
	}
}

// reserveID takes the lowest free worker id and counts the worker as live. p.mu held.
func (p *pool) reserveID() int {
	p.live++
	for i, used := range p.ids {
		if !used {
			p.ids[i] = true
			return i
		}
	}
	p.ids = append(p.ids, true) // only while old workers are still being stopped
	return len(p.ids) - 1
}

func (p *pool) spawn(ctx context.Context, id int) (*worker, error) {
	proc, err := p.start(ctx, id)
	if err != nil {
		p.forget(id)
		return nil, api.Errorf(api.CodeInternal, "start worker: %v", err)
	}
	return &worker{process: proc, lastUsed: time.Now()}, nil
}

func (p *pool) forget(id int) {
	p.mu.Lock()
	p.ids[id] = false
	p.live--
	p.mu.Unlock()
}

// release gives the worker back (or retires it) and frees the run's slot.
func (p *pool) release(w *worker, maxRuns int64) {
	defer func() { <-p.slots }()
	w.runs++
	w.lastUsed = time.Now()
	reason := ""
	switch {
	case w.retire:
		reason = w.killReason()
	case maxRuns > 0 && w.runs >= maxRuns:
		reason = "recycled"
	}
	p.mu.Lock()
	delete(p.busy, w)
	closed := p.closed
	if reason == "" && !closed {
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if closed {
		p.retireWorker(w, "shutdown")
		return
	}
	p.retireWorker(w, reason)
	p.refill()
}

// retireWorker stops a worker in the background and frees its id when it is gone.
func (p *pool) retireWorker(w *worker, reason string) {
	if reason == "" {
		reason = "crashed"
	}
	p.onExit(w, reason)
	p.mu.Lock()
	p.retiring++
	p.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.stop(ctx, reason)
		p.mu.Lock()
		p.retiring--
		p.mu.Unlock()
		p.forget(w.id)
	}()
}

// refill keeps minWorkers warm: a worker retired under load is replaced at once,
// before the next run asks for it.
func (p *pool) refill() {
	p.mu.Lock()
	active := p.live - p.retiring
	if p.closed || active >= p.minWorkers+len(p.slots) || active >= p.size {
		p.mu.Unlock()
		return
	}
	id := p.reserveID()
	p.mu.Unlock()
	go func() {
		w, err := p.spawn(context.Background(), id)
		if err != nil {
			return
		}
		p.putIdle(w)
	}()
}

func (p *pool) putIdle(w *worker) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		w.stop(context.Background(), "shutdown")
		p.forget(w.id)
		return
	}
	p.idle = append(p.idle, w)
	p.mu.Unlock()
}

// prewarm starts n workers and waits for them.
func (p *pool) prewarm(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		p.mu.Lock()
		id := p.reserveID()
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := p.spawn(ctx, id)
			if err != nil {
				errs <- err
				return
			}
			p.putIdle(w)
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// shrink stops idle workers beyond minWorkers that have not run for idleTimeout.
func (p *pool) shrink(now time.Time) {
	p.mu.Lock()
	var stale []*worker
	keep := p.idle[:0]
	for _, w := range p.idle {
		extra := p.live-p.retiring-len(stale) > p.minWorkers
		if extra && now.Sub(w.lastUsed) >= p.idleTimeout {
			stale = append(stale, w)
			continue
		}
		keep = append(keep, w)
	}
	p.idle = keep
	p.mu.Unlock()
	for _, w := range stale {
		p.retireWorker(w, "idle")
	}
}

// stats reports idle, live and queued counts for readiness and metrics.
func (p *pool) stats() (idle, live, waiting, busy int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), p.live, p.waiting, len(p.slots)
}

// close stops every idle worker and refuses new runs; running ones finish first
// (the caller waits for them) and are stopped on release.
func (p *pool) close(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stop(ctx, "shutdown")
			p.forget(w.id)
		}()
	}
	wg.Wait()
}
