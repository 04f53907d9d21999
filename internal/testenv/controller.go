package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildController builds the controller binary of this checkout into dir
// and returns its path, for the tests and benchmarks that run it as a
// process of its own.
func BuildController(dir string) (string, error) {
	bin := filepath.Join(dir, "stageset-controller")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the controller: %w\n%s", err, out)
	}
	return bin, nil
}
