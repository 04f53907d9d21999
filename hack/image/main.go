// Command image writes the controller's container image as a tarball, with
// no Docker and no registry: the static binary as one layer on an empty base
// (see `make image`, the Dockerfile it mirrors, and docs/install.md). It is a
// module of its own so the controller's go.mod stays free of
// go-containerregistry.
package main

import (
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binary := fs.String("binary", "", "Path of the static linux controller binary.")
	output := fs.String("output", "", "Path of the image tarball to write.")
	tag := fs.String("tag", "", "Reference the tarball tags the image with, e.g. ghcr.io/stageset/stageset-controller:v1.0.0.")
	version := fs.String("version", "", "Version label; the version stamped into the binary.")
	revision := fs.String("revision", "", "Revision label (default: the binary's vcs.revision).")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "Creation time in Unix seconds, for a reproducible image (default: $SOURCE_DATE_EPOCH).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *output == "" || *tag == "" || *version == "" || *epoch == "" {
		return errors.New("--binary, --output, --tag, --version and --source-date-epoch are required")
	}
	ref, err := name.NewTag(*tag, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("invalid --tag: %w", err)
	}
	secs, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid --source-date-epoch: %w", err)
	}
	if *revision == "" {
		if *revision, err = vcsRevision(*binary); err != nil {
			return err
		}
	}
	o := Options{Binary: *binary, Version: *version, Revision: *revision, Created: time.Unix(secs, 0).UTC()}
	img, err := Build(o)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the image config: %w", err)
	}
	if err := Check(img, o, cfg.Architecture); err != nil {
		return fmt.Errorf("the image fails its checks: %w", err)
	}
	digest, err := WriteArchive(*output, ref, img)
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("reading the image ID: %w", err)
	}
	fmt.Printf("wrote %s: %s (linux/%s)\ndigest:   %s\nimage ID: %s\n", *output, ref, cfg.Architecture, digest, id)
	return nil
}

// vcsRevision returns the commit the binary was built from, as the go
// command recorded it.
func vcsRevision(path string) (string, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the build information of %s: %w", path, err)
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value, nil
		}
	}
	return "", fmt.Errorf("%s records no vcs.revision: pass --revision", path)
}
