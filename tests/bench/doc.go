// Package bench holds the Go benchmarks of the controller's hot paths, run
// against the real API server of the test bed (internal/testenv). It has no
// code of its own: everything is in its _test.go files, and the numbers they
// produce are recorded in docs/performance.md. The end-to-end benchmark,
// which runs the controller as a process, is the command tests/bench/e2e.
//
//	go test ./tests/bench/ -run '^$' -bench . -benchtime=3x -count=1
package bench
