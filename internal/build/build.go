// Package build renders the manifests of one StageSet stage: it resolves the
// stage path inside an extracted artifact, runs a secure kustomize build
// (generating a kustomization.yaml when the folder has none, setting the
// target namespace and adding the stage's patches, as kustomize-controller
// does), then applies Flux-style ${var} substitution and returns the objects.
//
// The artifact directory is never written to: the generated or amended
// kustomization.yaml lives in an in-memory layer over the read-only disk
// (fluxcd/pkg/kustomize/filesys.MakeFsInMemory). Several stages of one run
// share an artifact, sometimes with the same path and different patches;
// writing kustomization.yaml on disk and restoring it afterwards would race
// between them and could leave a stale file behind after a crash.
package build

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxkustomize "github.com/fluxcd/pkg/kustomize"
	securefs "github.com/fluxcd/pkg/kustomize/filesys"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
)

// Input describes one stage build.
type Input struct {
	// Root is the root directory of the extracted artifact. Nothing outside
	// it is read.
	Root string
	// Path is the stage path inside Root, relative (for example "./app").
	Path string
	// TargetNamespace sets the namespace of every namespaced object; ""
	// keeps the declared namespaces.
	TargetNamespace string
	// Patches are strategic-merge or JSON6902 patches added to the
	// kustomization, as in Kustomization.spec.patches.
	Patches []kustomize.Patch
	// Substitute holds the variables of the ${var} substitution (see
	// LoadVariables). Nil disables substitution; an empty map still
	// substitutes, so ${var:=default} takes its default.
	Substitute map[string]string
	// MaxObjects, when positive, fails the build of a stage whose files
	// can yield more objects than this, before kustomize assembles them
	// (see limitFS). It is not part of the Fingerprint: it is set once per
	// process, and the cache does not outlive the process.
	MaxObjects int
}

// buildMu serialises whole builds. fluxcd/pkg/kustomize already locks the
// krusty run (kustomize's build is not safe for concurrent use), but the
// generator scan and the substitution around it also run kyaml code whose
// thread-safety is not documented, and a concurrent map write there would
// be a fatal error no recover() can catch. Builds are short and in memory,
// so one lock around all of it is cheap insurance.
var buildMu sync.Mutex

// Build builds the stage and returns its objects in server-side apply order:
// sorted with ssa.SortableUnstructureds (CRDs and Namespaces first, then by
// kind order, group, kind, namespace and name), stable for equal keys. The
// objects carry no ownership labels. Every failure is an *Error. Build leaves
// Root unchanged and is safe to call concurrently.
func Build(in Input) ([]*unstructured.Unstructured, error) {
	root, dir, err := resolveDir(in.Root, in.Path)
	if err != nil {
		return nil, err
	}

	buildMu.Lock()
	defer buildMu.Unlock()

	resMap, err := kustomizeBuild(root, dir, in)
	if err != nil {
		return nil, err
	}
	objects, err := toObjects(resMap, in)
	if err != nil {
		return nil, err
	}
	sort.Stable(ssa.SortableUnstructureds(objects))
	return objects, nil
}

// kustomizeBuild runs the kustomize build of dir with the stage's target
// namespace and patches. When the build fails only because of the patches,
// the error says so, which is what a user needs to find the culprit.
func kustomizeBuild(root, dir string, in Input) (resmap.ResMap, error) {
	resMap, err := secureBuild(root, dir, in.TargetNamespace, in.Patches, in.MaxObjects)
	if err == nil {
		return resMap, nil
	}
	if errors.Is(err, errTooManyObjects) {
		return nil, errorf("stage path %q holds more than %d objects, the limit per stage (--max-objects-per-stage): split it into several stages", in.Path, in.MaxObjects)
	}
	if remote := (*remoteError)(nil); errors.As(err, &remote) {
		return nil, errorf("kustomize build of stage path %q refused: %w", in.Path, remote)
	}
	if len(in.Patches) > 0 {
		// A second build only on the failure path: if the folder builds
		// without the stage's patches, the patches are at fault.
		if _, errUnpatched := secureBuild(root, dir, in.TargetNamespace, nil, in.MaxObjects); errUnpatched == nil {
			return nil, errorf("applying the patches of stage path %q failed: %w", in.Path, hideRoot(err, root, in.Root))
		}
	}
	return nil, errorf("kustomize build of stage path %q failed: %w", in.Path, hideRoot(err, root, in.Root))
}

// secureBuild generates or amends the kustomization of dir in memory and
// builds it on a file system confined to root (no remote bases, no file
// outside root, symlinks included). With maxObjects > 0, a build whose
// files hold more objects fails with errTooManyObjects.
func secureBuild(root, dir, targetNamespace string, patches []kustomize.Patch, maxObjects int) (resmap.ResMap, error) {
	spec, err := kustomizationSpec(targetNamespace, patches)
	if err != nil {
		return nil, err
	}
	gen := fluxkustomize.NewGenerator(root, unstructured.Unstructured{Object: map[string]any{"spec": spec}})
	manifest, kfile, _, err := gen.GenerateManifest(dir)
	if err != nil {
		return nil, err
	}

	disk, err := securefs.MakeFsOnDiskSecure(root)
	if err != nil {
		return nil, err
	}
	fs := securefs.MakeFsInMemory(disk)
	if err := fs.WriteFile(kfile, manifest); err != nil {
		return nil, fmt.Errorf("writing the kustomization in memory: %w", err)
	}
	limited := &limitFS{FileSystem: fs, max: maxObjects}
	resMap, err := krustyRun(limited, dir)
	// kustomize wraps a failed read in messages of its own: the limit or
	// the remote reference is what the user needs to read.
	switch {
	case limited.remote != nil:
		return nil, limited.remote
	case limited.over():
		return nil, errTooManyObjects
	}
	return resMap, err
}

// kustomizationSpec returns the spec fields of a Flux Kustomization that the
// generator reads: targetNamespace and patches.
func kustomizationSpec(targetNamespace string, patches []kustomize.Patch) (map[string]any, error) {
	spec := map[string]any{}
	if targetNamespace != "" {
		spec["targetNamespace"] = targetNamespace
	}
	if len(patches) > 0 {
		list := make([]any, 0, len(patches))
		for i := range patches {
			p, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&patches[i])
			if err != nil {
				return nil, fmt.Errorf("patch %d: %w", i, err)
			}
			list = append(list, p)
		}
		spec["patches"] = list
	}
	return spec, nil
}

// toObjects substitutes variables in every built resource (when the stage
// has postBuild) and converts it into a validated object.
func toObjects(resMap resmap.ResMap, in Input) ([]*unstructured.Unstructured, error) {
	objects := make([]*unstructured.Unstructured, 0, resMap.Size())
	for _, res := range resMap.Resources() {
		if in.Substitute != nil {
			substituted, err := substitute(res, in.Substitute)
			if err != nil {
				return nil, errorf("substituting variables in %s of stage path %q failed: %w", describe(res), in.Path, err)
			}
			res = substituted
		}
		obj, err := toUnstructured(res)
		if err != nil {
			return nil, errorf("malformed object %s in stage path %q: %w", describe(res), in.Path, err)
		}
		if err := validate(obj); err != nil {
			return nil, errorf("malformed object %s in stage path %q: %w", describe(res), in.Path, err)
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

// toUnstructured converts a resource through JSON, so numbers become int64
// or float64 as in any object read from the API (kyaml's own maps hold int,
// which unstructured.DeepCopy refuses with a panic).
func toUnstructured(res *resource.Resource) (*unstructured.Unstructured, error) {
	data, err := res.MarshalJSON()
	if err != nil {
		return nil, err
	}
	content := map[string]any{}
	if err := utiljson.Unmarshal(data, &content); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: content}, nil
}

// validate checks what server-side apply needs of every object.
func validate(obj *unstructured.Unstructured) error {
	var errs []error
	if obj.GetAPIVersion() == "" {
		errs = append(errs, errors.New("apiVersion is missing"))
	}
	if obj.GetKind() == "" {
		errs = append(errs, errors.New("kind is missing"))
	}
	if obj.GetName() == "" {
		errs = append(errs, errors.New("metadata.name is missing"))
	}
	return errors.Join(errs...)
}
