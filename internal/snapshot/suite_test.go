package snapshot

import (
	"crypto/rand"
	"os"
	"testing"

	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	env *testenv.Environment
	// testKey is the controller's key in these tests.
	testKey = newKey()
)

func newKey() *integrity.Key {
	raw := make([]byte, integrity.KeySize)
	_, _ = rand.Read(raw)
	key, err := integrity.NewKey(raw)
	if err != nil {
		panic(err)
	}
	return key
}

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
