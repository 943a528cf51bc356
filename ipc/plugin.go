// Package ipc wires the supervisor to its worker processes through hashicorp/go-plugin
// over gRPC: the handshake, the plugin definition and the per-run stream's message
// size limits. It imports neither side of the boundary.
package ipc

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// PluginName is the one plugin a worker process serves.
const PluginName = "worker"

// Handshake guards the hidden worker subcommand: go-plugin refuses to serve unless the
// parent set the cookie, so running `enclave worker` by hand prints an explanation and
// exits instead of waiting on stdin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ENCLAVE_WORKER_COOKIE",
	MagicCookieValue: "a3c1f0e6-enclave-worker-7d52b9",
}

// MaxMessageBytes bounds one gRPC message either way. The largest legitimate message
// is a result or tool value at the PERMISSIVE level (16 MiB serialized) plus framing.
const MaxMessageBytes = 24 << 20

// WorkerPlugin is the go-plugin definition of a worker. The server side sets Impl; the
// client side leaves it nil and gets an ipcpb.WorkerClient from Dispense.
type WorkerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl ipcpb.WorkerServer
}

// GRPCServer registers the worker service in the child process.
func (p *WorkerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	ipcpb.RegisterWorkerServer(s, p.Impl)
	return nil
}

// GRPCClient returns the supervisor's handle on a worker.
func (p *WorkerPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return ipcpb.NewWorkerClient(c), nil
}

// Plugins is the plugin set both sides agree on.
func Plugins(impl ipcpb.WorkerServer) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &WorkerPlugin{Impl: impl}}
}

// DialOptions are the gRPC options the supervisor dials a worker with.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	)}
}

// NewServer builds the worker's gRPC server with the same message size limits.
func NewServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	)
	return grpc.NewServer(opts...)
}

// Serve runs the worker side until the parent goes away. It blocks.
func Serve(impl ipcpb.WorkerServer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         Plugins(impl),
		GRPCServer:      NewServer,
	})
}
