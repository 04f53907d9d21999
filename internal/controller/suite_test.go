package controller

import (
	"context"
	"os"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, func(mgr ctrl.Manager) error {
		r := &StageSetReconciler{Client: mgr.GetClient(), StatusManager: StatusManager}
		return r.SetupWithManager(context.Background(), mgr, Options{})
	}))
}
