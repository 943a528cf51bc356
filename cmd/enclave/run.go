package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/client"
	"github.com/enclave-go/enclave/limits"
)

// toolFlags collects repeated --tool NAME=COMMAND flags.
type toolFlags map[string]string

func (t toolFlags) String() string { return fmt.Sprint(map[string]string(t)) }

func (t toolFlags) Set(v string) error {
	name, cmd, ok := strings.Cut(v, "=")
	if !ok || name == "" || cmd == "" {
		return errors.New("want NAME=COMMAND")
	}
	t[name] = cmd
	return nil
}

type runFlags struct {
	socket, broker, apiKey, level string
	json                          bool
	timeout                       time.Duration
	tools                         toolFlags
}

func runRun(ctx context.Context, args []string, io stdio) int {
	f := runFlags{tools: toolFlags{}}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.StringVar(&f.socket, "socket", limits.DefaultSocket(), "daemon's Unix socket")
	fs.StringVar(&f.broker, "broker", "", "broker URL (instead of the socket)")
	fs.StringVar(&f.apiKey, "api-key", os.Getenv("ENCLAVE_API_KEY"), "broker API key (default $ENCLAVE_API_KEY)")
	fs.StringVar(&f.level, "level", "", "security level for this run (at most as loose as the daemon's)")
	fs.DurationVar(&f.timeout, "timeout", 0, "tighter timeout for this run")
	fs.BoolVar(&f.json, "json", false, "print the whole result object")
	fs.Var(f.tools, "tool", "NAME=COMMAND: answer tool NAME by running COMMAND (args on stdin, JSON on stdout); repeatable")
	files, err := parseInterspersed(fs, args)
	if err != nil || len(files) != 1 {
		fmt.Fprintln(io.err, "usage: enclave run [--socket PATH | --broker URL [--api-key KEY]] [--json] [--level LEVEL] [--timeout D] [--tool NAME=COMMAND]... FILE|-")
		return 2
	}
	code, err := readScript(files[0], io.in)
	if err != nil {
		fmt.Fprintf(io.err, "enclave run: %v\n", err)
		return 2
	}
	return submit(ctx, f, code, io)
}

// parseInterspersed parses flags before and after the positional arguments, so
// `enclave run script.js --tool ...` works as well as the flags-first order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func readScript(name string, stdin io.Reader) (string, error) {
	if name == "-" {
		b, err := io.ReadAll(stdin)
		return string(b), err
	}
	b, err := os.ReadFile(name)
	return string(b), err
}

func newClient(socket, broker, apiKey string) (*client.Client, error) {
	if broker != "" {
		return client.New(client.Options{BaseURL: broker, APIKey: apiKey})
	}
	return client.New(client.Options{Socket: socket})
}

func submit(ctx context.Context, f runFlags, code string, io stdio) int {
	c, err := newClient(f.socket, f.broker, f.apiKey)
	if err != nil {
		fmt.Fprintf(io.err, "enclave run: %v\n", err)
		return 2
	}
	req := api.CreateRequest{Code: code, SecurityLevel: f.level}
	for name := range f.tools {
		req.ClientTools = append(req.ClientTools, name)
	}
	if f.timeout > 0 {
		d := api.Duration(f.timeout)
		req.Limits = &api.LimitOverrides{Timeout: &d}
	}
	res, err := c.Execute(ctx, client.ExecuteOptions{
		Request: req,
		Tools:   execTools(f.tools),
		OnEvent: func(e api.Event) { printConsole(e, io.err) },
	})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			fmt.Fprintf(io.err, "%s: %s\n", ae.Code, positioned(ae))
			if ae.Code == api.CodeInvalidRequest {
				return 2 // the request itself (flags, level, limits) was wrong
			}
			return 1
		}
		fmt.Fprintf(io.err, "enclave run: %v%s\n", err, daemonHint(err, f))
		return 2
	}
	return printResult(res, f.json, io.out)
}

func positioned(e *api.Error) string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d, column %d)", e.Message, e.Line, e.Column)
	}
	return e.Message
}

func printConsole(e api.Event, w io.Writer) {
	if e.Type != api.EventStdout && e.Type != api.EventLog {
		return
	}
	var p api.ConsolePayload
	if json.Unmarshal(e.Payload, &p) == nil {
		fmt.Fprintln(w, p.Text)
	}
}

func printResult(res *client.Result, whole bool, w io.Writer) int {
	if !whole {
		fmt.Fprintln(w, string(res.Value))
		return 0
	}
	out, _ := json.Marshal(map[string]any{"sessionId": res.SessionID, "result": res.Value, "stats": res.Stats})
	fmt.Fprintln(w, string(out))
	return 0
}

// execTools answers client tools by running each one's command through sh: the
// arguments as JSON on stdin, the answer as JSON on stdout, a failure as a non-zero
// exit with the message on stderr.
func execTools(tools toolFlags) client.ToolHandler {
	return func(ctx context.Context, name string, args json.RawMessage) (json.RawMessage, error) {
		command, ok := tools[name]
		if !ok {
			return nil, fmt.Errorf("no --tool given for %q", name)
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.Stdin = bytes.NewReader(args)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			return nil, errors.New(msg)
		}
		out := bytes.TrimSpace(stdout.Bytes())
		if !json.Valid(out) {
			return nil, fmt.Errorf("tool %s printed invalid JSON", name)
		}
		return out, nil
	}
}

// daemonHint explains the usual cause of a refused connection.
func daemonHint(err error, f runFlags) string {
	if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		return ""
	}
	if f.broker != "" {
		return "\n(is the broker running at " + f.broker + "?)"
	}
	return "\n(is the daemon running? start it with `enclave serve` or `make run`, or pass --socket)"
}
