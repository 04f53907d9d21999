// Command stagesetctl is the command-line client of the StageSet controller.
// It is also installable as the kubectl plugin kubectl-stageset.
package main

import (
	"fmt"
	"os"

	"github.com/stageset/stageset-controller/internal/cli"
)

func main() {
	if err := cli.NewRootCommand(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
