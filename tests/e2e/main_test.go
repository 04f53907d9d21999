// Package e2e runs the controller binary against the local control plane of
// internal/localcluster, where Deployments really become Available, Jobs
// really complete and pods can be made to fail (kwok), so rollouts are tested
// end to end. `make test` builds the binaries it needs (`make localbin`).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	cluster   *localcluster.Cluster
	artifacts *testenv.ArtifactServer
	// controllerBinary is the controller built from this checkout.
	controllerBinary string
)

// podLog is what every simulated container logs.
const podLog = "migrating schema to version 2\nERROR: relation \"orders\" is locked by another session"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root := testenv.RepoRoot()
	work, err := os.MkdirTemp("", "stageset-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	// The binary under test, built from this checkout.
	if controllerBinary, err = testenv.BuildController(work); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	logs, err := os.Create(filepath.Join(work, "cluster.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cluster, err = localcluster.Start(context.Background(), localcluster.Options{
		BinDir:   testenv.AssetsDirFor(root),
		KwokDir:  localcluster.KwokDir(root),
		CRDPaths: testenv.CRDPaths(),
		Scheme:   scheme.New(),
		Logs:     logs,
		PodLog:   podLog,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the local control plane:", err)
		return 1
	}
	defer cluster.Stop()

	controllerLog := os.Stderr
	if os.Getenv("E2E_QUIET") != "" || os.Getenv("TESTENV_DEBUG") == "" {
		if controllerLog, err = os.Create(filepath.Join(work, "controller.log")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := cluster.StartController(controllerBinary, controllerLog,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--enable-webhook=false",
		"--requeue-dependency=2s", "--log-level=debug"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	if artifacts, err = testenv.NewArtifactServer(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer artifacts.Close()

	code := m.Run()
	if code != 0 {
		// Keep the evidence of a failure.
		for _, f := range []string{logs.Name(), filepath.Join(work, "controller.log")} {
			if data, err := os.ReadFile(f); err == nil {
				fmt.Fprintf(os.Stderr, "==== %s (last 4 KiB)\n%s\n", filepath.Base(f), tail(data, 4096))
			}
		}
	}
	return code
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
