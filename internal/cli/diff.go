package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
)

type diffOptions struct {
	path  string
	stage string
}

func newDiffCommand(k *kubeOptions) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff NAME",
		Short: "Show what applying the StageSet's build would change in the cluster",
		Long: `Build the stages as "stagesetctl build" does, then compare each object
with the cluster through a server-side apply dry-run, with the controller's
field manager and options, as your own user: nothing is written.

For each stage it prints a unified diff per changed object (colored on a
terminal), the objects that would be created, and the objects of the
stage's inventory that the build no longer has and that would be pruned;
then which stages would change. Secret values are always masked ("***",
"*** (before)" and "*** (after)" when a value changed), and so are the
values of postBuild variables read from Secrets, wherever they appear.

Migration Jobs and actions are not diffed: the controller runs them, it
does not apply them.

Exit codes: 0 no changes, 1 changes, 2 an error, so that a pull request
check can tell them apart.`,
		Example: `  stagesetctl diff shop -n apps
  stagesetctl diff shop -n apps --path ./checkout --stage web`,
		Args:        cobra.ExactArgs(1),
		Annotations: map[string]string{errorExitCodeAnnotation: "2"},
		RunE: func(cmd *cobra.Command, args []string) error {
			changed, err := o.run(cmd.Context(), k, cmd, args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if changed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.path, "path", "", "A local directory to build from instead of the source artifact.")
	cmd.Flags().StringVar(&o.stage, "stage", "", "Diff only this stage.")
	return cmd
}

// run prints the diff of StageSet name and tells whether anything would
// change.
func (o *diffOptions) run(ctx context.Context, k *kubeOptions, cmd *cobra.Command, name string) (bool, error) {
	r := &renderer{k: k, path: o.path, warn: cmd.ErrOrStderr()}
	obj, err := r.fromCluster(ctx, name)
	if err != nil {
		return false, err
	}
	stages, err := r.render(ctx, obj, o.stage)
	if err != nil {
		return false, err
	}
	c, err := r.client()
	if err != nil {
		return false, err
	}
	out := cmd.OutOrStdout()
	p := &diffPrinter{out: out, color: isTerminal(out), secrets: r.secretValues}
	mgr := apply.NewManager(c, controllerName)

	var changed []string
	for _, st := range stages {
		n, err := diffStage(ctx, mgr, p, obj, st)
		if err != nil {
			return false, err
		}
		if n > 0 {
			changed = append(changed, st.spec.Name)
		}
	}
	if o.stage == "" {
		removed, err := diffRemovedStages(ctx, c, mgr, p, obj)
		if err != nil {
			return false, err
		}
		changed = append(changed, removed...)
	}

	if len(changed) == 0 {
		fmt.Fprintln(out, "✔ no changes")
		return false, nil
	}
	fmt.Fprintf(out, "► stages that would change: %s\n", strings.Join(changed, ", "))
	return true, nil
}

// diffStage prints what applying and pruning one stage would do, as the
// controller applies it (stage.force, driftDetection.ignore, the owner
// labels), and returns how many objects would change.
func diffStage(ctx context.Context, mgr *apply.Manager, p *diffPrinter, obj *stagesetv1.StageSet, st renderedStage) (int, error) {
	owner := apply.Owner{Name: obj.Name, Namespace: obj.Namespace, Stage: st.spec.Name}
	opts := apply.ApplyOptions{Force: st.spec.Force}
	if obj.Spec.DriftDetection != nil {
		opts.IgnoreRules = obj.Spec.DriftDetection.Ignore
	}
	diffs, err := mgr.DiffObjects(ctx, owner, st.objects, opts)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range diffs {
		switch d.Entry.Action {
		case ssa.CreatedAction:
			p.action(d.Entry.Subject, "created")
		case ssa.ConfiguredAction:
			if err := p.diff(d.Entry.Subject, d.Live, d.DryRun); err != nil {
				return 0, err
			}
		default:
			continue
		}
		n++
	}

	if !st.spec.IsPruneEnabled() {
		return n, nil
	}
	var inventory *stagesetv1.ResourceInventory
	for _, status := range obj.Status.Stages {
		if status.Name == st.spec.Name {
			inventory = status.Inventory
		}
	}
	stale, err := apply.Stale(inventory, apply.InventoryOf(st.objects))
	if err != nil {
		return 0, err
	}
	pruned, err := mgr.Prunable(ctx, owner, stale)
	if err != nil {
		return 0, err
	}
	for _, o := range pruned {
		p.action(utils.FmtUnstructured(o), "would be pruned")
	}
	return n + len(pruned), nil
}

// diffRemovedStages prints the objects of stages that left the spec, which
// the controller tears down unless the last run recorded the stage's prune:
// false (status.stages[].pruneDisabled: then they stay), and returns the
// stages torn down.
func diffRemovedStages(ctx context.Context, c client.Client, mgr *apply.Manager, p *diffPrinter, obj *stagesetv1.StageSet) ([]string, error) {
	inSpec := map[string]bool{}
	for _, st := range obj.Spec.Stages {
		inSpec[st.Name] = true
	}
	var removed []string
	for _, status := range obj.Status.Stages {
		if inSpec[status.Name] {
			continue
		}
		objects, err := apply.InventoryObjects(status.Inventory)
		if err != nil {
			return nil, err
		}
		pruned, err := mgr.Prunable(ctx, apply.Owner{Name: obj.Name, Namespace: obj.Namespace, Stage: status.Name}, objects)
		if err != nil {
			return nil, err
		}
		if status.PruneDisabled {
			for _, o := range pruned {
				p.action(utils.FmtUnstructured(o), fmt.Sprintf("would stay (stage %q was removed, its prune is false)", status.Name))
			}
			continue
		}
		for _, o := range pruned {
			p.action(utils.FmtUnstructured(o), fmt.Sprintf("would be pruned (stage %q was removed)", status.Name))
		}
		if len(pruned) > 0 {
			removed = append(removed, status.Name)
		}
	}
	return removed, nil
}

// diffPrinter writes actions and unified diffs, colored on a terminal.
type diffPrinter struct {
	out   io.Writer
	color bool
	// secrets are values read from Secrets for postBuild variables: they
	// are printed as secretMask wherever they appear.
	secrets []string
}

// mask replaces the values of secrets in text. Values shorter than four
// characters are left: masking every "1" or "on" would garble the diff.
func (p *diffPrinter) mask(text string) string {
	for _, v := range p.secrets {
		if len(v) >= 4 {
			text = strings.ReplaceAll(text, v, secretMask)
		}
	}
	return text
}

const (
	colorRed   = "\x1b[31m"
	colorGreen = "\x1b[32m"
	colorCyan  = "\x1b[36m"
	colorReset = "\x1b[0m"
)

func (p *diffPrinter) action(subject, what string) {
	fmt.Fprintf(p.out, "► %s %s\n", subject, what)
}

// diff prints a configured object as a unified diff of its live copy and
// the dry-run result, without the fields no apply sets.
func (p *diffPrinter) diff(subject string, live, dryRun *unstructured.Unstructured) error {
	a, err := diffYAML(live)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	b, err := diffYAML(dryRun)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(p.mask(a)), B: difflib.SplitLines(p.mask(b)),
		FromFile: "live", ToFile: "dry-run", Context: 3,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	p.action(subject, "configured")
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		color := ""
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
		case strings.HasPrefix(line, "+"):
			color = colorGreen
		case strings.HasPrefix(line, "-"):
			color = colorRed
		case strings.HasPrefix(line, "@@"):
			color = colorCyan
		}
		if p.color && color != "" {
			line = color + strings.TrimSuffix(line, "\n") + colorReset + "\n"
		}
		io.WriteString(p.out, line)
	}
	return nil
}

// diffYAML renders an object for the diff without what the API server
// keeps for itself: status and the bookkeeping of metadata.
func diffYAML(obj *unstructured.Unstructured) (string, error) {
	if obj == nil {
		return "", nil
	}
	obj = obj.DeepCopy()
	delete(obj.Object, "status")
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	// kubectl apply keeps a Secret's whole last applied manifest, values
	// in clear, in an annotation that the data masking does not reach.
	if obj.GetKind() == "Secret" && obj.GroupVersionKind().Group == "" {
		unstructured.RemoveNestedField(obj.Object, "metadata", "annotations", corev1.LastAppliedConfigAnnotation)
	}
	data, err := yaml.Marshal(obj.Object)
	return string(data), err
}
