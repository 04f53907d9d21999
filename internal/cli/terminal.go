package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/term"
)

// isTerminal tells whether out is an interactive terminal, where progress
// is redrawn in place; anywhere else (a pipe, a file, CI logs) output is
// appended line by line.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// liveBlock is a block of lines at the bottom of a terminal that is
// redrawn in place: each draw moves the cursor back over the lines of the
// previous one and overwrites them.
type liveBlock struct {
	out   io.Writer
	lines int
}

// draw replaces the block with text (lines ended by "\n"). Each line is
// cut to the terminal's width: a line that wrapped would take two rows,
// and the cursor would not go back far enough.
func (b *liveBlock) draw(text string) {
	var s strings.Builder
	if b.lines > 0 {
		fmt.Fprintf(&s, "\x1b[%dA", b.lines) // cursor up to the block's first line
	}
	s.WriteString("\r\x1b[J") // clear from there to the end of the screen
	width := terminalWidth(b.out)
	for _, line := range strings.SplitAfter(text, "\n") {
		s.WriteString(clip(line, width))
	}
	b.lines = strings.Count(text, "\n")
	io.WriteString(b.out, s.String())
}

// terminalWidth is the width of the terminal out is, 0 when unknown.
func terminalWidth(out io.Writer) int {
	f, ok := out.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// clip cuts line (its "\n" kept) to width-1 characters, so that it never
// reaches the last column; width 0 leaves it whole.
func clip(line string, width int) string {
	body, newline := strings.CutSuffix(line, "\n")
	if runes := []rune(body); width > 1 && len(runes) > width-1 {
		body = string(runes[:width-1])
	}
	if newline {
		return body + "\n"
	}
	return body
}

// keep ends the block: what it shows stays, the next draw starts below.
func (b *liveBlock) keep() { b.lines = 0 }

// printable drops the control characters of text written by others (Event
// and condition messages, errors quoting the API), newlines and tabs
// excepted: an escape sequence in a message must not drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// oneLine is a message as one printable line: runs of white space, line
// breaks included, become one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(printable(s)), " ")
}
