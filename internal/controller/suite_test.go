package controller

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/runtime/events"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/impersonation"
	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/runbook"
	"github.com/stageset/stageset-controller/internal/snapshot"
	"github.com/stageset/stageset-controller/internal/source"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	env *testenv.Environment
	// clockShift moves the controller's clock for update window tests.
	clockShift atomic.Int64
	// reconciler is the reconciler the test manager runs.
	reconciler *StageSetReconciler
	// panicClock makes the controller's clock panic, for the test that a
	// panic in a run is reported (the clock is read by the window gate).
	panicClock atomic.Bool
	// notifications receives the events the controller forwards, like
	// notification-controller's event receiver.
	notifications *eventReceiver
	// integrityKey is the controller's key; tests that forge snapshots or
	// ledgers do so without it, as a tenant would.
	integrityKey = integrity.NewRandomKey()
	// lagging is the reconciler's cached client; a test makes it serve an
	// older StageSet, as an informer behind the latest write does.
	lagging *laggingCache
)

// laggingCache serves, once per armed key, an older copy of a StageSet in
// place of the cached one: an informer that has not yet seen the last
// write, which envtest's single, fast API server rarely shows on its own.
type laggingCache struct {
	client.Client
	mu    sync.Mutex
	stale map[types.NamespacedName]*stagesetv1.StageSet
}

// serveOnce makes the next Get of the StageSet's key answer old.
func (l *laggingCache) serveOnce(old *stagesetv1.StageSet) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stale == nil {
		l.stale = map[types.NamespacedName]*stagesetv1.StageSet{}
	}
	l.stale[client.ObjectKeyFromObject(old)] = old.DeepCopy()
}

// served tells whether the armed copy of key was read.
func (l *laggingCache) served(key types.NamespacedName) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, armed := l.stale[key]
	return !armed
}

func (l *laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if into, ok := obj.(*stagesetv1.StageSet); ok {
		l.mu.Lock()
		old, armed := l.stale[key]
		delete(l.stale, key)
		l.mu.Unlock()
		if armed {
			old.DeepCopyInto(into)
			return nil
		}
	}
	return l.Client.Get(ctx, key, obj, opts...)
}

func TestMain(m *testing.M) {
	var err error
	if notifications, err = newEventReceiver(); err != nil {
		panic(err)
	}
	defer notifications.Close()
	os.Exit(testenv.Run(m, &env, setupReconciler))
}

func setupReconciler(mgr ctrl.Manager) error {
	recorder, err := events.NewRecorder(ctrl.Log, notifications.URL(), ControllerName, events.WithManager(mgr))
	if err != nil {
		return err
	}
	lagging = &laggingCache{Client: mgr.GetClient()}
	r := &StageSetReconciler{
		Client:    lagging,
		APIReader: mgr.GetAPIReader(),
		Clients: &impersonation.Factory{
			Base:   mgr.GetConfig(),
			Scheme: mgr.GetScheme(),
			Reader: mgr.GetAPIReader(),
		},
		Sources:            &source.Resolver{Reader: mgr.GetClient(), NoCrossNamespaceRefs: true},
		Fetcher:            &source.Fetcher{},
		Builds:             build.NewCache(1000, 64<<20),
		MaxObjectsPerStage: build.DefaultMaxObjects,
		Snapshots:          &snapshot.Store{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Key: integrityKey},
		Integrity:          integrityKey,
		AllowedActionHosts: []string{"127.0.0.1"},
		Migrations:         &migration.Ledger{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Key: integrityKey},
		EventRecorder:      recorder,
		Metrics:            metrics.Default(),
		StatusManager:      StatusManager,
		Clock: func() time.Time {
			if panicClock.Load() {
				panic("the test clock panicked")
			}
			return time.Now().Add(time.Duration(clockShift.Load()))
		},
		DependencyRequeueInterval: time.Second,
		// Every Ready message the tests reach is checked for its runbook
		// link (eventuallyReason).
		Runbooks:             runbook.NewLinks(testRunbookBase),
		NoCrossNamespaceRefs: true, // as multi-tenant installs run (stageset_dependencies_test.go)
	}
	reconciler = r
	return r.SetupWithManager(context.Background(), mgr, Options{})
}

// eventReceiver is an HTTP server speaking notification-controller's event
// API: it accepts POSTed eventv1.Event payloads.
type eventReceiver struct {
	server *http.Server
	ln     net.Listener

	mu     sync.Mutex
	events []eventv1.Event
}

func newEventReceiver() (*eventReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &eventReceiver{ln: ln}
	e.server = &http.Server{Handler: http.HandlerFunc(e.receive), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.server.Serve(ln) }()
	return e, nil
}

func (e *eventReceiver) URL() string { return "http://" + e.ln.Addr().String() + "/" }

func (e *eventReceiver) Close() { _ = e.server.Close() }

func (e *eventReceiver) receive(w http.ResponseWriter, r *http.Request) {
	var ev eventv1.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// For returns the events received for one StageSet, oldest first.
func (e *eventReceiver) For(namespace, name string) []eventv1.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []eventv1.Event
	for _, ev := range e.events {
		if ev.InvolvedObject.Namespace == namespace && ev.InvolvedObject.Name == name {
			out = append(out, ev)
		}
	}
	return out
}
