package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/scheme"
)

// watchList prints items, then follows changes from resourceVersion until
// ctx ends: on a terminal the whole table is redrawn in place, elsewhere a
// row is appended whenever a StageSet's row changes.
func (o *getOptions) watchList(ctx context.Context, out io.Writer, cfg *rest.Config, ns string, args []string,
	selector *statusSelector, items []stagesetv1.StageSet, resourceVersion string) error {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	listOpts := []client.ListOption{}
	if !o.allNamespaces || len(args) == 1 {
		listOpts = append(listOpts, client.InNamespace(ns))
	}
	if len(args) == 1 {
		listOpts = append(listOpts, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", args[0])})
	}
	// RetryWatcher resumes from the last resource version when the API
	// server closes the watch, so a long --watch misses no change.
	w, err := watchtools.NewRetryWatcherWithContext(ctx, resourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return wc.Watch(ctx, &stagesetv1.StageSetList{}, append(listOpts, &client.ListOptions{Raw: &opts})...)
		},
	})
	if err != nil {
		return err
	}
	defer w.Stop()

	view := &watchView{o: o, out: out, objects: map[string]stagesetv1.StageSet{}, printed: map[string]string{}, block: liveBlock{out: out}}
	for i := range items {
		view.objects[keyOf(&items[i])] = items[i]
	}
	view.render("")
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			switch ev.Type {
			case watch.Error:
				return fmt.Errorf("watching StageSets: %w", apierrors.FromObject(ev.Object))
			case watch.Bookmark:
				continue
			}
			obj, ok := ev.Object.(*stagesetv1.StageSet)
			if !ok {
				continue
			}
			key := keyOf(obj)
			if ev.Type == watch.Deleted || !selector.matches(obj) {
				delete(view.objects, key)
			} else {
				view.objects[key] = *obj
			}
			view.render(key)
		}
	}
}

func keyOf(obj *stagesetv1.StageSet) string { return obj.Namespace + "/" + obj.Name }

// watchView is what get --watch shows.
type watchView struct {
	o       *getOptions
	out     io.Writer
	objects map[string]stagesetv1.StageSet
	// printed is the last row appended per StageSet (not on a terminal).
	printed       map[string]string
	headerPrinted bool
	block         liveBlock
}

// render shows the view after the StageSet key changed ("" at the start).
func (v *watchView) render(changed string) {
	keys := make([]string, 0, len(v.objects))
	for k := range v.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := make([]stagesetv1.StageSet, 0, len(keys))
	for _, k := range keys {
		items = append(items, v.objects[k])
	}

	if v.o.live {
		text := "No StageSets found.\n"
		if len(items) > 0 {
			text = v.o.table(items, true)
		}
		v.block.draw(text)
		return
	}

	// Appended lines: the header once, then a row for every StageSet whose
	// row changed. Rows are aligned with everything currently listed.
	lines := strings.Split(strings.TrimSuffix(v.o.table(items, true), "\n"), "\n")
	if !v.headerPrinted {
		fmt.Fprintln(v.out, lines[0])
		v.headerPrinted = true
	}
	for i, k := range keys {
		row := lines[i+1]
		if v.printed[k] != strings.Join(strings.Fields(row), " ") {
			v.printed[k] = strings.Join(strings.Fields(row), " ")
			fmt.Fprintln(v.out, row)
		}
	}
	if _, listed := v.objects[changed]; changed != "" && !listed && v.printed[changed] != "" {
		delete(v.printed, changed)
		ns, name, _ := strings.Cut(changed, "/")
		if v.o.allNamespaces {
			fmt.Fprintf(v.out, "%s\t%s\t(deleted or no longer selected)\n", ns, name)
		} else {
			fmt.Fprintf(v.out, "%s\t(deleted or no longer selected)\n", name)
		}
	}
}
