package build

import (
	"os"
	"testing"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// env is the API server bed; only the LoadVariables tests use it, the build
// tests are pure file-based tests.
var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
