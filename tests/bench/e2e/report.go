package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// report is everything a benchmark run measured, written as JSON.
type report struct {
	Started   time.Time `json:"started"`
	Command   string    `json:"command"`
	Machine   machine   `json:"machine"`
	Sizes     sizes     `json:"sizes"`
	Reps      int       `json:"repetitions"`
	Results   []*result `json:"results"`
	Finished  time.Time `json:"finished"`
	KubeVer   string    `json:"kubernetesVersion"`
	GoVersion string    `json:"goVersion"`
}

type machine struct {
	CPUs   int    `json:"cpus"`
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	Load1  string `json:"loadAverage,omitempty"`
	Kernel string `json:"kernel,omitempty"`
}

// result is one scenario: one entry per repetition in each slice (per
// stage boundary of every repetition for hand-offs).
type result struct {
	Scenario string `json:"scenario"`
	// Objects is what requests are divided by: the objects of the run.
	Objects         int       `json:"objects"`
	Seconds         []float64 `json:"seconds"`
	P90             float64   `json:"p90Seconds,omitempty"`
	BaselineSeconds []float64 `json:"baselineSeconds,omitempty"`
	PeakRSSMiB      []float64 `json:"peakRSSMiB,omitempty"`
	CPUSeconds      []float64 `json:"cpuSeconds,omitempty"`
	// Requests are the controller's requests, by "<verb> <resource>".
	Requests         []requestCounts `json:"requests,omitempty"`
	BaselineRequests []requestCounts `json:"baselineRequests,omitempty"`
	// RolloutSeconds (scale) is the median of status.history[0].duration.
	RolloutSeconds []float64 `json:"rolloutSecondsP50,omitempty"`
	// StartupSeconds (scale) is the time from the start of the process to
	// its first watch of StageSets, part of Seconds.
	StartupSeconds []float64 `json:"startupSeconds,omitempty"`
	// SecondStormSeconds (storm) is the time of the rev-3 then rev-4 storm.
	SecondStormSeconds []float64 `json:"secondStormSeconds,omitempty"`
	NoLostUpdate       bool      `json:"noLostUpdate,omitempty"`

	// BaselineApplyOnlySeconds (mixed) is the plain loop, when
	// BaselineSeconds waits for each stage's Deployments as a StageSet does.
	BaselineApplyOnlySeconds []float64 `json:"baselineApplyOnlySeconds,omitempty"`
}

func (r *result) add(d time.Duration, u usage, reqs requestCounts) {
	r.Seconds = append(r.Seconds, d.Seconds())
	r.PeakRSSMiB = append(r.PeakRSSMiB, float64(u.PeakRSS)/1024)
	r.CPUSeconds = append(r.CPUSeconds, u.CPU)
	r.Requests = append(r.Requests, reqs)
}

func (r *result) addBaseline(d time.Duration, reqs requestCounts) {
	r.BaselineSeconds = append(r.BaselineSeconds, d.Seconds())
	r.BaselineRequests = append(r.BaselineRequests, reqs)
}

// requestsPerObject is the median over repetitions.
func (r *result) requestsPerObject() float64 {
	var per []float64
	for _, c := range r.Requests {
		per = append(per, float64(c.Total())/float64(r.Objects))
	}
	return percentile(per, 0.5)
}

// percentile is the nearest-rank percentile of v (the median for 0.5 is
// the mean of the middle two); NaN when v is empty.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if p == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func writeJSON(path string, rep *report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// writeMarkdown writes the table: medians over repetitions, with the
// spread, the baseline and the ratio of the medians.
func writeMarkdown(w io.Writer, rep *report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %d CPUs, load %s, %s, kube-apiserver %s, %d repetition(s).\n\n",
		rep.Started.UTC().Format(time.RFC3339), rep.Machine.CPUs, rep.Machine.Load1, rep.GoVersion, rep.KubeVer, rep.Reps)
	b.WriteString("| scenario | median | min–max | baseline | ratio | peak RSS MiB | CPU s | requests/object |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Results {
		median := percentile(r.Seconds, 0.5)
		cells := []string{r.Scenario, duration(median),
			duration(slices.Min(r.Seconds)) + "–" + duration(slices.Max(r.Seconds)), "", "", "", "", ""}
		if len(r.BaselineSeconds) > 0 {
			base := percentile(r.BaselineSeconds, 0.5)
			cells[3] = duration(base)
			cells[4] = fmt.Sprintf("%.1f×", median/base)
		}
		if r.P90 > 0 {
			cells[0] += fmt.Sprintf(" (p90 %s)", duration(r.P90))
		}
		if len(r.PeakRSSMiB) > 0 {
			cells[5] = fmt.Sprintf("%.0f", percentile(r.PeakRSSMiB, 0.5))
			cells[6] = fmt.Sprintf("%.1f", percentile(r.CPUSeconds, 0.5))
		}
		if len(r.Requests) > 0 {
			cells[7] = fmt.Sprintf("%.2f", r.requestsPerObject())
		}
		if len(r.RolloutSeconds) > 0 {
			cells[0] += fmt.Sprintf(" (own rollout p50 %s)", duration(percentile(r.RolloutSeconds, 0.5)))
		}
		if r.NoLostUpdate {
			cells[0] += " (no lost update)"
		}
		if len(r.BaselineApplyOnlySeconds) > 0 {
			cells[0] += fmt.Sprintf(" (baseline waits for each stage's Deployments; apply only %s)",
				duration(percentile(r.BaselineApplyOnlySeconds, 0.5)))
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// duration formats seconds as ms below one second.
func duration(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	default:
		return fmt.Sprintf("%.2f s", s)
	}
}
