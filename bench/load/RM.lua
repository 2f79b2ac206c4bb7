-- Workload RM of bench/bench.sh (see its header).
dofile(os.getenv("TD_LOAD") .. "/common.lua")
local cookies = {}
for c in io.lines(os.getenv("TD_COOKIES")) do table.insert(cookies, c) end
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", "/action", { ["Cookie"] = "id=" .. cookies[(i % #cookies) + 1] })
end
function response(status, headers, body)
  if not shows_the_file(status, body) then wrong = wrong + 1 end
end
