package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// runLabel scopes a controller process to the StageSets of one repetition
// (--watch-label-selector), so that a fresh process does not take up the
// StageSets earlier repetitions left in the API server.
const runLabel = "bench.stageset.io/run"

// extraControllerArgs are the -controller-args of the command line.
var extraControllerArgs []string

// controllerProcess is one controller process, talking to the API server
// through its own counting proxy.
type controllerProcess struct {
	cmd     *exec.Cmd
	proxy   *countingProxy
	logPath string
	started time.Time
	// exited is closed when the process ends; err is then its exit error.
	exited chan struct{}
	err    error
}

// startController starts the binary with --concurrent and the run's label
// selector; its output goes to a log file in dir, shown when it fails.
func startController(bin, dir string, admin *rest.Config, run string, concurrent int) (*controllerProcess, error) {
	proxy, err := startProxy(admin)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, run+".kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: proxy.addr}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	cfg.CurrentContext = "bench"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		proxy.Close()
		return nil, err
	}
	logPath := filepath.Join(dir, run+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		proxy.Close()
		return nil, err
	}
	defer logFile.Close()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--enable-webhook=false",
		"--metrics-bind-address=127.0.0.1:0",
		"--health-probe-bind-address=127.0.0.1:0",
		"--integrity-key-secret=kube-system/stageset-bench-key",
		"--watch-label-selector=" + runLabel + "=" + run,
		"--concurrent=" + strconv.Itoa(concurrent),
		"--log-level=error",
	}
	cmd := exec.Command(bin, append(args, extraControllerArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &controllerProcess{cmd: cmd, proxy: proxy, logPath: logPath, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		proxy.Close()
		return nil, fmt.Errorf("starting the controller: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Stop kills the process (its state is in the API server; nothing is lost
// that a benchmark needs) and closes its proxy.
func (p *controllerProcess) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.proxy.Close()
}

// Exited reports an early exit of the process with the end of its log.
func (p *controllerProcess) Exited() error {
	select {
	case <-p.exited:
		log, _ := os.ReadFile(p.logPath)
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		return fmt.Errorf("the controller exited (%v):\n%s", p.err, log)
	default:
		return nil
	}
}

// usage is what the process used so far.
type usage struct {
	// PeakRSS is VmHWM, in KiB.
	PeakRSS int64
	// CPU is user plus system time, in seconds.
	CPU float64
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go runs on.
const clockTicks = 100

// Usage reads VmHWM from /proc/<pid>/status and utime+stime from
// /proc/<pid>/stat.
func (p *controllerProcess) Usage() (usage, error) {
	var u usage
	pid := p.cmd.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			u.PeakRSS, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from the closing parenthesis: state is field 3, utime 14,
	// stime 15.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return u, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.CPU = float64(utime+stime) / clockTicks
	return u, nil
}
