// Package deploy holds no code: it is the home of Enclave's deployment files
// (example configs, Kubernetes manifests, Prometheus rules, a systemd unit and a
// Dockerfile) and of the tests that prove those files are well formed.
package deploy
