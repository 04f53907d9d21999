// Command kubectl is kubectl's own main (k8s.io/kubernetes cmd/kubectl),
// built from the k8s.io/kubectl module for the plugin tests: its plugin
// handler and plugin completion are the real ones.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
