package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
)

// healthConcurrency bounds the live reads of tree --health: enough to keep
// a large inventory quick, few enough not to hammer the API server.
const healthConcurrency = 8

type treeOptions struct {
	health bool
	output string
}

func newTreeCommand(k *kubeOptions) *cobra.Command {
	o := &treeOptions{}
	cmd := &cobra.Command{
		Use:   "tree NAME",
		Short: "Print the stages of a StageSet and the objects each one applied",
		Long: `Tree prints a StageSet, its stages in spec order with their phase and
revision, and under each stage the objects of its inventory, like
flux tree kustomization. With --health each object's live status is read
from the cluster and computed with kstatus (Current, InProgress, Failed,
NotFound, ...).`,
		Example: `  stagesetctl tree shop -n apps
  stagesetctl tree shop -n apps --health
  stagesetctl tree shop -n apps -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "json"); err != nil {
				return err
			}
			c, obj, err := k.stageSet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tree, err := o.build(cmd.Context(), c, obj)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printStructured(cmd.OutOrStdout(), "json", tree)
			}
			return tree.print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.health, "health", false, "Read each object from the cluster and show its kstatus.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: json (default: a tree).")
	return cmd
}

// stageSetTree is what tree prints, and its -o json document.
type stageSetTree struct {
	Kind      string      `json:"kind"`
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Stages    []stageTree `json:"stages"`
}

type stageTree struct {
	Name       string              `json:"name"`
	Phase      string              `json:"phase"`
	Revision   string              `json:"revision,omitempty"`
	Message    string              `json:"message,omitempty"`
	Objects    []treeObject        `json:"objects"`
	Migrations []treeMigrationNode `json:"migrations,omitempty"`
}

type treeObject struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace,omitempty"`
	Name       string      `json:"name"`
	Health     *treeHealth `json:"health,omitempty"`
}

type treeHealth struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type treeMigrationNode struct {
	Version     string     `json:"version"`
	Job         string     `json:"job,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// build lays out the stages in spec order. A stage still in status but no
// longer in spec (its objects are being torn down) comes after them.
func (o *treeOptions) build(ctx context.Context, c client.Client, obj *stagesetv1.StageSet) (*stageSetTree, error) {
	tree := &stageSetTree{Kind: stagesetv1.StageSetKind, Namespace: obj.Namespace, Name: obj.Name, Stages: []stageTree{}}
	statuses := map[string]stagesetv1.StageStatus{}
	for _, st := range obj.Status.Stages {
		statuses[st.Name] = st
	}
	names := make([]string, 0, len(obj.Spec.Stages))
	inSpec := map[string]bool{}
	for _, st := range obj.Spec.Stages {
		names = append(names, st.Name)
		inSpec[st.Name] = true
	}
	for _, st := range obj.Status.Stages {
		if !inSpec[st.Name] {
			names = append(names, st.Name)
		}
	}

	for _, name := range names {
		st, ok := statuses[name]
		if !ok {
			st = stagesetv1.StageStatus{Name: name, Phase: stagesetv1.StagePhasePending}
		}
		node := stageTree{Name: name, Phase: string(st.Phase), Revision: st.Revision, Message: st.Message, Objects: []treeObject{}}
		// The inventory format is the controller's: reuse its parser.
		objects, err := apply.InventoryObjects(st.Inventory)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", name, err)
		}
		for _, u := range objects {
			node.Objects = append(node.Objects, treeObject{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()})
		}
		for _, m := range obj.Status.Migrations {
			if m.Stage != name {
				continue
			}
			mig := treeMigrationNode{Version: m.Version, Job: m.Job}
			if m.CompletedAt != nil {
				at := m.CompletedAt.UTC()
				mig.CompletedAt = &at
			}
			node.Migrations = append(node.Migrations, mig)
		}
		tree.Stages = append(tree.Stages, node)
	}
	if o.health {
		if err := addHealth(ctx, c, tree); err != nil {
			return nil, err
		}
	}
	return tree, nil
}

// addHealth reads every object of the tree, a few at a time, and computes
// its kstatus. An object that cannot be read gets a status saying why
// rather than failing the whole tree.
func addHealth(ctx context.Context, c client.Client, tree *stageSetTree) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(healthConcurrency)
	for i := range tree.Stages {
		for j := range tree.Stages[i].Objects {
			o := &tree.Stages[i].Objects[j]
			g.Go(func() error {
				h, err := liveHealth(ctx, c, o)
				o.Health = h
				return err
			})
		}
	}
	return g.Wait()
}

func liveHealth(ctx context.Context, c client.Client, o *treeObject) (*treeHealth, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(o.APIVersion)
	u.SetKind(o.Kind)
	err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, u)
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		return &treeHealth{Status: "NotFound"}, nil
	case apierrors.IsForbidden(err):
		return &treeHealth{Status: "Unknown (forbidden)"}, nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	default:
		return &treeHealth{Status: status.UnknownStatus.String(), Message: err.Error()}, nil
	}
	res, err := status.Compute(u)
	if err != nil {
		return &treeHealth{Status: status.UnknownStatus.String(), Message: err.Error()}, nil
	}
	return &treeHealth{Status: res.Status.String(), Message: res.Message}, nil
}

// print draws the tree with the box characters of flux tree.
func (t *stageSetTree) print(out io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/%s\n", t.Kind, t.Namespace, t.Name)
	for i, st := range t.Stages {
		branch, indent := "├── ", "│   "
		if i == len(t.Stages)-1 {
			branch, indent = "└── ", "    "
		}
		fmt.Fprintf(&b, "%sStage/%s [%s]", branch, st.Name, st.Phase)
		if st.Revision != "" {
			fmt.Fprintf(&b, " %s", st.Revision)
		}
		if st.Phase == string(stagesetv1.StagePhaseFailed) && st.Message != "" {
			fmt.Fprintf(&b, ": %s", oneLine(st.Message))
		}
		b.WriteString("\n")

		var children []string
		for _, o := range st.Objects {
			children = append(children, o.String())
		}
		for _, m := range st.Migrations {
			line := "Migration/" + m.Version
			if m.Job != "" {
				line += " Job/" + t.Namespace + "/" + m.Job
			}
			if m.CompletedAt != nil {
				line += " completed " + m.CompletedAt.Format(time.RFC3339)
			}
			children = append(children, line)
		}
		for j, child := range children {
			if j == len(children)-1 {
				fmt.Fprintf(&b, "%s└── %s\n", indent, child)
			} else {
				fmt.Fprintf(&b, "%s├── %s\n", indent, child)
			}
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// String is the object as flux tree names it, Kind/namespace/name, with
// its health when it was read.
func (o treeObject) String() string {
	s := o.Kind + "/" + o.Name
	if o.Namespace != "" {
		s = o.Kind + "/" + o.Namespace + "/" + o.Name
	}
	if o.Health == nil {
		return s
	}
	if o.Health.Message == "" || o.Health.Status == status.CurrentStatus.String() {
		return s + " [" + o.Health.Status + "]"
	}
	return s + " [" + o.Health.Status + ": " + oneLine(o.Health.Message) + "]"
}
