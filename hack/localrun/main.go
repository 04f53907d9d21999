// Command localrun is `make run`: it starts the local control plane, the
// controller and the sample StageSet, streams the rollout, and cleans up on
// Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
)

func main() {
	exitWhenReady := flag.Bool("exit-when-ready", false, "Stop once the sample StageSet is Ready.")
	timeout := flag.Duration("timeout", 5*time.Minute, "How long to wait for the sample StageSet to be Ready.")
	flag.Parse()

	root, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = localcluster.RunDemo(ctx, localcluster.DemoOptions{
		Root: root, Scheme: scheme.New(), Out: os.Stdout,
		ExitWhenReady: *exitWhenReady, Timeout: *timeout,
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}
