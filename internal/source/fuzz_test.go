package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzUntarCap is the MaxUntarSize of the fuzzed extractions: small, so
// that fuzzed archives reach it.
const fuzzUntarCap = 4096

// fuzzNames are the entry names of structured archives: ordinary ones,
// ones that climb out of the directory, and (with "<abs>" replaced by the
// sandbox around it) absolute ones.
var fuzzNames = []string{"a", "a/b", "a/b/c.yaml", "./a/d", "a//e", "a/./f", ".", "..", "../escape", "a/../../escape",
	"a/../g", "<abs>/abs", "/etc/stageset-fuzz", `a\..\..\escape`, "a/b/../../../escape", "dir/", "", "a/b/c.yaml/x"}

// fuzzTargets are the link targets of structured archives.
var fuzzTargets = []string{"a", "../escape", "a/b/../../..", "/etc/passwd", "<abs>/marker", ".", "..", "a/b", "b/../../..", ""}

// fuzzArchive builds a tar archive from the bytes of spec: each entry
// takes a type, a name, a link target, a size and a declared size, so the
// fuzzer can write links, duplicate names, sizes beyond the cap and
// headers that lie about their size.
func fuzzArchive(spec []byte, abs string) (archive []byte, escapingLink bool) {
	next := func() int {
		if len(spec) == 0 {
			return 0
		}
		b := spec[0]
		spec = spec[1:]
		return int(b)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for range 8 {
		if len(spec) == 0 {
			break
		}
		kind, name := next()%7, strings.ReplaceAll(fuzzNames[next()%len(fuzzNames)], "<abs>", abs)
		target := strings.ReplaceAll(fuzzTargets[next()%len(fuzzTargets)], "<abs>", abs)
		size := int64(next() * 37)
		hdr := &tar.Header{Name: name, Mode: int64(0o600 | next()%0o200), Format: tar.FormatPAX}
		switch kind {
		case 0, 1:
			hdr.Typeflag, hdr.Size = tar.TypeReg, size
		case 2:
			hdr.Typeflag = tar.TypeDir
		case 3:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case 4:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, target
		case 5:
			hdr.Typeflag = tar.TypeFifo
		case 6:
			// A header claiming a huge file, followed by nothing.
			hdr.Typeflag, hdr.Size = tar.TypeReg, 1<<40
			_ = tw.WriteHeader(hdr)
			return gzipBytes(buf.Bytes()), escapingLink
		}
		if err := tw.WriteHeader(hdr); err != nil {
			continue
		}
		if hdr.Typeflag == tar.TypeReg {
			_, _ = tw.Write(bytes.Repeat([]byte{'x'}, int(size)))
		}
		if kind == 3 || kind == 4 {
			resolved := target
			if kind == 3 && !path.IsAbs(target) {
				resolved = path.Join(path.Dir(name), target)
			}
			escapingLink = escapingLink || path.IsAbs(resolved) || path.Clean(resolved) == ".." || strings.HasPrefix(path.Clean(resolved), "../")
		}
	}
	_ = tw.Close()
	return gzipBytes(buf.Bytes()), escapingLink
}

func gzipBytes(data []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	_, _ = gz.Write(data)
	_ = gz.Close()
	return buf.Bytes()
}

// FuzzExtract extracts random bytes and structured random archives (see
// fuzzArchive) into a directory inside a sandbox: nothing may panic, nothing
// may be written outside the directory, no link may be created, the
// extracted files may not exceed the cap, and an archive with a link out of
// it must fail.
func FuzzExtract(f *testing.F) {
	f.Add([]byte{}, byte(0))
	f.Add([]byte("not gzip"), byte(0))
	f.Add([]byte("not a tar"), byte(1))
	for _, spec := range [][]byte{
		{0, 2, 0, 3, 0},                    // a/b/c.yaml
		{0, 8, 0, 1, 0},                    // ../escape
		{1, 9, 0, 1, 0},                    // a/../../escape
		{0, 7, 0, 1, 0},                    // ..
		{0, 11, 0, 1, 0},                   // <abs>/abs
		{0, 13, 0, 1, 0},                   // backslashes
		{3, 1, 1, 0, 0},                    // symlink to ../escape
		{3, 2, 4, 0, 0},                    // symlink to the marker, absolute
		{4, 1, 2, 0, 0},                    // hard link out
		{4, 1, 0, 0, 0, 0, 0, 0, 5, 0},     // hard link in, then a file
		{0, 0, 0, 200, 0, 0, 0, 0, 200, 0}, // two files over the cap together
		{0, 0, 0, 9, 0, 0, 0, 0, 9, 0},     // a duplicate name
		{0, 0, 0, 1, 0, 0, 1, 0, 1, 0},     // a file, then a file below it
		{2, 1, 0, 0, 0, 0, 1, 0, 1, 0},     // a directory, then a file of its name
		{6, 0, 0, 0, 0},                    // a huge size
		{5, 0, 0, 0, 0},                    // a fifo
		{0, 10, 0, 1, 0, 3, 0, 6, 0, 0},    // a/../g, then a symlink to ..
	} {
		f.Add(spec, byte(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		base, err := os.MkdirTemp("", "extract")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(base) })
		sandbox, dest := filepath.Join(base, "sandbox"), filepath.Join(base, "sandbox", "dest")
		if err := os.MkdirAll(dest, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sandbox, "marker"), []byte("marker"), 0o600); err != nil {
			t.Fatal(err)
		}

		var archive []byte
		escapingLink := false
		switch mode % 3 {
		case 0:
			archive = data
		case 1:
			archive = gzipBytes(data)
		case 2:
			archive, escapingLink = fuzzArchive(data, sandbox)
		}
		file, err := os.Create(filepath.Join(base, "artifact.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		if _, err := file.Write(archive); err != nil {
			t.Fatal(err)
		}

		err = (&Fetcher{MaxUntarSize: fuzzUntarCap}).extract(context.Background(), file, dest)
		if escapingLink && err == nil {
			t.Fatal("an archive with a link out of it extracted without an error")
		}

		// The sandbox holds the marker, untouched, and dest; base holds
		// the sandbox and the archive: nothing landed outside dest.
		for dir, want := range map[string][]string{base: {"artifact.tar.gz", "sandbox"}, sandbox: {"dest", "marker"}} {
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, want) {
				t.Fatalf("extraction (error %v) wrote outside its directory: %s holds %q", err, dir, got)
			}
		}
		if marker, err := os.ReadFile(filepath.Join(sandbox, "marker")); err != nil || string(marker) != "marker" {
			t.Fatalf("the file next to the directory changed: %q, %v", marker, err)
		}
		if _, err := os.Lstat("/etc/stageset-fuzz"); err == nil {
			t.Fatal("extraction wrote /etc/stageset-fuzz")
		}
		var total int64
		walkErr := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				t.Errorf("extraction created the link %s", p)
			case info.Mode().IsRegular():
				total += info.Size()
			case !info.IsDir():
				t.Errorf("extraction created %s of mode %s", p, info.Mode())
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
		if total > fuzzUntarCap {
			t.Fatalf("extraction wrote %d bytes, more than the cap of %d", total, fuzzUntarCap)
		}
	})
}
