package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/enclave-go/enclave/api"
)

// Sessions serves the HTTP API's Backend from a local Supervisor: each session is one
// run whose events are kept in memory for replay until retain after it ends.
type Sessions struct {
	sup    *Supervisor
	retain time.Duration
	max    int

	mu       sync.Mutex
	sessions map[string]*session
	open     int     // sessions not yet ended
	finished []ended // ended sessions kept for replay, oldest first
	kept     int64   // payload bytes of the ended sessions kept
}

type ended struct {
	id    string
	at    time.Time
	bytes int64
}

// maxRetained and maxRetainedBytes bound the ended sessions kept for replay: each
// holds its whole event log, up to the console and result limits, so retention by
// time alone would let a busy daemon's memory grow with its throughput, and by count
// alone with the size of results.
const (
	maxRetained      = 256
	maxRetainedBytes = 64 << 20
)

// NewSessions returns a Backend over sup. Finished sessions stay replayable for
// retain; at most max sessions may be open at once (SESSION_LIMIT beyond).
func NewSessions(sup *Supervisor, retain time.Duration, max int) *Sessions {
	return &Sessions{sup: sup, retain: retain, max: max, sessions: map[string]*session{}}
}

type session struct {
	id     string
	owner  string
	cancel context.CancelFunc

	mu      sync.Mutex // guards the fields below
	events  []api.Event
	bytes   int64         // payload bytes of events
	changed chan struct{} // closed and replaced when an event is added
	done    bool
	pending map[string]chan api.ToolResultRequest
}

func (s *session) emit(typ api.EventType, payload any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	e := api.NewEvent(s.id, int64(len(s.events))+1, typ, payload)
	s.events = append(s.events, e)
	s.bytes += int64(len(e.Payload))
	s.done = typ.Terminal()
	close(s.changed)
	s.changed = make(chan struct{})
}

// Create starts a session; see api.Backend.
func (m *Sessions) Create(ctx context.Context, owner string, req api.CreateRequest) (string, error) {
	ex, err := m.sup.Start(context.Background(), RequestFrom(req))
	if err != nil {
		return "", err
	}
	sess, err := m.add(owner)
	if err != nil {
		ex.Abandon()
		return "", err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	sess.cancel = cancel
	ex.req.ClientTool = sess.clientTool
	ex.req.SessionID = sess.id
	ex.req.OnEvent = func(e Event) { sess.emit(e.Type, e.Payload) }
	sess.emit(api.EventSessionInit, api.SessionInitPayload{SecurityLevel: ex.Level(), Limits: ex.Limits()})
	go m.run(runCtx, sess, ex)
	return sess.id, nil
}

// RequestFrom turns an API create request into a supervisor request; the caller
// adds ClientTool and OnEvent.
func RequestFrom(req api.CreateRequest) Request {
	r := Request{Code: req.Code, Level: req.SecurityLevel, Globals: req.Globals, ClientTools: req.ClientTools}
	if o := req.Limits; o != nil {
		r.Limits = overridesFrom(o)
	}
	return r
}

func (m *Sessions) add(owner string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.max > 0 && m.open >= m.max {
		return nil, api.Errorf(api.CodeSessionLimit, "%d sessions are open, the most this daemon allows", m.max)
	}
	s := &session{id: newID(), owner: owner, changed: make(chan struct{}), pending: map[string]chan api.ToolResultRequest{}}
	m.sessions[s.id] = s
	m.open++
	return s, nil
}

func (m *Sessions) run(ctx context.Context, sess *session, ex *Execution) {
	defer sess.cancel()
	res, err := ex.Wait(ctx)
	if err != nil {
		sess.emit(api.EventError, errorPayload(err, res))
	} else {
		sess.emit(api.EventFinal, api.FinalPayload{Result: res.Value, Stats: res.Stats})
	}
	sess.mu.Lock()
	size := sess.bytes
	sess.mu.Unlock()
	m.retire(sess.id, size)
}

// retire keeps an ended session replayable for the retention time, until maxRetained
// newer ones have ended, or until newer ones fill maxRetainedBytes, whichever comes
// first (the newest is always kept, whatever its size). Expired sessions are
// dropped as later ones end, so no timer is kept per session.
func (m *Sessions) retire(id string, size int64) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.open--
	m.finished = append(m.finished, ended{id: id, at: now, bytes: size})
	m.kept += size
	for len(m.finished) > 1 && (len(m.finished) > maxRetained || m.kept > maxRetainedBytes ||
		now.Sub(m.finished[0].at) > m.retain) {
		delete(m.sessions, m.finished[0].id)
		m.kept -= m.finished[0].bytes
		m.finished = m.finished[1:]
	}
}

func errorPayload(err error, _ *Result) api.ErrorPayload {
	var e *api.Error
	if errors.As(err, &e) {
		return api.ErrorPayload{Code: e.Code, Message: e.Message, Line: e.Line, Column: e.Column}
	}
	return api.ErrorPayload{Code: api.CodeInternal, Message: err.Error()}
}

// clientTool sends a tool_call event and waits for the client's answer.
func (s *session) clientTool(ctx context.Context, call ToolCall) (json.RawMessage, error) {
	ch := make(chan api.ToolResultRequest, 1)
	s.mu.Lock()
	s.pending[call.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, call.ID)
		s.mu.Unlock()
	}()
	s.emit(api.EventToolCall, api.ToolCallPayload{CallID: call.ID, Name: call.Name, Args: call.Args})
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, errors.New(r.Error.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		return nil, api.Errorf(api.CodeToolTimeout, "the client did not answer tool %q before the run ended", call.Name)
	}
}

func (m *Sessions) get(owner, id string) (*session, error) {
	m.mu.Lock()
	s, ok := m.sessions[id]
	m.mu.Unlock()
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "no session %q", id)
	}
	if s.owner != owner {
		return nil, api.Errorf(api.CodeUnauthorized, "session %q belongs to another client", id)
	}
	return s, nil
}

// Subscribe replays and follows a session's events; see api.Backend.
func (m *Sessions) Subscribe(ctx context.Context, owner, id string, fromSeq int64) (<-chan api.Event, error) {
	s, err := m.get(owner, id)
	if err != nil {
		return nil, err
	}
	out := make(chan api.Event, 16)
	go s.follow(ctx, max(fromSeq, 1), out)
	return out, nil
}

func (s *session) follow(ctx context.Context, next int64, out chan<- api.Event) {
	defer close(out)
	for {
		s.mu.Lock()
		batch := s.events[min(int(next-1), len(s.events)):]
		done, changed := s.done, s.changed
		s.mu.Unlock()
		for _, e := range batch {
			select {
			case out <- e:
				next = e.Seq + 1
			case <-ctx.Done():
				return
			}
		}
		if done {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// ToolResult answers a pending client tool call; see api.Backend.
func (m *Sessions) ToolResult(ctx context.Context, owner, id string, res api.ToolResultRequest) error {
	s, err := m.get(owner, id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	ch, ok := s.pending[res.CallID]
	delete(s.pending, res.CallID)
	s.mu.Unlock()
	if !ok {
		return api.Errorf(api.CodeToolCallNotExpected, "no tool call %q is waiting for an answer", res.CallID)
	}
	ch <- res
	return nil
}

// Cancel ends a running session with CANCELLED; see api.Backend.
func (m *Sessions) Cancel(ctx context.Context, owner, id string) error {
	s, err := m.get(owner, id)
	if err != nil {
		return err
	}
	s.cancel()
	return nil
}

// Ready reports whether the pool can take work; see api.Backend.
func (m *Sessions) Ready(context.Context) error { return m.sup.Ready() }

// Close cancels every running session.
func (m *Sessions) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sessions {
		if s.cancel != nil {
			s.cancel()
		}
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
