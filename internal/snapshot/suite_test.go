package snapshot

import (
	"os"
	"testing"

	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	env *testenv.Environment
	// testKey is the controller's key in these tests.
	testKey = integrity.NewRandomKey()
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
