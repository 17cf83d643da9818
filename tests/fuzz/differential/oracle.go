// Differential oracle (see README.md): for each input file, print what
// buildkit's code makes of it: the parser's dump, line ranges and heredocs,
// the shell lexer's word or words, or a .dockerignore match.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func main() {
	mode := os.Args[1]
	for _, f := range os.Args[2:] {
		data, _ := os.ReadFile(f)
		switch mode {
		case "parse":
			res, err := parser.Parse(bytes.NewReader(data))
			if err != nil {
				fmt.Printf("ERROR\n")
			} else {
				fmt.Printf("%s\n", res.AST.Dump())
				for _, c := range res.AST.Children {
					fmt.Printf("L %d %d\n", c.StartLine, c.EndLine)
					n := c
					if strings.EqualFold(n.Value, "onbuild") && n.Next != nil && len(n.Next.Children) > 0 {
						n = n.Next.Children[0]
					}
					for _, h := range c.Heredocs {
						fmt.Printf("H %q %q %v %v %d\n", h.Name, h.Content, h.Expand, h.Chomp, h.FileDescriptor)
					}
				}
			}
		case "word", "words":
			env := shell.EnvsFromSlice([]string{"A=1", "B=", "PATH=/usr/bin:/bin", "E", "SP=a  b "})
			lex := shell.NewLex('\\')
			if len(data) > 0 {
				if data[0]&1 != 0 {
					lex = shell.NewLex('`')
				}
				lex.RawQuotes = data[0]&2 != 0
				lex.RawEscapes = data[0]&4 != 0
				lex.SkipProcessQuotes = data[0]&8 != 0
				lex.SkipUnsetEnv = data[0]&16 != 0
				data = data[1:]
			}
			if mode == "word" {
				w, _, err := lex.ProcessWord(string(data), env)
				if err != nil {
					fmt.Printf("ERROR\n")
				} else {
					fmt.Printf("%q\n", w)
				}
			} else {
				w, err := lex.ProcessWords(string(data), env)
				if err != nil {
					fmt.Printf("ERROR\n")
				} else {
					fmt.Printf("%q\n", w)
				}
			}
		case "ignore":
			// first line: path to test, rest: the .dockerignore
			parts := bytes.SplitN(data, []byte("\n"), 2)
			if len(parts) < 2 {
				fmt.Printf("SKIP\n")
				continue
			}
			pats, err := ignorefile.ReadAll(bytes.NewReader(parts[1]))
			if err != nil {
				fmt.Printf("ERROR\n")
				continue
			}
			pm, err := patternmatcher.New(pats)
			if err != nil {
				fmt.Printf("ERROR\n")
				continue
			}
			m, err := pm.MatchesOrParentMatches(string(parts[0]))
			if err != nil {
				fmt.Printf("ERROR\n")
				continue
			}
			fmt.Printf("%v\n", m)
		}
	}
}
