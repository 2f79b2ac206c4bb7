-- Workload R of bench/bench.sh (see its header).
dofile(os.getenv("TD_LOAD") .. "/common.lua")
wrk.headers["Cookie"] = "id=" .. os.getenv("TD_COOKIE")
function response(status, headers, body)
  if not shows_the_file(status, body) then wrong = wrong + 1 end
end
