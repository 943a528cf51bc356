package broker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBlock is how long one XREADGROUP waits for work; it bounds how late a
// drain notices it should stop reading.
const readBlock = time.Second

// discover starts a reader for every work stream this runtime serves: the
// default one, and each target in the targets set whose labels it carries.
// Targets appear as brokers route work to them, so it looks again every
// TargetRefresh.
func (rt *Runtime) discover(ctx, readCtx context.Context) {
	t := time.NewTicker(rt.opts.TargetRefresh)
	defer t.Stop()
	for {
		rt.startReaders(ctx, readCtx)
		select {
		case <-readCtx.Done():
			return
		case <-t.C:
		}
	}
}

func (rt *Runtime) startReaders(ctx, readCtx context.Context) {
	targets, err := rt.rdb.SMembers(readCtx, targetsKey).Result()
	if err != nil && readCtx.Err() == nil {
		rt.log.Debug("read targets", "error", err)
	}
	for _, target := range append(targets, defaultTarget) {
		if !serves(rt.opts.Labels, target) {
			continue
		}
		stream := streamKey(target)
		rt.mu.Lock()
		known := rt.streams[stream]
		rt.streams[stream] = true
		rt.mu.Unlock()
		if !known {
			rt.log.Info("reading work stream", "stream", stream)
			rt.spawn(func() { rt.consume(ctx, readCtx, stream) })
		}
	}
}

// consumedStreams lists the work streams being read.
func (rt *Runtime) consumedStreams() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]string, 0, len(rt.streams))
	for s := range rt.streams {
		out = append(out, s)
	}
	return out
}

// ensureGroup creates the work stream's consumer group, reading from the start
// of the stream: jobs queued before any runtime came are not skipped.
func (rt *Runtime) ensureGroup(ctx context.Context, stream string) error {
	err := rt.rdb.XGroupCreateMkStream(ctx, stream, groupName, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// consume reads jobs from one work stream while this runtime has free slots.
// A job read is this runtime's (it sits in the group's pending list under
// this runtime's name) until it is acked.
func (rt *Runtime) consume(ctx, readCtx context.Context, stream string) {
	wait := newRetry()
	grouped := false
	for readCtx.Err() == nil {
		if !grouped {
			if grouped = rt.ensureGroup(readCtx, stream) == nil; !grouped {
				wait.sleep(readCtx)
				continue
			}
		}
		msgs, err := rt.read(readCtx, stream)
		switch {
		case err != nil && strings.Contains(err.Error(), "NOGROUP"):
			grouped = false // Redis lost the group: it restarted empty
		case err != nil:
			if readCtx.Err() == nil {
				rt.log.Warn("read work", "stream", stream, "error", err)
			}
			wait.sleep(readCtx)
		default:
			wait.reset()
		}
		for _, m := range msgs {
			rt.runWG.Add(1)
			go func() { defer rt.runWG.Done(); defer rt.release(1); rt.handle(ctx, stream, m) }()
		}
	}
}

// read takes up to as many jobs as there are free slots; the slots of the jobs
// it did not get are given back.
func (rt *Runtime) read(readCtx context.Context, stream string) ([]redis.XMessage, error) {
	n := rt.acquire(readCtx)
	if n == 0 {
		return nil, nil
	}
	res, err := rt.rdb.XReadGroup(readCtx, &redis.XReadGroupArgs{
		Group: groupName, Consumer: rt.id, Streams: []string{stream, ">"},
		Count: int64(n), Block: readBlock,
	}).Result()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	var msgs []redis.XMessage
	if len(res) > 0 {
		msgs = res[0].Messages
	}
	rt.release(n - len(msgs))
	return msgs, err
}

// acquire waits for one free slot and takes more that are free, up to this
// stream's share of the capacity, so one idle stream's blocking read does not
// hold every slot while another stream has work. It returns 0 when ctx ends
// first.
func (rt *Runtime) acquire(ctx context.Context) int {
	select {
	case rt.slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	share := max(1, rt.opts.Capacity/max(1, len(rt.consumedStreams())))
	n := 1
	for n < share {
		select {
		case rt.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (rt *Runtime) release(n int) {
	for range n {
		<-rt.slots
	}
}
