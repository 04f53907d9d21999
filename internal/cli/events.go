package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/scheme"
)

type eventsOptions struct {
	watch bool
	// now is what LAST SEEN is relative to; tests set it.
	now func() time.Time
}

func newEventsCommand(k *kubeOptions) *cobra.Command {
	return eventsCommand(k, &eventsOptions{now: time.Now})
}

func eventsCommand(k *kubeOptions, o *eventsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events NAME",
		Short: "Show the events of a StageSet and of the Jobs it started",
		Long: `Events prints the Kubernetes Events of a StageSet and of the migration
and action Jobs it started, oldest first, like flux events. With --watch it
keeps printing events as they arrive, until interrupted.`,
		Example: `  stagesetctl events shop -n apps
  stagesetctl events shop -n apps --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := k.config()
			if err != nil {
				return err
			}
			ns, err := k.namespace()
			if err != nil {
				return err
			}
			c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
			if err != nil {
				return explain(err)
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
		},
	}
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "After listing, keep printing new events until interrupted.")
	return cmd
}

// eventSource is one stream of events: those of the StageSet, or those of
// Jobs, which keep only the Jobs of the StageSet.
type eventSource struct {
	fields client.MatchingFields
	// resourceVersion is where the last list or watch event left off.
	resourceVersion string
}

// stageSetEvents collects the events of one StageSet and of its Jobs.
type stageSetEvents struct {
	c   client.WithWatch
	obj *stagesetv1.StageSet
	// jobs records, by name, whether a Job of the namespace belongs to the
	// StageSet, so that each Job is looked up once.
	jobs map[string]bool
	// seen is the resourceVersion printed for each event, so that a relist
	// after an expired watch prints only what changed.
	seen map[types.UID]string
	// mu guards jobs and seen: the two watches filter concurrently.
	mu sync.Mutex
}

func (o *eventsOptions) run(ctx context.Context, out io.Writer, c client.WithWatch, key client.ObjectKey) error {
	obj, err := getStageSet(ctx, c, key)
	if err != nil {
		return err
	}
	s := &stageSetEvents{c: c, obj: obj, jobs: map[string]bool{}, seen: map[types.UID]string{}}
	sources := []*eventSource{
		{fields: client.MatchingFields{"involvedObject.kind": stagesetv1.StageSetKind, "involvedObject.name": obj.Name}},
		{fields: client.MatchingFields{"involvedObject.kind": "Job"}},
	}
	if err := s.listJobs(ctx); err != nil {
		return err
	}
	var events []corev1.Event
	for _, src := range sources {
		list, err := s.list(ctx, src)
		if err != nil {
			return err
		}
		events = append(events, list...)
	}
	sortEvents(events)

	t := newTable("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")
	if len(events) == 0 && !o.watch {
		_, err := fmt.Fprintf(out, "No events found for StageSet %s.\n", key)
		return err
	}
	for i := range events {
		t.add(o.row(&events[i])...)
	}
	if err := t.print(out); err != nil || !o.watch {
		return err
	}

	// Watch both sources; print each event as it arrives, in arrival order.
	arrived := make(chan corev1.Event)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(sources))
	for _, src := range sources {
		go func() { errs <- s.watch(ctx, src, arrived) }()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case e := <-arrived:
			t.add(o.row(&e)...)
			if err := t.print(out); err != nil {
				return err
			}
		}
	}
}

// listJobs records the Jobs labelled as started by the StageSet (action
// and migration Jobs carry the stage's ownership labels, see
// apply.Owner.Labels). A label proves nothing about who wrote an object:
// anyone who can create Jobs in the namespace can label one so. For a
// read-only view of events that is acceptable; nothing is acted upon.
func (s *stageSetEvents) listJobs(ctx context.Context) error {
	var jobs batchv1.JobList
	if err := s.c.List(ctx, &jobs, client.InNamespace(s.obj.Namespace), client.MatchingLabels(s.jobLabels())); err != nil {
		return fmt.Errorf("listing the Jobs of StageSet %s/%s: %w", s.obj.Namespace, s.obj.Name, err)
	}
	for _, j := range jobs.Items {
		s.jobs[j.Name] = true
	}
	return nil
}

// jobLabels are the ownership labels of the StageSet, without the stage.
func (s *stageSetEvents) jobLabels() map[string]string {
	labels := apply.Owner{Name: s.obj.Name, Namespace: s.obj.Namespace}.Labels()
	delete(labels, stagesetv1.StageLabel)
	return labels
}

// isJobOf reports whether the Job named name is one of the StageSet's,
// looking up a Job it has not met yet (one started after the list).
func (s *stageSetEvents) isJobOf(ctx context.Context, name string) bool {
	if known, ok := s.jobs[name]; ok {
		return known
	}
	var job batchv1.Job
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: s.obj.Namespace, Name: name}, &job); err != nil {
		// A Job already gone cannot be told apart; skip its events, and
		// look again next time in case the error was passing.
		return false
	}
	mine := true
	for k, v := range s.jobLabels() {
		if job.Labels[k] != v {
			mine = false
		}
	}
	s.jobs[name] = mine
	return mine
}

// keep reports whether an event is the StageSet's and was not printed yet.
func (s *stageSetEvents) keep(ctx context.Context, e *corev1.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.InvolvedObject.Kind == "Job" && !s.isJobOf(ctx, e.InvolvedObject.Name) {
		return false
	}
	if s.seen[e.UID] == e.ResourceVersion {
		return false
	}
	s.seen[e.UID] = e.ResourceVersion
	return true
}

func (s *stageSetEvents) list(ctx context.Context, src *eventSource) ([]corev1.Event, error) {
	var list corev1.EventList
	if err := s.c.List(ctx, &list, client.InNamespace(s.obj.Namespace), src.fields); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	src.resourceVersion = list.ResourceVersion
	var kept []corev1.Event
	for i := range list.Items {
		if s.keep(ctx, &list.Items[i]) {
			kept = append(kept, list.Items[i])
		}
	}
	return kept, nil
}

// watch sends the new and changed events of src until ctx is done. A
// watch the server closes is resumed where it left off; one whose
// resourceVersion expired starts again from a fresh list, which prints
// only the events not printed yet.
func (s *stageSetEvents) watch(ctx context.Context, src *eventSource, arrived chan<- corev1.Event) error {
	for ctx.Err() == nil {
		w, err := s.c.Watch(ctx, &corev1.EventList{}, client.InNamespace(s.obj.Namespace), src.fields,
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: src.resourceVersion, AllowWatchBookmarks: true}})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching events: %w", err)
		}
		expired, err := s.drain(ctx, src, w, arrived)
		w.Stop()
		if err != nil {
			return err
		}
		if expired {
			events, err := s.list(ctx, src)
			if err != nil {
				return err
			}
			sortEvents(events)
			for _, e := range events {
				select {
				case arrived <- e:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
	return nil
}

// drain forwards the events of one watch until it ends; expired says the
// watch ended because its resourceVersion is too old.
func (s *stageSetEvents) drain(ctx context.Context, src *eventSource, w watch.Interface, arrived chan<- corev1.Event) (expired bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
					return true, nil
				}
				return false, fmt.Errorf("watching events: %w", err)
			case watch.Added, watch.Modified, watch.Bookmark:
				e, ok := ev.Object.(*corev1.Event)
				if !ok {
					continue
				}
				src.resourceVersion = e.ResourceVersion
				if ev.Type == watch.Bookmark || !s.keep(ctx, e) {
					continue
				}
				select {
				case arrived <- *e:
				case <-ctx.Done():
					return false, nil
				}
			}
		}
	}
}

// row is an event as flux events prints it.
func (o *eventsOptions) row(e *corev1.Event) []string {
	return []string{o.lastSeen(e), e.Type, e.Reason, e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name, oneLine(e.Message)}
}

// lastSeen is the LAST SEEN column of kubectl and flux events: the age of
// the event, and for a repeated one its count and first occurrence.
func (o *eventsOptions) lastSeen(e *corev1.Event) string {
	now := o.now()
	first := e.EventTime.Time
	if first.IsZero() {
		first = e.FirstTimestamp.Time
	}
	switch {
	case e.Series != nil:
		return fmt.Sprintf("%s (x%d over %s)", since(now, e.Series.LastObservedTime.Time), e.Series.Count, since(now, first))
	case e.Count > 1:
		return fmt.Sprintf("%s (x%d over %s)", since(now, e.LastTimestamp.Time), e.Count, since(now, first))
	}
	return since(now, eventTime(e))
}

// eventTime is the time kubectl sorts events by: the last occurrence of
// a series, else lastTimestamp, else eventTime, else firstTimestamp.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// sortEvents orders events oldest first. lastTimestamp has a resolution
// of one second, so two events of one rollout often tie: they are then
// ordered by resourceVersion, which etcd increments on every write. Clients
// are not meant to compare resourceVersions; for the order of a display,
// never for a decision, it is the best clue there is. Names break the
// remaining ties, so that the output does not flicker.
func sortEvents(events []corev1.Event) {
	slices.SortStableFunc(events, func(a, b corev1.Event) int {
		if c := eventTime(&a).Compare(eventTime(&b)); c != 0 {
			return c
		}
		ra, errA := strconv.ParseUint(a.ResourceVersion, 10, 64)
		rb, errB := strconv.ParseUint(b.ResourceVersion, 10, 64)
		if errA == nil && errB == nil && ra != rb {
			return cmp.Compare(ra, rb)
		}
		return strings.Compare(a.Name, b.Name)
	})
}
