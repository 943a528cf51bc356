// Command enclave is Enclave's one binary: the daemon, its client, the validator,
// the benchmark, the scale-out broker and runtime, and the hidden worker.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The worker is dispatched before any other set-up: it must start fast and
	// carry nothing of the daemon.
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(runWorker())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}
