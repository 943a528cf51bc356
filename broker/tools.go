package broker

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/supervisor"
)

// toolsBlock is how long one wait for a tool answer blocks (BLPOP counts whole
// seconds); between waits the runtime looks at the session's cancel flag, in
// case the cancel message was published while it was disconnected.
const toolsBlock = time.Second

// toolWaiters are the client tool calls of one run waiting for their answers,
// and the one reader that hands the answers out.
type toolWaiters struct {
	once    sync.Once
	reading atomic.Bool // the reader was started: the run's end must wake it
	mu      sync.Mutex  // guards wait
	wait    map[string]chan api.ToolResultRequest
}

// clientTool is the run's supervisor.ToolFunc: it records the call as pending,
// tells the client with a tool_call event and waits for the answer that any
// broker pushes to session:{id}:tools.
func (r *run) clientTool(ctx context.Context, call supervisor.ToolCall) (json.RawMessage, error) {
	ch := r.tools.add(call.ID)
	defer r.tools.remove(call.ID)
	r.tools.once.Do(func() {
		r.tools.reading.Store(true)
		r.rt.runWG.Add(1)
		go func() { defer r.rt.runWG.Done(); r.readAnswers(ctx) }()
	})
	// The call id is recorded as pending with the event, before the client can
	// learn of the call, so an answer to it is accepted and any other refused.
	if !r.emit(api.EventToolCall, api.ToolCallPayload{CallID: call.ID, Name: call.Name, Args: call.Args}, call.ID, call.Name) {
		return nil, api.Errorf(api.CodeCancelled, "the session can no longer report events")
	}
	select {
	case res := <-ch:
		if res.Error != nil {
			return nil, errors.New(res.Error.Message)
		}
		return res.Result, nil
	case <-ctx.Done():
		r.unmarkPending(call.ID)
		return nil, api.Errorf(api.CodeToolTimeout, "the client did not answer tool %q before the run ended", call.Name)
	}
}

// unmarkPending withdraws an unanswered call, so a late answer is refused with
// TOOL_CALL_NOT_PENDING instead of being taken for nobody.
func (r *run) unmarkPending(callID string) {
	ctx, cancel := context.WithTimeout(r.live, time.Second)
	defer cancel()
	_ = r.rt.rdb.HDel(ctx, r.k.pending, callID).Err()
}

// readAnswers pops answers off session:{id}:tools until the run ends and hands
// each to its waiting call.
func (r *run) readAnswers(ctx context.Context) {
	wait := newRetry()
	for ctx.Err() == nil {
		vals, err := r.rt.rdb.BLPop(ctx, toolsBlock, r.k.tools).Result()
		switch {
		case errors.Is(err, redis.Nil):
			r.checkCancelFlag(ctx)
		case err != nil:
			wait.sleep(ctx)
		default:
			wait.reset()
			r.deliver(vals[1])
		}
	}
}

func (r *run) deliver(raw string) {
	if raw == "" {
		return // the wake-up pushed at the run's end
	}
	var res api.ToolResultRequest
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		r.rt.log.Warn("unreadable tool answer", "session_id", r.id, "error", err)
		return
	}
	r.tools.mu.Lock()
	ch := r.tools.wait[res.CallID]
	r.tools.mu.Unlock()
	if ch != nil {
		ch <- res // buffered, and only one answer per call id gets past the broker
	}
}

func (r *run) checkCancelFlag(ctx context.Context) {
	if v, err := r.rt.rdb.HGet(ctx, r.k.hash, "cancel").Result(); err == nil && v == "1" {
		r.cancelByClient()
	}
}

func (w *toolWaiters) add(id string) chan api.ToolResultRequest {
	ch := make(chan api.ToolResultRequest, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wait == nil {
		w.wait = map[string]chan api.ToolResultRequest{}
	}
	w.wait[id] = ch
	return ch
}

func (w *toolWaiters) remove(id string) {
	w.mu.Lock()
	delete(w.wait, id)
	w.mu.Unlock()
}
