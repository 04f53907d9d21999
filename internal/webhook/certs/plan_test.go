package certs

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPlan walks the decisions of one pass on material created at t0, with
// a validity of 10h, renew-before 3h and a CA validity of 40h.
func TestPlan(t *testing.T) {
	m, err := New(Options{
		Client: env.Client, Reader: env.Client,
		Namespace: "ns", ServiceName: "svc", ServiceNamespace: "ns", WebhookConfigName: "cfg",
		Validity: 10 * time.Hour, RenewBefore: 3 * time.Hour,
		Failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	base, err := m.fresh(t0)
	if err != nil {
		t.Fatal(err)
	}
	withNext, _, err := m.plan(base, h(37.5), true, false)
	if err != nil || withNext == nil || withNext.next == nil {
		t.Fatalf("no next CA 2.5h before CA expiry: %v", err)
	}
	promoted, _, err := m.plan(withNext, h(37.6), true, true)
	if err != nil || promoted == nil {
		t.Fatal(err)
	}
	otherNames := *base
	otherNames.serving, _ = issue(base.ca, []string{"old"}, t0, 10*time.Hour)

	for _, tc := range []struct {
		name      string
		cur       *material
		at        time.Time
		leader    bool
		published bool
		want      string // "", "serving", "next", "promote", "drop", "fresh"
	}{
		{"leader, nothing due", base, h(6.9), true, false, ""},
		{"leader, serving due", base, h(7.1), true, false, "serving"},
		{"follower never renews ahead", base, h(9.9), false, false, ""},
		{"follower repairs an expired serving certificate", base, h(10.1), false, false, "serving"},
		{"follower repairs other DNS names", &otherNames, h(1), false, false, "serving"},
		{"leader, CA due: next published, serving waits", withNext, h(37.5), true, false, ""},
		{"leader, next not yet in caBundle", withNext, h(37.6), true, false, ""},
		{"leader, next in caBundle", withNext, h(37.6), true, true, "promote"},
		{"follower never promotes a live CA", withNext, h(37.6), false, true, ""},
		{"follower promotes when the CA expired", withNext, h(40.1), false, false, "promote"},
		{"previous kept until it expires", promoted, h(39.9), true, false, ""},
		{"previous dropped after expiry", promoted, h(40.1), true, false, "drop"},
		{"CA expired and no next", base, h(40.1), false, false, "fresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := m.plan(tc.cur, tc.at, tc.leader, tc.published)
			if err != nil {
				t.Fatal(err)
			}
			kind := ""
			switch {
			case got == nil:
			case !bytes.Equal(got.ca.certPEM, tc.cur.ca.certPEM) && tc.cur.next != nil && bytes.Equal(got.ca.certPEM, tc.cur.next.certPEM):
				kind = "promote"
				if !got.previous.Equal(tc.cur.ca.cert) || got.next != nil || got.serving.cert.CheckSignatureFrom(got.ca.cert) != nil {
					t.Error("promotion must keep the old CA as previous and sign the serving certificate with the new CA")
				}
			case !bytes.Equal(got.ca.certPEM, tc.cur.ca.certPEM):
				kind = "fresh"
			case tc.cur.previous != nil && got.previous == nil:
				kind = "drop"
			case got.next != nil && tc.cur.next == nil:
				kind = "next"
			case !bytes.Equal(got.serving.certPEM, tc.cur.serving.certPEM):
				kind = "serving"
			}
			if kind != tc.want {
				t.Errorf("plan did %q (%s), want %q", kind, why, tc.want)
			}
			if got != nil && got.serving.cert.NotAfter.After(got.ca.cert.NotAfter) {
				t.Error("the serving certificate outlives its CA")
			}
		})
	}
	if bundle := promoted.bundle(h(39)); !bundleHolds(bundle, base.ca.cert) || !bundleHolds(bundle, promoted.ca.cert) {
		t.Error("the bundle after a switch must hold the old and the new CA")
	}
	if bundleHolds(promoted.bundle(h(40.1)), base.ca.cert) {
		t.Error("the bundle still holds the expired previous CA")
	}
	if !bundleHolds(withNext.bundle(h(37.6)), withNext.next.cert) {
		t.Error("the bundle does not hold the next CA")
	}
}

func TestBackoffDoublesUpToTheLimit(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, backoff(time.Second, 10*time.Second, n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
}
