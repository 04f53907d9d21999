package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// faultProxy stands between the controller and the test API server and
// answers the requests that match with a 500 while faults remain, as an
// overloaded or restarting API server would; everything else is forwarded.
type faultProxy struct {
	server *httptest.Server
	// match selects the requests to fail; body is the request body.
	match func(r *http.Request, body []byte) bool
	// remaining is how many more matching requests fail; injected counts
	// those that did.
	remaining, injected atomic.Int64
}

func newFaultProxy(t *testing.T, match func(r *http.Request, body []byte) bool) *faultProxy {
	t.Helper()
	target, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	forward.Transport = transport
	forward.FlushInterval = -1 // watches stream
	p := &faultProxy{match: match}
	p.server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if p.match(r, body) && p.remaining.Add(-1) >= 0 {
			p.injected.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected fault","reason":"InternalError","code":500}`)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(p.server.Close)
	return p
}

// config reaches the API server through the proxy, as cluster admin (the
// proxy authenticates as the test bed does).
func (p *faultProxy) config() *rest.Config {
	return &rest.Config{Host: p.server.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

// warningReasons lists the reasons of the Warning events of ns.
func warningReasons(g Gomega, ns string) []string {
	var events corev1.EventList
	g.Expect(env.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning {
			out = append(out, e.Reason)
		}
	}
	return out
}

// A status patch the API server fails during a rollout is no rollout
// failure: no onFailure action, no rollback, no StageFailed; the run is
// retried and completes.
func TestFailedStatusPatchIsNoRolloutFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	hooks := &atomic.Int64{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.Add(1) }))
	defer hook.Close()

	proxy := newFaultProxy(t, func(r *http.Request, body []byte) bool {
		// The progress patch of a stage that starts applying (a stage of
		// ConfigMaps, healthy at once, publishes no Verifying).
		return r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/stagesets/app/status") &&
			bytes.Contains(body, []byte(`"Applying"`))
	})
	publishRepo(t, ns, "rev-1", map[string]string{"app.yaml": appConfigMap("one")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./", Actions: &stagesetv1.StageActions{
		OnFailure: []stagesetv1.Action{{Name: "page", HTTP: &stagesetv1.HTTPAction{URL: hook.URL}}},
	}})
	obj.Spec.RollbackOnFailure = true
	obj.Spec.RetryInterval = &metav1.Duration{Duration: testenv.Timeout * 10}
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	startControllerWith(t, proxy.config(), "--allowed-action-hosts=127.0.0.1")
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))

	proxy.remaining.Store(2)
	publishRepo(t, ns, "rev-2", map[string]string{"app.yaml": appConfigMap("two")})
	// The retry comes from the workqueue's backoff, not from the hour-long
	// retryInterval: a transient error is not a failed run.
	g.Eventually(func() string {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return obj.Status.LastAppliedRevision
	}, testenv.Timeout, testenv.Poll).Should(Equal("rev-2"))
	g.Expect(readyOf(g, obj)()).To(Equal("True/Succeeded"))
	g.Expect(proxy.injected.Load()).To(Equal(int64(2)))
	g.Expect(hooks.Load()).To(BeZero(), "no onFailure action ran")
	g.Expect(warningReasons(g, ns)).To(BeEmpty(), "no StageFailed, no RolledBack")
	cm := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("v", "two"), "not rolled back")
}

// A ledger write the API server fails after a migration completed is no
// migration failure: no MigrationFailed, no rollback; the next run finds
// the same completed Job, records it and rolls out.
func TestFailedLedgerWriteIsNoMigrationFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	proxy := newFaultProxy(t, func(r *http.Request, body []byte) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/secrets") &&
			bytes.Contains(body, []byte("app-migrations")) // JSON or protobuf
	})
	proxy.remaining.Store(2)
	publishRepo(t, ns, "rev-1", map[string]string{"db/migrate.yaml": migrationJob, "db/app.yaml": appConfigMap("one")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "db", Path: "./db"})
	obj.Spec.RollbackOnFailure = true
	obj.Spec.RetryInterval = &metav1.Duration{Duration: testenv.Timeout * 10}
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	startControllerWith(t, proxy.config())

	jobKey := client.ObjectKey{Namespace: ns, Name: migration.JobName("app", "db", "1")}
	job := &batchv1.Job{}
	g.Eventually(func() error { return env.Client.Get(ctx, jobKey, job) }, testenv.Timeout, testenv.Poll).Should(Succeed())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, jobKey.Name, true, "")).To(Succeed())

	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	g.Expect(proxy.injected.Load()).To(Equal(int64(2)))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	g.Expect(jobsIn(g, ns)).To(Equal([]jobRef{{name: jobKey.Name, uid: string(job.UID)}}), "the migration ran once")
	g.Expect(warningReasons(g, ns)).To(BeEmpty(), "no MigrationFailed")
}
