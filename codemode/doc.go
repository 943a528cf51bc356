// Package codemode connects Enclave to the Model Context Protocol in both
// directions.
//
// MCP servers become tool providers: a `mcp` tool entry in the config names a
// server started as a command (stdio) or reached at a URL (streamable HTTP), and
// a script's callTool('prefix:name', args) becomes that server's tools/call. The
// provider connects on first use, reconnects with backoff when the server dies,
// bounds each call with the entry's timeout and turns the result into a plain
// value.
//
// Enclave becomes an MCP server: one run_code tool runs a script on a supervisor,
// and its description carries TypeScript-style declarations of every tool the
// script may call and a short primer of the language, so one tool gives a model
// the whole API ("code mode").
package codemode
