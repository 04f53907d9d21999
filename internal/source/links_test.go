package source

import (
	"archive/tar"
	"testing"
)

func TestLinkGuard(t *testing.T) {
	tests := []struct {
		name     string
		header   tar.Header
		skip     bool
		rejected bool
	}{
		{name: "file", header: tar.Header{Name: "a/b.yaml", Typeflag: tar.TypeReg, Mode: 0o644}},
		{name: "directory", header: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{name: "dot-dot name", header: tar.Header{Name: "a/../..", Typeflag: tar.TypeDir}, skip: true, rejected: true},
		{name: "symlink beside", header: tar.Header{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "b.yaml"}, skip: true},
		{name: "symlink to the root", header: tar.Header{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: ".."}, skip: true},
		{name: "symlink through the root", header: tar.Header{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "../a/../b"}, skip: true},
		{name: "symlink above the root", header: tar.Header{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "../.."}, skip: true, rejected: true},
		{name: "symlink absolute", header: tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, skip: true, rejected: true},
		{name: "symlink by mode bits", header: tar.Header{Name: "l", Typeflag: tar.TypeReg, Mode: 0o120777}, skip: true},
		// A hard link's target is relative to the root, not to the link.
		{name: "hard link inside", header: tar.Header{Name: "a/l", Typeflag: tar.TypeLink, Linkname: "a/b.yaml"}, skip: true},
		{name: "hard link above the root", header: tar.Header{Name: "a/l", Typeflag: tar.TypeLink, Linkname: "../b.yaml"}, skip: true, rejected: true},
		{name: "hard link absolute", header: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}, skip: true, rejected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &linkGuard{}
			if skip := g.skip(tt.header.Name, tt.header.FileInfo()); skip != tt.skip {
				t.Errorf("skip = %v, want %v", skip, tt.skip)
			}
			if rejected := g.err != nil; rejected != tt.rejected {
				t.Errorf("rejected = %v (%v), want %v", rejected, g.err, tt.rejected)
			}
			// After a rejection, nothing more is extracted.
			plain := tar.Header{Name: "z.yaml", Typeflag: tar.TypeReg, Mode: 0o644}
			if skip := g.skip(plain.Name, plain.FileInfo()); skip != tt.rejected {
				t.Errorf("skip of the next file = %v, want %v", skip, tt.rejected)
			}
		})
	}
}
