package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Data keys of the certificate Secret.
const (
	caCertKey       = "ca.crt"
	caKeyKey        = "ca.key"
	nextCertKey     = "ca-next.crt"
	nextKeyKey      = "ca-next.key"
	previousCertKey = "ca-previous.crt"
	servingCertKey  = corev1.TLSCertKey
	servingKeyKey   = corev1.TLSPrivateKeyKey
)

// backdate moves NotBefore into the past, so that an API server whose clock
// is a little behind the controller's accepts a certificate just issued.
const backdate = time.Minute

// pair is a certificate with its private key, parsed and in PEM.
type pair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// material is what the Secret holds: the CA that signs the serving
// certificate, the CA that will replace it (published in caBundle before it
// signs anything), the CA it replaced (kept in caBundle until it expires) and
// the serving certificate.
type material struct {
	ca       *pair
	next     *pair
	previous *x509.Certificate
	serving  *pair
}

// newCA returns a self-signed ECDSA P-256 CA valid from now for validity.
func newCA(now time.Time, validity time.Duration) (*pair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("stageset-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, nil)
}

// issue returns a serving certificate for dnsNames signed by ca, valid for
// validity but never beyond the CA, whose expiry bounds every chain anyway.
func issue(ca *pair, dnsNames []string, now time.Time, validity time.Duration) (*pair, error) {
	notAfter := now.Add(validity)
	if ca.cert.NotAfter.Before(notAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0]},
		DNSNames:    dnsNames,
		NotBefore:   now.Add(-backdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return sign(tmpl, ca)
}

// sign creates a new key and a certificate of tmpl signed by parent, or
// self-signed when parent is nil.
func sign(tmpl *x509.Certificate, parent *pair) (*pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding a key: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parsePair parses a certificate and its key and checks that they match.
func parsePair(data map[string][]byte, certKey, keyKey string) (*pair, error) {
	kp, err := tls.X509KeyPair(data[certKey], data[keyKey])
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certKey, keyKey, err)
	}
	key, ok := kp.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an ECDSA key", keyKey)
	}
	return &pair{cert: kp.Leaf, key: key, certPEM: data[certKey], keyPEM: data[keyKey]}, nil
}

// parseMaterial reads the Secret's data. Every part present must parse, CAs
// must be CAs and the serving certificate must come from the CA: anything
// else means the Secret was edited by hand, and is reported.
func parseMaterial(data map[string][]byte) (*material, error) {
	m := &material{}
	var err error
	if m.ca, err = parsePair(data, caCertKey, caKeyKey); err != nil {
		return nil, err
	}
	if !m.ca.cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", caCertKey)
	}
	if m.serving, err = parsePair(data, servingCertKey, servingKeyKey); err != nil {
		return nil, err
	}
	if len(data[nextCertKey]) > 0 || len(data[nextKeyKey]) > 0 {
		if m.next, err = parsePair(data, nextCertKey, nextKeyKey); err != nil {
			return nil, err
		}
		if !m.next.cert.IsCA {
			return nil, fmt.Errorf("%s is not a CA certificate", nextCertKey)
		}
	}
	if raw := data[previousCertKey]; len(raw) > 0 {
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", previousCertKey)
		}
		if m.previous, err = x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", previousCertKey, err)
		}
	}
	return m, nil
}

// data encodes the material as Secret data.
func (m *material) data() map[string][]byte {
	d := map[string][]byte{
		caCertKey:      m.ca.certPEM,
		caKeyKey:       m.ca.keyPEM,
		servingCertKey: m.serving.certPEM,
		servingKeyKey:  m.serving.keyPEM,
	}
	if m.next != nil {
		d[nextCertKey], d[nextKeyKey] = m.next.certPEM, m.next.keyPEM
	}
	if m.previous != nil {
		d[previousCertKey] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.previous.Raw})
	}
	return d
}

// bundle is the caBundle the material asks for at now: the current CA, the
// next one and the previous one while it has not expired. The previous CA
// stays until it expires because a replica that has not reloaded yet may
// still serve a certificate it signed, and such a certificate cannot outlive
// it (issue caps it): after expiry nothing it signed can verify anyway, so
// keeping it longer gains nothing and no clock of "how long it was served"
// has to be persisted.
func (m *material) bundle(now time.Time) []byte {
	var b bytes.Buffer
	b.Write(m.ca.certPEM)
	if m.next != nil {
		b.Write(m.next.certPEM)
	}
	if m.previous != nil && now.Before(m.previous.NotAfter) {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.previous.Raw}))
	}
	return b.Bytes()
}

// servingFits tells whether the serving certificate is one the webhook may
// serve at now: signed by the current CA, for exactly dnsNames, not expired.
func (m *material) servingFits(dnsNames []string, now time.Time) error {
	c := m.serving.cert
	if err := c.CheckSignatureFrom(m.ca.cert); err != nil {
		return errors.New("the serving certificate is not signed by the current CA")
	}
	if !slices.Equal(c.DNSNames, dnsNames) {
		return fmt.Errorf("the serving certificate is for %v, not %v", c.DNSNames, dnsNames)
	}
	if !now.Before(c.NotAfter) {
		return errors.New("the serving certificate expired")
	}
	return nil
}

// tlsCertificate returns the serving certificate for a tls.Config.
func (m *material) tlsCertificate() *tls.Certificate {
	return &tls.Certificate{
		Certificate: [][]byte{m.serving.cert.Raw},
		PrivateKey:  m.serving.key,
		Leaf:        m.serving.cert,
	}
}

// bundleHolds tells whether the PEM bundle holds cert.
func bundleHolds(bundle []byte, cert *x509.Certificate) bool {
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return false
		}
		if bytes.Equal(block.Bytes, cert.Raw) {
			return true
		}
	}
}
