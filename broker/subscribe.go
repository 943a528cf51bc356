package broker

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
)

// followBlock is how long one blocking read of a session's events waits; after
// each quiet read the follower checks that the session still exists.
const followBlock = time.Second

// Subscribe replays a session's events from fromSeq and follows new ones; see
// api.Backend. Events are stream entries whose ids are their seqs, so a replay
// is one read from "fromSeq-1".
func (b *Backend) Subscribe(ctx context.Context, owner, id string, fromSeq int64) (<-chan api.Event, error) {
	if err := b.checkOwner(ctx, owner, id); err != nil {
		return nil, err
	}
	out := make(chan api.Event, 16)
	go b.follow(ctx, id, max(fromSeq, 1), out)
	return out, nil
}

// follow sends events until the terminal one, the end of ctx, or the session's
// keys expiring (then it ends the stream with an error event). A Redis failure is retried with backoff: the subscriber sees a
// pause, not an error.
func (b *Backend) follow(ctx context.Context, id string, from int64, out chan<- api.Event) {
	defer close(out)
	k := keysOf(id)
	last := eventID(from - 1)
	wait := newRetry()
	for ctx.Err() == nil {
		res, err := b.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{k.events, last}, Count: 256, Block: followBlock,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if b.quiet(ctx, id, k, last, out) {
				return
			}
			continue
		case err != nil:
			b.log.Debug("follow events", "session_id", id, "error", err)
			wait.sleep(ctx)
			continue
		}
		wait.reset()
		var done bool
		if last, done = b.send(ctx, res[0].Messages, last, out); done {
			return
		}
	}
}

// send passes messages on and returns the id of the last one sent, and whether
// the stream is over (terminal event or ctx ended).
func (b *Backend) send(ctx context.Context, msgs []redis.XMessage, last string, out chan<- api.Event) (string, bool) {
	for _, m := range msgs {
		ev, err := decodeEvent(m)
		if err != nil {
			b.log.Warn("skip unreadable event", "error", err)
			last = m.ID
			continue
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return last, true
		}
		last = m.ID
		if ev.Type.Terminal() {
			return last, true
		}
	}
	return last, false
}

// sendExpired ends the stream of a session whose keys expired before it ended:
// it was never started (QUEUE_TIMEOUT: no runtime took it within the session
// timeout) or it outlived the session timeout (TIMEOUT). The event is not
// stored; every broker derives the same one from the same state.
func (b *Backend) sendExpired(ctx context.Context, id, last string, out chan<- api.Event) {
	seq, _ := seqOfID(last)
	p := api.ErrorPayload{Code: api.CodeTimeout, Message: "the session expired before it ended"}
	if seq == 0 {
		p = api.ErrorPayload{Code: api.CodeQueueTimeout, Message: "no runtime started the session before it expired"}
	}
	select {
	case out <- api.NewEvent(id, seq+1, api.EventError, p):
	case <-ctx.Done():
	}
}

// quiet handles a read that found nothing new, and reports whether the follow
// is over: the session is done (its terminal event lies before last: a replay
// from past the end) or its keys expired.
func (b *Backend) quiet(ctx context.Context, id string, k sessionKeys, last string, out chan<- api.Event) bool {
	status, err := b.rdb.HGet(ctx, k.hash, "status").Result()
	switch {
	case errors.Is(err, redis.Nil):
		b.sendExpired(ctx, id, last, out)
		return true
	case err != nil || status != "done":
		return false
	}
	// The terminal event and status "done" are written together, but maybe
	// after the read above: read once more without blocking.
	res, err := b.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{k.events, last}, Count: 256, Block: -1}).Result()
	if err == nil && len(res) > 0 {
		b.send(ctx, res[0].Messages, last, out)
	}
	return true
}

// retry is a capped exponential backoff for loops that wait out a Redis outage.
type retry struct{ d time.Duration }

func newRetry() *retry { return &retry{d: 50 * time.Millisecond} }

func (r *retry) reset() { r.d = 50 * time.Millisecond }

// sleep waits the current delay (or until ctx ends) and doubles it, up to 2s.
func (r *retry) sleep(ctx context.Context) {
	t := time.NewTimer(r.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	r.d = min(2*r.d, 2*time.Second)
}
