import subprocess, sys, os, glob
mode = sys.argv[1]
files = sys.argv[2:]
bad = 0; n = 0; skipped = 0
for f in files:
    data = open(f,'rb').read()
    if b'\0' in (data[1:] if mode != 'parse' else data):
        skipped += 1; continue
    a = subprocess.run(['/tmp/sw-diff/oracle', mode, f], capture_output=True).stdout
    b = subprocess.run(['/tmp/sw-diff/driver', mode, f], capture_output=True).stdout
    n += 1
    if a != b:
        bad += 1
        if bad <= 8:
            print('=== DIFF', f, repr(data[:300]))
            print('go:', a[:600])
            print('c :', b[:600])
print(f'{mode}: {n} inputs, {bad} differ, {skipped} skipped (NUL)')
