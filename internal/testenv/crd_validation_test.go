package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// fullStageSet uses every field of SPEC §3.1, the way a user writes it.
const fullStageSet = `
apiVersion: stageset.io/v1
kind: StageSet
metadata: {name: shop}
spec:
  interval: 10m
  retryInterval: 1m
  timeout: 5m
  driftDetectionInterval: 1m
  suspend: false
  sourceRef: {kind: GitRepository, name: shop}
  dependsOn: [{name: platform, namespace: infra, readyExpr: "dep.status.ready"}]
  serviceAccountName: shop-deployer
  kubeConfig: {secretRef: {name: prod-kubeconfig}}
  targetNamespace: shop
  deletionPolicy: Delete
  driftDetection:
    mode: Warn
    ignore: [{paths: ["/spec/replicas"], target: {kind: Deployment}}]
  updateWindows:
    - {type: Allow, schedule: "0 22 * * 1-5", duration: 4h, timeZone: Europe/Berlin}
    - {type: Deny,  schedule: "0 0 24 12 *", duration: 72h}
  rollbackOnFailure: true
  stages:
    - name: crds
      path: ./crds
      prune: false
    - name: database
      path: ./db
      force: true
      wait: false
      healthChecks: [{apiVersion: apps/v1, kind: StatefulSet, name: db, namespace: shop}]
      healthCheckExprs:
        - apiVersion: postgresql.cnpg.io/v1
          kind: Cluster
          current: status.phase == 'Cluster in healthy state'
          failed: status.phase == 'Failed'
    - name: app
      path: app/overlays/prod
      sourceRef: {kind: OCIRepository, name: shop-app, namespace: shop}
      targetNamespace: shop-app
      timeout: 10m
      patches:
        - patch: '{"spec":{"replicas":2}}'
          target: {kind: Deployment, name: web}
      postBuild:
        substitute: {cluster: prod}
        substituteFrom: [{kind: ConfigMap, name: vars}, {kind: Secret, name: secret-vars, optional: true}]
      actions:
        pre:
          - name: maintenance-on
            timeout: 1m
            patch:
              target: {apiVersion: v1, kind: ConfigMap, name: maintenance}
              type: merge
              patch: '{"data":{"enabled":"true"}}'
        post:
          - name: settle
            wait: {duration: 30s}
          - name: smoke
            job: {path: ./jobs/smoke}
          - name: until-ready
            wait: {target: {apiVersion: apps/v1, kind: Deployment, name: web}, expr: "self.status.readyReplicas == 2"}
        onFailure:
          - name: page
            http: {url: "https://hooks.example/alert", headersFrom: {name: hook-auth}, body: "{}", expectedStatus: [200, 202]}
`

func decodeStageSet(t *testing.T, manifest, namespace string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	obj.SetNamespace(namespace)
	return obj
}

func TestValidStageSetsAreAccepted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	full := decodeStageSet(t, fullStageSet, ns)
	g.Expect(env.Client.Create(ctx, full)).To(Succeed())

	// Every field survives the API server's pruning of unknown fields.
	var got stagesetv1.StageSet
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(full), &got)).To(Succeed())
	var want stagesetv1.StageSet
	g.Expect(yaml.Unmarshal([]byte(fullStageSet), &want)).To(Succeed())
	g.Expect(got.Spec).To(Equal(withDefaults(want.Spec)))

	minimal := decodeStageSet(t, `
apiVersion: stageset.io/v1
kind: StageSet
metadata: {name: minimal}
spec:
  interval: 5m
  stages: [{name: only, sourceRef: {kind: Bucket, name: b}}]
`, ns)
	g.Expect(env.Client.Create(ctx, minimal)).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(minimal), &got)).To(Succeed())

	// The CRD's defaults.
	g.Expect(got.Spec.DeletionPolicy).To(Equal(stagesetv1.DeletionPolicyMirrorPrune))
	stage := got.Spec.Stages[0]
	g.Expect(stage.Path).To(Equal("./"))
	g.Expect(*stage.Prune).To(BeTrue())
	g.Expect(*stage.Wait).To(BeTrue())
	g.Expect(stage.SourceRef.APIVersion).To(Equal(stagesetv1.SourceAPIVersion))

	fifty := decodeStageSet(t, manyStages(50), ns)
	g.Expect(env.Client.Create(ctx, fifty)).To(Succeed())
}

// withDefaults returns spec with the values the CRD defaults, for comparing a
// stored StageSet with its manifest.
func withDefaults(spec stagesetv1.StageSetSpec) stagesetv1.StageSetSpec {
	yes := true
	spec.SourceRef.APIVersion = stagesetv1.SourceAPIVersion
	for i := range spec.Stages {
		s := &spec.Stages[i]
		if s.SourceRef != nil {
			s.SourceRef.APIVersion = stagesetv1.SourceAPIVersion
		}
		if s.Prune == nil {
			s.Prune = &yes
		}
		if s.Wait == nil {
			s.Wait = &yes
		}
		if s.Actions == nil {
			continue
		}
		for _, group := range [][]stagesetv1.Action{s.Actions.Pre, s.Actions.Post, s.Actions.OnFailure} {
			for _, a := range group {
				if a.HTTP != nil && a.HTTP.Method == "" {
					a.HTTP.Method = "POST"
				}
			}
		}
	}
	for i := range spec.UpdateWindows {
		if spec.UpdateWindows[i].TimeZone == "" {
			spec.UpdateWindows[i].TimeZone = "UTC"
		}
	}
	return spec
}

func manyStages(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: stageset.io/v1\nkind: StageSet\nmetadata: {name: many}\nspec:\n  interval: 5m\n  sourceRef: {kind: GitRepository, name: repo}\n  stages:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - {name: stage-%d, path: ./s%d}\n", i, i)
	}
	return b.String()
}

func TestInvalidStageSetsAreRefusedWithAReadableMessage(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	base := func(stages string) string {
		return "apiVersion: stageset.io/v1\nkind: StageSet\nmetadata: {name: bad}\nspec:\n  interval: 5m\n  sourceRef: {kind: GitRepository, name: repo}\n  stages:\n" + stages
	}

	cases := []struct {
		name     string
		manifest string
		message  string
	}{
		{"duplicate stage names", base("    - {name: app}\n    - {name: app}\n"), "stage names must be unique"},
		{"51 stages", manyStages(51), "must have at most 50 items"},
		{"no stages", base("    []\n"), "should have at least 1 items"},
		{"two verbs in one action", base(`    - name: app
      actions:
        pre: [{name: both, wait: {duration: 1s}, http: {url: "https://x.example"}}]
`), "an action must set exactly one of patch, http, job or wait"},
		{"no verb in an action", base("    - {name: app, actions: {post: [{name: none}]}}\n"), "an action must set exactly one of patch, http, job or wait"},
		{"parent path", base("    - {name: app, path: ../other}\n"), "path must not contain '..'"},
		{"parent path inside", base("    - {name: app, path: ./a/../../b}\n"), "path must not contain '..'"},
		{"absolute path", base("    - {name: app, path: /etc}\n"), "path must be relative to the artifact root"},
		{"job path escape", base("    - {name: app, actions: {post: [{name: j, job: {path: ../../x}}]}}\n"), "path must not contain '..'"},
		{"self dependency", `
apiVersion: stageset.io/v1
kind: StageSet
metadata: {name: bad}
spec:
  interval: 5m
  dependsOn: [{name: bad}]
  sourceRef: {kind: GitRepository, name: repo}
  stages: [{name: app}]
`, "a StageSet cannot depend on itself"},
		{"zero interval", strings.Replace(base("    - {name: app}\n"), "interval: 5m", "interval: 0s", 1), "interval must be greater than zero"},
		{"bad duration", strings.Replace(base("    - {name: app}\n"), "interval: 5m", "interval: soon", 1), "spec.interval"},
		{"no source anywhere", strings.Replace(base("    - {name: app}\n"), "  sourceRef: {kind: GitRepository, name: repo}\n", "", 1),
			"spec.sourceRef is required unless every stage sets its own sourceRef"},
		{"unknown source kind", base("    - {name: app, sourceRef: {kind: HelmRepository, name: x}}\n"), "Unsupported value: \"HelmRepository\""},
		{"stage name not a DNS label", base("    - {name: App_1}\n"), "spec.stages[0].name"},
		{"unknown deletion policy", strings.Replace(base("    - {name: app}\n"), "interval: 5m", "interval: 5m\n  deletionPolicy: Keep", 1), "Unsupported value: \"Keep\""},
		{"wait with duration and target", base(`    - name: app
      actions:
        post: [{name: w, wait: {duration: 1s, target: {apiVersion: v1, kind: Pod, name: p}, expr: "true"}}]
`), "a wait action sets either duration, or target and expr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx, decodeStageSet(t, tc.manifest, ns))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}
