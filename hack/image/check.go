package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Check returns an error naming each way img's config differs from the
// image of o for arch: a single layer, non-root numeric user, entrypoint,
// platform and labels. make image runs it before writing, the test after
// reading the tarball back.
func Check(img v1.Image, o Options, arch string) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the image config: %w", err)
	}
	var errs []error
	if n := len(cfg.RootFS.DiffIDs); n != 1 {
		errs = append(errs, fmt.Errorf("the image has %d layers, want 1", n))
	}
	if err := checkUser(cfg.Config.User); err != nil {
		errs = append(errs, err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{entrypoint}) || len(cfg.Config.Cmd) != 0 {
		errs = append(errs, fmt.Errorf("entrypoint %q cmd %q, want [%q] and no cmd", cfg.Config.Entrypoint, cfg.Config.Cmd, entrypoint))
	}
	if cfg.OS != "linux" || cfg.Architecture != arch {
		errs = append(errs, fmt.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, arch))
	}
	for k, want := range Labels(o) {
		if got, ok := cfg.Config.Labels[k]; !ok || got != want || want == "" {
			errs = append(errs, fmt.Errorf("label %s is %q, want %q (not empty)", k, got, want))
		}
	}
	return errors.Join(errs...)
}

// checkUser accepts only the image's user, 65532:65532. A name would pass
// Docker but not the kubelet's runAsNonRoot check, which needs a number, and
// uid 0 or no user at all runs as root.
func checkUser(u string) error {
	uid, gid, ok := strings.Cut(u, ":")
	n, err := strconv.Atoi(uid)
	switch {
	case u == "":
		return errors.New("the image has no user: it runs as root")
	case err != nil:
		return fmt.Errorf("user %q is not numeric: runAsNonRoot cannot verify it", u)
	case n == 0:
		return fmt.Errorf("user %q is root", u)
	case !ok || gid == "0":
		return fmt.Errorf("user %q has no non-root group", u)
	case u != user:
		return fmt.Errorf("user %q, want %q", u, user)
	}
	return nil
}
