package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

type getOptions struct {
	allNamespaces  bool
	output         string
	watch          bool
	statusSelector string
	// live redraws the table in place (--watch on a terminal).
	live bool
	now  func() time.Time
}

func newGetCommand(k *kubeOptions) *cobra.Command {
	o := &getOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List StageSets with their readiness, revision and stage progress",
		Long: `Lists StageSets like flux get kustomizations: NAME, READY, REVISION, STAGES
(ready/total), SUSPENDED and MESSAGE; -o wide adds the Ready reason, the
sources and how long Ready has had its status. --watch keeps the list
current: on a terminal the rows are redrawn in place, elsewhere a line is
appended for every change.`,
		Example: `  stagesetctl get
  stagesetctl get -A --status-selector ready=false
  stagesetctl get shop -n apps -o yaml
  stagesetctl get -n apps --watch`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "wide", "yaml", "json"); err != nil {
				return err
			}
			if o.watch && (o.output == "yaml" || o.output == "json") {
				return fmt.Errorf("--watch prints a table: it does not go with -o %s", o.output)
			}
			selector, err := parseStatusSelector(o.statusSelector)
			if err != nil {
				return err
			}
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			items, resourceVersion, err := o.list(cmd.Context(), c, ns, args)
			if err != nil {
				return err
			}
			items = selector.filter(items)
			if !o.watch {
				return o.print(cmd.OutOrStdout(), items)
			}
			o.live = isTerminal(cmd.OutOrStdout())
			cfg, err := k.config()
			if err != nil {
				return err
			}
			return o.watchList(cmd.Context(), cmd.OutOrStdout(), cfg, ns, args, selector, items, resourceVersion)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List StageSets of every namespace.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: wide, yaml or json (default: a table).")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "After listing, keep the list current as StageSets change.")
	cmd.Flags().StringVar(&o.statusSelector, "status-selector", "",
		"Only StageSets with this condition status, as CONDITION=STATUS (e.g. ready=false, stalled=true).")
	return cmd
}

func (o *getOptions) list(ctx context.Context, c client.Client, ns string, args []string) ([]stagesetv1.StageSet, string, error) {
	if len(args) == 1 && o.watch {
		// A watch starts from the resource version of a list: that of
		// one object may be older than the API server's watch cache keeps
		// (410 Gone) when the object has not changed for a while.
		var list stagesetv1.StageSetList
		if err := c.List(ctx, &list, client.InNamespace(ns),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", args[0])}); err != nil {
			return nil, "", err
		}
		if len(list.Items) == 0 {
			return nil, "", fmt.Errorf("StageSet %s/%s not found", ns, args[0])
		}
		return list.Items, list.ResourceVersion, nil
	}
	if len(args) == 1 {
		obj, err := getStageSet(ctx, c, client.ObjectKey{Namespace: ns, Name: args[0]})
		if err != nil {
			return nil, "", err
		}
		return []stagesetv1.StageSet{*obj}, obj.ResourceVersion, nil
	}
	var list stagesetv1.StageSetList
	var opts []client.ListOption
	if !o.allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, "", err
	}
	return list.Items, list.ResourceVersion, nil
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
		return printStructured(out, o.output, data)
	}

	if len(items) == 0 {
		_, err := fmt.Fprintln(out, "No StageSets found.")
		return err
	}
	_, err := io.WriteString(out, o.table(items, true))
	return err
}

// header is the table's first row.
func (o *getOptions) header() []string {
	h := []string{"NAME", "READY", "REVISION", "STAGES", "SUSPENDED", "MESSAGE"}
	if o.output == "wide" {
		h = []string{"NAME", "READY", "REASON", "REVISION", "STAGES", "SUSPENDED", "SOURCES", "SINCE", "MESSAGE"}
	}
	if o.allNamespaces {
		h = append([]string{"NAMESPACE"}, h...)
	}
	return h
}

// table renders items as aligned rows, with the header when withHeader.
func (o *getOptions) table(items []stagesetv1.StageSet, withHeader bool) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if withHeader {
		fmt.Fprintln(w, strings.Join(o.header(), "\t"))
	}
	for i := range items {
		fmt.Fprintln(w, strings.Join(o.row(&items[i]), "\t"))
	}
	w.Flush()
	return b.String()
}

// row is one StageSet's row, in the columns of header.
func (o *getOptions) row(obj *stagesetv1.StageSet) []string {
	ready, reason, message, since := "Unknown", "", "", "-"
	if c := conditions.Get(obj, meta.ReadyCondition); c != nil {
		ready, reason, message = string(c.Status), c.Reason, c.Message
		if !c.LastTransitionTime.IsZero() {
			since = duration.HumanDuration(o.now().Sub(c.LastTransitionTime.Time))
		}
	}
	// A message is one line in a table.
	message = oneLine(message)
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
	stages := fmt.Sprintf("%d/%d", done, len(obj.Spec.Stages))
	suspended := fmt.Sprint(obj.Spec.Suspend)
	row := []string{obj.Name, ready, revision, stages, suspended, message}
	if o.output == "wide" {
		row = []string{obj.Name, ready, orDash(reason), revision, stages, suspended, sources(obj), since, message}
	}
	if o.allNamespaces {
		row = append([]string{obj.Namespace}, row...)
	}
	return row
}

// sources lists the distinct sources the stages are built from.
func sources(obj *stagesetv1.StageSet) string {
	seen := map[string]bool{}
	for _, ref := range obj.GetSourceRefs() {
		s := ref.Kind + "/" + ref.Name
		if ref.Namespace != obj.Namespace {
			s = ref.Kind + "/" + ref.Namespace + "/" + ref.Name
		}
		seen[s] = true
	}
	if len(seen) == 0 {
		return "-"
	}
	list := make([]string, 0, len(seen))
	for s := range seen {
		list = append(list, s)
	}
	sort.Strings(list)
	return strings.Join(list, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statusSelector is --status-selector CONDITION=STATUS, as in flux get:
// the condition type and status are compared without regard to case.
type statusSelector struct {
	condition, status string
}

func parseStatusSelector(s string) (*statusSelector, error) {
	if s == "" {
		return nil, nil
	}
	condition, status, ok := strings.Cut(s, "=")
	if !ok || condition == "" || status == "" {
		return nil, fmt.Errorf("--status-selector must be CONDITION=STATUS, e.g. ready=false, got %q", s)
	}
	return &statusSelector{condition: condition, status: status}, nil
}

func (s *statusSelector) matches(obj *stagesetv1.StageSet) bool {
	if s == nil {
		return true
	}
	for _, c := range obj.Status.Conditions {
		if strings.EqualFold(c.Type, s.condition) {
			return strings.EqualFold(string(c.Status), s.status)
		}
	}
	// A StageSet not reconciled yet has no Ready condition: it is
	// Unknown, which ready=unknown selects.
	return strings.EqualFold(s.status, string(metav1.ConditionUnknown)) && strings.EqualFold(s.condition, meta.ReadyCondition)
}

func (s *statusSelector) filter(items []stagesetv1.StageSet) []stagesetv1.StageSet {
	if s == nil {
		return items
	}
	kept := items[:0]
	for i := range items {
		if s.matches(&items[i]) {
			kept = append(kept, items[i])
		}
	}
	return kept
}
