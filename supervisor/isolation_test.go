package supervisor_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enclave-go/enclave/supervisor"
)

// probeNetwork is a test-only probe that runs inside a worker process before it
// serves: it tries to reach ENCLAVE_TEST_PROBE_ADDR and writes what happened to
// ENCLAVE_TEST_PROBE_FILE. Production workers have no such code path.
func probeNetwork() {
	addr, file := os.Getenv("ENCLAVE_TEST_PROBE_ADDR"), os.Getenv("ENCLAVE_TEST_PROBE_FILE")
	if addr == "" || file == "" {
		return
	}
	result := "connected"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		result = "refused: " + err.Error()
	} else {
		c.Close()
	}
	_ = os.WriteFile(file, []byte(result), 0o644)
}

// As root, a worker cannot reach a listener the test opens on loopback: it lives in
// an empty network namespace of its own.
func TestWorkerHasNoNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces for workers need root (CI runs as root)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, shared := range []bool{true, false} {
		file := filepath.Join(t.TempDir(), "probe")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s, err := supervisor.New(ctx, supervisor.Options{
			Config:        testConfig(t, nil),
			WorkerCommand: []string{os.Args[0]},
			WorkerEnv: []string{"ENCLAVE_TEST_WORKER=1", "ENCLAVE_TEST_PROBE_ADDR=" + ln.Addr().String(),
				"ENCLAVE_TEST_PROBE_FILE=" + file},
			CgroupRoot: "none", SharedNetwork: shared,
		})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		got, _ := os.ReadFile(file)
		_ = s.Close(ctx)
		cancel()
		// The shared run proves the probe itself works; the isolated one is the check.
		if shared && string(got) != "connected" {
			t.Fatalf("probe with a shared network: %q", got)
		}
		if !shared && !strings.HasPrefix(string(got), "refused") {
			t.Fatalf("worker reached the loopback listener: %q", got)
		}
	}
}
