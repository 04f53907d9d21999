package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ArtifactServer serves artifact tarballs over HTTP on loopback, as
// source-controller's storage server does. Tarballs are built in memory from
// files given by the test.
type ArtifactServer struct {
	server *httptest.Server

	mu    sync.RWMutex
	files map[string][]byte

	// requests counts the GET requests served per artifact path.
	requests sync.Map // string -> *atomic.Int64
}

// NewArtifactServer starts a server on a random loopback port.
func NewArtifactServer() (*ArtifactServer, error) {
	s := &ArtifactServer{files: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.server.Start()
	return s, nil
}

// Close stops the server.
func (s *ArtifactServer) Close() {
	s.server.Close()
}

// URL returns the address of an artifact path on the server.
func (s *ArtifactServer) URL(path string) string {
	return s.server.URL + "/" + strings.TrimPrefix(path, "/")
}

// Requests returns how many times an artifact path was downloaded.
func (s *ArtifactServer) Requests(path string) int64 {
	if n, ok := s.requests.Load(strings.TrimPrefix(path, "/")); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (s *ArtifactServer) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	n, _ := s.requests.LoadOrStore(path, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)

	s.mu.RLock()
	body, ok := s.files[path]
	s.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(body)
}

// File is one entry of an artifact tarball. A plain file needs only Body;
// Type and Linkname build directories, symlinks and hard links.
type File struct {
	Body     string
	Type     byte // tar.TypeReg when zero
	Linkname string
	Mode     int64 // 0o644 when zero
}

// Publish stores a tarball of files (path → content) under path and returns
// the artifact as source-controller reports it: URL, revision, sha256 digest
// of the tarball, size and update time.
func (s *ArtifactServer) Publish(path, revision string, files map[string]string) (*meta.Artifact, error) {
	entries := make(map[string]File, len(files))
	for name, body := range files {
		entries[name] = File{Body: body}
	}
	return s.PublishFiles(path, revision, entries)
}

// PublishFiles is Publish with full control over the tar entries, for tests
// of hostile archives (path escapes, symlinks).
func (s *ArtifactServer) PublishFiles(path, revision string, files map[string]File) (*meta.Artifact, error) {
	data, err := Tarball(files)
	if err != nil {
		return nil, err
	}
	return s.PublishRaw(path, revision, data), nil
}

// PublishRaw stores data as is under path and returns its artifact with the
// true digest of data. Tests that need a digest mismatch alter the returned
// artifact.
func (s *ArtifactServer) PublishRaw(path, revision string, data []byte) *meta.Artifact {
	path = strings.TrimPrefix(path, "/")
	s.mu.Lock()
	s.files[path] = data
	s.mu.Unlock()

	size := int64(len(data))
	return &meta.Artifact{
		Path:           path,
		URL:            s.URL(path),
		Revision:       revision,
		Digest:         Digest(data),
		LastUpdateTime: metav1.NewTime(time.Now().Truncate(time.Second)),
		Size:           &size,
	}
}

// Digest returns the sha256 digest of data in the artifact format
// "sha256:<hex>".
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Tarball builds a gzipped tarball of files with fixed timestamps, so equal
// inputs give equal bytes and digests.
func Tarball(files map[string]File) ([]byte, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	epoch := time.Unix(0, 0)
	for _, name := range names {
		f := files[name]
		hdr := &tar.Header{Name: name, Typeflag: f.Type, Linkname: f.Linkname, Mode: f.Mode, ModTime: epoch}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(f.Body)); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FilesFromDir reads the regular files below dir into tarball entries keyed by
// their slash-separated path relative to dir.
func FilesFromDir(dir string) (map[string]File, error) {
	files := map[string]File{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = File{Body: string(body)}
		return nil
	})
	return files, err
}
