package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/names"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// A StageSet name may be a 253-character DNS subdomain while a label value
// holds 63 characters and a Job name 63: such a StageSet rolls out, runs a
// migration and rolls back like any other, its objects labelled with the
// cut and hashed name.
func TestStageSetWithTheLongestNameRollsOutMigratesAndRollsBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	name := strings.Repeat("s", 200) + "." + strings.Repeat("t", 52)
	g.Expect(name).To(HaveLen(253))

	content := func(app, gate string, extra files) files {
		f := files{"db/app.yaml": configMap("app", "v", app), "db/gate.yaml": configMap("gate", "state", gate)}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", content("1", "fine", nil))
	obj := newStageSet(ns, name, src, gatedStage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)

	// Rolls out, its objects labelled with the fitted name.
	eventuallyReason(t, g, obj, "True/Succeeded")
	app := configMapObj(ns, "app")
	get(g, app)
	g.Expect(app.Labels).To(HaveKeyWithValue(stagesetv1.NameLabel, names.LabelValue(name)))
	g.Expect(names.LabelValue(name)).To(HaveLen(63))

	// Migrates.
	src.publish("rev-2", content("2", "fine", files{"db/m1.yaml": migrationJob("1")}))
	jobName := migration.JobName(name, "db", "1")
	g.Eventually(jobExists(ns, jobName), timeout, poll).Should(BeTrue())
	job := &batchv1.Job{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobName}, job)).To(Succeed())
	g.Expect(job.Labels).To(HaveKeyWithValue(stagesetv1.NameLabel, names.LabelValue(name)))
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, jobName, true, "")).To(Succeed())
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	get(g, app)
	g.Expect(app.Data).To(HaveKeyWithValue("v", "2"))

	// Rolls back to the snapshot of rev-2, and the migration stays done.
	src.publish("rev-3", content("3", "broken", files{"db/m1.yaml": migrationJob("1")}))
	eventuallyReason(t, g, obj, "False/RolledBack")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("rolled back to revision rev-2"))
	get(g, app)
	g.Expect(app.Data).To(HaveKeyWithValue("v", "2"))
	gate := configMapObj(ns, "gate")
	get(g, gate)
	g.Expect(gate.Data).To(HaveKeyWithValue("state", "fine"))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
}
