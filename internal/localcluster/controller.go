package localcluster

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// StartController runs the controller binary against the cluster with the
// admin kubeconfig; it is stopped with the cluster. Its output goes to out.
func (c *Cluster) StartController(binary string, out io.Writer, args ...string) error {
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("%w: run `make build`", err)
	}
	cmd := exec.Command(binary, append([]string{"--kubeconfig=" + c.KubeconfigPath}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the controller: %w", err)
	}
	// Stopped first: the controller goes before the control plane.
	c.procs = append(c.procs, cmd)
	return nil
}
