package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Each stage holds a third of each kind, names unique across kinds (the
// tracker keys objects by namespace/name), in the controller's apply order.
func TestMixedObjects(t *testing.T) {
	stages := mixedObjects("", "rev-1", 2, 200)
	names := map[string]bool{}
	for s, objects := range stages {
		if len(objects) != 200 {
			t.Fatalf("stage %d has %d objects, want 200", s, len(objects))
		}
		count := map[string]int{}
		var order []string
		for _, obj := range objects {
			kind := obj.GetKind()
			count[kind]++
			if len(order) == 0 || order[len(order)-1] != kind {
				order = append(order, kind)
			}
			if names[obj.GetName()] {
				t.Errorf("name %s twice", obj.GetName())
			}
			names[obj.GetName()] = true
		}
		if want := map[string]int{"Deployment": 67, "Service": 67, "ServiceAccount": 66}; !maps.Equal(count, want) {
			t.Errorf("stage %d: %v, want %v", s, count, want)
		}
		if want := []string{"ServiceAccount", "Service", "Deployment"}; !slices.Equal(order, want) {
			t.Errorf("stage %d in the order %v, want %v", s, order, want)
		}
	}
	// The warm-up's one object is a Deployment, so that the controller's
	// discovery and health of Deployments are warm before the time runs.
	if warm := mixedObjects("warm-up-", "rev-1", 1, 1); warm[0][0].GetKind() != "Deployment" {
		t.Errorf("the warm-up object is a %s", warm[0][0].GetKind())
	}
}

// A Deployment settles its stage only once seen healthy (kstatus), not when
// it is created: a hand-off or a waiting baseline never counts from a
// Deployment that is not Available yet.
func TestSettledAtWaitsForHealth(t *testing.T) {
	tr := &tracker{changed: make(chan struct{}), created: map[string]time.Time{}, healthy: map[string]time.Time{}, full: map[string]bool{}}
	dep := deployment("web", "rev-1")
	dep.SetNamespace("ns")
	dep.SetGeneration(1)
	tr.seeObject(dep)
	if _, ok := tr.CreatedAt("ns/web"); !ok {
		t.Fatal("the Deployment was not seen")
	}
	if _, ok := tr.SettledAt("ns/web"); ok {
		t.Fatal("a Deployment with no available replica settled its stage")
	}

	available := dep.DeepCopy()
	status := map[string]any{
		"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1),
		"readyReplicas": int64(1), "availableReplicas": int64(1),
		"conditions": []any{
			map[string]any{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
			map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
		},
	}
	if err := unstructured.SetNestedField(available.Object, status, "status"); err != nil {
		t.Fatal(err)
	}
	tr.seeObject(available)
	if _, ok := tr.SettledAt("ns/web"); !ok {
		t.Fatal("an Available Deployment did not settle its stage")
	}

	// A metadata-only object (a ConfigMap, a Service) settles when seen.
	tr.seeObject(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}})
	if _, ok := tr.SettledAt("ns/cm"); !ok {
		t.Fatal("a metadata-only object did not settle when seen")
	}
}

// Without the local control plane's binaries the mixed scenario stops
// before starting anything, naming the make target that builds them.
func TestLocalBinariesMissing(t *testing.T) {
	err := localBinaries(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make localbin") || !strings.Contains(err.Error(), "kube-controller-manager") {
		t.Fatalf("error %v, want one naming `make localbin` and the missing binaries", err)
	}
}
