package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// startServer runs controller-runtime's webhook server with the manager's
// TLSOption, as main does, and returns its address. CertDir is an empty
// folder: were controller-runtime to start its own certwatcher beside
// GetCertificate, it would fail on the missing files.
func startServer(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	srv := webhook.NewServer(webhook.Options{
		Host:    "127.0.0.1",
		Port:    port,
		CertDir: t.TempDir(),
		TLSOpts: []func(*tls.Config){m.TLSOption},
	})
	srv.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("webhook server did not listen on %s", addr)
	return ""
}

// TestRotationUnderLoadFailsNoRequest runs a leader and a follower through
// several serving certificate renewals and a CA switch while a client calls
// both in a loop, each time trusting only the caBundle it reads back from
// the ValidatingWebhookConfiguration, as the API server does.
func TestRotationUnderLoadFailsNoRequest(t *testing.T) {
	f := newFixture(t)
	opts := f.options()
	opts.Validity, opts.RenewBefore, opts.CAValidity = 3*time.Second, 2*time.Second, 6*time.Second
	opts.CheckInterval, opts.ReloadInterval, opts.RetryInitial = 100*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	leader, follower := newManager(t, opts), newManager(t, opts)
	ctx := context.Background()
	for _, m := range []*Manager{leader, follower} {
		if err := m.Init(ctx); err != nil {
			t.Fatal(err)
		}
	}
	addrs := []string{startServer(t, leader), startServer(t, follower)}
	runManager(t, leader, true)
	runManager(t, follower, false)

	var (
		mu       sync.Mutex
		ok, fail int
		failures []string
		leaves   = map[string]bool{} // serials of the serving certificates seen
		cas      = map[string]bool{} // issuers of the serving certificates seen
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := call(ctx, f, addrs[i%2], i, func(leaf string, ca string) {
				mu.Lock()
				leaves[leaf], cas[ca] = true, true
				mu.Unlock()
			})
			mu.Lock()
			if err != nil {
				fail++
				if len(failures) < 5 {
					failures = append(failures, err.Error())
				}
			} else {
				ok++
			}
			mu.Unlock()
		}
	}()

	// Run until the CA was switched and the previous CA left the bundle
	// after its expiry, then a little longer.
	switched, dropped := false, false
	deadline := time.Now().Add(40 * time.Second)
	for !dropped && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		mat := mustParse(t, f.secret(t))
		switched = switched || mat.previous != nil
		dropped = switched && mat.previous == nil
	}
	time.Sleep(time.Second)
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests, %d failed, %d serving certificates, %d CAs", ok+fail, fail, len(leaves), len(cas))
	if !dropped {
		t.Fatalf("no CA switch completed in time (switched %v)", switched)
	}
	if fail != 0 {
		t.Errorf("%d of %d requests failed, first: %v", fail, ok+fail, failures)
	}
	if len(leaves) < 4 || len(cas) < 2 {
		t.Errorf("the loop saw %d serving certificates of %d CAs, want at least 4 of 2", len(leaves), len(cas))
	}
	if ok < 100 {
		t.Errorf("only %d requests succeeded", ok)
	}
}

// call reads the caBundle of webhook i%2, trusts only it, and makes one
// request on a new connection to addr.
func call(ctx context.Context, f fixture, addr string, i int, seen func(leaf, ca string)) error {
	bundles, err := f.bundles(ctx)
	if err != nil {
		return fmt.Errorf("reading the caBundle: %w", err)
	}
	roots, err := poolOf(bundles[i%len(bundles)])
	if err != nil {
		return err
	}
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "stageset-webhook." + f.ns + ".svc"},
		},
	}
	resp, err := c.Get("https://" + addr + "/validate")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	leaf := resp.TLS.PeerCertificates[0]
	seen(leaf.SerialNumber.String(), leaf.Issuer.CommonName)
	return nil
}
