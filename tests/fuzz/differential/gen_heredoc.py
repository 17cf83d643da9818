import random, os, sys
random.seed(int(sys.argv[2])); out = sys.argv[1]; os.makedirs(out, exist_ok=True)
DELIMS = ['EOF','E','"EOF"',"'EOF'",'E"O"F',"e'o'f",'E\\OF','$V','${V}','"E F"','X\\ Y','E<F','-EOF','','"','\\\'E','EOF"x"','a$b','ä']
HEADS = ['RUN','COPY','ADD','ONBUILD RUN','ONBUILD COPY','RUN --mount=type=cache,target=/x','USER','CMD','RUN [','COPY --from=a']
for i in range(int(sys.argv[3])):
    lines = ['FROM a']
    for _ in range(random.randint(1,5)):
        h = random.choice(HEADS)
        docs = []
        parts = [h]
        for _ in range(random.randint(1,3)):
            d = random.choice(DELIMS)
            op = random.choice(['<<','<<-','<< ','<<- ','2<<','10<<-','<<  '])
            parts.append(op + d)
            docs.append(d)
            if random.random() < 0.4: parts.append(random.choice(['/dst','| sh','> f','"<<Q"',"'<<Q'",'\\<<Z','x<<Y','$(<<Z)']))
        line = ' '.join(parts)
        if h == 'RUN [': line += ']'
        lines.append(line)
        for d in docs:
            for _ in range(random.randint(0,3)):
                lines.append(random.choice(['body $V', '\tindented', 'line', '\t\tEOF', 'EOF ', 'E', '', '# comment', 'RUN x \\']))
            name = d.strip('"\'').replace('"','').replace("'",'').replace('\\','')
            lines.append(random.choice([name, '\t' + name, name, 'EOF', 'E']))
    open(os.path.join(out, 'h%05d' % i), 'w').write('\n'.join(lines) + random.choice(['', '\n']))
