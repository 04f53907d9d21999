package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// apiServer is an API server the scenarios run against, and the artifact
// server its sources point at: the test API server of internal/testenv for
// most scenarios, the local control plane of internal/localcluster for the
// mixed rollout, whose Deployments need controllers and nodes to become
// healthy.
type apiServer struct {
	// Config reaches the API server as cluster admin.
	Config *rest.Config
	// Scheme has the built-in, Flux source and StageSet types.
	Scheme *kruntime.Scheme
	// Artifacts serves artifact tarballs on loopback.
	Artifacts *testenv.ArtifactServer
}

// localBinaries returns an error naming `make localbin` when a binary of
// the local control plane is missing from the checkout at root.
func localBinaries(root string) error {
	bins := []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"}
	var missing []error
	for _, bin := range bins {
		if _, err := os.Stat(filepath.Join(testenv.AssetsDirFor(root), bin)); err != nil {
			missing = append(missing, err)
		}
	}
	if _, err := os.Stat(filepath.Join(localcluster.KwokDir(root), "kwok")); err != nil {
		missing = append(missing, err)
	}
	if stages, _ := filepath.Glob(filepath.Join(localcluster.KwokDir(root), "stages", "*.yaml")); len(stages) == 0 {
		missing = append(missing, fmt.Errorf("no kwok stages in %s", filepath.Join(localcluster.KwokDir(root), "stages")))
	}
	if len(missing) > 0 {
		return fmt.Errorf("the mixed scenario runs on the local control plane, whose binaries are missing (run `make localbin`): %w",
			errors.Join(missing...))
	}
	return nil
}

// startLocal starts the local control plane (kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler and kwok nodes) and an artifact
// server; the components log into dir. stop stops both.
func startLocal(ctx context.Context, dir string) (srv *apiServer, stop func(), err error) {
	root := testenv.RepoRoot()
	if err := localBinaries(root); err != nil {
		return nil, nil, err
	}
	logs, err := os.Create(filepath.Join(dir, "localcluster.log"))
	if err != nil {
		return nil, nil, err
	}
	s := scheme.New()
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		BinDir:   testenv.AssetsDirFor(root),
		KwokDir:  localcluster.KwokDir(root),
		CRDPaths: testenv.CRDPathsFor(root),
		Scheme:   s,
		Logs:     logs,
	})
	if err != nil {
		logs.Close()
		return nil, nil, fmt.Errorf("starting the local control plane (its log: %s): %w", logs.Name(), err)
	}
	stop = func() {
		_ = cluster.Stop()
		logs.Close()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.KubeconfigPath)
	if err != nil {
		stop()
		return nil, nil, err
	}
	artifacts, err := testenv.NewArtifactServer()
	if err != nil {
		stop()
		return nil, nil, err
	}
	stopCluster := stop
	stop = func() {
		artifacts.Close()
		stopCluster()
	}
	return &apiServer{Config: cfg, Scheme: s, Artifacts: artifacts}, stop, nil
}
