package supervisor

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
)

// isolation is what a worker process is started with beyond its own process group:
// where the daemon runs as root, an empty network namespace (only a loopback
// interface, down) and an unprivileged uid and gid. Each step that is not permitted
// is logged once and skipped; the worker sets no_new_privs and its rlimits itself.
type isolation struct {
	netns atomic.Bool // cleared if the kernel refuses a new network namespace
	cred  *syscall.Credential
}

// defaultWorkerUser is the account workers run as when the daemon is root.
const defaultWorkerUser = "nobody"

func planIsolation(opts Options, log *slog.Logger) *isolation {
	iso := &isolation{}
	if os.Geteuid() != 0 {
		log.Info("daemon is not root: workers keep its uid and share its network namespace")
		return iso
	}
	iso.netns.Store(!opts.SharedNetwork)
	if opts.SharedNetwork {
		log.Warn("workers share the daemon's network namespace (sharedNetwork)")
	}
	iso.cred = workerCredential(opts.WorkerUser, opts.WorkerCommand[0], log)
	return iso
}

// workerCredential resolves the worker account and checks it can reach and execute
// the worker binary; otherwise workers stay root (logged).
func workerCredential(name, exe string, log *slog.Logger) *syscall.Credential {
	if name == "" {
		name = defaultWorkerUser
	}
	if name == "root" {
		log.Warn("workers run as root (workerUser: root)")
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		log.Warn("worker user not found; workers run as root", "user", name, "error", err)
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := reachable(exe); err != nil {
		log.Warn("worker binary is not executable by the worker user; workers run as root",
			"user", name, "error", err)
		return nil
	}
	log.Info("workers run as an unprivileged user", "user", name, "uid", uid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// reachable checks that anyone may traverse to and execute path: the worker user is
// neither owner nor group of a root-installed binary, so the "other" bits decide.
func reachable(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o001 == 0 {
		return fmt.Errorf("%s is not executable by others", abs)
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if di.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by others", dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// apply sets the isolation on a worker's start attributes.
func (iso *isolation) apply(attr *syscall.SysProcAttr) {
	if iso.netns.Load() {
		attr.Cloneflags |= syscall.CLONE_NEWNET
	}
	attr.Credential = iso.cred
}
