package main

// Reading a page for docs_promises_test.go: the code spans and fenced
// blocks of its Markdown, and the simple commands of its shell lines.

import (
	"path"
	"regexp"
	"strings"
)

// The Markdown of a page: code spans with the line they start on, and
// fenced code blocks with their language and first line.
type mdSpan struct {
	line int
	text string
	// theirs: in a table column about another tool (its header names
	// Helm, Argo CD, Flux or Kustomizations, not StageSet), as in
	// docs/comparisons.md.
	theirs bool
}

type mdBlock struct {
	lang  string
	line  int // of the first line inside the fence
	lines []string
}

var (
	delimiterRow  = regexp.MustCompile(`^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$`)
	otherToolName = regexp.MustCompile(`(?i)helm|argo|flux|kustomization`)
)

// tableColumn is the column of a table row that its text up to here ends
// in: the pipes before it that are not escaped.
func tableColumn(prefix string) int {
	prefix = strings.TrimPrefix(strings.TrimSpace(prefix), "|")
	col := 0
	for i := 0; i < len(prefix); i++ {
		switch prefix[i] {
		case '\\':
			i++
		case '|':
			col++
		}
	}
	return col
}

// tableCells splits a table row at the pipes that are not escaped.
func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	var cells []string
	start := 0
	for i := 0; i < len(row); i++ {
		if row[i] == '\\' {
			i++
			continue
		}
		if row[i] == '|' {
			cells = append(cells, row[start:i])
			start = i + 1
		}
	}
	if rest := row[start:]; strings.TrimSpace(rest) != "" {
		cells = append(cells, rest)
	}
	return cells
}

var fence = regexp.MustCompile("^(\\s*)(`{3,}|~{3,})\\s*([^\\s`]*)")

func scanMarkdown(content string) (spans []mdSpan, blocks []mdBlock) {
	lines := strings.Split(content, "\n")
	var para []string
	paraStart := 0
	var header []string // of the table being read
	flush := func() {
		text := strings.Join(para, "\n")
		for _, s := range codeSpans(text) {
			span := mdSpan{line: paraStart + 1 + strings.Count(text[:s.off], "\n"), text: s.text}
			if header != nil {
				if col := tableColumn(text[:s.off]); col < len(header) {
					h := header[col]
					span.theirs = otherToolName.MatchString(h) && !strings.Contains(strings.ToLower(h), "stageset")
				}
			}
			spans = append(spans, span)
		}
		para = nil
	}
	i := 0
	// Hugo front matter.
	if len(lines) > 0 && strings.TrimSpace(lines[0]) == "---" {
		for i = 1; i < len(lines) && strings.TrimSpace(lines[i]) != "---"; i++ {
		}
		i++
	}
	for ; i < len(lines); i++ {
		line := lines[i]
		if m := fence.FindStringSubmatch(line); m != nil {
			flush()
			indent, marker := len(m[1]), m[2]
			b := mdBlock{lang: strings.ToLower(strings.Trim(m[3], "{}.")), line: i + 2}
			for i++; i < len(lines); i++ {
				t := strings.TrimSpace(lines[i])
				if strings.HasPrefix(t, marker) && strings.Trim(t, marker[:1]) == "" {
					break
				}
				l := lines[i]
				// Content of a fence indented in a list item.
				if len(l)-len(strings.TrimLeft(l, " ")) >= indent {
					l = l[indent:]
				}
				b.lines = append(b.lines, l)
			}
			blocks = append(blocks, b)
			continue
		}
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "|") {
			header = nil
		}
		switch {
		case trimmed == "":
			flush()
		case strings.HasPrefix(trimmed, "|") || strings.HasPrefix(trimmed, "#"):
			// Table rows and headings stand alone.
			flush()
			if !strings.HasPrefix(trimmed, "|") {
				header = nil
			} else if i+1 < len(lines) && delimiterRow.MatchString(lines[i+1]) {
				header = tableCells(trimmed)
			}
			paraStart = i
			para = []string{line}
			flush()
			continue
		default:
			if para == nil {
				paraStart = i
			}
			para = append(para, line)
		}
	}
	flush()
	return spans, blocks
}

type codeSpan struct {
	off  int
	text string
}

// codeSpans finds the code spans of a paragraph, as CommonMark does: a run
// of backticks closed by a run of the same length.
func codeSpans(text string) []codeSpan {
	var out []codeSpan
	run := func(i int) int {
		j := i
		for j < len(text) && text[j] == '`' {
			j++
		}
		return j
	}
	for i := 0; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		open := run(i)
		closing := -1
		for k := open; k < len(text); {
			if text[k] != '`' {
				k++
				continue
			}
			end := run(k)
			if end-k == open-i {
				closing = k
				break
			}
			k = end
		}
		if closing < 0 {
			i = open
			continue
		}
		s := strings.ReplaceAll(text[open:closing], "\n", " ")
		if len(s) > 2 && s[0] == ' ' && s[len(s)-1] == ' ' {
			s = s[1 : len(s)-1]
		}
		// In a table, | is written \| even in code.
		out = append(out, codeSpan{off: i, text: strings.ReplaceAll(s, `\|`, "|")})
		i = closing + (open - i)
	}
	return out
}

// Shell languages of fenced blocks: their lines are commands (or output,
// whose first word is no program of ours).
var shellLangs = map[string]bool{
	"": true, "sh": true, "bash": true, "shell": true, "console": true, "zsh": true, "text": true, "txt": true,
	"plain": true, "plaintext": true, "shell-session": true, "sh-session": true, "terminal": true, "fish": true,
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
var shellPrefixes = map[string]bool{
	"do": true, "then": true, "else": true, "if": true, "while": true, "until": true, "!": true,
	"time": true, "sudo": true, "exec": true, "nohup": true, "command": true, "env": true,
}

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

// shellCommands splits a shell line into simple commands of unquoted
// words: at | & ; ( ) and around $(...) and `...`, without comments and
// redirections. <placeholder> words stay words.
func shellCommands(line string) [][]string {
	var cmds [][]string
	// Command substitutions are commands of their own.
	var b strings.Builder
	inDouble := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			inDouble = !inDouble
			b.WriteByte(c)
		case c == '\\' && i+1 < len(line):
			b.WriteString(line[i : i+2])
			i++
		case c == '\'' && !inDouble:
			// Nothing is substituted in single quotes.
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				b.WriteString(line[i:])
				i = len(line)
				continue
			}
			b.WriteString(line[i : i+j+2])
			i += j + 1
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			depth, j := 1, i+2
			for ; j < len(line) && depth > 0; j++ {
				switch line[j] {
				case '(':
					depth++
				case ')':
					depth--
				}
			}
			end := j
			if depth == 0 {
				end = j - 1
			}
			cmds = append(cmds, shellCommands(line[i+2:end])...)
			b.WriteString("SUBST")
			i = j - 1
		case c == '`':
			j := strings.IndexByte(line[i+1:], '`')
			if j < 0 {
				j = len(line) - i - 1
			}
			cmds = append(cmds, shellCommands(line[i+1:i+1+j])...)
			b.WriteString("SUBST")
			i += j + 1
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()

	var words []string
	var cur strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			cur.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
				inWord = true
			}
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inWord:
			endCmd()
			return cmds
		case strings.IndexByte("|&;()", c) >= 0:
			endCmd()
		case c == '<' && strings.IndexAny(s[i:], " \t>") > 0 && s[i+strings.IndexAny(s[i:], " \t>")] == '>':
			j := strings.IndexByte(s[i:], '>')
			cur.WriteString(s[i : i+j+1])
			inWord = true
			i += j
		case c == '<' || c == '>':
			// A redirection: its file descriptor, operator and target go.
			if inWord && strings.Trim(cur.String(), "0123456789") == "" {
				cur.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(s) && strings.IndexByte("<>&", s[i+1]) >= 0 {
				i++
			}
			for i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
				i++
			}
			for i+1 < len(s) && strings.IndexByte(" \t|&;()<>", s[i+1]) < 0 {
				i++
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// flagArgs returns the arguments that are flags, up to a "--".
func flagArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			out = append(out, a)
		}
	}
	return out
}

// flagName is --name of --name=value, -x of -xvalue.
func flagName(arg string) string {
	if strings.HasPrefix(arg, "--") {
		return strings.SplitN(arg, "=", 2)[0]
	}
	return arg[:2]
}
