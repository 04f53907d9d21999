package localcluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/sourceignore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// localSource serves a local directory as the artifact of every source a
// StageSet names, standing in for source-controller: one tarball, one
// revision, written to each source's status as source-controller writes it.
// Serving the same directory for every source keeps one flag for one
// repository; a StageSet whose stages read several repositories is run with
// a directory that holds all the paths its stages name.
type localSource struct {
	dir       string
	c         client.Client
	artifacts *testenv.ArtifactServer
	sources   []testenv.Source
	// digest of the tarball last published.
	digest string
}

// createSources creates the namespaces and the source objects the StageSet
// reads, each with the artifact of the directory's current content, and
// returns the revision published.
func (s *localSource) createSources(ctx context.Context, refs []stagesetv1.SourceReference) (string, error) {
	tarball, err := readSourceDir(s.dir)
	if err != nil {
		return "", err
	}
	artifact := s.artifact(tarball)
	for _, ref := range refs {
		if err := ensureNamespace(ctx, s.c, ref.Namespace); err != nil {
			return "", err
		}
		src, err := testenv.CreateSource(ctx, s.c, ref.Kind, ref.Namespace, ref.Name, artifact)
		if err != nil {
			return "", fmt.Errorf("creating the %s %s/%s: %w", ref.Kind, ref.Namespace, ref.Name, err)
		}
		s.sources = append(s.sources, src)
	}
	return artifact.Revision, nil
}

// publish writes a new artifact of tarball to every source's status.
func (s *localSource) publish(ctx context.Context, tarball []byte) (string, error) {
	artifact := s.artifact(tarball)
	for _, src := range s.sources {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := s.c.Get(ctx, client.ObjectKeyFromObject(src), src); err != nil {
				return err
			}
			return testenv.SetArtifact(ctx, s.c, src, artifact)
		})
		if err != nil {
			return "", fmt.Errorf("publishing revision %s to %s/%s: %w", artifact.Revision, src.GetNamespace(), src.GetName(), err)
		}
	}
	return artifact.Revision, nil
}

func (s *localSource) artifact(tarball []byte) *meta.Artifact {
	s.digest = testenv.Digest(tarball)
	short := shortDigest(tarball)
	return s.artifacts.PublishRaw("local/"+short+".tar.gz", sampleRevision+short, tarball)
}

// dirChange is the directory's new content, as a tarball, or why it could
// not be read.
type dirChange struct {
	tarball []byte
	err     error
}

// changes polls the directory every interval and sends the tarball of its
// content once it differs from the last published one and has stayed the
// same for one more interval, so that an editor saving several files (or
// writing one in steps) publishes one revision, not several half-written
// ones. Polling a content digest, rather than file events, also sees
// changes in new subdirectories and on file systems without inotify. A
// read error is sent once, until the directory reads again.
func (s *localSource) changes(ctx context.Context, interval time.Duration) <-chan dirChange {
	ch := make(chan dirChange)
	published, pending, lastErr := s.digest, "", ""
	send := func(c dirChange) bool {
		select {
		case ch <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
			tarball, err := readSourceDir(s.dir)
			if err != nil {
				if err.Error() != lastErr && !send(dirChange{err: err}) {
					return
				}
				lastErr = err.Error()
				continue
			}
			lastErr = ""
			digest := testenv.Digest(tarball)
			switch {
			case digest == published:
				pending = ""
			case digest != pending:
				pending = digest
			default:
				if !send(dirChange{tarball: tarball}) {
					return
				}
				published, pending = digest, ""
			}
		}
	}()
	return ch
}

// readSourceDir returns the gzipped tarball of dir the way source-controller
// archives a Git checkout: without .git and the files its default ignore
// rules and any .sourceignore exclude. Equal content gives equal bytes.
func readSourceDir(dir string) ([]byte, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("source directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("source directory %s is not a directory", dir)
	}
	patterns, err := sourceignore.LoadIgnorePatterns(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the ignore rules of %s: %w", dir, err)
	}
	ignore := sourceignore.NewDefaultMatcher(patterns, nil)
	files := map[string]testenv.File{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if ignore.Match(strings.Split(filepath.ToSlash(rel), "/"), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		// Symlinks (and anything else that is not a regular file) are
		// left out, as source-controller's archiver does: a link could
		// pack a file from outside the directory, ~/.kube/config say,
		// into the artifact.
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = testenv.File{Body: string(body)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	return testenv.Tarball(files)
}

// ensureNamespace creates the namespace unless it exists.
func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
