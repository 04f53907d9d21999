// Package localcluster starts a small but real Kubernetes control plane on
// loopback, with no Docker and no download: etcd and kube-apiserver (through
// envtest), kube-controller-manager and kube-scheduler, all built from the Go
// module proxy by `make localbin`, and kwok simulating nodes so that
// Deployments become Available and Jobs complete without containers.
//
// `make run` and the end-to-end tests both start it through Start.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options configure the control plane.
type Options struct {
	// BinDir holds kube-apiserver, etcd, kube-controller-manager and
	// kube-scheduler.
	BinDir string
	// KwokDir holds the kwok binary and its stages/ folder.
	KwokDir string
	// CRDPaths are folders of CRDs installed once the API server is up.
	CRDPaths []string
	// Scheme of the admin client; its types are also used to install CRDs.
	Scheme *runtime.Scheme
	// Logs receives the output of the control plane components; discarded
	// when nil.
	Logs io.Writer
	// PodLog is the log every simulated container has, as `kubectl logs`
	// reads it through the API server from kwok; a line saying that kwok
	// simulates the container when empty.
	PodLog string
}

// Cluster is a running control plane.
type Cluster struct {
	// Client is an uncached admin client.
	Client client.Client
	// KubeconfigPath is an admin kubeconfig file, for tools and for the
	// controller binary.
	KubeconfigPath string

	env   *envtest.Environment
	dir   string
	procs []*exec.Cmd
}

// Start brings the control plane up and returns when the nodes are Ready.
// On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Logs == nil {
		opts.Logs = io.Discard
	}
	// The components write concurrently.
	opts.Logs = &syncWriter{w: opts.Logs}
	c = &Cluster{env: &envtest.Environment{
		BinaryAssetsDirectory: opts.BinDir,
		CRDDirectoryPaths:     opts.CRDPaths,
		ErrorIfCRDPathMissing: true,
		CRDInstallOptions:     envtest.CRDInstallOptions{Scheme: opts.Scheme},
	}}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if c.dir, err = os.MkdirTemp("", "stageset-localcluster-"); err != nil {
		return nil, err
	}
	// Pod logs: the API server asks the kubelet of the pod's node, here
	// kwok's server at the node's InternalIP (loopback).
	c.env.ControlPlane.GetAPIServer().Configure().Set("kubelet-preferred-address-types", "InternalIP")
	if _, err = c.env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}

	// One admin identity for everything: kube-controller-manager,
	// kube-scheduler, kwok, the controller and the user.
	admin, err := c.env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	cfg := admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.KubeconfigPath = filepath.Join(c.dir, "kubeconfig")
	if err = os.WriteFile(c.KubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: opts.Scheme}); err != nil {
		return nil, err
	}

	if err = c.startComponents(opts); err != nil {
		return nil, err
	}
	if err = c.createNodes(ctx, nodes); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) startComponents(opts Options) error {
	stages, err := filepath.Glob(filepath.Join(opts.KwokDir, "stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return fmt.Errorf("no kwok stages in %s: run `make localbin`", filepath.Join(opts.KwokDir, "stages"))
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	logsConfig, err := c.writePodLogs(opts.PodLog)
	if err != nil {
		return err
	}
	// kwok serves the kubelet API (logs) on the port its nodes advertise.
	kwokArgs := []string{"--kubeconfig=" + c.KubeconfigPath, "--manage-all-nodes=true",
		fmt.Sprintf("--server-address=127.0.0.1:%d", port), "--node-ip=127.0.0.1", fmt.Sprintf("--node-port=%d", port),
		"--config=" + logsConfig}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}

	components := []struct {
		bin  string
		args []string
	}{
		{filepath.Join(opts.BinDir, "kube-controller-manager"), []string{
			"--kubeconfig=" + c.KubeconfigPath,
			// The token controller needs a signing key the bare API server
			// does not have; pods here never mount tokens.
			"--controllers=*,-serviceaccount-token",
			"--use-service-account-credentials=false",
			"--leader-elect=false",
			"--secure-port=0",
		}},
		{filepath.Join(opts.BinDir, "kube-scheduler"), []string{
			"--kubeconfig=" + c.KubeconfigPath,
			"--leader-elect=false",
			"--secure-port=0",
		}},
		{filepath.Join(opts.KwokDir, "kwok"), kwokArgs},
	}
	for _, comp := range components {
		out := &prefixWriter{prefix: filepath.Base(comp.bin), w: opts.Logs}
		if err := c.startProcess(comp.bin, "make localbin", out, comp.args...); err != nil {
			return err
		}
	}
	return nil
}

// startProcess starts bin in its own process group, so that a Ctrl-C of the
// terminal reaches the launcher, which stops the processes in order (the
// last started first). makeTarget builds bin when it is missing.
func (c *Cluster) startProcess(bin, makeTarget string, out io.Writer, args ...string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w: run `%s`", err, makeTarget)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// writePodLogs writes the log of every simulated container, in the CRI
// format kubelets read, and the kwok configuration serving it; it returns
// the configuration's path.
func (c *Cluster) writePodLogs(text string) (string, error) {
	if text == "" {
		text = "(no container runs here: kwok simulates this pod)"
	}
	var log strings.Builder
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	for line := range strings.Lines(strings.TrimRight(text, "\n") + "\n") {
		fmt.Fprintf(&log, "%s stdout F %s", stamp, line)
	}
	logFile := filepath.Join(c.dir, "pod.log")
	if err := os.WriteFile(logFile, []byte(log.String()), 0o600); err != nil {
		return "", err
	}
	config := fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: every-container
spec:
  logs:
  - logsFile: %q
`, logFile)
	configFile := filepath.Join(c.dir, "kwok-logs.yaml")
	return configFile, os.WriteFile(configFile, []byte(config), 0o600)
}

// freePort returns a loopback TCP port free at the time of the call.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// nodes is the number of simulated nodes.
const nodes = 2

// createNodes registers simulated nodes for kwok and waits until they are
// Ready and schedulable.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("kwok-node-%d", i),
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux"},
		}}
		if err := c.Client.Create(ctx, node); err != nil {
			return fmt.Errorf("creating node %s: %w", node.Name, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ready, err := c.readyNodes(ctx)
		if err == nil && ready == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d kwok nodes Ready after a minute (%v): is kwok running?", ready, n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) readyNodes(ctx context.Context) (int, error) {
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return 0, err
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, nil
}

// Stop stops the components in reverse order, then kube-apiserver and etcd,
// and removes the working folder.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		stopProcess(c.procs[i])
	}
	c.procs = nil
	if c.env != nil {
		errs = append(errs, c.env.Stop())
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// stopProcess sends SIGTERM, and SIGKILL after ten seconds.
func stopProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// KwokVersion is the kwok release `make localbin` builds (KWOK_VERSION in
// the Makefile).
const KwokVersion = "v0.8.0"

// KwokDir returns the folder of the kwok binary and its stages in the
// checkout at root.
func KwokDir(root string) string {
	return filepath.Join(root, "bin", "kwok", KwokVersion)
}

// syncWriter serialises writes from several processes' output pipes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// prefixWriter prefixes every line with the component's name.
type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+": "+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
