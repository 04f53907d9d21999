package build

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestLoadVariables(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	for _, obj := range []client.Object{
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: ns},
			Data:       map[string]string{"a": "from-first", "b": "from-first", "c": "from-first", "multi": "line1\nline2\n"},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "second", Namespace: ns},
			Data:       map[string][]byte{"b": []byte("from-secret"), "c": []byte("from-secret")},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "third", Namespace: ns},
			Data:       map[string]string{"c": "from-third"},
		},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name      string
		postBuild *stagesetv1.PostBuild
		want      map[string]string
		wantErr   string
	}{
		{
			name:      "no postBuild: no substitution",
			postBuild: nil,
			want:      nil,
		},
		{
			name:      "empty postBuild: substitution without variables",
			postBuild: &stagesetv1.PostBuild{},
			want:      map[string]string{},
		},
		{
			name: "later referents override earlier ones, substitute overrides all",
			postBuild: &stagesetv1.PostBuild{
				SubstituteFrom: []stagesetv1.SubstituteReference{
					{Kind: "ConfigMap", Name: "first"},
					{Kind: "Secret", Name: "second"},
					{Kind: "ConfigMap", Name: "third"},
				},
				Substitute: map[string]string{"a": "inline", "d": "inline\n"},
			},
			want: map[string]string{
				"a":     "inline",
				"b":     "from-secret",
				"c":     "from-third",
				"d":     "inline",
				"multi": "line1line2",
			},
		},
		{
			name: "a missing optional referent is skipped",
			postBuild: &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{
				{Kind: "Secret", Name: "second"},
				{Kind: "ConfigMap", Name: "absent", Optional: true},
				{Kind: "Secret", Name: "absent-too", Optional: true},
			}},
			want: map[string]string{"b": "from-secret", "c": "from-secret"},
		},
		{
			name: "a missing required ConfigMap is an error naming it",
			postBuild: &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{
				{Kind: "ConfigMap", Name: "first"},
				{Kind: "ConfigMap", Name: "absent"},
			}},
			wantErr: "substituteFrom ConfigMap " + ns + "/absent not found",
		},
		{
			name: "a missing required Secret is an error naming it",
			postBuild: &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{
				{Kind: "Secret", Name: "absent"},
			}},
			wantErr: "substituteFrom Secret " + ns + "/absent not found",
		},
		{
			name: "an unknown kind is an error",
			postBuild: &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{
				{Kind: "Deployment", Name: "first"},
			}},
			wantErr: "substituteFrom Deployment/first: kind must be ConfigMap or Secret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			vars, err := LoadVariables(ctx, env.Client, ns, tt.postBuild)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(tt.wantErr))
				var buildErr *Error
				g.Expect(errors.As(err, &buildErr)).To(BeTrue(), "reported as BuildFailed")
				g.Expect(vars).To(BeNil())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			if tt.want == nil {
				g.Expect(vars).To(BeNil())
				return
			}
			g.Expect(vars).To(Equal(tt.want))
		})
	}
}

func TestLoadVariables_APIErrorIsNotABuildError(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	// A user without any RBAC: reads are forbidden, which is not the
	// user's manifests' fault and may heal (RBAC being applied), so it is
	// returned as an ordinary error, not as a build Error.
	cfg, err := env.AddUser("no-rights")
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())

	_, err = LoadVariables(context.Background(), c, ns, &stagesetv1.PostBuild{
		SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}},
	})
	g.Expect(err).To(MatchError(ContainSubstring("reading substituteFrom ConfigMap " + ns + "/vars")))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue())
	var buildErr *Error
	g.Expect(errors.As(err, &buildErr)).To(BeFalse())
}
