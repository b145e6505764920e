-- Compute workload for `cargo xtask bench-dynamic`: the interpreter loop, tables, closures,
-- string building and pattern matching, with a deterministic result.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local t = {}
for i = 1, 300000 do t["k" .. i] = i * i % 1000003 end
local total = 0
for k, v in pairs(t) do if k:sub(-1) == "7" then total = total + v end end
local parts = {}
for i = 1, 100000 do parts[#parts + 1] = "w" .. (i * 7919 % 100000) end
local text = table.concat(parts, " ")
local count, sum = 0, 0
for d in text:gmatch("w(%d+)") do count = count + 1; sum = sum + tonumber(d) end
local sorted = {}
for i = 1, 100000 do sorted[i] = (i * 48271) % 2147483647 end
table.sort(sorted)
print(fib(27), total, count, sum, sorted[1], sorted[#sorted])
