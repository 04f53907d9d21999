package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

type getOptions struct {
	allNamespaces bool
	output        string
}

func newGetCommand(k *kubeOptions) *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List StageSets with their readiness, revision and stage progress",
		Example: `  stagesetctl get
  stagesetctl get shop -n apps -o yaml
  stagesetctl get -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.output != "" && o.output != "yaml" && o.output != "json" {
				return fmt.Errorf("--output must be yaml or json, got %q", o.output)
			}
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			items, err := o.list(cmd.Context(), c, ns, args)
			if err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), items)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List StageSets of every namespace.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: yaml or json (default: a table).")
	return cmd
}

func (o *getOptions) list(ctx context.Context, c client.Client, ns string, args []string) ([]stagesetv1.StageSet, error) {
	if len(args) == 1 {
		obj := stagesetv1.StageSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: args[0]}, &obj); err != nil {
			return nil, err
		}
		return []stagesetv1.StageSet{obj}, nil
	}
	var list stagesetv1.StageSetList
	var opts []client.ListOption
	if !o.allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (o *getOptions) print(out io.Writer, items []stagesetv1.StageSet) error {
	switch o.output {
	case "yaml", "json":
		for i := range items {
			items[i].SetGroupVersionKind(stagesetv1.GroupVersion.WithKind(stagesetv1.StageSetKind))
			items[i].ManagedFields = nil
		}
		var data any = items
		if len(items) == 1 {
			data = items[0]
		}
		var b []byte
		var err error
		if o.output == "yaml" {
			b, err = yaml.Marshal(data)
		} else {
			b, err = json.MarshalIndent(data, "", "  ")
			b = append(b, '\n')
		}
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}

	if len(items) == 0 {
		_, err := fmt.Fprintln(out, "No StageSets found.")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := []string{"NAME", "READY", "REVISION", "STAGES", "MESSAGE"}
	if o.allNamespaces {
		header = append([]string{"NAMESPACE"}, header...)
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for i := range items {
		row := summary(&items[i])
		if o.allNamespaces {
			row = append([]string{items[i].Namespace}, row...)
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	return w.Flush()
}

// summary is one table row: name, ready, revision, ready stages / stages,
// message.
func summary(obj *stagesetv1.StageSet) []string {
	ready, message := "Unknown", ""
	if c := conditions.Get(obj, meta.ReadyCondition); c != nil {
		ready, message = string(c.Status), c.Message
	}
	if obj.Spec.Suspend {
		ready += " (suspended)"
	}
	done := 0
	for _, st := range obj.Status.Stages {
		if st.Phase == stagesetv1.StagePhaseReady {
			done++
		}
	}
	revision := obj.Status.LastAppliedRevision
	if revision == "" {
		revision = "-"
	}
	return []string{obj.Name, ready, revision, fmt.Sprintf("%d/%d", done, len(obj.Spec.Stages)), message}
}
