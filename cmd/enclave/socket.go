package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/enclave-go/enclave/api"
	"github.com/enclave-go/enclave/limits"
)

// listenUnix opens the API socket: its directory made 0750 if missing, a stale socket
// from a dead daemon removed (a live one is refused), then mode and owner applied.
func listenUnix(path string, access limits.SocketAccess) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := applyAccess(path, access); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		_ = c.Close()
		return fmt.Errorf("another daemon is listening on %s", path)
	}
	return os.Remove(path)
}

func applyAccess(path string, a limits.SocketAccess) error {
	mode := os.FileMode(a.Mode)
	if mode == 0 {
		mode = os.FileMode(limits.DefaultSocketMode)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod socket: %w", err)
	}
	if a.Owner == "" && a.Group == "" {
		return nil
	}
	uid, gid, err := lookupOwner(a.Owner, a.Group)
	if err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown socket: %w", err)
	}
	return nil
}

func lookupOwner(owner, group string) (int, int, error) {
	uid, gid := -1, -1
	if owner != "" {
		id, err := strconv.Atoi(owner)
		if err != nil {
			u, lerr := user.Lookup(owner)
			if lerr != nil {
				return 0, 0, fmt.Errorf("socket owner: %w", lerr)
			}
			id, _ = strconv.Atoi(u.Uid)
		}
		uid = id
	}
	if group != "" {
		id, err := strconv.Atoi(group)
		if err != nil {
			g, lerr := user.LookupGroup(group)
			if lerr != nil {
				return 0, 0, fmt.Errorf("socket group: %w", lerr)
			}
			id, _ = strconv.Atoi(g.Gid)
		}
		gid = id
	}
	return uid, gid, nil
}

type peerKey struct{}

// withPeerCred reads the connecting process's uid and gid (SO_PEERCRED) once per
// connection.
func withPeerCred(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, cred)
}

// peerCheck refuses peers whose uid and gid are both off the allow-lists (when set).
func peerCheck(next http.Handler, a limits.SocketAccess) http.Handler {
	if len(a.AllowUIDs) == 0 && len(a.AllowGIDs) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(peerKey{}).(*syscall.Ucred)
		if cred != nil && (slices.Contains(a.AllowUIDs, cred.Uid) || slices.Contains(a.AllowGIDs, cred.Gid)) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(api.ErrorPayload{Code: api.CodeUnauthorized, Message: "this peer's uid and gid are not allowed on the socket"})
	})
}
