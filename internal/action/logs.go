package action

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The log tail of a failed Job's pod that goes into the failure message:
// enough lines to show the error, bounded so a Ready message stays
// readable.
const (
	logTailLines = 20
	logTailBytes = 2048
)

// LogReader reads the end of a container's log.
type LogReader interface {
	TailLog(ctx context.Context, namespace, pod, container string) (string, error)
}

// PodLogs reads container logs through the pods/log subresource, with the
// identity of Config (the StageSet's).
type PodLogs struct {
	Config *rest.Config
}

// TailLog returns at most the last logTailLines lines and logTailBytes bytes
// of the container's log.
func (p *PodLogs) TailLog(ctx context.Context, namespace, pod, container string) (string, error) {
	pods, err := corev1client.NewForConfig(p.Config)
	if err != nil {
		return "", err
	}
	lines, limit := int64(logTailLines), int64(logTailBytes)
	out, err := pods.Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
		Container: container, TailLines: &lines, LimitBytes: &limit,
	}).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// failureLog returns the log tail of the pod a failed Job ran last, as a
// suffix for the failure message, or "" when there is none to read: the
// Job's pods are gone, the identity may not read logs, or the node serves
// none. Logs help; their absence never hides the failure itself.
func (r *Runner) failureLog(ctx context.Context, job *unstructured.Unstructured) string {
	if r.Logs == nil {
		return ""
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(job.GetNamespace()),
		client.MatchingLabels{"batch.kubernetes.io/controller-uid": string(job.GetUID())}); err != nil || len(pods.Items) == 0 {
		return ""
	}
	pod := lastPod(pods.Items)
	container := failedContainer(pod)
	tail, err := r.Logs.TailLog(ctx, pod.Namespace, pod.Name, container)
	tail = strings.TrimRight(tail, "\n")
	if err != nil || strings.TrimSpace(tail) == "" {
		return ""
	}
	return fmt.Sprintf("\nlast log lines of pod %s, container %s:\n%s", pod.Name, container, tail)
}

// lastPod is the pod the Job created last: the attempt that failed it.
func lastPod(pods []corev1.Pod) *corev1.Pod {
	sort.SliceStable(pods, func(i, j int) bool {
		return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp)
	})
	return &pods[len(pods)-1]
}

// failedContainer is the pod's first container that terminated with a
// non-zero exit code, else its first container.
func failedContainer(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return cs.Name
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return ""
	}
	return pod.Spec.Containers[0].Name
}
