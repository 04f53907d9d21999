package main

import (
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// The proxy names each request by verb and resource; the counts per object
// of the report are only as exact as this.
func TestClassify(t *testing.T) {
	cases := []struct {
		method, url, contentType, want string
	}{
		{"GET", "/api/v1/namespaces/ns/configmaps/a", "", "get configmaps"},
		{"GET", "/api/v1/namespaces/ns/configmaps", "", "list configmaps"},
		{"GET", "/api/v1/configmaps?labelSelector=x&watch=true", "", "watch configmaps"},
		{"GET", "/apis/stageset.io/v1/stagesets?watch=1", "", "watch stagesets"},
		{"PATCH", "/api/v1/namespaces/ns/configmaps/a?fieldManager=m&force=true", "application/apply-patch+yaml", "apply configmaps"},
		{"PATCH", "/api/v1/namespaces/ns/configmaps/a?dryRun=All&fieldManager=m", "application/apply-patch+yaml", "dry-run apply configmaps"},
		{"PATCH", "/apis/stageset.io/v1/namespaces/ns/stagesets/app/status", "application/merge-patch+json", "patch stagesets/status"},
		{"POST", "/api/v1/namespaces/ns/secrets", "application/json", "create secrets"},
		{"PUT", "/apis/source.toolkit.fluxcd.io/v1/namespaces/ns/gitrepositories/r/status", "application/json", "update gitrepositories/status"},
		{"DELETE", "/api/v1/namespaces/ns/configmaps/a", "", "delete configmaps"},
		{"DELETE", "/api/v1/namespaces/ns/configmaps", "", "deletecollection configmaps"},
		{"GET", "/api/v1/namespaces/ns", "", "get namespaces"},
		{"GET", "/apis/apps/v1", "", "discovery"},
		{"GET", "/api", "", "discovery"},
		{"GET", "/version", "", "discovery"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.url, nil)
		if c.contentType != "" {
			r.Header.Set("Content-Type", c.contentType)
		}
		if got := classify(r); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.url, got, c.want)
		}
	}
}

// The storm's check refuses an object left at an older revision and a
// missing object: a lost update does not pass as a benchmark result.
func TestObjectsAt(t *testing.T) {
	at := func(name, rev string) corev1.ConfigMap {
		return corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: map[string]string{"revision": rev}}
	}
	cases := []struct {
		name    string
		objects []corev1.ConfigMap
		want    int
		err     string
	}{
		{"all at the revision", []corev1.ConfigMap{at("a", "rev-4"), at("b", "rev-4")}, 2, ""},
		{"one left behind", []corev1.ConfigMap{at("a", "rev-4"), at("b", "rev-3")}, 2, `lost update: ns/b holds "rev-3"`},
		{"one missing", []corev1.ConfigMap{at("a", "rev-4")}, 2, "1 objects applied, want 2"},
	}
	for _, c := range cases {
		err := objectsAt(c.objects, c.want, "rev-4")
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if got := percentile(v, 0.5); got != 5.5 {
		t.Errorf("median %v, want 5.5", got)
	}
	if got := percentile(v, 0.9); got != 9 {
		t.Errorf("p90 %v, want 9", got)
	}
	if got := percentile([]float64{3, 1, 2}, 0.5); got != 2 {
		t.Errorf("median of three %v, want 2", got)
	}
}

// -controller-args reach every controller process, after the benchmark's
// own flags, so that a later flag (a fixed metrics port for pprof) wins.
func TestControllerArgsComeLast(t *testing.T) {
	defer func(old []string) { extraControllerArgs = old }(extraControllerArgs)
	extraControllerArgs = []string{"--enable-pprof", "--metrics-bind-address=127.0.0.1:18181"}
	dir := t.TempDir()
	// echo stands in for the controller: its log is its command line.
	p, err := startController("/bin/echo", dir, &rest.Config{Host: "https://127.0.0.1:1"}, "run-x", 4)
	if err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p.proxy.Close()
	log, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(string(log))
	if len(args) < 3 || args[len(args)-2] != "--enable-pprof" || args[len(args)-1] != "--metrics-bind-address=127.0.0.1:18181" ||
		!slices.Contains(args, "--metrics-bind-address=127.0.0.1:0") {
		t.Errorf("controller command line %q: want the benchmark's flags, then -controller-args", args)
	}
}
