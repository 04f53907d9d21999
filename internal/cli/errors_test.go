package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/source"
)

// runMain runs the binary's main as called by arg0 and returns the exit
// code, the output and the error output.
func runMain(arg0 string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(arg0, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// expectOneLineError checks that the run failed with exit code 1 and a
// single "✗ ..." line containing want, and no usage text (progress such as
// "► suspending" may precede it on stdout, as in flux).
func expectOneLineError(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errOut := runMain("stagesetctl", args...)
	g := NewWithT(t)
	g.Expect(code).To(Equal(1), "exit code of %v; stderr: %s", args, errOut)
	g.Expect(out).NotTo(ContainSubstring("Usage:"), "no usage text")
	g.Expect(errOut).NotTo(ContainSubstring("Usage:"), "no usage text")
	g.Expect(errOut).To(HavePrefix("✗ "))
	g.Expect(strings.Count(errOut, "\n")).To(Equal(1), "one line: %q", errOut)
	g.Expect(errOut).To(ContainSubstring(want))
}

func TestBadFlagIsOneLine(t *testing.T) {
	expectOneLineError(t, "unknown flag: --frobnicate", "get", "--frobnicate")
	expectOneLineError(t, `unknown command "frobnicate"`, "frobnicate")
	expectOneLineError(t, `accepts 1 arg(s), received 0`, "reconcile")
	expectOneLineError(t, `invalid argument "soon" for "--timeout"`, "reconcile", "shop", "--timeout", "soon")
}

func TestNoClusterIsOneLine(t *testing.T) {
	kubeconfig := noClusterKubeconfig(t)
	for _, args := range [][]string{
		{"get"},
		{"get", "shop"},
		{"reconcile", "shop"},
		{"suspend", "shop"},
	} {
		expectOneLineError(t, "cannot reach the cluster: ", append(args, "--kubeconfig", kubeconfig)...)
	}
}

func TestNoPermissionNamesVerbAndResource(t *testing.T) {
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)
	kubeconfig := kubeconfigFile(t)
	nobody := "system:serviceaccount:" + ns + ":nobody"
	for verb, args := range map[string][]string{
		"list": {"get"},
		"get":  {"reconcile", "shop"},
	} {
		args = append(args, "-n", ns, "--kubeconfig", kubeconfig, "--as", nobody)
		expectOneLineError(t, "✗ permission denied: ", args...)
		expectOneLineError(t,
			`is forbidden: User "`+nobody+`" cannot `+verb+` resource "stagesets" in API group "stageset.io"`, args...)
	}
}

func TestMissingStageSetIsOneLine(t *testing.T) {
	ns := env.NewNamespace(t)
	kubeconfig := kubeconfigFile(t)
	for _, args := range [][]string{
		{"get", "x"},
		{"reconcile", "x"},
		{"suspend", "x"},
	} {
		expectOneLineError(t, "StageSet "+ns+"/x not found", append(args, "-n", ns, "--kubeconfig", kubeconfig)...)
	}
}

// diff's exit codes gate a pull request: 1 means changes, so any error, a
// bad flag or a missing argument included, exits 2.
func TestDiffErrorsExitTwo(t *testing.T) {
	g := NewWithT(t)
	for _, args := range [][]string{{"diff", "shop", "--frobnicate"}, {"diff"}, {"diff", "a", "b"}} {
		code, _, errOut := runMain("stagesetctl", args...)
		g.Expect(code).To(Equal(2), "exit code of %v; stderr: %s", args, errOut)
		g.Expect(errOut).To(HavePrefix("✗ "))
	}
}

// Messages others wrote reach the terminal without control characters: an
// escape sequence in a Ready message or an error cannot drive it.
func TestMessagesArePrinted(t *testing.T) {
	g := NewWithT(t)
	g.Expect(oneLine("stage \x1b]0;pwned\x07failed:\n\tboom\u009b2J")).To(Equal("stage ]0;pwnedfailed: boom2J"))
	g.Expect(printable("a\x1b[2Jb\nc\td")).To(Equal("a[2Jb\nc\td"))
}

// A failed artifact download is not an unreachable cluster.
func TestExplainLeavesArtifactErrors(t *testing.T) {
	g := NewWithT(t)
	download := &source.ArtifactError{URL: "http://127.0.0.1:1/a.tar.gz", Err: &url.Error{Op: "Get", URL: "http://127.0.0.1:1/a.tar.gz", Err: errors.New("connection refused")}}
	g.Expect(explain(fmt.Errorf("stage %q: %w", "app", download)).Error()).To(HavePrefix(`stage "app": failed to fetch artifact`))
	g.Expect(explain(&url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api", Err: errors.New("connection refused")}).Error()).To(HavePrefix("cannot reach the cluster: "))
}
