package build

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// resolveDir returns the artifact root and the stage directory, both with
// symlinks resolved, and refuses a stage path that is absolute, climbs out
// of the root with "..", or leaves it through a symlink.
//
// The API server refuses such paths already; this check is for the StageSet
// that slipped past validation and, above all, for symlinks inside the
// artifact, which no admission rule can see. Errors are explicit rather than
// the silent clamping of a secure join: a stage built from the wrong folder
// would be worse than a failed build.
func resolveDir(root, path string) (string, string, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", "", errorf("artifact root %q is not readable: %w", root, err)
	}
	if realRoot, err = filepath.Abs(realRoot); err != nil {
		return "", "", errorf("artifact root %q: %w", root, err)
	}

	clean := filepath.Clean(filepath.FromSlash(path))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", "", errorf("stage path %q escapes the artifact root", path)
	}

	dir, err := filepath.EvalSymlinks(filepath.Join(realRoot, clean))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", errorf("stage path %q does not exist in the artifact", path)
	case err != nil:
		return "", "", errorf("stage path %q cannot be resolved: %w", path, err)
	}
	if !within(realRoot, dir) {
		return "", "", errorf("stage path %q escapes the artifact root through a symlink", path)
	}

	info, err := os.Stat(dir)
	if err != nil {
		return "", "", errorf("stage path %q: %w", path, err)
	}
	if !info.IsDir() {
		return "", "", errorf("stage path %q is not a directory", path)
	}
	return realRoot, dir, nil
}

// within reports whether path is root or below it; both must be clean and
// absolute.
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
