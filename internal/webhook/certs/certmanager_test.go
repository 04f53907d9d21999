package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// TestCertManagerModeServesReplacedCertificate runs the webhook server the
// way main does in cert-manager mode (CertDir, no TLSOption) on a folder laid
// out as the kubelet mounts a Secret, replaces the certificate the way the
// kubelet does (a new timestamped folder, then an atomic swap of the ..data
// link) and expects the new certificate to be served without a restart.
func TestCertManagerModeServesReplacedCertificate(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := newCA(now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"stageset-webhook.ns.svc"}
	first, err := issue(ca, names, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mount(t, dir, "..v1", first)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	leaf := func() []byte {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	waitFor := func(want *pair, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !bytes.Equal(leaf(), want.cert.Raw) {
			if time.Now().After(deadline) {
				t.Fatalf("the %s certificate is not served", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(first, "mounted")

	second, err := issue(ca, names, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mount(t, dir, "..v2", second)
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	waitFor(second, "replaced")
}

// mount writes the pair into dir as the kubelet writes a Secret volume:
// files in a folder of their own, reached through the ..data link, which is
// swapped atomically by a rename.
func mount(t *testing.T, dir, version string, p *pair) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"tls.crt": p.certPEM, "tls.key": p.keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, version, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}
