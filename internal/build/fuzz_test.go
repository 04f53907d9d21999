package build

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// fuzzRoot returns a fresh directory (not t.TempDir: kustomize's file
// system in memory refuses the '#' of a seed's name).
func fuzzRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fuzzbuild")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// checkBuildError fails unless err is a *Error with a readable message.
func checkBuildError(t *testing.T, err error) {
	t.Helper()
	var buildErr *Error
	if !errors.As(err, &buildErr) || err.Error() == "" || strings.Contains(err.Error(), "%!") {
		t.Fatalf("build error %T %q is not a readable *build.Error", err, err)
	}
}

// substitutionTemplates hold ${var} at one place, the leaf at path: a value
// may change that leaf (Flux substitutes text, so "{a: 1}" there is an
// object and "true" a boolean) but nothing else of the object.
var substitutionTemplates = []struct {
	manifest string
	path     []string
}{
	{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  key: ${var}\n  other: x\n", []string{"data", "key"}},
	{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  key: \"${var}\"\n", []string{"data", "key"}},
	{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  annotations:\n    note: pre-${var}-post\n  labels:\n    app: web\n", []string{"metadata", "annotations", "note"}},
	{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels:\n    app: ${var:=fallback}\ndata:\n  k: v\n", []string{"metadata", "labels", "app"}},
	{"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: ${var:-1}\n  selector:\n    matchLabels: {app: web}\n", []string{"spec", "replicas"}},
}

// FuzzSubstitute substitutes one postBuild variable of any value, read
// through LoadVariables as the controller reads it, into built resources
// (toObjects, what Build does after kustomize: the kustomize build itself
// would only slow the fuzzing down). The value may make the substitution
// fail, with a *Error, or change the leaf it is substituted into; it may
// not add keys or objects anywhere else: LoadVariables promises that a
// value cannot break the YAML it is substituted into. A manifest of the
// fuzzer's own is also substituted: any failure is a *Error.
func FuzzSubstitute(f *testing.F) {
	for i, value := range []string{"plain", "", "{a: 1}", "x\ninjected: y", "x\rinjected: y", "x\r\n  injected: y",
		"x\u0085injected: y", "x\u2028injected: y", "x # comment", "'", "\"", "*alias", "&anchor x", "[1, 2]", "${var}",
		"a: b", "- item", "true", "!!binary aGk=", "x\tinjected: y", "---", "...", "|\n  block", "x\u2029  injected: y"} {
		f.Add(uint8(i), "var", value, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${var:=n}\ndata:\n  k: ${var}\n")
	}
	f.Add(uint8(0), "1bad", "x", "a: [\n")
	f.Add(uint8(2), "var", "x", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}}\ndata: {k: ${var}}\n")
	factory := resmap.NewFactory(provider.NewDefaultDepProvider().GetResourceFactory())
	f.Fuzz(func(t *testing.T, template uint8, name, value, manifest string) {
		vars, err := LoadVariables(context.Background(), nil, "apps", &stagesetv1.PostBuild{Substitute: map[string]string{name: value}})
		if err != nil {
			t.Fatalf("LoadVariables without referents: %v", err)
		}
		substitute := func(manifest string, vars map[string]string) ([]*unstructured.Unstructured, error) {
			resources, err := factory.NewResMapFromBytes([]byte(manifest))
			if err != nil {
				return nil, nil // kustomize refuses it before any substitution
			}
			return toObjects(resources, Input{Path: "app", Substitute: vars})
		}
		if _, err := substitute(manifest, vars); err != nil {
			checkBuildError(t, err)
		}

		tpl := substitutionTemplates[int(template)%len(substitutionTemplates)]
		got, err := substitute(tpl.manifest, map[string]string{"var": vars[name]})
		if err != nil {
			checkBuildError(t, err)
			return
		}
		want, err := substitute(tpl.manifest, map[string]string{"var": "neutral"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("value %q made %d objects of %d", value, len(got), len(want))
		}
		for _, objs := range [][]*unstructured.Unstructured{got, want} {
			unstructured.RemoveNestedField(objs[0].Object, tpl.path...)
		}
		if !reflect.DeepEqual(got[0].Object, want[0].Object) {
			g, _ := yaml.Marshal(got[0].Object)
			w, _ := yaml.Marshal(want[0].Object)
			t.Fatalf("value %q changed the object beyond %s:\n%s\nwant:\n%s", value, strings.Join(tpl.path, "."), g, w)
		}
	})
}

// outsideMarker is in a file next to the artifact root: no build may read
// it.
const outsideMarker = "outside-marker-7f3a"

// treeKustomizations are the kustomization.yaml files a random tree picks
// from: the first treeGood build (bases, sub-folders, patches, namespaces,
// components), the others go wrong or try every way out of the root.
var treeKustomizations = []string{
	"resources: [cm.yaml]\n",
	"resources: [sub]\n",
	"resources: [../base]\n",
	"resources: [cm.yaml, sub]\nnamespace: kns\n",
	"resources: [cm.yaml]\npatches:\n- patch: '[{\"op\": \"add\", \"path\": \"/data/p\", \"value\": \"${var}\"}]'\n  target: {kind: ConfigMap}\n",
	"resources: [cm.yaml]\ncomponents: [../comp]\n",
	"resources: [sub]\nnamePrefix: p-\n",
	"resources: [link.yaml]\n",
	"resources: [linkdir]\n",
	"configMapGenerator:\n- name: gen\n  files: [link.yaml]\n",
	"configMapGenerator:\n- name: gen\n  envs: [cm.yaml]\n",
	"resources: [../../outside/secret.yaml]\n",
	"resources: [../../../outside/secret.yaml]\n",
	"resources: [<outside>/secret.yaml]\n",
	"configMapGenerator:\n- name: gen\n  files: [../../outside/secret.yaml]\n",
	"resources: [cm.yaml]\npatches:\n- path: ../../outside/secret.yaml\n",
	"resources: [cm.yaml]\nopenapi:\n  path: ../../outside/secret.yaml\n",
	"resources: [cm.yaml]\nreplacements:\n- path: ../../outside/secret.yaml\n",
	"resources: [missing.yaml]\n",
	"resources: [.]\n",
	"kind: Kustomization\napiVersion: kustomize.config.k8s.io/v1beta1\nhelmCharts: [{name: x}]\n",
	"{",
}

// treeGood and docsGood count the entries that build.
const treeGood, docsGood = 7, 3

// pick returns a random entry of list, one of the first good ones three
// times in four.
func pick(rnd *rand.Rand, list []string, good int) string {
	if rnd.IntN(4) > 0 {
		return list[rnd.IntN(good)]
	}
	return list[rnd.IntN(len(list))]
}

// treeComponent is the kustomization of comp, a component.
const treeComponent = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n" +
	"- patch: '[{\"op\": \"add\", \"path\": \"/data/c\", \"value\": \"c\"}]'\n  target: {kind: ConfigMap}\n"

var treeDocs = []string{
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${var:=a}\ndata:\n  k: ${var}\n",
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: declared\n",
	"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n",
	"a: [\n",
	"---\n",
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n",
}

// FuzzBuildTree builds random artifact trees: folders with and without
// kustomization.yaml, bases, components, symlinks to files and folders
// inside and outside the root, with the stage's patches, target namespace
// and substitution. Whatever the tree, a build returns objects or a
// readable *Error, never reads the file outside the root (its marker is in
// no object and no message) and leaves the tree as it was.
func FuzzBuildTree(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed, "", uint8(seed))
	}
	f.Add(uint64(99), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n", uint8(0xff))
	f.Add(uint64(7), "- op: add\n  path: /data/x\n  value: ${var}\n", uint8(0x0f))
	f.Fuzz(func(t *testing.T, seed uint64, extra string, options uint8) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		base := fuzzRoot(t)
		root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
		writeTree(t, outside, map[string]string{"secret.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + outsideMarker + "\ndata:\n  " + outsideMarker + ": " + outsideMarker + "\n"})

		files := map[string]string{}
		dirs := []string{"app", "app/sub", "base", "comp"}
		for _, dir := range dirs {
			if rnd.IntN(3) > 0 {
				k := pick(rnd, treeKustomizations, treeGood)
				if dir == "comp" && rnd.IntN(4) > 0 {
					k = treeComponent
				}
				files[dir+"/kustomization.yaml"] = strings.ReplaceAll(k, "<outside>", outside)
			}
			for i := range rnd.IntN(3) {
				name := []string{"cm.yaml", "deploy.yaml", "x.yml", "y.json"}[(i+rnd.IntN(4))%4]
				files[dir+"/"+name] = pick(rnd, treeDocs, docsGood)
			}
		}
		if extra != "" {
			files[dirs[rnd.IntN(len(dirs))]+"/extra.yaml"] = extra
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		writeTree(t, root, files)
		for _, dir := range dirs {
			if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// Links inside the root and out of it, to files and folders.
		linkTargets := []string{filepath.Join(outside, "secret.yaml"), outside, "../../outside/secret.yaml", "../../../outside/secret.yaml",
			"cm.yaml", "../base", "../sub", root, "/", "link.yaml", "../app"}
		for _, dir := range dirs {
			for _, name := range []string{"link.yaml", "linkdir", "zlink.yaml"} {
				if rnd.IntN(6) == 0 {
					_ = os.Symlink(linkTargets[rnd.IntN(len(linkTargets))], filepath.Join(root, dir, name))
				}
			}
		}
		if options&0x80 != 0 {
			_ = os.Symlink(outside, filepath.Join(root, "escape"))
		}

		in := Input{Root: root, Path: []string{"app", "./app", "app/sub", "base", "app", "escape", ".", "app/linkdir"}[int(options)%8]}
		if options&0x08 != 0 {
			in.TargetNamespace = "tn"
		}
		if options&0x10 != 0 {
			in.Substitute = map[string]string{"var": "v"}
		}
		if options&0x20 != 0 {
			in.Patches = append(in.Patches, kustomize.Patch{Patch: "- op: add\n  path: /data/p\n  value: x\n", Target: &kustomize.Selector{Kind: "ConfigMap"}})
		}
		if options&0x40 != 0 && extra != "" {
			in.Patches = append(in.Patches, kustomize.Patch{Patch: extra})
		}

		before := snapshot(t, base)
		objects, err := Build(in)
		if after := snapshot(t, base); !reflect.DeepEqual(before, after) {
			t.Fatalf("the build changed the tree:\nbefore: %v\nafter: %v", before, after)
		}
		if err != nil {
			checkBuildError(t, err)
			if strings.Contains(err.Error(), outsideMarker) {
				t.Fatalf("a build error shows the file outside the root: %v", err)
			}
			return
		}
		out, err := yaml.Marshal(objects)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), outsideMarker) {
			t.Fatalf("the build read the file outside the root (tree %v, input %+v):\n%s", files, in, out)
		}
	})
}
