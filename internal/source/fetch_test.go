package source

import (
	"archive/tar"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// publish stores files on the artifact server under a path unique to the
// test.
func publish(t *testing.T, files map[string]testenv.File) *meta.Artifact {
	t.Helper()
	artifact, err := env.Artifacts.PublishFiles(testenv.RandomName("artifact")+".tar.gz", "main@sha1:1", files)
	if err != nil {
		t.Fatal(err)
	}
	return artifact
}

// expectArtifactError asserts that err is an *ArtifactError for artifact
// whose message contains every part.
func expectArtifactError(g *WithT, err error, artifact *meta.Artifact, parts ...string) {
	g.THelper()
	var artifactErr *ArtifactError
	g.Expect(errors.As(err, &artifactErr)).To(BeTrue(), "error %v is not an ArtifactError", err)
	g.Expect(artifactErr.URL).To(Equal(artifact.URL))
	g.Expect(err.Error()).To(HavePrefix("failed to fetch artifact " + artifact.URL + ": "))
	for _, part := range parts {
		g.Expect(err.Error()).To(ContainSubstring(part))
	}
}

func TestFetchExtractsTheArtifact(t *testing.T) {
	g := NewWithT(t)
	artifact := publish(t, map[string]testenv.File{
		"kustomization.yaml":   {Body: "resources: [app/deploy.yaml]\n"},
		"app/deploy.yaml":      {Body: "kind: Deployment\n"},
		"app/config/":          {Type: tar.TypeDir},
		"app/config/data.yaml": {Body: "kind: ConfigMap\n"},
	})
	dir := filepath.Join(t.TempDir(), "not", "there", "yet")

	g.Expect((&Fetcher{}).Fetch(context.Background(), *artifact, dir)).To(Succeed())
	for name, body := range map[string]string{
		"kustomization.yaml":   "resources: [app/deploy.yaml]\n",
		"app/deploy.yaml":      "kind: Deployment\n",
		"app/config/data.yaml": "kind: ConfigMap\n",
	} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(data)).To(Equal(body))
	}
}

func TestFetchDigest(t *testing.T) {
	files := map[string]testenv.File{"a.yaml": {Body: "a"}}
	tests := []struct {
		name   string
		digest func(real string) string
		parts  []string
	}{
		{
			name:   "mismatch",
			digest: func(string) string { return "sha256:" + strings.Repeat("0", 64) },
			parts:  []string{"digest mismatch", "sha256:" + strings.Repeat("0", 64)},
		},
		{
			name:   "missing",
			digest: func(string) string { return "" },
			parts:  []string{"no digest"},
		},
		{
			name:   "unsupported algorithm",
			digest: func(real string) string { return "blake3:" + strings.TrimPrefix(real, "sha256:") },
			parts:  []string{"invalid artifact digest", "unsupported digest algorithm"},
		},
		{
			name:   "malformed",
			digest: func(string) string { return "sha256:xyz" },
			parts:  []string{"invalid artifact digest"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			artifact := publish(t, files)
			real := artifact.Digest
			artifact.Digest = tt.digest(real)
			dir := filepath.Join(t.TempDir(), "out")

			err := (&Fetcher{}).Fetch(context.Background(), *artifact, dir)
			expectArtifactError(g, err, artifact, tt.parts...)
			if tt.name == "mismatch" {
				g.Expect(err.Error()).To(ContainSubstring(real))
			}
			// Nothing is extracted from an unverified download.
			g.Expect(dir).NotTo(BeAnExistingFile())
		})
	}
}

func TestFetchNotFound(t *testing.T) {
	g := NewWithT(t)
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})
	artifact.URL = env.Artifacts.URL("gone.tar.gz")

	err := (&Fetcher{}).Fetch(context.Background(), *artifact, t.TempDir())
	expectArtifactError(g, err, artifact, "404")
	g.Expect(err).To(MatchError(errNotFound))
}

func TestFetchRefusesEscapes(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]testenv.File
		parts []string
	}{
		{
			name:  "entry path",
			files: map[string]testenv.File{"../escape.yaml": {Body: "x"}},
			parts: []string{`"../escape.yaml"`},
		},
		{
			name:  "nested entry path",
			files: map[string]testenv.File{"app/../../escape.yaml": {Body: "x"}},
			parts: []string{`"app/../../escape.yaml"`},
		},
		{
			name:  "parent directory entry",
			files: map[string]testenv.File{"..": {Type: tar.TypeDir}},
			parts: []string{`archive entry ".." escapes the extraction directory`},
		},
		{
			name:  "absolute symlink",
			files: map[string]testenv.File{"passwd": {Type: tar.TypeSymlink, Linkname: "/etc/passwd"}},
			parts: []string{`archive entry "passwd" is a symlink to "/etc/passwd", outside the artifact`},
		},
		{
			name:  "relative symlink",
			files: map[string]testenv.File{"app/link": {Type: tar.TypeSymlink, Linkname: "../../x"}},
			parts: []string{`archive entry "app/link" is a symlink to "../../x", outside the artifact`},
		},
		{
			name:  "hard link",
			files: map[string]testenv.File{"passwd": {Type: tar.TypeLink, Linkname: "../../etc/passwd"}},
			parts: []string{`archive entry "passwd" is a hard link to "../../etc/passwd", outside the artifact`},
		},
		{
			name:  "device",
			files: map[string]testenv.File{"dev": {Type: tar.TypeChar}},
			parts: []string{"entry dev contained unsupported file type"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			// Entries are sorted by name: this one follows the hostile
			// entry and must not be extracted once that one is refused.
			tt.files["z-after.yaml"] = testenv.File{Body: "kind: ConfigMap\n"}
			artifact := publish(t, tt.files)
			outer := t.TempDir()
			dir := filepath.Join(outer, "a", "b")

			err := (&Fetcher{}).Fetch(context.Background(), *artifact, dir)
			expectArtifactError(g, err, artifact, tt.parts...)
			g.Expect(listFiles(t, outer)).To(BeEmpty())
		})
	}
}

func TestFetchSkipsLinksInside(t *testing.T) {
	g := NewWithT(t)
	artifact := publish(t, map[string]testenv.File{
		"app/deploy.yaml": {Body: "kind: Deployment\n"},
		"app/symlink":     {Type: tar.TypeSymlink, Linkname: "deploy.yaml"},
		"app/dirlink":     {Type: tar.TypeSymlink, Linkname: "../app"},
		"hardlink":        {Type: tar.TypeLink, Linkname: "app/deploy.yaml"},
	})
	dir := t.TempDir()

	g.Expect((&Fetcher{}).Fetch(context.Background(), *artifact, dir)).To(Succeed())
	g.Expect(listFiles(t, dir)).To(ConsistOf("app/deploy.yaml"))
}

func TestFetchSizeCaps(t *testing.T) {
	big := strings.Repeat("x", 4096)
	tests := []struct {
		name    string
		fetcher *Fetcher
		size    func(a *meta.Artifact)
		parts   []string
		fetched bool
	}{
		{
			name:    "untar",
			fetcher: &Fetcher{MaxUntarSize: 1024},
			parts:   []string{"extracting the artifact", "bigger than max archive size of 1024 bytes"},
			fetched: true,
		},
		{
			name:    "download, size not reported",
			fetcher: &Fetcher{MaxDownloadSize: 64},
			size:    func(a *meta.Artifact) { a.Size = nil },
			parts:   []string{"the download exceeds the max download size of 64 bytes"},
			fetched: true,
		},
		{
			name:    "download, size reported",
			fetcher: &Fetcher{MaxDownloadSize: 64},
			parts:   []string{"exceeds the max download size of 64 bytes"},
			fetched: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			artifact := publish(t, map[string]testenv.File{"big.yaml": {Body: big}})
			if tt.size != nil {
				tt.size(artifact)
			}

			err := tt.fetcher.Fetch(context.Background(), *artifact, t.TempDir())
			expectArtifactError(g, err, artifact, tt.parts...)
			g.Expect(env.Artifacts.Requests(artifact.Path) > 0).To(Equal(tt.fetched))
		})
	}

	t.Run("negative disables", func(t *testing.T) {
		g := NewWithT(t)
		artifact := publish(t, map[string]testenv.File{"big.yaml": {Body: big}})
		f := &Fetcher{MaxDownloadSize: -1, MaxUntarSize: -1}
		g.Expect(f.Fetch(context.Background(), *artifact, t.TempDir())).To(Succeed())
	})
}

func TestFetchGarbage(t *testing.T) {
	g := NewWithT(t)
	artifact := env.Artifacts.PublishRaw(testenv.RandomName("garbage")+".tar.gz", "main@sha1:1", []byte("this is not a tarball"))

	err := (&Fetcher{}).Fetch(context.Background(), *artifact, t.TempDir())
	expectArtifactError(g, err, artifact, "gzip")
}

func TestFetchHonoursContext(t *testing.T) {
	g := NewWithT(t)
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := (&Fetcher{}).Fetch(ctx, *artifact, t.TempDir())
	expectArtifactError(g, err, artifact)
	g.Expect(err).To(MatchError(context.Canceled))
}

func TestExtractHonoursContext(t *testing.T) {
	g := NewWithT(t)
	data, err := testenv.Tarball(map[string]testenv.File{"a.yaml": {Body: "a"}})
	g.Expect(err).NotTo(HaveOccurred())
	file, err := os.CreateTemp(t.TempDir(), "artifact")
	g.Expect(err).NotTo(HaveOccurred())
	defer file.Close()
	_, err = file.Write(data)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	dir := t.TempDir()
	g.Expect((&Fetcher{}).extract(ctx, file, dir)).To(MatchError(context.Canceled))
	g.Expect(listFiles(t, dir)).To(BeEmpty())
}

func TestFetchRetries(t *testing.T) {
	data, err := testenv.Tarball(map[string]testenv.File{"a.yaml": {Body: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	// A server that fails the first request and serves the tarball after.
	var requests atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "storage warming up", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(server.Close)
	artifact := env.Artifacts.PublishRaw(testenv.RandomName("retry")+".tar.gz", "main@sha1:1", data)
	artifact.URL = server.URL + "/artifact.tar.gz"

	t.Run("disabled", func(t *testing.T) {
		g := NewWithT(t)
		requests.Store(0)
		err := (&Fetcher{Retries: -1}).Fetch(context.Background(), *artifact, t.TempDir())
		expectArtifactError(g, err, artifact, "giving up after 1 attempt")
		g.Expect(requests.Load()).To(BeEquivalentTo(1))
	})
	t.Run("default", func(t *testing.T) {
		g := NewWithT(t)
		requests.Store(0)
		g.Expect((&Fetcher{}).Fetch(context.Background(), *artifact, t.TempDir())).To(Succeed())
		g.Expect(requests.Load()).To(BeEquivalentTo(2))
	})
}

// listFiles returns the slash-separated paths of every file and link under
// root, relative to it.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
