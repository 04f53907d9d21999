package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RestartAPIServer stops kube-apiserver (SIGTERM, as an upgrade of the
// control plane does, SIGKILL 10 s later) and starts it again with the same arguments,
// certificates and etcd, and returns once it serves requests again, with
// how long it did not. Every client, the controller's included, sees its
// connections close and is refused until then.
//
// Why not envtest's own Stop and Start: a restarted envtest API server gets
// a new serving CA, which no kubeconfig already written trusts. The
// process is found by its binary and secure port in /proc (Linux only);
// the new one is stopped with the other components.
func (c *Cluster) RestartAPIServer(ctx context.Context, out io.Writer) (time.Duration, error) {
	as := c.env.ControlPlane.APIServer
	if as == nil || as.SecureServing.Port == "" {
		return 0, errors.New("no API server is running")
	}
	pid, args, err := findProcess(as.Path, "--secure-port="+as.SecureServing.Port)
	if err != nil {
		return 0, err
	}
	// The start time tells this process from a later one given its PID.
	started, ok := processStart(pid)
	if !ok {
		return 0, errors.New("kube-apiserver ended before it was stopped")
	}
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	// envtest started it: its exit is not ours to wait for, but its
	// port must be free before the new one binds it. It drains its
	// requests first; after 10 s it is killed, as a kubelet would.
	for deadline, killed := time.Now().Add(10*time.Second), false; ; {
		if now, ok := processStart(pid); !ok || now != started {
			break
		}
		if !killed && time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = true
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("kube-apiserver did not stop: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := c.startProcess(args[0], "make testbin", out, args[1:]...); err != nil {
		return 0, fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	for {
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{}); err == nil {
			return time.Since(stopped), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("kube-apiserver did not come back: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findProcess returns the process running binary with arg among its
// arguments, and its command line.
func findProcess(binary, arg string) (int, []string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		if args[0] != binary {
			continue
		}
		for _, a := range args[1:] {
			if a == arg {
				return pid, args, nil
			}
		}
	}
	return 0, nil, fmt.Errorf("no process of %s with %s", binary, arg)
}

// processStart returns the start time of process pid (field 22 of its
// stat, in clock ticks since boot); ok is false when it does not run (a
// zombie does not).
func processStart(pid int) (start string, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, the start time the 20th.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" {
		return "", false
	}
	return fields[19], true
}
