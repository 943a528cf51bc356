package main

import (
	"context"
	"fmt"
)

func runRuntime(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "enclave runtime: not built in this version")
	return 2
}
