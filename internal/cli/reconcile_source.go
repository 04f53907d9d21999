package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// reconcileSources is --with-source: like flux reconcile kustomization
// --with-source, every source the stages name is asked for a new fetch and
// waited on, one after the other, before the StageSet is. An
// ExternalArtifact has no controller to ask (its producer decides when it
// changes), so it is skipped with a note.
func (o *reconcileOptions) reconcileSources(ctx context.Context, out io.Writer, c client.Client, obj *stagesetv1.StageSet, token string) error {
	for _, ref := range obj.GetSourceRefs() {
		id := ref.Kind + "/" + ref.Namespace + "/" + ref.Name
		if ref.Kind == stagesetv1.ExternalArtifactKind {
			fmt.Fprintf(out, "► skipping %s: an ExternalArtifact is updated by its producer, not on request\n", id)
			continue
		}
		if err := o.reconcileSource(ctx, out, c, ref, id, token); err != nil {
			return err
		}
	}
	return nil
}

func (o *reconcileOptions) reconcileSource(ctx context.Context, out io.Writer, c client.Client, ref stagesetv1.SourceReference, id, token string) error {
	src := &unstructured.Unstructured{}
	src.SetAPIVersion(ref.APIVersion)
	src.SetKind(ref.Kind)
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	if err := c.Get(ctx, key, src); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s not found", id)
		}
		return fmt.Errorf("reading %s: %w", id, err)
	}
	if suspended, _, _ := unstructured.NestedBool(src.Object, "spec", "suspend"); suspended {
		return fmt.Errorf("%s is suspended: resume it first (flux resume source %s %s -n %s)",
			id, sourceCommand(ref.Kind), ref.Name, ref.Namespace)
	}
	patch := client.MergeFrom(src.DeepCopy())
	annotations := src.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[meta.ReconcileRequestAnnotation] = token
	src.SetAnnotations(annotations)
	fmt.Fprintf(out, "► annotating %s\n", id)
	if err := c.Patch(ctx, src, patch); err != nil {
		return fmt.Errorf("annotating %s: %w", id, err)
	}
	fmt.Fprintf(out, "◎ waiting for %s to be reconciled\n", id)

	for {
		if err := c.Get(ctx, key, src); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("timed out after %s waiting for %s to handle the request (is source-controller running?)", o.timeout, id)
			}
			return err
		}
		if done, revision, err := sourceHandled(src, token); done {
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			fmt.Fprintf(out, "✔ fetched revision %s\n", revision)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s to handle the request (is source-controller running?)", o.timeout, id)
		case <-time.After(reconcilePoll):
		}
	}
}

// sourceHandled tells whether source-controller has handled the request
// token and decided Ready, with the artifact's revision, the way flux
// reconcile source waits.
func sourceHandled(src *unstructured.Unstructured, token string) (bool, string, error) {
	var status struct {
		meta.ReconcileRequestStatus `json:",inline"`
		ObservedGeneration          int64              `json:"observedGeneration"`
		Conditions                  []metav1.Condition `json:"conditions"`
		Artifact                    *meta.Artifact     `json:"artifact"`
	}
	raw, _, _ := unstructured.NestedMap(src.Object, "status")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &status); err != nil {
		return true, "", fmt.Errorf("reading its status: %w", err)
	}
	if status.LastHandledReconcileAt != token || status.ObservedGeneration != src.GetGeneration() {
		return false, "", nil
	}
	c := apimeta.FindStatusCondition(status.Conditions, meta.ReadyCondition)
	if c == nil || c.Status == metav1.ConditionUnknown {
		return false, "", nil
	}
	if c.Status == metav1.ConditionFalse {
		return true, "", fmt.Errorf("%s: %s", c.Reason, c.Message)
	}
	if status.Artifact == nil {
		return true, "", errors.New("it is Ready but has no artifact")
	}
	return true, status.Artifact.Revision, nil
}

// sourceCommand is the flux CLI's name for a source kind.
func sourceCommand(kind string) string {
	switch kind {
	case stagesetv1.GitRepositoryKind:
		return "git"
	case stagesetv1.OCIRepositoryKind:
		return "oci"
	case stagesetv1.BucketKind:
		return "bucket"
	}
	return kind
}
