package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/enclave-go/enclave/api"
)

var (
	errStreamEnded = errors.New("stream ended before the session did")
	errStreamIdle  = errors.New("stream silent for too long")
	errNoHeaders   = errors.New("no response headers in time")
)

// stream is one open event stream: its body, and the cancel that tears it down
// (the idle watchdog uses it).
type stream struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	body   io.ReadCloser
}

// close releases the stream. After the terminal event the server ends the
// answer at once: reading to that end first lets the connection be reused
// instead of torn down with every session.
func (s *stream) close(complete bool) {
	if complete {
		_, _ = io.CopyN(io.Discard, s.body, 4<<10)
	}
	_ = s.body.Close()
	s.cancel(nil)
}

// openStream sends req (built under the stream's own context by build) and
// returns the stream when the server answers 200. Headers must arrive within
// RequestTimeout; the body may then last as long as the session.
func (c *Client) openStream(ctx context.Context, build func(context.Context) (*http.Request, error)) (*stream, *http.Response, error) {
	sctx, cancel := context.WithCancelCause(ctx)
	req, err := build(sctx)
	if err != nil {
		cancel(nil)
		return nil, nil, err
	}
	timer := time.AfterFunc(c.opts.RequestTimeout, func() { cancel(errNoHeaders) })
	resp, err := c.hc.Do(req)
	timer.Stop()
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, causeOr(sctx, err))
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel(nil)
		defer closeBody(resp.Body)
		return nil, nil, decodeError(resp)
	}
	return &stream{ctx: sctx, cancel: cancel, body: resp.Body}, resp, nil
}

// causeOr prefers the reason ctx was cancelled for (our own timers) over err.
func causeOr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return fmt.Errorf("%w (%w)", c, err)
	}
	return err
}

// follower reads one session's events in seq order, each once, across
// reconnects.
type follower struct {
	c    *Client
	id   string
	last int64 // seq of the last event delivered
}

// deliverError marks an error returned by the deliver callback: it ends the
// follow at once instead of causing a reconnect.
type deliverError struct{ err error }

func (e *deliverError) Error() string { return e.err.Error() }
func (e *deliverError) Unwrap() error { return e.err }

// run delivers every new event (not heartbeats) from s, and after a break from
// reconnected streams, until the terminal event. s may be nil to start with a
// connect. It returns nil after the terminal event, deliver's error, a 4xx
// answer of the server as *api.Error, or, after MaxAttempts reconnects without
// progress, "stream lost after N attempts".
func (f *follower) run(ctx context.Context, s *stream, deliver func(api.Event) error) error {
	attempts := 0 // reconnects since the stream last made progress
	for {
		progressed, err := f.attempt(ctx, s, deliver)
		s = nil
		if err == nil {
			return nil
		}
		if fatal := f.fatal(ctx, err); fatal != nil {
			return fatal
		}
		if progressed {
			attempts = 0
		}
		if attempts >= f.c.opts.MaxAttempts {
			return fmt.Errorf("session %s: stream lost after %d attempts: %w", f.id, attempts, err)
		}
		if err := sleep(ctx, f.c.backoff.delay(attempts)); err != nil {
			return err
		}
		attempts++
	}
}

// fatal returns the error to end the follow with, or nil to reconnect.
func (f *follower) fatal(ctx context.Context, err error) error {
	var de *deliverError
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case errors.As(err, &de):
		return de.err
	case !retryable(err):
		return err
	case f.id == "":
		return fmt.Errorf("stream broke before the session id was known: %w", err)
	}
	return nil
}

// attempt reads s, or a stream opened from the last seq on when s is nil.
func (f *follower) attempt(ctx context.Context, s *stream, deliver func(api.Event) error) (bool, error) {
	if s == nil {
		var err error
		s, _, err = f.c.openStream(ctx, f.replayRequest)
		if err != nil {
			return false, err
		}
	}
	return f.consume(s, deliver)
}

func (f *follower) replayRequest(ctx context.Context) (*http.Request, error) {
	path := "/v1/sessions/" + url.PathEscape(f.id) + "/events?fromSeq=" +
		strconv.FormatInt(f.last+1, 10)
	return f.c.newRequest(ctx, http.MethodGet, path, nil)
}

// consume reads s until the terminal event or a break. Any line, heartbeats
// included, is progress: the server is there. Seqs at or below the last one
// delivered are dropped, so a replay that overlaps is harmless.
func (f *follower) consume(s *stream, deliver func(api.Event) error) (progressed bool, err error) {
	defer func() { s.close(err == nil) }()
	idle := f.c.opts.StreamIdleTimeout
	watchdog := time.AfterFunc(idle, func() { s.cancel(errStreamIdle) })
	defer watchdog.Stop()
	dec := api.NewDecoder(s.body)
	for {
		ev, err := dec.Decode()
		if err != nil {
			return progressed, f.breakError(s, err)
		}
		watchdog.Reset(idle)
		progressed = true
		if ev.Type == api.EventHeartbeat || ev.Seq <= f.last {
			continue
		}
		f.last = ev.Seq
		if err := deliver(ev); err != nil {
			return true, &deliverError{err}
		}
		if ev.Type.Terminal() {
			return true, nil
		}
	}
}

// breakError names why a stream broke: our watchdog, or the read error.
func (f *follower) breakError(s *stream, err error) error {
	if errors.Is(err, io.EOF) {
		err = errStreamEnded
	}
	if errors.Is(context.Cause(s.ctx), errStreamIdle) {
		err = errStreamIdle
	}
	return fmt.Errorf("read events after seq %d: %w", f.last, err)
}

// Events streams a session's events from fromSeq on (0 or 1: from the start),
// reconnecting like Execute does. Heartbeats are not passed on. The event channel
// is closed after the terminal event or on failure; then the error channel yields
// nil or the error, and is closed. Cancel ctx to stop early.
func (c *Client) Events(ctx context.Context, sessionID string, fromSeq int64) (<-chan api.Event, <-chan error) {
	events := make(chan api.Event)
	errc := make(chan error, 1)
	f := &follower{c: c, id: sessionID, last: max(fromSeq-1, 0)}
	go func() {
		defer close(errc)
		err := f.run(ctx, nil, func(ev api.Event) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
		close(events)
		errc <- err
	}()
	return events, errc
}
