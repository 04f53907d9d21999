// Command stagesetctl is the command-line client of the StageSet controller.
// The same binary is the Flux CLI plugin flux-stageset and the kubectl
// plugin kubectl-stageset: it reads the name it was called by.
package main

import (
	"os"

	"github.com/stageset/stageset-controller/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[0], os.Args[1:], os.Stdout, os.Stderr))
}
