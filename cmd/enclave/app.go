package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// stdio are a command's streams, so tests can run commands in-process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

type command struct {
	run     func(ctx context.Context, args []string, io stdio) int
	summary string
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {runServe, "run the daemon: a worker pool behind a Unix socket"},
		"run":      {runRun, "submit a script and print its result"},
		"validate": {runValidate, "check a script and list every problem"},
		"bench":    {runBench, "measure executions/s and latency against a daemon or broker"},
		"broker":   {runBroker, "run a stateless broker: the HTTP API on TCP over Redis"},
		"runtime":  {runRuntime, "run a runtime pod: a worker pool taking work from Redis"},
		"tools":    {runTools, "print the declarations of every tool scripts may call"},
		"mcp":      {runMCP, "serve Enclave as an MCP server with one run_code tool"},
		"version":  {runVersion, "print the version"},
	}
}

// Run runs the command named by args[0] and returns the process exit code.
func Run(ctx context.Context, args []string, io stdio) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.err, cmds)
		return 2
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(io.err, "enclave: unknown command %q\n", args[0])
		usage(io.err, cmds)
		return 2
	}
	return cmd.run(ctx, args[1:], io)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: enclave <command> [flags]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, b.String())
}

func runVersion(_ context.Context, _ []string, io stdio) int {
	fmt.Fprintln(io.out, "enclave", version)
	return 0
}
