#!/bin/sh
# Build the differential pair into /tmp/sw-diff: `oracle` (buildkit's own
# parser, shell lexer and moby/patternmatcher, compiled from checkouts given
# as BUILDKIT_SRC and PATTERNMATCHER_SRC) and `driver` (slipway's code).
# Needs the Debian packages golang-go and golang-github-pkg-errors-dev (not
# project dependencies: this is a developer tool, run by hand). Go 1.19 from
# Debian lacks a few newer library calls buildkit uses; they are patched in
# the temporary copy only.
set -eu
: "${BUILDKIT_SRC:?checkout of github.com/moby/buildkit}"
: "${PATTERNMATCHER_SRC:?checkout of github.com/moby/patternmatcher}"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=/tmp/sw-diff
gp=$out/gopath/src/github.com/moby
rm -rf "$out"
mkdir -p "$gp/buildkit/frontend/dockerfile" "$gp/buildkit/util/stack" "$gp/patternmatcher" \
         "$out/gopath/src/oracle"
for d in parser shell command; do
        mkdir -p "$gp/buildkit/frontend/dockerfile/$d"
        cp "$BUILDKIT_SRC/frontend/dockerfile/$d/"*.go "$gp/buildkit/frontend/dockerfile/$d/"
done
rm -f "$gp/buildkit/frontend/dockerfile/"*/*_test.go "$gp/buildkit/frontend/dockerfile/shell/equal_env_windows.go"
rm -rf "$gp/buildkit/frontend/dockerfile/parser/dumper"
printf 'package stack\n\nfunc Enable(err error) error { return err }\n' > "$gp/buildkit/util/stack/stack.go"
cp -r "$PATTERNMATCHER_SRC/"*.go "$PATTERNMATCHER_SRC/ignorefile" "$gp/patternmatcher/"
rm -f "$gp/patternmatcher/"*_test.go "$gp/patternmatcher/ignorefile/"*_test.go
python3 - "$gp/buildkit/frontend/dockerfile" <<'PY'
import sys
d = sys.argv[1]
p = d + '/parser/directives.go'; s = open(p).read()
s = s.replace('var directiveRegexp = sync.OnceValue(func() *regexp.Regexp {\n\treturn regexp.MustCompile(',
              'var _ sync.Mutex\n\nfunc directiveRegexp() *regexp.Regexp { return directiveRegexpV }\n\nvar directiveRegexpV = (func() *regexp.Regexp {\n\treturn regexp.MustCompile(')
s = s.replace('})\n\nfunc (d *DirectiveParser) SetComment', '})()\n\nfunc (d *DirectiveParser) SetComment', 1)
s = s.replace('line, ok := bytes.CutPrefix(line, []byte(*d.comment))',
              'ok := bytes.HasPrefix(line, []byte(*d.comment))\n\tif ok {\n\t\tline = line[len(*d.comment):]\n\t}')
open(p, 'w').write(s)
p = d + '/shell/lex.go'; s = open(p).read()
s = s.replace('\t"slices"\n', '').replace('slices.Reverse(out)',
              'for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {\n\t\tout[i], out[j] = out[j], out[i]\n\t}')
open(p, 'w').write(s)
PY
cp "$here/oracle.go" "$out/gopath/src/oracle/main.go"
(cd "$out/gopath/src/oracle" && GOPATH="$out/gopath:/usr/share/gocode" GO111MODULE=off go build -o "$out/oracle" .)
cc -O1 -g -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I"$root" "$here/driver.c" \
   "$root/steps/dockerfile.c" "$root/steps/dockershell.c" "$root/steps/dockerfile_text.c" \
   "$root/steps/dockerignore.c" "$root/common/buf.c" "$root/common/mem.c" "$root/common/err.c" \
   "$root/common/arena.c" "$root/common/fs.c" -o "$out/driver"
echo "built $out/oracle and $out/driver"
