package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's fixed shape, shared with the Dockerfile and the Deployment in
// config/manager.
const (
	entrypoint = "/stageset-controller"
	// user is numeric so that the kubelet can verify runAsNonRoot.
	user        = "65532:65532"
	caBundle    = "etc/ssl/certs/ca-certificates.crt"
	title       = "stageset-controller"
	source      = "https://github.com/stageset/stageset-controller"
	licenses    = "Apache-2.0"
	labelPrefix = "org.opencontainers.image."
)

// Options are the inputs of an image; the same options give the same image,
// byte for byte.
type Options struct {
	// Binary is the path of the static linux controller binary.
	Binary   string
	Version  string
	Revision string
	// Created is the image's creation time (SOURCE_DATE_EPOCH, the commit
	// time), also the modification time of every file in the layer.
	Created time.Time
}

// Build returns the controller image: one layer on an empty base.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the controller binary: %w", err)
	}
	goos, goarch, err := platformOf(o.Binary)
	if err != nil {
		return nil, err
	}
	layerTar, err := layerContents(bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "make image (hack/image)",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = goos, goarch
	cfg.Created = v1.Time{Time: o.Created}
	cfg.Config.User = user
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.Labels = Labels(o)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	return img, nil
}

// Labels returns the OCI labels of the image of o.
func Labels(o Options) map[string]string {
	return map[string]string{
		labelPrefix + "title":    title,
		labelPrefix + "version":  o.Version,
		labelPrefix + "revision": o.Revision,
		labelPrefix + "source":   source,
		labelPrefix + "licenses": licenses,
		labelPrefix + "created":  o.Created.UTC().Format(time.RFC3339),
	}
}

// platformOf reads the platform from the binary's build information and
// refuses a binary the empty base cannot run: one for another OS or one
// linked against the C library.
func platformOf(path string) (goos, goarch string, err error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("reading the build information of %s: %w", path, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "linux" {
		return "", "", fmt.Errorf("%s is built for GOOS=%q, the image needs linux", path, settings["GOOS"])
	}
	if settings["CGO_ENABLED"] != "0" {
		return "", "", errors.New(path + " is not static: build it with CGO_ENABLED=0, the image has no C library")
	}
	return settings["GOOS"], settings["GOARCH"], nil
}

// layerContents returns the layer's tar: the binary, owned by root so that
// the non-root user cannot replace it (as the Dockerfile's COPY leaves it), a
// world-writable /tmp for `docker run` without the Deployment's emptyDir, and
// the CA bundle for HTTP actions to https endpoints (distroless ships one
// too). Entries are sorted and stamped with created, so the layer is
// reproducible.
func layerContents(bin []byte, created time.Time) ([]byte, error) {
	roots, err := rootsPEM()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		data []byte
		dir  bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caBundle, mode: 0o644, data: roots},
		{name: entrypoint[1:], mode: 0o755, data: bin},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing %s into the layer: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing %s into the layer: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

// rootsPEM returns the Mozilla roots that Go's x509roots/fallback module
// carries, pinned by go.sum. Roots with a distrust date are left out: a PEM
// bundle cannot carry the constraint.
func rootsPEM() ([]byte, error) {
	var out bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, fmt.Errorf("encoding the CA bundle: %w", err)
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("the CA bundle is empty")
	}
	return out.Bytes(), nil
}
