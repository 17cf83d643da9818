import random, os, sys
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
INSTR = ['FROM','RUN','CMD','ENTRYPOINT','ENV','LABEL','ARG','COPY','ADD','ONBUILD','HEALTHCHECK','EXPOSE','USER','WORKDIR','SHELL','MAINTAINER','STOPSIGNAL','VOLUME','FOO','run','From','oNbUiLd','copy']
ATOMS = ['a','b c','$A','${A}','${A:-x}','${B:+y}','${Z?oops}','"q w"',"'s t'",'\\"','\\\\','\\ ','`','=','k=v','k="v w"',"k='v'",'k=','<<EOF','<<-EOF',"<<'EOF'",'<<"E O"','3<<X','<< EOF','[','"]','["a", "b"]','[ "x" ]','[]','["a",1]','["\\u00e9"]','[null]','["a"] x','{"a":1}','--from=x','--chown="a b"','--mount=type=cache,target=/c','--','-x','é','\u00a0','\u2003','\t','  ','#','# c','\\u0000','☃','${A#*}','${A%%x}','${A/a/b}','$1','$$','${}','${A','"','\'','\\\n','\\ \n','`\n','&&','|','>','$(cmd)','%','*','?','~']
def word():
    return ''.join(random.choice(ATOMS) for _ in range(random.randint(1,3)))
def line():
    r = random.random()
    if r < 0.07: return '# ' + word()
    if r < 0.1: return random.choice(['', ' ', '\t', '\\', ' \\'])
    ins = random.choice(INSTR)
    if ins.lower() == 'onbuild' and random.random() < 0.8:
        ins += ' ' + random.choice(INSTR)
    args = ' '.join(word() for _ in range(random.randint(0,4)))
    l = ins + random.choice([' ', '\t', '  ']) + args
    if random.random() < 0.15: l += random.choice([' \\', '\\', ' `', '\\ ', '\\\\'])
    return l
for i in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2000):
    lines = []
    if random.random() < 0.3:
        lines.append(random.choice(['# escape=`', '# escape=\\', '#syntax=docker/dockerfile:1', '# check=skip=all', '# escape = x', '# ESCAPE=`', '\ufeff# escape=`']))
        if random.random() < 0.3: lines.append(random.choice(['# escape=`', '# syntax=x']))
    for _ in range(random.randint(1, 12)):
        lines.append(line())
        if '<<' in lines[-1] and random.random() < 0.8:
            for _ in range(random.randint(0,3)): lines.append(random.choice(['body $A', '\tindented', 'EOF', '\tEOF', 'X', 'E O', '']))
            lines.append(random.choice(['EOF', '\tEOF', 'X', 'E O']))
    nl = random.choice(['\n', '\n', '\r\n'])
    text = nl.join(lines) + random.choice(['', nl])
    open(os.path.join(out, 'df%05d' % i), 'wb').write(text.encode('utf-8'))
    # shell word: flags byte + word
    w = ''.join(random.choice(ATOMS + ['a', 'b', ' ', '$SP', '${SP}', '"$SP"', '${PATH//\\//:}', '${PATH#*/}', '${PATH%%:*}', '${PATH/usr/x}', '${E-d}', '${E:-d}', '${A:?m}', '\\$A']) for _ in range(random.randint(1, 6)))
    flags = bytes([random.choice([0, 0, 0, 1, 2, 4, 16, 18, 22, 8])])
    open(os.path.join(out, 'w%05d' % i), 'wb').write(flags + w.encode('utf-8'))
