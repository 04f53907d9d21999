package build

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	securefs "github.com/fluxcd/pkg/kustomize/filesys"
	. "github.com/onsi/gomega"
)

// withChunking sets when builds go in chunks for the rest of the test.
func withChunking(t testing.TB, minimum, size int) {
	saved := chunking
	chunking.min, chunking.size = minimum, size
	t.Cleanup(func() { chunking = saved })
}

// buildBothWays builds in one piece and in chunks of one resource, and
// returns both outcomes: the objects as YAML, or the error message.
func buildBothWays(t testing.TB, in Input) (whole, chunked string) {
	t.Helper()
	outcome := func() string {
		objs, err := Build(in)
		if err != nil {
			return "error: " + err.Error()
		}
		var out []string
		for _, o := range objs {
			out = append(out, fmt.Sprint(o.Object))
		}
		return strings.Join(out, "\n")
	}
	saved := chunking
	defer func() { chunking = saved }()
	chunking.min = 1 << 30
	whole = outcome()
	chunking.min, chunking.size = 1, 1
	chunked = outcome()
	return whole, chunked
}

// chunks tells whether chunkedBuild takes the stage (instead of leaving it
// to one build).
func chunks(t testing.TB, in Input) bool {
	t.Helper()
	root, dir, err := resolveDir(in.Root, in.Path)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _, generated, err := generate(root, dir, in.TargetNamespace, in.Patches)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := securefs.MakeFsOnDiskSecure(root)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := chunkedBuild(securefs.MakeFsInMemory(disk), dir, manifest, generated)
	return ok
}

const (
	chunkConfigMaps = `# a comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  labels: &labels {app: web, tier: "1"}
  annotations: *labels
data:
  script: |
    #!/bin/sh
    echo "---"
  number: "0042"
---
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: two
  namespace: declared
  labels: {app: web}
  annotations: {note: 'yes'}
data: {on: "true"}
`
	chunkList = `apiVersion: v1
kind: ConfigMapList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed-a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed-b}
`
	chunkLocal = `apiVersion: v1
kind: ConfigMap
metadata:
  name: local
  annotations: {config.kubernetes.io/local-config: "true"}
`
	chunkWorkload = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: nginx
        envFrom: [{configMapRef: {name: one}}]
      volumes: [{name: s, secret: {secretName: creds}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
`
	chunkClusterScoped = `apiVersion: v1
kind: Namespace
metadata: {name: extra}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {size: 3}
`
	chunkRoleBinding = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: web}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: web}]
`
	chunkWebhook = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: hook}
webhooks:
- name: hook.example.com
  clientConfig: {service: {name: web}}
  admissionReviewVersions: [v1]
  sideEffects: None
`
)

// TestChunkedBuildGivesWhatOneBuildGives builds stages in one piece and in
// chunks of one resource: the objects, or the error, must be the same.
func TestChunkedBuildGivesWhatOneBuildGives(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		in     Input
		chunks bool // whether chunkedBuild takes the stage
	}{
		{
			name:   "plain files with a target namespace",
			files:  map[string]string{"app/a.yaml": chunkConfigMaps, "app/b/c.yml": chunkList + "---\n" + chunkLocal, "app/w.yaml": chunkWorkload, "app/cluster.yaml": chunkClusterScoped},
			in:     Input{Path: "app", TargetNamespace: "tn"},
			chunks: true,
		},
		{
			name:   "plain files, declared namespaces",
			files:  map[string]string{"app/a.yaml": chunkConfigMaps, "app/w.yaml": chunkWorkload, "app/cluster.yaml": chunkClusterScoped},
			in:     Input{Path: "app"},
			chunks: true,
		},
		{
			name:   "substitution after the build",
			files:  map[string]string{"app/a.yaml": strings.ReplaceAll(chunkConfigMaps, "0042", "${n:=7}")},
			in:     Input{Path: "app", TargetNamespace: "tn", Substitute: map[string]string{}},
			chunks: true,
		},
		{
			// One build gives the subject the namespace of the
			// ServiceAccount it names; a chunk without it would not.
			name:  "a RoleBinding naming a ServiceAccount",
			files: map[string]string{"app/w.yaml": chunkWorkload, "app/rb.yaml": chunkRoleBinding},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
		{
			name:  "a webhook naming a Service",
			files: map[string]string{"app/w.yaml": chunkWorkload, "app/hook.yaml": chunkWebhook},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
		{
			name:  "a RoleBinding of another API group",
			files: map[string]string{"app/w.yaml": chunkWorkload, "app/rb.yaml": strings.Replace(chunkRoleBinding, "rbac.authorization.k8s.io/v1", "example.com/v1", 1)},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
		{
			name:  "duplicates in two files",
			files: map[string]string{"app/a.yaml": chunkConfigMaps, "app/b.yaml": chunkConfigMaps},
			in:    Input{Path: "app"},
		},
		{
			name:  "the target namespace makes two objects one",
			files: map[string]string{"app/a.yaml": chunkConfigMaps, "app/b.yaml": strings.Replace(chunkConfigMaps, "namespace: declared", "namespace: other", 1)},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
		{
			// kustomize tells them apart by version; the chunks do not.
			name:  "one name in two versions",
			files: map[string]string{"app/a.yaml": chunkWorkload, "app/b.yaml": strings.Replace(chunkWorkload, "apps/v1", "apps/v1beta2", 1)},
			in:    Input{Path: "app"},
		},
		{
			name:  "patches",
			files: map[string]string{"app/a.yaml": chunkConfigMaps, "app/w.yaml": chunkWorkload},
			in: Input{Path: "app", Patches: []kustomize.Patch{{
				Patch:  `[{"op": "add", "path": "/metadata/labels/patched", "value": "yes"}]`,
				Target: &kustomize.Selector{Kind: "ConfigMap"},
			}}},
		},
		{
			name:  "the folder's own kustomization",
			files: map[string]string{"app/a.yaml": chunkConfigMaps, "app/kustomization.yaml": "resources: [a.yaml]\n"},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
		{
			name:  "a sub-folder with its own kustomization",
			files: map[string]string{"app/a.yaml": chunkWorkload, "app/sub/kustomization.yaml": "namePrefix: p-\nresources: [a.yaml]\n", "app/sub/a.yaml": chunkConfigMaps},
			in:    Input{Path: "app", TargetNamespace: "tn"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			root := t.TempDir()
			writeTree(t, root, tt.files)
			tt.in.Root = root
			whole, chunked := buildBothWays(t, tt.in)
			g.Expect(chunked).To(Equal(whole))

			withChunking(t, 1, 1)
			g.Expect(chunks(t, tt.in)).To(Equal(tt.chunks))
		})
	}
}

// TestChunkedBuildStaysInTheRoot: a manifest that is a symlink out of the
// artifact is refused in chunks as in one build.
func TestChunkedBuildStaysInTheRoot(t *testing.T) {
	g := NewWithT(t)
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n"})
	root := t.TempDir()
	writeTree(t, root, map[string]string{"app/a.yaml": chunkConfigMaps})
	symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(root, "app", "stolen.yaml"))

	whole, chunked := buildBothWays(t, Input{Root: root, Path: "app"})
	g.Expect(whole).To(HavePrefix("error: "))
	g.Expect(chunked).To(Equal(whole))
}

// FuzzChunkedBuild builds random folders of the documents above (and their
// clashes) in one piece and in chunks: the outcome must be the same. The
// seeds run in every `go test`.
func FuzzChunkedBuild(f *testing.F) {
	for seed := range uint64(12) {
		f.Add(seed, seed%3 == 0)
	}
	docs := []string{chunkConfigMaps, chunkList, chunkLocal, chunkWorkload, chunkClusterScoped, chunkRoleBinding, chunkWebhook,
		strings.Replace(chunkConfigMaps, "namespace: declared", "namespace: other", 1),
		strings.ReplaceAll(chunkWorkload, "web", "api"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: tn}\n",
		"{}\n", "---\n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [not, a, name]}\n", "a: [\n"}
	f.Fuzz(func(t *testing.T, seed uint64, targetNamespace bool) {
		rnd := rand.New(rand.NewPCG(seed, 0))
		files := map[string]string{}
		for i := range 1 + rnd.IntN(4) {
			var content []string
			for range 1 + rnd.IntN(3) {
				content = append(content, docs[rnd.IntN(len(docs))])
			}
			dir := []string{"app", "app/sub", "app/sub/deeper"}[rnd.IntN(3)]
			files[fmt.Sprintf("%s/f%d.yaml", dir, i)] = strings.Join(content, "---\n")
		}
		// Not t.TempDir: its name has the seed's '#', which kustomize's
		// file system in memory refuses, whatever the files.
		root, err := os.MkdirTemp("", "chunks")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(root) })
		writeTree(t, root, files)
		in := Input{Root: root, Path: "app"}
		if targetNamespace {
			in.TargetNamespace = "tn"
		}
		whole, chunked := buildBothWays(t, in)
		if chunked != whole {
			t.Fatalf("files %v:\none build:\n%s\nin chunks:\n%s", reflect.ValueOf(files).MapKeys(), whole, chunked)
		}
	})
}
