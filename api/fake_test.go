package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// fakeBackend is an in-memory Backend. What a session does is chosen by its code:
// "quiet" logs session_init and then nothing; anything else logs session_init,
// one stdout line and a final with result 42.
type fakeBackend struct {
	createErr error
	readyErr  error

	mu          sync.Mutex
	n           int
	sessions    map[string]*fakeSession
	created     []CreateRequest
	owners      []string
	toolResults []ToolResultRequest
	cancelled   []string
	subscribers int
}

type fakeSession struct {
	owner  string
	events []Event
	open   bool // more events may come: Subscribe does not close after the log
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{sessions: map[string]*fakeSession{}}
}

func (f *fakeBackend) Create(_ context.Context, owner string, req CreateRequest) (string, error) {
	if f.createErr != nil {
		return "", f.createErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("s%d", f.n)
	s := &fakeSession{owner: owner}
	s.events = append(s.events, NewEvent(id, 1, EventSessionInit, SessionInitPayload{SecurityLevel: "STANDARD"}))
	if req.Code == "quiet" {
		s.open = true
	} else {
		s.events = append(s.events,
			NewEvent(id, 2, EventStdout, ConsolePayload{Level: "log", Text: "hi\n\"there\""}),
			NewEvent(id, 3, EventFinal, FinalPayload{Result: json.RawMessage(`42`)}))
	}
	f.sessions[id] = s
	f.created = append(f.created, req)
	f.owners = append(f.owners, owner)
	return id, nil
}

// session returns the session id if owner may see it.
func (f *fakeBackend) session(owner, id string) (*fakeSession, error) {
	s, ok := f.sessions[id]
	if !ok {
		return nil, Errorf(CodeNotFound, "no session %s", id)
	}
	if s.owner != owner {
		return nil, Errorf(CodeUnauthorized, "session %s belongs to someone else", id)
	}
	return s, nil
}

func (f *fakeBackend) Subscribe(ctx context.Context, owner, id string, from int64) (<-chan Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.session(owner, id)
	if err != nil {
		return nil, err
	}
	var evs []Event
	for _, ev := range s.events {
		if ev.Seq >= from {
			evs = append(evs, ev)
		}
	}
	f.subscribers++
	ch := make(chan Event)
	go f.feed(ctx, ch, evs, s.open)
	return ch, nil
}

func (f *fakeBackend) feed(ctx context.Context, ch chan<- Event, evs []Event, open bool) {
	defer func() {
		f.mu.Lock()
		f.subscribers--
		f.mu.Unlock()
		close(ch)
	}()
	for _, ev := range evs {
		select {
		case ch <- ev:
		case <-ctx.Done():
			return
		}
	}
	if open {
		<-ctx.Done()
	}
}

func (f *fakeBackend) ToolResult(_ context.Context, owner, id string, res ToolResultRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.session(owner, id); err != nil {
		return err
	}
	if res.CallID == "answered" {
		return Errorf(CodeToolCallNotExpected, "call %s is not pending", res.CallID)
	}
	f.toolResults = append(f.toolResults, res)
	return nil
}

func (f *fakeBackend) Cancel(_ context.Context, owner, id string) error {
	if id == "boom" {
		panic("cancel exploded")
	}
	if id == "plain" {
		return errors.New("redis at 10.0.0.7 unreachable")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.session(owner, id); err != nil {
		return err
	}
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeBackend) Ready(context.Context) error { return f.readyErr }

func (f *fakeBackend) subscriberCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subscribers
}
