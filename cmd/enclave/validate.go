package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/enclave-go/enclave/agentscript"
	"github.com/enclave-go/enclave/limits"
	"github.com/enclave-go/enclave/supervisor"
)

func runValidate(_ context.Context, args []string, io stdio) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(io.err)
	level := fs.String("level", string(limits.Standard), "security level to check against")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(io.err, "usage: enclave validate [--level LEVEL] FILE|-")
		return 2
	}
	l, err := limits.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(io.err, "enclave validate: %v\n", err)
		return 2
	}
	code, err := readScript(fs.Arg(0), io.in)
	if err != nil {
		fmt.Fprintf(io.err, "enclave validate: %v\n", err)
		return 2
	}
	_, err = agentscript.Check(code, supervisor.ScriptOptions(l))
	var probs agentscript.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintf(io.out, "%d:%d %s %s\n", p.Line, p.Column, p.Rule, p.Message)
		}
		return 1
	}
	if err != nil {
		fmt.Fprintf(io.out, "%v\n", err)
		return 1
	}
	fmt.Fprintln(io.out, "ok")
	return 0
}
