package controller

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// A new revision interrupts waits only: an HTTP action already sent runs to
// its answer (its request is not cancelled), the stage completes at the
// pinned revision, and the new revision rolls out next.
func TestNewRevisionDoesNotInterruptAnActionUnderWay(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	var calls, cancelled atomic.Int64
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
				cancelled.Add(1)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm", "v", "1")})
	st := stage("a", "./")
	st.Actions = &stagesetv1.StageActions{Pre: []stagesetv1.Action{{
		Name: "announce", Timeout: &metav1.Duration{Duration: time.Minute}, HTTP: &stagesetv1.HTTPAction{URL: hook.URL},
	}}}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	g.Eventually(calls.Load, timeout, poll).Should(Equal(int64(1)))

	src.publish("rev-2", files{"cm.yaml": configMap("cm", "v", "2")})
	// Give a wrong cancel time to land before the answer.
	time.Sleep(2 * time.Second)
	close(release)

	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	g.Expect(cancelled.Load()).To(BeZero(), "the action under way was not cancelled")
	g.Expect(calls.Load()).To(Equal(int64(2)), "once per revision")
	g.Expect(eventsWithReason(ns, "app", stagesetv1.StageFailedReason)).To(BeEmpty())
}
