package main

import (
	"context"
	"fmt"
)

func runMCP(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.err, "enclave mcp: not built in this version")
	return 2
}
