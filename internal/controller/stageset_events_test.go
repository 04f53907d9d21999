package controller

import (
	"context"
	"strings"
	"testing"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func reasons(evs []eventv1.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Severity+"/"+e.Reason)
	}
	return out
}

func TestEventsReachNotificationControllerOncePerChange(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src, obj := readyStageSet(t, g, ns, files{"cm.yaml": configMap("cm")}, stage("a", "./"))

	g.Eventually(func() []string { return reasons(notifications.For(ns, "app")) }, timeout, poll).
		Should(Equal([]string{"info/Succeeded"}))
	ev := notifications.For(ns, "app")[0]
	g.Expect(ev.InvolvedObject.Kind).To(Equal(stagesetv1.StageSetKind))
	g.Expect(ev.Message).To(Equal("Applied revision: rev-1 (1 stages)"))
	g.Expect(ev.Metadata).To(HaveKeyWithValue("stageset.io/revision", "rev-1"))
	g.Expect(ev.ReportingController).To(Equal(ControllerName))

	// A steady-state run (requested) emits nothing.
	requestReconcile(g, obj, "again")
	g.Consistently(func() int { return len(notifications.For(ns, "app")) }, "1s", poll).Should(Equal(1))

	// A failing revision: one Warning StageFailed event.
	src.publish("rev-2", files{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: [1]}\n"})
	g.Eventually(func() []string { return reasons(notifications.For(ns, "app")) }, timeout, poll).
		Should(Equal([]string{"info/Succeeded", "error/StageFailed"}))
	failedEv := notifications.For(ns, "app")[1]
	g.Expect(failedEv.Message).To(HavePrefix(`stage "a" failed: `))
	stageFailedLink := " (runbook: " + testRunbookBase + "/stagefailed/)"
	g.Expect(failedEv.Message).To(HaveSuffix(stageFailedLink), "the Flux event links the runbook")
	g.Expect(notifications.For(ns, "app")[0].Message).NotTo(ContainSubstring("runbook"))
	g.Expect(failedEv.Metadata).To(HaveKeyWithValue("stageset.io/revision", "rev-2"))

	// A new good revision: Succeeded again.
	src.publish("rev-3", files{"cm.yaml": configMap("cm", "v", "3")})
	g.Eventually(func() []string { return reasons(notifications.For(ns, "app")) }, timeout, poll).
		Should(Equal([]string{"info/Succeeded", "error/StageFailed", "info/Succeeded"}))

	// The same events are Kubernetes Events.
	var list corev1.EventList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var kube []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == "app" {
			kube = append(kube, e.Type+"/"+e.Reason)
			if e.Type == corev1.EventTypeWarning {
				g.Expect(e.Message).To(HaveSuffix(stageFailedLink), "the Kubernetes event links the runbook")
			}
		}
	}
	g.Expect(strings.Join(kube, ",")).To(ContainSubstring("Warning/StageFailed"))
	g.Expect(strings.Join(kube, ",")).To(ContainSubstring("Normal/Succeeded"))
}
