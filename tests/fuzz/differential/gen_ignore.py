import random, os, sys
random.seed(int(sys.argv[2])); out = sys.argv[1]; os.makedirs(out, exist_ok=True)
COMP = ['a','b','c','dir','node_modules','.git','x.go','y.txt','.foo','a.b','file']
PAT = ['*','**','?','a*','*.go','*.txt','[a-c]','[^a]','\\*','.*','a?c','**/*.go','dir/**','**/dir','a/**/b','[x\\-]','a(b)','a+b','{a}','$','^a','x\\.go','[a-z]*.txt']
for i in range(int(sys.argv[3])):
    path = '/'.join(random.choice(COMP) for _ in range(random.randint(1,4)))
    lines = []
    for _ in range(random.randint(1,6)):
        p = '/'.join(random.choice(COMP + PAT) for _ in range(random.randint(1,3)))
        if random.random() < 0.3: p = '!' + p
        if random.random() < 0.1: p = '/' + p
        if random.random() < 0.1: p = ' ' + p + ' '
        if random.random() < 0.05: p = '# ' + p
        if random.random() < 0.05: p = p + '/'
        if random.random() < 0.05: p = './' + p
        lines.append(p)
    open(os.path.join(out, 'i%05d' % i), 'w').write(path + '\n' + '\n'.join(lines) + '\n')
