package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
)

// BackendOptions configure a Backend.
type BackendOptions struct {
	// Redis is the shared store. Required; the caller closes it.
	Redis redis.UniversalClient
	// MaxConcurrentSessions caps the sessions open at once across every broker
	// sharing Redis; more get SESSION_LIMIT. Default 1000.
	MaxConcurrentSessions int64
	// SessionTimeout bounds a session's life and keeps its keys (and so its
	// replay) this long after it ends. Default 5m.
	SessionTimeout time.Duration
	// RoutingRules send a request to the runtimes whose labels match; the first
	// rule that matches the request's metadata wins. Default: none, every
	// request goes to the default work stream.
	RoutingRules []limits.RoutingRule
	// Logger receives the backend's warnings. Default: discard.
	Logger *slog.Logger
}

// Backend is the api.Backend of a broker: every call reads and writes Redis and
// nothing else, so any broker can serve any request of any session.
type Backend struct {
	rdb   redis.UniversalClient
	opts  BackendOptions
	log   *slog.Logger
	ttlMs int64
}

// NewBackend returns a broker Backend over opts.Redis.
func NewBackend(opts BackendOptions) *Backend {
	if opts.MaxConcurrentSessions <= 0 {
		opts.MaxConcurrentSessions = limits.DefaultMaxConcurrentSessions
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = limits.DefaultSessionTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Backend{rdb: opts.Redis, opts: opts, log: opts.Logger, ttlMs: opts.SessionTimeout.Milliseconds()}
}

var _ api.Backend = (*Backend)(nil)

// Create admits a session, records it and queues it on its target's work
// stream; see api.Backend. The script is checked by the runtime that runs it.
func (b *Backend) Create(ctx context.Context, owner string, req api.CreateRequest) (string, error) {
	if req.SecurityLevel != "" {
		// Checked here too so a typo is a 400 at once, as on the local socket,
		// rather than an error event after a trip through Redis.
		if _, err := limits.ParseLevel(req.SecurityLevel); err != nil {
			return "", api.Errorf(api.CodeInvalidRequest, "securityLevel: %v", err)
		}
	}
	id := newID()
	if err := b.admit(ctx, id); err != nil {
		return "", err
	}
	target := route(b.opts.RoutingRules, req.Metadata)
	if err := b.record(ctx, id, owner, target, req); err != nil {
		b.release(id)
		return "", err
	}
	if err := b.enqueue(ctx, id, target); err != nil {
		b.rdb.Del(context.WithoutCancel(ctx), keysOf(id).hash)
		b.release(id)
		return "", err
	}
	return id, nil
}

// admit takes one of the maxConcurrentSessions places, atomically across brokers.
func (b *Backend) admit(ctx context.Context, id string) error {
	ok, err := admitScript.Run(ctx, b.rdb, []string{openSessionsKey},
		b.opts.MaxConcurrentSessions, id, b.ttlMs).Int()
	if err != nil {
		return storeError("admit session", err)
	}
	if ok == 0 {
		return api.Errorf(api.CodeSessionLimit, "%d sessions are open, the most this service allows",
			b.opts.MaxConcurrentSessions)
	}
	return nil
}

// release gives a session's place back. It runs even when the request that
// asked is gone: a leaked place would otherwise count until it times out.
func (b *Backend) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.rdb.ZRem(ctx, openSessionsKey, id).Err(); err != nil {
		b.log.Warn("release session place", "session_id", id, "error", err)
	}
}

// record writes the session hash, expiring after the session timeout.
func (b *Backend) record(ctx context.Context, id, owner, target string, req api.CreateRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return api.Errorf(api.CodeInvalidRequest, "encode request: %v", err)
	}
	lim, _ := json.Marshal(req.Limits)
	k := keysOf(id)
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k.hash, map[string]any{
			"status": "queued", "owner": owner, "level": req.SecurityLevel, "limits": string(lim),
			"request": string(body), "target": target, "ttl": strconv.FormatInt(b.ttlMs, 10),
			"createdAt": strconv.FormatInt(nowMs(), 10),
		})
		p.PExpire(ctx, k.hash, b.opts.SessionTimeout)
		return nil
	})
	return storeError("record session", err)
}

// enqueue adds the job to the target's work stream and names the target in the
// set runtimes read, so a runtime learns of a stream the moment work is on it.
func (b *Backend) enqueue(ctx context.Context, id, target string) error {
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: streamKey(target), Values: []string{"session", id}})
		p.SAdd(ctx, targetsKey, target)
		return nil
	})
	return storeError("queue session", err)
}

// storeError wraps a Redis failure as UNAVAILABLE (503, retry later); nil stays nil.
func storeError(what string, err error) error {
	if err == nil {
		return nil
	}
	return &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("%s: store unavailable: %v", what, err)}
}

// checkOwner returns NOT_FOUND for an unknown (or expired) session and
// UNAUTHORIZED for someone else's.
func (b *Backend) checkOwner(ctx context.Context, owner, id string) error {
	got, err := b.rdb.HGet(ctx, keysOf(id).hash, "owner").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return api.Errorf(api.CodeNotFound, "no session %q", id)
	case err != nil:
		return storeError("read session", err)
	case got != owner:
		return api.Errorf(api.CodeUnauthorized, "session %q belongs to another client", id)
	}
	return nil
}

// ToolResult hands a client's answer to the runtime running the session; see
// api.Backend. Only the first answer to a pending call is taken.
func (b *Backend) ToolResult(ctx context.Context, owner, id string, res api.ToolResultRequest) error {
	body, err := json.Marshal(res)
	if err != nil {
		return api.Errorf(api.CodeInvalidRequest, "encode tool result: %v", err)
	}
	k := keysOf(id)
	got, err := toolResultScript.Run(ctx, b.rdb, []string{k.hash, k.pending, k.tools},
		owner, res.CallID, string(body)).Text()
	if err != nil {
		return storeError("tool result", err)
	}
	return scriptAnswer(got, id, res.CallID)
}

func scriptAnswer(got, id, callID string) error {
	switch got {
	case "ok", "ended", "started", "done":
		return nil
	case "nf":
		return api.Errorf(api.CodeNotFound, "no session %q", id)
	case "unauth":
		return api.Errorf(api.CodeUnauthorized, "session %q belongs to another client", id)
	case "np":
		return api.Errorf(api.CodeToolCallNotExpected, "no tool call %q is waiting for an answer", callID)
	}
	return api.Errorf(api.CodeInternal, "unexpected store answer %q", got)
}

// Cancel ends a session with CANCELLED; see api.Backend. A queued session ends
// here; a started one is flagged and its runtime told, and the runtime writes
// the error event when the run stops. Cancelling an ended session does nothing.
func (b *Backend) Cancel(ctx context.Context, owner, id string) error {
	k := keysOf(id)
	ev := api.NewEvent(id, 1, api.EventError, api.ErrorPayload{
		Code: api.CodeCancelled, Message: "the session was cancelled before it started"})
	got, err := cancelScript.Run(ctx, b.rdb, k.all(), owner, encodeEvent(ev), nowMs(), maxEvents).StringSlice()
	if err != nil {
		return storeError("cancel session", err)
	}
	switch got[0] {
	case "ended":
		b.release(id)
	case "started":
		if err := b.rdb.Publish(ctx, cancelChannel(got[1]), id).Err(); err != nil {
			// The runtime also polls the flag while it waits for tool answers.
			b.log.Warn("publish cancel", "session_id", id, "error", err)
		}
	}
	return scriptAnswer(got[0], id, "")
}

// Ready returns nil when Redis answers.
func (b *Backend) Ready(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
