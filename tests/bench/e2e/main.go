// Command e2e is the end-to-end benchmark of the controller (issue 15): the
// controller binary of this checkout runs as a separate process against the
// test API server (internal/testenv; the mixed rollout against the local
// control plane of internal/localcluster), artifacts are served on loopback
// as source-controller serves them, progress is followed with watches, and
// every request of the controller is counted by a proxy in front of the API
// server. Each scenario is compared with a plain server-side-apply loop of
// the same objects in the same run where there is one.
//
//	go run ./tests/bench/e2e -out bin/bench/e2e.json -md bin/bench/e2e.md
//
// -smoke runs tiny sizes once (TestSmoke does, inside `make test`); nothing
// in it asserts a time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// sizes are the sizes of the scenarios.
type sizes struct {
	// Stages × PerStage ConfigMaps: the ordered rollout, its hand-offs and
	// its steady state.
	Stages   int `json:"stages"`
	PerStage int `json:"perStage"`
	// Large is the number of ConfigMaps of the one-stage rollout.
	Large int `json:"largeStage"`
	// Scale are the numbers of StageSets of the scale scenario, each run
	// with every --concurrent of ScaleConcurrent.
	Scale           []int `json:"scale"`
	ScaleConcurrent []int `json:"scaleConcurrent"`
	// Sources is the number of sources the StageSets of the scale and
	// storm scenarios follow.
	Sources int `json:"sources"`
	// Storm is the number of StageSets of the source storm.
	Storm int `json:"storm"`
	// MixedStages × MixedPerStage Services, ServiceAccounts and
	// Deployments: the ordered rollout on the local control plane.
	MixedStages   int `json:"mixedStages"`
	MixedPerStage int `json:"mixedPerStage"`
}

var (
	fullSizes  = sizes{Stages: 5, PerStage: 200, Large: 1000, Scale: []int{200, 1000}, ScaleConcurrent: []int{4, 10}, Sources: 20, Storm: 200, MixedStages: 5, MixedPerStage: 200}
	smokeSizes = sizes{Stages: 2, PerStage: 5, Large: 10, Scale: []int{5}, ScaleConcurrent: []int{4}, Sources: 2, Storm: 5, MixedStages: 2, MixedPerStage: 3}
)

// scenarioNames are the scenarios in the order they run: rollout is (a),
// (b) and (d); large is (c); scale is (e); storm is (f); mixed is (a) and
// (b) with Services, ServiceAccounts and Deployments, on the local control
// plane (`make localbin`).
var scenarioNames = []string{"rollout", "large", "scale", "storm", "mixed"}

// options are the command line of the benchmark.
type options struct {
	scenarios []string
	reps      int
	sizes     sizes
	jsonPath  string
	mdPath    string
	// keep keeps the working directory (the controllers' logs).
	keep bool
	log  io.Writer
}

// bench is the state shared by the scenarios of one benchmark run.
type bench struct {
	env     *apiServer
	client  client.Client
	tracker *tracker
	binary  string
	dir     string
	reps    int
	sizes   sizes
	report  *report
	log     io.Writer
	// dropNamespaces makes cleanup delete a repetition's namespaces and
	// wait until they are gone: on the local control plane, controllers
	// would go on working on what was left (ReplicaSets, pods).
	dropNamespaces bool
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func main() {
	var (
		o         = options{log: os.Stderr}
		scenarios = flag.String("scenarios", strings.Join(scenarioNames, ","), "the scenarios to run, comma-separated: "+strings.Join(scenarioNames, ", "))
		smoke     = flag.Bool("smoke", false, "tiny sizes and one repetition, to check the benchmark works")
	)
	flag.IntVar(&o.reps, "reps", 3, "the repetitions of each scenario")
	flag.StringVar(&o.jsonPath, "out", "bench.json", "the JSON file of every measurement")
	flag.StringVar(&o.mdPath, "md", "bench.md", "the Markdown table of the results")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory with each controller process's log")
	flag.Func("controller-args", "more flags for every controller process, space-separated, after the benchmark's own (a later flag wins), e.g. \"--enable-pprof --metrics-bind-address=127.0.0.1:8080\" to profile a scenario", func(v string) error {
		extraControllerArgs = append(extraControllerArgs, strings.Fields(v)...)
		return nil
	})
	flag.Parse()
	o.scenarios = strings.Split(*scenarios, ",")
	o.sizes = fullSizes
	if *smoke {
		o.sizes, o.reps = smokeSizes, 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	_ = writeMarkdown(os.Stdout, rep)
}

// run starts the test bed, builds the controller, runs the scenarios and
// writes the JSON and Markdown files.
func run(ctx context.Context, o options) (*report, error) {
	for _, s := range o.scenarios {
		if !slices.Contains(scenarioNames, s) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(scenarioNames, ", "))
		}
	}
	if o.reps < 1 {
		return nil, errors.New("-reps must be at least 1")
	}
	rep := &report{
		Started: time.Now(), Command: strings.Join(os.Args, " "), Sizes: o.sizes, Reps: o.reps,
		KubeVer: testenv.KubernetesVersion, GoVersion: runtime.Version(),
		Machine: machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Load1: loadAverage()},
	}
	dir, err := os.MkdirTemp("", "stageset-e2e-bench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(o.log, "controller logs and kubeconfigs are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// The build and the test bed start side by side.
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	go func() {
		bin, err := testenv.BuildController(dir)
		build <- built{bin, err}
	}()
	env, err := testenv.Start()
	bb := <-build
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	if bb.err != nil {
		return nil, bb.err
	}
	bin := bb.bin
	srv := &apiServer{Config: env.Config, Scheme: env.Scheme, Artifacts: env.Artifacts}
	c, err := adminClient(srv)
	if err != nil {
		return nil, err
	}
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	t, err := startTracker(trackCtx, srv, configMapKind)
	if err != nil {
		return nil, err
	}
	b := &bench{env: srv, client: c, tracker: t, binary: bin, dir: dir, reps: o.reps, sizes: o.sizes, report: rep, log: o.log}
	if err := b.runScenarios(ctx, o.scenarios); err != nil {
		return nil, err
	}
	rep.Finished = time.Now()
	if err := writeJSON(o.jsonPath, rep); err != nil {
		return nil, err
	}
	md, err := os.Create(o.mdPath)
	if err != nil {
		return nil, err
	}
	defer md.Close()
	return rep, writeMarkdown(md, rep)
}

func (b *bench) runScenarios(ctx context.Context, scenarios []string) error {
	s := b.sizes
	if slices.Contains(scenarios, "rollout") {
		name := fmt.Sprintf("ordered rollout %d×%d", s.Stages, s.PerStage)
		if err := b.runRollout(ctx, rollout{name: name, stages: s.Stages, count: s.PerStage, steady: true}); err != nil {
			return err
		}
	}
	if slices.Contains(scenarios, "large") {
		name := fmt.Sprintf("one large stage 1×%d", s.Large)
		if err := b.runRollout(ctx, rollout{name: name, stages: 1, count: s.Large}); err != nil {
			return err
		}
	}
	if slices.Contains(scenarios, "scale") {
		for _, n := range s.Scale {
			for _, concurrent := range s.ScaleConcurrent {
				if err := b.runScale(ctx, n, concurrent); err != nil {
					return err
				}
			}
		}
	}
	if slices.Contains(scenarios, "storm") {
		if err := b.runStorm(ctx, s.Storm); err != nil {
			return err
		}
	}
	if slices.Contains(scenarios, "mixed") {
		return b.runMixed(ctx)
	}
	return nil
}

// mustUsage reads the process's usage; zero when it cannot be read.
func mustUsage(p *controllerProcess) usage {
	u, _ := p.Usage()
	return u
}

// since is the usage between before and u: CPU time spent in between,
// and the peak RSS of the process so far.
func (u usage) since(before usage) usage {
	return usage{PeakRSS: u.PeakRSS, CPU: u.CPU - before.CPU}
}

// loadAverage is the one-minute load average, when Linux tells it.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Fields(string(data))[0]
}
