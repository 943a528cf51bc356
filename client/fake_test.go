package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/enclave-go/enclave/api"
)

// fakeBackend is an in-memory api.Backend whose sessions follow a tiny script
// language in the request's code:
//
//	"return 42"  session_init, stdout, final 42
//	"tools N"    N client tool calls "add" {"i":i} one after another, a stdout
//	             line after each; final is the sum of the answers (numbers);
//	             a failed call ends the session with TOOL_ERROR
//	"fail"       SCRIPT_ERROR at line 3
//	"wait"       session_init, then nothing until cancelled
type fakeBackend struct {
	createErr     error
	readyErr      error
	ignoreFromSeq bool // replay from seq 1 whatever is asked: a sloppy server

	ctx  context.Context // ends every session when the test is over
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	n        int
	creates  int
	sessions map[string]*fakeSession
}

type fakeSession struct {
	id      string
	owner   string
	events  []api.Event
	wake    chan struct{} // closed and replaced when an event is logged
	pending map[string]chan api.ToolResultRequest
	cancel  context.CancelFunc
	answers []api.ToolResultRequest // accepted tool results
}

func newFakeBackend() *fakeBackend {
	ctx, stop := context.WithCancel(context.Background())
	return &fakeBackend{ctx: ctx, stop: stop, sessions: map[string]*fakeSession{}}
}

// close ends every session and waits for their goroutines.
func (f *fakeBackend) close() {
	f.stop()
	f.wg.Wait()
}

func (f *fakeBackend) Create(_ context.Context, owner string, req api.CreateRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	if f.createErr != nil {
		return "", f.createErr
	}
	f.n++
	ctx, cancel := context.WithCancel(f.ctx)
	s := &fakeSession{id: fmt.Sprintf("sess-%d", f.n), owner: owner, wake: make(chan struct{}),
		pending: map[string]chan api.ToolResultRequest{}, cancel: cancel}
	f.sessions[s.id] = s
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer cancel()
		f.run(ctx, s, req.Code)
	}()
	return s.id, nil
}

// emit logs an event with the next seq and wakes subscribers.
func (f *fakeBackend) emit(s *fakeSession, typ api.EventType, payload any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.events = append(s.events, api.NewEvent(s.id, int64(len(s.events)+1), typ, payload))
	close(s.wake)
	s.wake = make(chan struct{})
}

func (f *fakeBackend) run(ctx context.Context, s *fakeSession, code string) {
	f.emit(s, api.EventSessionInit, api.SessionInitPayload{SecurityLevel: "STANDARD"})
	switch {
	case code == "return 42":
		f.emit(s, api.EventStdout, api.ConsolePayload{Level: "log", Text: "hello"})
		f.emit(s, api.EventFinal, api.FinalPayload{Result: json.RawMessage(`42`)})
	case code == "fail":
		f.emit(s, api.EventError, api.ErrorPayload{Code: api.CodeScript, Message: "x is not defined", Line: 3, Column: 7})
	case code == "wait":
		<-ctx.Done()
		f.emit(s, api.EventError, api.ErrorPayload{Code: api.CodeCancelled, Message: "cancelled"})
	case strings.HasPrefix(code, "tools "):
		n, _ := strconv.Atoi(strings.TrimPrefix(code, "tools "))
		f.runTools(ctx, s, n)
	}
}

func (f *fakeBackend) runTools(ctx context.Context, s *fakeSession, n int) {
	var sum float64
	for i := 1; i <= n; i++ {
		res, err := f.callTool(ctx, s, i)
		if err != nil {
			f.emit(s, api.EventError, api.ErrorPayload{Code: api.CodeOf(err), Message: err.Error()})
			return
		}
		sum += res
		f.emit(s, api.EventStdout, api.ConsolePayload{Level: "log", Text: fmt.Sprintf("got %v", res)})
	}
	f.emit(s, api.EventFinal, api.FinalPayload{
		Result: json.RawMessage(strconv.FormatFloat(sum, 'f', -1, 64)),
		Stats:  api.Stats{ToolCallCount: int64(n)},
	})
}

// callTool logs a tool_call and waits for its answer.
func (f *fakeBackend) callTool(ctx context.Context, s *fakeSession, i int) (float64, error) {
	id := fmt.Sprintf("call-%d", i)
	ch := make(chan api.ToolResultRequest, 1)
	f.mu.Lock()
	s.pending[id] = ch
	f.mu.Unlock()
	f.emit(s, api.EventToolCall, api.ToolCallPayload{CallID: id, Name: "add",
		Args: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	var res api.ToolResultRequest
	select {
	case res = <-ch:
	case <-ctx.Done():
		return 0, api.Errorf(api.CodeCancelled, "cancelled")
	}
	f.emit(s, api.EventToolResultApplied, api.ToolResultAppliedPayload{CallID: id, OK: res.Error == nil})
	if res.Error != nil {
		return 0, api.Errorf(api.CodeToolError, "add: %s", res.Error.Message)
	}
	var v float64
	if err := json.Unmarshal(res.Result, &v); err != nil {
		return 0, api.Errorf(api.CodeToolError, "add: answer %s is not a number", res.Result)
	}
	return v, nil
}

// session returns the session id if owner may touch it; f.mu is held.
func (f *fakeBackend) session(owner, id string) (*fakeSession, error) {
	s, ok := f.sessions[id]
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "no session %s", id)
	}
	if s.owner != owner {
		return nil, api.Errorf(api.CodeUnauthorized, "not your session")
	}
	return s, nil
}

func (f *fakeBackend) Subscribe(ctx context.Context, owner, id string, from int64) (<-chan api.Event, error) {
	f.mu.Lock()
	s, err := f.session(owner, id)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if f.ignoreFromSeq {
		from = 1
	}
	ch := make(chan api.Event)
	go f.feed(ctx, s, from, ch)
	return ch, nil
}

// feed sends s's events from seq from on, following new ones, until the
// terminal event or ctx ends.
func (f *fakeBackend) feed(ctx context.Context, s *fakeSession, from int64, ch chan<- api.Event) {
	defer close(ch)
	next := max(from, 1)
	for {
		f.mu.Lock()
		evs, wake := s.events[min(next-1, int64(len(s.events))):], s.wake
		f.mu.Unlock()
		for _, ev := range evs {
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type.Terminal() {
				return
			}
			next++
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}

func (f *fakeBackend) ToolResult(_ context.Context, owner, id string, res api.ToolResultRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(owner, id)
	if err != nil {
		return err
	}
	ch, ok := s.pending[res.CallID]
	if !ok {
		return api.Errorf(api.CodeToolCallNotExpected, "call %s is not pending", res.CallID)
	}
	delete(s.pending, res.CallID)
	s.answers = append(s.answers, res)
	ch <- res
	return nil
}

func (f *fakeBackend) Cancel(_ context.Context, owner, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(owner, id)
	if err != nil {
		return err
	}
	s.cancel()
	return nil
}

func (f *fakeBackend) Ready(context.Context) error { return f.readyErr }

// answers returns the tool results session id accepted.
func (f *fakeBackend) answers(id string) []api.ToolResultRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.ToolResultRequest(nil), f.sessions[id].answers...)
}
