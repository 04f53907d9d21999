package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// getStageSet reads a StageSet, turning NotFound into the one line a user
// expects.
func getStageSet(ctx context.Context, c client.Reader, key client.ObjectKey) (*stagesetv1.StageSet, error) {
	obj := &stagesetv1.StageSet{}
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("StageSet %s not found", key)
		}
		return nil, err
	}
	return obj, nil
}

// checkOutput refuses an -o value that is not empty (the default) nor one
// of formats.
func checkOutput(value string, formats ...string) error {
	if value == "" || slices.Contains(formats, value) {
		return nil
	}
	list := formats[len(formats)-1]
	if len(formats) > 1 {
		list = strings.Join(formats[:len(formats)-1], ", ") + " or " + list
	}
	return fmt.Errorf("--output must be %s, got %q", list, value)
}

// printStructured writes data as YAML or, for "json", indented JSON.
func printStructured(out io.Writer, format string, data any) error {
	var b []byte
	var err error
	if format == "yaml" {
		b, err = yaml.Marshal(data)
	} else {
		b, err = json.MarshalIndent(data, "", "  ")
		b = append(b, '\n')
	}
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// ago is how kubectl prints an age ("5m", "3h10m", "2d") with " ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return since(now, t) + " ago"
}

// since is the age of t as kubectl prints it.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// table writes aligned columns two spaces apart, like get. Unlike
// tabwriter it remembers its column widths, so that rows printed later
// (events --watch) stay aligned with the ones before.
type table struct {
	widths []int
	rows   [][]string
}

func newTable(header ...string) *table {
	t := &table{widths: make([]int, len(header))}
	t.add(header...)
	return t
}

func (t *table) add(row ...string) {
	for i, cell := range row {
		if i < len(t.widths) {
			t.widths[i] = max(t.widths[i], len([]rune(cell)))
		}
	}
	t.rows = append(t.rows, row)
}

// print writes the rows added since the last print.
func (t *table) print(out io.Writer) error {
	var b strings.Builder
	for _, row := range t.rows {
		for i, cell := range row {
			if i == len(row)-1 {
				b.WriteString(cell)
				break
			}
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", t.widths[i]-len([]rune(cell))+2))
		}
		b.WriteString("\n")
	}
	t.rows = nil
	_, err := io.WriteString(out, b.String())
	return err
}
