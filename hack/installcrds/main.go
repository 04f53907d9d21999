// Command installcrds server-side applies the CRDs in the given folders to the
// cluster of the current kubeconfig, so `make run` needs no kubectl.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := install(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "installcrds:", err)
		os.Exit(1)
	}
}

func install(ctx context.Context, dirs []string) error {
	if len(dirs) == 0 {
		return fmt.Errorf("usage: installcrds DIR...")
	}
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return err
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict(data, crd); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			if err := c.Patch(ctx, crd, client.Apply, client.FieldOwner("stageset-installcrds"), client.ForceOwnership); err != nil {
				return fmt.Errorf("applying %s: %w", crd.Name, err)
			}
			fmt.Println("applied", crd.Name)
		}
	}
	return nil
}
