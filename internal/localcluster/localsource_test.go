package localcluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// The directory is archived as source-controller archives a checkout: .git
// and what .sourceignore excludes stay out, so a `git fetch` or a build
// output in the directory publishes no revision.
func TestReadSourceDirLeavesOutWhatSourceControllerIgnores(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"app/configmap.yaml":      "kind: ConfigMap\n",
		"app/notes.tmp":           "scratch\n",
		".git/HEAD":               "ref: refs/heads/main\n",
		".sourceignore":           "*.tmp\n",
		"base/kustomization.yaml": "resources: []\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first, err := readSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tarNames(t, first), []string{".sourceignore", "app/configmap.yaml", "base/kustomization.yaml"}; !slices.Equal(got, want) {
		t.Errorf("archived %v, want %v", got, want)
	}

	// Ignored files change nothing; a served file changes the tarball.
	if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := readSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("a change under .git changed the tarball")
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "configmap.yaml"), []byte("kind: ConfigMap\ndata: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := readSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, changed) {
		t.Error("a changed manifest left the tarball as it was")
	}

	// Links are left out, to a file outside the directory or not.
	outside := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"app/stolen.yaml": outside, "app/alias.yaml": "configmap.yaml", "linked": filepath.Dir(outside)} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	linked, err := readSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(changed, linked) {
		t.Errorf("symlinks were archived: %v", tarNames(t, linked))
	}

	if _, err := readSourceDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("read a missing directory")
	}
}

// A revision is decided once a run attempted it: Ready=True with it
// applied, or Ready=False; a Ready=False of the previous revision or a run
// in progress is not its outcome.
func TestDecidedAt(t *testing.T) {
	status := func(attempted, applied string, ready metav1.ConditionStatus, reason string) *stagesetv1.StageSet {
		obj := &stagesetv1.StageSet{}
		obj.Generation, obj.Status.ObservedGeneration = 1, 1
		obj.Status.LastAttemptedRevision, obj.Status.LastAppliedRevision = attempted, applied
		obj.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: ready, Reason: reason, Message: "m"}}
		return obj
	}
	for _, tc := range []struct {
		name       string
		obj        *stagesetv1.StageSet
		done, fail bool
	}{
		{"applied", status("r2", "r2", metav1.ConditionTrue, "Succeeded"), true, false},
		{"failed build", status("r2", "r1", metav1.ConditionFalse, stagesetv1.BuildFailedReason), true, true},
		{"in progress", status("r2", "r1", metav1.ConditionUnknown, "Progressing"), false, false},
		{"waiting for a dependency", status("r2", "r1", metav1.ConditionFalse, stagesetv1.DependencyNotReadyReason), false, false},
		{"previous revision failed", status("r1", "r0", metav1.ConditionFalse, stagesetv1.BuildFailedReason), false, false},
		{"previous revision applied", status("r1", "r1", metav1.ConditionTrue, "Succeeded"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, err := decidedAt(tc.obj, "r2")
			if done != tc.done || (err != nil) != tc.fail {
				t.Errorf("got done=%v err=%v, want done=%v failure=%v", done, err, tc.done, tc.fail)
			}
		})
	}
}

// A saved change is sent once, after it has stayed the same for one poll;
// an unreadable directory is reported once, not every poll.
func TestChangesSendsEachSavedChangeOnce(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "app", "cm.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifest, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v1")
	first, err := readSourceDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &localSource{dir: dir, digest: testenv.Digest(first)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := s.changes(ctx, 20*time.Millisecond)
	next := func() dirChange {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change sent")
			return dirChange{}
		}
	}
	none := func() {
		t.Helper()
		select {
		case c := <-changes:
			t.Fatalf("unexpected change: err=%v, %d bytes", c.err, len(c.tarball))
		case <-time.After(200 * time.Millisecond):
		}
	}

	none()
	write("v2")
	c := next()
	want, _ := readSourceDir(dir)
	if c.err != nil || !bytes.Equal(c.tarball, want) {
		t.Fatalf("got err=%v, want the tarball of v2", c.err)
	}
	none()

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.err == nil {
		t.Fatal("a removed directory sent no error")
	}
	none()
}
