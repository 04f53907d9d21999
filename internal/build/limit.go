package build

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/provider"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Why a limit of our own: kustomize assembles the resources of a
// kustomization in a list and checks each new one against all before it
// (resWrangler.Append), so a build is quadratic in the objects of a stage:
// about 1 s for 1,000 ConfigMaps on a 2-core machine, minutes for 10,000.
// Builds hold buildMu (kustomize is not safe for concurrent use), so one
// tenant's huge stage would stall every other StageSet's build. Counting the
// objects after the build comes too late; limitFS counts them while kustomize
// reads its files, before it assembles them, and stops the build at the
// first file past the limit. kustomize-controller has no such limit.

// DefaultMaxObjects is the default limit of objects per stage (the
// controller's --max-objects-per-stage). Builds of ConfigMaps on a 2-core
// machine, with every other build waiting: 0.9 s for 1,000, 1.5–4.6 s for
// 2,000 (two runs, other loads), 34 s for 5,000.
const DefaultMaxObjects = 2000

// errTooManyObjects is the failure of a build over its object limit.
var errTooManyObjects = errors.New("too many objects")

// remoteError is the failure of a build whose kustomization names a remote
// file or base.
type remoteError struct{ ref string }

func (e *remoteError) Error() string {
	return fmt.Sprintf("%q is remote: remote files and bases are not supported, vendor them into the source", e.ref)
}

// limitFS is the build's file system with a budget of objects: every file
// kustomize reads is charged with the objects it can yield (objectsIn), and
// the read past the budget fails. over tells the build that the failure is
// the budget's, so the caller reports the limit instead of kustomize's
// wrapped read error.
//
// It also refuses a kustomization that names a remote file or base.
// kustomize fetches an http(s) file itself, with a client of its own that
// has no timeout and that no file system sees, and clones a git base by
// running git: either would let a tenant choose a host the controller
// calls, hold the build lock for as long as that host answers slowly, and
// bring in objects this file system never counts. remote tells the build
// which reference it was.
type limitFS struct {
	filesys.FileSystem
	max    int // 0: no limit on objects
	count  int
	remote *remoteError
}

// over tells that a read went past the budget.
func (fs *limitFS) over() bool { return fs.max > 0 && fs.count > fs.max }

// ReadFile refuses a kustomization with remote references and charges the
// objects of the file to the budget.
func (fs *limitFS) ReadFile(path string) ([]byte, error) {
	data, err := fs.FileSystem.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k := kustomizationOf(filepath.Base(path), data)
	if ref := remoteReference(k); ref != "" {
		fs.remote = &remoteError{ref: ref}
		return nil, fs.remote
	}
	if fs.max <= 0 {
		return data, nil
	}
	fs.count += objectsIn(data, k)
	if fs.over() {
		return nil, fmt.Errorf("more than %d objects", fs.max)
	}
	return data, nil
}

// kustomizationOf decodes a file kustomize reads a kustomization from, as
// kustomize decodes it (keys in any case, the last of duplicate keys): nil
// for another file, or one that does not decode (kustomize refuses it).
func kustomizationOf(name string, data []byte) *kustypes.Kustomization {
	if !slices.Contains(konfig.RecognizedKustomizationFileNames(), name) {
		return nil
	}
	k := &kustypes.Kustomization{}
	if err := k.Unmarshal(data); err != nil {
		return nil
	}
	return k
}

// objectsIn returns an upper bound of the resources kustomize can make of
// one file: the resources kustomize reads of it as a resource file, and for
// a kustomization (k, decoded from it) the objects its generators make. It
// parses the file with
// kustomize's own functions, never a look-alike: any difference between two
// parsers (escapes such as kind: "\x4Cist", UTF-16, duplicate keys, "---#"
// separators, keys in another case) is a way to hide objects from the count.
// A file that kustomize cannot read as resources (a generator's data file,
// a kustomization) makes none of its own.
func objectsIn(data []byte, k *kustypes.Kustomization) int {
	return resourcesIn(data) + generatedBy(k)
}

// resourceFactory parses files as kustomize's build does.
var resourceFactory = provider.NewDefaultDepProvider().GetResourceFactory()

// resourcesIn counts the resources kustomize reads of data as a resource
// file, with FooLists inlined (resmap.Factory.NewResMapFromBytes). A file
// that kustomize refuses counts as none.
func resourcesIn(data []byte) int {
	nodes, err := resourceFactory.RNodesFromBytes(data)
	if err != nil {
		return 0
	}
	return len(nodes)
}

// generatedBy counts the objects the generators of a kustomization make,
// one per configMapGenerator and secretGenerator entry and one per
// generator config written inline in `generators:` (a file or directory
// there is charged when kustomize reads it); none for a nil k.
func generatedBy(k *kustypes.Kustomization) int {
	if k == nil {
		return 0
	}
	n := len(k.ConfigMapGenerator) + len(k.SecretGenerator)
	for _, g := range k.Generators {
		n += resourcesIn([]byte(g))
	}
	return n
}

// remoteReference returns the first file or base a kustomization names that
// kustomize would fetch over the network: an http(s) URL in any field that
// names a file, and for resources, components and bases also the forms
// kustomize clones with git (ssh, git@, git::, and host/org/repo paths of
// the well-known hosts). A nil k names none.
func remoteReference(k *kustypes.Kustomization) string {
	if k == nil {
		return ""
	}
	var files []string
	files = append(files, k.Crds...)
	files = append(files, k.Configurations...)
	files = append(files, k.Generators...)
	files = append(files, k.Transformers...)
	files = append(files, k.Validators...)
	for _, p := range k.PatchesStrategicMerge {
		files = append(files, string(p))
	}
	for _, p := range slices.Concat(k.Patches, k.PatchesJson6902) {
		files = append(files, p.Path)
	}
	for _, r := range k.Replacements {
		files = append(files, r.Path)
	}
	for _, g := range k.ConfigMapGenerator {
		files = append(files, sources(g.KvPairSources)...)
	}
	for _, g := range k.SecretGenerator {
		files = append(files, sources(g.KvPairSources)...)
	}
	for _, f := range k.OpenAPI {
		files = append(files, f)
	}
	for _, f := range files {
		if isURL(f) {
			return f
		}
	}
	for _, r := range slices.Concat(k.Resources, k.Components, k.Bases) {
		if isURL(r) || isGitBase(r) {
			return r
		}
	}
	return ""
}

// sources returns the file paths of a generator: files (key=path or path),
// envs and env.
func sources(kv kustypes.KvPairSources) []string {
	var paths []string
	for _, f := range kv.FileSources {
		_, path, found := strings.Cut(f, "=")
		if !found {
			path = f
		}
		paths = append(paths, path)
	}
	return append(append(paths, kv.EnvSources...), kv.EnvSource)
}

// isURL tells a reference with a scheme ("https://", "ssh://", ...).
func isURL(ref string) bool {
	return strings.Contains(ref, "://")
}

// isGitBase tells the scheme-less forms of a git base kustomize clones
// (its internal git.NewRepoSpecFromURL, which it tries before any local
// path): a user name ("git@host:org/repo", "deploy@host:..."), GitHub's
// "github.com/" and "github.com:", behind an optional "git::". Other hosts
// without a scheme are refused too: kustomize does not clone them today.
func isGitBase(ref string) bool {
	ref = strings.ToLower(ref)
	for _, prefix := range []string{"git::", "github.com/", "github.com:", "gitlab.com/", "bitbucket.org/", "dev.azure.com/"} {
		if strings.HasPrefix(ref, prefix) {
			return true
		}
	}
	return gitUser.MatchString(ref)
}

// gitUser is the user name kustomize reads at the start of a scheme-less
// git reference.
var gitUser = regexp.MustCompile(`^[a-z][a-z0-9-]*@`)
