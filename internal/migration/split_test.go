package migration

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// object returns a built object; version "" means no migration annotation,
// "-" an empty one.
func object(apiVersion, kind, name, version string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace("apps")
	u.SetName(name)
	switch version {
	case "":
	case "-":
		u.SetAnnotations(map[string]string{stagesetv1.MigrationAnnotation: ""})
	default:
		u.SetAnnotations(map[string]string{stagesetv1.MigrationAnnotation: version, "other": "x"})
	}
	return u
}

func job(name, version string) *unstructured.Unstructured {
	return object("batch/v1", "Job", name, version)
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name           string
		objects        []*unstructured.Unstructured
		wantVersions   []string
		wantJobs       []string
		wantOthers     []string
		wantErrContain []string
	}{
		{
			name:       "no migrations",
			objects:    []*unstructured.Unstructured{object("v1", "ConfigMap", "cm", ""), job("batch", "")},
			wantOthers: []string{"cm", "batch"},
		},
		{
			name: "migrations sorted by semver, others keep their order",
			objects: []*unstructured.Unstructured{
				object("apps/v1", "Deployment", "web", ""),
				job("m10", "1.10.0"),
				object("v1", "Service", "web", ""),
				job("m2", "v1.2.0"),
				job("cron-like", ""),
				job("rc", "1.2.0-rc.1"),
				object("v1", "ConfigMap", "cm", ""),
			},
			wantVersions: []string{"1.2.0-rc.1", "v1.2.0", "1.10.0"},
			wantJobs:     []string{"rc", "m2", "m10"},
			wantOthers:   []string{"web", "web", "cron-like", "cm"},
		},
		{
			name:         "natural order",
			objects:      []*unstructured.Unstructured{job("c", "10"), job("a", "2"), job("b", "9")},
			wantVersions: []string{"2", "9", "10"},
			wantJobs:     []string{"a", "b", "c"},
		},
		{
			name:           "annotation on a non-Job",
			objects:        []*unstructured.Unstructured{object("v1", "ConfigMap", "cm", "1")},
			wantErrContain: []string{"ConfigMap/apps/cm", stagesetv1.MigrationAnnotation},
		},
		{
			name:           "annotation on a Job of another group",
			objects:        []*unstructured.Unstructured{object("example.com/v1", "Job", "fake", "1")},
			wantErrContain: []string{"Job/apps/fake"},
		},
		{
			name:           "empty version",
			objects:        []*unstructured.Unstructured{job("empty", "-")},
			wantErrContain: []string{"Job/apps/empty", "empty"},
		},
		{
			name:           "blank version",
			objects:        []*unstructured.Unstructured{job("blank", "  ")},
			wantErrContain: []string{"Job/apps/blank"},
		},
		{
			name:           "duplicate version",
			objects:        []*unstructured.Unstructured{job("first", "1.0.0"), job("second", "2"), job("third", "1.0.0")},
			wantErrContain: []string{"Job/apps/first", "Job/apps/third", `"1.0.0"`},
		},
		{
			name:           "versions that share a Job name",
			objects:        []*unstructured.Unstructured{job("first", "1.0"), job("second", "1_0")},
			wantErrContain: []string{"Job/apps/first", "Job/apps/second", "same Job"},
		},
		{
			name:           "versions that differ only in case",
			objects:        []*unstructured.Unstructured{job("first", "Add"), job("second", "add")},
			wantErrContain: []string{"same Job"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			migrations, others, err := Split(tt.objects)
			if tt.wantErrContain != nil {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue())
				for _, s := range tt.wantErrContain {
					g.Expect(err.Error()).To(ContainSubstring(s))
				}
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			var versions, jobs []string
			for _, m := range migrations {
				versions = append(versions, m.Version)
				jobs = append(jobs, m.Job.GetName())
				g.Expect(m.Job.GetAnnotations()).To(HaveKeyWithValue(stagesetv1.MigrationAnnotation, m.Version))
			}
			g.Expect(versions).To(Equal(tt.wantVersions))
			g.Expect(jobs).To(Equal(tt.wantJobs))
			g.Expect(names(others)).To(Equal(tt.wantOthers))
		})
	}
}

func TestSplitLeavesObjectsUntouched(t *testing.T) {
	g := NewWithT(t)
	plain := job("plain", "")
	m := job("m", "1")
	plainBefore, mBefore := plain.DeepCopy(), m.DeepCopy()
	migrations, others, err := Split([]*unstructured.Unstructured{plain, m})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(others).To(HaveLen(1))
	g.Expect(others[0]).To(BeIdenticalTo(plain))
	g.Expect(migrations[0].Job).To(BeIdenticalTo(m))
	g.Expect(plain).To(Equal(plainBefore))
	g.Expect(m).To(Equal(mBefore))
}

func TestSpecHash(t *testing.T) {
	g := NewWithT(t)
	a := job("a", "1")
	g.Expect(unstructured.SetNestedField(a.Object, "migrate:1", "spec", "template", "spec", "containers", "image")).To(Succeed())
	g.Expect(unstructured.SetNestedField(a.Object, int64(3), "spec", "backoffLimit")).To(Succeed())

	// Same spec built in another key order, with other metadata: same hash.
	b := job("b", "2")
	g.Expect(unstructured.SetNestedField(b.Object, int64(3), "spec", "backoffLimit")).To(Succeed())
	g.Expect(unstructured.SetNestedField(b.Object, "migrate:1", "spec", "template", "spec", "containers", "image")).To(Succeed())
	g.Expect(SpecHash(b)).To(Equal(SpecHash(a)))
	g.Expect(SpecHash(a)).To(HaveLen(64))

	c := a.DeepCopy()
	g.Expect(unstructured.SetNestedField(c.Object, "migrate:2", "spec", "template", "spec", "containers", "image")).To(Succeed())
	g.Expect(SpecHash(c)).NotTo(Equal(SpecHash(a)))
}
