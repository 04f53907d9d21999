package v1

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func d(s string) *metav1.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: v}
}

func TestIntervalGetters(t *testing.T) {
	cases := []struct {
		name                      string
		spec                      StageSetSpec
		timeout, retry, requeueAt time.Duration
	}{
		{"defaults", StageSetSpec{Interval: *d("10m")}, 5 * time.Minute, 10 * time.Minute, 10 * time.Minute},
		{"all set", StageSetSpec{Interval: *d("10m"), Timeout: d("2m"), RetryInterval: d("1m"), DriftDetectionInterval: d("30s")},
			2 * time.Minute, time.Minute, 30 * time.Second},
		{"drift interval longer than interval is ignored", StageSetSpec{Interval: *d("1m"), DriftDetectionInterval: d("5m")},
			5 * time.Minute, time.Minute, time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := &StageSet{Spec: tc.spec}
			if got := ss.GetTimeout(); got != tc.timeout {
				t.Errorf("GetTimeout() = %s, want %s", got, tc.timeout)
			}
			if got := ss.GetRetryInterval(); got != tc.retry {
				t.Errorf("GetRetryInterval() = %s, want %s", got, tc.retry)
			}
			if got := ss.GetRequeueAfter(); got != tc.requeueAt {
				t.Errorf("GetRequeueAfter() = %s, want %s", got, tc.requeueAt)
			}
		})
	}
}

func TestStageGetters(t *testing.T) {
	no := false
	ss := &StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "apps"},
		Spec: StageSetSpec{
			Timeout:         d("3m"),
			SourceRef:       &SourceReference{Kind: GitRepositoryKind, Name: "shop"},
			TargetNamespace: "shop",
		},
	}
	plain := Stage{Name: "plain"}
	custom := Stage{
		Name: "custom", Path: "./app", Prune: &no, Wait: &no, Timeout: d("10m"), TargetNamespace: "web",
		SourceRef: &SourceReference{APIVersion: SourceAPIVersion, Kind: OCIRepositoryKind, Name: "app", Namespace: "oci"},
	}

	if got := ss.GetStageTimeout(plain); got != 3*time.Minute {
		t.Errorf("plain stage timeout = %s", got)
	}
	if got := ss.GetStageTimeout(custom); got != 10*time.Minute {
		t.Errorf("custom stage timeout = %s", got)
	}
	if plain.GetPath() != "./" || custom.GetPath() != "./app" {
		t.Errorf("paths = %q, %q", plain.GetPath(), custom.GetPath())
	}
	if !plain.IsPruneEnabled() || !plain.IsWaitEnabled() || custom.IsPruneEnabled() || custom.IsWaitEnabled() {
		t.Error("prune/wait defaults are wrong")
	}
	if ss.GetStageTargetNamespace(plain) != "shop" || ss.GetStageTargetNamespace(custom) != "web" {
		t.Error("target namespace defaults are wrong")
	}

	ref, ok := ss.GetStageSourceRef(plain)
	if !ok || ref.String() != "GitRepository/apps/shop" || ref.APIVersion != SourceAPIVersion {
		t.Errorf("plain stage source = %+v, %v", ref, ok)
	}
	ref, ok = ss.GetStageSourceRef(custom)
	if !ok || ref.String() != "OCIRepository/oci/app" {
		t.Errorf("custom stage source = %+v, %v", ref, ok)
	}
	ss.Spec.SourceRef = nil
	if _, ok := ss.GetStageSourceRef(plain); ok {
		t.Error("a stage without any source resolved one")
	}
}

func TestPolicyDefaults(t *testing.T) {
	ss := &StageSet{}
	if ss.GetDeletionPolicy() != DeletionPolicyMirrorPrune || ss.GetDriftDetectionMode() != DriftDetectionEnabled {
		t.Error("defaults are wrong")
	}
	ss.Spec.DeletionPolicy = DeletionPolicyOrphan
	ss.Spec.DriftDetection = &DriftDetection{Mode: DriftDetectionWarn}
	if ss.GetDeletionPolicy() != DeletionPolicyOrphan || ss.GetDriftDetectionMode() != DriftDetectionWarn {
		t.Error("set values are not returned")
	}
}

// GetSourceRefs lists each source once, in stage order, defaulted.
func TestGetSourceRefs(t *testing.T) {
	obj := &StageSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps"},
		Spec: StageSetSpec{
			SourceRef: &SourceReference{Kind: GitRepositoryKind, Name: "repo"},
			Stages: []Stage{
				{Name: "a"},
				{Name: "b", SourceRef: &SourceReference{Kind: OCIRepositoryKind, Name: "images", Namespace: "flux-system"}},
				{Name: "c", SourceRef: &SourceReference{Kind: GitRepositoryKind, Name: "repo", Namespace: "apps"}},
				{Name: "d"},
			},
		},
	}
	got := obj.GetSourceRefs()
	want := []SourceReference{
		{APIVersion: SourceAPIVersion, Kind: GitRepositoryKind, Name: "repo", Namespace: "apps"},
		{APIVersion: SourceAPIVersion, Kind: OCIRepositoryKind, Name: "images", Namespace: "flux-system"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetSourceRefs() = %+v, want %+v", got, want)
	}
}
