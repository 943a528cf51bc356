// Package limits owns Enclave's limit values: the four security levels, the YAML
// configuration file with its defaults and validation, per-worker cgroup control
// (v2, v1 or none) and the gopsutil RSS sampling that backs the cgroup up.
//
// It is a leaf package: it imports nothing else from this project, so the
// supervisor, the broker and the command line can all depend on it.
package limits
