package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stageset/stageset-controller/internal/version"
)

func TestVersionPrintsTheBuildVersion(t *testing.T) {
	var out bytes.Buffer
	cmd := NewRootCommand(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out.String()), "stagesetctl "+version.String(); got != want {
		t.Fatalf("version printed %q, want %q", got, want)
	}
}

func TestUnknownCommandFails(t *testing.T) {
	cmd := NewRootCommand(&bytes.Buffer{})
	cmd.SetArgs([]string{"frobnicate"})
	if err := cmd.Execute(); err == nil {
		t.Fatal("an unknown command succeeded")
	}
}
