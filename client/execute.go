package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/enclave-go/enclave/api"
)

// ToolHandler answers a tool call of the script: args and the answer are JSON.
// An error is handed to the script as a failed call ({"error":{"message"}}).
// Calls may arrive concurrently (a script's Promise.all).
type ToolHandler func(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error)

// ExecuteOptions describe one run.
type ExecuteOptions struct {
	Request api.CreateRequest
	// Tools answers tool_call events; nil fails every client tool call.
	Tools ToolHandler
	// OnEvent sees every event except heartbeats exactly once, in seq order, on
	// the goroutine that reads the stream (keep it quick).
	OnEvent func(api.Event)
}

// Result is a finished run.
type Result struct {
	Value     json.RawMessage // the script's result as JSON
	Stats     api.Stats
	SessionID string
	Events    int // events delivered, heartbeats not counted
}

// cancelTimeout bounds the best-effort cancel of a session Execute gives up on.
const cancelTimeout = 5 * time.Second

// Execute creates a session, streams its events, answers its tool calls through
// opts.Tools and returns at the terminal event: final gives a Result, an error
// event an *api.Error with the event's code. A refused create (QUEUE_FULL,
// UNAUTHORIZED...) is an *api.Error too.
//
// The create itself is never re-sent (it would run the script twice). Once the
// session exists, a broken stream is resumed from the last seq seen, with
// backoff and jitter, so no event is lost or repeated and no tool call is
// answered twice.
func (c *Client) Execute(ctx context.Context, opts ExecuteOptions) (*Result, error) {
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	s, resp, err := c.openStream(ctx, func(ctx context.Context) (*http.Request, error) {
		return c.newRequest(ctx, http.MethodPost, "/v1/sessions", opts.Request)
	})
	if err != nil {
		return nil, err
	}
	toolCtx, stopTools := context.WithCancel(ctx)
	x := &execution{c: c, opts: opts, fail: fail, answered: map[string]bool{}}
	x.res.SessionID = resp.Header.Get(api.SessionIDHeader)
	f := &follower{c: c, id: x.res.SessionID}
	err = f.run(ctx, s, func(ev api.Event) error { return x.deliver(ctx, toolCtx, f, ev) })
	stopTools() // the session is over: a handler still running is not needed
	x.tools.Wait()
	return x.finish(ctx, err)
}

// execution is the state of one Execute call.
type execution struct {
	c     *Client
	opts  ExecuteOptions
	fail  context.CancelCauseFunc // ends the run with an error from a tool goroutine
	tools sync.WaitGroup

	res    Result
	outErr error // the error event's error, once seen

	mu       sync.Mutex
	answered map[string]bool // call ids handed to a tool goroutine
}

// deliver handles one new event. toolCtx ends with the session, ctx with Execute.
func (x *execution) deliver(ctx, toolCtx context.Context, f *follower, ev api.Event) error {
	if f.id == "" { // a server that sent no session id header
		f.id, x.res.SessionID = ev.SessionID, ev.SessionID
	}
	x.res.Events++
	if x.opts.OnEvent != nil {
		x.opts.OnEvent(ev)
	}
	switch ev.Type {
	case api.EventToolCall:
		return x.toolCall(ctx, toolCtx, ev)
	case api.EventFinal:
		return x.final(ev)
	case api.EventError:
		return x.errorEvent(ev)
	}
	return nil
}

func (x *execution) final(ev api.Event) error {
	var p api.FinalPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return fmt.Errorf("decode final event: %w", err)
	}
	x.res.Value, x.res.Stats = p.Result, p.Stats
	return nil
}

func (x *execution) errorEvent(ev api.Event) error {
	var p api.ErrorPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return fmt.Errorf("decode error event: %w", err)
	}
	x.outErr = &api.Error{Code: p.Code, Message: p.Message, Line: p.Line, Column: p.Column}
	return nil
}

// finish turns the follow's outcome into Execute's answer. A session left
// before its end because the caller's ctx ended, or because a tool result could
// not be delivered, is cancelled (best effort): nobody would answer its tool
// calls or read its result any more.
func (x *execution) finish(ctx context.Context, err error) (*Result, error) {
	if err != nil && context.Cause(ctx) != nil && x.res.SessionID != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		defer cancel()
		_ = x.c.Cancel(cctx, x.res.SessionID)
	}
	switch {
	case err != nil:
		return nil, err
	case x.outErr != nil:
		return nil, x.outErr
	}
	return &x.res, nil
}

// toolCall starts answering a tool call on its own goroutine, so several calls
// of one script run at once and the stream keeps being read meanwhile. The
// handler runs under toolCtx, which ends with the session; the post of its
// answer under ctx, so an answer already on the wire when the session ends is
// not cut off (cutting it would cost the connection), but it is not re-sent.
func (x *execution) toolCall(ctx, toolCtx context.Context, ev api.Event) error {
	var call api.ToolCallPayload
	if err := json.Unmarshal(ev.Payload, &call); err != nil {
		return fmt.Errorf("decode tool_call event %d: %w", ev.Seq, err)
	}
	x.mu.Lock()
	seen := x.answered[call.CallID]
	x.answered[call.CallID] = true
	x.mu.Unlock()
	if seen {
		return nil
	}
	x.tools.Add(1)
	go func() {
		defer x.tools.Done()
		res := x.invoke(toolCtx, call)
		if toolCtx.Err() != nil {
			return // the session is over: nobody waits for this answer
		}
		err := x.c.postToolResult(ctx, toolCtx, x.res.SessionID, res)
		if err != nil && toolCtx.Err() == nil {
			x.fail(fmt.Errorf("answer tool call %s: %w", call.CallID, err))
		}
	}()
	return nil
}

// invoke runs the handler and shapes its answer as a tool result.
func (x *execution) invoke(ctx context.Context, call api.ToolCallPayload) api.ToolResultRequest {
	answer := api.ToolResultRequest{CallID: call.CallID}
	if x.opts.Tools == nil {
		answer.Error = &api.ToolError{Message: "no tool handler for " + call.Name}
		return answer
	}
	out, err := x.opts.Tools(ctx, call.Name, call.Args)
	switch {
	case err != nil:
		answer.Error = &api.ToolError{Message: err.Error()}
	case len(out) == 0:
		answer.Result = json.RawMessage("null")
	case !json.Valid(out):
		answer.Error = &api.ToolError{Message: "tool " + call.Name + " answered with invalid JSON"}
	default:
		answer.Result = out
	}
	return answer
}

// postToolResult sends a tool result under ctx, again with backoff while the
// failure may pass and retry is not done. A re-sent answer the server already
// took is refused with TOOL_CALL_NOT_PENDING, which means the first one
// arrived: success.
func (c *Client) postToolResult(ctx, retry context.Context, id string, res api.ToolResultRequest) error {
	path := "/v1/sessions/" + url.PathEscape(id) + "/tool-result"
	for attempt := 0; ; attempt++ {
		err := c.doJSON(ctx, http.MethodPost, path, res, nil)
		if err == nil || api.CodeOf(err) == api.CodeToolCallNotExpected {
			return nil
		}
		if !retryable(err) || attempt+1 >= c.opts.MaxAttempts {
			return err
		}
		if err := sleep(retry, c.backoff.delay(attempt)); err != nil {
			return err
		}
	}
}
