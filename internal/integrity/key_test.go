package integrity

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

func TestSumBindsEveryField(t *testing.T) {
	g := NewWithT(t)
	k, err := NewKey(bytes.Repeat([]byte{1}, KeySize))
	g.Expect(err).NotTo(HaveOccurred())
	other, err := NewKey(bytes.Repeat([]byte{2}, KeySize))
	g.Expect(err).NotTo(HaveOccurred())

	mac := k.Sum("purpose", "ab", "c")
	g.Expect(mac).To(HavePrefix("hmac-sha256:"))
	g.Expect(k.Verify(mac, "purpose", "ab", "c")).To(BeTrue())
	g.Expect(k.Verify(mac, "purpose", "a", "bc")).To(BeFalse(), "field boundaries count")
	g.Expect(k.Verify(mac, "other", "ab", "c")).To(BeFalse())
	g.Expect(k.Verify(mac, "purpose", "ab")).To(BeFalse())
	g.Expect(other.Verify(mac, "purpose", "ab", "c")).To(BeFalse())
	g.Expect(k.Verify("", "purpose", "ab", "c")).To(BeFalse())
	g.Expect(k.Verify(mac[len("hmac-sha256:"):], "purpose", "ab", "c")).To(BeFalse(), "the algorithm is named")

	_, err = NewKey(make([]byte, KeySize-1))
	g.Expect(err).To(MatchError(ContainSubstring("want at least 32")))
}

func TestLoadOrCreateMakesOneKeyForEveryReplica(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: env.NewNamespace(t), Name: DefaultSecretName}

	// Replicas starting together all end up with the key that won.
	const replicas = 5
	keys := make([]*Key, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreate(ctx, env.Client, env.Client, key) })
	}
	wg.Wait()
	for i := range replicas {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(keys[i].secret).To(Equal(keys[0].secret))
	}

	secret := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, key, secret)).To(Succeed())
	g.Expect(secret.Type).To(Equal(SecretType))
	g.Expect(*secret.Immutable).To(BeTrue())
	g.Expect(secret.Data[dataKey]).To(Equal(keys[0].secret))

	again, err := LoadOrCreate(ctx, env.Client, env.Client, key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.secret).To(Equal(keys[0].secret), "a restart reads the same key")
}

// A Secret of the key's name that the controller did not create is not
// used as the key, nor replaced.
func TestLoadOrCreateRefusesASecretOfAnotherType(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	planted := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: DefaultSecretName},
		Data:       map[string][]byte{dataKey: bytes.Repeat([]byte{7}, KeySize)},
	}
	g.Expect(env.Client.Create(ctx, planted)).To(Succeed())
	_, err := LoadOrCreate(ctx, env.Client, env.Client, client.ObjectKeyFromObject(planted))
	g.Expect(err).To(MatchError(ContainSubstring(`has type "Opaque", not "stageset.io/integrity-key": refusing to use it`)))

	short := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short"},
		Type:       SecretType,
		Data:       map[string][]byte{dataKey: []byte("tiny")},
	}
	g.Expect(env.Client.Create(ctx, short)).To(Succeed())
	_, err = LoadOrCreate(ctx, env.Client, env.Client, client.ObjectKeyFromObject(short))
	g.Expect(err).To(MatchError(ContainSubstring("integrity key has 4 bytes")))
}
