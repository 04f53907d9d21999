package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// controller is the controller binary run as a process, as a Deployment
// would run it, killed and restarted at will. Every start appends to one
// log, shown when the test fails.
type controller struct {
	t    *testing.T
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	// exited is closed when the current process has ended.
	exited chan struct{}
	// starts counts the processes started.
	starts int
}

// newController returns a controller run with the admin kubeconfig and args
// (after the defaults), not started yet; it is killed when the test ends.
func newController(t *testing.T, name string, env []string, args ...string) *controller {
	t.Helper()
	c := &controller{t: t, env: env, log: filepath.Join(t.TempDir(), name+".log"), args: append([]string{
		"--kubeconfig=" + cluster.KubeconfigPath,
		"--integrity-key-secret=kube-system/stageset-controller-integrity-key",
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--enable-webhook=false",
		"--log-level=debug",
	}, args...)}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			if data, err := os.ReadFile(c.log); err == nil {
				if len(data) > 6000 {
					data = data[len(data)-6000:]
				}
				t.Logf("%s log (end):\n%s", name, data)
			}
		}
	})
	return c
}

// start starts a process; the previous one must have ended.
func (c *controller) start() {
	c.t.Helper()
	out, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(controllerBinary, c.args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd, c.exited, c.starts = cmd, make(chan struct{}), c.starts+1
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(c.exited)
}

// kill ends the process with SIGKILL, as the kernel's OOM killer or a
// node failure would: no deferred function runs, no lease is released.
func (c *controller) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("the controller did not end 30 s after SIGKILL")
	}
	c.cmd = nil
}

// running tells whether the current process is alive.
func (c *controller) running() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}
