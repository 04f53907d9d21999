package install

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// defaultRunbookBase is controller.runbookBaseURL of values.yaml.
const defaultRunbookBase = "https://stageset.github.io/stageset-controller/runbooks"

func TestChartRendersDefaults(t *testing.T) {
	m := mustRender(t, "")
	want := []string{
		"CustomResourceDefinition/stagesets.stageset.io",
		"ServiceAccount/stageset-controller",
		"ClusterRole/stageset-controller",
		"ClusterRoleBinding/stageset-controller",
		"ClusterRoleBinding/stageset-controller-cluster-admin",
		"Role/stageset-controller",
		"RoleBinding/stageset-controller-leader-election",
		"Deployment/stageset-controller",
		"Service/stageset-controller",
		"Service/stageset-webhook",
		"ValidatingWebhookConfiguration/stageset-controller",
	}
	var got []string
	for _, o := range m.objects {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("default values render\n%v\nwant\n%v", got, want)
	}
	for _, o := range m.objects {
		if o.GetNamespace() != "" && o.GetNamespace() != releaseNamespace {
			t.Errorf("%s/%s is in namespace %q, not the release's", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	crd := m.one(t, "CustomResourceDefinition", "stagesets.stageset.io")
	if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Error("the CRD lacks helm.sh/resource-policy: keep: uninstalling the chart would delete every StageSet")
	}
	args := containerArgs(t, m)
	for _, a := range []string{"--runbook-base-url=" + defaultRunbookBase, "--enable-leader-election"} {
		if !slices.Contains(args, a) {
			t.Errorf("args %v lack %s", args, a)
		}
	}
	if !strings.Contains(m.notes, "cluster-admin") {
		t.Errorf("NOTES.txt does not warn about cluster-admin:\n%s", m.notes)
	}
}

func TestChartRendersEveryToggle(t *testing.T) {
	m := mustRender(t, allToggles)

	sm := &monitoringv1.ServiceMonitor{}
	into(t, m.one(t, "ServiceMonitor", "stageset-controller"), sm)
	if sm.Labels["release"] != "kube-prometheus-stack" || len(sm.Spec.Endpoints) != 1 ||
		sm.Spec.Endpoints[0].Port != "http-prom" || sm.Spec.Endpoints[0].Interval != "15s" {
		t.Errorf("ServiceMonitor: labels %v, endpoints %+v", sm.Labels, sm.Spec.Endpoints)
	}
	// The ServiceMonitor selects the metrics Service only: its job label is
	// the Service name, which the pod-down alert selects.
	svc := &corev1.Service{}
	into(t, m.one(t, "Service", "stageset-controller"), svc)
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %q", k, v, svc.Labels[k])
		}
	}
	if hook := m.one(t, "Service", "stageset-webhook"); hook.GetLabels()["app.kubernetes.io/component"] == "metrics" {
		t.Error("the ServiceMonitor would also select the webhook Service")
	}

	rules := prometheusRules(t, m)
	if len(rules) != 6 || rules[5].Alert != "StageSetNotReadyLong" {
		t.Errorf("PrometheusRule has %d rules, want the five alerts and the extra rule", len(rules))
	}

	cm := m.one(t, "ConfigMap", "stageset-controller-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack the Grafana sidecar's", cm.GetLabels())
	}
	dash, _, _ := unstructured.NestedString(cm.Object, "data", "stageset-controller.json")
	if dash != strings.TrimRight(string(readRepoFile(t, "config/monitoring/grafana/stageset-controller.json")), "\n") {
		t.Error("the dashboard ConfigMap differs from config/monitoring/grafana/stageset-controller.json")
	}
	if !json.Valid([]byte(dash)) {
		t.Error("the dashboard ConfigMap holds invalid JSON")
	}

	// cert-manager: a Certificate of a self-signed Issuer, its Secret
	// mounted at --webhook-cert-dir, the CA injected from it.
	cert := m.one(t, "Certificate", "stageset-webhook")
	m.one(t, "Issuer", "stageset-webhook-selfsigned")
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Contains(dns, "stageset-webhook."+releaseNamespace+".svc") {
		t.Errorf("Certificate dnsNames %v miss the webhook Service", dns)
	}
	vwc := m.one(t, "ValidatingWebhookConfiguration", "stageset-controller")
	if got := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != releaseNamespace+"/"+cert.GetName() {
		t.Errorf("cert-manager.io/inject-ca-from = %q, want the Certificate %s/%s", got, releaseNamespace, cert.GetName())
	}
	dep := &appsv1.Deployment{}
	into(t, m.one(t, "Deployment", "stageset-controller"), dep)
	pod := dep.Spec.Template.Spec
	args := pod.Containers[0].Args
	certDir := ""
	for _, a := range args {
		if d, ok := strings.CutPrefix(a, "--webhook-cert-dir="); ok {
			certDir = d
		}
	}
	mounted := ""
	for _, vm := range pod.Containers[0].VolumeMounts {
		if vm.MountPath == certDir {
			for _, v := range pod.Volumes {
				if v.Name == vm.Name && v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
		}
	}
	if !slices.Contains(args, "--webhook-cert-mode=cert-manager") || certDir == "" || mounted != secret {
		t.Errorf("cert-manager mode: args %v, Secret %q mounted at the cert dir, want %q", args, mounted, secret)
	}

	for _, a := range []string{"--default-service-account=stageset-reconciler", "--concurrent=8", "--no-cross-namespace-refs=true"} {
		if !slices.Contains(args, a) {
			t.Errorf("args %v lack %s", args, a)
		}
	}
	if len(m.find("ClusterRoleBinding")) != 1 {
		t.Errorf("rbac.clusterAdmin=false still renders %d ClusterRoleBindings", len(m.find("ClusterRoleBinding")))
	}
	if *dep.Spec.Replicas != 2 || pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 ||
		pod.Affinity == nil || pod.Affinity.NodeAffinity == nil || pod.PriorityClassName != "system-cluster-critical" ||
		len(pod.ImagePullSecrets) != 1 || dep.Spec.Template.Labels["team"] != "platform" ||
		dep.Spec.Template.Annotations["example.com/owner"] != "platform" {
		t.Errorf("scheduling values did not reach the pod: %+v", pod)
	}
}

// TestChartLints runs `helm lint --strict`'s checks: warnings fail too.
func TestChartLints(t *testing.T) {
	kube := &common.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	for _, doc := range []string{"", allToggles} {
		for _, msg := range lint.RunAll(chartDir, values(t, doc), releaseNamespace, lint.WithKubeVersion(kube)).Messages {
			if msg.Severity >= support.WarningSev {
				t.Errorf("helm lint: %s", msg)
			}
		}
	}
}

func TestServiceMonitorDisabledRendersNone(t *testing.T) {
	m := mustRender(t, "metrics: {serviceMonitor: {enabled: false}, prometheusRule: {enabled: true}}")
	if sms := m.find("ServiceMonitor"); len(sms) != 0 {
		t.Errorf("serviceMonitor.enabled=false rendered %d ServiceMonitors", len(sms))
	}
	m.one(t, "PrometheusRule", "stageset-controller")
}

func TestClusterAdminOffNeedsADefaultServiceAccount(t *testing.T) {
	_, err := renderChart(t, values(t, "rbac: {clusterAdmin: false}"))
	if err == nil || !strings.Contains(err.Error(), "controller.defaultServiceAccount") {
		t.Errorf("rbac.clusterAdmin=false without a default service account rendered (err %v)", err)
	}
}

func TestValuesSchemaRejectsBadValues(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown cert mode":       "webhook: {certMode: vault}",
		"misspelt key":            "replica: 2",
		"negative replicas":       "replicas: -1",
		"threshold not a number":  "metrics: {prometheusRule: {thresholds: {reconcileErrors: {count: three}}}}",
		"window not a duration":   "metrics: {prometheusRule: {thresholds: {podDown: {for: 5 minutes}}}}",
		"interval not a duration": "metrics: {serviceMonitor: {interval: 30 seconds}}",
		"runbook base not a URL":  "controller: {runbookBaseURL: docs/runbooks}",
		"extra arg without --":    "controller: {extraArgs: [concurrent=8]}",
		"alert label not string":  "metrics: {prometheusRule: {extraAlertLabels: {tier: {a: b}}}}",
		"extra rule without expr": "metrics: {prometheusRule: {extraRules: [{alert: X}]}}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderChart(t, values(t, doc))
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Errorf("%s: rendered, or failed for another reason than the schema: %v", doc, err)
			}
		})
	}
}

// containerArgs returns the args of the default Deployment's container.
func containerArgs(t *testing.T, m *manifests) []string {
	t.Helper()
	dep := &appsv1.Deployment{}
	into(t, m.one(t, "Deployment", "stageset-controller"), dep)
	return dep.Spec.Template.Spec.Containers[0].Args
}

// prometheusRules returns the rules of the only group of the PrometheusRule.
func prometheusRules(t *testing.T, m *manifests) []monitoringv1.Rule {
	t.Helper()
	pr := &monitoringv1.PrometheusRule{}
	into(t, m.one(t, "PrometheusRule", "stageset-controller"), pr)
	if len(pr.Spec.Groups) != 1 {
		t.Fatalf("PrometheusRule has %d groups, want 1", len(pr.Spec.Groups))
	}
	return pr.Spec.Groups[0].Rules
}
