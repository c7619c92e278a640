#!/bin/sh
# bench/startup.sh: start-up cost of `vsq -e ''` against `lua5.4 -e ''` (target: at most 2x).
set -u
cd "$(dirname "$0")/.."
if command -v hyperfine >/dev/null; then
	hyperfine -N --warmup 20 --runs 300 --export-json /tmp/vsq-startup.json "lua5.4 -e ''" "./vsq -e ''" >/dev/null 2>&1
	lua5.4 -e '
	  local s = io.open("/tmp/vsq-startup.json"):read("a")
	  local med = {}
	  for cmd, m in s:gmatch([["command":%s*"([^"]*)".-"median":%s*([%d.e-]+)]]) do med[#med+1] = {cmd, tonumber(m)} end
	  for _, r in ipairs(med) do print(("%-20s median %.3f ms"):format(r[1], r[2] * 1000)) end
	  print(("startup ratio vsq/lua5.4: %.2fx (target <= 2x)"):format(med[2][2] / med[1][2]))'
	rm -f /tmp/vsq-startup.json
fi
