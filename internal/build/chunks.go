package build

import (
	"path/filepath"
	"reflect"
	"strings"

	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resource"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Why chunks: kustomize checks every resource it adds against all those it
// already holds (resmap's Append, then the namespace transformer's conflict
// check, each reading the identity of every other resource again). One
// build is quadratic in the resources of its kustomization: 0.95 s of CPU
// and 130 MB of garbage for 1,000 small ConfigMaps with a target namespace
// (BenchmarkBuildLargeStage), most of a large stage's build. Where nothing
// in the build relates one resource to another, building the resources in
// chunks gives the same objects in linear time.
//
// That is the case for the kustomization the generator writes for a folder
// of plain files, with at most a target namespace: kustomize then loads
// every resource, sets its namespace and fixes references between
// resources (nameReference). The last step is the only one across
// resources, and with no resource renamed it changes a referrer only where
// the reference is a map of name and namespace (RoleBinding subjects,
// webhook services...): the kinds holding such references are never built
// in chunks (mapReferrers). Anything else (patches, a kustomization.yaml of
// the user's, a folder with its own kustomization, duplicate or colliding
// identities, a chunk that fails) goes through one build, which also gives
// kustomize's own error messages.

// chunking is when a build goes in chunks: from min resources on, size
// resources a chunk. Tests lower both.
var chunking = struct{ min, size int }{min: 256, size: 64}

// mapReferrers are the kinds that kustomize's nameReference configuration
// lets refer to another resource through a map of name and namespace, or
// through a field that is not a plain name (kustomize v0.21,
// api/internal/konfig/builtinpluginconsts/namereference.go): such a
// reference gets the namespace of the resource it names, which a chunk
// without that resource would not set. Matched in any API group, as
// kustomize's field specs match kinds.
var mapReferrers = map[string]bool{
	"RoleBinding":                    true, // subjects
	"ClusterRoleBinding":             true, // subjects
	"ValidatingWebhookConfiguration": true, // webhooks/clientConfig/service
	"MutatingWebhookConfiguration":   true, // webhooks/clientConfig/service
	"Node":                           true, // spec/configSource/configMap
	"StorageClass":                   true, // parameters/secretRef
	"Ingress":                        true, // secrets named in annotations
}

// chunkedBuild builds the generated kustomization manifest of dir (written
// for it by the generator, action created) in chunks, when that gives what
// one build gives; ok is false otherwise, and the caller builds it whole.
// The chunks are built on a file system in memory holding only the chunk:
// every file was read through fs, the root-confined one.
func chunkedBuild(fs filesys.FileSystem, dir string, manifest []byte, generated bool) (resources []*resource.Resource, ok bool) {
	if !generated {
		return nil, false
	}
	var kus kustypes.Kustomization
	if err := yaml.Unmarshal(manifest, &kus); err != nil {
		return nil, false
	}
	// Resources and a namespace, nothing else.
	plain := kustypes.Kustomization{TypeMeta: kus.TypeMeta, Resources: kus.Resources, Namespace: kus.Namespace}
	if !reflect.DeepEqual(kus, plain) || (kus.Kind != "" && kus.Kind != kustypes.KustomizationKind) {
		return nil, false
	}

	all, ok := loadResources(fs, dir, kus.Resources)
	if !ok || len(all) < chunking.min {
		return nil, false
	}
	for _, res := range all {
		if mapReferrers[res.GetKind()] {
			return nil, false
		}
	}

	seen := make(map[string]bool, len(all))
	out := make([]*resource.Resource, 0, len(all))
	for start := 0; start < len(all); start += chunking.size {
		end := min(start+chunking.size, len(all))
		built, ok := buildChunk(kus, all[start:end])
		if !ok {
			return nil, false
		}
		// The chunk's input is garbage now: not kept while the rest builds.
		clear(all[start:end])
		for _, res := range built {
			// Stricter than kustomize's identity (which has the version): no
			// two objects sort equal, so the order after sorting is the
			// order one build gives.
			id := res.CurId()
			key := id.Group + "/" + id.Kind + "/" + id.Namespace + "/" + id.Name
			if seen[key] {
				return nil, false
			}
			seen[key] = true
			out = append(out, res)
		}
	}
	return out, true
}

// loadResources reads the files of a generated kustomization as kustomize
// loads them; ok is false if an entry is not a file or does not load.
func loadResources(fs filesys.FileSystem, dir string, entries []string) (all []*resource.Resource, ok bool) {
	rf := provider.NewDepProvider().GetResourceFactory()
	for _, entry := range entries {
		path := filepath.Join(dir, entry)
		if fs.IsDir(path) {
			return nil, false
		}
		data, err := fs.ReadFile(path)
		if err != nil {
			return nil, false
		}
		resources, err := rf.SliceFromBytes(data)
		if err != nil {
			return nil, false
		}
		all = append(all, resources...)
	}
	return all, true
}

// buildChunk builds resources with the kustomization kus on a file system
// in memory that holds nothing else.
func buildChunk(kus kustypes.Kustomization, resources []*resource.Resource) ([]*resource.Resource, bool) {
	docs := make([]string, 0, len(resources))
	for _, res := range resources {
		doc, err := res.RNode.String()
		if err != nil {
			return nil, false
		}
		docs = append(docs, doc)
	}
	kus.Resources = []string{"resources.yaml"}
	manifest, err := yaml.Marshal(kus)
	if err != nil {
		return nil, false
	}
	memory := filesys.MakeFsInMemory()
	if memory.WriteFile("/chunk/kustomization.yaml", manifest) != nil ||
		memory.WriteFile("/chunk/resources.yaml", []byte(strings.Join(docs, "---\n"))) != nil {
		return nil, false
	}
	resMap, err := krustyRun(memory, "/chunk")
	if err != nil {
		return nil, false
	}
	return resMap.Resources(), true
}
