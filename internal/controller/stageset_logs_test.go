package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// logsOf returns the log lines of a StageSet at a level ("info", "debug")
// whose message starts with prefix, and the raw text of all its lines.
func logsOf(ns, name, level, prefix string) (entries []map[string]any, all []string) {
	entries, _ = testenv.Logs.Matching(func(e map[string]any) bool {
		msg, _ := e["msg"].(string)
		return e["namespace"] == ns && e["name"] == name && e["level"] == level && strings.HasPrefix(msg, prefix)
	})
	_, all = testenv.Logs.Matching(func(e map[string]any) bool { return e["namespace"] == ns })
	return entries, all
}

// An operator follows a StageSet in the log: one info line per finished
// reconcile (revision, result, next run), one per stage applied with what
// changed, nothing at info level for steady runs that change nothing, and
// never a Secret value.
func TestLogsAnOperatorCanFollow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	const secretValue = "s3cr3t-Value-4711"
	g.Expect(env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
		StringData: map[string]string{"password": secretValue},
	})).To(Succeed())
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/cm.yaml": configMap("a", "password", "${password}"),
		"b/cm.yaml": configMap("b"),
	})
	a := stage("a", "./a")
	a.PostBuild = &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "Secret", Name: "creds"}}}
	obj := newStageSet(ns, "app", src, a, stage("b", "./b"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetectionInterval = &metav1.Duration{Duration: time.Second}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	finished := func(level string) []map[string]any {
		entries, _ := logsOf(ns, "app", level, "Reconciliation finished in ")
		return entries
	}
	g.Eventually(func() []map[string]any { return finished("info") }, timeout, poll).ShouldNot(BeEmpty())
	first := finished("info")[0]
	g.Expect(first["msg"]).To(MatchRegexp(`^Reconciliation finished in [0-9.]+m?s, next run in 1s$`))
	g.Expect(first).To(HaveKeyWithValue("revision", "rev-1"))
	g.Expect(first).To(HaveKeyWithValue("result", stagesetv1.SucceededReason))

	stages, _ := logsOf(ns, "app", "info", "stage applied")
	g.Expect(stages).To(HaveLen(2))
	g.Expect(stages[0]).To(HaveKeyWithValue("stage", "a"))
	g.Expect(stages[0]).To(HaveKeyWithValue("changes", "1 created"))
	g.Expect(stages[0]["changed"]).To(ConsistOf("ConfigMap/" + ns + "/a created"))
	g.Expect(stages[1]).To(HaveKeyWithValue("stage", "b"))

	// Steady runs every second: at debug level only.
	mark := testenv.Logs.Mark()
	linesSince := func(level, prefix string) func() int {
		return func() int {
			entries, _ := testenv.Logs.Since(mark, func(e map[string]any) bool {
				msg, _ := e["msg"].(string)
				return e["namespace"] == ns && e["name"] == "app" && e["level"] == level && strings.HasPrefix(msg, prefix)
			})
			return len(entries)
		}
	}
	g.Consistently(linesSince("info", ""), "3s", poll).Should(BeZero(), "a steady run that changes nothing logs nothing at info level")
	g.Expect(linesSince("debug", "Reconciliation finished in ")()).To(BeNumerically(">=", 2), "steady runs happened, logged at debug level")

	// Drift corrected is news again.
	cm := configMapObj(ns, "b")
	get(g, cm)
	cm.Data = map[string]string{"k": "edited"}
	g.Expect(env.Client.Update(ctx, cm)).To(Succeed())
	g.Eventually(func() []map[string]any {
		entries, _ := logsOf(ns, "app", "info", "stage applied")
		return entries
	}, timeout, poll).Should(ContainElement(And(HaveKeyWithValue("stage", "b"), HaveKeyWithValue("changes", "1 configured"))))
	g.Eventually(func() int { return len(finished("info")) }, timeout, poll).Should(BeNumerically(">", 1))

	_, all := logsOf(ns, "app", "", "")
	g.Expect(all).NotTo(BeEmpty())
	for _, line := range all {
		g.Expect(line).NotTo(ContainSubstring(secretValue), "a Secret value in the log")
	}
}
