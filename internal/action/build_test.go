package action

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

const smokeJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: smoke
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: smoke
        image: busybox
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func jobStage(group string, path string) stagesetv1.Stage {
	a := stagesetv1.Action{Name: "smoke", Job: &stagesetv1.JobAction{Path: path}}
	actions := &stagesetv1.StageActions{}
	switch group {
	case GroupPre:
		actions.Pre = []stagesetv1.Action{a}
	case GroupPost:
		actions.Post = []stagesetv1.Action{a}
	default:
		actions.OnFailure = []stagesetv1.Action{a}
	}
	return stagesetv1.Stage{Name: "app", Actions: actions}
}

func TestBuildJobsKeysJobsByGroupAndAction(t *testing.T) {
	g := NewWithT(t)
	root := writeFiles(t, map[string]string{"jobs/smoke.yaml": smokeJob})
	for _, group := range []string{GroupPre, GroupPost, GroupOnFailure} {
		stage := jobStage(group, "jobs")
		g.Expect(HasJobs(stage)).To(BeTrue())
		jobs, err := BuildJobs(root, "team-a", stage, 0)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(jobs).To(HaveKey(Key(group, "smoke")))
		g.Expect(jobs[Key(group, "smoke")]).To(HaveLen(1))
		g.Expect(jobs[Key(group, "smoke")][0].GetNamespace()).To(Equal("team-a"))
	}
	g.Expect(HasJobs(stagesetv1.Stage{Name: "app"})).To(BeFalse())
}

// A job action runs Jobs: anything else its path builds is refused before
// anything is applied.
func TestBuildJobsRefusesWhatIsNotAJob(t *testing.T) {
	g := NewWithT(t)
	root := writeFiles(t, map[string]string{
		"jobs/smoke.yaml": smokeJob,
		"jobs/role.yaml":  "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: escalate\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\n",
	})
	_, err := BuildJobs(root, "team-a", jobStage(GroupPost, "jobs"), 0)
	g.Expect(err).To(MatchError(ContainSubstring(`job action "smoke": ClusterRoleBinding.rbac.authorization.k8s.io escalate is not a batch Job`)))
}

func TestJobRunNamesAreDistinctAndFitALabel(t *testing.T) {
	g := NewWithT(t)
	base := JobRun{Namespace: "team-a", StageSet: "shop", Stage: "app", Group: GroupPost, Action: "smoke", Job: "smoke", Revision: "rev-1"}
	g.Expect(base.Name()).To(HavePrefix("smoke-"))
	seen := map[string]string{base.Name(): "base"}
	for what, other := range map[string]JobRun{
		"namespace": func() JobRun { j := base; j.Namespace = "team-b"; return j }(),
		"stageset":  func() JobRun { j := base; j.StageSet = "shop2"; return j }(),
		"stage":     func() JobRun { j := base; j.Stage = "db"; return j }(),
		"group":     func() JobRun { j := base; j.Group = GroupPre; return j }(),
		"action":    func() JobRun { j := base; j.Action = "other"; return j }(),
		"revision":  func() JobRun { j := base; j.Revision = "rev-2"; return j }(),
	} {
		name := other.Name()
		g.Expect(seen).NotTo(HaveKey(name), "a different %s gives the same Job name", what)
		seen[name] = what
	}
	long := base
	long.Job = strings.Repeat("j", 80)
	g.Expect(len(long.Name())).To(BeNumerically("<=", 63))
}
