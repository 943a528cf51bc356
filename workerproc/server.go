// Package workerproc is the child side of Enclave: a worker process that runs one
// AgentScript at a time, each in a fresh goja runtime, and talks to the supervisor only
// through the ipc stream. It never imports the supervisor or the broker.
package workerproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/dop251/goja"
	"golang.org/x/sys/unix"

	"github.com/enclave-go/enclave/ipc"
	"github.com/enclave-go/enclave/ipc/ipcpb"
)

// programCacheSize bounds the compiled-program cache. Agents resend the same scripts
// often; a full cache is simply emptied (cheap, and no eviction bookkeeping per run).
const programCacheSize = 256

// Server runs scripts for the supervisor, one run at a time. The supervisor starts a
// run only after it has the previous run's last message, but the previous handler may
// still be returning then, so a new stream waits for it rather than failing.
type Server struct {
	ipcpb.UnimplementedWorkerServer

	busy sync.Mutex  // held for the length of a run
	idle *time.Timer // returns freed memory to the system once no run comes

	cacheMu  sync.Mutex
	programs map[string]*goja.Program
}

// NewServer returns a worker server with an empty program cache.
func NewServer() *Server {
	return &Server{programs: make(map[string]*goja.Program)}
}

// Main is the hidden `enclave worker` subcommand. go-plugin checks the handshake
// cookie and refuses to run when started by hand.
func Main() int {
	// The worker's own goroutines (gRPC, the run) must stay small; a runaway native
	// recursion should fail this process fast, not grow a gigabyte of stack.
	debug.SetMaxStack(256 << 20)
	// Each run leaves about half a megabyte of garbage (a fresh runtime and its
	// frozen intrinsics) over a live heap of a few megabytes: collecting at every
	// doubling spends a fifth of the worker's CPU on GC. The per-run memory limit
	// still forces collection before the heap nears the run's budget.
	debug.SetGCPercent(400)
	harden()
	go exitWithParent(os.Getppid())
	ipc.Serve(NewServer())
	return 0
}

// exitWithParent ends the worker when the supervisor is gone. Pdeathsig alone is not
// enough: it fires when the thread that started the worker exits, not the process,
// and a supervisor killed with SIGKILL must still leave no worker behind.
func exitWithParent(parent int) {
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}

// Info reports the process id and current heap size.
func (s *Server) Info(context.Context, *ipcpb.InfoRequest) (*ipcpb.InfoReply, error) {
	return &ipcpb.InfoReply{Pid: int32(os.Getpid()), HeapBytes: heapBytes()}, nil
}

// Run serves one run over its stream: a Start, then tool results; it sends console
// output and tool calls, and ends with one Final or Failure.
func (s *Server) Run(stream ipcpb.Worker_RunServer) error {
	s.busy.Lock()
	defer s.busy.Unlock()
	if s.idle != nil {
		s.idle.Stop()
	}

	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("receive start: %w", err)
	}
	start := first.GetStart()
	if start == nil {
		return errors.New("first message of a run must be start")
	}
	inbox := make(chan *ipcpb.ToolResult, 16)
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go receive(ctx, cancel, stream, inbox)

	out := s.execute(ctx, start, stream.Send, inbox)
	s.idleSoon()
	return stream.Send(out)
}

// idleGrace is how long a worker waits without a run before it hands freed heap
// back to the system: an idle worker should cost little resident memory, but doing
// it after every run would cost a forced collection per run.
const idleGrace = 2 * time.Second

func (s *Server) idleSoon() {
	if s.idle == nil {
		s.idle = time.AfterFunc(idleGrace, debug.FreeOSMemory)
		return
	}
	s.idle.Reset(idleGrace)
}

// receive forwards tool results to the run until the host closes its side. The host
// closing early (cancel, or the supervisor going away) cancels the run.
func receive(ctx context.Context, cancel context.CancelFunc, stream ipcpb.Worker_RunServer, inbox chan<- *ipcpb.ToolResult) {
	defer cancel()
	for {
		msg, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			<-ctx.Done() // half-closed: keep the run going until it ends
			return
		}
		res := msg.GetToolResult()
		if res == nil {
			continue
		}
		select {
		case inbox <- res:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) compile(start *ipcpb.Start) (*goja.Program, error) {
	s.cacheMu.Lock()
	prog, ok := s.programs[start.Hash]
	s.cacheMu.Unlock()
	if ok && start.Hash != "" {
		return prog, nil
	}
	prog, err := goja.Compile(scriptName, start.Source, true)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	if len(s.programs) >= programCacheSize {
		clear(s.programs)
	}
	s.programs[start.Hash] = prog
	s.cacheMu.Unlock()
	return prog, nil
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
var heapSampleMu sync.Mutex

// heapBytes is the live-and-unswept heap, read without stopping the world.
func heapBytes() int64 {
	heapSampleMu.Lock()
	defer heapSampleMu.Unlock()
	metrics.Read(heapSample)
	return int64(heapSample[0].Value.Uint64())
}

// stderr is the worker's real standard error. go-plugin points os.Stderr at a pipe
// of its own once it serves; the supervisor reads file descriptor 2.
var stderr = os.NewFile(2, "stderr")

// harden drops what a worker never needs: gaining privileges through exec, core
// dumps (they would hold script data), and more than a few file descriptors. A step
// the kernel refuses is reported on stderr, which the daemon logs.
func harden() {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(stderr, "worker: set no_new_privs:", err)
	}
	limits := []struct {
		res int
		val uint64
	}{{unix.RLIMIT_CORE, 0}, {unix.RLIMIT_NOFILE, 256}}
	for _, l := range limits {
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.val, Max: l.val}); err != nil {
			fmt.Fprintln(stderr, "worker: set rlimit:", err)
		}
	}
}
