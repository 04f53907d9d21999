package main

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// tree, events and history read what the real controller wrote: the
// stage's inventory with the live health of its ConfigMap, the events of
// each rollout oldest first, and the rollouts in status.history.
func TestStagesetctlTreeEventsHistory(t *testing.T) {
	g := NewWithT(t)
	obj := readyApp(t, g)
	ns := obj.Namespace

	out, err := stagesetctl(t, "tree", "app", "-n", ns, "--health")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("StageSet/" + ns + "/app\n" +
		"└── Stage/app [Ready] rev-1\n" +
		"    └── ConfigMap/" + ns + "/app [Current]\n"))

	publishRepo(t, ns, "rev-2", map[string]string{"app/cm.yaml": appConfigMap("two")})
	g.Eventually(func() string {
		out, err := stagesetctl(t, "history", "app", "-n", ns)
		g.Expect(err).NotTo(HaveOccurred())
		return out
	}, testenv.Timeout, testenv.Poll).Should(ContainSubstring("rev-2"))
	out, err = stagesetctl(t, "history", "app", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines).To(HaveLen(3), out)
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"REVISIONS", "RESULT", "DURATION", "WHEN"}))
	g.Expect(strings.Fields(lines[1])[:2]).To(Equal([]string{"rev-1", "Succeeded"}))
	g.Expect(strings.Fields(lines[2])[:2]).To(Equal([]string{"rev-2", "Succeeded"}))

	// The controller's events of both rollouts, the first one first.
	g.Eventually(func() string {
		out, err = stagesetctl(t, "events", "app", "-n", ns)
		g.Expect(err).NotTo(HaveOccurred())
		return out
	}, testenv.Timeout, testenv.Poll).Should(ContainSubstring("revision: rev-2"))
	g.Expect(out).To(HavePrefix("LAST SEEN"))
	g.Expect(out).To(MatchRegexp(`Normal +Succeeded +StageSet/app +Applied revision: rev-1`))
	g.Expect(strings.Index(out, "revision: rev-1")).To(BeNumerically("<", strings.Index(out, "revision: rev-2")), out)

	_, err = stagesetctl(t, "events", "nothing", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/nothing not found"))
}

// events --watch prints an event the controller emits after it started,
// and returns when interrupted.
func TestStagesetctlEventsWatch(t *testing.T) {
	g := NewWithT(t)
	obj := readyApp(t, g)
	ns := obj.Namespace

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- stagesetctlUntil(ctx, t, &out, "events", "app", "-n", ns, "--watch") }()
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(ContainSubstring("revision: rev-1"))
	g.Expect(out.String()).NotTo(ContainSubstring("rev-2"))

	publishRepo(t, ns, "rev-2", map[string]string{"app/cm.yaml": appConfigMap("two")})
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(MatchRegexp(`Succeeded +StageSet/app +Applied revision: rev-2`))
	cancel()
	g.Eventually(done, testenv.Timeout).Should(Receive(BeNil()))
}
