package faults

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// scrape reads the controller's metrics: every series by its name and
// labels as exposed (`name{labels}`).
func scrape(metricsAddr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, scanner.Err()
}

// sum adds the series whose key starts with prefix and contains every one
// of the label matches.
func sum(metrics map[string]float64, prefix string, matches ...string) float64 {
	var total float64
	for k, v := range metrics {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		all := true
		for _, m := range matches {
			all = all && strings.Contains(k, m)
		}
		if all {
			total += v
		}
	}
	return total
}

// processSample is what the controller's metrics say of its process.
type processSample struct {
	goroutines int
	rss        float64 // MiB
}

func sampleProcess(metricsAddr string) (processSample, error) {
	m, err := scrape(metricsAddr)
	if err != nil {
		return processSample{}, err
	}
	return processSample{goroutines: int(m["go_goroutines"]), rss: m["process_resident_memory_bytes"] / (1 << 20)}, nil
}

func byGoroutines(a, b processSample) int { return a.goroutines - b.goroutines }

func byRSS(a, b processSample) int {
	switch {
	case a.rss < b.rss:
		return -1
	case a.rss > b.rss:
		return 1
	}
	return 0
}

// summarize is the median of each figure.
func summarize(samples []processSample) processSample {
	g := make([]int, len(samples))
	r := make([]float64, len(samples))
	for i, s := range samples {
		g[i], r[i] = s.goroutines, s.rss
	}
	slices.Sort(g)
	slices.Sort(r)
	return processSample{goroutines: g[len(g)/2], rss: r[len(r)/2]}
}
