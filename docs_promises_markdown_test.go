package main

// Reading a page for docs_promises_test.go: its code spans and fenced
// blocks (internal/testenv/markdown), and the simple commands of its shell
// (mvdan.cc/sh).

import (
	"path"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	"github.com/stageset/stageset-controller/internal/testenv/markdown"
)

// shellCmd is a simple command: the line it starts on, its words unquoted
// (a $VAR or $(...) is "x") without redirections and assignments before it.
type shellCmd struct {
	line  int
	words []string
}

// A <placeholder> the shell would take for redirections.
var placeholder = regexp.MustCompile(`<([A-Za-z][\w-]*)>`)

// shellCommands parses shell text into its simple commands, those of
// $(...) included. A line that is no valid shell is one command of the
// words between its blanks.
func shellCommands(src string) []shellCmd {
	file, err := syntax.NewParser().Parse(strings.NewReader(placeholder.ReplaceAllString(src, "_${1}_")), "")
	if err != nil && !strings.Contains(src, "\n") {
		return []shellCmd{{line: 1, words: strings.Fields(src)}}
	}
	if err != nil { // output among the commands, say: line by line
		var out []shellCmd
		for i, l := range strings.Split(src, "\n") {
			for _, c := range shellCommands(l) {
				out = append(out, shellCmd{line: i + 1, words: c.words})
			}
		}
		return out
	}
	var out []shellCmd
	syntax.Walk(file, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok && len(call.Args) > 0 {
			c := shellCmd{line: int(call.Pos().Line())}
			for _, w := range call.Args {
				c.words = append(c.words, wordText(w.Parts))
			}
			out = append(out, c)
		}
		return true
	})
	return out
}

// wordText is a shell word as written, quotes removed and expansions "x".
func wordText(parts []syntax.WordPart) string {
	var b strings.Builder
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			b.WriteString(wordText(p.Parts))
		default:
			b.WriteString("x")
		}
	}
	return b.String()
}

// isPlaceholder tells a <placeholder> word as shellCommands leaves it, or
// an ellipsis.
func isPlaceholder(word string) bool {
	return word == "…" || word == "..." || len(word) > 2 && strings.HasPrefix(word, "_") && strings.HasSuffix(word, "_")
}

// Shell languages of fenced blocks: their lines are commands (or output,
// whose first word is no program of ours). In console sessions only the
// lines after a "$ " prompt are.
var (
	shellLangs = map[string]bool{
		"": true, "sh": true, "bash": true, "shell": true, "zsh": true, "text": true, "txt": true,
		"plain": true, "plaintext": true, "fish": true,
	}
	consoleLangs = map[string]bool{"console": true, "shell-session": true, "sh-session": true, "terminal": true}
	prompt       = regexp.MustCompile(`^\s*\$\s+`)
)

// shellScript is the script of a shell block: prompts dropped, and in a
// console session the output lines blank (so lines keep their numbers).
func shellScript(b markdown.Block) string {
	lines := make([]string, len(b.Lines))
	continued := false
	for i, l := range b.Lines {
		if !prompt.MatchString(l) && consoleLangs[b.Lang] && !continued {
			continue
		}
		lines[i] = prompt.ReplaceAllString(l, "")
		continued = strings.HasSuffix(l, `\`)
	}
	return strings.Join(lines, "\n")
}

type progKind int

const (
	progUnknown progKind = iota
	progForeign
	progCLI
	progController
	progLocalrun
	progMake
)

// Words that run the command after them.
var shellPrefixes = map[string]bool{"time": true, "sudo": true, "exec": true, "nohup": true, "command": true, "env": true}

// classify tells which program a simple command runs, how the page calls
// it, and its arguments.
func classify(words []string) (kind progKind, prog string, args []string) {
	for len(words) > 0 && (shellVar.MatchString(words[0]) || shellPrefixes[words[0]]) {
		words = words[1:]
	}
	if len(words) == 0 {
		return progUnknown, "", nil
	}
	base := path.Base(words[0])
	switch {
	case base == "stagesetctl" || base == "flux-stageset" || base == "kubectl-stageset":
		return progCLI, words[0], words[1:]
	case (base == "flux" || base == "kubectl") && len(words) > 1 && words[1] == "stageset":
		return progCLI, words[0] + " stageset", words[2:]
	case base == "stageset-controller":
		return progController, words[0], words[1:]
	case base == "make":
		return progMake, "make", words[1:]
	case base == "go" && len(words) > 2 && words[1] == "run":
		for i, w := range words[2:] {
			if strings.HasPrefix(w, "-") {
				continue
			}
			switch strings.TrimSuffix(w, "/") {
			case ".":
				return progController, "go run .", words[3+i:]
			case "./cmd/stagesetctl":
				return progCLI, "go run ./cmd/stagesetctl", words[3+i:]
			case "./hack/localrun":
				return progLocalrun, "go run ./hack/localrun", words[3+i:]
			}
			break
		}
	}
	if foreignPrograms[base] {
		return progForeign, words[0], words[1:]
	}
	return progUnknown, words[0], words[1:]
}
