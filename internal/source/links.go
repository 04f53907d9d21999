package source

import (
	"archive/tar"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/go-logr/logr"
)

// linkGuard is the extraction filter that judges links and names. Its skip
// method runs once per tar entry, after fluxcd/pkg/tar's own name check and
// before the entry is written.
//
// The filter can only skip entries, not fail the extraction, so the first
// violation is recorded in err and every later entry is skipped: nothing
// more is written, and Fetch turns err into its error once the archive has
// been read.
type linkGuard struct {
	log logr.Logger
	err error
}

// skip reports whether the entry must not be extracted.
func (g *linkGuard) skip(name string, fi os.FileInfo) bool {
	if g.err != nil {
		return true
	}
	if escapes(path.Clean(name)) {
		g.err = fmt.Errorf("archive entry %q escapes the extraction directory", name)
		return true
	}
	hdr, ok := fi.Sys().(*tar.Header)
	if !ok {
		return false
	}
	switch {
	case hdr.Typeflag == tar.TypeSymlink || fi.Mode()&os.ModeSymlink != 0:
		// A symlink's target is relative to the link's own directory.
		target := hdr.Linkname
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(name), target)
		}
		return g.skipLink(name, "symlink", hdr.Linkname, target)
	case hdr.Typeflag == tar.TypeLink:
		// A hard link's target is relative to the archive's root. Left to
		// fluxcd/pkg/tar, it would become an empty regular file.
		return g.skipLink(name, "hard link", hdr.Linkname, hdr.Linkname)
	}
	return false
}

// skipLink records an error for a link whose target (resolved against the
// archive root) leaves the artifact, and skips every link either way.
func (g *linkGuard) skipLink(name, kind, linkname, target string) bool {
	if path.IsAbs(target) || escapes(path.Clean(target)) {
		g.err = fmt.Errorf("archive entry %q is a %s to %q, outside the artifact", name, kind, linkname)
		return true
	}
	g.log.V(1).Info("skipped a link in the artifact: links are not extracted", "entry", name, "kind", kind, "target", linkname)
	return true
}

// escapes tells whether a cleaned slash-separated relative path leaves its
// root.
func escapes(cleaned string) bool {
	return cleaned == ".." || strings.HasPrefix(cleaned, "../")
}
