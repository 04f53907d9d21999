package webhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
	"github.com/stageset/stageset-controller/internal/validation"
)

var env *testenv.Environment

// bypassLabel marks StageSets the webhook does not see, standing in for
// StageSets stored while the webhook was down.
const bypassLabel = "test.stageset.io/bypass-webhook"

// suiteOptions are the flags the suite's webhook runs with.
var suiteOptions = validation.Options{NoCrossNamespaceRefs: true}

func TestMain(m *testing.M) { os.Exit(run(m)) }

// run starts the bed with the StageSet webhook registered in the API server
// the way config deploys it (failurePolicy Fail, create and update) and the
// webhook served by a manager, and waits until the API server reaches it.
func run(m *testing.M) int {
	e, err := testenv.StartWithWebhooks(webhookConfiguration())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stopping:", err)
		}
	}()
	if err := e.StartManager(func(mgr ctrl.Manager) error { return Setup(mgr, suiteOptions) }); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: starting the manager:", err)
		return 1
	}
	env = e
	if err := waitForWebhook(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		return 1
	}
	return m.Run()
}

func webhookConfiguration() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "stageset-controller"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.stageset.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
				Name: "stageset-webhook", Namespace: "stageset-system", Path: ptr.To(ValidatePath),
			}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{stagesetv1.GroupName}, APIVersions: []string{"v1"}, Resources: []string{"stagesets"},
				},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: bypassLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
		}},
	}
}

// waitForWebhook dry-runs the create of an invalid StageSet until the
// webhook, not a connection error, refuses it.
func waitForWebhook() error {
	obj := validStageSet("default", "probe")
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{Type: "Allow", Schedule: "@daily", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Base"}}
	var err error
	for deadline := time.Now().Add(testenv.Timeout); time.Now().Before(deadline); time.Sleep(testenv.Poll) {
		err = env.Client.Create(context.Background(), obj, client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "denied the request") {
			return nil
		}
	}
	return errors.Join(errors.New("the API server never reached the webhook"), err)
}
