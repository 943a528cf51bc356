package codemode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// resultValue turns a tool result into the plain value the script gets: the
// structured content when the server gives it, else the text parsed as JSON when
// it is JSON, else the text itself. An error result becomes an error whose
// message is the result's text.
func resultValue(res *mcp.CallToolResult) (json.RawMessage, error) {
	text := resultText(res.Content)
	if res.IsError {
		if text == "" {
			text = "the tool reported an error without a message"
		}
		return nil, errors.New(text)
	}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("encode structured content: %w", err)
		}
		return b, nil
	}
	if trimmed := strings.TrimSpace(text); trimmed != "" && json.Valid([]byte(trimmed)) {
		return json.RawMessage(trimmed), nil
	}
	if text == "" && len(res.Content) > 0 {
		// Images, audio and resources have no plain form: the script gets the
		// content blocks as the protocol writes them.
		return json.Marshal(res.Content)
	}
	return json.Marshal(text)
}

// resultText joins the text blocks of a result, one per line.
func resultText(content []mcp.Content) string {
	var parts []string
	for _, c := range content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "\n")
}
