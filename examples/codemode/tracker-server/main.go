// Command tracker-server is a tiny issue tracker served over MCP on stdio, for
// Enclave's code-mode example. It keeps its issues in memory, seeded with four,
// and serves three tools: list_issues, create_issue and close_issue.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Issue is one tracked issue.
type Issue struct {
	ID       int      `json:"id"`
	Title    string   `json:"title"`
	Body     string   `json:"body,omitempty"`
	State    string   `json:"state" jsonschema:"open or closed"`
	Labels   []string `json:"labels"`
	Comments []string `json:"comments,omitempty"`
}

type tracker struct {
	mu     sync.Mutex
	issues []*Issue
	nextID int
}

func newTracker() *tracker {
	t := &tracker{nextID: 1}
	t.add("Login fails with SSO", "", "bug")
	t.add("Duplicate: login fails with SSO", "", "bug")
	t.add("Add dark mode", "", "feature")
	t.add("Crash when the cart is empty", "", "bug")
	return t
}

func (t *tracker) add(title, body string, labels ...string) *Issue {
	if labels == nil {
		labels = []string{}
	}
	is := &Issue{ID: t.nextID, Title: title, Body: body, State: "open", Labels: labels}
	t.nextID++
	t.issues = append(t.issues, is)
	return is
}

// ListIn filters list_issues.
type ListIn struct {
	State string `json:"state,omitempty" jsonschema:"open or closed; all issues when empty"`
	Label string `json:"label,omitempty" jsonschema:"only issues with this label"`
}

// ListOut is list_issues' answer.
type ListOut struct {
	Issues []Issue `json:"issues"`
}

func (t *tracker) list(_ context.Context, _ *mcp.CallToolRequest, in ListIn) (*mcp.CallToolResult, ListOut, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := ListOut{Issues: []Issue{}}
	for _, is := range t.issues {
		if (in.State == "" || is.State == in.State) && (in.Label == "" || slices.Contains(is.Labels, in.Label)) {
			out.Issues = append(out.Issues, *is)
		}
	}
	return nil, out, nil
}

// CreateIn is create_issue's arguments.
type CreateIn struct {
	Title  string   `json:"title" jsonschema:"a one-line summary"`
	Body   string   `json:"body,omitempty" jsonschema:"the details"`
	Labels []string `json:"labels,omitempty"`
}

func (t *tracker) create(_ context.Context, _ *mcp.CallToolRequest, in CreateIn) (*mcp.CallToolResult, Issue, error) {
	if in.Title == "" {
		return nil, Issue{}, fmt.Errorf("title must not be empty")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return nil, *t.add(in.Title, in.Body, in.Labels...), nil
}

// CloseIn is close_issue's arguments.
type CloseIn struct {
	ID      int    `json:"id"`
	Comment string `json:"comment,omitempty" jsonschema:"added to the issue as it closes"`
}

// An error returned by a handler reaches the client as an error result
// (isError), which Enclave turns into a catchable TOOL_ERROR.
func (t *tracker) close(_ context.Context, _ *mcp.CallToolRequest, in CloseIn) (*mcp.CallToolResult, Issue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, is := range t.issues {
		if is.ID != in.ID {
			continue
		}
		if is.State == "closed" {
			return nil, Issue{}, fmt.Errorf("issue %d is already closed", in.ID)
		}
		is.State = "closed"
		if in.Comment != "" {
			is.Comments = append(is.Comments, in.Comment)
		}
		return nil, *is, nil
	}
	return nil, Issue{}, fmt.Errorf("issue %d does not exist", in.ID)
}

func main() {
	t := newTracker()
	s := mcp.NewServer(&mcp.Implementation{Name: "tracker", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "list_issues", Description: "List issues, optionally by state and label."}, t.list)
	mcp.AddTool(s, &mcp.Tool{Name: "create_issue", Description: "Open a new issue and return it."}, t.create)
	mcp.AddTool(s, &mcp.Tool{Name: "close_issue", Description: "Close an open issue, with an optional comment."}, t.close)
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Printf("tracker-server: %v", err)
		os.Exit(1)
	}
}
