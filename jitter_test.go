package main

import (
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/go-logr/logr"
	flag "github.com/spf13/pflag"
)

// Reconciles that end together jitter their requeue at the same time: with
// the process settings of the controller, that is safe (go test -race fails
// here with the jitter fluxcd/pkg/runtime builds by default).
func TestIntervalJitterIsSafeForConcurrentReconciles(t *testing.T) {
	opts := newOptions()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	opts.bindFlags(fs) // the default --interval-jitter-percentage: 5
	if err := setProcessSettings(opts, logr.Discard()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if d := jitter.JitteredIntervalDuration(time.Minute); d < 50*time.Second || d > 70*time.Second {
					t.Errorf("jittered a minute to %s", d)
				}
			}
		})
	}
	wg.Wait()
}
