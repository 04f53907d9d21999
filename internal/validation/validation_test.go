package validation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func d(s string) *metav1.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: v}
}

// valid returns a StageSet that uses every part the rules look at, each in
// a valid way, so that a case breaks exactly one thing.
func valid() *stagesetv1.StageSet {
	return &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "apps"},
		Spec: stagesetv1.StageSetSpec{
			Interval:               *d("5m"),
			RetryInterval:          d("1m"),
			Timeout:                d("2m"),
			DriftDetectionInterval: d("1m"),
			ServiceAccountName:     "deployer",
			KubeConfig:             &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "prod-kubeconfig"}},
			TargetNamespace:        "shop",
			SourceRef:              &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			DependsOn: []meta.DependencyReference{
				{Name: "shop", Namespace: "other"},
				{Name: "db", ReadyExpr: "self.metadata.name == dep.metadata.name"},
			},
			UpdateWindows: []stagesetv1.UpdateWindow{
				{Type: stagesetv1.UpdateWindowAllow, Schedule: "0 9 * * MON-FRI", Duration: *d("8h"), TimeZone: "Europe/Berlin"},
			},
			Stages: []stagesetv1.Stage{
				{Name: "a", Path: "./a", Timeout: d("1m"),
					HealthChecks: []meta.NamespacedObjectKindReference{{Kind: "Deployment", Name: "web", Namespace: "shop"}},
					HealthCheckExprs: []kustomize.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Thing",
						HealthCheckExpressions: kustomize.HealthCheckExpressions{
							Current: "status.ready == true", Failed: "status.failed", InProgress: "!has(status.ready)"}}},
				},
				{Name: "b", TargetNamespace: "shop-b",
					SourceRef: &stagesetv1.SourceReference{Kind: stagesetv1.OCIRepositoryKind, Name: "oci", Namespace: "apps"},
					Actions: &stagesetv1.StageActions{
						Pre: []stagesetv1.Action{{Name: "pause", Wait: &stagesetv1.WaitAction{Duration: d("1s")}}},
						Post: []stagesetv1.Action{
							{Name: "ready", Timeout: d("1m"), Wait: &stagesetv1.WaitAction{
								Target: &stagesetv1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Namespace: "shop"},
								Expr:   "self.status.readyReplicas > 0"}},
							{Name: "scale", Patch: &stagesetv1.PatchAction{
								Target: stagesetv1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
								Type:   "merge", Patch: "spec:\n  replicas: 2\n"}},
							{Name: "unpause", Patch: &stagesetv1.PatchAction{
								Target: stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: "gate"},
								Type:   "json6902", Patch: `[{"op":"add","path":"/data/x","value":"1"}]`}},
							{Name: "notify", HTTP: &stagesetv1.HTTPAction{URL: "https://hooks.example.com/x?token=secret",
								Method: "POST", HeadersFrom: &meta.LocalObjectReference{Name: "hdrs"}, ExpectedStatus: []int{200, 204}}},
						},
						OnFailure: []stagesetv1.Action{{Name: "cleanup", Job: &stagesetv1.JobAction{Path: "./jobs/cleanup"}}},
					},
				},
			},
		},
	}
}

func long(n int) string { return strings.Repeat("a", n) }

func TestValidStageSet(t *testing.T) {
	for _, opts := range []Options{{}, {NoCrossNamespaceRefs: false}} {
		if errs := StageSet(valid(), opts); len(errs) > 0 {
			t.Fatalf("valid StageSet refused: %v", errs.ToAggregate())
		}
	}
	// Names at the 63-character limit are fine.
	ss := valid()
	ss.Spec.Stages[0].Name = long(63)
	ss.Spec.Stages[1].Actions.Pre[0].Name = long(63)
	ss.Spec.TargetNamespace = long(63)
	ss.Spec.DependsOn[0].Namespace = long(63)
	if errs := StageSet(ss, Options{}); len(errs) > 0 {
		t.Fatalf("63-character names refused: %v", errs.ToAggregate())
	}
}

func TestStageSetRefusesEachProblemAtItsField(t *testing.T) {
	stage := func(s *stagesetv1.StageSet) *stagesetv1.Stage { return &s.Spec.Stages[0] }
	actions := func(s *stagesetv1.StageSet) *stagesetv1.StageActions { return s.Spec.Stages[1].Actions }
	post := func(s *stagesetv1.StageSet, i int) *stagesetv1.Action { return &actions(s).Post[i] }
	cases := []struct {
		name   string
		opts   Options
		mutate func(*stagesetv1.StageSet)
		// want are "<type> <field>" of every expected error, in order.
		want []string
	}{
		// Durations.
		{"zero interval", Options{}, func(s *stagesetv1.StageSet) { s.Spec.Interval = metav1.Duration{} },
			[]string{"FieldValueInvalid spec.interval"}},
		{"negative retryInterval", Options{}, func(s *stagesetv1.StageSet) { s.Spec.RetryInterval = d("-1s") },
			[]string{"FieldValueInvalid spec.retryInterval"}},
		{"zero timeout", Options{}, func(s *stagesetv1.StageSet) { s.Spec.Timeout = d("0s") },
			[]string{"FieldValueInvalid spec.timeout"}},
		{"zero driftDetectionInterval", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DriftDetectionInterval = d("0s") },
			[]string{"FieldValueInvalid spec.driftDetectionInterval"}},
		{"zero stage timeout", Options{}, func(s *stagesetv1.StageSet) { stage(s).Timeout = d("0s") },
			[]string{"FieldValueInvalid spec.stages[0].timeout"}},
		{"zero action timeout", Options{}, func(s *stagesetv1.StageSet) { post(s, 0).Timeout = d("0s") },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[0].timeout"}},
		{"zero wait duration", Options{}, func(s *stagesetv1.StageSet) { actions(s).Pre[0].Wait.Duration = d("0s") },
			[]string{"FieldValueInvalid spec.stages[1].actions.pre[0].wait.duration"}},
		{"zero window duration", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].Duration = metav1.Duration{} },
			[]string{"FieldValueInvalid spec.updateWindows[0].duration"}},

		// Remote clusters.
		{"kubeConfig configMapRef", Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.KubeConfig = &meta.KubeConfigReference{ConfigMapRef: &meta.LocalObjectReference{Name: "cluster"}}
		}, []string{"FieldValueRequired spec.kubeConfig.secretRef"}},

		// Update windows.
		{"bad cron", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].Schedule = "61 * * * *" },
			[]string{"FieldValueInvalid spec.updateWindows[0].schedule"}},
		{"cron that never fires", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].Schedule = "0 0 30 2 *" },
			[]string{"FieldValueInvalid spec.updateWindows[0].schedule"}},
		{"seconds field", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].Schedule = "0 0 9 * * *" },
			[]string{"FieldValueInvalid spec.updateWindows[0].schedule"}},
		{"bad time zone", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].TimeZone = "Mars/Base" },
			[]string{"FieldValueInvalid spec.updateWindows[0].timeZone"}},
		{"Local time zone", Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].TimeZone = "Local" },
			[]string{"FieldValueInvalid spec.updateWindows[0].timeZone"}},
		{"bad zone and bad cron in one window, bad type in another", Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.UpdateWindows[0].TimeZone = "Mars/Base"
			s.Spec.UpdateWindows[0].Schedule = "nope"
			s.Spec.UpdateWindows = append(s.Spec.UpdateWindows, stagesetv1.UpdateWindow{Type: "Maybe", Schedule: "@daily", Duration: *d("1h")})
		}, []string{"FieldValueInvalid spec.updateWindows[0].timeZone", "FieldValueInvalid spec.updateWindows[0].schedule",
			"FieldValueNotSupported spec.updateWindows[1].type"}},

		// Dependencies.
		{"self dependency", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[0].Namespace = "" },
			[]string{"FieldValueInvalid spec.dependsOn[0]"}},
		{"self dependency with namespace", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[0].Namespace = "apps" },
			[]string{"FieldValueInvalid spec.dependsOn[0]"}},
		{"readyExpr that does not parse", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[1].ReadyExpr = "dep.status." },
			[]string{"FieldValueInvalid spec.dependsOn[1].readyExpr"}},
		{"readyExpr with an unknown variable", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[1].ReadyExpr = "other.ready" },
			[]string{"FieldValueInvalid spec.dependsOn[1].readyExpr"}},
		{"dependency name", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[1].Name = "DB_1" },
			[]string{"FieldValueInvalid spec.dependsOn[1].name"}},

		// --no-cross-namespace-refs.
		{"cross-namespace dependency", Options{NoCrossNamespaceRefs: true}, func(*stagesetv1.StageSet) {},
			[]string{"FieldValueForbidden spec.dependsOn[0].namespace"}},
		{"cross-namespace sources", Options{NoCrossNamespaceRefs: true}, func(s *stagesetv1.StageSet) {
			s.Spec.DependsOn = s.Spec.DependsOn[1:]
			s.Spec.SourceRef.Namespace = "flux-system"
			s.Spec.Stages[1].SourceRef.Namespace = "flux-system"
		}, []string{"FieldValueForbidden spec.sourceRef.namespace", "FieldValueForbidden spec.stages[1].sourceRef.namespace"}},
		{"same-namespace references named explicitly", Options{NoCrossNamespaceRefs: true}, func(s *stagesetv1.StageSet) {
			s.Spec.DependsOn[0] = meta.DependencyReference{Name: "web", Namespace: "apps"}
			s.Spec.SourceRef.Namespace = "apps"
		}, nil},

		// Sources.
		{"no source", Options{}, func(s *stagesetv1.StageSet) { s.Spec.SourceRef = nil },
			[]string{"FieldValueRequired spec.stages[0].sourceRef"}},
		{"unknown source kind and version", Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.SourceRef.Kind = "HelmRepository"
			s.Spec.SourceRef.APIVersion = "source.toolkit.fluxcd.io/v1beta2"
		}, []string{"FieldValueNotSupported spec.sourceRef.apiVersion", "FieldValueNotSupported spec.sourceRef.kind"}},

		// Stages.
		{"no stages", Options{}, func(s *stagesetv1.StageSet) { s.Spec.Stages = nil },
			[]string{"FieldValueRequired spec.stages"}},
		{"51 stages", Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.Stages = nil
			for i := range 51 {
				s.Spec.Stages = append(s.Spec.Stages, stagesetv1.Stage{Name: fmt.Sprintf("s%d", i)})
			}
		}, []string{"FieldValueTooMany spec.stages"}},
		{"duplicate stage names", Options{}, func(s *stagesetv1.StageSet) { s.Spec.Stages[1].Name = "a" },
			[]string{"FieldValueDuplicate spec.stages[1].name"}},
		{"stage name not a label", Options{}, func(s *stagesetv1.StageSet) { stage(s).Name = "A_1" },
			[]string{"FieldValueInvalid spec.stages[0].name"}},
		{"parent path", Options{}, func(s *stagesetv1.StageSet) { stage(s).Path = "a/../../b" },
			[]string{"FieldValueInvalid spec.stages[0].path"}},
		{"absolute path", Options{}, func(s *stagesetv1.StageSet) { stage(s).Path = "/etc" },
			[]string{"FieldValueInvalid spec.stages[0].path"}},
		{"bad enums", Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.DeletionPolicy = "Keep"
			s.Spec.DriftDetection = &stagesetv1.DriftDetection{Mode: "Loud"}
		}, []string{"FieldValueNotSupported spec.deletionPolicy", "FieldValueNotSupported spec.driftDetection.mode"}},
		{"service account name", Options{}, func(s *stagesetv1.StageSet) { s.Spec.ServiceAccountName = "Deployer!" },
			[]string{"FieldValueInvalid spec.serviceAccountName"}},

		// The 63-character limits: values that become namespaces, label
		// values or parts of Job names unhashed.
		{"stage name of 64 characters", Options{}, func(s *stagesetv1.StageSet) { stage(s).Name = long(64) },
			[]string{"FieldValueInvalid spec.stages[0].name"}},
		{"action name of 64 characters", Options{}, func(s *stagesetv1.StageSet) { actions(s).Pre[0].Name = long(64) },
			[]string{"FieldValueInvalid spec.stages[1].actions.pre[0].name"}},
		{"targetNamespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { s.Spec.TargetNamespace = long(64) },
			[]string{"FieldValueInvalid spec.targetNamespace"}},
		{"stage targetNamespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { s.Spec.Stages[1].TargetNamespace = long(64) },
			[]string{"FieldValueInvalid spec.stages[1].targetNamespace"}},
		{"sourceRef namespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { s.Spec.SourceRef.Namespace = long(64) },
			[]string{"FieldValueInvalid spec.sourceRef.namespace"}},
		{"dependsOn namespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[0].Namespace = long(64) },
			[]string{"FieldValueInvalid spec.dependsOn[0].namespace"}},
		{"healthChecks namespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { stage(s).HealthChecks[0].Namespace = long(64) },
			[]string{"FieldValueInvalid spec.stages[0].healthChecks[0].namespace"}},
		{"action target namespace of 64 characters", Options{}, func(s *stagesetv1.StageSet) { post(s, 0).Wait.Target.Namespace = long(64) },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[0].wait.target.namespace"}},

		// Health check expressions.
		{"current that does not parse", Options{}, func(s *stagesetv1.StageSet) { stage(s).HealthCheckExprs[0].Current = "status.ready ==" },
			[]string{"FieldValueInvalid spec.stages[0].healthCheckExprs[0].current"}},
		{"failed and inProgress that do not parse", Options{}, func(s *stagesetv1.StageSet) {
			stage(s).HealthCheckExprs[0].InProgress = "status.("
			stage(s).HealthCheckExprs[0].Failed = "&&"
		}, []string{"FieldValueInvalid spec.stages[0].healthCheckExprs[0].inProgress", "FieldValueInvalid spec.stages[0].healthCheckExprs[0].failed"}},
		{"no current", Options{}, func(s *stagesetv1.StageSet) { stage(s).HealthCheckExprs[0].Current = "" },
			[]string{"FieldValueRequired spec.stages[0].healthCheckExprs[0].current"}},
		{"two checks of one kind", Options{}, func(s *stagesetv1.StageSet) {
			stage(s).HealthCheckExprs = append(stage(s).HealthCheckExprs, stage(s).HealthCheckExprs[0])
			stage(s).HealthCheckExprs[1].APIVersion = "example.com/v2"
		}, []string{"FieldValueDuplicate spec.stages[0].healthCheckExprs[1]"}},
		{"bad apiVersion", Options{}, func(s *stagesetv1.StageSet) { stage(s).HealthCheckExprs[0].APIVersion = "a/b/c" },
			[]string{"FieldValueInvalid spec.stages[0].healthCheckExprs[0].apiVersion"}},

		// Actions.
		{"two verbs", Options{}, func(s *stagesetv1.StageSet) { post(s, 0).Job = &stagesetv1.JobAction{Path: "./j"} },
			[]string{"FieldValueForbidden spec.stages[1].actions.post[0]"}},
		{"no verb", Options{}, func(s *stagesetv1.StageSet) { actions(s).Pre[0].Wait = nil },
			[]string{"FieldValueRequired spec.stages[1].actions.pre[0]"}},
		{"duplicate action names", Options{}, func(s *stagesetv1.StageSet) { post(s, 1).Name = "ready" },
			[]string{"FieldValueDuplicate spec.stages[1].actions.post[1].name"}},
		{"wait with nothing", Options{}, func(s *stagesetv1.StageSet) { actions(s).Pre[0].Wait = &stagesetv1.WaitAction{} },
			[]string{"FieldValueInvalid spec.stages[1].actions.pre[0].wait"}},
		{"wait with a target and no expr", Options{}, func(s *stagesetv1.StageSet) { post(s, 0).Wait.Expr = "" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[0].wait"}},
		{"wait expr that does not compile", Options{}, func(s *stagesetv1.StageSet) { post(s, 0).Wait.Expr = "dep.ready" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[0].wait.expr"}},
		{"patch without target and patch", Options{}, func(s *stagesetv1.StageSet) {
			post(s, 1).Patch = &stagesetv1.PatchAction{Type: "replace"}
		}, []string{"FieldValueRequired spec.stages[1].actions.post[1].patch.target.apiVersion",
			"FieldValueRequired spec.stages[1].actions.post[1].patch.target.kind",
			"FieldValueRequired spec.stages[1].actions.post[1].patch.target.name",
			"FieldValueNotSupported spec.stages[1].actions.post[1].patch.type",
			"FieldValueRequired spec.stages[1].actions.post[1].patch.patch"}},
		{"json6902 patch that is an object", Options{}, func(s *stagesetv1.StageSet) { post(s, 2).Patch.Patch = "spec: {}" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[2].patch.patch"}},
		{"merge patch that is a list", Options{}, func(s *stagesetv1.StageSet) { post(s, 1).Patch.Patch = "[1, 2]" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[1].patch.patch"}},
		{"patch that is not YAML", Options{}, func(s *stagesetv1.StageSet) { post(s, 1).Patch.Patch = "a: [" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[1].patch.patch"}},
		{"http without url", Options{}, func(s *stagesetv1.StageSet) { post(s, 3).HTTP.URL = "" },
			[]string{"FieldValueRequired spec.stages[1].actions.post[3].http.url"}},
		{"http url without host", Options{}, func(s *stagesetv1.StageSet) { post(s, 3).HTTP.URL = "https:///x" },
			[]string{"FieldValueInvalid spec.stages[1].actions.post[3].http.url"}},
		{"http url without scheme, bad method, status and secret", Options{}, func(s *stagesetv1.StageSet) {
			post(s, 3).HTTP = &stagesetv1.HTTPAction{URL: "hooks.example.com/x", Method: "TRACE",
				HeadersFrom: &meta.LocalObjectReference{}, ExpectedStatus: []int{42}}
		}, []string{"FieldValueInvalid spec.stages[1].actions.post[3].http.url",
			"FieldValueNotSupported spec.stages[1].actions.post[3].http.method",
			"FieldValueInvalid spec.stages[1].actions.post[3].http.headersFrom.name",
			"FieldValueInvalid spec.stages[1].actions.post[3].http.expectedStatus[0]"}},
		{"job path escape", Options{}, func(s *stagesetv1.StageSet) { actions(s).OnFailure[0].Job.Path = "../x" },
			[]string{"FieldValueInvalid spec.stages[1].actions.onFailure[0].job.path"}},
		{"job without path", Options{}, func(s *stagesetv1.StageSet) { actions(s).OnFailure[0].Job.Path = "" },
			[]string{"FieldValueRequired spec.stages[1].actions.onFailure[0].job.path"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := valid()
			tc.mutate(ss)
			errs := StageSet(ss, tc.opts)
			if got := describe(errs); !slices.Equal(got, tc.want) {
				t.Fatalf("got errors\n  %s\nwant\n  %s\n(%v)", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "), errs.ToAggregate())
			}
		})
	}
}

// The URL of an http action may carry a token: it is never quoted back.
func TestStageSetDoesNotQuoteURLs(t *testing.T) {
	ss := valid()
	ss.Spec.Stages[1].Actions.Post[3].HTTP.URL = "ftp://hooks.example.com/x?token=s3cr3t"
	errs := StageSet(ss, Options{})
	if len(errs) != 1 || strings.Contains(errs.ToAggregate().Error(), "s3cr3t") {
		t.Fatalf("errors %v: want one, without the URL", errs.ToAggregate())
	}
}

func TestReason(t *testing.T) {
	cross := crossNamespace(field.NewPath("spec", "sourceRef", "namespace"), "GitRepository", "other", "repo")
	other := field.Forbidden(field.NewPath("spec", "stages").Index(0), "an action must set exactly one of patch, http, job or wait")
	invalid := field.Invalid(field.NewPath("spec", "interval"), "0s", "must be greater than zero")
	for _, tc := range []struct {
		errs field.ErrorList
		want string
	}{
		{field.ErrorList{cross}, stagesetv1.AccessDeniedReason},
		{field.ErrorList{cross, cross}, stagesetv1.AccessDeniedReason},
		{field.ErrorList{cross, invalid}, stagesetv1.InvalidSpecReason},
		{field.ErrorList{other}, stagesetv1.InvalidSpecReason},
		{field.ErrorList{invalid}, stagesetv1.InvalidSpecReason},
	} {
		if got := Reason(tc.errs); got != tc.want {
			t.Errorf("Reason(%v) = %s, want %s", tc.errs.ToAggregate(), got, tc.want)
		}
	}
}

func describe(errs field.ErrorList) []string {
	var out []string
	for _, err := range errs {
		out = append(out, string(err.Type)+" "+err.Field)
	}
	return out
}

// A duration is quoted back as the user wrote it ("0s"), not as the Go
// struct behind it.
func TestStageSetQuotesDurationsReadably(t *testing.T) {
	ss := valid()
	ss.Spec.Interval = metav1.Duration{}
	ss.Spec.Timeout = &metav1.Duration{Duration: -time.Second}
	msg := StageSet(ss, Options{}).ToAggregate().Error()
	for _, want := range []string{`spec.interval: Invalid value: "0s"`, `spec.timeout: Invalid value: "-1s"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors %q do not contain %q", msg, want)
		}
	}
}
