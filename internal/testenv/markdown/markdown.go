// Package markdown reads the code of Markdown pages for the tests of the
// documentation (the docs promises test, tests/docs): code spans with the
// header of their table column, and fenced code blocks, with their lines.
// It parses with goldmark (CommonMark and GitHub's tables), the parser Hugo
// builds the site with.
package markdown

import (
	"strings"

	"github.com/yuin/goldmark"
	gast "github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"
)

// Span is a code span and the line it starts on.
type Span struct {
	Line int
	Text string
	// Header is that of the table column the span is in, if any.
	Header string
}

// Block is a fenced code block: its language (lower case), the line of its
// first line, and its lines, without the indentation of the fence.
type Block struct {
	Lang  string
	Line  int
	Lines []string
}

var parser = goldmark.New(goldmark.WithExtensions(extension.Table))

// Read returns the code spans and fenced code blocks of a page.
func Read(page string) (spans []Span, blocks []Block) {
	src := []byte(page)
	lineAt := func(offset int) int { return 1 + strings.Count(page[:offset], "\n") }
	doc := parser.Parser().Parse(text.NewReader(src))
	_ = gast.Walk(doc, func(n gast.Node, entering bool) (gast.WalkStatus, error) {
		if !entering {
			return gast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *gast.CodeSpan:
			s := Span{Text: strings.ReplaceAll(plainText(n, src), "\n", " "), Header: columnHeader(n, src)}
			if t, ok := n.FirstChild().(*gast.Text); ok {
				s.Line = lineAt(t.Segment.Start)
			}
			spans = append(spans, s)
			return gast.WalkSkipChildren, nil
		case *gast.FencedCodeBlock:
			if n.Lines().Len() == 0 {
				return gast.WalkContinue, nil
			}
			b := Block{Lang: strings.ToLower(string(n.Language(src))), Line: lineAt(n.Lines().At(0).Start)}
			for i := 0; i < n.Lines().Len(); i++ {
				seg := n.Lines().At(i)
				b.Lines = append(b.Lines, strings.TrimRight(string(seg.Value(src)), "\n"))
			}
			blocks = append(blocks, b)
		}
		return gast.WalkContinue, nil
	})
	return spans, blocks
}

// plainText is the text of a node's descendants.
func plainText(n gast.Node, src []byte) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *gast.Text:
			b.Write(c.Segment.Value(src))
		case *gast.String:
			b.Write(c.Value)
		default:
			b.WriteString(plainText(c, src))
		}
	}
	return b.String()
}

// columnHeader is the header of the table column a node is in, or "".
func columnHeader(n gast.Node, src []byte) string {
	for ; n != nil; n = n.Parent() {
		if _, ok := n.(*east.TableCell); !ok {
			continue
		}
		col := 0
		for c := n.PreviousSibling(); c != nil; c = c.PreviousSibling() {
			col++
		}
		header := n.Parent().Parent().FirstChild() // row → table → header row
		for c := header.FirstChild(); c != nil; c = c.NextSibling() {
			if col == 0 {
				return plainText(c, src)
			}
			col--
		}
	}
	return ""
}
