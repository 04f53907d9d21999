package build

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
)

func TestBuild_Errors(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n"})

	tests := []struct {
		name  string
		files map[string]string
		setup func(t *testing.T, root string)
		in    Input
		want  []string // substrings of the message
	}{
		{
			name: "missing path",
			in:   Input{Path: "nope"},
			want: []string{`stage path "nope" does not exist in the artifact`},
		},
		{
			name:  "path is a file",
			files: map[string]string{"app/cm.yaml": configMapA},
			in:    Input{Path: "app/cm.yaml"},
			want:  []string{`stage path "app/cm.yaml" is not a directory`},
		},
		{
			name: "path climbing out",
			in:   Input{Path: "../" + filepath.Base(outside)},
			want: []string{"escapes the artifact root"},
		},
		{
			name:  "path climbing out after a folder",
			files: map[string]string{"app/cm.yaml": configMapA},
			in:    Input{Path: "app/../../x"},
			want:  []string{`stage path "app/../../x" escapes the artifact root`},
		},
		{
			name: "absolute path",
			in:   Input{Path: outside},
			want: []string{"escapes the artifact root"},
		},
		{
			name: "stage folder is a symlink out of the root",
			setup: func(t *testing.T, root string) {
				symlink(t, outside, filepath.Join(root, "link"))
			},
			in:   Input{Path: "link"},
			want: []string{`stage path "link" escapes the artifact root through a symlink`},
		},
		{
			name:  "manifest is a symlink out of the root",
			files: map[string]string{"app/cm.yaml": configMapA},
			setup: func(t *testing.T, root string) {
				symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(root, "app", "secret.yaml"))
			},
			in:   Input{Path: "app"},
			want: []string{`kustomize build of stage path "app" failed`, "is not in or below"},
		},
		{
			name: "kustomization reaching out of the root",
			setup: func(t *testing.T, root string) {
				rel, err := filepath.Rel(filepath.Join(root, "app"), outside)
				if err != nil {
					t.Fatal(err)
				}
				writeTree(t, root, map[string]string{"app/kustomization.yaml": "resources: [" + rel + "]\n"})
			},
			in:   Input{Path: "app"},
			want: []string{`kustomize build of stage path "app" failed`},
		},
		{
			name:  "malformed YAML",
			files: map[string]string{"app/cm.yaml": configMapA, "app/bad.yaml": "kind: ConfigMap\nmetadata: [\n"},
			in:    Input{Path: "app"},
			want:  []string{`kustomize build of stage path "app" failed`, "app/bad.yaml", "yaml"},
		},
		{
			name:  "document without kind",
			files: map[string]string{"app/cm.yaml": "apiVersion: v1\nmetadata: {name: a}\n"},
			in:    Input{Path: "app"},
			want:  []string{"app/cm.yaml", "missing kind"},
		},
		{
			name:  "document without apiVersion",
			files: map[string]string{"app/cm.yaml": "kind: ConfigMap\nmetadata: {name: a}\n"},
			in:    Input{Path: "app"},
			want:  []string{`malformed object ConfigMap/a in stage path "app": apiVersion is missing`},
		},
		{
			name:  "JSON6902 patch on a missing field",
			files: map[string]string{"app/web.yaml": deploymentWeb},
			in: Input{Path: "app", Patches: []kustomize.Patch{{
				Patch:  "- op: remove\n  path: /spec/nothing\n",
				Target: &kustomize.Selector{Kind: "Deployment"},
			}}},
			want: []string{`applying the patches of stage path "app" failed`},
		},
		{
			name:  "strategic merge patch matching nothing",
			files: map[string]string{"app/web.yaml": deploymentWeb},
			in: Input{Path: "app", Patches: []kustomize.Patch{{
				Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ghost}\ndata: {a: b}\n",
			}}},
			want: []string{`applying the patches of stage path "app" failed`},
		},
		{
			name:  "invalid variable name",
			files: map[string]string{"app/cm.yaml": configMapA},
			in:    Input{Path: "app", Substitute: map[string]string{"my-var": "x"}},
			want:  []string{`substituting variables in ConfigMap/a of stage path "app" failed`, "var name is invalid"},
		},
		{
			name:  "unclosed variable",
			files: map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\ndata: {a: '${a'}\n"},
			in:    Input{Path: "app", Substitute: map[string]string{}},
			want:  []string{"substituting variables in ConfigMap/ns/a", "missing closing brace"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			root := t.TempDir()
			writeTree(t, root, tt.files)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			in := tt.in
			in.Root = root

			objs, err := Build(in)
			t.Log(err)
			g.Expect(objs).To(BeNil())
			var buildErr *Error
			g.Expect(errors.As(err, &buildErr)).To(BeTrue(), "a build Error, got %v", err)
			for _, want := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
			// The extraction directory changes every run: a message that
			// named it would change the Ready condition on every retry.
			g.Expect(err.Error()).NotTo(ContainSubstring(root))
		})
	}
}

func TestBuild_MissingRoot(t *testing.T) {
	g := NewWithT(t)
	_, err := Build(Input{Root: filepath.Join(t.TempDir(), "gone"), Path: "./"})
	var buildErr *Error
	g.Expect(errors.As(err, &buildErr)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("artifact root"))
}

func TestHideRoot(t *testing.T) {
	g := NewWithT(t)
	inner := errors.New("failed to read /tmp/artifact-1/app/cm.yaml: path '/etc' is not in or below '/tmp/artifact-1'")
	err := hideRoot(inner, "/tmp/artifact-1", "")
	g.Expect(err.Error()).To(Equal("failed to read app/cm.yaml: path '/etc' is not in or below '<artifact root>'"))
	g.Expect(errors.Is(err, inner)).To(BeTrue())
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
