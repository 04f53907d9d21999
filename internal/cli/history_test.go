package cli

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func newFixedHistoryCommand(k *kubeOptions) *cobra.Command {
	return historyCommand(k, &historyOptions{now: func() time.Time { return fixedNow }})
}

func TestHistoryPrintsRolloutsNewestLast(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	at := func(ago time.Duration) metav1.Time { return metav1.NewTime(fixedNow.Add(-ago)) }
	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}}},
		Status: stagesetv1.StageSetStatus{
			// Newest first, as the controller keeps it.
			History: []stagesetv1.RolloutRecord{
				{Revisions: map[string]string{"GitRepository/" + ns + "/repo": "main@sha1:ccc", "OCIRepository/" + ns + "/db": "v2@sha256:ddd"},
					StartedAt: at(5 * time.Minute), Duration: metav1.Duration{Duration: 92*time.Second + 400*time.Millisecond}, Result: stagesetv1.SucceededReason},
				{Revisions: map[string]string{"GitRepository/" + ns + "/repo": "main@sha1:bbb"},
					StartedAt: at(2 * time.Hour), Duration: metav1.Duration{Duration: 350 * time.Millisecond}, Result: stagesetv1.StageFailedReason},
				{Revisions: map[string]string{"GitRepository/" + ns + "/repo": "main@sha1:aaa"},
					StartedAt: at(50 * time.Hour), Duration: metav1.Duration{Duration: 4 * time.Minute}, Result: stagesetv1.SucceededReason},
			},
		},
	})
	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}}},
	})

	out, err := runAdmin(t, ns, newFixedHistoryCommand, "history", "shop", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "history.golden", out)

	out, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "shop", "-n", ns, "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred())
	var records []stagesetv1.RolloutRecord
	g.Expect(yaml.UnmarshalStrict([]byte(out), &records)).To(Succeed())
	g.Expect(records).To(HaveLen(3))
	g.Expect(records[0].Revisions).To(HaveKeyWithValue("GitRepository/test-xxxxxxxx/repo", "main@sha1:aaa"))
	g.Expect(records[2].Result).To(Equal(stagesetv1.SucceededReason))
	g.Expect(records[2].Revisions).To(HaveLen(2))

	out, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "shop", "-n", ns, "-o", "json")
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "history.json", out)

	out, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "new", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("No rollouts recorded for StageSet test-xxxxxxxx/new.\n"))
	out, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "new", "-n", ns, "-o", "json")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("[]\n"))

	_, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "absent", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/absent not found"))
	_, err = runAdmin(t, ns, newFixedHistoryCommand, "history", "shop", "-n", ns, "-o", "wide")
	g.Expect(err).To(MatchError(ContainSubstring("--output must be yaml or json")))
}
