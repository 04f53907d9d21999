package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fluxcd/pkg/ssa/utils"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

type buildOptions struct {
	file        string
	path        string
	stage       string
	showSecrets bool
}

func newBuildCommand(k *kubeOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build NAME|-f FILE",
		Short: "Render the stages of a StageSet as the controller would apply them",
		Long: `Render the stages of a StageSet with the controller's own build: the
stage's kustomization (generated when the folder has none), its target
namespace and patches, the postBuild variable substitution, and the
migration Jobs taken out of the stage.

The output is multi-document YAML, stage by stage in rollout order, each
stage headed by a "# Stage: <name>" comment. A stage's migration Jobs come
first, marked "# Migration <version>", as they run before its objects.
The data and stringData values of Secrets, and the values of postBuild
variables read from Secrets (substituted as "***", wherever they are used),
are masked unless --show-secrets is given.

The StageSet is read from the cluster (NAME) or from a file (-f). The
manifests come from --path, a local checkout standing for the source of
every stage (each stage's spec.path is relative to it, as in the
artifact), or else from the source artifact, downloaded and checked
against its digest (through the API server's service proxy when
source-controller advertises an in-cluster address).

With -f and --path no cluster is needed: when none can be reached, the
variables of postBuild.substituteFrom ConfigMaps and Secrets are not read
(a note on stderr names them), so ${var} is empty and ${var:=default}
takes its default, as with "flux build kustomization --dry-run".`,
		Example: `  stagesetctl build shop -n apps
  stagesetctl build shop -n apps --path ./checkout --stage db
  stagesetctl build -f stageset.yaml --path . --show-secrets`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (o.file != "") {
				return errors.New("give either a StageSet NAME or -f FILE")
			}
			r := &renderer{k: k, path: o.path, offline: o.file != "" && o.path != "", warn: cmd.ErrOrStderr(),
				substituteSecretMask: !o.showSecrets}
			var obj *stagesetv1.StageSet
			var err error
			if o.file != "" {
				obj, err = r.fromFile(o.file)
			} else {
				obj, err = r.fromCluster(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			stages, err := r.render(cmd.Context(), obj, o.stage)
			if err != nil {
				return err
			}
			return printStages(cmd.OutOrStdout(), stages, o.showSecrets)
		},
	}
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "A StageSet manifest to build instead of one read from the cluster.")
	cmd.Flags().StringVar(&o.path, "path", "", "A local directory to build from instead of the source artifact.")
	cmd.Flags().StringVar(&o.stage, "stage", "", "Build only this stage.")
	cmd.Flags().BoolVar(&o.showSecrets, "show-secrets", false, "Print the values of Secrets instead of masking them.")
	return cmd
}

// printStages writes the stages as multi-document YAML.
func printStages(out io.Writer, stages []renderedStage, showSecrets bool) error {
	var b strings.Builder
	for _, st := range stages {
		fmt.Fprintf(&b, "# Stage: %s\n", st.spec.Name)
		if len(st.migrations) == 0 && len(st.objects) == 0 {
			b.WriteString("# (no objects)\n")
		}
		for _, m := range st.migrations {
			if err := writeDocument(&b, m.Job, fmt.Sprintf("# Migration %s: runs once, before the objects of the stage\n", m.Version), showSecrets); err != nil {
				return err
			}
		}
		for _, obj := range st.objects {
			if err := writeDocument(&b, obj, "", showSecrets); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// writeDocument writes one YAML document: a separator, the comment, the
// object.
func writeDocument(b *strings.Builder, obj *unstructured.Unstructured, comment string, showSecrets bool) error {
	if !showSecrets {
		obj = maskSecret(obj)
	}
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("%s: %w", utils.FmtUnstructured(obj), err)
	}
	b.WriteString("---\n")
	b.WriteString(comment)
	b.Write(data)
	return nil
}

// secretMask replaces a Secret value, as ssa masks the values it diffs.
const secretMask = "***"

// maskSecret returns a copy of a Secret with every data and stringData
// value masked; any other object as is.
func maskSecret(obj *unstructured.Unstructured) *unstructured.Unstructured {
	if !utils.IsSecret(obj) {
		return obj
	}
	obj = obj.DeepCopy()
	for _, field := range []string{"data", "stringData"} {
		values, ok := obj.Object[field].(map[string]any)
		if !ok {
			continue
		}
		for k := range values {
			values[k] = secretMask
		}
	}
	return obj
}
