// Package faults runs the controller binary as a separate process against
// the local control plane of internal/localcluster and hurts it: SIGKILLs
// at random points of a rollout, a leader killed in the middle of a
// migration. What must hold afterwards is the controller's contract
// (docs/reliability.md): every migration ran once, every action once per
// revision set, every object in exactly one inventory, nothing orphaned,
// nothing outside the inventory deleted.
//
// `make test` runs short versions (a few kills); `make reliability` runs
// the long ones (FAULTS_KILLS, FAULTS_SEED).
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	cluster   *localcluster.Cluster
	artifacts *testenv.ArtifactServer
	// restConfig is the admin identity, for watches; kube its client. Both
	// without client-side throttling: the load test creates thousands of
	// objects and moves sources as fast as source-controller would.
	restConfig *rest.Config
	kube       client.Client
	// controllerBinary is the controller built from this checkout.
	controllerBinary string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// The admin client's library logs nothing the tests read.
	ctrllog.SetLogger(logr.Discard())
	root := testenv.RepoRoot()
	// work holds the binary and the control plane's log.
	work, err := os.MkdirTemp("", "stageset-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	if controllerBinary, err = testenv.BuildController(work); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
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
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: starting the local control plane:", err)
		return 1
	}
	defer cluster.Stop()
	if restConfig, err = clientcmd.BuildConfigFromFlags("", cluster.KubeconfigPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	restConfig.QPS = -1
	if kube, err = client.New(restConfig, client.Options{Scheme: scheme.New()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if artifacts, err = testenv.NewArtifactServer(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer artifacts.Close()
	return m.Run()
}
