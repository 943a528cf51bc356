package codemode_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/workerproc"
)

// The test binary plays two parts besides the tests: the worker the supervisor
// re-executes (ENCLAVE_TEST_WORKER=1) and a small MCP server over stdio
// (ENCLAVE_TEST_MCP=1), so every test talks to real processes.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("ENCLAVE_TEST_WORKER") == "1":
		os.Exit(workerproc.Main())
	case os.Getenv("ENCLAVE_TEST_MCP") == "1":
		if d, err := time.ParseDuration(os.Getenv("ENCLAVE_TEST_MCP_DELAY")); err == nil {
			time.Sleep(d) // a server slow to start
		}
		os.Exit(runTestServer())
	}
	os.Exit(m.Run())
}

type addIn struct {
	A int `json:"a" jsonschema:"the first term"`
	B int `json:"b" jsonschema:"the second term"`
}

type addOut struct {
	Sum int `json:"sum"`
}

type textIn struct {
	Text string `json:"text"`
}

type nameIn struct {
	Name string `json:"name"`
}

type slowIn struct {
	Ms int `json:"ms"`
}

// runTestServer serves tools that cover each way a result can come back:
// structured (add), plain text (echo), JSON text (profile), an error result
// (fail), a dying server (crash), a slow answer (slow), a changing tool list
// (grow) and the server's pid.
func runTestServer() int {
	s := mcp.NewServer(&mcp.Implementation{Name: "testserver", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
			return nil, addOut{Sum: in.A + in.B}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			return text(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "profile", Description: "A profile as JSON text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in nameIn) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprintf(`{"name": %q, "len": %d}`, in.Name, len(in.Name))), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "fail", Description: "Always fails."},
		func(_ context.Context, _ *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			return nil, nil, errors.New(in.Text)
		})
	addLifecycleTools(s)
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		return 1
	}
	return 0
}

func addLifecycleTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "crash", Description: "Exits the server mid-call."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			os.Exit(3)
			return nil, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Answers after ms milliseconds."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, any, error) {
			select {
			case <-time.After(time.Duration(in.Ms) * time.Millisecond):
			case <-ctx.Done():
			}
			return text("done"), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "grow", Description: "Adds the tool extra, which changes the list."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			mcp.AddTool(s, &mcp.Tool{Name: "extra", Description: "Added at run time."},
				func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
					return text("extra"), nil, nil
				})
			return text("grown"), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "The server's process id."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprint(os.Getpid())), nil, nil
		})
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
