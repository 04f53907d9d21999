package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/source"
	"github.com/stageset/stageset-controller/internal/stagesetfile"
	"github.com/stageset/stageset-controller/internal/validation"
)

// renderedStage is one stage built as the controller builds it.
type renderedStage struct {
	spec stagesetv1.Stage
	// migrations run before the objects, in this order.
	migrations []migration.Migration
	objects    []*unstructured.Unstructured
}

// renderer builds the stages of a StageSet with the controller's code: the
// same variables (build.LoadVariables), inputs (build.StageInput), build
// (build.Build) and migration split (migration.Split).
type renderer struct {
	k *kubeOptions
	// path is a local checkout that replaces every stage's source; empty
	// means the source artifacts are downloaded.
	path string
	// offline allows building with no cluster (-f with --path):
	// substituteFrom referents are then skipped with a note on warn.
	offline bool
	warn    io.Writer

	// c is the cluster's client, or clientErr why there is none; tried
	// once (client).
	c         client.Client
	clientErr error
	tried     bool
	// noConfig tells that the flags name no cluster at all.
	noConfig bool
	// warned tells that the missing cluster was reported.
	warned bool
	// substituteSecretMask substitutes secretMask for the variables read
	// from Secrets (build without --show-secrets); otherwise their values
	// are collected in secretValues.
	substituteSecretMask bool
	secretValues         []string
}

// client returns the cluster's client, built once.
func (r *renderer) client() (client.Client, error) {
	if !r.tried {
		r.tried = true
		if _, err := r.k.config(); err != nil {
			r.noConfig, r.clientErr = true, err
		} else {
			r.c, _, r.clientErr = r.k.client()
		}
	}
	return r.c, r.clientErr
}

// fromCluster reads StageSet name of the namespace of the flags.
func (r *renderer) fromCluster(ctx context.Context, name string) (*stagesetv1.StageSet, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	ns, err := r.k.namespace()
	if err != nil {
		return nil, err
	}
	obj := &stagesetv1.StageSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// fromFile reads a StageSet manifest; its namespace defaults to the one of
// the flags. Unknown fields and the controller's validation errors are
// refused, each with its field path.
func (r *renderer) fromFile(file string) (*stagesetv1.StageSet, error) {
	// A StageSet without a namespace is built in the kubeconfig context's,
	// as kubectl apply would create it there.
	ns, err := r.k.namespace()
	if err != nil {
		return nil, err
	}
	return stagesetfile.Load(file, file, ns)
}

// render builds the stages of obj, or only stage only when set, in stage
// order.
func (r *renderer) render(ctx context.Context, obj *stagesetv1.StageSet, only string) ([]renderedStage, error) {
	stages, err := selectStages(obj, only)
	if err != nil {
		return nil, err
	}
	// Built from the cluster, the StageSet passed admission; the controller
	// checks it again, and so does the CLI, so that it refuses what the
	// controller would refuse (a path escaping the root, say).
	if errs := validation.StageSet(obj, validation.Options{}); len(errs) > 0 {
		return nil, fmt.Errorf("invalid StageSet: %w", errs.ToAggregate())
	}
	var artifacts *artifactFetcher
	if r.path == "" {
		c, err := r.client()
		if err != nil {
			return nil, fmt.Errorf("%w (to build from a local checkout instead, pass --path DIR)", err)
		}
		cfg, err := r.k.config()
		if err != nil {
			return nil, err
		}
		artifacts = &artifactFetcher{resolver: source.Resolver{Reader: c}, config: cfg}
		defer artifacts.close()
	}

	out := make([]renderedStage, 0, len(stages))
	claims := build.Claims{}
	for _, stage := range stages {
		vars, err := r.variables(ctx, obj, stage)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", stage.Name, err)
		}
		in := build.StageInput(obj, stage, vars)
		if in.Root, err = r.root(ctx, artifacts, obj, stage); err != nil {
			return nil, fmt.Errorf("stage %q: %w", stage.Name, err)
		}
		objects, err := build.Build(in)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", stage.Name, err)
		}
		migrations, objects, err := migration.Split(objects)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", stage.Name, err)
		}
		if err := claims.Claim(stage.Name, objects); err != nil {
			return nil, err
		}
		out = append(out, renderedStage{spec: stage, migrations: migrations, objects: objects})
	}
	return out, nil
}

// selectStages returns the stages of obj, or the one named only.
func selectStages(obj *stagesetv1.StageSet, only string) ([]stagesetv1.Stage, error) {
	if only == "" {
		return obj.Spec.Stages, nil
	}
	names := make([]string, 0, len(obj.Spec.Stages))
	for _, st := range obj.Spec.Stages {
		if st.Name == only {
			return []stagesetv1.Stage{st}, nil
		}
		names = append(names, st.Name)
	}
	return nil, fmt.Errorf("StageSet %s/%s has no stage %q (its stages: %s)", obj.Namespace, obj.Name, only, strings.Join(names, ", "))
}

// root returns the directory a stage is built from: --path, else its
// source's artifact, downloaded.
func (r *renderer) root(ctx context.Context, artifacts *artifactFetcher, obj *stagesetv1.StageSet, stage stagesetv1.Stage) (string, error) {
	if r.path != "" {
		return filepath.Abs(r.path)
	}
	ref, _ := obj.GetStageSourceRef(stage) // validation.StageSet checked every stage has one
	return artifacts.get(ctx, obj.Namespace, ref)
}

// variables loads the stage's postBuild variables from the cluster, as the
// controller does. With no cluster to read them from, an offline build
// (-f with --path) skips the substituteFrom referents with a note, as
// `flux build kustomization --dry-run` does: their variables are unset, so
// ${var} becomes empty and ${var:=default} takes its default.
func (r *renderer) variables(ctx context.Context, obj *stagesetv1.StageSet, stage stagesetv1.Stage) (map[string]string, error) {
	postBuild := stage.PostBuild
	if postBuild == nil || len(postBuild.SubstituteFrom) == 0 {
		return build.LoadVariables(ctx, nil, obj.Namespace, postBuild)
	}
	c, err := r.client()
	if err == nil {
		var vars map[string]string
		var fromSecret map[string]bool
		vars, fromSecret, err = build.LoadVariablesFromSecrets(ctx, c, obj.Namespace, postBuild)
		if err == nil {
			r.maskSecretVariables(vars, fromSecret)
		}
		if err == nil || !r.offline || !unreachable(err) {
			return vars, err
		}
	}
	if !r.offline || (!r.noConfig && !unreachable(err)) {
		return nil, err
	}
	if !r.warned {
		r.warned = true
		fmt.Fprintf(r.warn, "⚠ building without a cluster: %v\n", err)
	}
	for _, ref := range postBuild.SubstituteFrom {
		fmt.Fprintf(r.warn, "⚠ stage %q: substituteFrom %s/%s not read: its variables are unset\n", stage.Name, ref.Kind, ref.Name)
	}
	inline := postBuild.DeepCopy()
	inline.SubstituteFrom = nil
	return build.LoadVariables(ctx, nil, obj.Namespace, inline)
}

// maskSecretVariables keeps the values of the variables read from Secrets
// out of what is printed: build (unless --show-secrets) substitutes the
// mask instead of the value; diff, which must compare the real values,
// masks them in its output (secretValues). A variable that came from a
// Secret ends up in any object, a ConfigMap as well as a Secret, so
// masking Secret objects alone would not keep it out of a CI log.
func (r *renderer) maskSecretVariables(vars map[string]string, fromSecret map[string]bool) {
	for k, secret := range fromSecret {
		if !secret || vars[k] == "" {
			continue
		}
		if r.substituteSecretMask {
			vars[k] = secretMask
		} else {
			r.secretValues = append(r.secretValues, vars[k])
		}
	}
}

// artifactFetcher resolves stage sources like the controller
// (source.Resolver) and fetches each distinct artifact once (source.Cache:
// digest checked, size-capped, hardened extraction). Artifacts served by an
// in-cluster Service are fetched through the API server's service proxy
// with the user's credentials; any other URL directly, without them.
type artifactFetcher struct {
	resolver source.Resolver
	config   *rest.Config

	direct, proxied *source.Cache
}

// get returns the directory holding the artifact the source serves now.
func (a *artifactFetcher) get(ctx context.Context, namespace string, ref stagesetv1.SourceReference) (string, error) {
	const hint = "(to build from a local checkout instead, pass --path DIR)"
	res, err := a.resolver.Resolve(ctx, namespace, ref)
	if err != nil {
		return "", fmt.Errorf("%w %s", err, hint)
	}
	dir, err := a.fetch(ctx, res.Artifact)
	if err != nil {
		return "", fmt.Errorf("%w %s", err, hint)
	}
	return dir, nil
}

func (a *artifactFetcher) fetch(ctx context.Context, artifact meta.Artifact) (string, error) {
	proxyURL, err := serviceProxyURL(a.config, artifact.URL)
	if err != nil {
		return "", err
	}
	if proxyURL == "" {
		if a.direct == nil {
			if a.direct, err = source.NewCache(&source.Fetcher{Retries: cliRetries}); err != nil {
				return "", err
			}
		}
		return a.direct.Get(ctx, artifact)
	}
	if a.proxied == nil {
		transport, err := rest.TransportFor(a.config)
		if err != nil {
			return "", fmt.Errorf("building the API server transport: %w", err)
		}
		if a.proxied, err = source.NewCache(&source.Fetcher{Retries: cliRetries, Transport: transport}); err != nil {
			return "", err
		}
	}
	artifact.URL = proxyURL
	return a.proxied.Get(ctx, artifact)
}

// cliRetries is how often a download is retried: a person is waiting, so
// fewer times than the controller.
const cliRetries = 2

func (a *artifactFetcher) close() {
	for _, c := range []*source.Cache{a.direct, a.proxied} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// sourceControllerService is the name of the Service source-controller
// serves its artifacts from.
const sourceControllerService = "source-controller"

// serviceProxyURL returns the address, through the API server's service
// proxy, of an artifact URL whose host is source-controller's Service
// (source-controller.<ns>.svc or ...svc.cluster.local, with an optional
// port and final dot), as source-controller advertises its storage; "" for
// any other host, which is fetched directly, without credentials. A
// person's machine cannot resolve cluster DNS, and the proxy checks the
// user's right to proxy the Service. Only that Service: the URL is written
// by whoever can write the source's status, and must not aim the user's
// identity at any Service they may proxy.
func serviceProxyURL(cfg *rest.Config, artifactURL string) (string, error) {
	u, err := url.Parse(artifactURL)
	if err != nil {
		return "", fmt.Errorf("invalid artifact URL %q: %w", artifactURL, err)
	}
	labels := strings.Split(strings.TrimSuffix(u.Hostname(), "."), ".")
	inCluster := (len(labels) == 3 && labels[2] == "svc") ||
		(len(labels) == 5 && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local")
	if !inCluster || labels[0] != sourceControllerService || (u.Scheme != "http" && u.Scheme != "https") {
		return "", nil
	}
	// The path goes on behind the proxy prefix: no segment may climb out
	// of it, however it is encoded.
	for _, segment := range strings.Split(u.EscapedPath(), "/") {
		if unescaped, err := url.PathUnescape(segment); err != nil || unescaped == ".." || unescaped == "." || strings.Contains(unescaped, "/") {
			return "", fmt.Errorf("artifact URL %q: refused path segment %q", artifactURL, segment)
		}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	server, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return "", fmt.Errorf("the API server address: %w", err)
	}
	proxy := fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s:%s/proxy",
		url.PathEscape(labels[1]), u.Scheme, url.PathEscape(labels[0]), port)
	proxied := strings.TrimSuffix(server.String(), "/") + proxy + u.EscapedPath()
	if u.RawQuery != "" {
		proxied += "?" + u.RawQuery
	}
	return proxied, nil
}
