package controller

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// The bad-input corpus (tests/testdata/bad, see its README.md): one
// directory per case, loaded here and run by TestBadInputCorpus.

// nsPlaceholder is replaced by the case's namespace in stageset.yaml and in
// the artifact's files.
const nsPlaceholder = "__NAMESPACE__"

// badCase is one directory of the corpus.
type badCase struct {
	name   string
	dir    string
	expect badExpect
	attack badArchive
}

// badExpect is expect.yaml: what the case must end with.
type badExpect struct {
	// Skip names a known bug: the case documents the expected behaviour
	// and is skipped until the bug is fixed.
	Skip string `json:"skip,omitempty"`
	// RefusedBy is "apiserver" when the API server refuses to create the
	// StageSet (CRD schema or CEL rule), else "controller" (the default).
	RefusedBy string `json:"refusedBy,omitempty"`
	// Status and Reason are the Ready condition's; Status defaults to False.
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Stalled tells that Stalled=True goes with the reason (terminal).
	Stalled bool `json:"stalled,omitempty"`
	// Messages must all appear in the Ready message (or the API server's
	// refusal).
	Messages []string `json:"messages"`
	// StageSet names the StageSet of stageset.yaml the expectation is
	// about; the first one by default.
	StageSet string `json:"stageSet,omitempty"`
	// AppliedStages may have applied objects (earlier stages of a failing
	// later one); objects labelled with any other stage must not exist.
	AppliedStages []string `json:"appliedStages,omitempty"`
	// Absent objects must not exist; Present ones must (what the earlier
	// stages applied).
	Absent  []badObject `json:"absent,omitempty"`
	Present []badObject `json:"present,omitempty"`
	// Count is, for a case that must apply completely, how many objects of
	// a kind the StageSet must have applied.
	Count *badCount `json:"count,omitempty"`
	// Serial runs the case alone, after the parallel ones: it keeps the
	// controller's worker busy for long.
	Serial bool `json:"serial,omitempty"`
	// Timeout replaces the suite's 30 s wait for the Ready reason, for a
	// case that takes longer (a Go duration).
	Timeout string `json:"timeout,omitempty"`
}

type badObject struct {
	APIVersion string `json:"apiVersion,omitempty"` // v1 by default
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	// Namespace defaults to the case's; Cluster marks a cluster-scoped
	// object.
	Namespace string `json:"namespace,omitempty"`
	Cluster   bool   `json:"cluster,omitempty"`
}

type badCount struct {
	Kind string `json:"kind"`
	N    int    `json:"number"`
}

// badArchive is case.yaml: what cannot be plain files of artifact/.
type badArchive struct {
	// Source is "missing" (no source object) or "noArtifact" (a source
	// without an artifact); a source serving the artifact by default.
	Source string `json:"source,omitempty"`
	// Entries are added to the tarball as they are: names with ".." or
	// absolute names, symbolic and hard links.
	Entries []badEntry `json:"entries,omitempty"`
	// Generate adds generated files: too big or too many to commit.
	Generate []badGenerated `json:"generate,omitempty"`
	// Raw serves these bytes instead of a tarball; RawRandom serves that
	// many random (incompressible) bytes.
	Raw       *string `json:"raw,omitempty"`
	RawRandom int     `json:"rawRandom,omitempty"`
	// Truncate serves only the first Truncate bytes of the tarball (the
	// digest is of what is served).
	Truncate int `json:"truncate,omitempty"`
	// Digest, URL and ReportedSize replace what the source reports. URL
	// "notfound" is a path the artifact server does not have.
	Digest       *string `json:"digest,omitempty"`
	URL          *string `json:"url,omitempty"`
	ReportedSize *int64  `json:"reportedSize,omitempty"`
}

type badEntry struct {
	Name string `json:"name"`
	// Type is "symlink", "link" (hard link), "dir" or "" (a regular file).
	Type     string `json:"type,omitempty"`
	Linkname string `json:"linkname,omitempty"`
	Body     string `json:"body,omitempty"`
}

// badGenerated is a generated file at Path: ConfigMaps distinct
// ConfigMaps, or one ConfigMap whose data holds DataBytes bytes, or Zeros
// NUL bytes (a gzip bomb compresses them a thousandfold).
type badGenerated struct {
	Path       string `json:"path"`
	ConfigMaps int    `json:"configMaps,omitempty"`
	DataBytes  int    `json:"dataBytes,omitempty"`
	Zeros      int    `json:"zeros,omitempty"`
}

// loadBadCorpus reads every case directory under root.
func loadBadCorpus(root string) ([]badCase, error) {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var cases []badCase
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		c := badCase{name: d.Name(), dir: filepath.Join(root, d.Name())}
		if err := readYAML(filepath.Join(c.dir, "expect.yaml"), &c.expect, true); err != nil {
			return nil, err
		}
		if err := readYAML(filepath.Join(c.dir, "case.yaml"), &c.attack, false); err != nil {
			return nil, err
		}
		if c.expect.Reason == "" || len(c.expect.Messages) == 0 {
			return nil, fmt.Errorf("case %s: expect.yaml needs a reason and at least one message fragment", c.name)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// readYAML decodes a YAML file strictly: a typo in the corpus must fail
// the test, not weaken it.
func readYAML(path string, into any, required bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// objects returns the objects of stageset.yaml, in the namespace ns.
func (c *badCase) objects(ns string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, "stageset.yaml"))
	if err != nil {
		return nil, err
	}
	data = bytes.ReplaceAll(data, []byte(nsPlaceholder), []byte(ns))
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s/stageset.yaml: %w", c.name, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		out = append(out, u)
	}
}

// tarball returns the files of artifact/ (bytes as committed, with the
// namespace placeholder replaced) plus the entries and generated files of
// case.yaml.
func (c *badCase) tarball(ns string) (map[string]testenv.File, error) {
	files := map[string]testenv.File{}
	root := filepath.Join(c.dir, "artifact")
	if _, err := os.Stat(root); err == nil {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			files[filepath.ToSlash(rel)] = testenv.File{Body: strings.ReplaceAll(string(body), nsPlaceholder, ns)}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	types := map[string]byte{"": tar.TypeReg, "symlink": tar.TypeSymlink, "link": tar.TypeLink, "dir": tar.TypeDir}
	for _, e := range c.attack.Entries {
		typ, ok := types[e.Type]
		if !ok {
			return nil, fmt.Errorf("case %s: unknown entry type %q", c.name, e.Type)
		}
		files[e.Name] = testenv.File{Type: typ, Linkname: e.Linkname, Body: e.Body}
	}
	for _, g := range c.attack.Generate {
		files[g.Path] = testenv.File{Body: g.body()}
	}
	return files, nil
}

func (g badGenerated) body() string {
	var b strings.Builder
	for i := range g.ConfigMaps {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%05d\ndata:\n  i: %q\n", i, fmt.Sprint(i))
	}
	if g.DataBytes > 0 {
		b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: ")
		b.WriteString(strings.Repeat("x", g.DataBytes))
		b.WriteString("\n")
	}
	if g.Zeros > 0 {
		b.WriteString(strings.Repeat("\x00", g.Zeros))
	}
	return b.String()
}

// publish serves the case's artifact and returns it as the source reports
// it, with the overrides of case.yaml.
func (c *badCase) publish(path, ns string) (*meta.Artifact, error) {
	var data []byte
	switch {
	case c.attack.Raw != nil:
		data = []byte(*c.attack.Raw)
	case c.attack.RawRandom > 0:
		data = make([]byte, c.attack.RawRandom)
		_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	default:
		files, err := c.tarball(ns)
		if err != nil {
			return nil, err
		}
		if data, err = testenv.Tarball(files); err != nil {
			return nil, err
		}
		if c.attack.Truncate > 0 {
			data = data[:min(c.attack.Truncate, len(data))]
		}
	}
	artifact := env.Artifacts.PublishRaw(path, "bad", data)
	if c.attack.Digest != nil {
		artifact.Digest = *c.attack.Digest
	}
	if c.attack.URL != nil {
		artifact.URL = *c.attack.URL
		if *c.attack.URL == "notfound" {
			artifact.URL = env.Artifacts.URL(path + ".missing")
		}
	}
	if c.attack.ReportedSize != nil {
		artifact.Size = c.attack.ReportedSize
	}
	return artifact, nil
}
