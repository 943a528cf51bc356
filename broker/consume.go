package broker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBlock is how long one XREADGROUP waits for work; it bounds how late a
// drain notices it should stop reading.
const readBlock = time.Second

// discover keeps the set of work streams this runtime reads: the default one,
// and each target in the targets set whose labels it carries. Targets appear as
// brokers route work to them, so it looks again every TargetRefresh.
func (rt *Runtime) discover(readCtx context.Context) {
	t := time.NewTicker(rt.opts.TargetRefresh)
	defer t.Stop()
	for {
		rt.refreshStreams(readCtx)
		select {
		case <-readCtx.Done():
			return
		case <-t.C:
		}
	}
}

func (rt *Runtime) refreshStreams(ctx context.Context) {
	targets, err := rt.rdb.SMembers(ctx, targetsKey).Result()
	if err != nil && ctx.Err() == nil {
		rt.log.Debug("read targets", "error", err)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, target := range append(targets, defaultTarget) {
		stream := streamKey(target)
		if _, known := rt.streams[stream]; !known && serves(rt.opts.Labels, target) {
			rt.log.Info("reading work stream", "stream", stream)
			rt.streams[stream] = false
		}
	}
}

// consumedStreams lists the work streams being read, sorted.
func (rt *Runtime) consumedStreams() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Sorted(maps.Keys(rt.streams))
}

// ensureGroups creates the consumer group of each stream that may lack one,
// reading from the start of the stream: jobs queued before any runtime came
// are not skipped.
func (rt *Runtime) ensureGroups(ctx context.Context, streams []string) error {
	for _, stream := range streams {
		rt.mu.Lock()
		ok := rt.streams[stream]
		rt.mu.Unlock()
		if ok {
			continue
		}
		err := rt.rdb.XGroupCreateMkStream(ctx, stream, groupName, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return err
		}
		rt.mu.Lock()
		rt.streams[stream] = true
		rt.mu.Unlock()
	}
	return nil
}

// forgetGroups makes the next read create every group again: Redis lost them
// (it restarted empty).
func (rt *Runtime) forgetGroups() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for s := range rt.streams {
		rt.streams[s] = false
	}
}

// job is one entry of a work stream.
type job struct {
	stream string
	msg    redis.XMessage
}

// consume is the runtime's one reader: a blocking XREADGROUP over every work
// stream it serves (they share a hash slot), issued only while it has free
// slots. A job read is this runtime's (it sits in the group's pending list
// under this runtime's name) until it is acked.
func (rt *Runtime) consume(ctx, readCtx context.Context) {
	wait := newRetry()
	for readCtx.Err() == nil {
		streams := rt.consumedStreams()
		if err := rt.ensureGroups(readCtx, streams); err != nil {
			wait.sleep(readCtx)
			continue
		}
		jobs, held, err := rt.read(readCtx, streams)
		switch {
		case err != nil && strings.Contains(err.Error(), "NOGROUP"):
			rt.forgetGroups()
		case err != nil:
			if readCtx.Err() == nil {
				rt.log.Warn("read work", "error", err)
			}
			wait.sleep(readCtx)
		default:
			wait.reset()
		}
		rt.dispatch(ctx, jobs, held)
	}
}

// read takes all free slots and reads up to that many jobs, spread over the
// streams; it gives back the slots of the jobs it did not get and says how
// many it kept. With more streams than slots it may get more jobs than slots.
func (rt *Runtime) read(readCtx context.Context, streams []string) ([]job, int, error) {
	n := rt.acquire(readCtx)
	if n == 0 {
		return nil, 0, nil
	}
	args := append(slices.Clone(streams), slices.Repeat([]string{">"}, len(streams))...)
	res, err := rt.rdb.XReadGroup(readCtx, &redis.XReadGroupArgs{
		Group: groupName, Consumer: rt.id, Streams: args,
		Count: int64(max(1, n/len(streams))), Block: readBlock,
	}).Result()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	var jobs []job
	for _, s := range res {
		for _, m := range s.Messages {
			jobs = append(jobs, job{stream: s.Stream, msg: m})
		}
	}
	held := min(n, len(jobs))
	rt.release(n - held)
	return jobs, held, err
}

// dispatch runs each job in its own goroutine; the first held already own a
// slot, the others wait for one (they are this runtime's already).
func (rt *Runtime) dispatch(ctx context.Context, jobs []job, held int) {
	for i, j := range jobs {
		rt.runWG.Add(1)
		go func() {
			defer rt.runWG.Done()
			if i >= held && !rt.acquireOne(ctx) {
				return
			}
			defer rt.release(1)
			rt.handle(ctx, j.stream, j.msg)
		}()
	}
}

// acquire waits for one free slot and takes every other free one too; it
// returns 0 when ctx ends first.
func (rt *Runtime) acquire(ctx context.Context) int {
	if !rt.acquireOne(ctx) {
		return 0
	}
	n := 1
	for {
		select {
		case rt.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

// acquireOne waits for one free slot; false when ctx ends first.
func (rt *Runtime) acquireOne(ctx context.Context) bool {
	select {
	case rt.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (rt *Runtime) release(n int) {
	for range n {
		<-rt.slots
	}
}
