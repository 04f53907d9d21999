package action

import (
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// runner returns a Runner for namespace ns with the bed's admin client.
func runner(ns string) *Runner {
	return &Runner{Client: env.Client, Namespace: ns}
}

// duration returns d as an API duration.
func duration(d time.Duration) *metav1.Duration {
	return &metav1.Duration{Duration: d}
}

// configMapRef references the ConfigMap name in the runner's namespace.
func configMapRef(name string) stagesetv1.ObjectReference {
	return stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: name}
}
