// Package integrity holds the key with which the controller authenticates
// what it stores in tenant namespaces (snapshots, the migration ledger).
//
// Those Secrets live where any Secret writer of the namespace can change
// them, and an ownerReference UID proves nothing: anyone can set it. What a
// tenant cannot produce is an HMAC under a key kept in the controller's own
// namespace, so the controller trusts only content that carries one.
package integrity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

const (
	// SecretType is the type of the key Secret. A Secret of the key's name
	// with another type is refused, so that a Secret someone else made is
	// never taken for the key.
	SecretType corev1.SecretType = stagesetv1.GroupName + "/integrity-key"

	// DefaultSecretName is the name of the key Secret in the controller's
	// namespace.
	DefaultSecretName = "stageset-controller-integrity-key"

	// KeySize is the length of the key in bytes.
	KeySize = 32

	// dataKey is the data key of the key Secret.
	dataKey = "key"

	// macPrefix names the algorithm in every stored MAC, so that a change
	// of algorithm is refused rather than misread.
	macPrefix = "hmac-sha256:"
)

// Key authenticates content with HMAC-SHA256.
type Key struct {
	secret []byte
}

// NewKey returns a Key of raw, which must be KeySize bytes at least. Tests
// build their keys with it.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) < KeySize {
		return nil, fmt.Errorf("integrity key has %d bytes, want at least %d", len(raw), KeySize)
	}
	return &Key{secret: append([]byte(nil), raw...)}, nil
}

// Sum returns the MAC of the fields, as "hmac-sha256:<hex>". Each field is
// length-prefixed, so ("ab", "c") and ("a", "bc") have different MACs; the
// first field should name the purpose, so that a MAC made for one kind of
// content is never valid for another.
func (k *Key) Sum(fields ...string) string {
	return macPrefix + hex.EncodeToString(k.sum(fields))
}

// Verify tells whether mac is the MAC of the fields, in constant time.
func (k *Key) Verify(mac string, fields ...string) bool {
	raw, ok := strings.CutPrefix(mac, macPrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(raw)
	if err != nil {
		return false
	}
	return hmac.Equal(got, k.sum(fields))
}

func (k *Key) sum(fields []string) []byte {
	h := hmac.New(sha256.New, k.secret)
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// LoadOrCreate returns the key held by the Secret at key, creating the
// Secret with a new random key when there is none. Replicas starting
// together may race to create it: the API server lets one Create win and
// the others read what it wrote. The Secret is immutable: a changed key
// would make every stored snapshot and ledger fail verification.
func LoadOrCreate(ctx context.Context, c client.Client, reader client.Reader, key client.ObjectKey) (*Key, error) {
	k, err := load(ctx, reader, key)
	if err == nil || !apierrors.IsNotFound(err) {
		return k, err
	}
	fresh := NewRandomKey()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Type:       SecretType,
		Immutable:  ptr.To(true),
		Data:       map[string][]byte{dataKey: fresh.secret},
	}
	err = c.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		return load(ctx, reader, key)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the integrity key Secret %s: %w", key, err)
	}
	return fresh, nil
}

// NewRandomKey returns a new key of KeySize random bytes (crypto/rand never
// fails).
func NewRandomKey() *Key {
	raw := make([]byte, KeySize)
	_, _ = rand.Read(raw)
	return &Key{secret: raw}
}

// load reads the key Secret; a NotFound error is returned as it is.
func load(ctx context.Context, reader client.Reader, key client.ObjectKey) (*Key, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the integrity key Secret %s: %w", key, err)
	}
	if secret.Type != SecretType {
		return nil, fmt.Errorf("secret %s has type %q, not %q: refusing to use it as the integrity key", key, secret.Type, SecretType)
	}
	k, err := NewKey(secret.Data[dataKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", key, err)
	}
	return k, nil
}

// ErrUnverified is wrapped by errors about stored content whose MAC is
// missing or wrong: content the controller did not write, or not for the
// object it is read for.
var ErrUnverified = errors.New("failed verification")
