package docs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv/markdown"
	"github.com/stageset/stageset-controller/internal/validation"
)

// yamlExample is one document of a ```yaml block of a Markdown file.
type yamlExample struct {
	file string // docs/x.md
	line int    // the line of the document's first line, from 1
	text string
}

func (e yamlExample) String() string { return fmt.Sprintf("%s:%d", e.file, e.line) }

var (
	// stageSetKind tells a StageSet that does not parse from a fragment.
	stageSetKind = regexp.MustCompile(`(?m)^\s*kind:\s*["']?StageSet["']?\s*$`)
	// hereDoc opens a here-document in a shell line (kubectl apply -f -
	// <<EOF, cat <<'EOF' > x.yaml): its delimiter.
	hereDoc = regexp.MustCompile(`<<-?\s*(?:'(\w+)'|"(\w+)"|(\w+))`)
	// shellBlocks are the languages of blocks whose here-documents are read.
	shellBlocks = map[string]bool{"": true, "sh": true, "bash": true, "shell": true, "console": true, "zsh": true}
)

// yamlExamples returns the documents (split on "---") of the ```yaml and
// ```yml blocks of src, and of the here-documents of its shell blocks,
// with their line numbers. A block indented in a list item loses that
// indentation.
func yamlExamples(file string, src string) []yamlExample {
	var out []yamlExample
	_, blocks := markdown.Read(src)
	for _, b := range blocks {
		start, body := b.Line, b.Lines
		switch {
		case b.Lang == "yaml" || b.Lang == "yml":
			out = append(out, yamlDocuments(file, start, body)...)
		case shellBlocks[b.Lang]:
			for j := 0; j < len(body); j++ {
				h := hereDoc.FindStringSubmatch(body[j])
				if h == nil {
					continue
				}
				end := j + 1
				for end < len(body) && strings.TrimSpace(body[end]) != h[1]+h[2]+h[3] {
					end++
				}
				out = append(out, yamlDocuments(file, start+j+1, body[j+1:end])...)
				j = end
			}
		}
	}
	return out
}

// yamlDocuments splits the lines of a YAML stream, the first of which is
// line start of file, into its documents.
func yamlDocuments(file string, start int, lines []string) []yamlExample {
	var out []yamlExample
	docStart, doc := start, []string{}
	flush := func() {
		if text := strings.Join(doc, "\n"); strings.TrimSpace(text) != "" {
			out = append(out, yamlExample{file: file, line: docStart, text: text})
		}
	}
	for j, l := range lines {
		if strings.TrimRight(l, " \t") == "---" {
			flush()
			docStart, doc = start+j+1, nil
			continue
		}
		doc = append(doc, l)
	}
	flush()
	return out
}

func TestYAMLExamplesAreFoundWithTheirLines(t *testing.T) {
	src := "# Title\n" + // 1
		"\n" + // 2
		"```yaml\n" + // 3
		"kind: A\n" + // 4
		"---\n" + // 5
		"kind: B\n" + // 6
		"```\n" + // 7
		"```sh\n" + // 8
		"kind: C\n" + // 9
		"```\n" + // 10
		"1. a step\n" + // 11
		"   ```yml\n" + // 12
		"   kind: D\n" + // 13
		"   spec: {}\n" + // 14
		"   ```\n" + // 15
		"```sh\n" + // 16
		"kubectl apply -f - <<'EOF'\n" + // 17
		"kind: E\n" + // 18
		"EOF\n" + // 19
		"cat <<-EOF > x.yaml\n" + // 20
		"kind: F\n" + // 21
		"---\n" + // 22
		"kind: G\n" + // 23
		"  EOF\n" + // 24
		"```\n" // 25
	got := yamlExamples("docs/x.md", src)
	want := []yamlExample{
		{"docs/x.md", 4, "kind: A"},
		{"docs/x.md", 6, "kind: B"},
		{"docs/x.md", 13, "kind: D\nspec: {}"},
		{"docs/x.md", 18, "kind: E"},
		{"docs/x.md", 21, "kind: F"},
		{"docs/x.md", 23, "kind: G"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("example %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Every StageSet in a ```yaml block of docs/ is one a user can apply: the
// API server creates it (server-side dry-run, strict field validation,
// against the CRD of config/crd/bases) and the admission webhook's rules
// (internal/validation, which the reconciler re-checks) accept it.
func TestStageSetExamplesAreAcceptedByTheAPIServer(t *testing.T) {
	ctx := context.Background()
	found := 0
	for _, rel := range markdownPages(t) {
		src, err := os.ReadFile(filepath.Join(root(), "docs", filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range yamlExamples("docs/"+rel, string(src)) {
			obj := map[string]any{}
			if err := yaml.Unmarshal([]byte(ex.text), &obj); err != nil {
				if stageSetKind.MatchString(ex.text) {
					t.Errorf("%s: a StageSet that is not valid YAML: %v", ex, err)
					found++
				}
				continue
			}
			if obj["kind"] != "StageSet" {
				continue
			}
			found++
			if err := dryRunStageSet(ctx, &unstructured.Unstructured{Object: obj}); err != nil {
				t.Errorf("%s: %v", ex, err)
			}
		}
	}
	if found == 0 {
		t.Fatal("no StageSet example found in docs/: is the extraction of ```yaml blocks broken?")
	}
	t.Logf("%d StageSet examples checked", found)
}

// dryRunStageSet creates obj with a server-side dry-run, in its namespace
// (created when missing) or default, then checks the defaulted object
// against the webhook's rules.
func dryRunStageSet(ctx context.Context, obj *unstructured.Unstructured) error {
	if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetNamespace()}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	if err := env.Client.Create(ctx, obj, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
		return fmt.Errorf("the API server refuses it: %w", err)
	}
	var ss stagesetv1.StageSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &ss); err != nil {
		return err
	}
	if errs := validation.StageSet(&ss, validation.Options{}); len(errs) > 0 {
		return fmt.Errorf("the admission webhook refuses it: %w", errs.ToAggregate())
	}
	return nil
}
