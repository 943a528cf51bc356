package client

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// backoff computes the wait before retry n (0-based): InitialBackoff grown by
// BackoffMultiplier per retry, capped at MaxBackoff, then spread by ±Jitter.
type backoff struct {
	initial time.Duration
	max     time.Duration
	mult    float64
	jitter  float64
	rand    func() float64 // [0,1); swapped in tests
}

func newBackoff(o Options) backoff {
	return backoff{
		initial: o.InitialBackoff,
		max:     o.MaxBackoff,
		mult:    o.BackoffMultiplier,
		jitter:  o.Jitter,
		rand:    rand.Float64,
	}
}

// delay returns the wait before retry n.
func (b backoff) delay(n int) time.Duration {
	d := float64(b.initial) * math.Pow(b.mult, float64(n))
	d = math.Min(d, float64(b.max)) // also tames +Inf from a large n
	d *= 1 + b.jitter*(2*b.rand()-1)
	return time.Duration(d)
}

// sleep waits d or until ctx ends, and returns ctx's error in that case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
