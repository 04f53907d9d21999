package build

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
)

func TestBuild_LeavesRootUnchanged(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"generated/web.yaml":     deploymentWeb,
		"own/kustomization.yaml": "resources: [worker.yaml]\n",
		"own/worker.yaml":        deploymentWorker,
	})
	before := snapshot(t, root)

	replicas := []kustomize.Patch{{
		Patch:  "- op: replace\n  path: /spec/replicas\n  value: 4\n",
		Target: &kustomize.Selector{Kind: "Deployment"},
	}}
	broken := []kustomize.Patch{{
		Patch:  "- op: remove\n  path: /spec/nothing\n",
		Target: &kustomize.Selector{Kind: "Deployment"},
	}}
	for _, in := range []Input{
		{Path: "generated", TargetNamespace: "tenant", Patches: replicas, Substitute: map[string]string{"a": "b"}},
		{Path: "own", TargetNamespace: "tenant", Patches: replicas},
		{Path: "generated", Patches: broken}, // a failed build leaves nothing either
		{Path: "own", Patches: broken},
	} {
		in.Root = root
		_, _ = Build(in)
	}

	g.Expect(snapshot(t, root)).To(Equal(before))
	_, err := os.Stat(filepath.Join(root, "generated", "kustomization.yaml"))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "no kustomization.yaml left behind")
}

func TestBuild_SamePathTwiceGetsItsOwnPatches(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{"app/web.yaml": deploymentWeb})

	// Two stages of one run on the same folder: the second must not see
	// the first's namespace or patches.
	first, err := Build(Input{Root: root, Path: "app", TargetNamespace: "one", Patches: []kustomize.Patch{{
		Patch:  "- op: replace\n  path: /spec/replicas\n  value: 7\n",
		Target: &kustomize.Selector{Kind: "Deployment"},
	}}})
	g.Expect(err).NotTo(HaveOccurred())
	second, err := Build(Input{Root: root, Path: "app"})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(ids(first)).To(Equal([]string{"Deployment/one/web"}))
	g.Expect(nested(first[0], "spec", "replicas")).To(Equal(int64(7)))
	g.Expect(ids(second)).To(Equal([]string{"Deployment/declared/web"}))
	g.Expect(nested(second[0], "spec", "replicas")).To(Equal(int64(1)))
}

func TestBuild_Concurrent(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/web.yaml":    deploymentWeb,
		"app/worker.yaml": deploymentWorker,
		"app/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {id: '${id}'}\n",
	})
	before := snapshot(t, root)

	const builds = 8
	var wg sync.WaitGroup
	errs := make([]error, builds)
	for i := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = checkConcurrentBuild(root, i)
		}()
	}
	wg.Wait()

	g := NewWithT(t)
	for i, err := range errs {
		g.Expect(err).NotTo(HaveOccurred(), "build %d", i)
	}
	g.Expect(snapshot(t, root)).To(Equal(before))
}

// checkConcurrentBuild builds the stage with a namespace, patch and
// variable unique to i and checks the result carries exactly those.
func checkConcurrentBuild(root string, i int) error {
	ns := fmt.Sprintf("ns-%d", i)
	objs, err := Build(Input{
		Root:            root,
		Path:            "app",
		TargetNamespace: ns,
		Patches: []kustomize.Patch{{
			Patch:  fmt.Sprintf("- op: replace\n  path: /spec/replicas\n  value: %d\n", i+10),
			Target: &kustomize.Selector{Kind: "Deployment", Name: "web"},
		}},
		Substitute: map[string]string{"id": ns},
	})
	if err != nil {
		return err
	}
	want := []string{"ConfigMap/" + ns + "/a", "Deployment/" + ns + "/web", "Deployment/" + ns + "/worker"}
	if got := ids(objs); fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("objects %v, want %v", got, want)
	}
	if got := nested(find(objs, "Deployment", "web"), "spec", "replicas"); got != int64(i+10) {
		return fmt.Errorf("web replicas %v, want %d", got, i+10)
	}
	if got := nested(find(objs, "ConfigMap", "a"), "data", "id"); got != ns {
		return fmt.Errorf("substituted id %v, want %s", got, ns)
	}
	return nil
}
