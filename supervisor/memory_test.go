package supervisor_test

import (
	"os"
	"testing"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

// Memory bombs end with MEMORY_LIMIT_EXCEEDED under a 64 MiB cap, whichever layer
// stops them (an allocation guard, the heap watcher, the RSS watch or the cgroup),
// the daemon's own memory stays flat, and the next run succeeds.
func TestMemoryBombs(t *testing.T) {
	for _, mode := range []string{"cgroup", "rss"} {
		t.Run(mode, func(t *testing.T) {
			root := "none"
			if mode == "cgroup" {
				if os.Geteuid() != 0 {
					t.Skip("cgroup memory caps need root (CI runs as root)")
				}
				if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
					if _, err2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err2 != nil {
						t.Skip("no cgroup memory controller mounted")
					}
				}
				root = "/sys/fs/cgroup"
			}
			testBombs(t, root)
		})
	}
}

func testBombs(t *testing.T, cgroupRoot string) {
	cfg := testConfig(t, func(c *limits.Config) {
		c.Pool.Size, c.Pool.MinWorkers = 1, 1
		c.Pool.MaxWorkerMemory = 64 << 20
		d := limits.Duration(10 * time.Second)
		big := int64(1 << 40)
		c.Limits.Timeout, c.Limits.MaxIterations = &d, &big
	})
	s := newSupervisor(t, cfg, cgroupRoot)
	if cgroupRoot != "none" && s.CgroupMode() == "none" {
		t.Skip("cgroups could not be set up here")
	}
	before := selfRSS(t)
	bombs := map[string]string{
		"repeat":        "return 'x'.repeat(2 ** 30).length",
		"doubling":      "let s = 'ab'; for (let i = 0; i < 40; i++) { s = s + s } return s.length",
		"array fill":    "return new Array(1e9).fill(0).length",
		"nested growth": "const keep = []; while (true) { keep.push(Array.from({length: 1000}, (_, i) => [i, {v: i}])) }",
	}
	for name, code := range bombs {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := run(t, s, supervisor.Request{Code: code})
			wantCode(t, err, api.CodeMemoryLimit)
			t.Logf("%s stopped in %s", name, time.Since(start).Round(time.Millisecond))
			res, err := run(t, s, supervisor.Request{Code: "return 'fine'"})
			if err != nil || string(res.Value) != `"fine"` {
				t.Fatalf("next run: %v %v", res, err)
			}
		})
	}
	if after := selfRSS(t); after > before+64<<20 {
		t.Fatalf("daemon RSS grew from %d to %d bytes", before, after)
	}
}

func selfRSS(t *testing.T) int64 {
	t.Helper()
	rss, err := limits.RSS(os.Getpid())
	if err != nil {
		t.Fatalf("rss: %v", err)
	}
	return rss
}
