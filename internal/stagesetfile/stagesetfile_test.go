package stagesetfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// valid is a StageSet of the user's own, with no namespace of its own.
const valid = `apiVersion: stageset.io/v1
kind: StageSet
metadata:
  name: web
spec:
  interval: 5m
  sourceRef:
    kind: GitRepository
    name: web
  stages:
    - name: base
      path: ./base
    - name: app
      path: ./app
`

func writeStageSet(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "my-stageset.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadStageSetDefaultsTheNamespace(t *testing.T) {
	obj, err := Load(writeStageSet(t, valid), "my-stageset.yaml", "default")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Namespace != "default" || obj.Name != "web" || len(obj.Spec.Stages) != 2 {
		t.Errorf("got %s/%s with %d stages, want default/web with 2", obj.Namespace, obj.Name, len(obj.Spec.Stages))
	}
}

// Every mistake is reported as FILE:LINE: message, the line being the one
// to edit, so an editor or a terminal jumps to it.
func TestLoadStageSetErrorsNameTheFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		// want are the lines of the error, in order.
		want []string
	}{{
		name: "not YAML",
		body: strings.Replace(valid, "  interval: 5m\n", "  interval: 5m\n   timeout: 1m\n", 1),
		want: []string{"my-stageset.yaml:7: mapping values are not allowed in this context"},
	}, {
		name: "unknown field",
		body: strings.Replace(valid, "      path: ./app\n", "      path: ./app\n      prunee: false\n", 1),
		want: []string{`my-stageset.yaml:15: json: unknown field "prunee"`},
	}, {
		name: "value of the wrong type",
		body: strings.Replace(valid, "      path: ./base\n", "      path: ./base\n      timeout: [1m]\n", 1),
		want: []string{"my-stageset.yaml:13: json: cannot unmarshal array into Go value of type string"},
	}, {
		name: "invalid spec",
		body: strings.NewReplacer("kind: GitRepository", "kind: GitRepo", "path: ./app", "path: ../app").Replace(valid),
		want: []string{
			`my-stageset.yaml:8: spec.sourceRef.kind: Unsupported value: "GitRepo": supported values: "GitRepository", "OCIRepository", "Bucket", "ExternalArtifact"`,
			`my-stageset.yaml:14: spec.stages[1].path: Invalid value: "../app": must not contain '..'`,
		},
	}, {
		name: "required field left out, reported at its parent",
		body: strings.Replace(valid, "  stages:\n    - name: base\n      path: ./base\n    - name: app\n      path: ./app\n", "  stages: []\n", 1),
		want: []string{"my-stageset.yaml:10: spec.stages: Required value: at least one stage is required"},
	}, {
		name: "not a StageSet",
		body: strings.Replace(valid, "kind: StageSet", "kind: Kustomization", 1),
		want: []string{`my-stageset.yaml:2: apiVersion "stageset.io/v1" kind "Kustomization": expected apiVersion stageset.io/v1 and kind StageSet`},
	}, {
		name: "two documents",
		body: valid + "---\n" + valid,
		want: []string{"my-stageset.yaml:16: a second YAML document: the file must hold one StageSet only"},
	}, {
		name: "empty",
		body: "# nothing yet\n",
		want: []string{"my-stageset.yaml: no StageSet in the file"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeStageSet(t, tc.body), "my-stageset.yaml", "default")
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}
