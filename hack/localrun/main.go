// Command localrun is `make run`: it starts the local control plane and the
// controller, serves a directory as the artifact of the sources a StageSet
// reads (the sample's by default), applies the StageSet, streams the
// rollout, and cleans up on Ctrl-C. With --watch, every change in the
// directory is published as a new revision and rolled out.
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
	exitWhenReady := flag.Bool("exit-when-ready", false, "Stop once the StageSet is Ready.")
	timeout := flag.Duration("timeout", 5*time.Minute, "How long to wait for the StageSet (with --watch, each revision) to be Ready.")
	sourceDir := flag.String("source-dir", "", "Directory served as the artifact of every source the StageSet names (GitRepository, OCIRepository, Bucket or ExternalArtifact), as source-controller would archive it (.git and .sourceignore'd files left out). Default: config/samples/shop.")
	stageSetFile := flag.String("stageset", "", "YAML file of the StageSet to apply; its namespace is created if missing. Default: config/samples/stageset_shop.yaml.")
	watch := flag.Bool("watch", false, "Publish a new revision whenever a file in the source directory changes, and stream its rollout, until Ctrl-C.")
	flag.Parse()
	if *watch && *exitWhenReady {
		fmt.Fprintln(os.Stderr, "make run: --watch and --exit-when-ready exclude each other")
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "make run: unexpected argument %q (flags: --source-dir DIR --stageset FILE --watch)\n", flag.Arg(0))
		os.Exit(2)
	}

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
		SourceDir: *sourceDir, StageSetFile: *stageSetFile, Watch: *watch,
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}
