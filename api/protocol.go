// Package api is Enclave's wire protocol: the event envelope, the requests, the error
// codes, the NDJSON codec and the HTTP handlers that serve them over a Backend.
//
// The handlers never see the supervisor or the broker; cmd wires a Backend in.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ProtocolVersion is written into every event envelope.
const ProtocolVersion = "1"

// EventType names what an event carries.
type EventType string

// Event types. A session's log starts with session_init and ends with exactly one
// final or error event.
const (
	EventSessionInit       EventType = "session_init"
	EventStdout            EventType = "stdout"
	EventLog               EventType = "log"
	EventToolCall          EventType = "tool_call"
	EventToolResultApplied EventType = "tool_result_applied"
	EventHeartbeat         EventType = "heartbeat"
	EventFinal             EventType = "final"
	EventError             EventType = "error"
)

// Terminal reports whether an event of this type ends a session.
func (t EventType) Terminal() bool { return t == EventFinal || t == EventError }

// Event is the envelope of one line of a session's NDJSON stream.
//
// Seq numbers start at 1 and grow by one per logged event. Heartbeats are not
// logged: a heartbeat repeats the seq of the last logged event and is never replayed.
type Event struct {
	ProtocolVersion string          `json:"protocolVersion"`
	SessionID       string          `json:"sessionId"`
	Seq             int64           `json:"seq"`
	Type            EventType       `json:"type"`
	Timestamp       time.Time       `json:"timestamp"`
	Payload         json.RawMessage `json:"payload"`
}

// NewEvent builds an envelope with payload marshalled as JSON.
func NewEvent(sessionID string, seq int64, typ EventType, payload any) Event {
	raw, err := json.Marshal(payload)
	if err != nil {
		// Payloads are this package's own structs; failing here is a programming error.
		raw, _ = json.Marshal(ErrorPayload{Code: CodeInternal, Message: "encode event: " + err.Error()})
		typ = EventError
	}
	return Event{
		ProtocolVersion: ProtocolVersion,
		SessionID:       sessionID,
		Seq:             seq,
		Type:            typ,
		Timestamp:       time.Now().UTC(),
		Payload:         raw,
	}
}

// SessionInitPayload is the payload of session_init.
type SessionInitPayload struct {
	SecurityLevel string       `json:"securityLevel"`
	Limits        LimitsReport `json:"limits"`
}

// LimitsReport is the set of limits a session runs under, as reported to the client.
type LimitsReport struct {
	TimeoutMs             int64 `json:"timeoutMs"`
	MaxIterations         int64 `json:"maxIterations"`
	MaxToolCalls          int64 `json:"maxToolCalls"`
	MaxConsoleCalls       int64 `json:"maxConsoleCalls"`
	MaxConsoleOutputBytes int64 `json:"maxConsoleOutputBytes"`
	MaxValueDepth         int64 `json:"maxValueDepth"`
	MaxValueBytes         int64 `json:"maxValueBytes"`
}

// ConsolePayload is the payload of stdout (console.log) and log (console.warn and
// console.error) events.
type ConsolePayload struct {
	Level string `json:"level"` // "log", "warn" or "error"
	Text  string `json:"text"`
}

// ToolCallPayload is the payload of tool_call: a call the client must answer with
// POST /v1/sessions/{id}/tool-result.
type ToolCallPayload struct {
	CallID string          `json:"callId"`
	Name   string          `json:"name"`
	Args   json.RawMessage `json:"args"`
}

// ToolResultAppliedPayload is the payload of tool_result_applied.
type ToolResultAppliedPayload struct {
	CallID string `json:"callId"`
	OK     bool   `json:"ok"`
}

// Stats describes a finished run.
type Stats struct {
	DurationMs     int64 `json:"durationMs"`
	ToolCallCount  int64 `json:"toolCallCount"`
	IterationCount int64 `json:"iterationCount"`
}

// FinalPayload is the payload of final.
type FinalPayload struct {
	Result json.RawMessage `json:"result"`
	Stats  Stats           `json:"stats"`
}

// ErrorPayload is the payload of error, and the body of every HTTP error answer.
type ErrorPayload struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Stats   *Stats `json:"stats,omitempty"`
}

// CreateRequest is the body of POST /v1/sessions.
type CreateRequest struct {
	Code          string                     `json:"code"`
	SecurityLevel string                     `json:"securityLevel,omitempty"`
	Limits        *LimitOverrides            `json:"limits,omitempty"`
	Globals       map[string]json.RawMessage `json:"globals,omitempty"`
	// ClientTools are name patterns ("users:*") of tools the client answers itself.
	ClientTools []string `json:"clientTools,omitempty"`
	// Metadata is matched by a broker's routing rules ("priority": "high").
	Metadata map[string]string `json:"metadata,omitempty"`
}

// LimitOverrides tighten a session's limits below the daemon's. A value above the
// daemon's is refused, never applied.
type LimitOverrides struct {
	Timeout               *Duration `json:"timeout,omitempty"`
	MaxIterations         *int64    `json:"maxIterations,omitempty"`
	MaxToolCalls          *int64    `json:"maxToolCalls,omitempty"`
	MaxConsoleCalls       *int64    `json:"maxConsoleCalls,omitempty"`
	MaxConsoleOutputBytes *int64    `json:"maxConsoleOutputBytes,omitempty"`
}

// ToolResultRequest is the body of POST /v1/sessions/{id}/tool-result: exactly one of
// Result and Error is set.
type ToolResultRequest struct {
	CallID string          `json:"callId"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *ToolError      `json:"error,omitempty"`
}

// ToolError is a failed tool call as the client reports it.
type ToolError struct {
	Message string `json:"message"`
}

// Duration is a time.Duration that reads from JSON as "1.5s" or as milliseconds.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err == nil {
		*d = Duration(time.Duration(ms * float64(time.Millisecond)))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want \"30s\" or milliseconds, got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Backend runs sessions: the local supervisor's sessions, or the broker's over Redis.
//
// owner is who asks (an API key's identity on the broker, "" on the local socket); a
// backend refuses with CodeUnauthorized a session that belongs to someone else.
type Backend interface {
	// Create validates and starts a session and returns its id. Validation failures
	// are not errors here: they end the session with an error event, so the client
	// reads them from the stream like any other outcome.
	Create(ctx context.Context, owner string, req CreateRequest) (string, error)
	// Subscribe replays the session's events with seq >= fromSeq and then follows
	// new ones. The channel is closed after the terminal event, or when ctx ends.
	Subscribe(ctx context.Context, owner, sessionID string, fromSeq int64) (<-chan Event, error)
	// ToolResult answers a pending client tool call.
	ToolResult(ctx context.Context, owner, sessionID string, res ToolResultRequest) error
	// Cancel ends a running session with CANCELLED.
	Cancel(ctx context.Context, owner, sessionID string) error
	// Ready returns nil when the backend can take work, else the reason it cannot.
	Ready(ctx context.Context) error
}

// Code is an error code on the wire: one per cause.
type Code string

// Error codes. The list is a contract: extend it, never rename.
const (
	CodeValidation          Code = "VALIDATION_ERROR"
	CodeScript              Code = "SCRIPT_ERROR"
	CodeTimeout             Code = "TIMEOUT"
	CodeMaxIterations       Code = "MAX_ITERATIONS"
	CodeMaxToolCalls        Code = "MAX_TOOL_CALLS"
	CodeMemoryLimit         Code = "MEMORY_LIMIT_EXCEEDED"
	CodeConsoleLimit        Code = "CONSOLE_LIMIT"
	CodeSerializationLimit  Code = "SERIALIZATION_LIMIT_EXCEEDED"
	CodeToolNotAllowed      Code = "TOOL_NOT_ALLOWED"
	CodeToolError           Code = "TOOL_ERROR"
	CodeToolTimeout         Code = "TOOL_TIMEOUT"
	CodeWorkerCrashed       Code = "WORKER_CRASHED"
	CodeQueueFull           Code = "QUEUE_FULL"
	CodeQueueTimeout        Code = "QUEUE_TIMEOUT"
	CodeCancelled           Code = "CANCELLED"
	CodeSessionLimit        Code = "SESSION_LIMIT"
	CodeRuntimeLost         Code = "RUNTIME_LOST"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeInternal            Code = "INTERNAL"
	CodeInvalidRequest      Code = "INVALID_REQUEST" // malformed HTTP request body or parameters
	CodeNotFound            Code = "NOT_FOUND"       // no such session
	CodeToolCallNotExpected Code = "TOOL_CALL_NOT_PENDING"
	CodeUnavailable         Code = "UNAVAILABLE" // the server is stopping or its store is unreachable
)

// Error is an error with a wire code. Every layer below the API returns these (or
// wraps one) for failures a client must be able to tell apart.
type Error struct {
	Code    Code
	Message string
	Line    int // 1-based script position, 0 when unknown
	Column  int
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
