package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/supervisor"
)

// writeTimeout bounds the retries of one event write while Redis is away; a run
// that cannot report is cancelled rather than run blind.
const writeTimeout = 5 * time.Second

// run is one session this runtime runs.
type run struct {
	rt     *Runtime
	id     string
	k      sessionKeys
	stream string // work stream and entry of the job, acked when the run ends
	entry  string
	ttl    time.Duration
	live   context.Context // the runtime's: writes stop when it is killed
	cancel context.CancelFunc
	// cancelled is set when the client cancelled the session, so the run's end
	// is reported as CANCELLED whatever error the interrupted script hit first
	// (its pending tool call fails as it stops).
	cancelled atomic.Bool

	mu   sync.Mutex // serializes event writes; guards seq and lost
	seq  int64
	lost bool // the session was declared lost by a reaper: write nothing more

	tools toolWaiters
}

// handle runs the job m of stream: start the session (once, whoever else read
// the job), run it, write its events, ack the job.
func (rt *Runtime) handle(ctx context.Context, stream string, m redis.XMessage) {
	id, _ := m.Values["session"].(string)
	if id == "" {
		rt.finishJob(ctx, stream, m.ID, "")
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{rt: rt, id: id, k: keysOf(id), stream: stream, entry: m.ID, live: ctx, cancel: cancel}
	// Tracked before it starts, so a cancel published right after the start
	// finds it.
	rt.track(r)
	defer rt.untrack(r)
	req, ok := r.start(ctx)
	if ok {
		r.execute(runCtx, req)
	}
}

// start marks the session started by this runtime. A session that is gone or
// done has its job acked; one started elsewhere is left to the reaper.
func (r *run) start(ctx context.Context) (api.CreateRequest, bool) {
	var req api.CreateRequest
	res, err := startScript.Run(ctx, r.rt.rdb, []string{r.k.hash}, r.rt.id, nowMs()).StringSlice()
	if err != nil {
		// The job stays pending under this runtime; the reaper picks it up.
		r.rt.log.Warn("start session", "session_id", r.id, "error", err)
		return req, false
	}
	if res[0] != "ok" || len(res) < 3 {
		if res[0] != "started" {
			r.rt.finishJob(ctx, r.stream, r.entry, r.id)
		}
		return req, false
	}
	ms, _ := strconv.ParseInt(res[2], 10, 64)
	r.ttl = time.Duration(ms) * time.Millisecond
	if err := json.Unmarshal([]byte(res[1]), &req); err != nil {
		r.finish(api.EventError, api.ErrorPayload{Code: api.CodeInternal, Message: "stored request unreadable: " + err.Error()})
		return req, false
	}
	return req, true
}

// execute runs the request on the supervisor and writes its outcome.
func (r *run) execute(ctx context.Context, req api.CreateRequest) {
	sreq := supervisor.RequestFrom(req)
	sreq.ClientTool, sreq.OnEvent, sreq.SessionID = r.clientTool, r.onEvent, r.id
	ex, err := r.rt.sup.Start(ctx, sreq)
	if err != nil {
		r.finish(api.EventError, errorPayload(err))
		return
	}
	if !r.emit(api.EventSessionInit, api.SessionInitPayload{SecurityLevel: ex.Level(), Limits: ex.Limits()}) {
		ex.Abandon()
		return
	}
	res, err := ex.Wait(ctx)
	if err != nil && r.cancelled.Load() {
		err = api.Errorf(api.CodeCancelled, "the session was cancelled")
	}
	if err != nil {
		r.finish(api.EventError, errorPayload(err))
		return
	}
	r.finish(api.EventFinal, api.FinalPayload{Result: res.Value, Stats: res.Stats})
}

func (r *run) onEvent(e supervisor.Event) { r.emit(e.Type, e.Payload) }

// cancelByClient stops the run because its client cancelled the session.
func (r *run) cancelByClient() {
	r.cancelled.Store(true)
	r.cancel()
}

// emit writes one event with the next seq; extra are appendScript's optional
// arguments (a pending tool call). It returns false when the session
// can take no more events: it was declared lost, or Redis stayed away; the
// run is cancelled then.
func (r *run) emit(typ api.EventType, payload any, extra ...any) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return false
	}
	ev := api.NewEvent(r.id, r.seq+1, typ, payload)
	args := append([]any{r.rt.id, eventID(ev.Seq), encodeEvent(ev), maxEvents, r.ttl.Milliseconds()}, extra...)
	ok, err := r.write(func(ctx context.Context) (int, error) {
		return appendScript.Run(ctx, r.rt.rdb, []string{r.k.hash, r.k.events, r.k.pending}, args...).Int()
	})
	if err != nil || !ok {
		r.giveUp(typ, err)
		return false
	}
	r.seq = ev.Seq
	return true
}

func (r *run) giveUp(typ api.EventType, err error) {
	r.lost = true
	r.cancel()
	if err != nil && r.live.Err() == nil {
		r.rt.log.Error("write event failed; cancelling the run", "session_id", r.id, "type", string(typ), "error", err)
	} else if err == nil {
		r.rt.log.Warn("session taken from this runtime; cancelling the run", "session_id", r.id)
	}
}

// finish writes the terminal event, marks the session done and acks its job.
func (r *run) finish(typ api.EventType, payload any) {
	r.mu.Lock()
	if r.lost {
		r.mu.Unlock()
		return
	}
	ev := api.NewEvent(r.id, r.seq+1, typ, payload)
	code := "success"
	if p, isErr := payload.(api.ErrorPayload); isErr {
		code = string(p.Code)
	}
	wake := "0"
	if r.tools.reading.Load() {
		wake = "1"
	}
	// Free the session's place before the client can read the terminal event:
	// a client that submits its next session on seeing it must find the place
	// free. (The open-sessions set lives in another hash slot, so it cannot be
	// part of the finishing script on Redis Cluster.)
	if err := r.rt.rdb.ZRem(r.live, openSessionsKey, r.id).Err(); err != nil && r.live.Err() == nil {
		r.rt.log.Warn("free session place", "session_id", r.id, "error", err)
	}
	ok, err := r.write(func(ctx context.Context) (int, error) {
		return finishScript.Run(ctx, r.rt.rdb, r.k.all(), r.rt.id, eventID(ev.Seq), encodeEvent(ev),
			code, nowMs(), maxEvents, wake).Int()
	})
	r.lost = true // nothing follows a terminal event
	r.mu.Unlock()
	if err != nil {
		if r.live.Err() == nil {
			r.rt.log.Error("write final event failed; the reaper will end the session", "session_id", r.id, "error", err)
		}
		return
	}
	if !ok {
		r.rt.log.Warn("session was ended by another runtime", "session_id", r.id)
	}
	r.rt.finishJob(r.live, r.stream, r.entry, r.id)
}

// write runs one scripted write, retrying while Redis is away for up to
// writeTimeout. A retry refused because the event id is taken means the first
// attempt landed and only its answer was lost.
func (r *run) write(do func(ctx context.Context) (int, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(r.live, writeTimeout)
	defer cancel()
	wait := newRetry()
	for attempt := 0; ; attempt++ {
		n, err := do(ctx)
		if err == nil {
			return n == 1, nil
		}
		if attempt > 0 && isIDTooSmall(err) {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("write event: %w", err)
		}
		wait.sleep(ctx)
	}
}

// finishJob acks and deletes a job, and frees the session's place among the
// open sessions (id is "" for a job with no session).
func (rt *Runtime) finishJob(ctx context.Context, stream, entry, id string) {
	_, err := rt.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, stream, groupName, entry)
		p.XDel(ctx, stream, entry)
		if id != "" {
			p.ZRem(ctx, openSessionsKey, id)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		rt.log.Warn("ack job", "stream", stream, "entry", entry, "error", err)
	}
}
