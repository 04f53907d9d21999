package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/version"
)

// controllerLabel marks the controller's Deployment, in config/manager and
// in the Helm chart alike.
const controllerLabel = "app.kubernetes.io/name"

// controllerName is the controller's name: the value of controllerLabel on
// its Deployment, and the field manager of its applies, which diff's
// dry-run must use (controller.ControllerName, checked by a test: importing
// the controller package would link the whole controller into the CLI).
const controllerName = "stageset-controller"

// versionTimeout bounds the look-up of the controller: version must answer
// even when the cluster does not.
const versionTimeout = 10 * time.Second

type versionOptions struct {
	clientOnly          bool
	controllerNamespace string
}

func newVersionCommand(k *kubeOptions) *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client version and the version of the controller in the cluster",
		Long: `Print the version of this client and, when the cluster is reachable, the
version of the stageset-controller running there: the image tag of its
Deployment (labelled app.kubernetes.io/name=stageset-controller), looked up in
every namespace, or in --controller-namespace when listing every namespace is
not allowed. With no cluster or no controller it prints the client version
and a warning, and exits 0.`,
		Example: `  stagesetctl version
  stagesetctl version --client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if _, err := fmt.Fprintf(out, "%s: %s\n", cmd.Root().Name(), version.String()); err != nil {
				return err
			}
			if o.clientOnly {
				return nil
			}
			deployments, err := o.controllers(cmd.Context(), k)
			switch {
			case err != nil:
				warn(cmd.ErrOrStderr(), "controller version unknown: %v", explain(err))
			case len(deployments) == 0:
				warn(cmd.ErrOrStderr(), "no %s Deployment found (label %s=%s)", controllerName, controllerLabel, controllerName)
			}
			for _, d := range deployments {
				line := controllerName + ": " + imageVersion(controllerImage(&d))
				if len(deployments) > 1 {
					line += fmt.Sprintf(" (%s/%s)", d.Namespace, d.Name)
				}
				if _, err := fmt.Fprintln(out, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.clientOnly, "client", false, "Print only the client version, do not contact the cluster.")
	cmd.Flags().StringVar(&o.controllerNamespace, "controller-namespace", "stageset-system",
		"Where to look for the controller when listing Deployments of every namespace is not allowed.")
	return cmd
}

// controllers lists the controller Deployments of the cluster.
func (o *versionOptions) controllers(ctx context.Context, k *kubeOptions) ([]appsv1.Deployment, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	c, _, err := k.client()
	if err != nil {
		return nil, err
	}
	var list appsv1.DeploymentList
	selector := client.MatchingLabels{controllerLabel: controllerName}
	err = c.List(ctx, &list, selector)
	if apierrors.IsForbidden(err) {
		err = c.List(ctx, &list, selector, client.InNamespace(o.controllerNamespace))
	}
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// controllerImage is the image of the container named manager, else of the
// first container.
func controllerImage(d *appsv1.Deployment) string {
	containers := d.Spec.Template.Spec.Containers
	for _, c := range containers {
		if c.Name == "manager" {
			return c.Image
		}
	}
	if len(containers) > 0 {
		return containers[0].Image
	}
	return ""
}

// imageVersion is the tag of an image reference; the digest when it has
// none; else the whole reference (an image with neither runs "latest", which
// says nothing about the version).
func imageVersion(image string) string {
	ref, digest, _ := strings.Cut(image, "@")
	// A registry port also has a colon: the tag's is after the last slash.
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	if digest != "" {
		return digest
	}
	if image == "" {
		return "unknown (no container)"
	}
	return image
}

// warn prints a warning the way flux does; it does not change the exit code.
func warn(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "⚠️ "+format+"\n", args...)
}
