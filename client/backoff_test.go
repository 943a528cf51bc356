package client

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := newBackoff(Options{InitialBackoff: 100 * time.Millisecond, BackoffMultiplier: 2,
		MaxBackoff: time.Second, Jitter: 0.2})
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{0, 0.5, 100 * time.Millisecond},
		{1, 0.5, 200 * time.Millisecond},
		{3, 0.5, 800 * time.Millisecond},
		{4, 0.5, time.Second},   // capped
		{500, 0.5, time.Second}, // no overflow
		{0, 0, 80 * time.Millisecond},
		{2, 0, 320 * time.Millisecond},
		{9, 0, 800 * time.Millisecond},
	}
	for _, tt := range tests {
		b.rand = func() float64 { return tt.r }
		if got := b.delay(tt.n); got != tt.want {
			t.Errorf("delay(%d) with rand %v = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	for _, jitter := range []float64{0.01, 0.2, 1} {
		b := newBackoff(Options{InitialBackoff: 100 * time.Millisecond, BackoffMultiplier: 2,
			MaxBackoff: time.Second, Jitter: jitter})
		for n := range 6 {
			base := min(100*time.Millisecond<<n, time.Second)
			lo := time.Duration(float64(base) * (1 - jitter))
			hi := time.Duration(float64(base) * (1 + jitter))
			seen := map[time.Duration]bool{}
			for range 500 {
				d := b.delay(n)
				if d < lo || d > hi {
					t.Fatalf("jitter %v, retry %d: delay %v outside [%v, %v]", jitter, n, d, lo, hi)
				}
				seen[d] = true
			}
			if len(seen) < 10 {
				t.Errorf("jitter %v, retry %d: only %d distinct delays", jitter, n, len(seen))
			}
		}
	}
}
