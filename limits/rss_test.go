package limits

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statmRSS reads the resident set of pid straight from the kernel.
func statmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestRSS(t *testing.T) {
	got, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := statmRSS(t, os.Getpid())
	if d := got - want; got <= 0 || d > 8<<20 || d < -8<<20 {
		t.Errorf("RSS = %d, kernel says %d", got, want)
	}
	if _, err := RSS(deadPID(t)); err == nil {
		t.Error("RSS of a dead process did not fail")
	}
}

func TestRSSWatchCheck(t *testing.T) {
	var samples, warnings []int64
	w := RSSWatch{
		Soft:     50,
		Hard:     75,
		OnSample: func(n int64) { samples = append(samples, n) },
		OnSoft:   func(n int64) { warnings = append(warnings, n) },
	}
	above := false
	var errAt int64
	for _, rss := range []int64{10, 60, 70, 40, 55, 80} {
		if err := w.check(rss, &above); err != nil {
			if !errors.Is(err, ErrOverMemory) {
				t.Fatalf("error %v", err)
			}
			errAt = rss
		}
	}
	if len(samples) != 6 || errAt != 80 {
		t.Errorf("samples %v, error at %d", samples, errAt)
	}
	if len(warnings) != 2 || warnings[0] != 60 || warnings[1] != 55 {
		t.Errorf("soft warnings at %v, want [60 55] (once per crossing)", warnings)
	}
}

// TestRSSWatchKillsGrowth watches a real process that grows without bound and
// sees Run report it once it passes the cap.
func TestRSSWatchKillsGrowth(t *testing.T) {
	// tail keeps the newline-free stream in memory; ulimit bounds it should the
	// watch fail.
	cmd := exec.Command("sh", "-c", "ulimit -v 2000000; exec tail /dev/zero")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	const hard = 48 << 20
	var last int64
	w := RSSWatch{Interval: 5 * time.Millisecond, Hard: hard, OnSample: func(n int64) { last = n }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := w.Run(ctx, cmd.Process.Pid)
	t.Logf("rss watch caught the growth at %s after %v", ByteSize(last), time.Since(start).Round(time.Millisecond))
	if !errors.Is(err, ErrOverMemory) {
		t.Fatalf("Run = %v, want ErrOverMemory", err)
	}
	if last <= hard {
		t.Errorf("last sample %d not above the cap", last)
	}
}

func TestRSSWatchEnds(t *testing.T) {
	w := RSSWatch{Interval: 5 * time.Millisecond, Hard: 1 << 40}
	if err := w.Run(context.Background(), deadPID(t)); err != nil {
		t.Errorf("Run on a dead pid = %v", err)
	}

	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	if err := w.Run(context.Background(), cmd.Process.Pid); err != nil {
		t.Errorf("Run on an exiting process = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, os.Getpid()); err != nil {
		t.Errorf("Run with a cancelled context = %v", err)
	}
}

// BenchmarkRSS is the cost of one watchdog sample.
func BenchmarkRSS(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := RSS(pid); err != nil {
			b.Fatal(err)
		}
	}
}
