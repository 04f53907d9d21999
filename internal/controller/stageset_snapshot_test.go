package controller

import (
	"testing"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// The API server refuses the snapshot Secrets of one StageSet (an admission
// policy, as a cluster's policy engine might): the rollout still succeeds and
// the failure is reported.
func TestSnapshotWriteFailureIsReportedNotFatal(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-snapshots-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "object.metadata.namespace != '" + ns + "'",
				Message:    "snapshots are not allowed here",
			}},
		},
	}
	create(t, policy)
	t.Cleanup(func() { _ = env.Client.Delete(t.Context(), policy) })
	deny := admissionregistrationv1.Deny
	create(t, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{deny},
		},
	})

	// The policy takes a moment to be enforced: wait until it is.
	g.Eventually(func() error {
		probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"}}
		return env.Client.Create(t.Context(), probe)
	}, timeout, poll).Should(MatchError(ContainSubstring("snapshots are not allowed here")))

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason) }, timeout, poll).
		Should(HaveLen(1))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason)[0].Message).To(ContainSubstring("snapshots are not allowed here"))
}
