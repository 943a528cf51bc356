package limits

import (
	"context"
	"fmt"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// RSS returns a process's resident set size in bytes, through gopsutil.
func RSS(pid int) (int64, error) {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	return rssOf(context.Background(), p)
}

func rssOf(ctx context.Context, p *process.Process) (int64, error) {
	m, err := p.MemoryInfoWithContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", p.Pid, err)
	}
	return int64(m.RSS), nil
}

// DefaultRSSInterval is how often RSSWatch samples when Interval is unset.
const DefaultRSSInterval = 250 * time.Millisecond

// RSSWatch samples one process's RSS at an interval. It is the early warning in
// front of a cgroup cap, and the only memory cap where there is no cgroup.
type RSSWatch struct {
	// Interval between samples. Default: DefaultRSSInterval.
	Interval time.Duration
	// Soft is the RSS that triggers OnSoft, once per crossing. 0: no warning.
	Soft int64
	// Hard is the RSS at which Run returns ErrOverMemory. 0: no cap.
	Hard int64
	// OnSample, if set, gets every reading (for a gauge).
	OnSample func(rss int64)
	// OnSoft, if set, is called when RSS rises above Soft.
	OnSoft func(rss int64)
}

// Run samples pid until ctx ends (nil), the process is gone (nil) or its RSS
// exceeds Hard: then it returns an error wrapping ErrOverMemory, and killing the
// process is the caller's job, since only the caller knows its process group.
func (w RSSWatch) Run(ctx context.Context, pid int) error {
	p, err := process.NewProcessWithContext(ctx, int32(pid))
	if err != nil {
		return nil // already gone: nothing to watch
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultRSSInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	above := false
	for {
		rss, err := rssOf(ctx, p)
		if err != nil {
			return nil // exited between samples
		}
		if err := w.check(rss, &above); err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// check handles one reading; above tracks whether the soft mark was crossed so
// the warning fires once per crossing and not on every sample.
func (w RSSWatch) check(rss int64, above *bool) error {
	if w.OnSample != nil {
		w.OnSample(rss)
	}
	if w.Soft > 0 {
		if rss > w.Soft && !*above && w.OnSoft != nil {
			w.OnSoft(rss)
		}
		*above = rss > w.Soft
	}
	if w.Hard > 0 && rss > w.Hard {
		return fmt.Errorf("%w: rss %s above %s", ErrOverMemory, ByteSize(rss), ByteSize(w.Hard))
	}
	return nil
}
