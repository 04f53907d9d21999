package build

import (
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/resource"
)

// Error is a build failure: a missing or escaping path, a kustomize or patch
// error, a substitution error or a malformed object. The controller reports
// it as Ready=False with reason BuildFailed and Error() as message.
type Error struct {
	// Err says what failed and wraps the underlying error.
	Err error
}

// Error returns the message of the wrapped error.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// errorf returns a build Error with a formatted message.
func errorf(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...)}
}

// rootHiddenError shows the paths of kustomize's messages relative to the
// artifact root. The root is a fresh temporary directory on every run; a
// message that embedded it would change on every retry, so the Ready
// condition and its event would churn for the same failure.
type rootHiddenError struct {
	err   error
	roots []string
}

// hideRoot wraps err so that its message names files relative to the
// artifact root; roots are the spellings of that root (given and resolved).
func hideRoot(err error, roots ...string) error {
	return &rootHiddenError{err: err, roots: roots}
}

// Error returns the wrapped message with the root prefix removed from file
// paths and the root itself shown as <artifact root>.
func (e *rootHiddenError) Error() string {
	msg := e.err.Error()
	for _, root := range e.roots {
		if root == "" {
			continue
		}
		root = filepath.Clean(root)
		msg = strings.ReplaceAll(msg, root+string(filepath.Separator), "")
		msg = strings.ReplaceAll(msg, root, "<artifact root>")
	}
	return msg
}

// Unwrap returns the wrapped error.
func (e *rootHiddenError) Unwrap() error { return e.err }

// describe names a built resource as Kind/namespace/name (Kind/name when
// cluster-scoped or without namespace), the way users write it.
func describe(res *resource.Resource) string {
	if ns := res.GetNamespace(); ns != "" {
		return res.GetKind() + "/" + ns + "/" + res.GetName()
	}
	return res.GetKind() + "/" + res.GetName()
}
