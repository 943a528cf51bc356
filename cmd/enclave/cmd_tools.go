package main

import (
	"context"
	"fmt"
)

func runTools(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "enclave tools: not built in this version")
	return 2
}
