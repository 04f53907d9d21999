package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteArchive writes img, tagged ref, to path as one tar that is both an OCI
// image layout (oci-layout, index.json, blobs/) and a `docker save` archive
// (manifest.json naming the same blobs), as `docker save` writes since Docker
// 25. So `docker load` of any version, `podman load`, `skopeo copy
// oci-archive:` and `crane push` all read it; an OCI layout keeps the
// manifest, and with it the digest Write reports, exactly.
func WriteArchive(path string, ref name.Tag, img v1.Image) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing the image digest: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the image config: %w", err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the config: %w", err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the config digest: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the layers: %w", err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".image-*.tar")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("creating the archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	a := archive{tw: tar.NewWriter(tmp), mtime: cfg.Created.Time}

	a.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	a.file(blobPath(cfgName), rawConfig)
	docker := tarball.Descriptor{Config: blobPath(cfgName), RepoTags: []string{ref.String()}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("reading a layer digest: %w", err)
		}
		a.layer(blobPath(d), l)
		docker.Layers = append(docker.Layers, blobPath(d))
	}
	a.file(blobPath(digest), rawManifest)
	mt, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the manifest media type: %w", err)
	}
	a.json("index.json", v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt, Digest: digest, Size: int64(len(rawManifest)),
			// The two names Docker 25 writes: containerd's full reference,
			// and the OCI ref.name, the tag.
			Annotations: map[string]string{
				"io.containerd.image.name":          ref.Name(),
				"org.opencontainers.image.ref.name": ref.TagStr(),
			},
		}},
	})
	a.json("manifest.json", tarball.Manifest{docker})
	if a.err == nil {
		a.err = a.tw.Close()
	}
	if a.err == nil {
		a.err = tmp.Close()
	}
	if a.err == nil {
		a.err = os.Rename(tmp.Name(), path)
	}
	if a.err != nil {
		return v1.Hash{}, fmt.Errorf("writing %s: %w", path, a.err)
	}
	return digest, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// archive writes tar entries with a fixed time and owner, keeping the first
// error.
type archive struct {
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func (a *archive) header(name string, size int64) bool {
	if a.err == nil {
		a.err = a.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: a.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	}
	return a.err == nil
}

func (a *archive) file(name string, data []byte) {
	if a.header(name, int64(len(data))) {
		_, a.err = a.tw.Write(data)
	}
}

func (a *archive) json(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		a.err = err
		return
	}
	a.file(name, data)
}

func (a *archive) layer(name string, l v1.Layer) {
	if a.err != nil {
		return
	}
	size, err := l.Size()
	if err != nil {
		a.err = err
		return
	}
	rc, err := l.Compressed()
	if err != nil {
		a.err = err
		return
	}
	defer rc.Close()
	if a.header(name, size) {
		_, a.err = io.Copy(a.tw, rc)
	}
}
