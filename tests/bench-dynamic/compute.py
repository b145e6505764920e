# Compute workload for `cargo xtask bench-dynamic`: the interpreter loop, dicts, strings,
# regular expressions, JSON and hashing, with a deterministic result.
import hashlib, json, re

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

table = {}
for i in range(150000):
    table["k%d" % i] = i * i % 1000003
total = sum(v for k, v in table.items() if k.endswith("7"))
text = " ".join("w%d" % (i * 7919 % 100000) for i in range(100000))
words = re.findall(r"w(\d+)", text)
longest = max(words, key=len)
doc = json.dumps(table, sort_keys=True)
digest = hashlib.sha256(doc.encode()).hexdigest()
print(fib(27), total, len(words), longest, len(doc), digest)
