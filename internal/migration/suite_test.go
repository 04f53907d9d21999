package migration

import (
	"os"
	"testing"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
