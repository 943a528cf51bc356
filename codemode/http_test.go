package codemode_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/codemode"
	"github.com/enclave-go/enclave/limits"
)

// httpServer serves add over streamable HTTP on loopback and refuses requests
// without the bearer token.
func httpServer(t *testing.T, token string) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "httpserver", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
			return nil, addOut{Sum: in.A + in.B}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestProviderOverHTTP(t *testing.T) {
	url := httpServer(t, "s3cret")
	cases := []struct {
		name, token string
		ok          bool
	}{
		{"headers carry the credentials", "s3cret", true},
		{"wrong credentials", "guess", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := codemode.New(limits.Tool{Name: "h:*", MCP: &limits.MCPTool{
				URL: url, Prefix: "h:", Timeout: limits.Duration(5 * time.Second),
				Headers: map[string]string{"Authorization": "Bearer " + tc.token},
			}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got, err := p.Call(context.Background(), "h:add", json.RawMessage(`{"a":4,"b":5}`))
			if !tc.ok {
				assertToolErr(t, err, api.CodeToolError, "unavailable")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, got, `{"sum":9}`)
		})
	}
}
