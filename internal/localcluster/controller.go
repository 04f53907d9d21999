package localcluster

import "io"

// StartController runs the controller binary against the cluster with the
// admin kubeconfig; it is stopped with the cluster, before the control
// plane. Its output goes to out. Running outside the cluster, it has no
// namespace of its own: its integrity key lives in kube-system.
func (c *Cluster) StartController(binary string, out io.Writer, args ...string) error {
	return c.startProcess(binary, "make build", out, append([]string{"--kubeconfig=" + c.KubeconfigPath,
		"--integrity-key-secret=kube-system/stageset-controller-integrity-key"}, args...)...)
}
