// Package stagesetfile reads a StageSet from a YAML file the way a
// compiler reads source: every problem (YAML syntax, unknown fields, wrong
// types, the validation rules of the admission webhook) is reported as
// "FILE:LINE: message". make run (--stageset) and stagesetctl build -f use it.
package stagesetfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/validation"
)

// Load reads the one StageSet of the YAML file at path and checks it with
// the rules the admission webhook applies (internal/validation), so that a
// mistake is reported before anything runs. Every problem is an error of
// its own, "NAME:LINE: message" with name the path as the user wrote it,
// the way compilers report them, so an editor jumps to it. A StageSet with
// no namespace gets defaultNamespace, as kubectl gives it the context's.
func Load(path, name, defaultNamespace string) (*stagesetv1.StageSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("StageSet file: %w", err)
	}
	doc, err := parseOneDocument(name, data)
	if err != nil {
		return nil, err
	}
	obj := &stagesetv1.StageSet{}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		// The JSON decoder behind sigs.k8s.io/yaml names neither the line
		// nor, for a value of the wrong type, the field: find the entry
		// whose removal makes this error go away.
		return nil, fileError(name, culpritLine(doc, err.Error()), strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: "))
	}
	if obj.APIVersion != stagesetv1.GroupVersion.String() || obj.Kind != stagesetv1.StageSetKind {
		return nil, fileError(name, lineOf(doc, "kind"), fmt.Sprintf("apiVersion %q kind %q: expected apiVersion %s and kind %s",
			obj.APIVersion, obj.Kind, stagesetv1.GroupVersion, stagesetv1.StageSetKind))
	}
	if obj.Namespace == "" {
		obj.Namespace = defaultNamespace
	}
	var errs []error
	for _, fe := range validation.StageSet(obj, validation.Options{}) {
		errs = append(errs, fileError(name, lineOf(doc, fe.Field), fe.Error()))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return obj, nil
}

// fileError formats a problem of the file at a line (unknown when 0).
func fileError(path string, line int, message string) error {
	if line > 0 {
		return fmt.Errorf("%s:%d: %s", path, line, message)
	}
	return fmt.Errorf("%s: %s", path, message)
}

// yamlLine is how the YAML parser states where it stopped.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseOneDocument parses the file into a node tree, keeping the line of
// every entry, and refuses a file with no document or more than one.
func parseOneDocument(path string, data []byte) (*yamlv3.Node, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs []*yamlv3.Node
	for {
		doc := &yamlv3.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ := strconv.Atoi(m[1])
				return nil, fileError(path, line, m[2])
			}
			return nil, fileError(path, 0, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		// "---" with nothing after it is an empty document, not a StageSet.
		if len(doc.Content) > 0 && doc.Content[0].ShortTag() != "!!null" {
			docs = append(docs, doc)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, fileError(path, 0, "no StageSet in the file")
	case len(docs) > 1:
		return nil, fileError(path, docs[1].Content[0].Line, "a second YAML document: the file must hold one StageSet only")
	}
	return docs[0], nil
}

// culpritLine returns the line of the smallest entry of doc whose removal
// changes the decoding error msg, or 0 when none does: decoding stops at
// the first bad value, so removing the entry that holds it (and only that)
// changes the error.
func culpritLine(doc *yamlv3.Node, msg string) int {
	decodeError := func() string {
		data, err := yamlv3.Marshal(doc)
		if err != nil {
			return err.Error()
		}
		if err := yaml.UnmarshalStrict(data, &stagesetv1.StageSet{}); err != nil {
			return err.Error()
		}
		return ""
	}
	var find func(n *yamlv3.Node) int
	find = func(n *yamlv3.Node) int {
		step := 1
		switch n.Kind {
		case yamlv3.DocumentNode, yamlv3.SequenceNode:
		case yamlv3.MappingNode:
			step = 2 // key, value
		default:
			return 0
		}
		for i := 0; i+step <= len(n.Content); i += step {
			saved := n.Content
			n.Content = slices.Concat(saved[:i], saved[i+step:])
			changed := decodeError() != msg
			n.Content = saved
			if changed {
				if line := find(saved[i+step-1]); line > 0 {
					return line
				}
				return saved[i].Line
			}
		}
		return 0
	}
	return find(doc)
}

// fieldStep is one step of a field path as internal/validation writes it:
// spec.stages[1].path, spec.substitute[KEY].
var fieldStep = regexp.MustCompile(`([^.\[\]]+)|\[([^\]]*)\]`)

// lineOf returns the line of the entry at the field path in doc; for a
// path that is not in the file (a required field left out), the line of
// its deepest ancestor that is.
func lineOf(doc *yamlv3.Node, path string) int {
	if len(doc.Content) == 0 {
		return 0
	}
	n, line := doc.Content[0], doc.Content[0].Line
	for _, m := range fieldStep.FindAllStringSubmatch(path, -1) {
		var next *yamlv3.Node
		switch {
		case n.Kind == yamlv3.MappingNode:
			key := m[1] + m[2]
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next, line = n.Content[i+1], n.Content[i].Line
					break
				}
			}
		case n.Kind == yamlv3.SequenceNode:
			if i, err := strconv.Atoi(m[2]); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}
