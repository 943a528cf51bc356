package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/api"
)

// reap looks, every half ClaimTimeout, for jobs that sat unacked with some
// consumer longer than ClaimTimeout, and settles each by its session's status:
//
//   - queued: the consumer took the job and died before starting it; this
//     runtime runs it (the start script lets only one runtime start it);
//   - started by a runtime whose heartbeat is alive: a long run; the job is
//     handed back to that runtime untouched;
//   - started by a runtime whose heartbeat expired (or by this runtime, which
//     no longer runs it): the session ends with RUNTIME_LOST and is never run
//     again, since its tool calls may have had effects;
//   - done or gone: the job is acked.
func (rt *Runtime) reap(ctx, readCtx context.Context) {
	t := newTicker(rt.opts.ClaimTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-readCtx.Done():
			return
		case <-t.C:
		}
		for _, stream := range rt.consumedStreams() {
			rt.reapStream(ctx, readCtx, stream)
		}
	}
}

// reapStream claims the stale jobs of one stream, a page at a time.
func (rt *Runtime) reapStream(ctx, readCtx context.Context, stream string) {
	start := "0-0"
	for readCtx.Err() == nil {
		msgs, next, err := rt.rdb.XAutoClaim(readCtx, &redis.XAutoClaimArgs{
			Stream: stream, Group: groupName, Consumer: rt.id,
			MinIdle: rt.opts.ClaimTimeout, Start: start, Count: 32,
		}).Result()
		if err != nil {
			if readCtx.Err() == nil && !errors.Is(err, redis.Nil) {
				rt.log.Debug("claim stale jobs", "stream", stream, "error", err)
			}
			return
		}
		for _, m := range msgs {
			rt.settle(ctx, readCtx, stream, m)
		}
		if next == "0-0" || len(msgs) == 0 {
			return
		}
		start = next
	}
}

// settle decides what to do with one claimed job; see reap.
func (rt *Runtime) settle(ctx, readCtx context.Context, stream string, m redis.XMessage) {
	id, _ := m.Values["session"].(string)
	if id == "" {
		rt.finishJob(ctx, stream, m.ID, "")
		return
	}
	v, err := rt.rdb.HMGet(ctx, keysOf(id).hash, "status", "runtime").Result()
	if err != nil {
		return // still claimed by this runtime; the next round tries again
	}
	status, _ := v[0].(string)
	owner, _ := v[1].(string)
	switch status {
	case "queued":
		rt.log.Info("running a job its consumer left", "session_id", id, "stream", stream)
		rt.runClaimed(ctx, readCtx, stream, m)
	case "started":
		rt.settleStarted(ctx, stream, m, id, owner)
	default:
		rt.finishJob(ctx, stream, m.ID, "")
	}
}

// runClaimed runs a claimed queued job once a slot is free, without holding up
// the reaper. A job already waiting here is not started twice; one still waiting
// when the runtime drains stays pending for another runtime to claim.
func (rt *Runtime) runClaimed(ctx, readCtx context.Context, stream string, m redis.XMessage) {
	rt.mu.Lock()
	waiting := rt.claimed[m.ID]
	rt.claimed[m.ID] = true
	rt.mu.Unlock()
	if waiting {
		return
	}
	rt.runWG.Add(1)
	go func() {
		defer rt.runWG.Done()
		defer func() { rt.mu.Lock(); delete(rt.claimed, m.ID); rt.mu.Unlock() }()
		if !rt.acquireOne(readCtx) {
			return
		}
		defer rt.release(1)
		rt.handle(ctx, stream, m)
	}()
}

func (rt *Runtime) settleStarted(ctx context.Context, stream string, m redis.XMessage, id, owner string) {
	if owner == rt.id && rt.running(id) {
		return
	}
	if owner != rt.id {
		n, err := rt.rdb.Exists(ctx, runtimeKey(owner)).Result()
		if err != nil {
			return
		}
		if n == 1 {
			// Alive: give the job back, which also restarts its idle time.
			rt.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: stream, Group: groupName, Consumer: owner, Messages: []string{m.ID}})
			return
		}
	}
	if err := rt.endLost(ctx, id, owner); err != nil {
		rt.log.Warn("end lost session", "session_id", id, "error", err)
		return
	}
	rt.log.Warn("session lost with its runtime", "session_id", id, "lost_runtime", owner)
	rt.finishJob(ctx, stream, m.ID, id)
}

// endLost writes RUNTIME_LOST after the last event the lost runtime wrote. The
// finish script checks the session is still started by owner, and the stream
// refuses the write if owner wrote that seq meanwhile (then the next round
// tries again).
func (rt *Runtime) endLost(ctx context.Context, id, owner string) error {
	k := keysOf(id)
	last, err := rt.rdb.XRevRangeN(ctx, k.events, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("read last event: %w", err)
	}
	var seq int64
	if len(last) > 0 {
		if seq, err = seqOfID(last[0].ID); err != nil {
			return fmt.Errorf("read last event: %w", err)
		}
	}
	ev := api.NewEvent(id, seq+1, api.EventError, api.ErrorPayload{
		Code:    api.CodeRuntimeLost,
		Message: fmt.Sprintf("runtime %s stopped while it ran the session", owner),
	})
	_, err = finishScript.Run(ctx, rt.rdb, k.all(), owner, eventID(ev.Seq), encodeEvent(ev),
		string(api.CodeRuntimeLost), nowMs(), maxEvents).Int()
	return err
}
