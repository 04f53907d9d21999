package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs every scenario of the benchmark at tiny sizes, once, with
// the controller binary built from this checkout; the mixed rollout runs on
// the local control plane, which `make test` builds (`make localbin`) for
// tests/e2e too. It asserts only what must hold whatever the machine:
// every StageSet got Ready (the scenarios fail otherwise), no update was
// lost in the storm, and the report is written and well-formed. It never
// asserts a time.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the test API server and the controller binary")
	}
	dir := t.TempDir()
	o := options{
		scenarios: scenarioNames, reps: 1, sizes: smokeSizes,
		jsonPath: filepath.Join(dir, "e2e.json"), mdPath: filepath.Join(dir, "e2e.md"),
		log: testWriter{t},
	}
	if _, err := run(context.Background(), o); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(o.jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("the JSON report does not parse: %v", err)
	}
	want := map[string]bool{"ordered rollout": false, "hand-off": false, "steady state": false,
		"one large stage": false, "scale": false, "source storm": false}
	mixed := false
	for _, r := range rep.Results {
		for prefix := range want {
			if strings.HasPrefix(r.Scenario, prefix) {
				want[prefix] = true
			}
		}
		if len(r.Seconds) == 0 {
			t.Errorf("%s: no measurement", r.Scenario)
		}
		for _, s := range r.Seconds {
			if s < 0 {
				t.Errorf("%s: negative time %v", r.Scenario, s)
			}
		}
		for _, reqs := range r.Requests {
			if reqs.Total() == 0 {
				t.Errorf("%s: no request counted", r.Scenario)
			}
		}
		if strings.HasPrefix(r.Scenario, "source storm") && !r.NoLostUpdate {
			t.Errorf("%s: lost update not checked", r.Scenario)
		}
		if strings.HasPrefix(r.Scenario, "ordered rollout") && strings.Contains(r.Scenario, "Deployments") {
			mixed = true
			if len(r.BaselineApplyOnlySeconds) == 0 {
				t.Errorf("%s: no apply-only baseline next to the waiting one", r.Scenario)
			}
		}
	}
	if !mixed {
		t.Error("no result of the mixed rollout (Services, ServiceAccounts, Deployments) in the report")
	}
	for prefix, found := range want {
		if !found {
			t.Errorf("no %q result in the report", prefix)
		}
	}

	md, err := os.ReadFile(o.mdPath)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for line := range strings.Lines(string(md)) {
		if strings.HasPrefix(line, "| ") {
			if n := strings.Count(line, " | "); n != 7 {
				t.Errorf("table row with %d cells: %s", n+1, line)
			}
			rows++
		}
	}
	// The header, then one row per result.
	if rows != len(rep.Results)+1 {
		t.Errorf("%d table rows for %d results:\n%s", rows, len(rep.Results), md)
	}
}

// testWriter sends the benchmark's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
