package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const testVersion = "v0.0.0-imagetest"

// controller is the controller binary the tests build once, as make image
// does: static, trimmed, with the version stamped.
var controller string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stageset-image-test-")
	if err != nil {
		panic(err)
	}
	controller = filepath.Join(dir, "stageset-controller")
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/stageset/stageset-controller/internal/version.Version="+testVersion,
		"-o", controller, ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	code := 1
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the controller: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestImageTarball builds the image tarball from the repository's controller,
// reads it back both as a `docker save` archive and as an OCI layout, checks
// the config, and runs the binary extracted from the layer.
func TestImageTarball(t *testing.T) {
	// The binary prints the version, and the first 12 digits of the
	// revision when the go command stamped it (GOFLAGS=-buildvcs=false, as
	// on the project's machines, turns that off); the labels agree.
	wantVersion := testVersion
	rev, err := vcsRevision(controller)
	if err == nil {
		wantVersion += " (" + rev[:12] + ")"
	} else {
		rev = "0123456789abcdef0123456789abcdef01234567"
	}
	o := Options{Binary: controller, Version: testVersion, Revision: rev, Created: time.Unix(1700000000, 0).UTC()}
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	ref := name.MustParseReference("ghcr.io/stageset/stageset-controller:"+testVersion, name.StrictValidation).(name.Tag)
	img, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := WriteArchive(archive, ref, img)
	if err != nil {
		t.Fatal(err)
	}

	// docker load and crane push read manifest.json.
	dockerImg, err := tarball.ImageFromPath(archive, &ref)
	if err != nil {
		t.Fatalf("reading the tarball as a docker archive: %v", err)
	}
	if err := Check(dockerImg, o, runtime.GOARCH); err != nil {
		t.Errorf("docker archive: %v", err)
	}
	// podman load, skopeo and Docker 25 read the OCI layout, whose manifest
	// must be the one whose digest make image prints.
	layoutImg := ociImage(t, archive, digest)
	if err := Check(layoutImg, o, runtime.GOARCH); err != nil {
		t.Errorf("OCI layout: %v", err)
	}
	for _, got := range []v1.Image{dockerImg, layoutImg} {
		if a, b := mustConfigName(t, got), mustConfigName(t, img); a != b {
			t.Errorf("image ID %s read back, want %s", a, b)
		}
	}

	root := extractLayer(t, layoutImg)
	checkFiles(t, root)
	out, err := exec.Command(filepath.Join(root, "stageset-controller"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("running the binary from the layer: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != wantVersion {
		t.Errorf("--version printed %q, want %q", got, wantVersion)
	}

	// The same inputs give the same bytes.
	again := filepath.Join(dir, "again.tar")
	img2, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteArchive(again, ref, img2); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, archive) != fileSum(t, again) {
		t.Error("two builds from the same inputs differ")
	}
}

// TestCheckRefuses proves Check refuses an image that would run as root or
// that lost its entrypoint, platform or version label.
func TestCheckRefuses(t *testing.T) {
	o := Options{Binary: controller, Version: testVersion, Revision: "abc", Created: time.Unix(1700000000, 0).UTC()}
	img, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(img, o, runtime.GOARCH); err != nil {
		t.Fatalf("the built image fails its checks: %v", err)
	}
	cases := map[string]struct {
		edit func(*v1.ConfigFile)
		want string
	}{
		"root user":         {func(c *v1.ConfigFile) { c.Config.User = "0:0" }, "is root"},
		"root by name":      {func(c *v1.ConfigFile) { c.Config.User = "root" }, "not numeric"},
		"no user":           {func(c *v1.ConfigFile) { c.Config.User = "" }, "runs as root"},
		"root group":        {func(c *v1.ConfigFile) { c.Config.User = "65532:0" }, "non-root group"},
		"shell entrypoint":  {func(c *v1.ConfigFile) { c.Config.Entrypoint = []string{"/bin/sh"} }, "entrypoint"},
		"other platform":    {func(c *v1.ConfigFile) { c.Architecture = "s390x-not" }, "platform"},
		"wrong version":     {func(c *v1.ConfigFile) { c.Config.Labels[labelPrefix+"version"] = "v9" }, "version"},
		"no source label":   {func(c *v1.ConfigFile) { delete(c.Config.Labels, labelPrefix+"source") }, "source"},
		"cmd instead of ep": {func(c *v1.ConfigFile) { c.Config.Cmd = []string{"--help"} }, "cmd"},
	}
	for desc, tc := range cases {
		t.Run(desc, func(t *testing.T) {
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			cfg = cfg.DeepCopy()
			tc.edit(cfg)
			bad, err := mutate.ConfigFile(img, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(bad, o, runtime.GOARCH)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestBuildRefusesDynamicBinary proves that a binary linked against the C
// library, which the empty base cannot run, is refused.
func TestBuildRefusesDynamicBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"GOOS=darwin", "needs linux"},
		{"CGO_ENABLED=1", "not static"},
	} {
		cmd := exec.Command("go", "build", "-o", bin, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", tc.env)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cannot build with %s here: %v\n%s", tc.env, err, out)
		}
		_, err := Build(Options{Binary: bin, Version: "v1", Revision: "abc", Created: time.Unix(0, 0)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Build = %v, want an error about %q", tc.env, err, tc.want)
		}
	}
}

// ociImage unpacks archive and reads the image of digest from its OCI layout.
func ociImage(t *testing.T, archive string, digest v1.Hash) v1.Image {
	t.Helper()
	dir := t.TempDir()
	untar(t, mustOpen(t, archive), dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading the OCI layout: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != digest {
		t.Fatalf("index.json lists %v, want the one manifest %s", m.Manifests, digest)
	}
	img, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// extractLayer writes the image's only layer into a directory.
func extractLayer(t *testing.T, img v1.Image) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dir := t.TempDir()
	untar(t, rc, dir)
	return dir
}

// checkFiles checks what the layer holds besides the config: a root-owned
// executable, a sticky world-writable /tmp and a CA bundle that parses.
func checkFiles(t *testing.T, root string) {
	t.Helper()
	for p, want := range map[string]os.FileMode{
		"stageset-controller": 0o755,
		"tmp":                 os.ModeDir | os.ModeSticky | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("/%s: %v", p, err)
		} else if fi.Mode() != want {
			t.Errorf("/%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
	pem, err := os.ReadFile(filepath.Join(root, caBundle))
	if err != nil {
		t.Fatal(err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) || len(bytes.Split(pem, []byte("BEGIN CERTIFICATE"))) < 100 {
		t.Errorf("/%s is not a CA bundle of the Mozilla roots", caBundle)
	}
}

// untar extracts r into dir, checking ownership: every entry root-owned, so
// the non-root user can replace none of them.
func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root", hdr.Name, hdr.Uid, hdr.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("entry %q escapes the directory", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			// Chmod: MkdirAll applies the umask and drops the sticky bit.
			if err := os.Chmod(p, hdr.FileInfo().Mode()); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, hdr.FileInfo().Mode())
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, hdr.FileInfo().Mode()); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected entry %s of type %c", hdr.Name, hdr.Typeflag)
		}
	}
}

func mustOpen(t *testing.T, p string) io.Reader {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
