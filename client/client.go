// Package client is the Go client of Enclave's HTTP API, over the supervisor's
// Unix socket or a broker's TCP port. It runs a script end to end (Execute),
// answers the script's tool calls with a handler function, and survives a broken
// event stream by reconnecting with backoff and resuming after the last event it
// saw, so no event is lost or seen twice.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configure a Client. Set exactly one of Socket and BaseURL.
type Options struct {
	// Socket is the path of the supervisor's Unix socket.
	Socket string
	// BaseURL is a broker's address, such as "http://127.0.0.1:8080".
	BaseURL string
	// APIKey is sent as a bearer token (brokers require one; the socket ignores it).
	APIKey string
	// RequestTimeout bounds every request that is not a stream, and the wait for a
	// stream's response headers. Default 10s.
	RequestTimeout time.Duration
	// MaxAttempts is how many times a broken stream is reconnected, and a tool
	// result re-sent, before giving up. A reconnect that reads anything resets
	// the count. Default 5.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry. Default 100ms.
	InitialBackoff time.Duration
	// BackoffMultiplier grows the wait after each failed retry. Default 2.
	BackoffMultiplier float64
	// MaxBackoff caps the wait before jitter is applied. Default 5s.
	MaxBackoff time.Duration
	// Jitter spreads each wait uniformly over ±Jitter of it, 0..1, so clients cut
	// off together do not come back together. Default 0.2.
	Jitter float64
	// StreamIdleTimeout is how long a stream may stay silent (servers send a
	// heartbeat every 5s) before it counts as broken. Default 30s.
	StreamIdleTimeout time.Duration
	// HTTPClient replaces the client built from Socket or BaseURL. Its Timeout
	// must be 0: it would cut long event streams.
	HTTPClient *http.Client
}

// Defaults of Options.
const (
	DefaultRequestTimeout    = 10 * time.Second
	DefaultMaxAttempts       = 5
	DefaultInitialBackoff    = 100 * time.Millisecond
	DefaultBackoffMultiplier = 2.0
	DefaultMaxBackoff        = 5 * time.Second
	DefaultJitter            = 0.2
	DefaultStreamIdleTimeout = 30 * time.Second
)

// Client talks to one Enclave endpoint. It is safe for concurrent use.
type Client struct {
	opts    Options
	base    string // scheme://host, no trailing slash
	hc      *http.Client
	backoff backoff
}

// New returns a Client for opts, after checking them.
func New(opts Options) (*Client, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, hc: opts.HTTPClient, backoff: newBackoff(opts)}
	if opts.Socket != "" {
		// The host is never resolved: every connection dials the socket.
		c.base = "http://enclave"
		if c.hc == nil {
			c.hc = &http.Client{Transport: socketTransport(opts.Socket)}
		}
		return c, nil
	}
	c.base, err = checkBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: tcpTransport()}
	}
	return c, nil
}

// withDefaults fills zero options and refuses impossible ones.
func withDefaults(o Options) (Options, error) {
	if (o.Socket == "") == (o.BaseURL == "") {
		return o, errors.New("client: set exactly one of Socket and BaseURL")
	}
	if o.MaxAttempts < 0 || o.RequestTimeout < 0 || o.InitialBackoff < 0 || o.MaxBackoff < 0 ||
		o.StreamIdleTimeout < 0 || o.BackoffMultiplier < 0 {
		return o, errors.New("client: negative option")
	}
	if o.Jitter < 0 || o.Jitter > 1 {
		return o, fmt.Errorf("client: jitter %v outside 0..1", o.Jitter)
	}
	o.RequestTimeout = orDefault(o.RequestTimeout, DefaultRequestTimeout)
	o.InitialBackoff = orDefault(o.InitialBackoff, DefaultInitialBackoff)
	o.MaxBackoff = orDefault(o.MaxBackoff, DefaultMaxBackoff)
	o.StreamIdleTimeout = orDefault(o.StreamIdleTimeout, DefaultStreamIdleTimeout)
	o.MaxAttempts = orDefault(o.MaxAttempts, DefaultMaxAttempts)
	o.BackoffMultiplier = orDefault(o.BackoffMultiplier, DefaultBackoffMultiplier)
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	return o, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func checkBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("client: base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("client: base url %q: want http(s)://host:port", s)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// idleConns keeps enough idle connections for a busy caller (a benchmark runs 16
// sessions at once, each with a stream and tool results) to reuse them.
const idleConns = 64

func socketTransport(path string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:        idleConns,
		MaxIdleConnsPerHost: idleConns,
		IdleConnTimeout:     90 * time.Second,
	}
}

func tcpTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = idleConns
	t.MaxIdleConnsPerHost = idleConns
	return t
}

// Close releases idle connections. In-flight calls are not affected.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// newRequest builds a request to path with body marshalled as JSON (if not nil).
func (c *Client) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	return req, nil
}

// doJSON sends a non-stream request under RequestTimeout and decodes a 2xx answer
// into out (if not nil); any other answer becomes an error (see decodeError).
func (c *Client) doJSON(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// closeBody drains a little of what is left so the connection can be reused.
func closeBody(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 4<<10)
	_ = b.Close()
}

// Cancel ends a running session; the session's stream then ends with CANCELLED.
func (c *Client) Cancel(ctx context.Context, sessionID string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(sessionID), nil, nil)
}

// Health returns nil when the server answers GET /healthz with 200.
func (c *Client) Health(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodGet, "/healthz", nil, nil)
}

// ErrNotReady is returned (wrapped, with the server's reason) by Ready when the
// server is up but cannot take work.
var ErrNotReady = errors.New("not ready")

// Ready returns nil when the server can take work, an error wrapping ErrNotReady
// with the server's reason when it cannot, or the error that kept it from asking.
func (c *Client) Ready(ctx context.Context) error {
	err := c.doJSON(ctx, http.MethodGet, "/readyz", nil, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable {
		var body struct{ Reason string }
		_ = json.Unmarshal([]byte(se.Body), &body)
		return fmt.Errorf("%w: %s", ErrNotReady, body.Reason)
	}
	return err
}
