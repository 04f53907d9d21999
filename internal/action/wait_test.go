package action

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestWait_duration(t *testing.T) {
	g := NewWithT(t)
	a := stagesetv1.Action{Name: "settle", Wait: &stagesetv1.WaitAction{Duration: duration(200 * time.Millisecond)}}
	start := time.Now()
	g.Expect(runner("default").Run(context.Background(), a, time.Minute)).To(Succeed())
	g.Expect(time.Since(start)).To(BeNumerically(">=", 200*time.Millisecond))

	// The action's timeout cuts a longer wait short.
	a.Timeout = duration(100 * time.Millisecond)
	a.Wait.Duration = duration(time.Hour)
	g.Expect(runner("default").Run(context.Background(), a, time.Minute)).To(MatchError(ContainSubstring("deadline exceeded")))
}

func TestWait_exprBecomesTrue(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	a := stagesetv1.Action{Name: "ready", Wait: &stagesetv1.WaitAction{
		Target: ptr(configMapRef("gate")),
		Expr:   `self.data.open == "yes"`,
	}}

	done := make(chan error, 1)
	go func() { done <- runner(ns).Run(context.Background(), a, time.Minute) }()

	// Absent, then without the field, then false: all keep the wait going.
	g.Consistently(done, 1500*time.Millisecond).ShouldNot(Receive())
	cm := newConfigMap(t, ns, "gate", map[string]string{"other": "x"})
	g.Consistently(done, 1500*time.Millisecond).ShouldNot(Receive())
	cm.Data["open"] = "no"
	g.Expect(env.Client.Update(context.Background(), cm)).To(Succeed())
	g.Consistently(done, 1500*time.Millisecond).ShouldNot(Receive())

	cm.Data["open"] = "yes"
	g.Expect(env.Client.Update(context.Background(), cm)).To(Succeed())
	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestWait_exprTimesOut(t *testing.T) {
	ns := env.NewNamespace(t)
	newConfigMap(t, ns, "gate", map[string]string{"open": "no"})
	tests := []struct {
		name   string
		target string
		want   string
	}{
		{name: "false", target: "gate", want: `ConfigMap/` + ns + `/gate: "self.data.open == \"yes\"" is false`},
		{name: "missing object", target: "absent", want: "ConfigMap/" + ns + "/absent not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			a := stagesetv1.Action{Name: "ready", Timeout: duration(2 * time.Second), Wait: &stagesetv1.WaitAction{
				Target: ptr(configMapRef(tt.target)),
				Expr:   `self.data.open == "yes"`,
			}}
			err := runner(ns).Run(context.Background(), a, time.Minute)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("timed out waiting"))
			g.Expect(err.Error()).To(ContainSubstring(tt.want))
		})
	}
}

func TestWait_invalidExpr(t *testing.T) {
	g := NewWithT(t)
	a := stagesetv1.Action{Name: "ready", Wait: &stagesetv1.WaitAction{Target: ptr(configMapRef("gate")), Expr: "self.data.("}}
	g.Expect(runner("default").Run(context.Background(), a, time.Minute)).To(MatchError(ContainSubstring("invalid expr")))
}

func ptr[T any](v T) *T { return &v }
