package build

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// Why not fluxcd/pkg/kustomize.Build: it resets kyaml's global OpenAPI
// schema before every build and parses the built-in Kubernetes schema again
// (decoding a compressed bundle of every built-in type), so that a
// kustomization's `openapi:` field never leaks into another build. That
// parse was more than half of the controller's CPU with 1,000 StageSets
// (issue 15, profiled with --enable-pprof), for a result that is the same
// every time. krustyRun keeps the parsed built-in schema between builds
// and resets it only after a build that changed it, which keeps builds
// isolated the same way.

// schema is the state of kyaml's global OpenAPI schema between builds.
// Only krustyRun touches it, always under buildMu.
var schema struct {
	// builtIn tells that the global schema holds the built-in Kubernetes
	// schema, parsed, and nothing else.
	builtIn bool
	// version is what openapi.GetSchemaVersion says of that state.
	version string
}

// krustyRun builds dir with krusty as fluxcd/pkg/kustomize.Build does (no
// load restrictions inside fs, built-in plugins only, a panic turned into an
// error), starting from the built-in OpenAPI schema. The caller holds
// buildMu: kustomize's build is not safe for concurrent use.
func krustyRun(fs filesys.FileSystem, dir string) (res resmap.ResMap, err error) {
	if !schema.builtIn {
		openapi.ResetOpenAPI()
		_ = openapi.Schema()
		schema.builtIn, schema.version = true, openapi.GetSchemaVersion()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered from kustomize build panic: %v", r)
		}
		// A kustomization's openapi field (a version or a file) replaced
		// the schema: the next build starts again from the built-in one.
		// Failed builds too, as they may have stopped half-way.
		if err != nil || openapi.GetSchemaVersion() != schema.version {
			openapi.ResetOpenAPI()
			schema.builtIn = false
		}
	}()
	k := krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: kustypes.LoadRestrictionsNone,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	})
	return k.Run(fs, dir)
}
