package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// The demo of `make run` brings the sample StageSet to Ready on a control
// plane of its own, streaming every stage.
func TestMakeRunDemoReachesReady(t *testing.T) {
	g := NewWithT(t)
	var out bytes.Buffer
	err := localcluster.RunDemo(context.Background(), localcluster.DemoOptions{
		Root:             testenv.RepoRoot(),
		Scheme:           scheme.New(),
		Out:              &out,
		ExitWhenReady:    true,
		Timeout:          3 * time.Minute,
		ControllerBinary: controllerBinary,
	})
	g.Expect(err).NotTo(HaveOccurred(), out.String())
	for _, line := range []string{
		"stage platform  Ready", "stage database  Ready", "stage app       Ready",
		"Ready=True Succeeded: Applied revision: local@sha256:",
		"The StageSet is Ready:",
		"NAMESPACE  NAME  READY  REVISION",
		"bin/stagesetctl get -n default shop -o yaml",
	} {
		g.Expect(out.String()).To(ContainSubstring(line))
	}
}
