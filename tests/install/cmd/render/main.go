// Command render prints the chart's manifests for a release in
// stageset-system with the chart's default values, as `helm template` would,
// without a helm binary: tests/e2e installs them on the local control plane
// (the controller's module does not take the Helm library).
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
)

func main() {
	chartDir := flag.String("chart", "../../config/chart/stageset-controller", "the chart folder")
	namespace := flag.String("namespace", "stageset-system", "the release namespace")
	flag.Parse()
	if err := render(*chartDir, *namespace); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func render(chartDir, namespace string) error {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return err
	}
	opts := common.ReleaseOptions{Name: "stageset", Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, map[string]any{}, opts, nil)
	if err != nil {
		return err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(files[name]) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("---\n# Source: %s\n%s\n", name, files[name])
	}
	return nil
}
